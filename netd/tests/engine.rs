//! A stock dockerd drives netd through the plugin protocol: `docker network create
//! -d netd --ipam-driver netd`, containers that reach each other, connect and
//! disconnect, and `docker network rm` that leaves nothing behind.

mod common;

use common::Netd;
use tests::Dockerd;

#[test]
fn docker_networks_on_netd() {
    // netd starts first so it outlives dockerd, which calls it while stopping.
    let netd = Netd::start_with_docker();
    let docker = Dockerd::start(&netd.host).unwrap();
    let run = |args: &[&str]| {
        docker
            .run(args)
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}\n--- netd log\n{}", netd.log()))
    };

    let id = run(&[
        "network",
        "create",
        "-d",
        "netd",
        "--ipam-driver",
        "netd",
        "--subnet",
        "10.80.0.0/24",
        "-o",
        "com.docker.network.bridge.name=dk-n1",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "n1",
    ]);
    let id = id.trim().to_string();
    run(&[
        "network",
        "create",
        "-d",
        "netd",
        "--ipam-driver",
        "netd",
        "--subnet",
        "10.80.1.0/24",
        "n2",
    ]);

    // netd knows the network under dockerd's id, with the bridge named as asked.
    let ours = netd.cli(&["network", "inspect", &id]).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(ours["origin"], "docker");
    assert_eq!(ours["subnets"][0]["subnet"], "10.80.0.0/24");
    assert!(
        netd.links().contains(&"dk-n1".to_string()),
        "{:?}",
        netd.links()
    );

    for c in ["c1", "c2"] {
        run(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "n1",
            "busybox",
            "sleep",
            "1000",
        ]);
    }
    run(&[
        "run",
        "-d",
        "--name",
        "c3",
        "--network",
        "n2",
        "busybox",
        "sleep",
        "1000",
    ]);
    let ip = |c: &str, net: &str| {
        run(&[
            "inspect",
            "--format",
            &format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}"),
            c,
        ])
        .trim()
        .to_string()
    };
    let (ip1, ip2, ip3) = (ip("c1", "n1"), ip("c2", "n1"), ip("c3", "n2"));
    assert!(ip2.starts_with("10.80.0."), "{ip2}");
    // One interface only: Join answered a gateway, so no docker_gwbridge.
    let links = run(&["exec", "c1", "ip", "-o", "link"]);
    assert_eq!(
        links.lines().filter(|l| l.contains("eth")).count(),
        1,
        "{links}"
    );
    assert!(links.contains("mtu 1400"), "{links}");
    let routes = run(&["exec", "c1", "ip", "route"]);
    assert!(
        routes.contains("default via 10.80.0.1 dev eth0"),
        "{routes}"
    );

    // Same network: reachable by IP. Other network: not.
    run(&["exec", "c1", "ping", "-c", "1", "-W", "2", &ip2]);
    assert!(docker
        .run(&["exec", "c1", "ping", "-c", "1", "-W", "1", &ip3])
        .is_err());

    // connect / disconnect
    run(&["network", "connect", "n2", "c1"]);
    run(&["exec", "c1", "ping", "-c", "1", "-W", "2", &ip3]);
    let links = run(&["exec", "c1", "ip", "-o", "link"]);
    assert!(links.contains("eth1"), "{links}");
    run(&["network", "disconnect", "n2", "c1"]);
    assert!(docker
        .run(&["exec", "c1", "ping", "-c", "1", "-W", "1", &ip3])
        .is_err());
    let _ = ip1;

    // netd's view matches dockerd's.
    let eps: serde_json::Value =
        serde_json::from_str(&netd.cli(&["endpoint", "ls", "--format", "json"]).unwrap()).unwrap();
    assert_eq!(eps.as_array().unwrap().len(), 3, "{eps}");

    // A network with containers cannot go; after they go, nothing is left.
    assert!(docker.run(&["network", "rm", "n1"]).is_err());
    run(&["rm", "-f", "c1", "c2", "c3"]);
    run(&["network", "rm", "n1", "n2"]);
    let left = netd.cli(&["network", "ls", "--format", "json"]).unwrap();
    assert_eq!(left.trim(), "[]", "{left}");
    let links = netd.links();
    assert_eq!(links, vec!["lo".to_string()], "links left: {links:?}");
    let pools = common::runtime().block_on(netd.client.metrics()).unwrap();
    assert!(pools.contains("netd_ipam_pools 0"), "pools left:\n{pools}");
}
