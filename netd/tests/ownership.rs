//! netd touches only what it made: a second daemon in the same namespace changes
//! nothing, and a bridge named in the options must be a bridge no other network
//! uses; one that existed is used and left in place.

mod common;

use common::{network, runtime, Netd};
use std::time::Duration;

#[test]
fn a_second_daemon_in_the_same_namespace_refuses_to_start_and_touches_nothing() {
    let netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    rt.block_on(async {
        c.create_network(&network("n1", "10.79.0.0/24"))
            .await
            .unwrap();
        for name in ["a", "b"] {
            c.create_sandbox(&common::sandbox(name)).await.unwrap();
            c.attach(name, &common::attach("n1")).await.unwrap();
        }
    });
    let links = netd.links();
    assert_eq!(links.len(), 4, "{links:?}");

    let dir = netd.host.dir().join("second");
    let (socket, state, run) = (dir.join("netd.sock"), dir.join("state"), dir.join("run"));
    let mut second = netd
        .host
        .spawn(
            "netd-second",
            env!("CARGO_BIN_EXE_netd"),
            &[
                "--socket",
                socket.to_str().unwrap(),
                "daemon",
                "--state-dir",
                state.to_str().unwrap(),
                "--run-dir",
                run.to_str().unwrap(),
                "--no-docker",
            ],
        )
        .unwrap();
    let status = second.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(!status.success());
    let log = second.log();
    let pid = netd.daemon.as_ref().unwrap().pid();
    assert!(
        log.contains(&format!(
            "another netd (pid {pid}) runs in this network namespace"
        )),
        "{log}"
    );
    assert_eq!(netd.links(), links, "the second daemon changed links");
    assert!(!socket.exists());
    // The first one is unharmed.
    let sbs = rt.block_on(c.sandboxes()).unwrap();
    let b = sbs.iter().find(|s| s.name == "b").unwrap();
    let eps = rt.block_on(c.endpoints()).unwrap();
    let a_ip = eps
        .iter()
        .find(|e| e.join.as_ref().and_then(|j| j.sandbox.as_ref()) != Some(&b.id))
        .map(common::ipv4)
        .unwrap();
    assert!(netd.pings(b, &a_ip));
}

fn create(netd: &Netd, name: &str, subnet: &str, bridge: &str) -> Result<String, String> {
    netd.cli(&[
        "network",
        "create",
        name,
        "--subnet",
        subnet,
        "-o",
        &format!("com.docker.network.bridge.name={bridge}"),
    ])
}

#[test]
fn a_named_bridge_is_a_bridge_no_other_network_uses() {
    let netd = Netd::start();
    netd.host
        .run(
            "ip",
            &["link", "add", "fv0", "type", "veth", "peer", "name", "fv1"],
        )
        .unwrap();
    netd.host
        .run("ip", &["link", "add", "mybr", "type", "bridge"])
        .unwrap();

    // Not a bridge: refused, untouched (no address, still there after).
    for name in ["fv0", "lo"] {
        let err = create(&netd, "bad", "10.81.0.0/24", name).unwrap_err();
        assert!(err.contains("not a bridge"), "{name}: {err}");
        let addrs = netd
            .host
            .run("ip", &["-o", "addr", "show", "dev", name])
            .unwrap();
        assert!(!addrs.contains("10.81.0.1"), "{name}: {addrs}");
    }
    assert!(netd.links().contains(&"fv1".to_string()));

    // An existing bridge is used, and left in place (without netd's address) at delete.
    create(&netd, "n1", "10.81.0.0/24", "mybr").unwrap();
    let addrs = netd
        .host
        .run("ip", &["-o", "addr", "show", "dev", "mybr"])
        .unwrap();
    assert!(addrs.contains("10.81.0.1/24"), "{addrs}");
    // A bridge another network uses is refused: named, or by its default name.
    let err = create(&netd, "n2", "10.82.0.0/24", "mybr").unwrap_err();
    assert!(err.contains("link mybr is used by network n1"), "{err}");
    netd.cli(&["network", "create", "n3", "--subnet", "10.83.0.0/24"])
        .unwrap();
    let n3 = runtime()
        .block_on(netd.client.network("n3"))
        .unwrap()
        .network;
    let default = format!("br-{}", &n3.id[..12]);
    let err = create(&netd, "n4", "10.84.0.0/24", &default).unwrap_err();
    assert!(err.contains("is used by network n3"), "{err}");

    netd.cli(&["network", "rm", "n1"]).unwrap();
    assert!(
        netd.links().contains(&"mybr".to_string()),
        "{:?}",
        netd.links()
    );
    let addrs = netd
        .host
        .run("ip", &["-o", "addr", "show", "dev", "mybr"])
        .unwrap();
    assert!(!addrs.contains("10.81.0.1"), "{addrs}");
    // Once n1 is gone, the bridge can be named again.
    create(&netd, "n2", "10.82.0.0/24", "mybr").unwrap();
    netd.cli(&["network", "rm", "n2", "n3"]).unwrap();
    let left = netd.links();
    assert_eq!(
        left,
        ["lo", "fv1", "fv0", "mybr"].map(String::from).to_vec(),
        "{left:?}"
    );
}

#[test]
fn a_chosen_subnet_avoids_routes_added_after_netd_started() {
    let netd = Netd::start();
    let rt = runtime();
    // A route the host gets while netd runs (a VPN coming up, say).
    netd.host
        .run(
            "ip",
            &["link", "add", "r0", "type", "veth", "peer", "name", "r1"],
        )
        .unwrap();
    netd.host.run("ip", &["link", "set", "r0", "up"]).unwrap();
    netd.host
        .run("ip", &["route", "add", "172.24.0.0/23", "dev", "r0"])
        .unwrap();
    let first = rt
        .block_on(
            netd.client
                .create_network(&netd::controller::NetworkCreate {
                    name: "auto1".into(),
                    ..Default::default()
                }),
        )
        .unwrap();
    assert_eq!(first.subnets[0].subnet.to_string(), "172.24.2.0/24");
    // Once the route is gone (with its link, which the kernel does not announce
    // route by route), its subnets are free again.
    netd.host.run("ip", &["link", "del", "r0"]).unwrap();
    let second = tests::wait_for("the route's removal seen", Duration::from_secs(5), || {
        let net = rt
            .block_on(
                netd.client
                    .create_network(&netd::controller::NetworkCreate {
                        name: "auto2".into(),
                        ..Default::default()
                    }),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if net.subnets[0].subnet.to_string() == "172.24.0.0/24" {
            return Ok(Some(net));
        }
        rt.block_on(netd.client.delete_network("auto2")).unwrap();
        Ok(None)
    })
    .unwrap();
    assert_eq!(second.name, "auto2");
}

#[test]
fn the_state_netd_makes_is_readable_by_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let netd = Netd::start();
    let state = netd.host.dir().join("state");
    for (path, want) in [
        (state.clone(), 0o700),
        (state.join("netd.redb"), 0o600),
        (state.join("netd.redb.wal"), 0o600),
    ] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{} has mode {mode:o}", path.display());
    }
}
