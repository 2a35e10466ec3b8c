//! Forgetting UDP flows to a newly published port. A client that sent to the host
//! port before it was published has a conntrack entry without DNAT; its later
//! datagrams would follow that entry to the host (netd's drop-all socket) for as
//! long as it keeps sending. Deleting the entries lets the next datagram meet the
//! DNAT map. (TCP needs nothing: a new connection is a new entry.)

use crate::spec::{Proto, PublishedPort};
use crate::FirewallError;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

fn io(doing: &str) -> impl FnOnce(std::io::Error) -> FirewallError + '_ {
    move |source| FirewallError::Io {
        doing: doing.to_string(),
        source,
    }
}

fn send(socket: &Socket, msg: NetfilterMessage, flags: u16, seq: u32) -> std::io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0).map(|_| ())
}

/// Read answers to request `seq` until its end (a dump's DONE, or the ACK);
/// each message that carries conntrack attributes goes to `each`.
fn receive(
    socket: &Socket,
    seq: u32,
    mut each: impl FnMut(Vec<ConntrackAttribute>),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut offset = 0;
        while offset < n {
            let bytes = &buf[offset..n];
            let msg = match NetlinkMessage::<NetfilterMessage>::deserialize(bytes) {
                Ok(m) => m,
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            };
            let len = msg.header.length as usize;
            if len == 0 {
                return Ok(());
            }
            offset += len;
            if msg.header.sequence_number != seq {
                continue;
            }
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(()),
                        // An entry that went on its own meanwhile.
                        Some(code) if -code.get() == libc_enoent() => Ok(()),
                        Some(code) => Err(std::io::Error::from_raw_os_error(-code.get())),
                    };
                }
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                    ..
                }) => each(attrs),
                _ => {}
            }
        }
    }
}

fn libc_enoent() -> i32 {
    std::io::Error::from(std::io::ErrorKind::NotFound)
        .raw_os_error()
        .unwrap_or(2)
}

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
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("opening a conntrack socket"))?;
    socket
        .bind(&SocketAddr::new(0, 0))
        .map_err(io("binding a conntrack socket"))?;
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
        receive(&socket, seq, |attrs| {
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
