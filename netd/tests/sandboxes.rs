//! netd end to end in a test host: sandboxes on networks reach each other and
//! nothing else, with the addresses, names and files a runtime expects.

mod common;

use common::{all_at_once, attach, ipv4, network, runtime, sandbox, Netd};
use netd::controller::{Attach, SandboxCreate};

#[test]
fn sandboxes_on_a_network_reach_each_other_and_not_other_networks() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    rt.block_on(async {
        c.create_network(&network("n1", "10.70.1.0/24"))
            .await
            .unwrap();
        c.create_network(&network("n2", "10.70.2.0/24"))
            .await
            .unwrap();
        let a = c.create_sandbox(&sandbox("a")).await.unwrap();
        let b = c.create_sandbox(&sandbox("b")).await.unwrap();
        let x = c.create_sandbox(&sandbox("x")).await.unwrap();
        let ea = c.attach("a", &attach("n1")).await.unwrap();
        let eb = c.attach("b", &attach("n1")).await.unwrap();
        let ex = c.attach("x", &attach("n2")).await.unwrap();
        assert_eq!(ea.join.as_ref().unwrap().interface, "eth0");
        assert!(ipv4(&ea).starts_with("10.70.1."), "{ea:?}");

        // Same network: both ways, and the gateway (the bridge) answers too.
        assert!(netd.pings(&a, &ipv4(&eb)), "a cannot reach b");
        assert!(netd.pings(&b, &ipv4(&ea)), "b cannot reach a");
        assert!(netd.pings(&a, "10.70.1.1"), "a cannot reach its gateway");
        // Other network: no way through.
        assert!(
            !netd.pings(&a, &ipv4(&ex)),
            "a reaches x on another network"
        );
        assert!(
            !netd.pings(&x, &ipv4(&ea)),
            "x reaches a on another network"
        );

        // The interface inside has the endpoint's address and MAC, and a default
        // route through the gateway.
        let shown = netd.in_sandbox(&a, &["ip", "-o", "addr", "show", "eth0"]);
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(
            shown.contains(&format!("inet {}", ea.addresses[0])),
            "{shown}"
        );
        let link = netd.in_sandbox(&a, &["ip", "-o", "link", "show", "eth0"]);
        assert!(
            String::from_utf8_lossy(&link.stdout).contains(&ea.mac),
            "{link:?}"
        );
        let routes = netd.in_sandbox(&a, &["ip", "route"]);
        assert!(
            String::from_utf8_lossy(&routes.stdout).contains("default via 10.70.1.1 dev eth0"),
            "{routes:?}"
        );

        // A second network joins as eth1; hosts lists both addresses.
        let a2 = c.attach("a", &attach("n2")).await.unwrap();
        assert_eq!(a2.join.as_ref().unwrap().interface, "eth1");
        assert!(netd.pings(&a, &ipv4(&ex)), "a on n2 cannot reach x");
        let hosts = std::fs::read_to_string(&a.hosts).unwrap();
        assert!(hosts.contains(&format!("{}\ta", ipv4(&ea))), "{hosts}");
        assert!(hosts.contains(&format!("{}\ta", ipv4(&a2))), "{hosts}");
        let resolv = std::fs::read_to_string(&a.resolv_conf).unwrap();
        assert!(resolv.contains("nameserver "), "{resolv}");

        // Detach frees eth0; the next attach takes it again.
        c.detach("a", &ea.id).await.unwrap();
        let again = c.attach("a", &attach("n1")).await.unwrap();
        assert_eq!(again.join.as_ref().unwrap().interface, "eth0");

        for sb in ["a", "b", "x"] {
            c.delete_sandbox(sb).await.unwrap();
        }
        c.delete_network("n1").await.unwrap();
        c.delete_network("n2").await.unwrap();
    });
    assert_eq!(netd.links(), vec!["lo".to_string()], "links left behind");
    assert!(netd.netns_files().is_empty(), "{:?}", netd.netns_files());
}

