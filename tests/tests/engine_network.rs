//! A stock dockerd uses the example network plugin (plugin-api/examples/network_driver.rs)
//! through the plugin protocol: network create, inspect, a container on it, rm.

use tests::{example_binary, Dockerd, TestHost};

/// The NetworkDriver methods the example logged, in order.
fn methods(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix("call NetworkDriver."))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn docker_creates_uses_and_removes_a_plugin_network() {
    let host = TestHost::new().unwrap();
    let plugin = host
        .spawn_plugin(
            "vethnet",
            example_binary("network_driver").unwrap(),
            &["--name", "vethnet"],
        )
        .unwrap();
    // Plugins start first so they outlive dockerd, which calls them while it stops.
    let docker = Dockerd::start(&host).unwrap();

    // 198.18.0.0/15 is reserved for benchmarks and tests; nothing leaves the host anyway.
    let id = docker
        .run(&[
            "network",
            "create",
            "-d",
            "vethnet",
            "--subnet",
            "198.18.7.0/24",
            "--gateway",
            "198.18.7.1",
            "n1",
        ])
        .unwrap();
    let id = id.trim();
    assert_eq!(id.len(), 64, "network id {id:?}");

    let inspected = docker.json(&["network", "inspect", "n1"]).unwrap();
    let n = &inspected[0];
    assert_eq!(n["Id"], id);
    assert_eq!(n["Driver"], "vethnet");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "198.18.7.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "198.18.7.1");
    assert!(
        plugin
            .log()
            .contains(&format!("CreateNetwork network={id}")),
        "the plugin saw another id:\n{}",
        plugin.log()
    );

    // A container on n1 gets the interface the plugin made, named eth0, with the
    // address the engine reports and a default route through the gateway.
    docker.run_sleeper("c1", "n1").unwrap();
    let ip = docker.container_ip("c1", "n1").unwrap();
    let ip = ip.as_str();
    assert!(ip.starts_with("198.18.7."), "engine reports {ip:?}");
    let addrs = docker
        .run(&["exec", "c1", "ip", "-o", "-4", "addr", "show", "eth0"])
        .unwrap();
    assert!(addrs.contains(&format!("inet {ip}/24")), "{addrs}");
    let routes = docker.run(&["exec", "c1", "ip", "route"]).unwrap();
    assert!(
        routes.contains("default via 198.18.7.1 dev eth0"),
        "{routes}"
    );
    docker.run(&["rm", "-f", "c1"]).unwrap();

    assert_eq!(docker.run(&["network", "rm", "n1"]).unwrap().trim(), "n1");
    let networks = docker
        .run(&["network", "ls", "--format", "{{.Name}}"])
        .unwrap();
    assert!(!networks.lines().any(|l| l == "n1"), "{networks}");

    // The calls arrived in protocol order, and the plugin's veth is gone.
    let seen = methods(&plugin.log());
    let expected = [
        "GetCapabilities",
        "CreateNetwork",
        "CreateEndpoint",
        "Join",
        "Leave",
        "DeleteEndpoint",
        "DeleteNetwork",
    ];
    let mut rest = seen.iter();
    for want in expected {
        assert!(
            rest.any(|m| m == want),
            "{want} missing or out of order in {seen:#?}"
        );
    }
    let links = host.run("ip", &["-o", "link", "show"]).unwrap();
    assert_eq!(links.lines().count(), 1, "links left in the host: {links}");
}
