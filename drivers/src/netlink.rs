//! The netlink layer: plain route-netlink sockets, one namespace each.
//!
//! A netlink socket belongs to the namespace of the thread that created it. So a
//! socket for another namespace is made on a short-lived thread that enters the
//! namespace, creates it and ends (or on the thread that creates the namespace); no
//! runtime thread ever changes namespace. A connection to another namespace is one
//! socket, one descriptor (see [`direct`]).
//!
//! Requests are answered inside `sendmsg`, so most go out from the calling task.
//! Link deletion is the exception: the kernel waits there for RCU grace periods
//! (about 20 ms for a veth), so deletions go out from blocking threads, where many
//! run at once and the kernel batches their grace periods.

mod direct;
mod routes;
mod vxlan;

use direct::{Request, Sockets};
use nix::errno::Errno;
pub use routes::RouteWatch;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL};
use rtnetlink::packet_route::link::{
    InfoData, InfoVeth, LinkAttribute, LinkInfo, LinkMessage, State,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{AddressMessageBuilder, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
pub use vxlan::{mac_text, Entry, VxlanSpec, FLOOD_MAC};

/// The interface index of `lo`: the kernel gives it 1 in every namespace.
pub const LOOPBACK_INDEX: u32 = 1;

/// A MAC address as six bytes.
pub type Mac = [u8; 6];

/// Why a netlink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The namespace file could not be opened.
    #[error("opening network namespace {path}")]
    OpenNetns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Entering the namespace failed.
    #[error("entering network namespace {path}")]
    Setns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// The netlink socket could not be created.
    #[error("creating a netlink socket")]
    Socket(#[source] std::io::Error),
    /// The thread that creates the socket died.
    #[error("the netlink setup thread for {0} failed")]
    Thread(PathBuf),
    /// The kernel refused a request.
    #[error("{what}")]
    Request {
        /// What was asked, with the objects concerned.
        what: String,
        /// The kernel's answer, as an OS error (`File exists (os error 17)`).
        #[source]
        source: std::io::Error,
    },
    /// The blocking thread deleting a link died.
    #[error("the thread deleting link {0} failed")]
    DeleteThread(String),
    /// A link that should exist does not.
    #[error("no link named {0:?}")]
    NoSuchLink(String),
}

impl NetlinkError {
    fn code(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether the kernel answered "no such device" (the object is gone already).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetlinkError::NoSuchLink(_))
            || matches!(self.code(), Some(c) if c == Errno::ENODEV as i32 || c == Errno::ENOENT as i32)
    }

    /// Whether the kernel answered "cannot assign requested address" (an address
    /// to delete is not there).
    pub fn is_address_gone(&self) -> bool {
        self.code() == Some(Errno::EADDRNOTAVAIL as i32)
    }

    /// Whether the kernel answered "exists already".
    pub fn is_exists(&self) -> bool {
        self.code() == Some(Errno::EEXIST as i32)
    }
}

/// A link as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// The bridge (or other controller) it is attached to.
    pub master: Option<u32>,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC address.
    pub mac: Option<Vec<u8>>,
    /// Whether the kernel reports it operationally up (carrier seen).
    pub oper_up: bool,
    /// Whether `arp_notify` is on: set by the one request that also brings a
    /// joined interface up, so it tells a configured interface from a half-made one.
    pub arp_notify: bool,
    /// Its kind (`bridge`, `veth`, ...); `None` for a plain device such as `lo`.
    pub kind: Option<String>,
    /// Its link group (`ip link set NAME group N`, 0 by default). netd creates its
    /// links in a group of its own, set in the request that creates them, so no
    /// crash can leave one of its links unmarked: that group is how it knows its own.
    pub group: u32,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            master: None,
            mtu: None,
            mac: None,
            oper_up: false,
            arp_notify: false,
            kind: None,
            group: 0,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::Controller(m) => link.master = Some(*m),
                LinkAttribute::Mtu(m) => link.mtu = Some(*m),
                LinkAttribute::Address(a) => link.mac = Some(a.clone()),
                LinkAttribute::OperState(state) => link.oper_up = *state == State::Up,
                LinkAttribute::Group(group) => link.group = *group,
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.iter().find_map(|i| match i {
                        LinkInfo::Kind(kind) => Some(kind.to_string()),
                        _ => None,
                    })
                }
                LinkAttribute::AfSpecUnspec(specs) => {
                    use rtnetlink::packet_route::link::{AfSpecInet, AfSpecUnspec};
                    for spec in specs {
                        if let AfSpecUnspec::Inet(inet) = spec {
                            for conf in inet {
                                if let AfSpecInet::DevConf(c) = conf {
                                    link.arp_notify = c.arp_notify != 0;
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// A netlink connection to one network namespace.
#[derive(Debug, Clone)]
pub struct Netlink {
    /// Whether it is the process's own namespace, which every blocking-pool thread
    /// is in: deletions can then go out from those threads on sockets of their own.
    process_ns: bool,
    /// The namespace's sockets (see [`direct`]).
    direct: Arc<Sockets>,
}

fn single_queue() -> [LinkAttribute; 2] {
    [LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)]
}

/// The message naming `address/prefix_len` on link `index`, either family.
fn address_message(
    index: u32,
    address: IpAddr,
    prefix_len: u8,
) -> rtnetlink::packet_route::address::AddressMessage {
    match address {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, prefix_len)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, prefix_len)
            .build(),
    }
}

/// Requests sent together in one `sendmsg` (see [`Netlink::run`]).
#[derive(Debug, Default)]
pub struct Batch(Vec<Request>);

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Add `address/prefix_len` to link `index`.
    pub fn add_address(mut self, index: u32, address: IpAddr, prefix_len: u8) -> Self {
        self.0.push(Request::new(
            RouteNetlinkMessage::NewAddress(address_message(index, address, prefix_len)),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("adding address {address}/{prefix_len} to link {index}"),
        ));
        self
    }

    /// Bring link `index` up.
    pub fn set_up(mut self, index: u32) -> Self {
        self.0.push(Request::new(
            RouteNetlinkMessage::SetLink(LinkUnspec::new_with_index(index).up().build()),
            0,
            format!("bringing link {index} up"),
        ));
        self
    }

    /// Bring link `index` up with `arp_notify` on, in one request: the kernel then
    /// announces the link's IPv4 addresses (gratuitous ARP) whenever its MAC is set.
    pub fn set_up_announcing(mut self, index: u32) -> Self {
        use rtnetlink::packet_route::link::{AfSpecInet, AfSpecUnspec, InetDevConf};
        let mut conf = InetDevConf::default();
        conf.arp_notify = 1;
        let mut msg = LinkUnspec::new_with_index(index).up().build();
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(conf),
            ])]));
        self.0.push(Request::new(
            RouteNetlinkMessage::SetLink(msg),
            0,
            format!("bringing link {index} up with arp_notify"),
        ));
        self
    }

    /// Give link `index` no IPv6 link-local address (and so no duplicate address
    /// detection or multicast reports for it): for an interface with no IPv6 to
    /// speak, as Docker's containers have IPv6 off unless their network has it.
    /// A kernel without IPv6 has nothing to turn off.
    pub fn no_ipv6_link_local(mut self, index: u32) -> Self {
        use rtnetlink::packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode};
        let mut msg = LinkUnspec::new_with_index(index).build();
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        self.0.push(
            Request::new(
                RouteNetlinkMessage::SetLink(msg),
                0,
                format!("turning off IPv6 link-local addressing on link {index}"),
            )
            .tolerating(Errno::EAFNOSUPPORT),
        );
        self
    }

    /// Make sure there is a default route through `gateway` on link `index` (one
    /// that exists already counts).
    pub fn default_route(mut self, index: u32, gateway: IpAddr) -> Self {
        // The typed builders set the address family a default route needs.
        let route = match gateway {
            IpAddr::V4(gw) => RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(index)
                .gateway(gw)
                .build(),
            IpAddr::V6(gw) => RouteMessageBuilder::<Ipv6Addr>::new()
                .output_interface(index)
                .gateway(gw)
                .build(),
        };
        self.0.push(
            Request::new(
                RouteNetlinkMessage::NewRoute(route),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("adding default route via {gateway}"),
            )
            .tolerating(Errno::EEXIST),
        );
        self
    }
}