#[test]
fn a_new_sandbox_has_loopback_up_before_any_join() {
    let netd = Netd::start();
    let rt = runtime();
    let sb = rt.block_on(async {
        netd.client
            .create_sandbox(&sandbox("lonely"))
            .await
            .unwrap()
    });
    // As `docker run --network none`: no interface but lo, and lo works.
    let links = netd.in_sandbox(&sb, &["ip", "-o", "link", "show", "up"]);
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(links.contains(" lo: "), "lo is not up: {links}");
    assert!(netd.pings(&sb, "127.0.0.1"), "127.0.0.1 does not answer");
    rt.block_on(async { netd.client.delete_sandbox("lonely").await.unwrap() });
    assert!(netd.netns_files().is_empty(), "{:?}", netd.netns_files());
}

#[test]
fn static_ip_and_mac_and_an_adopted_namespace() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    // A namespace made by someone else (a runtime's container process).
    let (mut holder, netns) = netd.foreign_netns("holder");
    rt.block_on(async {
        c.create_network(&network("n1", "10.71.0.0/24"))
            .await
            .unwrap();
        let adopted = c
            .create_sandbox(&SandboxCreate {
                name: Some("adopted".into()),
                netns: Some(netns.clone().into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(!adopted.owned);
        let ep = c
            .attach(
                "adopted",
                &Attach {
                    network: "n1".into(),
                    ip: Some("10.71.0.50".parse().unwrap()),
                    mac: Some("02:aa:bb:cc:dd:ee".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(ep.addresses[0].to_string(), "10.71.0.50/24");
        assert_eq!(ep.mac, "02:aa:bb:cc:dd:ee");
        // What the container sees, through its own process's namespace.
        let out = netd
            .host
            .run(
                "nsenter",
                &[
                    &format!("--net={netns}"),
                    "ip",
                    "-o",
                    "addr",
                    "show",
                    "eth0",
                ],
            )
            .unwrap();
        assert!(out.contains("inet 10.71.0.50/24"), "{out}");
        let out = netd
            .host
            .run(
                "nsenter",
                &[
                    &format!("--net={netns}"),
                    "ip",
                    "-o",
                    "link",
                    "show",
                    "eth0",
                ],
            )
            .unwrap();
        assert!(out.contains("02:aa:bb:cc:dd:ee"), "{out}");

        // The same address again is refused, and leaves nothing behind.
        let b = c.create_sandbox(&sandbox("b")).await.unwrap();
        let links_before = netd.links();
        let err = c
            .attach(
                "b",
                &Attach {
                    network: "n1".into(),
                    ip: Some("10.71.0.50".parse().unwrap()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("10.71.0.50 is already allocated"),
            "{err}"
        );
        assert_eq!(netd.links(), links_before);
        assert_eq!(c.endpoints().await.unwrap().len(), 1);
        assert!(c.sandbox("b").await.unwrap().endpoints.is_empty());
        // Reachable from another sandbox at the fixed address.
        c.attach("b", &attach("n1")).await.unwrap();
        assert!(netd.pings(&b, "10.71.0.50"));

        // Deleting the adopted sandbox leaves the namespace to its owner.
        c.delete_sandbox("adopted").await.unwrap();
        assert!(std::path::Path::new(&netns).exists());
        let out = netd
            .host
            .run("nsenter", &[&format!("--net={netns}"), "ip", "-o", "link"])
            .unwrap();
        assert!(!out.contains("eth0"), "{out}");
    });
    holder.stop(std::time::Duration::from_secs(1));
}

#[test]
fn a_network_with_endpoints_cannot_be_deleted_and_the_error_names_them() {
    let netd = Netd::start();
    netd.cli(&["network", "create", "n1", "--subnet", "10.72.0.0/24"])
        .unwrap();
    netd.cli(&["endpoint", "create", "n1", "--name", "web"])
        .unwrap();
    netd.cli(&["endpoint", "create", "n1", "--name", "db"])
        .unwrap();
    let err = netd.cli(&["network", "rm", "n1"]).unwrap_err();
    assert!(err.contains("network n1 has 2 endpoint(s)"), "{err}");
    assert!(err.contains("web (") && err.contains("db ("), "{err}");
    let ls = netd.cli(&["network", "ls"]).unwrap();
    assert!(ls.contains("n1") && ls.contains("10.72.0.0/24"), "{ls}");
    netd.cli(&["endpoint", "rm", "web", "db"]).unwrap();
    assert_eq!(netd.cli(&["network", "rm", "n1"]).unwrap().trim(), "n1");
    let json = netd.cli(&["network", "ls", "--format", "json"]).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn a_hundred_parallel_attaches_to_one_network_get_unique_addresses() {
    let netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    let eps = rt.block_on(async {
        c.create_network(&network("n1", "10.73.0.0/24"))
            .await
            .unwrap();
        let mut sandboxes = Vec::new();
        for i in 0..100 {
            let sb = c.create_sandbox(&sandbox(&format!("s{i}"))).await.unwrap();
            sandboxes.push(sb);
        }
        all_at_once((0..100).map(|i| {
            let c = c.clone();
            async move { c.attach(&format!("s{i}"), &attach("n1")).await.unwrap() }
        }))
        .await
    });
    let mut addrs: Vec<String> = eps.iter().map(ipv4).collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 100, "addresses are not unique");
    let veths = netd.links().iter().filter(|l| l.starts_with("vn")).count();
    assert_eq!(veths, 100);
    // The kernel agrees with the store: each sandbox has its address on eth0.
    let sb = rt.block_on(c.sandbox("s42")).unwrap();
    let ep = eps
        .iter()
        .find(|e| e.join.as_ref().unwrap().sandbox.as_deref() == Some(sb.id.as_str()))
        .unwrap();
    let out = netd.in_sandbox(&sb, &["ip", "-o", "addr", "show", "eth0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&ep.addresses[0].to_string()));

    // And 100 detaches at once (their veth deletions overlap in the kernel).
    rt.block_on(async {
        all_at_once(eps.iter().map(|ep| {
            let c = c.clone();
            let sb = ep.join.as_ref().unwrap().sandbox.clone().unwrap();
            let id = ep.id.clone();
            async move { c.detach(&sb, &id).await.unwrap() }
        }))
        .await;
    });
    let left: Vec<String> = netd
        .links()
        .into_iter()
        .filter(|l| l.starts_with("vn"))
        .collect();
    assert!(left.is_empty(), "veths left: {left:?}");
    let out = netd.in_sandbox(&sb, &["ip", "-o", "link", "show"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("eth0"));
    let inspect = rt.block_on(c.network("n1")).unwrap();
    assert!(inspect.endpoints.is_empty(), "{:?}", inspect.endpoints);
}

/// A bridge someone else made in place of netd's (same name, new index) gets no
/// ports from netd: the attach is refused with what to do.
#[test]
fn an_attach_refuses_a_bridge_that_replaced_netds() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    let (net, first) = rt.block_on(async {
        let net = c
            .create_network(&network("n1", "10.79.0.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("a")).await.unwrap();
        c.create_sandbox(&sandbox("b")).await.unwrap();
        let first = c.attach("a", &attach("n1")).await.unwrap();
        (net, first)
    });
    let bridge = format!("br-{}", &net.id[..12]);
    netd.host.run("ip", &["link", "del", &bridge]).unwrap();
    netd.host
        .run("ip", &["link", "add", &bridge, "type", "bridge"])
        .unwrap();
    netd.host
        .run("ip", &["link", "set", &bridge, "up"])
        .unwrap();
    let err = rt
        .block_on(c.attach("b", &attach("n1")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("bridge {bridge}")) && err.contains("not the one netd made"),
        "{err}"
    );
    let ports = netd
        .host
        .run("ip", &["-o", "link", "show", "master", &bridge])
        .unwrap();
    assert!(
        ports.trim().is_empty(),
        "netd plugged into their bridge: {ports}"
    );
    let veths: Vec<String> = netd
        .links()
        .into_iter()
        .filter(|l| l.starts_with("vn"))
        .collect();
    let a_link = first.join.clone().unwrap().host_link.unwrap();
    assert!(
        veths == [a_link.as_str()],
        "the refused attach left a veth: {veths:?}"
    );

    // An endpoint whose veth someone else already deleted still detaches.
    netd.host.run("ip", &["link", "del", &a_link]).unwrap();
    rt.block_on(c.detach("a", &first.id)).unwrap();
    assert!(
        rt.block_on(c.endpoint(&first.id)).is_err(),
        "the endpoint is still there"
    );
    assert!(netd.links().contains(&bridge), "{:?}", netd.links());
}

/// A joining interface announces itself (gratuitous ARP), so a neighbour that
/// cached another MAC for a reused address learns the new one without asking.
#[test]
fn a_reused_address_is_announced_with_its_new_mac() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    rt.block_on(async {
        c.create_network(&network("n1", "10.78.0.0/24"))
            .await
            .unwrap();
        let a = c.create_sandbox(&sandbox("a")).await.unwrap();
        c.create_sandbox(&sandbox("b")).await.unwrap();
        c.create_sandbox(&sandbox("c")).await.unwrap();
        c.attach("a", &attach("n1")).await.unwrap();
        let fixed = |mac: &str| Attach {
            network: "n1".into(),
            ip: Some("10.78.0.99".parse().unwrap()),
            mac: Some(mac.into()),
            ..Default::default()
        };
        let old = c.attach("b", &fixed("02:00:00:00:00:01")).await.unwrap();
        // Let the joins' own announcements pass: each flushes its interface's young
        // neighbour cache (the kernel does on a MAC change).
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert!(netd.pings(&a, "10.78.0.99"));
        let neigh = |sb| {
            String::from_utf8_lossy(
                &netd
                    .in_sandbox(sb, &["ip", "neigh", "show", "10.78.0.99"])
                    .stdout,
            )
            .into_owned()
        };
        assert!(neigh(&a).contains("02:00:00:00:00:01"), "{}", neigh(&a));
        c.detach("b", &old.id).await.unwrap();
        // The kernel ignores updates within a second of the last (locktime).
        std::thread::sleep(std::time::Duration::from_millis(1200));
        c.attach("c", &fixed("02:00:00:00:00:02")).await.unwrap();
        let learnt = tests::wait_for(
            "a learns the new MAC",
            std::time::Duration::from_secs(3),
            || Ok(neigh(&a).contains("02:00:00:00:00:02").then_some(())),
        );
        assert!(learnt.is_ok(), "a still has: {}", neigh(&a));
    });
}

/// netd keeps a socket open in every namespace it made, so it runs with its
/// open-file limit raised to the hard limit (1024 would cap it near a thousand
/// sandboxes).
#[test]
fn the_daemon_raises_its_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // netd inherits this process's limits: make sure its soft limit starts below
    // the hard one (one less is harmless to the other tests of this process).
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft == hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard - 1, hard).unwrap();
    }
    let netd = Netd::start();
    let pid = netd.daemon.as_ref().unwrap().pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files <soft> <hard> files"
    assert_eq!(fields[3], fields[4], "{line}");
}

#[test]
fn interface_names_skip_what_the_namespace_has_already() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    // A runtime or the container itself made eth0 and eth1 before netd's joins.
    let (_holder, netns) = netd.foreign_netns("holder");
    for name in ["eth0", "eth1"] {
        netd.host
            .run(
                "nsenter",
                &[
                    &format!("--net={netns}"),
                    "ip",
                    "link",
                    "add",
                    name,
                    "type",
                    "bridge",
                ],
            )
            .unwrap();
    }
    rt.block_on(async {
        c.create_network(&network("n1", "10.72.0.0/24"))
            .await
            .unwrap();
        let sb = c
            .create_sandbox(&SandboxCreate {
                name: Some("mine".into()),
                netns: Some(netns.clone().into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let ep = c.attach("mine", &attach("n1")).await.unwrap();
        assert_eq!(ep.join.as_ref().unwrap().interface, "eth2", "{ep:?}");
        let second = c.attach("mine", &attach("n1")).await.unwrap();
        assert_eq!(second.join.as_ref().unwrap().interface, "eth3");
        // The namespace's own links are untouched, and ours work.
        let links = netd.in_sandbox(&sb, &["ip", "-o", "link"]);
        let text = String::from_utf8_lossy(&links.stdout);
        for name in ["eth0", "eth1", "eth2", "eth3"] {
            assert!(text.contains(&format!(": {name}")), "{name}: {text}");
        }
        assert!(netd.pings(&sb, &ipv4(&second)));
        c.delete_sandbox("mine").await.unwrap();
        let links = netd.in_sandbox(&sb, &["ip", "-o", "link"]);
        let text = String::from_utf8_lossy(&links.stdout);
        assert!(
            text.contains(": eth0") && !text.contains(": eth2"),
            "{text}"
        );
    });
}

#[test]
fn a_sandbox_named_with_an_underscore_gets_a_valid_host_name() {
    let netd = Netd::start();
    let rt = runtime();
    let c = &netd.client;
    let (sb, ep) = rt.block_on(async {
        c.create_network(&network("n1", "10.73.0.0/24"))
            .await
            .unwrap();
        let sb = c.create_sandbox(&sandbox("my_app")).await.unwrap();
        (sb, c.attach("my_app", &attach("n1")).await.unwrap())
    });
    assert_eq!(sb.hostname, sb.id[..12]);
    let hosts = std::fs::read_to_string(&sb.hosts).unwrap();
    let line = format!("{}\t{}", ipv4(&ep), &sb.id[..12]);
    assert!(hosts.contains(&line), "{hosts}");
}

#[test]
fn an_object_named_like_an_id_is_found_by_that_name() {
    let netd = Netd::start();
    let rt = runtime();
    let name = "ab".repeat(32);
    rt.block_on(async {
        let sb = netd.client.create_sandbox(&sandbox(&name)).await.unwrap();
        assert_ne!(sb.id, name);
        let found = netd.client.sandbox(&name).await.unwrap();
        assert_eq!(found.id, sb.id);
        netd.client.delete_sandbox(&name).await.unwrap();
    });
}

#[test]
fn a_client_that_goes_away_mid_call_leaves_nothing_inconsistent() {
    use std::io::Write;
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    rt.block_on(async {
        c.create_network(&network("n1", "10.97.0.0/24"))
            .await
            .unwrap();
        for i in 0..20 {
            c.create_sandbox(&sandbox(&format!("s{i}"))).await.unwrap();
        }
    });
    // Each attach is sent whole, then its connection closed at once: the server
    // sees the client go while it works.
    for i in 0..20 {
        let mut s = std::os::unix::net::UnixStream::connect(c.socket()).unwrap();
        let body = r#"{"network": "n1"}"#;
        let req = format!(
            "POST /v1/sandboxes/s{i}/attach HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        drop(s);
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    rt.block_on(async {
        let eps = c.endpoints().await.unwrap();
        let pools = c.pools().await.unwrap();
        let held = common::pool_addresses(&pools[0]).len();
        assert_eq!(held, 1 + eps.len(), "{} endpoints, {pools:?}", eps.len());
        // And the next attaches get addresses nobody has.
        for i in 0..20 {
            c.attach(&format!("s{i}"), &attach("n1")).await.unwrap();
        }
        let eps = c.endpoints().await.unwrap();
        let mut addrs: Vec<String> = eps.iter().map(ipv4).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), eps.len(), "an address handed out twice");
    });
}

#[test]
fn a_sandbox_made_and_attached_in_one_request_or_not_at_all() {
    use netd::controller::Attachment;
    let (netd, rt) = Netd::start_with_network("n1", "10.70.9.0/24");
    let c = &netd.client;
    let ask = |name: &str, attach: Attach| {
        rt.block_on(c.create_attached(&Attachment {
            sandbox: sandbox(name),
            attach,
        }))
    };
    let a = ask("a", attach("n1")).unwrap();
    assert_eq!(a.sandbox.endpoints, std::slice::from_ref(&a.endpoint.id));
    assert_eq!(a.endpoint.join.as_ref().unwrap().interface, "eth0");
    let b = ask(
        "b",
        Attach {
            interface: Some("net1".into()),
            ..attach("n1")
        },
    )
    .unwrap();
    assert_eq!(b.endpoint.join.as_ref().unwrap().interface, "net1");
    assert!(netd.pings(&a.sandbox, &ipv4(&b.endpoint)));
    // Refusals leave no sandbox, and its name free: an unknown network, a taken
    // address, a taken host port, a sandbox name in use.
    let taken = Attach {
        ip: Some(a.endpoint.addresses[0].addr()),
        ..attach("n1")
    };
    for (req, fragment) in [(attach("nosuch"), "nosuch"), (taken, "already allocated")] {
        let err = ask("c", req).unwrap_err().to_string();
        assert!(err.contains(fragment), "{err}");
    }
    rt.block_on(c.set_ports(&a.endpoint.id, &[common::tcp(18091, 80)]))
        .unwrap();
    let err = ask(
        "c",
        Attach {
            ports: vec![common::tcp(18091, 81)],
            ..attach("n1")
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("18091"), "{err}");
    let err = ask("a", attach("n1")).unwrap_err().to_string();
    assert!(err.contains("exists already"), "{err}");
    let names: Vec<String> = rt
        .block_on(c.sandboxes())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(rt.block_on(c.endpoints()).unwrap().len(), 2);
    ask("c", attach("n1")).unwrap();
}

#[test]
fn the_default_route_moves_to_another_network_when_its_own_leaves() {
    let (netd, rt) = Netd::start_with_network("n1", "10.61.1.0/24");
    let c = &netd.client;
    rt.block_on(c.create_network(&network("n2", "10.61.2.0/24")))
        .unwrap();
    let sb = rt.block_on(c.create_sandbox(&sandbox("two"))).unwrap();
    let first = rt.block_on(c.attach("two", &attach("n1"))).unwrap();
    rt.block_on(c.attach("two", &attach("n2"))).unwrap();
    let default = || {
        let out = netd.in_sandbox(&sb, &["ip", "route", "show", "default"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(
        default().starts_with("default via 10.61.1.1 dev eth0"),
        "{}",
        default()
    );
    // The first network's interface goes: the second's gateway takes over.
    rt.block_on(c.detach("two", &first.id)).unwrap();
    assert!(
        default().starts_with("default via 10.61.2.1 dev eth1"),
        "{}",
        default()
    );
    // A third network joined later does not take it away.
    rt.block_on(c.create_network(&network("n3", "10.61.3.0/24")))
        .unwrap();
    rt.block_on(c.attach("two", &attach("n3"))).unwrap();
    assert!(
        default().starts_with("default via 10.61.2.1 dev eth1"),
        "{}",
        default()
    );
}

#[test]
fn an_internal_network_gives_no_default_route_and_leaves_it_to_another() {
    let (netd, rt) = Netd::start_with_network("open", "10.62.2.0/24");
    let c = &netd.client;
    let mut closed = network("closed", "10.62.1.0/24");
    closed
        .options
        .insert("com.docker.network.internal".into(), "true".into());
    rt.block_on(c.create_network(&closed)).unwrap();
    let sb = rt.block_on(c.create_sandbox(&sandbox("x"))).unwrap();
    let default = || {
        let out = netd.in_sandbox(&sb, &["ip", "route", "show", "default"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // As in Docker: no way out through an internal network, so no default
    // route through it...
    rt.block_on(c.attach("x", &attach("closed"))).unwrap();
    assert_eq!(default(), "");
    // ...and the next network's gateway gives the one the container needs.
    rt.block_on(c.attach("x", &attach("open"))).unwrap();
    assert!(
        default().starts_with("default via 10.62.2.1 dev eth1"),
        "{}",
        default()
    );
}
