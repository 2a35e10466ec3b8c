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

/// Whether `orig` (an entry's original-direction tuple) is a UDP flow to one of
/// `ports`.
fn matches(orig: &[Tuple], ports: &[&PublishedPort]) -> bool {
    let mut dst = None;
    let mut port = None;
    let mut udp = false;
    for t in orig {
        match t {
            Tuple::Ip(ips) => {
                for ip in ips {
                    if let IPTuple::DestinationAddress(a) = ip {
                        dst = Some(*a);
                    }
                }
            }
            Tuple::Proto(protos) => {
                for p in protos {
                    match p {
                        ProtoTuple::Protocol(Protocol::Udp) => udp = true,
                        ProtoTuple::DestinationPort(n) => port = Some(*n),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(dst), Some(port), true) = (dst, port, udp) else {
        return false;
    };
    ports.iter().any(|p| {
        p.host_port == port
            && p.container_ip.is_ipv4() == dst.is_ipv4()
            && p.host_ip.is_none_or(|h| h == dst)
    })
}

/// Delete the conntrack entries of UDP flows to the host side of `ports` (others
/// are ignored); how many went. Blocking: call it off the runtime's workers.
pub fn forget_udp_flows(ports: &[PublishedPort]) -> Result<usize, FirewallError> {
    let udp: Vec<&PublishedPort> = ports.iter().filter(|p| p.proto == Proto::Udp).collect();
    if udp.is_empty() {
        return Ok(0);
    }
    let socket = open()?;
    let mut doomed: Vec<(NetfilterProtoFamily, Vec<Tuple>)> = Vec::new();
    let mut seq = 1;
    for (family, v4) in [
        (NetfilterProtoFamily::IPv4, true),
        (NetfilterProtoFamily::IPv6, false),
    ] {
        if !udp.iter().any(|p| p.container_ip.is_ipv4() == v4) {
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
            for a in attrs {
                if let ConntrackAttribute::CtaTupleOrig(orig) = a {
                    if matches(&orig, &udp) {
                        doomed.push((family, orig));
                    }
                }
            }
        })
        .map_err(io("listing conntrack entries"))?;
        seq += 1;
    }
    let count = doomed.len();
    for (family, orig) in doomed {
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
