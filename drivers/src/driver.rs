//! The one driver contract: the controller calls it and never knows which driver
//! answers.

use crate::netlink::{Mac, Netlink, NetlinkError};
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

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
}

impl SandboxSpec {
    /// A sandbox at `netns`, with no connection yet.
    pub fn at(netns: impl Into<PathBuf>) -> Self {
        SandboxSpec {
            netns: Some(netns.into()),
            netlink: None,
        }
    }

    /// A connection inside the sandbox: the one it came with, or a new one; `None`
    /// for an engine-placed sandbox.
    pub async fn connect(&self) -> Result<Option<Netlink>, NetlinkError> {
        match (&self.netlink, &self.netns) {
            (Some(nl), _) => Ok(Some(nl.clone())),
            (None, Some(path)) => Netlink::in_netns(path).await.map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// What a join made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Joined {
    /// The endpoint's link in the daemon's namespace, if the driver made one.
    pub host_link: Option<String>,
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
#[async_trait]
pub trait Driver: Send + Sync {
    /// The driver's name (`bridge`, `host`, `none`).
    fn kind(&self) -> &'static str;

    /// Check a network's spec and options before anything is stored or made.
    fn validate(&self, net: &NetworkSpec) -> Result<(), DriverError>;

    /// Make the network's kernel objects; calling it again for an existing network
    /// (reconciling after a restart) repairs and keeps them.
    async fn create_network(&self, net: &NetworkSpec) -> Result<(), DriverError>;

    /// Remove the network's kernel objects; a missing object is not an error.
    async fn delete_network(&self, net: &NetworkSpec) -> Result<(), DriverError>;

    /// Attach an endpoint to a sandbox as interface `ifname`.
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

    /// After a restart: make sure a joined endpoint whose host link exists is still
    /// wired and configured as the join left it (for a bridge: a port of it, up, and
    /// the interface inside the sandbox configured; a join cut short by a crash is
    /// made again). Whether anything had to be repaired.
    async fn repair_join(
        &self,
        _net: &NetworkSpec,
        _ep: &EndpointSpec,
        _sandbox: &SandboxSpec,
        _ifname: &str,
    ) -> Result<bool, DriverError> {
        Ok(false)
    }

    /// Detach it; a missing interface is not an error.
    async fn leave(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<(), DriverError>;
}
