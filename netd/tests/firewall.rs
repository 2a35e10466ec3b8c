//! The firewall, as users see it: containers reach the outside through NAT and
//! not each other's networks, published ports answer from outside, from the host
//! and from containers, a port another program holds is refused, and netd's rules
//! come back when something wipes them. Each test is a host (netd's namespace)
//! with an outside host on a link beside it.

mod common;

use common::{attach, network, runtime, sandbox, tcp, Netd, Outside, HOST_ADDR, OUTSIDE_ADDR};
use std::time::Duration;

/// The commands that make a namespace send what it addresses to 127.0.0.1 out of
/// `dev` to `via` (its own loopback route moved behind, route_localnet on): what
/// an attacker next to the host, or in a container with NET_ADMIN, can do.
fn loopback_routed(dev: &str, via: &str) -> Vec<Vec<String>> {
    let all = "net.ipv4.conf.all.route_localnet=1".to_string();
    let this = format!("net.ipv4.conf.{dev}.route_localnet=1");
    [
        vec!["sysctl", "-qw", all.as_str()],
        vec!["sysctl", "-qw", this.as_str()],
        vec![
            "ip",
            "rule",
            "add",
            "to",
            "127.0.0.1",
            "lookup",
            "100",
            "pref",
            "10",
        ],
        vec!["ip", "rule", "del", "pref", "0"],
        vec!["ip", "rule", "add", "lookup", "local", "pref", "20"],
        vec![
            "ip",
            "route",
            "add",
            "127.0.0.1/32",
            "via",
            via,
            "dev",
            dev,
            "table",
            "100",
        ],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(str::to_string).collect())
    .collect()
}

fn option(
    mut net: netd::controller::NetworkCreate,
    key: &str,
    value: &str,
) -> netd::controller::NetworkCreate {
    net.options.insert(key.into(), value.into());
    net
}

#[test]
fn containers_reach_the_outside_only_through_masquerade_and_not_other_networks() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    let c = &netd.client;
    let rt = runtime();
    let (a, b, plain, internal) = rt.block_on(async {
        c.create_network(&network("n1", "10.120.1.0/24"))
            .await
            .unwrap();
        c.create_network(&network("n2", "10.120.2.0/24"))
            .await
            .unwrap();
        c.create_network(&option(
            network("n3", "10.120.3.0/24"),
            "com.docker.network.bridge.enable_ip_masquerade",
            "false",
        ))
        .await
        .unwrap();
        c.create_network(&option(
            network("n4", "10.120.4.0/24"),
            "com.docker.network.internal",
            "true",
        ))
        .await
        .unwrap();
        let mut sbs = Vec::new();
        for (name, net) in [
            ("a", "n1"),
            ("b", "n2"),
            ("plain", "n3"),
            ("internal", "n4"),
        ] {
            c.create_sandbox(&sandbox(name)).await.unwrap();
            c.attach(name, &attach(net)).await.unwrap();
            sbs.push(c.sandbox(name).await.unwrap());
        }
        (sbs.remove(0), sbs.remove(0), sbs.remove(0), sbs.remove(0))
    });
    // The outside host has no route to 10.120.0.0/16: only a masqueraded source
    // gets an answer.
    assert!(netd.pings(&a, OUTSIDE_ADDR), "n1 cannot reach the outside");
    assert!(
        !netd.pings(&plain, OUTSIDE_ADDR),
        "n3 is masqueraded though it asked not to be"
    );
    assert!(
        !netd.pings(&internal, OUTSIDE_ADDR),
        "the internal network n4 got out"
    );
    // With a route back, n3's own address goes out as it is.
    outside.route("10.120.3.0/24");
    assert!(
        netd.pings(&plain, OUTSIDE_ADDR),
        "n3 cannot reach the outside with a route back"
    );
    // Networks are isolated from each other.
    let b_ip = common::ipv4(&rt.block_on(c.endpoint(&b.endpoints[0])).unwrap());
    assert!(!netd.pings(&a, &b_ip), "n1 reaches n2");
    assert!(netd.pings(&b, "10.120.2.1"), "n2 cannot reach its gateway");
}

