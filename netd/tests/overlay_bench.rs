//! The overlay benchmark (`bench/overlay` runs it; ignored in the suite: timings
//! are never pass/fail). Prints, from one run on one machine:
//! - convergence: from an attach on host A until host B's VXLAN device has the
//!   new endpoint's entry, over 100 endpoints, p50 and p99;
//! - throughput between two sandboxes on two hosts with iperf3, against the
//!   plain underlay between the same two hosts, and the ratio; against two
//!   namespaces routed across the hosts with no tunnel (what any container
//!   network costs here); and again on a jumbo-frame underlay;
//! - a simulated cluster of 100 hosts (100 memberships and peer watches in one
//!   process, against one etcd, no kernel programming): how long until every
//!   host saw one endpoint appear, and one host's endpoints go when it left; and
//!   etcd's requests per second at rest.

mod common;

use common::lab::{ip, ipv4, members, underlay, ETCD};
use common::{attach, runtime, sandbox};
use std::time::{Duration, Instant};
use tests::{Etcd, TestHost};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[test]
#[ignore]
fn overlay_bench() {
    convergence_and_throughput();
    simulated_cluster();
}

fn convergence_and_throughput() {
    let (switch, etcd_host) = underlay();
    let _etcd = Etcd::start_on(&etcd_host, ETCD).unwrap();
    let lab = members(&switch, 2);
    let (a, b) = (&lab[0], &lab[1]);
    let rt = runtime();
    let net = rt.block_on(a.netd.client.network("ov1")).unwrap().network;
    let vx = format!("vx-{}", &net.id[..12]);
    let nl_b = rt
        .block_on(drivers::netlink::Netlink::in_netns(
            &b.netd.host.netns_path(),
        ))
        .unwrap();
    let index = rt.block_on(nl_b.index(&vx)).unwrap();
    let mut took = Vec::new();
    for i in 0..100 {
        let c = a.netd.client.clone();
        let start = Instant::now();
        let (sb, ep) = rt.block_on(async {
            let sb = c.create_sandbox(&sandbox(&format!("b{i}"))).await.unwrap();
            let ep = c.attach(&sb.name, &attach("ov1")).await.unwrap();
            (sb, ep)
        });
        let mac = drivers::netlink::Mac::try_from(
            ep.mac
                .split(':')
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        loop {
            let fdb = rt.block_on(nl_b.fdb(index)).unwrap();
            if fdb.iter().any(|e| e.mac == mac && e.ip.is_some()) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "endpoint {i} never reached B"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        took.push(start.elapsed());
        rt.block_on(c.delete_sandbox(&sb.name)).unwrap();
    }
    println!(
        "convergence, attach on A to B's entry, 100 endpoints: p50 {}, p99 {}, max {}",
        ms(percentile(&mut took, 0.5)),
        ms(percentile(&mut took, 0.99)),
        ms(percentile(&mut took, 1.0))
    );

    // Throughput: iperf3 between the sandboxes, and between the hosts.
    let iperf = |server: &dyn Fn() -> std::process::Command,
                 client: &dyn Fn() -> std::process::Command,
                 target: &str|
     -> f64 {
        let mut s = server()
            .args(["iperf3", "-s", "-1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let out = client()
            .args(["iperf3", "-c", target, "-t", "5", "-J"])
            .output()
            .unwrap();
        let _ = s.wait();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
            / 1e9
    };
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    // The same two container hops without any encapsulation: a namespace on
    // each host behind a veth, routed across the underlay. What the overlay
    // costs beyond any container network is overlay / routed.
    let (ra, rb) = (routed_container(a, 1), routed_container(b, 2));
    ip(
        &a.netd.host,
        &["route", "add", "10.78.2.0/24", "via", "192.168.60.2"],
    );
    ip(
        &b.netd.host,
        &["route", "add", "10.78.1.0/24", "via", "192.168.60.1"],
    );
    // As the underlay comes (veths without GRO), then with GRO on the underlay
    // links, as a real NIC has it: VXLAN gains most from it.
    for gro in ["off", "on"] {
        for m in [a, b] {
            let _ = on_host(&m.netd.host)()
                .args(["ethtool", "-K", "u0", "gro", gro])
                .output();
        }
        let mut overlay = Vec::new();
        let mut routed = Vec::new();
        let mut plain = Vec::new();
        for _ in 0..3 {
            overlay.push(iperf(
                &in_sandbox(b, &b.sb),
                &in_sandbox(a, &a.sb),
                &ipv4(&b.ep),
            ));
            routed.push(iperf(&on_host(&rb), &on_host(&ra), "10.78.2.2"));
            plain.push(iperf(
                &on_host(&b.netd.host),
                &on_host(&a.netd.host),
                "192.168.60.2",
            ));
        }
        println!(
            "iperf3 TCP, 5 s, best of 3, underlay GRO {gro}: overlay {:.2} Gbit/s, routed containers {:.2} Gbit/s, underlay {:.2} Gbit/s; overlay/underlay {:.2}, overlay/routed {:.2}",
            best(&overlay),
            best(&routed),
            best(&plain),
            best(&overlay) / best(&plain),
            best(&overlay) / best(&routed)
        );
    }
    // A jumbo-frame underlay (MTU 9000, as data centre networks often have):
    // an overlay network with MTU 8950 on it, against the same underlay.
    for (m, port) in [(a, "p1"), (b, "p2")] {
        ip(&m.netd.host, &["link", "set", "u0", "mtu", "9000"]);
        ip(&switch, &["link", "set", port, "mtu", "9000"]);
    }
    let mut jumbo = common::lab::overlay("ovj", "10.91.0.0/24");
    jumbo
        .options
        .insert(drivers::bridge::OPTION_MTU.into(), "8950".into());
    let ends: Vec<_> = [a, b]
        .iter()
        .map(|m| {
            let c = m.netd.client.clone();
            rt.block_on(async {
                c.create_network(&jumbo).await.unwrap();
                let sb = c.create_sandbox(&sandbox("jumbo")).await.unwrap();
                let ep = c.attach(&sb.name, &attach("ovj")).await.unwrap();
                (sb, ep)
            })
        })
        .collect();
    let (mut overlay, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        overlay.push(iperf(
            &in_sandbox(b, &ends[1].0),
            &in_sandbox(a, &ends[0].0),
            &ipv4(&ends[1].1),
        ));
        plain.push(iperf(
            &on_host(&b.netd.host),
            &on_host(&a.netd.host),
            "192.168.60.2",
        ));
    }
    println!(
        "iperf3 TCP, 5 s, best of 3, underlay MTU 9000, overlay MTU 8950: overlay {:.2} Gbit/s, underlay {:.2} Gbit/s; overlay/underlay {:.2}",
        best(&overlay),
        best(&plain),
        best(&overlay) / best(&plain)
    );
    drop(switch);
}

/// A namespace behind a veth on `m`'s host, as 10.78.`n`.2/24 (the host end
/// 10.78.`n`.1), with no bridge and no tunnel.
fn routed_container(m: &common::lab::Member, n: u8) -> TestHost {
    let c = TestHost::new().unwrap();
    let host = &m.netd.host;
    ip(
        host,
        &[
            "link",
            "add",
            "rv",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            c.name(),
        ],
    );
    ip(
        host,
        &["addr", "add", &format!("10.78.{n}.1/24"), "dev", "rv"],
    );
    ip(host, &["link", "set", "rv", "up"]);
    ip(
        &c,
        &["addr", "add", &format!("10.78.{n}.2/24"), "dev", "eth0"],
    );
    ip(&c, &["link", "set", "eth0", "up"]);
    ip(
        &c,
        &["route", "add", "default", "via", &format!("10.78.{n}.1")],
    );
    c
}

/// A command maker running inside sandbox `sb` of `m`'s host.
fn in_sandbox<'a>(
    m: &'a common::lab::Member,
    sb: &netd::model::SandboxRecord,
) -> impl Fn() -> std::process::Command + 'a {
    let path = sb.netns.display().to_string();
    move || {
        let mut c = m.netd.host.command("nsenter");
        c.arg(format!("--net={path}"));
        c
    }
}

/// A command maker running in host `h`'s namespace.
fn on_host(h: &TestHost) -> impl Fn() -> std::process::Command {
    let name = h.name().to_string();
    move || {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &name]);
        c
    }
}

