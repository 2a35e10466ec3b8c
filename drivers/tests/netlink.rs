//! The netlink layer against the real kernel: a bridge in one test host, veth pairs
//! whose peers are created directly inside two sandbox namespaces, and a ping between
//! the sandboxes across the bridge.

use drivers::netlink::{open_netns, Netlink, NetlinkError, VethPair};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use tests::TestHost;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The network namespace inode of every thread of this process.
fn thread_namespaces() -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::metadata(t.path().join("ns/net")).ok())
        .map(|m| m.ino())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_and_veths_connect_two_sandboxes() {
    let before = thread_namespaces();
    let host = TestHost::new().unwrap();
    let sandboxes = [TestHost::new().unwrap(), TestHost::new().unwrap()];
    let nl = Netlink::in_netns(&host.netns_path()).await.unwrap();

    let bridge_mac = [0x02, 0x42, 0xc6, 0x12, 0x14, 0x01];
    let br = nl
        .add_bridge("br-t", Some(1400), Some(bridge_mac), 0x8000_0007)
        .await
        .unwrap();
    nl.add_address(br, ip("198.18.20.1"), 24).await.unwrap();
    nl.set_up(br).await.unwrap();

    for (i, sandbox) in sandboxes.iter().enumerate() {
        let peer_mac = [0x02, 0x42, 0xc6, 0x12, 0x14, 0x10 + i as u8];
        let netns = open_netns(&sandbox.netns_path()).unwrap();
        nl.add_veth(&VethPair {
            host: &format!("vh{i}"),
            master: Some(br),
            peer: "eth0",
            peer_netns: Some(&netns),
            peer_mac: Some(peer_mac),
            mtu: Some(1400),
            group: Some(0x8000_0007),
        })
        .await
        .unwrap();

        let inside = Netlink::in_netns(&sandbox.netns_path()).await.unwrap();
        let eth0 = inside
            .link("eth0")
            .await
            .unwrap()
            .expect("the peer is in the sandbox");
        assert_eq!(eth0.mtu, Some(1400));
        assert_eq!(eth0.mac.as_deref(), Some(&peer_mac[..]));
        inside
            .add_address(eth0.index, ip(&format!("198.18.20.{}", i + 2)), 24)
            .await
            .unwrap();
        inside.set_up_announcing(eth0.index).await.unwrap();
        let notify = sandbox
            .run("cat", &["/proc/sys/net/ipv4/conf/eth0/arp_notify"])
            .unwrap();
        assert_eq!(notify.trim(), "1");
        inside
            .add_default_route(eth0.index, ip("198.18.20.1"))
            .await
            .unwrap();
        // The peer was never in the host namespace.
        assert!(nl.link("eth0").await.unwrap().is_none());
    }

    // Across the bridge, and to the bridge's own address.
    for target in ["198.18.20.3", "198.18.20.1"] {
        let out = sandboxes[0]
            .run("busybox", &["ping", "-c", "1", "-W", "3", target])
            .unwrap_or_else(|e| panic!("ping {target}: {e}"));
        assert!(out.contains("1 packets received"), "{out}");
    }
    let routes = sandboxes[1].run("ip", &["route"]).unwrap();
    assert!(
        routes.contains("default via 198.18.20.1 dev eth0"),
        "{routes}"
    );
    let bridge = nl.link("br-t").await.unwrap().unwrap();
    assert_eq!(bridge.mac.as_deref(), Some(&bridge_mac[..]));
    // The mark is set by the requests that create the links, and read back.
    assert_eq!(bridge.group, 0x8000_0007);
    assert_eq!(bridge.kind.as_deref(), Some("bridge"));
    let vh1 = nl.link("vh1").await.unwrap().unwrap();
    assert_eq!(
        (vh1.group, vh1.kind.as_deref()),
        (0x8000_0007, Some("veth"))
    );
    assert_eq!(nl.link("lo").await.unwrap().unwrap().kind, None);
    let ports: Vec<String> = nl
        .links()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.master == Some(br))
        .map(|l| l.name)
        .collect();
    assert_eq!(ports, ["vh0", "vh1"]);

    // Deleting the host end removes the pair; a second delete finds nothing.
    assert!(nl.delete_by_name("vh0").await.unwrap());
    assert!(!nl.delete_by_name("vh0").await.unwrap());
    let left = sandboxes[0].run("ip", &["-o", "link", "show"]).unwrap();
    assert!(!left.contains("eth0"), "{left}");

    // A refused request says what was asked.
    let err = nl.add_bridge("br-t", None, None, 0).await.unwrap_err();
    assert!(err.to_string().contains("creating bridge br-t"), "{err}");
    assert!(!err.is_not_found());
    let err = Netlink::in_netns(std::path::Path::new("/run/netns/does-not-exist"))
        .await
        .unwrap_err();
    assert!(matches!(err, NetlinkError::OpenNetns { .. }), "{err}");

    // No thread of ours was left in another namespace.
    assert_eq!(thread_namespaces(), before);
}

#[tokio::test]
async fn bridge_port_flags_are_set() {
    let host = tests::TestHost::new().unwrap();
    for args in [
        &["link", "add", "tb0", "type", "bridge"][..],
        &["link", "add", "tp0", "type", "veth", "peer", "name", "tp1"],
        &["link", "set", "tp0", "master", "tb0"],
    ] {
        host.run("ip", args).unwrap();
    }
    let nl = drivers::netlink::Netlink::in_netns(&host.netns_path())
        .await
        .unwrap();
    nl.set_bridge_port("tp0", true, true).await.unwrap();
    let shown = host.run("ip", &["-d", "link", "show", "tp0"]).unwrap();
    assert!(shown.contains("hairpin on"), "{shown}");
    assert!(shown.contains("isolated on"), "{shown}");
}
