//! VXLAN devices and the tables an overlay programs on them: neighbour entries
//! (an overlay address -> its MAC, answered locally by the device's proxy ARP)
//! and forwarding entries (a MAC -> the VTEP of the host it is on; the all-zero
//! MAC once per remote host for broadcast, replicated head-end). Every entry is
//! written with replace semantics, never an exclusive create: an exclusive
//! create that meets a learned entry is how Docker's overlay kept stale ones.

use super::direct::Request;
use super::{Mac, Netlink, NetlinkError};
use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourHeader, NeighbourMessage,
    NeighbourState,
};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::LinkVxlan;
use std::net::IpAddr;

/// The MAC a forwarding entry for broadcast and unknown destinations has.
pub const FLOOD_MAC: Mac = [0; 6];

/// A VXLAN device to make.
#[derive(Debug, Clone)]
pub struct VxlanSpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// The VNI.
    pub vni: u32,
    /// The local underlay address (the host's VTEP).
    pub local: IpAddr,
    /// The UDP port.
    pub port: u16,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// A stable MAC (peers keep permanent entries naming it).
    pub mac: Option<Mac>,
    /// The link group that marks it as the daemon's.
    pub group: u32,
}

/// A neighbour or forwarding entry as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The MAC.
    pub mac: Mac,
    /// The address: the overlay IP for a neighbour entry, the remote VTEP for a
    /// forwarding entry (`None`: a local one, such as the device's own MAC).
    pub ip: Option<IpAddr>,
    /// Written by hand or by a daemon (`permanent`), not learned.
    pub permanent: bool,
}

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn address(ip: &IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(*a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(*a),
    }
}

fn message(family: AddressFamily, index: u32, flags: NeighbourFlags) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header = NeighbourHeader {
        family,
        ifindex: index,
        state: NeighbourState::Permanent,
        flags,
        kind: RouteType::Unspec,
    };
    msg
}

/// A forwarding entry of VXLAN device `index` (its own table: `NTF_SELF`).
fn fdb_message(index: u32, mac: Mac, dst: IpAddr) -> NeighbourMessage {
    let mut msg = message(AddressFamily::Bridge, index, NeighbourFlags::Own);
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(address(&dst)));
    msg
}

fn mac_of(bytes: &[u8]) -> Option<Mac> {
    bytes.try_into().ok()
}

