//! netd can die at any moment: running sandboxes stay connected, and a restart
//! finds the store intact and the kernel reconciled with it.

mod common;

use common::{all_at_once, attach, ipv4, network, runtime, sandbox, Netd};
use nix::sys::signal::Signal;
use std::time::Duration;

fn setup(
    netd: &Netd,
) -> (
    netd::model::SandboxRecord,
    netd::model::SandboxRecord,
    String,
) {
    let c = &netd.client;
    runtime().block_on(async {
        c.create_network(&network("n1", "10.74.0.0/24"))
            .await
            .unwrap();
        let a = c.create_sandbox(&sandbox("a")).await.unwrap();
        let b = c.create_sandbox(&sandbox("b")).await.unwrap();
        let at = attach("n1");
        c.attach("a", &at).await.unwrap();
        let eb = c.attach("b", &at).await.unwrap();
        (a, b, ipv4(&eb))
    })
}

#[test]
fn kill_9_and_restart_keeps_traffic_flowing_and_state_intact() {
    let mut netd = Netd::start();
    let (a, _b, b_ip) = setup(&netd);
    let c = netd.client.clone();
    let rt = runtime();
    let before = rt.block_on(async {
        (
            c.networks().await.unwrap(),
            c.endpoints().await.unwrap(),
            c.sandboxes().await.unwrap(),
        )
    });
    let links_before = netd.links();

    // 40 pings, 0.1 s apart, across the kill and the restart.
    let net = format!("--net={}", a.netns.display());
    let pinger = netd
        .host
        .command("nsenter")
        .args([
            net.as_str(),
            "busybox",
            "ping",
            "-c",
            "40",
            "-i",
            "0.1",
            "-W",
            "1",
            b_ip.as_str(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    netd.launch();
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("40 packets transmitted, 40 packets received"),
        "pings were lost:\n{text}"
    );

    let after = rt.block_on(async {
        (
            c.networks().await.unwrap(),
            c.endpoints().await.unwrap(),
            c.sandboxes().await.unwrap(),
        )
    });
    assert_eq!(before, after, "state changed across the restart");
    assert_eq!(
        netd.links(),
        links_before,
        "links changed across the restart"
    );

    // And it keeps working: a new sandbox gets the next address, not a taken one.
    rt.block_on(async {
        let s = c.create_sandbox(&sandbox("c")).await.unwrap();
        let ep = c.attach("c", &attach("n1")).await.unwrap();
        let taken: Vec<String> = before.1.iter().map(ipv4).collect();
        assert!(
            !taken.contains(&ipv4(&ep)),
            "{} handed out twice",
            ipv4(&ep)
        );
        assert!(netd.pings(&s, &b_ip));
    });
}

#[test]
fn restart_recreates_a_missing_bridge_and_removes_orphans() {
    let mut netd = Netd::start();
    let (a, b, b_ip) = setup(&netd);
    let c = netd.client.clone();
    let rt = runtime();
    let net = rt.block_on(c.network("n1")).unwrap().network;
    let bridge = format!("br-{}", &net.id[..12]);
    let hosts = std::fs::read_to_string(&b.hosts).unwrap();
    assert!(hosts.contains(&b_ip), "{hosts}");
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5)).unwrap();

    // netd's mark: the link group its links are created in.
    let group = netd
        .host
        .run("ip", &["-d", "-o", "link", "show", &bridge])
        .unwrap()
        .split(" group ")
        .nth(1)
        .and_then(|g| g.split_whitespace().next())
        .unwrap()
        .to_string();
    // While netd is down: its bridge disappears (taking the ports with it); links
    // with its mark that the store does not know show up (a crash can leave them);
    // and links of someone else's with names like netd's.
    netd.host.run("ip", &["link", "del", &bridge]).unwrap();
    for args in [
        &[
            "vn0123456789ab",
            "group",
            &group,
            "type",
            "veth",
            "peer",
            "name",
            "orphanpeer",
        ][..],
        &["br-0123456789ab", "group", &group, "type", "bridge"],
        &[
            "vnfeedfacecafe",
            "type",
            "veth",
            "peer",
            "name",
            "theirpeer",
        ],
        &["br-feedfacecafe", "type", "bridge"],
        &["keepme", "type", "bridge"],
    ] {
        let mut all = vec!["link", "add"];
        all.extend_from_slice(args);
        netd.host.run("ip", &all).unwrap();
    }
    // Sandbox files are not synced as they are written: a crash can lose one.
    std::fs::write(&b.hosts, "").unwrap();

    netd.launch();
    assert_eq!(
        std::fs::read_to_string(&b.hosts).unwrap(),
        hosts,
        "the hosts file was not rewritten"
    );
    let links = netd.links();
    assert!(links.contains(&bridge), "bridge not recreated: {links:?}");
    assert!(
        !links
            .iter()
            .any(|l| l == "vn0123456789ab" || l == "br-0123456789ab"),
        "orphans left: {links:?}"
    );
    for theirs in ["keepme", "vnfeedfacecafe", "theirpeer", "br-feedfacecafe"] {
        assert!(
            links.contains(&theirs.to_string()),
            "a link netd did not make was removed: {theirs} {links:?}"
        );
    }
    // The veths were still there (deleting a bridge only detaches its ports):
    // reattached, the sandboxes reach each other again.
    assert!(
        netd.pings(&a, &b_ip),
        "a cannot reach b after reconcile\n{}",
        netd.log()
    );
}