/// How long after `start` each watch gave its next event.
async fn wait_all(watches: &mut [cluster::PeerWatch], start: Instant) -> Vec<Duration> {
    let mut each = Vec::new();
    for w in watches.iter_mut() {
        w.next().await.unwrap();
        each.push(start.elapsed());
    }
    each
}

fn simulated_cluster() {
    let h = TestHost::new().unwrap();
    let etcd = Etcd::start(&h).unwrap();
    let endpoint = etcd.endpoint().to_string();
    let metrics = || -> f64 {
        let text = h
            .run("curl", &["-s", &format!("{endpoint}/metrics")])
            .unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("grpc_server_handled_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let (appear, gone, at_rest) = h
        .block_on_inside(|| async {
            use cluster::{
                Cluster, ClusterOptions, HostRecord, Membership, OverlayRequest, PeerEvent,
                PeerRecord, PeerWatch,
            };
            let c = Cluster::connect(&ClusterOptions::new(vec![endpoint.clone()]))
                .await
                .unwrap();
            let spec = c
                .ensure_network(
                    &OverlayRequest {
                        name: "sim".into(),
                        subnet: "10.200.0.0/16".parse().unwrap(),
                        ..Default::default()
                    },
                    "h0",
                )
                .await
                .unwrap();
            let mut hosts = Vec::new();
            let mut watches = Vec::new();
            for i in 0..100u32 {
                // One connection per simulated host, as 100 netds would have.
                let c = Cluster::connect(&ClusterOptions::new(vec![endpoint.clone()]))
                    .await
                    .unwrap();
                let record = HostRecord {
                    host: format!("h{i}"),
                    name: format!("h{i}"),
                    vtep: format!("192.168.{}.{}", 100 + i / 250, 1 + i % 250)
                        .parse()
                        .unwrap(),
                    vxlan_port: 4789,
                    joined: 0,
                };
                let m = Membership::join(c.clone(), record, Duration::from_secs(15), None)
                    .await
                    .unwrap();
                let mut w = PeerWatch::start(c.clone(), spec.id.clone());
                assert!(matches!(w.next().await, Some(PeerEvent::Resync(_))));
                hosts.push((c, m));
                watches.push(w);
            }
            let peer = PeerRecord {
                ip: "10.200.0.5".parse().unwrap(),
                mac: "02:42:0a:c8:00:05".into(),
                host: "h7".into(),
                vtep: "192.168.100.8".parse().unwrap(),
            };
            let start = Instant::now();
            hosts[7]
                .0
                .put_peer(&spec.id, &peer, hosts[7].1.lease())
                .await
                .unwrap();
            let mut appear = wait_all(&mut watches, start).await;
            let appear_all = start.elapsed();
            // Host 7 leaves: its lease and everything under it go.
            let (_, m7) = hosts.remove(7);
            let start = Instant::now();
            m7.leave().await.unwrap();
            let mut gone = wait_all(&mut watches, start).await;
            let gone_all = start.elapsed();
            (
                (percentile(&mut appear, 0.5), appear_all),
                (percentile(&mut gone, 0.5), gone_all),
                {
                    // Quiet: keep-alives only.
                    let before = metrics();
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    (metrics() - before) / 20.0
                },
            )
        })
        .unwrap();
    println!(
        "simulated 100 hosts, one endpoint appears: p50 {}, all 100 {}",
        ms(appear.0),
        ms(appear.1)
    );
    println!(
        "simulated 100 hosts, one host leaves: its endpoint gone p50 {}, all 99 {}",
        ms(gone.0),
        ms(gone.1)
    );
    println!("etcd requests at rest with 100 hosts: {at_rest:.1}/s");
}
