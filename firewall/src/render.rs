//! nft scripts rendered from what the firewall is told: the whole table (at start
//! and when something wiped it), and the few commands each change needs. Every
//! script is applied by one `nft -f`, so one kernel transaction.
//!
//! Layout: base chains hold a fixed handful of rules and dispatch through verdict
//! maps keyed by bridge (forward, postrouting) or by subnet (protect); each network has
//! its own small chains. Published ports are elements of DNAT maps. So a network is
//! a few chains and map elements, a port is a map element, and an endpoint without
//! ports changes nothing.

use crate::spec::{GatewayMode, NetworkRules, PublishedPort};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::IpAddr;

/// The table's family and name: everything netd programs is in it.
pub const TABLE: &str = "inet netd";

/// The table's sets and maps: (keyword, name, type and flags).
const SETS: &[(&str, &str, &str)] = &[
    ("set", "bridges", "type ifname; comment \"netd's bridges\";"),
    ("set", "foreign_bridges", "type ifname; comment \"bridges netd did not make (dockerd's, ...)\";"),
    ("map", "ports4_any", "type inet_proto . inet_service : ipv4_addr . inet_service;"),
    ("map", "ports4_ip", "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;"),
    ("map", "ports6_any", "type inet_proto . inet_service : ipv6_addr . inet_service;"),
    ("map", "ports6_ip", "type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service;"),
    ("set", "local_only4", "type ipv4_addr . inet_proto . inet_service; comment \"ports published on loopback\";"),
    ("set", "local_only6", "type ipv6_addr . inet_proto . inet_service; comment \"ports published on loopback\";"),
    ("set", "open4", "type ipv4_addr . inet_proto . inet_service; comment \"published container ports (routed networks, trusted interfaces)\";"),
    ("set", "open6", "type ipv6_addr . inet_proto . inet_service; comment \"published container ports (routed networks, trusted interfaces)\";"),
    ("map", "raw4", "type ipv4_addr : verdict; flags interval; comment \"protected subnets\";"),
    ("map", "raw6", "type ipv6_addr : verdict; flags interval; comment \"protected subnets\";"),
    ("map", "forward_in", "type ifname : verdict;"),
    ("map", "forward_out", "type ifname : verdict;"),
    ("map", "nat_in", "type ifname : verdict;"),
    ("map", "nat_out", "type ifname : verdict;"),
    ("set", "vxlan_ports", "type inet_service; comment \"UDP ports of netd's overlays\";"),
    ("set", "vxlan_local4", "type ipv4_addr; comment \"this host's VTEP\";"),
    ("set", "vxlan_local6", "type ipv6_addr; comment \"this host's VTEP\";"),
    ("set", "vxlan_peers4", "type ipv4_addr; comment \"the cluster's hosts: the only VXLAN senders accepted\";"),
    ("set", "vxlan_peers6", "type ipv6_addr; comment \"the cluster's hosts: the only VXLAN senders accepted\";"),
];