fn kill_9(netd: &mut Netd) {
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5)).unwrap();
}

#[test]
fn restart_finishes_a_join_that_a_crash_cut_short() {
    // A join's records are committed while the kernel work runs, so a crash can
    // leave a stored join whose interface was made but never configured.
    let mut netd = Netd::start();
    let (a, b, b_ip) = setup(&netd);
    assert!(netd.pings(&a, &b_ip));
    kill_9(&mut netd);
    // b's eth0 as it is between the veth's creation and its configuration: down,
    // no address, no route, arp_notify off.
    for cmd in [
        &["ip", "addr", "flush", "dev", "eth0"][..],
        &["ip", "link", "set", "eth0", "down"],
        &["sysctl", "-qw", "net.ipv4.conf.eth0.arp_notify=0"],
    ] {
        let out = netd.in_sandbox(&b, cmd);
        assert!(out.status.success(), "{cmd:?}: {out:?}");
    }
    assert!(
        !netd.pings(&a, &b_ip),
        "b still answers with its interface down"
    );

    netd.launch();
    assert!(
        netd.pings(&a, &b_ip),
        "b's interface was not configured again\n{}",
        netd.log()
    );
    let addrs = netd.in_sandbox(&b, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(
        String::from_utf8_lossy(&addrs.stdout).contains(&format!("{b_ip}/24")),
        "{addrs:?}"
    );
    let routes = netd.in_sandbox(&b, &["ip", "route"]);
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("default via 10.74.0.1 dev eth0"),
        "{routes:?}"
    );
}

/// Turn IPv6 on or off inside a sandbox: off, a dual-stack join fails in the kernel
/// half-way (its IPv6 address is refused after the veth exists).
fn ipv6(netd: &Netd, sb: &netd::model::SandboxRecord, on: bool) {
    for key in ["all", "default"] {
        let setting = format!("net.ipv6.conf.{key}.disable_ipv6={}", u8::from(!on));
        let out = netd.in_sandbox(sb, &["sysctl", "-qw", &setting]);
        assert!(out.status.success(), "{out:?}");
    }
}

#[test]
fn a_join_the_kernel_refuses_leaves_no_record_even_after_a_restart() {
    let mut netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    let sb = rt.block_on(async {
        let mut dual = network("n1", "10.78.0.0/24");
        dual.subnets.push(netd::controller::SubnetRequest {
            subnet: Some("fd00:78::/64".parse().unwrap()),
            ..Default::default()
        });
        c.create_network(&dual).await.unwrap();
        c.create_sandbox(&sandbox("sb")).await.unwrap()
    });
    ipv6(&netd, &sb, false);
    let links_before = netd.links();
    let fixed = netd::controller::Attach {
        ip: Some("10.78.0.9".parse().unwrap()),
        ..attach("n1")
    };
    let err = rt.block_on(c.attach("sb", &fixed)).unwrap_err().to_string();
    assert!(
        err.contains("adding address fd00:78::"),
        "unclear error: {err}"
    );
    let nothing_left = |netd: &Netd| {
        let (eps, sb) =
            rt.block_on(async { (c.endpoints().await.unwrap(), c.sandbox("sb").await.unwrap()) });
        assert!(eps.is_empty(), "endpoint records left: {eps:?}");
        assert!(
            sb.endpoints.is_empty(),
            "the sandbox lists {:?}",
            sb.endpoints
        );
        assert_eq!(netd.links(), links_before, "links left behind");
        let hosts = std::fs::read_to_string(&sb.hosts).unwrap();
        assert!(!hosts.contains("10.78.0.9"), "hosts file kept it:\n{hosts}");
    };
    nothing_left(&netd);
    kill_9(&mut netd);
    netd.launch();
    nothing_left(&netd);

    // The address was given back for good: with IPv6 on again, it can be had.
    ipv6(&netd, &sb, true);
    let ep = rt.block_on(c.attach("sb", &fixed)).unwrap();
    assert_eq!(ipv4(&ep), "10.78.0.9");
}

