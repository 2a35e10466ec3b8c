//! Debian's podman with its CNI backend and a conflist naming `netd-cni`: two
//! podman containers on a netd network reach each other, `-p` publishes
//! through netd, and removing the containers leaves nothing in netd.

mod common;

use common::runtimes::cni_dirs;
use common::{Netd, Outside, HOST_ADDR};
use std::time::Duration;
use tests::{Podman, ULIMITS};

#[test]
fn podman_containers_on_a_netd_network_reach_each_other_and_publish() {
    let (netd, rt) = Netd::start_with_network("podnet", "10.81.0.0/24");
    let outside = Outside::connect(&netd);
    let (bin, conf) = cni_dirs(&netd, "podnet", None);
    let podman = Podman::new(&netd.host, &bin, &conf).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-d"];
        all.extend(ULIMITS);
        all.extend(args);
        podman.run(&all)
    };
    run(&[
        "--name",
        "c1",
        "--network",
        "podnet",
        "--cap-add",
        "NET_RAW",
        "localhost/busybox",
        "sleep",
        "600",
    ])
    .unwrap();
    run(&[
        "--name",
        "c2",
        "--network",
        "podnet",
        "-p",
        "18082:80",
        "localhost/busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ])
    .unwrap();
    let ip = |c: &str| {
        podman
            .run(&[
                "inspect",
                c,
                "--format",
                r#"{{(index .NetworkSettings.Networks "podnet").IPAddress}}"#,
            ])
            .unwrap()
            .trim()
            .to_string()
    };
    let (ip1, ip2) = (ip("c1"), ip("c2"));
    assert!(
        ip1.starts_with("10.81.0.") && ip2.starts_with("10.81.0."),
        "{ip1} {ip2}"
    );
    assert_ne!(ip1, ip2);
    // netd holds them: one sandbox per container, on its network.
    let inspect = rt.block_on(netd.client.network("podnet")).unwrap();
    let mut held: Vec<String> = inspect
        .endpoints
        .iter()
        .map(|e| e.addresses[0].addr().to_string())
        .collect();
    held.sort();
    let mut want = vec![ip1.clone(), ip2.clone()];
    want.sort();
    assert_eq!(held, want);
    podman
        .run(&["exec", "c1", "ping", "-c", "1", "-W", "2", &ip2])
        .unwrap();
    // By name, through the network's DNS responder, which podman's resolv.conf
    // names (from the CNI result).
    let resolv = podman
        .run(&["exec", "c1", "cat", "/etc/resolv.conf"])
        .unwrap();
    assert!(resolv.contains("nameserver 10.81.0.1"), "{resolv}");
    podman
        .run(&["exec", "c1", "ping", "-c", "1", "-W", "2", "c2"])
        .unwrap();
    // -p publishes through netd's firewall: the page answers from outside.
    let url = format!("http://{HOST_ADDR}:18082/passwd");
    tests::wait_for("the published port", Duration::from_secs(10), || {
        Ok(outside.fetches(&url, "root:").then_some(()))
    })
    .unwrap();
    // Removing the containers takes them out of netd (CNI DEL).
    podman
        .run(&["rm", "--force", "--time", "0", "c1", "c2"])
        .unwrap();
    assert!(rt.block_on(netd.client.sandboxes()).unwrap().is_empty());
    let inspect = rt.block_on(netd.client.network("podnet")).unwrap();
    assert!(inspect.endpoints.is_empty(), "{:?}", inspect.endpoints);
    assert!(!outside.fetches(&url, "root:"));
}