/// The base chains: (name, hook line, rules). `protect` runs after conntrack
/// (so answers to connections a container opened pass) and before DNAT (so it sees
/// the address a packet was sent to).
const BASE_CHAINS: &[(&str, &str, &[&str])] = &[
    (
        // VXLAN has no authentication: on an overlay's port at this host's VTEP
        // only the cluster's hosts are heard, from where the routes say they
        // are, before conntrack or the VXLAN device sees a packet. With no peer
        // known yet, nothing is (closed, not open). Other traffic to the port
        // (forwarded, or to another address) is not netd's and passes.
        "vxlan",
        "type filter hook prerouting priority raw; policy accept;",
        &[
            "ip daddr @vxlan_local4 udp dport @vxlan_ports fib saddr . iif oif missing drop",
            "ip daddr @vxlan_local4 udp dport @vxlan_ports ip saddr != @vxlan_peers4 drop",
            "ip6 daddr @vxlan_local6 udp dport @vxlan_ports fib saddr . iif oif missing drop",
            "ip6 daddr @vxlan_local6 udp dport @vxlan_ports ip6 saddr != @vxlan_peers6 drop",
        ],
    ),
    (
        "protect",
        "type filter hook prerouting priority mangle; policy accept;",
        &[
            // Containers never reach the host's loopback (netd's bridges have
            // route_localnet), not even a flow that exists.
            "iifname @bridges ip daddr 127.0.0.0/8 drop",
            "iifname @bridges ip saddr 127.0.0.0/8 drop",
            "ct state established,related accept",
            "iifname != \"lo\" ip daddr . meta l4proto . th dport @local_only4 drop",
            "iifname != \"lo\" ip6 daddr . meta l4proto . th dport @local_only6 drop",
            "ip daddr vmap @raw4",
            "ip6 daddr vmap @raw6",
        ],
    ),
    (
        "publish",
        "",
        &[
            // IPv6 has no route_localnet: an answer to ::1 could not come back.
            "ip6 daddr ::1 return",
            // Link-local sources are never DNATed (the answer could not be routed).
            "ip6 saddr fe80::/10 return",
            "dnat ip to ip daddr . meta l4proto . th dport map @ports4_ip",
            "dnat ip to meta l4proto . th dport map @ports4_any",
            "dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6_ip",
            "dnat ip6 to meta l4proto . th dport map @ports6_any",
        ],
    ),
    (
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        &["fib daddr type local jump publish"],
    ),
    (
        "output",
        "type nat hook output priority -100; policy accept;",
        &["fib daddr type local jump publish"],
    ),
    (
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        &["oifname vmap @nat_out", "iifname vmap @nat_in"],
    ),
    (
        "forward",
        "type filter hook forward priority filter; policy accept;",
        &[
            "ct state established,related accept",
            "iifname vmap @forward_in",
            "oifname vmap @forward_out",
        ],
    ),
];

fn block_chain(name: &str, hook: &str, rules: &[String], out: &mut String) {
    let _ = writeln!(out, "\tchain {name} {{");
    if !hook.is_empty() {
        let _ = writeln!(out, "\t\t{hook}");
    }
    for r in rules {
        let _ = writeln!(out, "\t\t{r}");
    }
    let _ = writeln!(out, "\t}}");
}

