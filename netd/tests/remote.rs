//! A third-party network plugin behind netd (`-d remote:NAME`): plugin-api's
//! example network driver, found as dockerd finds plugins, makes the
//! interfaces; netd keeps the addresses, moves the plugin's interface into the
//! sandbox and configures it, and takes it away again at detach.

mod common;

use common::{ipv4, runtime, sandbox, Netd};
use netd::controller::{Attach, NetworkCreate, SubnetRequest};

fn remote_network(name: &str, subnet: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        driver: Some("remote:vethnet".into()),
        subnets: vec![SubnetRequest {
            subnet: Some(subnet.parse().unwrap()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The host end the example plugin makes for endpoint `id`.
fn host_end(id: &str) -> String {
    format!("vh{}", &id[..8])
}

#[test]
fn a_remote_plugin_serves_netds_sandboxes() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    // Not running yet: the network is refused, naming what is missing.
    let err = rt
        .block_on(c.create_network(&remote_network("rn", "10.94.0.0/24")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is the plugin running"), "{err}");
    let plugin_bin = tests::example_binary("network_driver").unwrap();
    let mut plugin = netd
        .host
        .spawn_plugin("vethnet", &plugin_bin, &["--name", "vethnet"])
        .unwrap();
    let net = rt
        .block_on(c.create_network(&remote_network("rn", "10.94.0.0/24")))
        .unwrap();
    assert_eq!(net.driver, "remote:vethnet");

    let a = rt.block_on(c.create_sandbox(&sandbox("a"))).unwrap();
    let ep = rt
        .block_on(c.attach(
            "a",
            &Attach {
                network: "rn".into(),
                ..Default::default()
            },
        ))
        .unwrap();
    let ip = ipv4(&ep);
    assert!(ip.starts_with("10.94.0."), "{ip}");
    // Inside: the plugin's interface, as eth0, with netd's address and MAC,
    // up, routed through the gateway the plugin answered.
    let shown = netd.in_sandbox(&a, &["ip", "-o", "addr", "show", "eth0"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("inet {}", ep.addresses[0])),
        "{shown}"
    );
    let link = netd.in_sandbox(&a, &["ip", "-o", "link", "show", "eth0"]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains(&ep.mac) && link.contains("UP"), "{link}");
    let routes = netd.in_sandbox(&a, &["ip", "route"]);
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("default via 10.94.0.1 dev eth0"),
        "{routes:?}"
    );
    // Traffic through the plugin's veth: give its host end the gateway address
    // (the example plugin makes no bridge) and ping across.
    let end = host_end(&ep.id);
    netd.host
        .netns_tool("ip", &["addr", "add", "10.94.0.1/24", "dev", &end])
        .unwrap();
    assert!(
        netd.pings(&a, "10.94.0.1"),
        "the sandbox does not reach the gateway"
    );
    let log = plugin.log();
    for call in ["CreateNetwork", "CreateEndpoint", "Join"] {
        assert!(
            log.contains(&format!("NetworkDriver.{call}")),
            "{call}: {log}"
        );
    }

    // An interface gone from under a stored join (as a kill -9 between the
    // join's commit and the plugin's wiring leaves it): netd's next start
    // makes it again.
    netd.in_sandbox(&a, &["ip", "link", "del", "eth0"]);
    let mut netd = netd;
    netd.kill_9();
    netd.launch();
    let c = &netd.client;
    let back = netd.in_sandbox(&a, &["ip", "-o", "addr", "show", "eth0"]);
    let back = String::from_utf8_lossy(&back.stdout);
    assert!(
        back.contains(&format!("inet {}", ep.addresses[0])),
        "{back}\n{}",
        netd.log()
    );
    netd.host
        .netns_tool("ip", &["addr", "add", "10.94.0.1/24", "dev", &end])
        .unwrap();
    assert!(netd.pings(&a, "10.94.0.1"), "after the repair");

    // Detach: the interface goes, the plugin hears Leave and DeleteEndpoint.
    rt.block_on(c.detach("a", &ep.id)).unwrap();
    let gone = netd.in_sandbox(&a, &["ip", "link", "show", "eth0"]);
    assert!(!gone.status.success(), "eth0 is still in the sandbox");
    assert!(!netd.links().contains(&end), "{:?}", netd.links());
    let log = plugin.log();
    for call in ["Leave", "DeleteEndpoint"] {
        assert!(
            log.contains(&format!("NetworkDriver.{call}")),
            "{call}: {log}"
        );
    }

    // A CNI runtime's container on the same network, through netd-cni.
    let (_holder, netns) = netd.foreign_netns("cni-container");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "rn", "type": "netd-cni",
        "socket": netd.host.dir().join("netd.sock"),
    });
    let run_cni = |command: &str| {
        use std::io::Write;
        let mut child = netd
            .host
            .command(tests::workspace_binary("netd-cni").unwrap())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", "rc1")
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/nonexistent")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, result) = run_cni("ADD");
    assert!(ok, "{result}");
    let inside = netd
        .host
        .command("nsenter")
        .args([
            &format!("--net={netns}"),
            "ip",
            "-o",
            "addr",
            "show",
            "eth0",
        ])
        .output()
        .unwrap();
    let inside = String::from_utf8_lossy(&inside.stdout);
    assert!(inside.contains("inet 10.94.0."), "{inside}\n{result}");
    let (ok, result) = run_cni("DEL");
    assert!(ok, "{result}");

    // The plugin away: an attach fails, naming the plugin, and leaves nothing.
    plugin.stop(std::time::Duration::from_secs(5));
    let err = rt
        .block_on(c.attach(
            "a",
            &Attach {
                network: "rn".into(),
                ..Default::default()
            },
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("remote:vethnet"), "{err}");
    assert!(rt.block_on(c.endpoints()).unwrap().is_empty());
    // Back, and the network deleted: the plugin hears DeleteNetwork.
    let plugin = netd
        .host
        .spawn_plugin("vethnet", &plugin_bin, &["--name", "vethnet"])
        .unwrap();
    rt.block_on(c.delete_network("rn")).unwrap();
    assert!(
        plugin.log().contains("NetworkDriver.DeleteNetwork"),
        "{}",
        plugin.log()
    );
}

#[test]
fn a_plugin_naming_someone_elses_link_is_refused_and_the_link_left_alone() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    // Someone else's container: a veth whose end is on their own bridge.
    for args in [
        &["link", "add", "fbr", "type", "bridge"][..],
        &["link", "add", "fv0", "type", "veth", "peer", "name", "fv1"],
        &["link", "set", "fv0", "master", "fbr", "up"],
    ] {
        netd.host.netns_tool("ip", args).unwrap();
    }
    // And netd's own bridge.
    let own = rt
        .block_on(c.create_network(&common::network("nb", "10.94.1.0/24")))
        .unwrap();
    let own_bridge = format!("br-{}", &own.id[..12]);
    assert!(netd.links().contains(&own_bridge), "{:?}", netd.links());
    let x = rt.block_on(c.create_sandbox(&sandbox("x"))).unwrap();
    let plugin_bin = tests::example_binary("network_driver").unwrap();
    for (i, victim) in ["fv0", own_bridge.as_str()].into_iter().enumerate() {
        let mut plugin = netd
            .host
            .spawn_plugin(
                "hostile",
                &plugin_bin,
                &["--name", "hostile", "--name-in-join", victim],
            )
            .unwrap();
        let net = format!("hn{i}");
        rt.block_on(c.create_network(&NetworkCreate {
            driver: Some("remote:hostile".into()),
            ..remote_network(&net, &format!("10.94.{}.0/24", 10 + i))
        }))
        .unwrap();
        let err = rt
            .block_on(c.attach(
                "x",
                &Attach {
                    network: net.clone(),
                    ..Default::default()
                },
            ))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not one it made"), "{victim}: {err}");
        // Left where it was, as it was; the sandbox got nothing, netd kept no
        // endpoint, and the plugin heard DeleteEndpoint.
        let shown = netd
            .host
            .netns_tool("ip", &["-o", "link", "show", victim])
            .unwrap();
        if victim == "fv0" {
            assert!(shown.contains("master fbr"), "{shown}");
        } else {
            assert!(netd.links().contains(&own_bridge), "{:?}", netd.links());
        }
        let inside = netd.in_sandbox(&x, &["ip", "-o", "link", "show"]);
        let inside = String::from_utf8_lossy(&inside.stdout);
        assert!(
            !inside.contains(victim) && !inside.contains("eth0"),
            "{inside}"
        );
        assert!(rt.block_on(c.endpoints()).unwrap().is_empty());
        assert!(
            plugin.log().contains("NetworkDriver.DeleteEndpoint"),
            "{}",
            plugin.log()
        );
        rt.block_on(c.delete_network(&net)).unwrap();
        plugin.stop(std::time::Duration::from_secs(5));
    }
    // Someone else's bridge and veth are still the test's to remove.
    netd.host.netns_tool("ip", &["link", "del", "fbr"]).unwrap();
    netd.host.netns_tool("ip", &["link", "del", "fv0"]).unwrap();
}
