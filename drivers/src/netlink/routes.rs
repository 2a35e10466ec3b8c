//! The namespace's routes, kept current from the kernel's route notifications, so
//! that choosing a free subnet does not read every route of the host each time
//! (with a thousand networks, a thousand bridge routes).
//!
//! A thread of its own subscribes to IPv4 and IPv6 route changes and to link
//! changes, then lists the routes once and applies each change to that list (a
//! link that goes down or away takes its routes with it, unannounced); if the
//! kernel drops notifications (its queue overflowed), it lists them again.

use super::direct::{DirectSocket, Request};
use super::NetlinkError;
use ipnet::IpNet;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_DUMP};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rtnetlink::RouteMessageBuilder;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// `RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE`: links too, because the
/// kernel removes a link's routes without a notification when the link goes down
/// or away.
const ROUTE_GROUPS: u32 = 0x1 | 0x40 | 0x400;
/// Room for a burst of notifications before the kernel drops some.
const RECEIVE_BUFFER: usize = 4 << 20;

/// What tells one route from another: its table, destination, metric, device.
type RouteKey = (u32, IpNet, u32, u32);

/// The main table's routes other than default routes, kept current.
#[derive(Debug, Clone)]
pub struct RouteWatch {
    routes: Arc<Mutex<BTreeMap<RouteKey, ()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain inserts and removes: a panic cannot leave the map half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RouteWatch {
    /// Start watching the routes of the namespace `enter` puts the watcher's
    /// thread in (`enter` runs first on that thread; it does nothing for the
    /// process's own namespace). Fails if the first listing fails.
    pub fn start(
        enter: impl FnOnce() -> Result<(), NetlinkError> + Send + 'static,
    ) -> Result<RouteWatch, NetlinkError> {
        let routes: Arc<Mutex<BTreeMap<RouteKey, ()>>> = Arc::default();
        let kept = Arc::clone(&routes);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("netd-route-watch".into())
            .spawn(move || {
                let setup = enter().and_then(|()| subscribe()).and_then(|socket| {
                    resync(&kept)?;
                    Ok(socket)
                });
                match setup {
                    Ok(socket) => {
                        let _ = ready_tx.send(Ok(()));
                        watch(&socket, &kept);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(NetlinkError::Socket)?;
        ready_rx
            .recv()
            .map_err(|_| NetlinkError::Thread("the route watcher".into()))??;
        Ok(RouteWatch { routes })
    }

    /// The destinations of the routes, each once.
    pub fn prefixes(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = lock(&self.routes).keys().map(|k| k.1).collect();
        out.dedup();
        out
    }
}

fn subscribe() -> Result<Socket, NetlinkError> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
    socket
        .bind(&SocketAddr::new(0, ROUTE_GROUPS))
        .map_err(NetlinkError::Socket)?;
    socket
        .set_rx_buf_sz(RECEIVE_BUFFER)
        .map_err(NetlinkError::Socket)?;
    Ok(socket)
}

/// List every route again (at start, and after dropped notifications).
fn resync(routes: &Mutex<BTreeMap<RouteKey, ()>>) -> Result<(), NetlinkError> {
    let mut socket = DirectSocket::open()?;
    let mut fresh = BTreeMap::new();
    for query in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let answers = socket.exchange(vec![Request::new(
            RouteNetlinkMessage::GetRoute(query),
            NLM_F_DUMP,
            "listing routes",
        )])?;
        for message in &answers {
            if let RouteNetlinkMessage::NewRoute(r) = message {
                if let Some(key) = key(r) {
                    fresh.insert(key, ());
                }
            }
        }
    }
    *lock(routes) = fresh;
    Ok(())
}

/// Apply notifications until the socket fails for good.
fn watch(socket: &Socket, routes: &Mutex<BTreeMap<RouteKey, ()>>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let truncated = nix::sys::socket::MsgFlags::MSG_TRUNC.bits();
    loop {
        buf.clear();
        match socket.recv(&mut buf, truncated) {
            // Cut short (the kernel's datagram was larger than the buffer): what
            // it said is lost, so list again.
            Ok(len) if len > buf.len() => {
                if let Err(e) = resync(routes) {
                    tracing::warn!(error = %e, "could not list the routes again");
                }
            }
            Ok(_) => apply(&buf, routes),
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {
                // Notifications were dropped: the list may be wrong now.
                if let Err(e) = resync(routes) {
                    tracing::warn!(error = %e, "could not list the routes again");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::error!(error = %e, "route watch stopped; chosen subnets may overlap new routes");
                return;
            }
        }
    }
}

fn apply(datagram: &[u8], routes: &Mutex<BTreeMap<RouteKey, ()>>) {
    let mut offset = 0;
    while let Some(header) = datagram.get(offset..offset + HEADER_LEN) {
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        if len < HEADER_LEN {
            return;
        }
        let Some(message) = datagram.get(offset..offset + len) else {
            return;
        };
        let body = &message[HEADER_LEN..];
        match kind {
            // Most notifications are about links; only their header matters (a
            // link that is gone or down), so they are read without decoding.
            RTM_NEWLINK | RTM_DELLINK => {
                if let Some((index, flags)) = link_header(body) {
                    if kind == RTM_DELLINK {
                        forget_link(routes, index, false);
                    } else if flags & IFF_UP == 0 {
                        // Down, the link loses its IPv4 routes; IPv6 keeps them.
                        forget_link(routes, index, true);
                    }
                }
            }
            RTM_NEWROUTE | RTM_DELROUTE if main_table(body) => {
                if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(message) {
                    match m.payload {
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => {
                            if let Some(k) = key(&r) {
                                lock(routes).insert(k, ());
                            }
                        }
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) => {
                            if let Some(k) = key(&r) {
                                lock(routes).remove(&k);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        // Messages are 4-byte aligned.
        offset += (len + 3) & !3;
    }
}

const HEADER_LEN: usize = 16;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const IFF_UP: u32 = 1;
/// `RT_TABLE_COMPAT`: the header's table when the real one (in an attribute) is
/// above 255.
const RT_TABLE_COMPAT: u8 = 252;

/// A link message's index and flags (`struct ifinfomsg`).
fn link_header(body: &[u8]) -> Option<(u32, u32)> {
    let index = body.get(4..8)?;
    let flags = body.get(8..12)?;
    Some((
        u32::from_ne_bytes([index[0], index[1], index[2], index[3]]),
        u32::from_ne_bytes([flags[0], flags[1], flags[2], flags[3]]),
    ))
}

/// Whether a route message (`struct rtmsg`) may be of the main table.
fn main_table(body: &[u8]) -> bool {
    matches!(body.get(4), Some(&t) if t == RouteHeader::RT_TABLE_MAIN || t == RT_TABLE_COMPAT)
}

/// Drop the routes through link `index`, which went away (or down: its IPv4
/// routes only).
fn forget_link(routes: &Mutex<BTreeMap<RouteKey, ()>>, index: u32, only_v4: bool) {
    lock(routes).retain(|k, ()| k.3 != index || (only_v4 && k.1.addr().is_ipv6()));
}

/// A main-table route other than a default, loopback or multicast one.
fn key(r: &RouteMessage) -> Option<RouteKey> {
    let len = r.header.destination_prefix_length;
    if len == 0 {
        return None;
    }
    let mut table = u32::from(r.header.table);
    let (mut dst, mut metric, mut oif) = (None, 0, 0);
    for attr in &r.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::from(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::from(*a)),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(o) => oif = *o,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let net = IpNet::new(dst?, len).ok()?.trunc();
    if net.addr().is_loopback() || net.addr().is_multicast() {
        return None;
    }
    Some((table, net, metric, oif))
}
