//! One netd network, three callers: a Docker container (a stock dockerd made
//! the network, `--ipam-driver netd`), a podman container (netd-cni) and a
//! runc container (`netd oci-hook`) reach each other, and the podman
//! container finds the runc one by name.

mod common;

use common::runtimes::{bundle, cni_dirs, runc, Container};
use common::Netd;
use serde_json::json;
use std::time::Duration;
use tests::{Dockerd, Podman, ULIMITS};

#[test]
fn docker_podman_and_runc_containers_share_one_network() {
    let netd = Netd::start_with_docker();
    let docker = Dockerd::start(&netd.host).unwrap();
    let rt = common::runtime();
    let id = docker
        .run(&[
            "network",
            "create",
            "-d",
            "netd",
            "--ipam-driver",
            "netd",
            "--subnet",
            "10.89.7.0/24",
            "mixed",
        ])
        .unwrap_or_else(|e| panic!("{e}\n--- netd log\n{}", netd.log()));
    // netd knows dockerd's network as docker-<id12>; the other runtimes name it so.
    let netd_name = format!("docker-{}", &id.trim()[..12]);
    docker.run_sleeper("d1", "mixed").unwrap();
    let docker_ip = docker.container_ip("d1", "mixed").unwrap();

    let (bin, conf) = cni_dirs(&netd, "mixed", Some(&netd_name));
    let podman = Podman::new(&netd.host, &bin, &conf).unwrap();
    let mut args = vec!["run", "-d"];
    args.extend(ULIMITS);
    args.extend([
        "--name",
        "p1",
        "--network",
        "mixed",
        "--cap-add",
        "NET_RAW",
        "localhost/busybox",
        "sleep",
        "600",
    ]);
    podman.run(&args).unwrap();
    let podman_ip = podman
        .run(&[
            "inspect",
            "p1",
            "--format",
            r#"{{(index .NetworkSettings.Networks "mixed").IPAddress}}"#,
        ])
        .unwrap()
        .trim()
        .to_string();

    let dir = netd.host.dir().join("r1");
    let r1 = bundle(
        &netd,
        &dir,
        &["sleep", "600"],
        json!({ "org.netd.networks": netd_name }),
    );
    let _r1 = Container(&netd, "r1");
    runc(
        &netd,
        &["run", "-d", "--bundle", r1.to_str().unwrap(), "r1"],
    )
    .unwrap();
    let sb = rt.block_on(netd.client.sandbox("oci-r1")).unwrap();
    let ep = rt.block_on(netd.client.endpoint(&sb.endpoints[0])).unwrap();
    let runc_ip = ep.addresses[0].addr().to_string();

    // Three different addresses out of the one pool dockerd holds through netd.
    let mut all = vec![docker_ip.clone(), podman_ip.clone(), runc_ip.clone()];
    assert!(all.iter().all(|ip| ip.starts_with("10.89.7.")), "{all:?}");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3, "{all:?}");

    let ping = |what: &str, out: Result<String, String>| {
        assert!(out.is_ok(), "{what}: {out:?}\n--- netd log\n{}", netd.log());
    };
    let wait = Duration::from_secs(10);
    for ip in [&podman_ip, &runc_ip] {
        tests::wait_for("docker reaches the others", wait, || {
            Ok(docker
                .run(&["exec", "d1", "ping", "-c", "1", "-W", "1", ip])
                .is_ok()
                .then_some(()))
        })
        .unwrap();
    }
    for ip in [&docker_ip, &runc_ip] {
        ping(
            &format!("podman -> {ip}"),
            podman
                .run(&["exec", "p1", "ping", "-c", "1", "-W", "2", ip])
                .map_err(|e| e.to_string()),
        );
    }
    for ip in [&docker_ip, &podman_ip] {
        assert!(netd.pings(&sb, ip), "runc -> {ip}");
    }
    // The podman container finds the runc one by name (netd's responder; the
    // runc container answers to its id).
    ping(
        "podman -> r1 by name",
        podman
            .run(&["exec", "p1", "ping", "-c", "1", "-W", "2", "r1"])
            .map_err(|e| e.to_string()),
    );

    // dockerd cannot remove the network while others' containers are on it;
    // once they are gone, it can, and nothing is left.
    let refused = docker.run(&["network", "rm", "mixed"]);
    assert!(refused.is_err(), "{refused:?}");
    podman.run(&["rm", "--force", "--time", "0", "p1"]).unwrap();
    runc(&netd, &["delete", "--force", "r1"]).unwrap();
    docker.run(&["rm", "-f", "d1"]).unwrap();
    docker.run(&["network", "rm", "mixed"]).unwrap();
    assert!(rt.block_on(netd.client.networks()).unwrap().is_empty());
    assert!(rt.block_on(netd.client.sandboxes()).unwrap().is_empty());
}