#[test]
fn without_icc_containers_of_a_network_do_not_reach_each_other() {
    let netd = Netd::start();
    // As on a host without br_netfilter: bridged traffic skips the firewall.
    for family in ["iptables", "ip6tables"] {
        netd.host
            .run(
                "sysctl",
                &["-qw", &format!("net.bridge.bridge-nf-call-{family}=0")],
            )
            .unwrap();
    }
    let c = &netd.client;
    let rt = runtime();
    let (a, b_ip) = rt.block_on(async {
        c.create_network(&option(
            network("n1", "10.121.1.0/24"),
            "com.docker.network.bridge.enable_icc",
            "false",
        ))
        .await
        .unwrap();
        c.create_network(&network("n2", "10.121.2.0/24"))
            .await
            .unwrap();
        for sb in ["a", "b", "x", "y"] {
            c.create_sandbox(&sandbox(sb)).await.unwrap();
        }
        c.attach("a", &attach("n1")).await.unwrap();
        let b = c.attach("b", &attach("n1")).await.unwrap();
        c.attach("x", &attach("n2")).await.unwrap();
        c.attach("y", &attach("n2")).await.unwrap();
        (c.sandbox("a").await.unwrap(), common::ipv4(&b))
    });
    assert!(
        !netd.pings(&a, &b_ip),
        "icc is off, yet a reaches b: {}",
        netd.host
            .run("ip", &["-d", "link", "show"])
            .unwrap_or_default()
    );
    assert!(netd.pings(&a, "10.121.1.1"), "a cannot reach its gateway");
    let x = rt.block_on(c.sandbox("x")).unwrap();
    let y_ip = common::ipv4(
        &rt.block_on(c.endpoint(&rt.block_on(c.sandbox("y")).unwrap().endpoints[0]))
            .unwrap(),
    );
    assert!(
        netd.pings(&x, &y_ip),
        "icc is on in n2, yet x cannot reach y"
    );
}

