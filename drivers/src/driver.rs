//! The one driver contract: the controller calls it and never knows which driver
//! answers.

use crate::netlink::{Mac, Netlink, NetlinkError};
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;

/// What a daemon instance marks the links it makes with: a link group of its own,
/// set in the very request that creates each link. A driver removes or changes
/// only links that carry it (and an existing bridge it was told to use, which it
/// leaves in place); never a link because of what its name looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mark(pub u32);

impl Mark {
    /// The mark of the instance whose id is `instance` (hex digits, as the store
    /// makes it): its first 28 bits under a top nibble of 0x4, so it is never the
    /// default group 0 nor a small one an administrator numbers by hand, and stays
    /// positive as `ip` prints and parses groups (as signed numbers).
    pub fn of_instance(instance: &str) -> Mark {
        let bits = instance
            .get(..7)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        Mark(0x4000_0000 | bits)
    }
}

/// State a driver keeps with a network's record: opaque to the controller, which
/// stores what [`Driver::create_network`] answers and gives it back in every
/// [`NetworkSpec`] (the bridge driver notes there whether it made the bridge).
pub type DriverData = BTreeMap<String, String>;

/// What [`Driver::repair_join`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Wired and configured as the join left it.
    Intact,
    /// Made right again (re-attached, or made again).
    Repaired,
    /// Gone and not for the driver to make again: an engine-placed join whose
    /// interface went with the engine's sandbox. The join is over.
    Gone,
}

/// What a [`Driver::sweep`] removed, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Links removed.
    pub removed: Vec<String>,
    /// Failures, each naming its link.
    pub errors: Vec<String>,
}

/// One subnet of a network, with its gateway (the bridge's own address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    /// The subnet.
    pub subnet: IpNet,
    /// The gateway address, inside the subnet.
    pub gateway: Option<IpAddr>,
}

/// What a driver is told about a network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkSpec {
    /// The network's 64-hex id.
    pub id: String,
    /// IPv4 and IPv6 subnets.
    pub subnets: Vec<SubnetSpec>,
    /// Driver options, with Docker's names (`com.docker.network.bridge.name`, ...).
    pub options: BTreeMap<String, String>,
    /// What the driver noted when it made the network (empty before).
    pub data: DriverData,
}

/// What a driver is told about an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSpec {
    /// The endpoint's 64-hex id.
    pub id: String,
    /// Its addresses, with their subnet's prefix length.
    pub addresses: Vec<IpNet>,
    /// Its MAC address, if fixed.
    pub mac: Option<Mac>,
}

/// A sandbox: a container's network namespace.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    /// The namespace file (`/run/netd/netns/<id>`, `/proc/<pid>/ns/net`). `None`
    /// when the engine places the interface itself (Docker's remote protocol): the
    /// driver then leaves it, down and unaddressed, in the daemon's namespace under
    /// the join's interface name, and the engine moves, renames and configures it.
    pub netns: Option<PathBuf>,
    /// A netlink connection already open inside `netns` (netd keeps one per
    /// sandbox); without it a driver opens one for the call, which costs a thread.
    pub netlink: Option<Netlink>,
    /// The namespace, opened (and checked) by the caller: used instead of opening
    /// `netns` again, so a path that now names another namespace (a reused PID)
    /// cannot slip in between.
    pub opened: Option<std::sync::Arc<std::fs::File>>,
}

impl SandboxSpec {
    /// A sandbox at `netns`, with no connection yet.
    pub fn at(netns: impl Into<PathBuf>) -> Self {
        SandboxSpec {
            netns: Some(netns.into()),
            netlink: None,
            opened: None,
        }
    }

    /// A connection inside the sandbox: the one it came with, or a new one; `None`
    /// for an engine-placed sandbox.
    pub async fn connect(&self) -> Result<Option<Netlink>, NetlinkError> {
        match (&self.netlink, &self.opened, &self.netns) {
            (Some(nl), _, _) => Ok(Some(nl.clone())),
            (None, Some(file), Some(path)) => Netlink::in_netns_file(file, path).await.map(Some),
            (None, None, Some(path)) => Netlink::in_netns(path).await.map(Some),
            (None, _, None) => Ok(None),
        }
    }

    /// The namespace, opened: the caller's, or opened now from its path.
    pub fn open(&self) -> Result<Option<std::fs::File>, NetlinkError> {
        match (&self.opened, &self.netns) {
            (Some(file), Some(path)) => {
                file.try_clone()
                    .map(Some)
                    .map_err(|source| NetlinkError::OpenNetns {
                        path: path.clone(),
                        source,
                    })
            }
            (_, Some(path)) => crate::netlink::open_netns(path).map(Some),
            (_, None) => Ok(None),
        }
    }
}

