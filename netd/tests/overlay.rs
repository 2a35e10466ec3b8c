//! Overlay networks across three hosts on one machine: etcd in a host of its
//! own, three netd hosts, and an underlay "switch" host bridging them. Sandboxes
//! on the three hosts ping each other over one overlay; an endpoint removed on
//! one host is gone from the others' tables within a second; an entry deleted
//! by hand comes back; a netd killed with -9 leaves its sandboxes reachable; a
//! host cut off past its lease is dropped by the others and comes back when its
//! link does; etcd going away breaks no connectivity.

mod common;

use common::lab::{
    cluster_netd, ip, ipv4, member, members, overlay, plug, tool, underlay, within, Member, ETCD,
};
use common::{attach, runtime, sandbox};
use std::time::{Duration, Instant};
use tests::{Etcd, TestHost};

#[test]
fn sandboxes_on_three_hosts_share_one_overlay_through_failures() {
    let (switch, etcd_host) = underlay();
    let mut etcd = Etcd::start_on(&etcd_host, ETCD).unwrap();
    let rt = runtime();
    let members = members(&switch, 3);
    let ids: Vec<String> = members
        .iter()
        .map(|m| {
            rt.block_on(m.netd.client.network("ov1"))
                .unwrap()
                .network
                .id
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let addresses: std::collections::BTreeSet<String> =
        members.iter().map(|m| ipv4(&m.ep)).collect();
    assert_eq!(
        addresses.len(),
        3,
        "addresses collide across hosts: {addresses:?}"
    );

    // Everyone reaches everyone over the overlay.
    for a in &members {
        for b in &members {
            if a.sb.name != b.sb.name {
                within(
                    &format!("{} reaches {}", a.sb.name, b.sb.name),
                    Duration::from_secs(10),
                    || a.netd.pings(&a.sb, &ipv4(&b.ep)),
                );
            }
        }
    }
    // `netd cluster status`: three members, three blocks and three peers, and
    // this host's kernel matching them.
    within(
        "the kernel matches etcd in `netd cluster status`",
        Duration::from_secs(8),
        || {
            let Ok(text) = members[0]
                .netd
                .cli(&["cluster", "status", "--format", "json"])
            else {
                return false;
            };
            let status: serde_json::Value = serde_json::from_str(&text).unwrap();
            let ov1 = status["networks"]
                .as_array()
                .and_then(|n| n.iter().find(|n| n["name"] == "ov1"))
                .cloned()
                .unwrap_or_default();
            status["hosts"].as_array().map(Vec::len) == Some(3)
                && status["joined"] == true
                && ov1["blocks"].as_array().map(Vec::len) == Some(3)
                && ov1["peers"].as_array().map(Vec::len) == Some(3)
                && ov1["kernel"] == serde_json::json!({"missing": 0, "extra": 0})
        },
    );
    let table = members[0].netd.cli(&["cluster", "status"]).unwrap();
    assert!(
        table.contains("ov1") && table.contains("matches"),
        "{table}"
    );
    // The same name with another subnet is refused, naming the difference.
    let err = rt
        .block_on(
            members[2]
                .netd
                .client
                .create_network(&overlay("ov1", "10.91.0.0/24")),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("subnet 10.91.0.0/24 (it has 10.90.0.0/24)"),
        "{err}"
    );

    let vx = format!("vx-{}", &ids[0][..12]);
    let (b, c) = (&members[1], &members[2]);
    let mac_c = c.ep.mac.clone();
    // The VXLAN device's own entries (with a VTEP), not the bridge's learned ones.
    let fdb_has = |on: &Member, mac: &str| {
        tool(&on.netd.host, "bridge", &["fdb", "show", "dev", &vx])
            .lines()
            .any(|l| l.starts_with(mac) && l.contains(" dst "))
    };
    assert!(fdb_has(b, &mac_c));
    // An entry deleted by hand comes back within the full comparison's period.
    tool(
        &b.netd.host,
        "bridge",
        &["fdb", "del", &mac_c, "dev", &vx, "dst", "192.168.60.3"],
    );
    assert!(!fdb_has(b, &mac_c));
    within(
        "a deleted forwarding entry comes back",
        Duration::from_secs(8),
        || fdb_has(b, &mac_c),
    );

    // netd on A killed: its sandbox stays reachable; back, nothing changes.
    let mut members = members;
    members[0].netd.kill_9();
    assert!(members[1].netd.pings(&members[1].sb, &ipv4(&members[0].ep)));
    members[0].netd.launch();
    within(
        "A reachable after netd's restart",
        Duration::from_secs(10),
        || members[1].netd.pings(&members[1].sb, &ipv4(&members[0].ep)),
    );

    // etcd away: connectivity holds; a global change fails with a clear error.
    etcd.stop().unwrap();
    let (a, b) = (&members[0], &members[1]);
    assert!(
        a.netd.pings(&a.sb, &ipv4(&b.ep)),
        "etcd's absence broke connectivity"
    );
    let err = rt
        .block_on(
            a.netd
                .client
                .create_network(&overlay("ov2", "10.92.0.0/24")),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("unreachable"), "{err}");
    etcd.launch().unwrap();
    within(
        "a global change goes through once etcd is back",
        Duration::from_secs(20),
        || {
            rt.block_on(
                a.netd
                    .client
                    .create_network(&overlay("ov2", "10.92.0.0/24")),
            )
            .is_ok()
        },
    );

    // An endpoint removed on C: gone from B's tables within a second.
    let c = &members[2];
    let start = Instant::now();
    rt.block_on(c.netd.client.delete_sandbox(&c.sb.name))
        .unwrap();
    let took = within(
        "C's endpoint gone from B's forwarding table",
        Duration::from_secs(1),
        || !fdb_has(&members[1], &mac_c),
    );
    let neigh = ip(&members[1].netd.host, &["neigh", "show", "dev", &vx]);
    assert!(!neigh.contains(&ipv4(&c.ep)), "{neigh}");
    assert!(!members[1].netd.pings(&members[1].sb, &ipv4(&c.ep)));
    eprintln!(
        "withdrawn on B {took:?} after the delete ({:?} in all)",
        start.elapsed()
    );
    // C deletes the network: its VXLAN device goes and its block returns; the
    // network stays in the cluster for A and B.
    rt.block_on(c.netd.client.delete_network("ov1")).unwrap();
    assert!(!c.netd.links().contains(&vx), "{:?}", c.netd.links());
    let status: serde_json::Value = serde_json::from_str(
        &members[0]
            .netd
            .cli(&["cluster", "status", "--format", "json"])
            .unwrap(),
    )
    .unwrap();
    let ov1 = status["networks"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "ov1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ov1["blocks"].as_array().map(Vec::len), Some(2), "{status}");

    // A cut off past its lease: B drops A's endpoint, and A's watch lag
    // grows past the progress period; A back: B has it again, and A's watch
    // is current again.
    let lag = |m: &Member| -> f64 {
        let text = rt.block_on(m.netd.client.metrics()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("netd_overlay_watch_lag_seconds "))
            .unwrap_or_else(|| panic!("no watch lag in {text}"))
            .parse()
            .unwrap()
    };
    within("A's watch is current", Duration::from_secs(15), || {
        lag(&members[0]) < 6.0
    });
    ip(&switch, &["link", "set", "p1", "down"]);
    let mac_a = members[0].ep.mac.clone();
    within(
        "B drops a host cut off past its lease",
        Duration::from_secs(15),
        || !fdb_has(&members[1], &mac_a),
    );
    within(
        "A's watch lag grows while cut off",
        Duration::from_secs(15),
        || lag(&members[0]) > 6.0,
    );
    ip(&switch, &["link", "set", "p1", "up"]);
    let start = Instant::now();
    while !members[1].netd.pings(&members[1].sb, &ipv4(&members[0].ep)) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "A rejoins and B reaches it again: not within 20 s; A's log:\n{}",
            members[0].netd.log()
        );
    }
    within(
        "A's watch is current again",
        Duration::from_secs(20),
        || lag(&members[0]) < 6.0,
    );
    drop(etcd);
}

/// Whether a UDP datagram `send` sends to `to`'s sandbox arrives there
/// (python3, which Debian's docker-compose brings: busybox's nc has no UDP).
fn datagram_arrives(to: &Member, send: impl FnOnce(&str)) -> bool {
    let net = format!("--net={}", to.sb.netns.display());
    let listener = to
        .netd
        .host
        .command("nsenter")
        .args([net.as_str(), "python3", "-c"])
        .arg(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0', 9999))\n\
             s.settimeout(2)\n\
             try:\n    print(s.recv(100).decode())\nexcept OSError:\n    pass\n",
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    send(&ipv4(&to.ep));
    let out = listener.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("injected")
}

#[test]
fn vxlan_from_a_host_outside_the_cluster_reaches_no_container() {
    let (switch, etcd_host) = underlay();
    let _etcd = Etcd::start_on(&etcd_host, ETCD).unwrap();
    let members = members(&switch, 2);
    let (a, b) = (&members[0], &members[1]);
    within("A reaches B", Duration::from_secs(10), || {
        a.netd.pings(&a.sb, &ipv4(&b.ep))
    });
    let vni = runtime()
        .block_on(b.netd.client.network("ov1"))
        .unwrap()
        .network
        .options["com.netd.overlay.vni"]
        .clone();

    // An attacker on the underlay makes its own VXLAN device with the
    // overlay's VNI, pointed at B, and sends a datagram to B's sandbox.
    let attacker = TestHost::new().unwrap();
    plug(&switch, &attacker, "px", "192.168.60.99");
    ip(
        &attacker,
        &[
            "link",
            "add",
            "evil",
            "type",
            "vxlan",
            "id",
            &vni,
            "local",
            "192.168.60.99",
            "dstport",
            "4789",
            "nolearning",
        ],
    );
    ip(&attacker, &["addr", "add", "10.90.0.250/24", "dev", "evil"]);
    ip(&attacker, &["link", "set", "evil", "up"]);
    ip(
        &attacker,
        &[
            "neigh",
            "replace",
            &ipv4(&b.ep),
            "lladdr",
            &b.ep.mac,
            "dev",
            "evil",
            "nud",
            "permanent",
        ],
    );
    tool(
        &attacker,
        "bridge",
        &[
            "fdb",
            "replace",
            &b.ep.mac,
            "dev",
            "evil",
            "dst",
            "192.168.60.2",
        ],
    );
    let inject = |target: &str| {
        let out = attacker
            .command("python3")
            .arg("-c")
            .arg(format!(
                "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'injected', ('{target}', 9999))"
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Control: with the attacker let in by hand, the datagram gets through.
    let element = ["inet", "netd", "vxlan_peers4", "{ 192.168.60.99 }"];
    let nft = |args: &[&str]| {
        let mut all = vec!["netns", "exec", b.netd.host.name(), "nft"];
        all.extend(args);
        std::process::Command::new("ip")
            .args(&all)
            .output()
            .unwrap()
    };
    // (netd's check puts its own table back within a second or so, which may
    // take the hand-made element away before the datagram comes: a few tries.)
    let let_in = (0..5).any(|_| {
        let out = nft(&[&["add", "element"][..], &element].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        datagram_arrives(b, inject)
    });
    assert!(
        let_in,
        "the control failed: the datagram does not arrive even with the sender let in"
    );
    // netd's own check may have put its table back already (it counts
    // elements): either way the attacker must be out of the set now.
    let _ = nft(&[&["delete", "element"][..], &element].concat());
    let set = nft(&["list", "set", "inet", "netd", "vxlan_peers4"]);
    assert!(
        !String::from_utf8_lossy(&set.stdout).contains("192.168.60.99"),
        "{}",
        String::from_utf8_lossy(&set.stdout)
    );
    assert!(
        !datagram_arrives(b, inject),
        "VXLAN from outside the cluster reached a container"
    );
    // The cluster's own traffic still flows.
    assert!(a.netd.pings(&a.sb, &ipv4(&b.ep)));
}

#[test]
fn a_netd_started_while_etcd_is_away_serves_and_joins_when_it_is_back() {
    let (switch, etcd_host) = underlay();
    let host = TestHost::new().unwrap();
    plug(&switch, &host, "p1", "192.168.60.1");
    // etcd is not running yet: netd still starts (after trying for 5 s).
    let store = format!("etcd://{ETCD}:2379");
    let netd = common::Netd::start_on(
        host,
        false,
        &[
            "--cluster-store",
            &store,
            "--advertise-addr",
            "192.168.60.1",
        ],
    );
    let rt = runtime();
    let err = rt
        .block_on(netd.client.create_network(&overlay("ov1", "10.90.0.0/24")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unreachable"), "{err}");
    // Local networks work meanwhile.
    rt.block_on(
        netd.client
            .create_network(&common::network("local1", "10.95.0.0/24")),
    )
    .unwrap();
    let _etcd = Etcd::start_on(&etcd_host, ETCD).unwrap();
    within(
        "the overlay is made once etcd is up",
        Duration::from_secs(20),
        || {
            rt.block_on(netd.client.create_network(&overlay("ov1", "10.90.0.0/24")))
                .is_ok()
        },
    );
    within("netd joined", Duration::from_secs(10), || {
        netd.cli(&["cluster", "status", "--format", "json"])
            .is_ok_and(|t| t.contains("\"joined\": true") || t.contains("\"joined\":true"))
    });
}

#[test]
fn a_block_and_a_peer_left_by_a_killed_netd_are_given_back_at_its_restart() {
    let (switch, etcd_host) = underlay();
    let etcd = Etcd::start_on(&etcd_host, ETCD).unwrap();
    let mut lab = members(&switch, 1);
    let a = &mut lab[0];
    let rt = runtime();
    let status: serde_json::Value = serde_json::from_str(
        &a.netd
            .cli(&["cluster", "status", "--format", "json"])
            .unwrap(),
    )
    .unwrap();
    let host = status["host"].as_str().unwrap().to_string();
    let id = status["networks"][0]["id"].as_str().unwrap().to_string();
    let lease: i64 = std::fs::read_to_string(a.netd.host.dir().join("state/cluster.lease"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // What a kill between a claim and its commit (or between a delete's commit
    // and its withdrawal) leaves: a block and a peer under A's lease that no
    // record of A accounts for.
    let lease_hex = format!("{lease:x}");
    let block_key = format!("/netd/v1/blocks/{id}/10.90.0.240_28");
    let peer_key = format!("/netd/v1/peers/{id}/10.90.0.200");
    etcd.ctl(&[
        "put",
        &block_key,
        &format!(r#"{{"block":"10.90.0.240/28","host":"{host}"}}"#),
        "--lease",
        &lease_hex,
    ])
    .unwrap();
    etcd.ctl(&[
        "put",
        &peer_key,
        &format!(
            r#"{{"ip":"10.90.0.200","mac":"02:42:0a:5a:00:c8","host":"{host}","vtep":"192.168.60.1"}}"#
        ),
        "--lease",
        &lease_hex,
    ])
    .unwrap();
    a.netd.kill_9();
    a.netd.launch();
    for key in [&block_key, &peer_key] {
        let left = etcd.ctl(&["get", key, "--print-value-only"]).unwrap();
        assert!(left.trim().is_empty(), "{key} was not given back: {left}");
    }
    // What A's records hold stays: its block and its endpoint.
    let blocks = etcd
        .ctl(&[
            "get",
            &format!("/netd/v1/blocks/{id}/"),
            "--prefix",
            "--keys-only",
        ])
        .unwrap();
    assert_eq!(
        blocks.lines().filter(|l| !l.is_empty()).count(),
        1,
        "{blocks}"
    );
    let peers = etcd
        .ctl(&[
            "get",
            &format!("/netd/v1/peers/{id}/"),
            "--prefix",
            "--keys-only",
        ])
        .unwrap();
    assert!(peers.contains(&ipv4(&a.ep)), "{peers}");
    drop(rt);
}

/// The keys of etcd's address blocks of network `id`, one per line.
fn block_keys(etcd: &Etcd, id: &str) -> Vec<String> {
    etcd.ctl(&[
        "get",
        &format!("/netd/v1/blocks/{id}/"),
        "--prefix",
        "--keys-only",
    ])
    .unwrap()
    .lines()
    .filter(|l| !l.is_empty())
    .map(str::to_string)
    .collect()
}

#[test]
fn a_host_whose_block_is_full_claims_another_and_keeps_it_across_a_kill() {
    let (switch, etcd_host) = underlay();
    let etcd = Etcd::start_on(&etcd_host, ETCD).unwrap();
    let mut lab = members(&switch, 2);
    let rt = runtime();
    let c = lab[0].netd.client.clone();
    let net = rt.block_on(c.network("ov1")).unwrap();
    let id = net.network.options["com.netd.overlay.id"].clone();
    let first: ipnet::IpNet = net.network.subnets[0].ip_range.unwrap();
    // Fill A's first block: all but the subnet's own network, broadcast and
    // gateway addresses, less the one its sandbox's endpoint holds.
    let subnet = net.network.subnets[0].subnet;
    let gateway = net.network.subnets[0].gateway.unwrap();
    let ipnet::IpNet::V4(b) = first else {
        panic!("{first}")
    };
    let free = (u32::from(b.network())..=u32::from(b.broadcast()))
        .map(|n| std::net::IpAddr::from(std::net::Ipv4Addr::from(n)))
        .filter(|a| *a != subnet.network() && *a != subnet.broadcast() && *a != gateway)
        .count()
        - 1;
    rt.block_on(async {
        for n in 0..free {
            let ep = c
                .create_endpoint(&netd::controller::EndpointCreate {
                    network: "ov1".into(),
                    name: Some(format!("fill{n}")),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(first.contains(&ep.addresses[0].addr()), "{ep:?}");
        }
    });
    assert_eq!(block_keys(&etcd, &id).len(), 2, "one block per host so far");
    // The next address comes from a second block of A's, and B reaches it.
    let sb = rt.block_on(c.create_sandbox(&sandbox("more"))).unwrap();
    let ep = rt.block_on(c.attach(&sb.name, &attach("ov1"))).unwrap();
    let addr = ep.addresses[0].addr();
    assert!(
        !first.contains(&addr),
        "{addr} is in the full block {first}"
    );
    let b_block = rt
        .block_on(lab[1].netd.client.network("ov1"))
        .unwrap()
        .network
        .subnets[0]
        .ip_range
        .unwrap();
    assert!(!b_block.contains(&addr), "{addr} is in B's block {b_block}");
    assert_eq!(block_keys(&etcd, &id).len(), 3);
    let more = rt.block_on(c.network("ov1")).unwrap().network.subnets[0]
        .more_blocks
        .clone();
    assert!(more.len() == 1 && more[0].contains(&addr), "{more:?}");
    within(
        "B reaches the second block's endpoint",
        Duration::from_secs(5),
        || lab[1].netd.pings(&lab[1].sb, &addr.to_string()),
    );
    // Killed and started again, A keeps both blocks (tidy gives back only
    // what no record holds) and hands out of the second.
    lab[0].netd.kill_9();
    lab[0].netd.launch();
    // (Under a 3 s lease a slow restart may let it lapse: A claims its blocks
    // again once joined.)
    within(
        "A holds its two blocks again",
        Duration::from_secs(10),
        || block_keys(&etcd, &id).len() == 3,
    );
    let c = lab[0].netd.client.clone();
    let next = rt.block_on(c.create_sandbox(&sandbox("next"))).unwrap();
    let next = rt.block_on(c.attach(&next.name, &attach("ov1"))).unwrap();
    assert!(more[0].contains(&next.addresses[0].addr()), "{next:?}");
    // A fixed address in B's block is refused; one in A's second block is not.
    let refused = rt.block_on(c.create_endpoint(&netd::controller::EndpointCreate {
        network: "ov1".into(),
        ip: Some(b_block.hosts().nth(5).unwrap()),
        ..Default::default()
    }));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("its blocks only")),
        "{refused:?}"
    );
    let fixed = more[0].hosts().last().unwrap();
    rt.block_on(c.create_endpoint(&netd::controller::EndpointCreate {
        network: "ov1".into(),
        ip: Some(fixed),
        ..Default::default()
    }))
    .unwrap();
    // A leaves the network: both of its blocks go back; B's stays.
    rt.block_on(async {
        for sb in [&lab[0].sb.name, "more", "next"] {
            c.delete_sandbox(sb).await.unwrap();
        }
        for ep in c.endpoints().await.unwrap() {
            c.delete_endpoint(&ep.id).await.unwrap();
        }
        c.delete_network("ov1").await.unwrap();
    });
    let left = block_keys(&etcd, &id);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].ends_with(&b_block.to_string().replace('/', "_")),
        "{left:?}"
    );
    drop(rt);
}

#[test]
fn two_overlays_with_the_same_subnet_stay_apart() {
    let (switch, etcd_host) = underlay();
    let etcd = Etcd::start_on(&etcd_host, ETCD).unwrap();
    let lab: Vec<Member> = [(1, "ov1"), (2, "ov1"), (3, "ov2"), (4, "ov2")]
        .into_iter()
        .map(|(n, net)| member(&switch, n, net))
        .collect();
    let [a, b, c, d] = &lab[..] else {
        unreachable!()
    };
    let rt = runtime();
    let vni = |m: &Member, net: &str| {
        rt.block_on(m.netd.client.network(net))
            .unwrap()
            .network
            .options["com.netd.overlay.vni"]
            .clone()
    };
    assert_ne!(vni(a, "ov1"), vni(c, "ov2"));
    // One subnet, two networks: B and D hold the same address, each serving
    // a page of its own.
    assert_eq!(ipv4(&b.ep), ipv4(&d.ep));
    let _b_web = b.netd.serve_http(&b.sb, "network-one");
    let _d_web = d.netd.serve_http(&d.sb, "network-two");
    let url = format!("http://{}/", ipv4(&b.ep));
    within("A fetches B's page", Duration::from_secs(10), || {
        a.netd.sandbox_fetches(&a.sb, &url, "network-one")
    });
    within("C fetches D's page", Duration::from_secs(10), || {
        c.netd.sandbox_fetches(&c.sb, &url, "network-two")
    });
    for _ in 0..3 {
        assert!(!a.netd.sandbox_fetches(&a.sb, &url, "network-two"));
        assert!(!c.netd.sandbox_fetches(&c.sb, &url, "network-one"));
    }
    // One host cannot have both (both bridges would route the subnet): refused,
    // naming the network that has it, before anything is written to etcd (its
    // revision stays: a claim given back would have moved it twice).
    let revision = || -> u64 {
        let status = etcd.ctl(&["endpoint", "status", "-w", "json"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        v[0]["Status"]["header"]["revision"].as_u64().unwrap()
    };
    let before = revision();
    let refused = rt.block_on(
        a.netd
            .client
            .create_network(&common::lab::overlay("ov2", "10.90.0.0/24")),
    );
    let message = refused
        .as_ref()
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(
        message.contains("overlaps network ov1 on this host"),
        "{refused:?}"
    );
    assert_eq!(revision(), before, "the refused request wrote to etcd");
    let ov2 = rt
        .block_on(c.netd.client.network("ov2"))
        .unwrap()
        .network
        .options["com.netd.overlay.id"]
        .clone();
    assert_eq!(
        block_keys(&etcd, &ov2).len(),
        2,
        "A's claim was not given back"
    );
    drop(rt);
}

#[test]
fn hosts_with_other_underlay_mtus_agree_on_the_overlay_mtu() {
    let (switch, etcd_host) = underlay();
    let etcd = Etcd::start_on(&etcd_host, ETCD).unwrap();
    // A (underlay MTU 1500) makes the network: MTU 1500 - 50.
    let a = member(&switch, 1, "ov1");
    let jumbo = cluster_netd(&switch, 2, 9000);
    let small = cluster_netd(&switch, 3, 1400);
    let rt = runtime();
    // A jumbo host takes the network's MTU, not its own 8950: its containers
    // would otherwise send A's packets A's links cannot carry.
    let net = rt
        .block_on(jumbo.client.create_network(&overlay("ov1", "10.90.0.0/24")))
        .unwrap();
    assert_eq!(net.options["com.docker.network.driver.mtu"], "1450");
    let sb = rt
        .block_on(jumbo.client.create_sandbox(&sandbox("j")))
        .unwrap();
    rt.block_on(jumbo.client.attach(&sb.name, &attach("ov1")))
        .unwrap();
    let link = jumbo.in_sandbox(&sb, &["ip", "link", "show", "eth0"]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains(" mtu 1450 "), "{link}");
    within("the jumbo host reaches A", Duration::from_secs(5), || {
        jumbo.pings(&sb, &ipv4(&a.ep))
    });
    // A host whose underlay cannot carry it is refused, saying so, and
    // claims nothing.
    let refused = rt.block_on(small.client.create_network(&overlay("ov1", "10.90.0.0/24")));
    let message = refused
        .as_ref()
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(
        message.contains("MTU 1450") && message.contains("1350 at most"),
        "{refused:?}"
    );
    let id = net.options["com.netd.overlay.id"].clone();
    assert_eq!(block_keys(&etcd, &id).len(), 2);
    // Its link raised (and the switch's port), the same request works, with no
    // restart of netd.
    for (h, link) in [(&switch, "p3"), (&small.host, "u0")] {
        ip(h, &["link", "set", link, "mtu", "1500"]);
    }
    rt.block_on(small.client.create_network(&overlay("ov1", "10.90.0.0/24")))
        .unwrap();
    // A network a jumbo host makes gets Docker's 1450, not 8950: hosts with
    // ordinary links can join it.
    let made = rt
        .block_on(jumbo.client.create_network(&overlay("ov2", "10.91.0.0/24")))
        .unwrap();
    assert_eq!(made.options["com.docker.network.driver.mtu"], "1450");
    rt.block_on(
        a.netd
            .client
            .create_network(&overlay("ov2", "10.91.0.0/24")),
    )
    .unwrap();
    drop(rt);
}

#[test]
fn at_boot_vxlan_is_closed_before_the_firewall_starts() {
    // At boot netd's reconcile brings overlay VXLAN devices up before the
    // firewall's table is loaded; a table with the VXLAN filter alone, hearing
    // no one, is loaded first. A restart (table there) keeps the full table.
    let h = TestHost::new().unwrap();
    let filter = firewall::VxlanFilter {
        ports: vec![4789],
        locals: vec!["192.168.60.1".parse().unwrap()],
        peers: vec!["192.168.60.2".parse().unwrap()],
    };
    let loaded = h
        .block_on_inside(|| async {
            let boot = firewall::Firewall::close_vxlan_until_start(&filter).await;
            let again = firewall::Firewall::close_vxlan_until_start(&filter).await;
            (boot.unwrap(), again.unwrap())
        })
        .unwrap();
    assert_eq!(loaded, (true, false));
    let table = h.run("nft", &["list", "table", "inet", "netd"]).unwrap();
    let set = |name: &str| -> String {
        let at = table
            .find(&format!("set {name} "))
            .unwrap_or_else(|| panic!("{table}"));
        table[at..].split('}').next().unwrap().to_string()
    };
    assert!(set("vxlan_ports").contains("4789"), "{table}");
    assert!(set("vxlan_local4").contains("192.168.60.1"), "{table}");
    assert!(
        !set("vxlan_peers4").contains("elements"),
        "a peer is heard before start: {table}"
    );
    assert!(table.contains("@vxlan_peers4 drop"), "{table}");
}

#[test]
fn cluster_flags_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    for (args, words) in [
        (
            vec![
                "--cluster-store",
                "consul://h:1",
                "--advertise-addr",
                "10.0.0.1",
            ],
            "expected etcd://HOST:PORT",
        ),
        (
            vec![
                "--cluster-store",
                "etcd://h",
                "--advertise-addr",
                "10.0.0.1",
            ],
            "not HOST:PORT",
        ),
        (
            vec!["--cluster-store", "etcd://h:2379"],
            "needs --advertise-addr",
        ),
        (vec!["--advertise-addr", "10.0.0.1"], "need --cluster-store"),
        (
            vec![
                "--cluster-store",
                "etcd://h:2379",
                "--advertise-addr",
                "127.0.0.1",
            ],
            "not a loopback",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netd"))
            .args([
                "--socket",
                &dir.path().join("s.sock").display().to_string(),
                "daemon",
            ])
            .args(["--no-docker", "--state-dir", &state])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(words),
            "{args:?}: {err}"
        );
    }
    assert!(
        !dir.path().join("state").exists(),
        "a refused start made its state dir"
    );
}