/// The whole table as one block, elements inline. (One block because the kernel
/// refuses, in the transaction that makes an interval map, an element that jumps
/// to a chain made by a separate `add chain` command.)
fn table_block(networks: &[&NetworkRules], elements: &[(&'static str, String)]) -> String {
    let mut out = format!("table {TABLE} {{\n");
    let _ = writeln!(
        out,
        "\tcomment \"netd's firewall: changed only by netd; `netd firewall show` explains it\""
    );
    for (keyword, name, spec) in SETS {
        let mine: Vec<&str> = elements
            .iter()
            .filter(|(set, _)| set == name)
            .map(|(_, e)| e.as_str())
            .collect();
        if mine.is_empty() {
            let _ = writeln!(out, "\t{keyword} {name} {{ {spec} }}");
        } else {
            let _ = writeln!(
                out,
                "\t{keyword} {name} {{ {spec} elements = {{ {} }} }}",
                mine.join(", ")
            );
        }
    }
    for (name, hook, rules) in BASE_CHAINS {
        let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        block_chain(name, hook, &rules, &mut out);
    }
    for n in networks {
        for (name, rules) in network_chains(n) {
            block_chain(&name, "", &rules, &mut out);
        }
    }
    out.push_str("}\n");
    out
}

/// Chain names of a network.
struct Chains {
    forward_in: String,
    forward_out: String,
    nat_in: String,
    nat_out: String,
    direct: String,
}

fn chains(n: &NetworkRules) -> Chains {
    let s = n.short();
    Chains {
        forward_in: format!("nw-{s}-from"),
        forward_out: format!("nw-{s}-to"),
        nat_in: format!("nw-{s}-nat-from"),
        nat_out: format!("nw-{s}-nat-to"),
        direct: format!("nw-{s}-direct"),
    }
}

fn family(addr: IpAddr) -> (&'static str, &'static str) {
    match addr {
        IpAddr::V4(_) => ("ip", "ipv4"),
        IpAddr::V6(_) => ("ip6", "ipv6"),
    }
}

/// Which families a network has, each with one of its addresses (for its mode).
fn families(n: &NetworkRules) -> Vec<(IpAddr, Vec<IpNet>)> {
    let mut out: Vec<(IpAddr, Vec<IpNet>)> = Vec::new();
    for subnet in &n.subnets {
        let addr = subnet.addr();
        match out.iter_mut().find(|(a, _)| a.is_ipv4() == addr.is_ipv4()) {
            Some((_, list)) => list.push(*subnet),
            None => out.push((addr, vec![*subnet])),
        }
    }
    out
}

fn set_of<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("{{ {} }}", items.join(", "))
}

fn quoted(names: &[String]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    set_of(&names)
}

/// Whether `n`'s subnets of `addr`'s family are protected from direct routing.
fn protected(n: &NetworkRules, addr: IpAddr) -> bool {
    n.policy.closed(addr) || !n.policy.mode(addr).unprotected()
}

/// `n`'s chains with their rules.
fn network_chains(n: &NetworkRules) -> Vec<(String, Vec<String>)> {
    let c = chains(n);
    let br = &n.bridge;
    let p = &n.policy;
    let fams = families(n);
    let mut rules: Vec<(String, String)> = Vec::new();
    let mut rule = |chain: &str, text: String| rules.push((chain.to_string(), text));

    // Forwarded from the bridge. A closed family goes nowhere but its own bridge,
    // not even to published ports elsewhere.
    rule(
        &c.forward_in,
        format!("oifname \"{br}\" ct status dnat accept"),
    );
    let icc = if p.icc { "accept" } else { "drop" };
    rule(&c.forward_in, format!("oifname \"{br}\" {icc}"));
    for (addr, _) in &fams {
        if p.closed(*addr) {
            rule(
                &c.forward_in,
                format!("meta nfproto {} drop", family(*addr).1),
            );
        }
    }
    for set in ["@bridges", "@foreign_bridges"] {
        rule(
            &c.forward_in,
            format!("oifname {set} ct status dnat accept"),
        );
        rule(&c.forward_in, format!("oifname {set} drop"));
    }
    rule(&c.forward_in, "accept".into());

    // Forwarded to the bridge from elsewhere (answers were accepted before):
    // published ports by DNAT; from other container bridges nothing else.
    for (addr, _) in &fams {
        let (_, nfproto) = family(*addr);
        let verdict = if p.closed(*addr) {
            "drop"
        } else {
            "ct status dnat accept"
        };
        rule(&c.forward_out, format!("meta nfproto {nfproto} {verdict}"));
    }
    rule(&c.forward_out, "iifname @foreign_bridges drop".into());
    for (addr, _) in &fams {
        if p.closed(*addr) {
            continue;
        }
        let (ip, nfproto) = family(*addr);
        let open = if addr.is_ipv4() { "open4" } else { "open6" };
        let to_published = format!("{ip} daddr . meta l4proto . th dport @{open} accept");
        match p.mode(*addr) {
            GatewayMode::NatUnprotected => {
                rule(&c.forward_out, format!("meta nfproto {nfproto} accept"))
            }
            GatewayMode::Routed => {
                let icmp = if addr.is_ipv4() { "icmp" } else { "ipv6-icmp" };
                rule(&c.forward_out, format!("meta l4proto {icmp} accept"));
                rule(&c.forward_out, to_published);
            }
            GatewayMode::Nat | GatewayMode::Isolated => {
                // Trusted interfaces reach published container ports directly.
                if !p.trusted.is_empty() {
                    rule(
                        &c.forward_out,
                        format!("iifname {} {to_published}", quoted(&p.trusted)),
                    );
                }
            }
        }
    }
    rule(&c.forward_out, "drop".into());

    // Leaving by the bridge after a DNAT: from loopback, and hairpin from the
    // network itself, so the answer comes back through the host.
    for (addr, subnets) in &fams {
        let (ip, _) = family(*addr);
        let lo = if addr.is_ipv4() { "127.0.0.0/8" } else { "::1" };
        rule(
            &c.nat_out,
            format!("ct status dnat {ip} saddr {lo} masquerade"),
        );
        rule(
            &c.nat_out,
            format!("ct status dnat {ip} saddr {} masquerade", set_of(subnets)),
        );
    }

    // Leaving the host from the bridge.
    rule(&c.nat_in, format!("oifname \"{br}\" return"));
    for (addr, _) in &fams {
        let (_, nfproto) = family(*addr);
        let nat = matches!(
            p.mode(*addr),
            GatewayMode::Nat | GatewayMode::NatUnprotected
        );
        if p.closed(*addr) || !nat || !p.masquerade {
            continue;
        }
        match (addr, p.snat_ipv4) {
            (IpAddr::V4(_), Some(to)) => {
                rule(&c.nat_in, format!("meta nfproto ipv4 snat ip to {to}"))
            }
            _ => rule(&c.nat_in, format!("meta nfproto {nfproto} masquerade")),
        }
    }

    // Arriving for the network's addresses (after conntrack, before DNAT).
    rule(&c.direct, format!("iifname \"{br}\" return"));
    for gw in &n.gateways {
        let (ip, _) = family(*gw);
        rule(&c.direct, format!("{ip} daddr {gw} return"));
    }
    if !p.trusted.is_empty() {
        rule(&c.direct, format!("iifname {} return", quoted(&p.trusted)));
    }
    rule(&c.direct, "drop".into());

    [c.forward_in, c.forward_out, c.nat_in, c.nat_out, c.direct]
        .into_iter()
        .map(|chain| {
            let mine = rules
                .iter()
                .filter(|(c, _)| *c == chain)
                .map(|(_, r)| r.clone())
                .collect();
            (chain, mine)
        })
        .collect()
}

/// The elements that dispatch to `n`'s chains, as `(set, element)`.
fn network_elements(n: &NetworkRules) -> Vec<(&'static str, String)> {
    let c = chains(n);
    let br = &n.bridge;
    let mut out = vec![
        ("bridges", format!("\"{br}\"")),
        ("forward_in", format!("\"{br}\" : jump {}", c.forward_in)),
        ("forward_out", format!("\"{br}\" : jump {}", c.forward_out)),
        ("nat_in", format!("\"{br}\" : jump {}", c.nat_in)),
        ("nat_out", format!("\"{br}\" : jump {}", c.nat_out)),
    ];
    for subnet in &n.subnets {
        if protected(n, subnet.addr()) {
            let map = if subnet.addr().is_ipv4() {
                "raw4"
            } else {
                "raw6"
            };
            // goto, not jump: the kernel (6.18 with nft 1.0.6) refuses a jump
            // element added to an interval map in the transaction that makes the
            // table. The protect chain has nothing after these maps to return to.
            out.push((map, format!("{} : goto {}", subnet.trunc(), c.direct)));
        }
    }
    out
}

/// The elements a published port is, as `(set, element)`: its DNAT entry, and its
/// container port in the open set (which routed networks and trusted interfaces
/// reach directly).
fn port_elements(port: &PublishedPort) -> Vec<(&'static str, String)> {
    let v4 = port.container_ip.is_ipv4();
    let target = format!("{} . {}", port.container_ip, port.container_port);
    let key = format!("{} . {}", port.proto, port.host_port);
    let mut out = Vec::new();
    match port.host_ip {
        None => out.push((
            if v4 { "ports4_any" } else { "ports6_any" },
            format!("{key} : {target}"),
        )),
        Some(ip) => {
            out.push((
                if v4 { "ports4_ip" } else { "ports6_ip" },
                format!("{ip} . {key} : {target}"),
            ));
            if port.loopback() {
                out.push((
                    if v4 { "local_only4" } else { "local_only6" },
                    format!("{ip} . {key}"),
                ));
            }
        }
    }
    out.push((
        if v4 { "open4" } else { "open6" },
        format!(
            "{} . {} . {}",
            port.container_ip, port.proto, port.container_port
        ),
    ));
    out
}

fn elements(verb: &str, items: &[(&'static str, String)], out: &mut String) {
    for (set, element) in items {
        let _ = writeln!(out, "{verb} element {TABLE} {set} {{ {element} }}");
    }
}

/// The whole table, replacing whatever is there (one transaction).
pub fn full(
    networks: &[&NetworkRules],
    ports: &[&PublishedPort],
    foreign_bridges: &[String],
    vxlan: &[(&'static str, String)],
) -> String {
    let mut items: Vec<(&'static str, String)> =
        networks.iter().flat_map(|n| network_elements(n)).collect();
    items.extend(port_lines(ports));
    items.extend(
        foreign_bridges
            .iter()
            .map(|b| ("foreign_bridges", format!("\"{b}\""))),
    );
    items.extend(vxlan.iter().cloned());
    let mut out = format!("add table {TABLE}\ndelete table {TABLE}\n");
    out.push_str(&table_block(networks, &items));
    out
}

/// Commands adding `n`'s chains and elements.
pub fn add_network(n: &NetworkRules) -> String {
    let mut out = String::new();
    for (chain, rules) in network_chains(n) {
        let _ = writeln!(out, "add chain {TABLE} {chain}");
        for r in rules {
            let _ = writeln!(out, "add rule {TABLE} {chain} {r}");
        }
    }
    elements("add", &network_elements(n), &mut out);
    out
}

/// Commands removing `n`'s elements and chains.
pub fn delete_network(n: &NetworkRules) -> String {
    let mut out = String::new();
    elements("delete", &network_elements(n), &mut out);
    let c = chains(n);
    for chain in [
        &c.forward_in,
        &c.forward_out,
        &c.nat_in,
        &c.nat_out,
        &c.direct,
    ] {
        let _ = writeln!(out, "flush chain {TABLE} {chain}");
        let _ = writeln!(out, "delete chain {TABLE} {chain}");
    }
    out
}

/// The element lines of `ports`, deduplicated (two ports may open one container port).
fn port_lines(ports: &[&PublishedPort]) -> Vec<(&'static str, String)> {
    let set: BTreeSet<(&'static str, String)> =
        ports.iter().flat_map(|p| port_elements(p)).collect();
    set.into_iter().collect()
}

/// Commands adding `ports`.
pub fn add_ports(ports: &[&PublishedPort]) -> String {
    let mut out = String::new();
    elements("add", &port_lines(ports), &mut out);
    out
}

/// Commands removing `ports`, keeping elements that `staying` still needs.
pub fn delete_ports(ports: &[&PublishedPort], staying: &[&PublishedPort]) -> String {
    let keep: BTreeSet<(&'static str, String)> = port_lines(staying).into_iter().collect();
    let gone: Vec<_> = port_lines(ports)
        .into_iter()
        .filter(|e| !keep.contains(e))
        .collect();
    let mut out = String::new();
    elements("delete", &gone, &mut out);
    out
}

/// The elements of the VXLAN filter: the overlays' `ports` at this host's
/// `locals` (its VTEPs), and the `peers` heard on them.
pub fn vxlan_elements(
    ports: &[u16],
    locals: &[IpAddr],
    peers: &[IpAddr],
) -> Vec<(&'static str, String)> {
    let mut out: BTreeSet<(&'static str, String)> = ports
        .iter()
        .map(|p| ("vxlan_ports", p.to_string()))
        .collect();
    for l in locals {
        let set = if l.is_ipv4() {
            "vxlan_local4"
        } else {
            "vxlan_local6"
        };
        out.insert((set, l.to_string()));
    }
    for p in peers {
        let set = if p.is_ipv4() {
            "vxlan_peers4"
        } else {
            "vxlan_peers6"
        };
        out.insert((set, p.to_string()));
    }
    out.into_iter().collect()
}

/// Commands changing elements from `before` to `after`.
pub fn change_elements(
    before: &[(&'static str, String)],
    after: &[(&'static str, String)],
    out: &mut String,
) {
    let gone: Vec<_> = before
        .iter()
        .filter(|e| !after.contains(e))
        .cloned()
        .collect();
    let new: Vec<_> = after
        .iter()
        .filter(|e| !before.contains(e))
        .cloned()
        .collect();
    elements("delete", &gone, out);
    elements("add", &new, out);
}

/// Commands changing the foreign-bridge set from `before` to `after`.
pub fn set_foreign_bridges(before: &[String], after: &[String], out: &mut String) {
    let gone: Vec<(&'static str, String)> = before
        .iter()
        .filter(|b| !after.contains(b))
        .map(|b| ("foreign_bridges", format!("\"{b}\"")))
        .collect();
    let new: Vec<(&'static str, String)> = after
        .iter()
        .filter(|b| !before.contains(b))
        .map(|b| ("foreign_bridges", format!("\"{b}\"")))
        .collect();
    elements("delete", &gone, out);
    elements("add", &new, out);
}

/// How many rules each of `n`'s chains has and how many elements it adds to each
/// set: what a check compares with the kernel.
pub fn expected_counts(
    networks: &[&NetworkRules],
    ports: &[&PublishedPort],
    foreign_bridges: usize,
    vxlan: &[(&'static str, String)],
) -> Counts {
    let mut counts = Counts::default();
    for (chain, _, rules) in BASE_CHAINS {
        counts.rules.insert(chain.to_string(), rules.len());
    }
    for n in networks {
        for (chain, rules) in network_chains(n) {
            if !rules.is_empty() {
                counts.rules.insert(chain, rules.len());
            }
        }
    }
    let mut items: Vec<(&'static str, String)> =
        networks.iter().flat_map(|n| network_elements(n)).collect();
    items.extend(port_lines(ports));
    items.extend(vxlan.iter().cloned());
    for (set, _) in items {
        *counts.elements.entry(set.to_string()).or_default() += 1;
    }
    if foreign_bridges > 0 {
        counts
            .elements
            .insert("foreign_bridges".into(), foreign_bridges);
    }
    counts
}

/// Rules per network chain and elements per set.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rules in each network chain.
    pub rules: std::collections::BTreeMap<String, usize>,
    /// Elements in each set or map (empty ones absent).
    pub elements: std::collections::BTreeMap<String, usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Policy, Proto};

    fn net() -> NetworkRules {
        NetworkRules {
            id: "0123456789ab".repeat(5) + "cdef",
            name: "n1".into(),
            bridge: "br-0123456789ab".into(),
            subnets: vec!["10.1.0.0/24".parse().unwrap()],
            gateways: vec!["10.1.0.1".parse().unwrap()],
            policy: Policy::default(),
        }
    }

    #[test]
    fn an_internal_network_has_no_masquerade_and_drops_its_family() {
        let mut n = net();
        n.policy.internal = true;
        let s = add_network(&n);
        assert!(!s.contains("meta nfproto ipv4 masquerade"), "{s}");
        assert!(
            s.contains("nw-0123456789ab-from meta nfproto ipv4 drop"),
            "{s}"
        );
    }

    #[test]
    fn a_routed_network_is_not_protected_and_opens_its_ports() {
        let mut n = net();
        n.policy.mode_ipv4 = GatewayMode::Routed;
        assert!(network_elements(&n).iter().all(|(s, _)| *s != "raw4"));
        let port = PublishedPort {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_ip: "10.1.0.2".parse().unwrap(),
            container_port: 80,
            held_by_caller: false,
        };
        let s = add_ports(&[&port]);
        assert!(s.contains("open4 { 10.1.0.2 . tcp . 80 }"), "{s}");
    }

    #[test]
    fn a_shared_open_element_stays_until_its_last_port_goes() {
        let a = PublishedPort {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_ip: "10.1.0.2".parse().unwrap(),
            container_port: 80,
            held_by_caller: false,
        };
        let b = PublishedPort {
            host_port: 8081,
            ..a.clone()
        };
        let s = delete_ports(&[&a], &[&b]);
        assert!(!s.contains("open4"), "{s}");
        assert!(s.contains("ports4_any { tcp . 8080"), "{s}");
    }
}
