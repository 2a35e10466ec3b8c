//! A netfilter netlink socket: requests and their answers (conntrack entries,
//! nftables' generation).

use crate::FirewallError;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

/// Set on each message of a multipart answer (a dump), which ends with DONE.
const NLM_F_MULTI: u16 = 2;

/// A netfilter socket in this process's network namespace.
pub(crate) fn open() -> Result<Socket, FirewallError> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("opening a netfilter socket"))?;
    socket
        .bind(&SocketAddr::new(0, 0))
        .map_err(io("binding a netfilter socket"))?;
    Ok(socket)
}

pub(crate) fn io(doing: &str) -> impl FnOnce(std::io::Error) -> FirewallError + '_ {
    move |source| FirewallError::Io {
        doing: doing.to_string(),
        source,
    }
}

pub(crate) fn send(
    socket: &Socket,
    msg: NetfilterMessage,
    flags: u16,
    seq: u32,
) -> std::io::Result<()> {
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
/// each netfilter message goes to `each`.
pub(crate) fn receive(
    socket: &Socket,
    seq: u32,
    mut each: impl FnMut(NetfilterMessageInner),
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
                NetlinkPayload::InnerMessage(NetfilterMessage { inner, .. }) => {
                    each(inner);
                    // A plain request's answer is one message (a dump ends with DONE).
                    if msg.header.flags & NLM_F_MULTI == 0 {
                        return Ok(());
                    }
                }
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