impl Batch {
    /// A route to `destination` on link `index`, through `via` or on the link
    /// itself (one that exists already counts).
    pub fn route(mut self, index: u32, destination: ipnet::IpNet, via: Option<IpAddr>) -> Self {
        let route = match destination {
            ipnet::IpNet::V4(d) => {
                let b = RouteMessageBuilder::<Ipv4Addr>::new()
                    .output_interface(index)
                    .destination_prefix(d.addr(), d.prefix_len());
                match via {
                    Some(IpAddr::V4(gw)) => b.gateway(gw).build(),
                    _ => b.build(),
                }
            }
            ipnet::IpNet::V6(d) => {
                let b = RouteMessageBuilder::<Ipv6Addr>::new()
                    .output_interface(index)
                    .destination_prefix(d.addr(), d.prefix_len());
                match via {
                    Some(IpAddr::V6(gw)) => b.gateway(gw).build(),
                    _ => b.build(),
                }
            }
        };
        self.0.push(
            Request::new(
                RouteNetlinkMessage::NewRoute(route),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("adding a route to {destination}"),
            )
            .tolerating(Errno::EEXIST),
        );
        self
    }
}

/// A veth pair to create; see [`Netlink::add_veth`].
#[derive(Debug)]
pub struct VethPair<'a> {
    /// The host end's name, in the connection's namespace.
    pub host: &'a str,
    /// The bridge the host end becomes a port of.
    pub master: Option<u32>,
    /// The peer's name.
    pub peer: &'a str,
    /// The namespace the peer is created in; `None` keeps it beside the host end.
    pub peer_netns: Option<&'a File>,
    /// The peer's MAC address.
    pub peer_mac: Option<Mac>,
    /// Both ends' MTU.
    pub mtu: Option<u32>,
    /// The host end's link group: the daemon's mark (see [`Link::group`]).
    pub group: Option<u32>,
}

