//! Forgetting UDP flows to a newly published port. A client that sent to the host
//! port before it was published has a conntrack entry without DNAT; its later
//! datagrams would follow that entry to the host (netd's drop-all socket) for as
//! long as it keeps sending. Deleting the entries lets the next datagram meet the
//! DNAT map. (TCP needs nothing: a new connection is a new entry.)

use crate::netfilter::{io, open, receive, send};
use crate::spec::{Proto, PublishedPort};
use crate::FirewallError;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use std::net::IpAddr;

/// One direction of an entry: (source, destination) addresses and ports, UDP only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
}

fn udp_flow(tuple: &[Tuple]) -> Option<Flow> {
    let (mut src, mut dst, mut sport, mut dport, mut udp) = (None, None, None, None, false);
    for t in tuple {
        match t {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(protos) => {
                for p in protos {
                    match p {
                        ProtoTuple::Protocol(Protocol::Udp) => udp = true,
                        ProtoTuple::SourcePort(n) => sport = Some(*n),
                        ProtoTuple::DestinationPort(n) => dport = Some(*n),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    udp.then_some(())?;
    Some(Flow {
        src: (src?, sport?),
        dst: (dst?, dport?),
    })
}

/// The host's own addresses (in this network namespace).
fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

/// Delete every UDP entry of the families in `ports` for which `doomed(original,
/// reply)` holds; how many went.
fn forget(
    ports: &[&PublishedPort],
    doomed: impl Fn(Flow, Flow) -> bool,
) -> Result<usize, FirewallError> {
    let socket = open()?;
    let mut found: Vec<(NetfilterProtoFamily, Vec<Tuple>)> = Vec::new();
    let mut seq = 1;
    for (family, v4) in [
        (NetfilterProtoFamily::IPv4, true),
        (NetfilterProtoFamily::IPv6, false),
    ] {
        if !ports.iter().any(|p| p.container_ip.is_ipv4() == v4) {
            continue;
        }
        let dump = NetfilterMessage::new(
            NetfilterHeader::new(family, 0, 0),
            ConntrackMessage::Get(Vec::new()),
        );
        send(&socket, dump, NLM_F_REQUEST | NLM_F_DUMP, seq)
            .map_err(io("listing conntrack entries"))?;
        receive(&socket, seq, |inner| {
            let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) = inner else {
                return;
            };
            let (mut orig, mut reply) = (None, None);
            for a in attrs {
                match a {
                    ConntrackAttribute::CtaTupleOrig(t) => orig = Some(t),
                    ConntrackAttribute::CtaTupleReply(t) => reply = Some(t),
                    _ => {}
                }
            }
            let (Some(orig), Some(reply)) = (orig, reply) else {
                return;
            };
            if let (Some(o), Some(r)) = (udp_flow(&orig), udp_flow(&reply)) {
                if doomed(o, r) {
                    found.push((family, orig));
                }
            }
        })
        .map_err(io("listing conntrack entries"))?;
        seq += 1;
    }
    let count = found.len();
    for (family, orig) in found {
        let delete = NetfilterMessage::new(
            NetfilterHeader::new(family, 0, 0),
            ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(orig)]),
        );
        send(&socket, delete, NLM_F_REQUEST | NLM_F_ACK, seq)
            .map_err(io("deleting a conntrack entry"))?;
        receive(&socket, seq, |_| {}).map_err(io("deleting a conntrack entry"))?;
        seq += 1;
    }
    Ok(count)
}

/// Delete the entries of UDP flows to the host side of `ports` that no DNAT
/// took (they were made before the port was published): sent to one of this
/// host's addresses (the port's own, if it has one), answered by the host itself.
/// Flows the host forwards elsewhere are not touched. Blocking: call it off the
/// runtime's workers.
pub fn forget_udp_flows(ports: &[PublishedPort]) -> Result<usize, FirewallError> {
    let udp: Vec<&PublishedPort> = ports.iter().filter(|p| p.proto == Proto::Udp).collect();
    if udp.is_empty() {
        return Ok(0);
    }
    let local = local_addresses();
    forget(&udp, |orig, reply| {
        let undnatted = reply.src == orig.dst;
        let (dst, port) = orig.dst;
        undnatted
            && udp.iter().any(|p| {
                p.host_port == port
                    && p.container_ip.is_ipv4() == dst.is_ipv4()
                    && match p.host_ip {
                        Some(h) => h == dst,
                        None => local.contains(&dst),
                    }
            })
    })
}

/// Delete the entries of UDP flows answered by the container side of `ports`
/// (unpublished: a flow still going would keep reaching the container, or the
/// next one to get its address). Blocking.
pub fn forget_udp_flows_to_containers(ports: &[PublishedPort]) -> Result<usize, FirewallError> {
    let udp: Vec<&PublishedPort> = ports.iter().filter(|p| p.proto == Proto::Udp).collect();
    if udp.is_empty() {
        return Ok(0);
    }
    forget(&udp, |_, reply| {
        udp.iter()
            .any(|p| reply.src == (p.container_ip, p.container_port))
    })
}