fn entry_of(msg: &NeighbourMessage) -> Option<Entry> {
    let mut mac = None;
    let mut ip = None;
    for attr in &msg.attributes {
        match attr {
            NeighbourAttribute::LinkLayerAddress(m) => mac = mac_of(m),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(IpAddr::V4(*a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                ip = Some(IpAddr::V6(*a))
            }
            // In a forwarding (AF_BRIDGE) entry the VTEP comes as raw bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                ip = match bytes.len() {
                    4 => <[u8; 4]>::try_from(bytes.as_slice()).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(bytes.as_slice())
                        .ok()
                        .map(IpAddr::from),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    Some(Entry {
        mac: mac?,
        ip,
        permanent: msg.header.state == NeighbourState::Permanent,
    })
}

impl Netlink {
    /// Create VXLAN device `spec.name`, down, with learning off (entries come
    /// only from the daemon) and proxy ARP on (the device answers ARP and
    /// neighbour solicitations from its neighbour table). Returns its index.
    pub async fn add_vxlan(&self, spec: &VxlanSpec<'_>) -> Result<u32, NetlinkError> {
        let mut b = LinkVxlan::new(spec.name, spec.vni)
            .port(spec.port)
            .learning(false)
            .proxy(true);
        b = match spec.local {
            IpAddr::V4(a) => b.local(a),
            IpAddr::V6(a) => b.local6(a),
        };
        if let Some(mtu) = spec.mtu {
            b = b.mtu(mtu);
        }
        if let Some(mac) = spec.mac {
            b = b.address(mac.to_vec());
        }
        let mut msg = b.build();
        msg.attributes.push(LinkAttribute::Group(spec.group));
        self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | rtnetlink::packet_core::NLM_F_EXCL,
            format!("creating VXLAN device {} (VNI {})", spec.name, spec.vni),
        )])?;
        self.index(spec.name).await
    }

    /// The link that has address `addr` (the underlay interface of a VTEP).
    pub async fn link_with_address(
        &self,
        addr: IpAddr,
    ) -> Result<Option<super::Link>, NetlinkError> {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
        let replies = self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
            "listing addresses",
        )])?;
        let index = replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => a
                .attributes
                .iter()
                .any(|attr| matches!(attr, AddressAttribute::Address(x) if *x == addr))
                .then_some(a.header.index),
            _ => None,
        });
        let Some(index) = index else { return Ok(None) };
        Ok(self.links().await?.into_iter().find(|l| l.index == index))
    }

    /// Set neighbour entry `ip` -> `mac` on link `index` (permanent, replacing
    /// whatever entry `ip` had).
    pub async fn replace_neighbour(
        &self,
        index: u32,
        ip: IpAddr,
        mac: Mac,
    ) -> Result<(), NetlinkError> {
        let mut msg = message(family(&ip), index, NeighbourFlags::empty());
        msg.attributes
            .push(NeighbourAttribute::Destination(address(&ip)));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.direct
            .exchange(vec![Request::new(
                RouteNetlinkMessage::NewNeighbour(msg),
                NLM_F_CREATE | NLM_F_REPLACE,
                format!("setting neighbour {ip}"),
            )])
            .map(|_| ())
    }

    /// Remove neighbour entry `ip` from link `index` (none is not an error).
    pub async fn delete_neighbour(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        let mut msg = message(family(&ip), index, NeighbourFlags::empty());
        msg.attributes
            .push(NeighbourAttribute::Destination(address(&ip)));
        self.direct
            .exchange(vec![Request::new(
                RouteNetlinkMessage::DelNeighbour(msg),
                0,
                format!("removing neighbour {ip}"),
            )
            .tolerating(Errno::ENOENT)])
            .map(|_| ())
    }

    /// The neighbour entries of link `index`, both families.
    pub async fn neighbours(&self, index: u32) -> Result<Vec<Entry>, NetlinkError> {
        self.dump_neighbours(AddressFamily::Unspec, index, NeighbourFlags::empty())
            .await
    }

    /// Set forwarding entry `mac` -> VTEP `dst` on VXLAN device `index`
    /// (permanent, replacing the entry `mac` had, learned or not).
    pub async fn replace_fdb(&self, index: u32, mac: Mac, dst: IpAddr) -> Result<(), NetlinkError> {
        self.fdb_request(index, mac, dst, NLM_F_CREATE | NLM_F_REPLACE, "setting")
    }

    /// Add VTEP `dst` to the broadcast list of VXLAN device `index` (the
    /// all-zero entry: one per remote host; what is there stays).
    pub async fn append_flood(&self, index: u32, dst: IpAddr) -> Result<(), NetlinkError> {
        self.fdb_request(index, FLOOD_MAC, dst, NLM_F_CREATE | NLM_F_APPEND, "adding")
            .or_else(|e| if e.is_exists() { Ok(()) } else { Err(e) })
    }

    fn fdb_request(
        &self,
        index: u32,
        mac: Mac,
        dst: IpAddr,
        flags: u16,
        doing: &str,
    ) -> Result<(), NetlinkError> {
        self.direct
            .exchange(vec![Request::new(
                RouteNetlinkMessage::NewNeighbour(fdb_message(index, mac, dst)),
                flags,
                format!("{doing} forwarding entry {} -> {dst}", mac_text(&mac)),
            )])
            .map(|_| ())
    }

    /// Remove forwarding entry `mac` -> `dst` from VXLAN device `index` (none is
    /// not an error).
    pub async fn delete_fdb(&self, index: u32, mac: Mac, dst: IpAddr) -> Result<(), NetlinkError> {
        self.direct
            .exchange(vec![Request::new(
                RouteNetlinkMessage::DelNeighbour(fdb_message(index, mac, dst)),
                0,
                format!("removing forwarding entry {} -> {dst}", mac_text(&mac)),
            )
            .tolerating(Errno::ENOENT)])
            .map(|_| ())
    }

    /// The forwarding entries of VXLAN device `index`: its own table only, not
    /// the entries the bridge it is a port of learned on it.
    pub async fn fdb(&self, index: u32) -> Result<Vec<Entry>, NetlinkError> {
        self.dump_neighbours(AddressFamily::Bridge, index, NeighbourFlags::Own)
            .await
    }

    async fn dump_neighbours(
        &self,
        family: AddressFamily,
        index: u32,
        flags: NeighbourFlags,
    ) -> Result<Vec<Entry>, NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family;
        let replies = self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::GetNeighbour(msg),
            NLM_F_DUMP,
            "listing neighbours",
        )])?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n)
                    if n.header.ifindex == index && n.header.flags.contains(flags) =>
                {
                    entry_of(n)
                }
                _ => None,
            })
            .collect())
    }
}

/// `02:42:0a:00:00:02`.
pub fn mac_text(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