impl Netlink {
    /// A connection to the namespace the process runs in: sockets opened as needed
    /// and kept for reuse.
    pub fn current() -> Result<Netlink, NetlinkError> {
        Ok(Netlink {
            process_ns: true,
            direct: Arc::new(Sockets::Pool(Mutex::new(Vec::new()))),
        })
    }

    /// A connection to the namespace the calling thread is in, for a thread that has
    /// entered or created another namespace (see [`crate::netns::create_with`]):
    /// one socket, opened here.
    pub fn on_this_thread() -> Result<Netlink, NetlinkError> {
        let direct = direct::DirectSocket::open()?;
        Ok(Netlink {
            process_ns: false,
            direct: Arc::new(Sockets::Kept(Mutex::new(direct))),
        })
    }

    /// Write `value` to the sysctl `key` (a path under `/proc/sys/`, such as
    /// `net/ipv6/conf/br0/disable_ipv6`) of this connection's namespace.
    pub async fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetlinkError> {
        let path = Path::new("/proc/sys").join(key);
        let fail = |source| NetlinkError::Request {
            what: format!("writing {}", path.display()),
            source,
        };
        if self.process_ns {
            return std::fs::write(&path, value).map_err(fail);
        }
        // /proc/sys/net shows the namespace of the thread that opens it.
        let ns = self.direct.namespace()?;
        let (value, target) = (value.to_string(), path.clone());
        let written = std::thread::spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
                .and_then(|()| std::fs::write(&target, value))
        })
        .join()
        .map_err(|_| NetlinkError::Thread(path.clone()))?;
        written.map_err(fail)
    }

    /// Keep the namespace's routes current in the background (see [`RouteWatch`]).
    pub fn watch_routes(&self) -> Result<RouteWatch, NetlinkError> {
        // The namespace, from one of its sockets; no descriptor is kept for it.
        let ns = (!self.process_ns)
            .then(|| self.direct.namespace())
            .transpose()?;
        RouteWatch::start(move || match ns {
            Some(fd) => {
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| {
                    NetlinkError::Setns {
                        path: "the watched namespace".into(),
                        source,
                    }
                })
            }
            None => Ok(()),
        })
    }

    /// A connection to the namespace at `path` (such as `/run/netns/NAME` or
    /// `/proc/PID/ns/net`).
    pub async fn in_netns(path: &Path) -> Result<Netlink, NetlinkError> {
        let file = open_netns(path)?;
        Self::in_netns_file(&file, path).await
    }

    /// A connection to the namespace `file` refers to (`path` names it in errors).
    pub async fn in_netns_file(file: &File, path: &Path) -> Result<Netlink, NetlinkError> {
        let file = file.try_clone().map_err(|source| NetlinkError::OpenNetns {
            path: path.to_path_buf(),
            source,
        })?;
        let owned = path.to_path_buf();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("netlink-setns".into())
            .spawn(move || {
                let result = nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|source| NetlinkError::Setns {
                        path: owned.clone(),
                        source,
                    })
                    .and_then(|()| Netlink::on_this_thread());
                let _ = tx.send(result);
                // The thread ends here, still in the namespace: nothing else runs on it.
            })
            .map_err(NetlinkError::Socket)?;
        rx.await
            .map_err(|_| NetlinkError::Thread(path.to_path_buf()))?
    }

    /// The link named `name`, if it exists.
    pub async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let mut query = LinkMessage::default();
        query
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        let answer = self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::GetLink(query),
            0,
            format!("looking up link {name}"),
        )]);
        match answer {
            Ok(replies) => Ok(replies.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(link)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Run `batch` in one `sendmsg`; fails with the first request the kernel
    /// refused (the others are still carried out: undo them by deleting the link).
    pub async fn run(&self, batch: Batch) -> Result<(), NetlinkError> {
        self.run_here(batch)
    }

    /// [`Netlink::run`] for a plain thread (such as the one that made a namespace):
    /// the exchange is a blocking `sendmsg`/`recv` pair that needs no runtime.
    pub fn run_here(&self, batch: Batch) -> Result<(), NetlinkError> {
        self.direct.exchange(batch.0).map(|_| ())
    }

    /// The index of link `name`, which must exist.
    pub async fn index(&self, name: &str) -> Result<u32, NetlinkError> {
        self.link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| NetlinkError::NoSuchLink(name.to_string()))
    }

    /// Every link of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let replies = self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            "listing links",
        )])?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(link)),
                _ => None,
            })
            .collect())
    }

    /// Send one request that changes link `index`.
    fn set_link(&self, message: LinkMessage, what: String) -> Result<(), NetlinkError> {
        self.direct
            .exchange(vec![Request::new(
                RouteNetlinkMessage::SetLink(message),
                0,
                what,
            )])
            .map(|_| ())
    }

    /// Create bridge `name`, down, in link group `group` (the daemon's mark).
    /// Returns its index.
    pub async fn add_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<Mac>,
        group: u32,
    ) -> Result<u32, NetlinkError> {
        let mut builder = LinkBridge::new(name);
        if let Some(mtu) = mtu {
            builder = builder.mtu(mtu);
        }
        if let Some(mac) = mac {
            builder = builder.address(mac.to_vec());
        }
        let mut msg = builder.build();
        msg.attributes.push(LinkAttribute::Group(group));
        self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("creating bridge {name}"),
        )])?;
        self.index(name).await
    }

    /// Create a veth pair in one request: the host end here, up and (with `master`)
    /// a port of that bridge; the peer created directly inside its namespace (no move
    /// afterwards), with its MAC, down (the kernel cannot open a veth end before
    /// both exist). One queue each way per end: the default is one per possible CPU,
    /// and each queue is a kernel object made and torn down with the link, while a
    /// veth without XDP hands packets to the receiving CPU's backlog whatever the
    /// queue. Returns the peer's index in its namespace, from the kernel's echo of
    /// the new link (`None` from a kernel that does not echo).
    pub async fn add_veth(&self, veth: &VethPair<'_>) -> Result<Option<u32>, NetlinkError> {
        let mut peer =
            rtnetlink::LinkMessageBuilder::<LinkUnspec>::new().name(veth.peer.to_string());
        if let Some(file) = veth.peer_netns {
            peer = peer.setns_by_fd(file.as_raw_fd());
        }
        if let Some(mtu) = veth.mtu {
            peer = peer.mtu(mtu);
        }
        if let Some(mac) = veth.peer_mac {
            peer = peer.address(mac.to_vec());
        }
        let mut peer = peer.build();
        peer.attributes.extend(single_queue());
        let mut builder = LinkVeth::new(veth.host, veth.peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .up();
        if let Some(mtu) = veth.mtu {
            builder = builder.mtu(mtu);
        }
        if let Some(master) = veth.master {
            builder = builder.controller(master);
        }
        let mut host = builder.build();
        host.attributes.extend(single_queue());
        if let Some(group) = veth.group {
            host.attributes.push(LinkAttribute::Group(group));
        }
        let echoed = self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::NewLink(host),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
            format!("creating veth pair {}/{}", veth.host, veth.peer),
        )])?;
        Ok(echoed.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => link.attributes.iter().find_map(|a| match a {
                LinkAttribute::Link(peer) => Some(*peer),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// Bring link `index` up with `arp_notify` on; see [`Batch::set_up_announcing`].
    pub async fn set_up_announcing(&self, index: u32) -> Result<(), NetlinkError> {
        self.run(Batch::new().set_up_announcing(index)).await
    }

    /// Attach link `index` to bridge `master`.
    pub async fn set_master(&self, index: u32, master: u32) -> Result<(), NetlinkError> {
        self.set_link(
            LinkUnspec::new_with_index(index).controller(master).build(),
            format!("attaching link {index} to bridge {master}"),
        )
    }

    /// Set the bridge-port flags of link `name` (a bridge's port): `hairpin`, a
    /// frame may leave by the port it came in on (a container reaching its own
    /// published port through the host); `isolated`, the port reaches only
    /// ports that are not isolated (the bridge itself), not its isolated peers.
    pub async fn set_bridge_port(
        &self,
        name: &str,
        hairpin: bool,
        isolated: bool,
    ) -> Result<(), NetlinkError> {
        use rtnetlink::packet_route::link::{
            InfoBridgePort, InfoPortData, InfoPortKind, LinkAttribute, LinkInfo,
        };
        let mut message = LinkUnspec::new_with_name(name).build();
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![
                InfoBridgePort::HairpinMode(hairpin),
                InfoBridgePort::Isolated(isolated),
            ])),
        ]));
        // Port data is read by RTM_NEWLINK on an existing link (no create flag);
        // RTM_SETLINK ignores link info.
        self.direct
            .exchange(vec![Request::new(
                RouteNetlinkMessage::NewLink(message),
                0,
                format!("setting the bridge-port flags of link {name}"),
            )])
            .map(|_| ())
    }

    /// Bring link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        self.run(Batch::new().set_up(index)).await
    }

    /// Set link `index`'s MAC address. With `arp_notify` on, this announces the
    /// link's addresses (gratuitous ARP), even when the MAC does not change.
    pub async fn set_mac(&self, index: u32, mac: Mac) -> Result<(), NetlinkError> {
        self.set_link(
            LinkUnspec::new_with_index(index)
                .address(mac.to_vec())
                .build(),
            format!("setting the MAC of link {index}"),
        )
    }

    /// Move link `index` into the namespace `netns`, named `name` there.
    pub async fn move_to_netns(
        &self,
        index: u32,
        netns: &File,
        name: &str,
    ) -> Result<(), NetlinkError> {
        self.set_link(
            LinkUnspec::new_with_index(index)
                .setns_by_fd(netns.as_raw_fd())
                .name(name.to_string())
                .build(),
            format!("moving link {index} into the sandbox as {name}"),
        )
    }

    /// Rename link `index` (it must be down).
    pub async fn rename(&self, index: u32, name: &str) -> Result<(), NetlinkError> {
        self.set_link(
            LinkUnspec::new_with_index(index)
                .name(name.to_string())
                .build(),
            format!("renaming link {index} to {name}"),
        )
    }

    /// Add `address/prefix_len` to link `index`.
    pub async fn add_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        self.run(Batch::new().add_address(index, address, prefix_len))
            .await
    }

    /// Remove `address/prefix_len` from link `index`.
    pub async fn delete_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::DelAddress(address_message(index, address, prefix_len)),
            0,
            format!("removing address {address}/{prefix_len} from link {index}"),
        )])?;
        Ok(())
    }

    /// Make sure there is a default route through `gateway` on link `index`.
    pub async fn add_default_route(&self, index: u32, gateway: IpAddr) -> Result<(), NetlinkError> {
        self.run(Batch::new().default_route(index, gateway)).await
    }

    /// Whether the main table has a default route, IPv4 and IPv6 (any metric,
    /// any owner).
    pub async fn default_routes(&self) -> Result<(bool, bool), NetlinkError> {
        const RT_TABLE_MAIN: u8 = 254;
        let mut found = (false, false);
        for (v4, query) in [
            (true, RouteMessageBuilder::<Ipv4Addr>::new().build()),
            (false, RouteMessageBuilder::<Ipv6Addr>::new().build()),
        ] {
            let messages = self.direct.exchange(vec![Request::new(
                RouteNetlinkMessage::GetRoute(query),
                NLM_F_DUMP,
                "listing routes",
            )])?;
            let any = messages.iter().any(|m| {
                matches!(m, RouteNetlinkMessage::NewRoute(r)
                    if r.header.destination_prefix_length == 0
                        && r.header.table == RT_TABLE_MAIN)
            });
            if v4 {
                found.0 = any;
            } else {
                found.1 = any;
            }
        }
        Ok(found)
    }

    /// The destinations of every route in the main table but default routes, both
    /// families: what a new subnet must not overlap.
    pub async fn route_prefixes(&self) -> Result<Vec<ipnet::IpNet>, NetlinkError> {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
        let mut out = Vec::new();
        for query in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let messages = self.direct.exchange(vec![Request::new(
                RouteNetlinkMessage::GetRoute(query),
                NLM_F_DUMP,
                "listing routes",
            )])?;
            for msg in messages.iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            }) {
                let len = msg.header.destination_prefix_length;
                if len == 0 {
                    continue;
                }
                for attr in &msg.attributes {
                    if let RouteAttribute::Destination(dst) = attr {
                        let addr: Option<IpAddr> = match dst {
                            RouteAddress::Inet(a) => Some((*a).into()),
                            RouteAddress::Inet6(a) => Some((*a).into()),
                            _ => None,
                        };
                        if let Some(net) = addr.and_then(|a| ipnet::IpNet::new(a, len).ok()) {
                            if !net.addr().is_loopback() && !net.addr().is_multicast() {
                                out.push(net.trunc());
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The addresses on link `index`, with their prefix lengths (IPv6 link-local
    /// ones included).
    pub async fn addresses(&self, index: u32) -> Result<Vec<ipnet::IpNet>, NetlinkError> {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
        let messages = self.direct.exchange(vec![Request::new(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
            format!("listing the addresses of link {index}"),
        )])?;
        let mut out = Vec::new();
        for msg in messages.iter().filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if a.header.index == index => Some(a),
            _ => None,
        }) {
            for attr in &msg.attributes {
                if let AddressAttribute::Address(addr) = attr {
                    if let Ok(net) = ipnet::IpNet::new(*addr, msg.header.prefix_len) {
                        out.push(net);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Delete link `index` (a veth goes with its peer), from a blocking thread (the
    /// kernel waits for RCU inside the request).
    pub async fn delete(&self, index: u32) -> Result<(), NetlinkError> {
        let direct = Arc::clone(&self.direct);
        let mut link = LinkMessage::default();
        link.header.index = index;
        tokio::task::spawn_blocking(move || {
            direct.exchange(vec![Request::new(
                RouteNetlinkMessage::DelLink(link),
                0,
                format!("deleting link {index}"),
            )])
        })
        .await
        .map_err(|_| NetlinkError::DeleteThread(index.to_string()))?
        .map(|_| ())
    }

    /// Delete link `name` if it exists; whether it did. In the process's namespace
    /// this goes out from a blocking thread on a socket of its own, so that
    /// deletions overlap (see the module's note).
    pub async fn delete_by_name(&self, name: &str) -> Result<bool, NetlinkError> {
        if self.process_ns {
            let owned = name.to_string();
            return tokio::task::spawn_blocking(move || delete_link_blocking(&owned, None))
                .await
                .map_err(|_| NetlinkError::DeleteThread(name.to_string()))?;
        }
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        match self.delete(link.index).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// What [`Netlink::delete_if_marked`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// No link of that name.
    Absent,
    /// It carried the mark and is gone.
    Removed,
    /// A link of that name without the mark: left alone.
    Foreign(Link),
}

impl Netlink {
    /// Delete link `name` only if it is in link group `group` (the daemon's mark).
    pub async fn delete_if_marked(&self, name: &str, group: u32) -> Result<Removal, NetlinkError> {
        let Some(link) = self.link(name).await? else {
            return Ok(Removal::Absent);
        };
        if link.group != group {
            return Ok(Removal::Foreign(link));
        }
        let existed = if self.process_ns {
            let owned = name.to_string();
            let index = link.index;
            tokio::task::spawn_blocking(move || delete_link_blocking(&owned, Some(index)))
                .await
                .map_err(|_| NetlinkError::DeleteThread(name.to_string()))??
        } else {
            match self.delete(link.index).await {
                Ok(()) => true,
                Err(e) if e.is_not_found() => false,
                Err(e) => return Err(e),
            }
        };
        Ok(if existed {
            Removal::Removed
        } else {
            Removal::Absent
        })
    }
}

/// `RTM_DELLINK` by name (or by index, when given) on a new socket in the calling
/// thread's namespace, waiting for the kernel's answer; whether the link existed.
fn delete_link_blocking(name: &str, index: Option<u32>) -> Result<bool, NetlinkError> {
    let mut link = LinkMessage::default();
    match index {
        Some(i) => link.header.index = i,
        None => link
            .attributes
            .push(LinkAttribute::IfName(name.to_string())),
    }
    let answer = direct::DirectSocket::open()?.exchange(vec![Request::new(
        RouteNetlinkMessage::DelLink(link),
        0,
        format!("deleting link {name}"),
    )]);
    match answer {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Open a namespace file for [`Netlink::add_veth`].
pub fn open_netns(path: &Path) -> Result<File, NetlinkError> {
    File::open(path).map_err(|source| NetlinkError::OpenNetns {
        path: path.to_path_buf(),
        source,
    })
}