/// What a join made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Joined {
    /// The endpoint's link in the daemon's namespace, if the driver made one.
    pub host_link: Option<String>,
    /// For a sandbox the engine places itself (no namespace given): the link, in
    /// the daemon's namespace, that the engine moves into the sandbox.
    pub engine_link: Option<String>,
}

/// Why a driver refused or failed. Whatever it made before failing is undone.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// An option or spec is invalid; nothing was touched.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What was checked.
        what: String,
        /// Why it was refused.
        message: String,
    },
    /// A kernel operation failed.
    #[error("{doing}")]
    Kernel {
        /// What the driver was doing.
        doing: String,
        /// The netlink error.
        #[source]
        source: NetlinkError,
    },
    /// A remote plugin refused or failed (its own message).
    #[error("{doing}: {message}")]
    Plugin {
        /// What the driver asked.
        doing: String,
        /// What the plugin said.
        message: String,
    },
    /// A step inside the sandbox's namespace (a sysctl) failed.
    #[error("{doing}")]
    Sandbox {
        /// What the driver was doing.
        doing: String,
        /// Why.
        #[source]
        source: crate::netns::NetnsError,
    },
}

impl DriverError {
    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        DriverError::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }

    pub(crate) fn kernel(doing: impl Into<String>) -> impl FnOnce(NetlinkError) -> Self {
        let doing = doing.into();
        move |source| DriverError::Kernel { doing, source }
    }
}

/// A network driver.
///
/// The controller only asks: what a driver's networks need (addresses or not),
/// which links a network uses, what a join makes, how to repair and what to sweep.
/// Link names, kinds and marks are the driver's business.
#[async_trait]
pub trait Driver: Send + Sync {
    /// The driver's name (`bridge`, `host`, `none`).
    fn kind(&self) -> &'static str;

    /// Whether its networks have subnets, gateways and endpoint addresses.
    fn takes_addresses(&self) -> bool {
        false
    }

    /// Check a network's spec and options before anything is stored or made.
    fn validate(&self, net: &NetworkSpec) -> Result<(), DriverError>;

    /// Links in the daemon's namespace that the network is made of (a bridge): no
    /// two networks may share one.
    fn network_links(&self, _net: &NetworkSpec) -> Vec<String> {
        Vec::new()
    }

    /// Make the network's kernel objects, or check and repair them (reconciling
    /// after a restart). Answers the data to store with the network (`net.data`
    /// unchanged when there is nothing new).
    async fn create_network(&self, net: &NetworkSpec) -> Result<DriverData, DriverError>;

    /// Remove the network's kernel objects (only those the driver made); a missing
    /// object is not an error.
    async fn delete_network(&self, net: &NetworkSpec) -> Result<(), DriverError>;

    /// Attach an endpoint to a sandbox as interface `ifname` (for an engine-placed
    /// sandbox, the driver names the link the engine moves: see [`Joined`]).
    async fn join(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<Joined, DriverError>;

    /// The link a join of `ep` makes in the daemon's namespace, known before the
    /// join (it is stored alongside the join).
    fn host_link(&self, _ep: &EndpointSpec) -> Option<String> {
        None
    }

    /// After a restart: make sure a stored join is still wired and configured as
    /// it left it (for a bridge: its veth there, a port of the bridge, up, and the
    /// interface inside the sandbox configured; a join cut short by a crash, or
    /// whose veth is gone, is made again). For an engine-placed sandbox (no
    /// namespace) a missing interface is [`Repair::Gone`].
    async fn repair_join(
        &self,
        _net: &NetworkSpec,
        _ep: &EndpointSpec,
        _sandbox: &SandboxSpec,
        _ifname: &str,
    ) -> Result<Repair, DriverError> {
        Ok(Repair::Intact)
    }

    /// For a join into an engine-placed sandbox: whether the link the engine was to
    /// move into its sandbox is still in the daemon's namespace (the engine never
    /// took it, so no container has it).
    async fn engine_link_untaken(&self, _ep: &EndpointSpec, _ifname: &str) -> bool {
        false
    }

    /// Detach it; a missing interface is not an error.
    async fn leave(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<(), DriverError>;

    /// At start: remove the links this driver made (those with the daemon's mark)
    /// that neither `networks` (all of this driver's) nor `host_links` (of the
    /// stored joins) account for.
    async fn sweep(&self, _networks: &[NetworkSpec], _host_links: &HashSet<String>) -> Swept {
        Swept::default()
    }
}