/// Addresses the allocator holds in `pool`, from `/metrics`.
fn allocated(netd: &Netd, pool: &str) -> usize {
    let page = runtime().block_on(netd.client.metrics()).unwrap();
    let line = format!("netd_ipam_addresses_allocated{{pool=\"{pool}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .map(|n| n.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Kill netd `after` into `burst` (run on its own thread), restart it, and check
/// that the allocator holds the gateway and exactly the stored endpoints' addresses.
fn kill_during(netd: &mut Netd, after: Duration, burst: impl FnOnce() + Send + 'static) -> usize {
    let running = std::thread::spawn(burst);
    std::thread::sleep(after);
    kill_9(netd);
    running.join().unwrap();
    netd.launch();
    let eps = runtime().block_on(netd.client.endpoints()).unwrap();
    let held = allocated(netd, "local/10.96.0.0/24");
    assert_eq!(
        held,
        1 + eps.len(),
        "after a kill {after:?} in: {held} addresses held for {} endpoints",
        eps.len()
    );
    eps.len()
}

/// Attach each sandbox `s0`..`s49` that has no endpoint to `n1`.
fn attach_the_bare_ones(c: &netd::client::Client) {
    runtime().block_on(async {
        for i in 0..50 {
            let sb = c.sandbox(&format!("s{i}")).await.unwrap();
            if sb.endpoints.is_empty() {
                c.attach(&sb.name, &attach("n1")).await.unwrap();
            }
        }
    });
}

#[test]
fn the_allocator_matches_the_records_after_a_kill_during_parallel_attaches_or_detaches() {
    let mut netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    rt.block_on(async {
        c.create_network(&network("n1", "10.96.0.0/24"))
            .await
            .unwrap();
        for i in 0..50 {
            c.create_sandbox(&sandbox(&format!("s{i}"))).await.unwrap();
        }
    });
    for (round, ms) in [40u64, 100, 150].into_iter().enumerate() {
        // 50 attaches at once, cut short.
        let client = c.clone();
        kill_during(&mut netd, Duration::from_millis(ms), move || {
            runtime().block_on(all_at_once((0..50).map(|i| {
                let c = client.clone();
                async move {
                    let _ = c.attach(&format!("s{i}"), &attach("n1")).await;
                }
            })));
        });
        // Every sandbox attached once more (the cut-short ones finish now).
        attach_the_bare_ones(&c);
        // 50 detaches at once, cut short.
        let client = c.clone();
        let left = kill_during(
            &mut netd,
            Duration::from_millis(60 + 40 * round as u64),
            move || {
                runtime().block_on(async {
                    let eps = client.endpoints().await.unwrap();
                    all_at_once(eps.into_iter().filter_map(|e| {
                        let sb = e.join.as_ref()?.sandbox.clone()?;
                        let c = client.clone();
                        Some(async move {
                            let _ = c.detach(&sb, &e.id).await;
                        })
                    }))
                    .await;
                })
            },
        );
        // New attaches get addresses nobody holds.
        attach_the_bare_ones(&c);
        rt.block_on(async {
            let eps = c.endpoints().await.unwrap();
            let mut addrs: Vec<String> = eps.iter().map(ipv4).collect();
            addrs.sort();
            addrs.dedup();
            assert_eq!(
                addrs.len(),
                eps.len(),
                "an address handed out twice (round {round}, {left} left)"
            );
            // Then everything goes, and nothing stays held.
            for i in 0..50 {
                let sb = c.sandbox(&format!("s{i}")).await.unwrap();
                for ep in sb.endpoints {
                    c.detach(&sb.name, &ep).await.unwrap();
                }
            }
        });
        assert_eq!(allocated(&netd, "local/10.96.0.0/24"), 1, "round {round}");
    }
}

#[test]
fn a_bridge_someone_else_made_in_place_of_netds_is_not_taken_over() {
    let mut netd = Netd::start();
    let (_a, _b, _) = setup(&netd);
    let rt = runtime();
    let net = rt.block_on(netd.client.network("n1")).unwrap().network;
    let bridge = format!("br-{}", &net.id[..12]);
    kill_9(&mut netd);
    // While netd is down its bridge goes, and someone makes one of that name.
    netd.host.run("ip", &["link", "del", &bridge]).unwrap();
    netd.host
        .run("ip", &["link", "add", &bridge, "type", "bridge"])
        .unwrap();
    netd.launch();
    let addrs = netd
        .host
        .run("ip", &["-o", "addr", "show", "dev", &bridge])
        .unwrap();
    assert!(!addrs.contains("10.74.0.1"), "netd took it over: {addrs}");
    let ports = netd
        .host
        .run("ip", &["-o", "link", "show", "master", &bridge])
        .unwrap();
    assert!(
        ports.trim().is_empty(),
        "netd plugged into their bridge: {ports}"
    );
    assert!(
        netd.log().contains("netd did not make it"),
        "no word of it:\n{}",
        netd.log()
    );
    // Deleting the network leaves their bridge alone.
    rt.block_on(async {
        for sb in ["a", "b"] {
            netd.client.delete_sandbox(sb).await.unwrap();
        }
        netd.client.delete_network("n1").await.unwrap();
    });
    assert!(netd.links().contains(&bridge), "{:?}", netd.links());
}
