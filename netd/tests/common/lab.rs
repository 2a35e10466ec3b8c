//! A cluster lab on one machine: an underlay "switch" host (bridge `sw`), etcd
//! in a host plugged into it at 192.168.60.10, and netd hosts plugged in at
//! 192.168.60.1, .2, ..., each in the cluster with a sandbox on overlay `ov1`.

#![allow(dead_code)]

use super::{attach, network, runtime, sandbox, Netd};
use netd::model::{EndpointRecord, SandboxRecord};
use std::time::{Duration, Instant};
use tests::TestHost;

pub const ETCD: &str = "192.168.60.10";

/// `ip -n HOST args...`, from outside the host.
pub fn ip(host: &TestHost, args: &[&str]) -> String {
    tool(host, "ip", args)
}

pub fn tool(host: &TestHost, program: &str, args: &[&str]) -> String {
    host.netns_tool(program, args)
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

/// Plug `host` into the switch as `addr`/24 (its port there is `port`).
pub fn plug(switch: &TestHost, host: &TestHost, port: &str, addr: &str) {
    ip(
        switch,
        &[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "u0",
            "netns",
            host.name(),
        ],
    );
    ip(switch, &["link", "set", port, "master", "sw", "up"]);
    ip(host, &["addr", "add", &format!("{addr}/24"), "dev", "u0"]);
    ip(host, &["link", "set", "u0", "up"]);
}

pub fn overlay(name: &str, subnet: &str) -> netd::controller::NetworkCreate {
    let mut req = network(name, subnet);
    req.options.insert("com.netd.overlay".into(), "true".into());
    req
}

pub fn within(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

pub fn ipv4(ep: &EndpointRecord) -> String {
    super::ipv4(ep)
}

pub struct Member {
    pub netd: Netd,
    pub sb: SandboxRecord,
    pub ep: EndpointRecord,
}

/// The underlay: a switch host with bridge `sw`, and etcd's host plugged in.
pub fn underlay() -> (TestHost, TestHost) {
    let switch = TestHost::new().unwrap();
    ip(&switch, &["link", "add", "sw", "type", "bridge"]);
    ip(&switch, &["link", "set", "sw", "up"]);
    let etcd_host = TestHost::new().unwrap();
    plug(&switch, &etcd_host, "pe", ETCD);
    (switch, etcd_host)
}

/// `count` netd hosts on the switch (192.168.60.1, .2, ...), each with a
/// sandbox on overlay `ov1`.
pub fn members(switch: &TestHost, count: u8) -> Vec<Member> {
    (1..=count).map(|n| member(switch, n, "ov1")).collect()
}

/// Netd host `n` on the switch (192.168.60.`n`), in the cluster, with sandbox
/// `s<n>` on overlay `network` (10.90.0.0/24).
pub fn member(switch: &TestHost, n: u8, network: &str) -> Member {
    let netd = cluster_netd(switch, n, 1500);
    let c = netd.client.clone();
    let (sb, ep) = runtime().block_on(async {
        // Every host asks for the network by name: one network.
        let net = c
            .create_network(&overlay(network, "10.90.0.0/24"))
            .await
            .unwrap();
        assert_eq!(net.subnets[0].gateway.unwrap().to_string(), "10.90.0.1");
        let sb = c.create_sandbox(&sandbox(&format!("s{n}"))).await.unwrap();
        let ep = c.attach(&sb.name, &attach(network)).await.unwrap();
        (sb, ep)
    });
    Member { netd, sb, ep }
}

/// Netd host `n` on the switch (192.168.60.`n`, its underlay link's MTU
/// `mtu`), in the cluster.
pub fn cluster_netd(switch: &TestHost, n: u8, mtu: u32) -> Netd {
    let store = format!("etcd://{ETCD}:2379");
    let host = TestHost::new().unwrap();
    let addr = format!("192.168.60.{n}");
    let port = format!("p{n}");
    plug(switch, &host, &port, &addr);
    for (h, link) in [(switch, port.as_str()), (&host, "u0")] {
        ip(h, &["link", "set", link, "mtu", &mtu.to_string()]);
    }
    Netd::start_on(
        host,
        false,
        &[
            "--cluster-store",
            &store,
            "--advertise-addr",
            &addr,
            "--cluster-lease-ttl",
            "3",
        ],
    )
}