#[test]
fn a_published_port_answers_from_outside_from_the_host_and_from_containers() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    let c = &netd.client;
    let rt = runtime();
    let (web, same, other, ep) = rt.block_on(async {
        c.create_network(&network("n1", "10.122.1.0/24"))
            .await
            .unwrap();
        c.create_network(&network("n2", "10.122.2.0/24"))
            .await
            .unwrap();
        for sb in ["web", "same", "other"] {
            c.create_sandbox(&sandbox(sb)).await.unwrap();
        }
        let mut req = attach("n1");
        req.ports = vec![tcp(18080, 80)];
        let ep = c.attach("web", &req).await.unwrap();
        c.attach("same", &attach("n1")).await.unwrap();
        c.attach("other", &attach("n2")).await.unwrap();
        (
            c.sandbox("web").await.unwrap(),
            c.sandbox("same").await.unwrap(),
            c.sandbox("other").await.unwrap(),
            ep,
        )
    });
    assert_eq!(ep.ports.len(), 1, "{:?}", ep.ports);
    assert_eq!(ep.ports[0].host_port, 18080);
    let _httpd = netd.serve_http(&web, "hello from web");
    let at = |ip: &str| format!("http://{ip}:18080/");
    assert!(
        outside.fetches(&at(HOST_ADDR), "hello from web"),
        "not from outside"
    );
    assert!(
        netd.host_fetches(&at("127.0.0.1"), "hello from web"),
        "not from the host's loopback"
    );
    assert!(
        netd.host_fetches(&at(HOST_ADDR), "hello from web"),
        "not from the host's own address"
    );
    assert!(
        netd.sandbox_fetches(&same, &at(HOST_ADDR), "hello from web"),
        "not from the same network (hairpin)"
    );
    assert!(
        netd.sandbox_fetches(&web, &at(HOST_ADDR), "hello from web"),
        "not from the container itself (hairpin to its own port)"
    );
    assert!(
        netd.sandbox_fetches(&other, &at(HOST_ADDR), "hello from web"),
        "not from another network"
    );
    assert!(
        netd.sandbox_fetches(&other, &at("10.122.2.1"), "hello from web"),
        "not through the other network's gateway"
    );
    // Isolation still holds for the container's own address.
    assert!(
        !netd.sandbox_fetches(
            &other,
            &format!("http://{}/", common::ipv4(&ep)),
            "hello from web"
        ),
        "another network reaches the container directly"
    );
    // netd holds the host port: no other program can take it.
    let taken = netd
        .host
        .command("busybox")
        .args(["nc", "-l", "-p", "18080"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(
        !taken.status.success(),
        "another program could bind the published port"
    );

    // Unpublished by a detach: the port is free again and answers no more.
    rt.block_on(c.detach("web", &ep.id)).unwrap();
    assert!(
        !outside.fetches(&at(HOST_ADDR), "hello from web"),
        "still answers after detach"
    );
    let script = rt.block_on(c.firewall()).unwrap().script;
    assert!(!script.contains("18080"), "{script}");
}

#[test]
fn a_port_someone_else_holds_is_refused_and_the_attach_leaves_nothing() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    rt.block_on(async {
        c.create_network(&network("n1", "10.123.1.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("a")).await.unwrap();
    });
    let mut holder = netd
        .host
        .spawn("holder", "busybox", &["nc", "-l", "-p", "18090"])
        .unwrap();
    tests::wait_for("nc listening", Duration::from_secs(5), || {
        holder.check_running()?;
        let ss = netd
            .host
            .run("ss", &["-Hltn", "sport = :18090"])
            .unwrap_or_default();
        Ok((!ss.trim().is_empty()).then_some(()))
    })
    .unwrap();
    let mut req = attach("n1");
    req.ports = vec![tcp(18090, 80)];
    let err = rt.block_on(c.attach("a", &req)).unwrap_err().to_string();
    assert!(
        err.contains("host port 18090/tcp is in use by another program"),
        "{err}"
    );
    let sb = rt.block_on(c.sandbox("a")).unwrap();
    assert!(
        sb.endpoints.is_empty(),
        "the attach stayed: {:?}",
        sb.endpoints
    );
    assert!(rt.block_on(c.endpoints()).unwrap().is_empty());
    let veths: Vec<String> = netd
        .links()
        .into_iter()
        .filter(|l| l.starts_with("vn"))
        .collect();
    assert!(veths.is_empty(), "{veths:?}");

    // Port 0: netd picks a free one; a range: netd picks one of it.
    let mut req = attach("n1");
    req.ports = vec![
        tcp(0, 80),
        firewall::PortRequest {
            host_port: 18090,
            host_port_end: Some(18092),
            ..tcp(0, 81)
        },
    ];
    let ep = rt.block_on(c.attach("a", &req)).unwrap();
    assert_eq!(ep.ports.len(), 2, "{:?}", ep.ports);
    assert_ne!(ep.ports[0].host_port, 0);
    assert!(
        (18091..=18092).contains(&ep.ports[1].host_port),
        "{:?}",
        ep.ports
    );
    let shown = netd.cli(&["port", "a"]).unwrap();
    assert!(
        shown.contains(&format!("80/tcp -> 0.0.0.0:{}", ep.ports[0].host_port)),
        "{shown}"
    );
}

#[test]
fn netds_rules_come_back_after_a_flush_and_a_restart() {
    let mut netd = Netd::start();
    let outside = Outside::connect(&netd);
    let c = netd.client.clone();
    let rt = runtime();
    let web = rt.block_on(async {
        c.create_network(&network("n1", "10.124.1.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("web")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![tcp(18100, 80)];
        c.attach("web", &req).await.unwrap();
        c.sandbox("web").await.unwrap()
    });
    let _httpd = netd.serve_http(&web, "still here");
    let url = format!("http://{HOST_ADDR}:18100/");
    assert!(outside.fetches(&url, "still here"));
    netd.host.run("nft", &["flush", "ruleset"]).unwrap();
    let back = tests::wait_for("the table back", Duration::from_secs(5), || {
        Ok(outside.fetches(&url, "still here").then_some(()))
    });
    assert!(
        back.is_ok(),
        "not restored after nft flush ruleset:\n{}",
        netd.log()
    );
    assert!(netd.pings(&web, OUTSIDE_ADDR), "masquerade not restored");

    // A hand edit that empties one of netd's chains is put back too.
    netd.host
        .run("nft", &["flush", "chain", "inet", "netd", "publish"])
        .unwrap();
    let back = tests::wait_for("the chain back", Duration::from_secs(5), || {
        Ok(outside.fetches(&url, "still here").then_some(()))
    });
    assert!(
        back.is_ok(),
        "not restored after a chain flush:\n{}",
        netd.log()
    );

    // An edit that keeps every count (a drop replaced by an accept) too.
    let net_id = rt.block_on(c.network("n1")).unwrap().network.id;
    let chain = format!("nw-{}-to", &net_id[..12]);
    let listed = netd
        .host
        .run("nft", &["-a", "list", "chain", "inet", "netd", &chain])
        .unwrap();
    let handle = listed
        .lines()
        .find(|l| l.trim().starts_with("drop # handle"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no final drop in {listed}"))
        .to_string();
    netd.host
        .run(
            "nft",
            &[
                "replace", "rule", "inet", "netd", &chain, "handle", &handle, "accept",
            ],
        )
        .unwrap();
    let back = tests::wait_for("the rule back", Duration::from_secs(5), || {
        let now = netd
            .host
            .run("nft", &["list", "chain", "inet", "netd", &chain])
            .unwrap_or_default();
        Ok(now.lines().any(|l| l.trim() == "drop").then_some(()))
    });
    assert!(back.is_ok(), "a replaced rule was not put back");

    // kill -9 and start: the port answers and is held again.
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5)).unwrap();
    netd.host.run("nft", &["flush", "ruleset"]).unwrap();
    netd.launch();
    assert!(
        outside.fetches(&url, "still here"),
        "not programmed at start"
    );
    let ep = rt.block_on(c.endpoint(&web.endpoints[0])).unwrap();
    assert_eq!(ep.ports.len(), 1);
}

#[test]
fn hosts_that_route_to_container_addresses_reach_only_what_the_gateway_mode_allows() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    let c = &netd.client;
    let rt = runtime();
    let mode = "com.docker.network.bridge.gateway_mode_ipv4";
    let (nat, open, routed, closed) = rt.block_on(async {
        c.create_network(&network("nat", "10.127.1.0/24"))
            .await
            .unwrap();
        c.create_network(&option(
            network("open", "10.127.2.0/24"),
            mode,
            "nat-unprotected",
        ))
        .await
        .unwrap();
        c.create_network(&option(network("routed", "10.127.3.0/24"), mode, "routed"))
            .await
            .unwrap();
        let mut sbs = Vec::new();
        for (sb, net, ports) in [
            ("nat", "nat", vec![]),
            ("open", "open", vec![]),
            ("routed", "routed", vec![tcp(18300, 80)]),
            ("closed", "routed", vec![]),
        ] {
            c.create_sandbox(&sandbox(sb)).await.unwrap();
            let mut req = attach(net);
            req.ports = ports;
            let ep = c.attach(sb, &req).await.unwrap();
            sbs.push((c.sandbox(sb).await.unwrap(), common::ipv4(&ep)));
        }
        (sbs.remove(0), sbs.remove(0), sbs.remove(0), sbs.remove(0))
    });
    // A router on the LAN that knows the container subnets.
    outside.route("10.127.0.0/16");
    let _servers: Vec<_> = [&nat, &open, &routed, &closed]
        .iter()
        .map(|(sb, _)| netd.serve_http(sb, &format!("from {}", sb.name)))
        .collect();
    let direct = |(sb, ip): &(netd::model::SandboxRecord, String)| {
        outside.fetches(&format!("http://{ip}/"), &format!("from {}", sb.name))
    };
    assert!(!direct(&nat), "nat: a routed packet reached the container");
    assert!(
        direct(&open),
        "nat-unprotected: a routed packet did not reach the container"
    );
    assert!(
        direct(&routed),
        "routed: the published container port is not open"
    );
    assert!(
        !direct(&closed),
        "routed: an unpublished container port is open"
    );
    // routed: no NAT either way; the outside sees the container's own address.
    assert!(
        netd.pings(&routed.0, OUTSIDE_ADDR),
        "routed: cannot reach the outside"
    );
    let seen = outside.host.run("ip", &["neigh", "show"]).unwrap();
    assert!(seen.contains(HOST_ADDR), "{seen}");
    // The host's own address on a protected network's bridge stays reachable.
    assert!(
        outside
            .host
            .run("busybox", &["ping", "-c", "1", "-W", "2", "10.127.1.1"])
            .is_ok(),
        "the nat network's gateway address is cut off"
    );
}

#[test]
fn udp_ports_are_published_too() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    let c = &netd.client;
    let rt = runtime();
    let sb = rt.block_on(async {
        c.create_network(&network("n1", "10.128.1.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("dns")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![firewall::PortRequest {
            proto: firewall::Proto::Udp,
            ..tcp(15353, 5353)
        }];
        c.attach("dns", &req).await.unwrap();
        c.sandbox("dns").await.unwrap()
    });
    // The receiver: a socket this test binds inside the sandbox, on a thread that
    // entered its namespace (through a process sleeping there).
    let net = format!("--net={}", sb.netns.display());
    let sleeper = netd
        .host
        .spawn("udp-holder", "nsenter", &[&net, "sleep", "60"])
        .unwrap();
    let ns = format!("/proc/{}/ns/net", sleeper.pid());
    std::thread::sleep(Duration::from_millis(200));
    let receiver = std::thread::spawn(move || {
        let file = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = std::net::UdpSocket::bind("0.0.0.0:5353").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        socket
            .recv_from(&mut buf)
            .map(|(n, from)| (String::from_utf8_lossy(&buf[..n]).into_owned(), from))
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = outside
        .host
        .command("bash")
        .args([
            "-c",
            &format!("echo ping-over-udp > /dev/udp/{HOST_ADDR}/15353"),
        ])
        .output()
        .unwrap();
    assert!(sent.status.success(), "{sent:?}");
    let arrived = receiver.join().unwrap();
    let (text, from) = arrived
        .as_ref()
        .expect("the UDP datagram did not reach the container");
    assert!(text.contains("ping-over-udp"), "{text}");
    // Not proxied: the container sees the client's own address.
    assert_eq!(from.ip().to_string(), OUTSIDE_ADDR);
}

#[test]
fn ipv6_is_masqueraded_and_published_like_ipv4() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    for (host, addr, dev) in [
        (&netd.host, "fd00:192::1/64", "up0"),
        (&outside.host, "fd00:192::2/64", "o0"),
    ] {
        host.run("ip", &["-6", "addr", "add", addr, "dev", dev, "nodad"])
            .unwrap();
    }
    let c = &netd.client;
    let rt = runtime();
    let (web, ep) = rt.block_on(async {
        let mut net = network("n6", "10.133.0.0/24");
        net.subnets.push(netd::controller::SubnetRequest {
            subnet: Some("fd00:133::/64".parse().unwrap()),
            ..Default::default()
        });
        c.create_network(&net).await.unwrap();
        c.create_sandbox(&sandbox("web")).await.unwrap();
        let mut req = attach("n6");
        req.ports = vec![tcp(18400, 80)];
        let ep = c.attach("web", &req).await.unwrap();
        (c.sandbox("web").await.unwrap(), ep)
    });
    // One request, both families: the same host port on 0.0.0.0 and [::].
    let families: Vec<bool> = ep.ports.iter().map(|p| p.container_ip.is_ipv6()).collect();
    assert_eq!(families, [false, true], "{:?}", ep.ports);
    let _httpd = netd.serve_http(&web, "hello over v6");
    let answered = tests::wait_for("the IPv6 port", Duration::from_secs(10), || {
        Ok(outside
            .fetches("http://[fd00:192::1]:18400/", "hello over v6")
            .then_some(()))
    });
    assert!(answered.is_ok(), "not published over IPv6");
    assert!(outside.fetches(&format!("http://{HOST_ADDR}:18400/"), "hello over v6"));
    // The outside has no route to fd00:133::/64: only NAT66 gets an answer back.
    let pinged = tests::wait_for("ping over IPv6", Duration::from_secs(10), || {
        Ok(netd.pings(&web, "fd00:192::2").then_some(()))
    });
    assert!(
        pinged.is_ok(),
        "the container cannot reach the outside over IPv6"
    );
    // A LAN router that routes to the container's IPv6 address reaches nothing.
    outside
        .host
        .run(
            "ip",
            &["-6", "route", "add", "fd00:133::/64", "via", "fd00:192::1"],
        )
        .unwrap();
    let v6 = ep
        .addresses
        .iter()
        .find(|a| a.addr().is_ipv6())
        .unwrap()
        .addr();
    assert!(
        !outside.fetches(&format!("http://[{v6}]/"), "hello over v6"),
        "direct routing to the container's IPv6 address got through"
    );
}

#[test]
fn a_port_published_on_loopback_is_not_reachable_from_other_hosts() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    let c = &netd.client;
    let rt = runtime();
    let web = rt.block_on(async {
        c.create_network(&network("n1", "10.134.0.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("web")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![
            firewall::PortRequest {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                ..tcp(18500, 80)
            },
            tcp(18501, 80),
        ];
        c.attach("web", &req).await.unwrap();
        c.sandbox("web").await.unwrap()
    });
    let _httpd = netd.serve_http(&web, "local only");
    assert!(netd.host_fetches("http://127.0.0.1:18500/", "local only"));
    assert!(!outside.fetches(&format!("http://{HOST_ADDR}:18500/"), "local only"));
    // An attacker next to the host sends packets for 127.0.0.1 to the host's MAC
    // (their own loopback routes moved aside, route_localnet on).
    for args in loopback_routed("o0", HOST_ADDR) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        outside.host.run(args[0], &args[1..]).unwrap();
    }
    // The path works (a port published on all addresses answers it)...
    assert!(
        outside.fetches("http://127.0.0.1:18501/", "local only"),
        "the attack path itself does not work; the test proves nothing"
    );
    // ...and the loopback-only port does not.
    assert!(
        !outside.fetches("http://127.0.0.1:18500/", "local only"),
        "a port published on 127.0.0.1 answered another host"
    );
}

/// Receive one datagram on `port` inside the namespace of the process `pid`.
fn receive_udp_in(pid: i32, port: u16) -> std::thread::JoinHandle<std::io::Result<String>> {
    let ns = format!("/proc/{pid}/ns/net");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&ns)?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        let socket = std::net::UdpSocket::bind(("0.0.0.0", port))?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

#[test]
fn a_udp_flow_that_began_before_the_port_was_published_reaches_the_container() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    let c = &netd.client;
    let rt = runtime();
    let (sb, ep) = rt.block_on(async {
        c.create_network(&network("n1", "10.135.0.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("syslog")).await.unwrap();
        let ep = c.attach("syslog", &attach("n1")).await.unwrap();
        (c.sandbox("syslog").await.unwrap(), ep)
    });
    // A client that keeps sending from one socket (one flow), as syslog does.
    let script = format!(
        "exec 3>/dev/udp/{HOST_ADDR}/15354; for i in $(seq 100); do echo flow-$i >&3 || true; sleep 0.1; done"
    );
    let _sender = outside
        .host
        .spawn("sender", "bash", &["-c", &script])
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let net = format!("--net={}", sb.netns.display());
    let holder = netd
        .host
        .spawn("udp-holder", "nsenter", &[&net, "sleep", "60"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let receiver = receive_udp_in(holder.pid(), 5353);
    std::thread::sleep(Duration::from_millis(200));
    rt.block_on(c.set_ports(
        &ep.id,
        &[firewall::PortRequest {
            proto: firewall::Proto::Udp,
            ..tcp(15354, 5353)
        }],
    ))
    .unwrap();
    let got = receiver.join().unwrap();
    assert!(
        got.as_deref().is_ok_and(|t| t.starts_with("flow-")),
        "the flow's datagrams never reached the container: {got:?}"
    );
}

#[test]
fn cleanup_removes_netds_rules_and_links_and_nothing_else() {
    let mut netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    // Someone else's: a veth pair, and a rule in a DOCKER-USER chain.
    netd.host
        .run(
            "ip",
            &[
                "link", "add", "theirs0", "type", "veth", "peer", "name", "theirs1",
            ],
        )
        .unwrap();
    netd.host.run("iptables", &["-N", "DOCKER-USER"]).unwrap();
    netd.host
        .run(
            "iptables",
            &["-A", "DOCKER-USER", "-i", "theirs0", "-j", "DROP"],
        )
        .unwrap();
    rt.block_on(async {
        c.create_network(&network("n1", "10.136.0.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("a")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![tcp(18600, 80)];
        c.attach("a", &req).await.unwrap();
    });
    let user = netd.host.run("iptables", &["-S", "DOCKER-USER"]).unwrap();
    assert!(user.contains("--comment netd"), "{user}");
    let state = netd.host.dir().join("state").display().to_string();
    let err = netd
        .host_cli(&["cleanup", "--state-dir", &state])
        .unwrap_err();
    assert!(err.contains("another netd"), "{err}");

    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    daemon.wait_exit(Duration::from_secs(10)).unwrap();
    let out = netd.host_cli(&["cleanup", "--state-dir", &state]).unwrap();
    assert!(out.contains("removed nftables table inet netd"), "{out}");
    let links = netd.links();
    assert!(
        !links
            .iter()
            .any(|l| l.starts_with("br-") || l.starts_with("vn")),
        "{links:?}"
    );
    assert!(links.contains(&"theirs0".to_string()), "{links:?}");
    assert!(netd
        .host
        .run("nft", &["list", "table", "inet", "netd"])
        .is_err());
    let user = netd.host.run("iptables", &["-S", "DOCKER-USER"]).unwrap();
    assert!(!user.contains("netd"), "{user}");
    assert!(user.contains("-i theirs0 -j DROP"), "{user}");
    // Started again, netd makes everything from its store.
    netd.launch();
    let ep = &rt.block_on(c.sandbox("a")).unwrap().endpoints[0];
    assert_eq!(rt.block_on(c.endpoint(ep)).unwrap().ports.len(), 1);
    assert!(netd.links().iter().any(|l| l.starts_with("br-")));
}

#[test]
fn ports_can_be_asked_for_again_and_bad_host_addresses_are_refused() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    let ep = rt.block_on(async {
        c.create_network(&network("n1", "10.137.0.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("a")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![tcp(18700, 80)];
        c.attach("a", &req).await.unwrap()
    });
    // The same port again, with one more: the first is not "in use" by itself.
    let again = rt
        .block_on(c.set_ports(&ep.id, &[tcp(18700, 80), tcp(18701, 81)]))
        .unwrap();
    let hosts: Vec<u16> = again.ports.iter().map(|p| p.host_port).collect();
    assert_eq!(hosts, [18700, 18701]);
    for (host_ip, words) in [
        ("::1", "publish on 127.0.0.1"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("203.0.113.7", "not an address of this host"),
    ] {
        let req = firewall::PortRequest {
            host_ip: Some(host_ip.parse().unwrap()),
            ..tcp(18702, 80)
        };
        let err = rt
            .block_on(c.set_ports(&ep.id, &[req]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "{host_ip}: {err}");
    }
    // A refused change leaves what was published.
    let now = rt.block_on(c.endpoint(&ep.id)).unwrap();
    assert_eq!(now.ports, again.ports);
    let taken = netd
        .host
        .command("busybox")
        .args(["nc", "-l", "-p", "18701"])
        .output()
        .unwrap();
    assert!(
        !taken.status.success(),
        "18701 is no longer held after a refused change"
    );
}

#[test]
fn a_port_taken_while_netd_was_down_is_published_no_more() {
    let mut netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    let ep = rt.block_on(async {
        c.create_network(&network("n1", "10.138.0.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("a")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![tcp(18800, 80), tcp(18801, 81)];
        c.attach("a", &req).await.unwrap()
    });
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5)).unwrap();
    let mut holder = netd
        .host
        .spawn("holder", "busybox", &["nc", "-l", "-p", "18800"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    holder.check_running().unwrap();
    netd.launch();
    let now = rt.block_on(c.endpoint(&ep.id)).unwrap();
    let hosts: Vec<u16> = now.ports.iter().map(|p| p.host_port).collect();
    assert_eq!(hosts, [18801], "the taken port is still listed");
    assert!(netd.log().contains("18800"), "{}", netd.log());
    let script = rt.block_on(c.firewall()).unwrap().script;
    assert!(!script.contains("18800"), "{script}");
}

#[test]
fn a_bridge_that_is_the_hosts_uplink_is_not_taken_for_another_engines() {
    let netd = Netd::start();
    let _outside = Outside::connect(&netd);
    // The host's address moves to a bridge over its link, as on a VM host.
    for args in [
        &["addr", "del", &format!("{HOST_ADDR}/24"), "dev", "up0"][..],
        &["link", "add", "lan0", "type", "bridge"],
        &["link", "set", "up0", "master", "lan0"],
        &["addr", "add", &format!("{HOST_ADDR}/24"), "dev", "lan0"],
        &["link", "set", "lan0", "up"],
    ] {
        netd.host.run("ip", args).unwrap();
    }
    let c = &netd.client;
    let rt = runtime();
    let a = rt.block_on(async {
        c.create_network(&network("n1", "10.139.0.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("a")).await.unwrap();
        c.attach("a", &attach("n1")).await.unwrap();
        c.sandbox("a").await.unwrap()
    });
    // Past a check or two.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        netd.pings(&a, OUTSIDE_ADDR),
        "the uplink bridge cut the container off"
    );
}

#[test]
fn an_unpublished_udp_port_stops_reaching_the_container_mid_flow() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    let c = &netd.client;
    let rt = runtime();
    let (sb, ep) = rt.block_on(async {
        c.create_network(&network("n1", "10.140.0.0/24"))
            .await
            .unwrap();
        c.create_sandbox(&sandbox("u")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![firewall::PortRequest {
            proto: firewall::Proto::Udp,
            ..tcp(15355, 5353)
        }];
        let ep = c.attach("u", &req).await.unwrap();
        (c.sandbox("u").await.unwrap(), ep)
    });
    let net = format!("--net={}", sb.netns.display());
    let holder = netd
        .host
        .spawn("udp-holder", "nsenter", &[&net, "sleep", "60"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let first = receive_udp_in(holder.pid(), 5353);
    let script = format!(
        "exec 3>/dev/udp/{HOST_ADDR}/15355; for i in $(seq 150); do echo flow-$i >&3 || true; sleep 0.05; done"
    );
    let _sender = outside
        .host
        .spawn("sender", "bash", &["-c", &script])
        .unwrap();
    assert!(
        first.join().unwrap().is_ok(),
        "the flow never reached the container"
    );
    rt.block_on(c.set_ports(&ep.id, &[])).unwrap();
    let after = receive_udp_in(holder.pid(), 5353).join().unwrap();
    assert!(
        after.is_err(),
        "the flow still reaches the container: {after:?}"
    );
}

#[test]
fn snat_address_isolated_mode_trusted_interfaces_and_default_binding_are_honoured() {
    let netd = Netd::start();
    let outside = Outside::connect(&netd);
    netd.host
        .run("ip", &["addr", "add", "192.0.2.10/24", "dev", "up0"])
        .unwrap();
    let c = &netd.client;
    let rt = runtime();
    let (snat, isolated, trusting, local) = rt.block_on(async {
        c.create_network(&option(
            network("snat", "10.141.1.0/24"),
            "com.docker.network.host_ipv4",
            "192.0.2.10",
        ))
        .await
        .unwrap();
        c.create_network(&option(
            network("isolated", "10.141.2.0/24"),
            "com.docker.network.bridge.gateway_mode_ipv4",
            "isolated",
        ))
        .await
        .unwrap();
        c.create_network(&option(
            network("trusting", "10.141.3.0/24"),
            "com.docker.network.bridge.trusted_host_interfaces",
            "up0",
        ))
        .await
        .unwrap();
        c.create_network(&option(
            network("local", "10.141.4.0/24"),
            "com.docker.network.bridge.host_binding_ipv4",
            "127.0.0.1",
        ))
        .await
        .unwrap();
        let mut out = Vec::new();
        for (sb, net, ports) in [
            ("snat", "snat", vec![]),
            ("isolated", "isolated", vec![]),
            ("trusting", "trusting", vec![tcp(18900, 80)]),
            ("local", "local", vec![tcp(18901, 80)]),
        ] {
            c.create_sandbox(&sandbox(sb)).await.unwrap();
            let mut req = attach(net);
            req.ports = ports;
            let ep = c.attach(sb, &req).await.unwrap();
            out.push((c.sandbox(sb).await.unwrap(), ep));
        }
        (out.remove(0), out.remove(0), out.remove(0), out.remove(0))
    });

    // host_ipv4: the outside sees 192.0.2.10, not the link's first address.
    // Both ends keep their stdin open (a closed one ends busybox nc at once).
    let mut server = outside
        .host
        .spawn("server", "sh", &["-c", "sleep 10 | busybox nc -l -p 9000"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.check_running().unwrap();
    let net = format!("--net={}", snat.0.netns.display());
    let _client = netd
        .host
        .spawn(
            "client",
            "nsenter",
            &[
                &net,
                "sh",
                "-c",
                &format!("sleep 10 | busybox nc {OUTSIDE_ADDR} 9000"),
            ],
        )
        .unwrap();
    let peer = tests::wait_for("the connection", Duration::from_secs(5), || {
        let ss = outside
            .host
            .run("ss", &["-Htn", "state", "established"])
            .unwrap_or_default();
        Ok((!ss.trim().is_empty()).then_some(ss))
    })
    .unwrap();
    assert!(
        peer.contains("192.0.2.10]:") || peer.contains("192.0.2.10:"),
        "not SNATed to host_ipv4: {peer}"
    );

    // isolated: nothing out.
    assert!(
        !netd.pings(&isolated.0, OUTSIDE_ADDR),
        "an isolated network got out"
    );

    // trusted_host_interfaces: a router on up0 reaches the published container
    // port directly (nat mode), and nothing else of the container.
    outside.route("10.141.0.0/16");
    let _web = netd.serve_http(&trusting.0, "trusted");
    let ip = common::ipv4(&trusting.1);
    assert!(
        outside.fetches(&format!("http://{ip}/"), "trusted"),
        "the trusted interface does not reach the published container port"
    );

    // host_binding_ipv4=127.0.0.1: a port with no host address is local only.
    assert_eq!(
        local.1.ports[0].host_ip,
        Some("127.0.0.1".parse().unwrap()),
        "{:?}",
        local.1.ports
    );
    let _local_web = netd.serve_http(&local.0, "local by default");
    assert!(netd.host_fetches("http://127.0.0.1:18901/", "local by default"));
    assert!(!outside.fetches(&format!("http://{HOST_ADDR}:18901/"), "local by default"));
}

#[test]
fn without_icc_hairpin_still_works_where_the_firewall_sees_bridged_traffic() {
    // br_netfilter on (the default in a new namespace here, and wherever dockerd
    // runs): the firewall enforces icc, and published ports stay reachable from
    // the network's own containers.
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    let (web, other, web_ip) = rt.block_on(async {
        c.create_network(&option(
            network("n1", "10.142.0.0/24"),
            "com.docker.network.bridge.enable_icc",
            "false",
        ))
        .await
        .unwrap();
        c.create_sandbox(&sandbox("web")).await.unwrap();
        c.create_sandbox(&sandbox("other")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![tcp(19000, 80)];
        let ep = c.attach("web", &req).await.unwrap();
        c.attach("other", &attach("n1")).await.unwrap();
        (
            c.sandbox("web").await.unwrap(),
            c.sandbox("other").await.unwrap(),
            common::ipv4(&ep),
        )
    });
    let _httpd = netd.serve_http(&web, "icc off");
    let published = "http://10.142.0.1:19000/";
    assert!(
        netd.sandbox_fetches(&other, published, "icc off"),
        "not from the same network"
    );
    assert!(
        netd.sandbox_fetches(&web, published, "icc off"),
        "not from itself"
    );
    assert!(
        !netd.sandbox_fetches(&other, &format!("http://{web_ip}/"), "icc off"),
        "icc is off, yet other reaches web directly"
    );
}

#[test]
fn containers_reach_neither_the_hosts_loopback_nor_from_a_closed_network_other_ports() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    let (a, inside, web) = rt.block_on(async {
        c.create_network(&network("n1", "10.143.1.0/24"))
            .await
            .unwrap();
        c.create_network(&option(
            network("closed", "10.143.2.0/24"),
            "com.docker.network.internal",
            "true",
        ))
        .await
        .unwrap();
        for sb in ["a", "inside", "web"] {
            c.create_sandbox(&sandbox(sb)).await.unwrap();
        }
        c.attach("a", &attach("n1")).await.unwrap();
        c.attach("inside", &attach("closed")).await.unwrap();
        let mut req = attach("n1");
        req.ports = vec![tcp(19100, 80)];
        c.attach("web", &req).await.unwrap();
        (
            c.sandbox("a").await.unwrap(),
            c.sandbox("inside").await.unwrap(),
            c.sandbox("web").await.unwrap(),
        )
    });
    let _httpd = netd.serve_http(&web, "published");
    // A service only the host's loopback should reach.
    let mut secret = netd
        .host
        .spawn(
            "secret",
            "sh",
            &[
                "-c",
                "echo secret > /tmp/secret-$$ ; busybox httpd -f -p 127.0.0.1:19200 -h /etc",
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    secret.check_running().unwrap();
    assert!(netd.host_fetches("http://127.0.0.1:19200/hostname", ""));
    // The container routes 127.0.0.1 to its gateway, as an attacker with
    // NET_ADMIN in its namespace could.
    for args in loopback_routed("eth0", "10.143.1.1") {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = netd.in_sandbox(&a, &args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let mut cmd = netd.host.command("nsenter");
    cmd.args([format!("--net={}", a.netns.display()).as_str(), "curl"]);
    let out = cmd
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "3",
        ])
        .arg("http://127.0.0.1:19200/hostname")
        .output()
        .unwrap();
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        code != "200",
        "a container reached the host's loopback service ({code})"
    );
    // The published port itself is reachable from n1, and not from the internal
    // network (not even through the gateway a closed network has).
    assert!(netd.sandbox_fetches(&a, &format!("http://{HOST_ADDR_N1}:19100/"), "published"));
    assert!(
        !netd.sandbox_fetches(&inside, "http://10.143.2.1:19100/", "published"),
        "an internal network reached another network's published port"
    );
}

const HOST_ADDR_N1: &str = "10.143.1.1";
