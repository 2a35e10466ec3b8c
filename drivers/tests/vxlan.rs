//! VXLAN between two test hosts over a veth underlay, programmed as an overlay
//! does it: a bridge and a VXLAN device per host, neighbour and forwarding
//! entries for the remote endpoint, and the remote host in the flood list. A
//! container on each side pings the other; a stale entry is replaced, not
//! kept; with the entries gone, the other side is unreachable.

use drivers::netlink::{Netlink, VxlanSpec, FLOOD_MAC};
use std::net::IpAddr;
use tests::TestHost;

const GROUP: u32 = 0x4e44_0001;

struct Side {
    host: TestHost,
    container: TestHost,
    vtep: IpAddr,
    mac: [u8; 6],
    ip: IpAddr,
    vxlan: u32,
    nl: Netlink,
}

/// `ip -n HOST args...`.
fn ip(host: &TestHost, args: &[&str]) {
    tool(host, "ip", args);
}

fn tool(host: &TestHost, program: &str, args: &[&str]) {
    host.netns_tool(program, args)
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
}

async fn side(host: TestHost, vtep: &str, n: u8) -> Side {
    let container = TestHost::new().unwrap();
    let nl = Netlink::in_netns(&host.netns_path()).await.unwrap();
    let bridge = nl.add_bridge("ovb", Some(1450), None, GROUP).await.unwrap();
    let vtep: IpAddr = vtep.parse().unwrap();
    let vxlan = nl
        .add_vxlan(&VxlanSpec {
            name: "ovx",
            vni: 4096,
            local: vtep,
            port: 4789,
            mtu: Some(1450),
            mac: Some([0x02, 0x4e, 0, 0, 0, n]),
            group: GROUP,
        })
        .await
        .unwrap();
    nl.set_master(vxlan, bridge).await.unwrap();
    nl.set_up(vxlan).await.unwrap();
    nl.set_up(bridge).await.unwrap();
    let mac = [0x02, 0x42, 0x0a, 0x5a, 0, n];
    let mac_text = drivers::netlink::mac_text(&mac);
    let addr = format!("10.90.0.{n}/24");
    ip(
        &host,
        &[
            "link",
            "add",
            "c0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            container.name(),
        ],
    );
    ip(
        &host,
        &["link", "set", "c0", "master", "ovb", "mtu", "1450", "up"],
    );
    ip(
        &container,
        &[
            "link", "set", "eth0", "address", &mac_text, "mtu", "1450", "up",
        ],
    );
    ip(&container, &["addr", "add", &addr, "dev", "eth0"]);
    Side {
        host,
        container,
        vtep,
        mac,
        ip: format!("10.90.0.{n}").parse().unwrap(),
        vxlan,
        nl,
    }
}

/// Program `on` with `peer`'s endpoint, as an overlay host does.
async fn program(on: &Side, peer: &Side) {
    on.nl
        .replace_neighbour(on.vxlan, peer.ip, peer.mac)
        .await
        .unwrap();
    on.nl
        .replace_fdb(on.vxlan, peer.mac, peer.vtep)
        .await
        .unwrap();
    on.nl.append_flood(on.vxlan, peer.vtep).await.unwrap();
}

fn pings(from: &Side, to: &Side) -> bool {
    from.container
        .command("busybox")
        .args(["ping", "-c1", "-W2", &to.ip.to_string()])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn two_hosts_reach_each_other_over_vxlan_and_stale_entries_are_replaced() {
    let (ha, hb) = (TestHost::new().unwrap(), TestHost::new().unwrap());
    // The underlay: a veth between the two hosts, made directly inside them.
    ip(
        &ha,
        &[
            "link",
            "add",
            "u0",
            "type",
            "veth",
            "peer",
            "name",
            "u0",
            "netns",
            hb.name(),
        ],
    );
    ip(&ha, &["addr", "add", "192.168.77.1/24", "dev", "u0"]);
    ip(&hb, &["addr", "add", "192.168.77.2/24", "dev", "u0"]);
    ip(&ha, &["link", "set", "u0", "up"]);
    ip(&hb, &["link", "set", "u0", "up"]);
    let a = side(ha, "192.168.77.1", 2).await;
    let b = side(hb, "192.168.77.2", 3).await;
    assert!(!pings(&a, &b), "reachable before anything was programmed");

    program(&a, &b).await;
    program(&b, &a).await;
    // Twice is the same (replace, and an append that finds its entry).
    program(&a, &b).await;
    assert!(pings(&a, &b), "A's container cannot reach B's over VXLAN");
    assert!(pings(&b, &a), "B's container cannot reach A's over VXLAN");

    // Learning is off: B's device holds only what was programmed (and its own).
    let fdb = b.nl.fdb(b.vxlan).await.unwrap();
    let remote: Vec<_> = fdb.iter().filter(|e| e.ip.is_some()).collect();
    assert_eq!(remote.len(), 2, "{fdb:?}");
    assert!(remote.iter().all(|e| e.permanent && e.ip == Some(a.vtep)));
    assert!(remote.iter().any(|e| e.mac == FLOOD_MAC) && remote.iter().any(|e| e.mac == a.mac));

    // A stale entry (another VTEP, written by something else) is replaced.
    let mac_b = drivers::netlink::mac_text(&b.mac);
    ip(
        &a.host,
        &[
            "neigh",
            "replace",
            "10.90.0.3",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "ovx",
            "nud",
            "reachable",
        ],
    );
    tool(
        &a.host,
        "bridge",
        &[
            "fdb",
            "replace",
            &mac_b,
            "dev",
            "ovx",
            "dst",
            "192.168.77.9",
            "dynamic",
        ],
    );
    program(&a, &b).await;
    let entry =
        a.nl.fdb(a.vxlan)
            .await
            .unwrap()
            .into_iter()
            .find(|e| e.mac == b.mac)
            .unwrap();
    assert_eq!((entry.ip, entry.permanent), (Some(b.vtep), true));
    let neigh = a.nl.neighbours(a.vxlan).await.unwrap();
    assert!(
        neigh
            .iter()
            .any(|e| e.ip == Some(b.ip) && e.mac == b.mac && e.permanent),
        "{neigh:?}"
    );
    assert!(
        pings(&a, &b),
        "not reachable after the stale entries were replaced"
    );

    // B's endpoint withdrawn on A: unreachable from A.
    a.nl.delete_neighbour(a.vxlan, b.ip).await.unwrap();
    a.nl.delete_fdb(a.vxlan, b.mac, b.vtep).await.unwrap();
    a.nl.delete_fdb(a.vxlan, FLOOD_MAC, b.vtep).await.unwrap();
    // Deleting what is gone is not an error.
    a.nl.delete_neighbour(a.vxlan, b.ip).await.unwrap();
    a.nl.delete_fdb(a.vxlan, b.mac, b.vtep).await.unwrap();
    assert!(!pings(&a, &b), "reachable after its entries were removed");
}
