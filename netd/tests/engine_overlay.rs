//! Overlay networks from `docker network create`: two hosts, each with its own
//! dockerd and netd in a cluster on etcd, on an underlay switch. Containers on
//! one overlay ping each other by address across the hosts, and a port one of
//! them publishes answers from a third host on the underlay.

mod common;

use common::lab::{plug, underlay, ETCD};
use common::Netd;
use std::time::{Duration, Instant};
use tests::{Dockerd, Etcd, TestHost};

#[test]
fn containers_of_two_dockerds_share_an_overlay_and_publish_ports() {
    let (switch, outside) = underlay();
    let _etcd = Etcd::start_on(&outside, ETCD).unwrap();
    let store = format!("etcd://{ETCD}:2379");
    let mut hosts = Vec::new();
    for n in 1..=2 {
        let host = TestHost::new().unwrap();
        let addr = format!("192.168.60.{n}");
        plug(&switch, &host, &format!("p{n}"), &addr);
        hosts.push(Netd::start_on(
            host,
            true,
            &["--cluster-store", &store, "--advertise-addr", &addr],
        ));
    }
    let docker: Vec<Dockerd> = hosts
        .iter()
        .map(|h| Dockerd::start(&h.host).unwrap())
        .collect();
    let create = |d: &Dockerd, value: &str, more: &[&str]| {
        let overlay = format!("com.netd.overlay={value}");
        let mut args = vec![
            "network",
            "create",
            "-d",
            "netd",
            "--ipam-driver",
            "netd",
            "-o",
            &overlay,
            "--subnet",
            "10.90.0.0/24",
        ];
        args.extend_from_slice(more);
        args.push("ov1");
        d.run(&args)
    };
    // dockerd tells a plugin no network name: `true` is refused, saying so.
    let err = create(&docker[0], "true", &[]).unwrap_err().to_string();
    assert!(err.contains("com.netd.overlay=NAME"), "{err}");
    create(&docker[0], "ov1", &[]).unwrap();
    // Every host must ask for the same settings: another MTU is refused,
    // naming the difference.
    let err = create(
        &docker[1],
        "ov1",
        &["-o", "com.docker.network.driver.mtu=1400"],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("options") && err.contains("1400"), "{err}");
    create(&docker[1], "ov1", &[]).unwrap();
    docker[0]
        .run(&[
            "run",
            "-d",
            "--name",
            "c1",
            "--network",
            "ov1",
            "busybox",
            "sleep",
            "1000",
        ])
        .unwrap();
    docker[1]
        .run(&[
            "run",
            "-d",
            "--name",
            "c2",
            "--network",
            "ov1",
            "-p",
            "18080:80",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ])
        .unwrap();
    let ip1 = docker[0].container_ip("c1", "ov1").unwrap();
    let ip2 = docker[1].container_ip("c2", "ov1").unwrap();
    assert_ne!(ip1, ip2, "addresses collide across hosts");
    let start = Instant::now();
    while docker[0]
        .run(&["exec", "c1", "ping", "-c1", "-W1", &ip2])
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "c1 on host 1 cannot reach c2 ({ip2}) on host 2"
        );
    }
    // The published port, from a third host on the underlay.
    let start = Instant::now();
    loop {
        let page = outside
            .command("curl")
            .args(["-s", "--max-time", "2", "http://192.168.60.2:18080/passwd"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&page.stdout).contains("root:") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the published port does not answer from outside"
        );
    }
    for d in &docker {
        d.run(&["rm", "-f", "c1", "c2"]).ok();
    }
    for d in &docker {
        d.run(&["network", "rm", "ov1"]).unwrap();
    }
}
