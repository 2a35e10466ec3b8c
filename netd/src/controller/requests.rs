//! What callers ask the controller for. These are also the native API's request
//! bodies: unknown fields are refused, so a typo is an error, not a silent default.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// One subnet of a new network; everything optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetRequest {
    /// The subnet; `None` takes a free one from the default pools.
    #[serde(default)]
    pub subnet: Option<IpNet>,
    /// The gateway; `None` takes the subnet's first free address.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Hand out addresses only from this part of the subnet.
    #[serde(default)]
    pub ip_range: Option<IpNet>,
    /// Addresses to keep out of allocation, by name.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// With no subnet: take an IPv6 one.
    #[serde(default)]
    pub ipv6: bool,
}

/// Create a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    /// Unique name.
    pub name: String,
    /// `bridge` (default), `host` or `none`.
    #[serde(default)]
    pub driver: Option<String>,
    /// Subnets; none given means one IPv4 subnet from the default pools (bridge).
    #[serde(default)]
    pub subnets: Vec<SubnetRequest>,
    /// Also take an IPv6 subnet from the default pools when none is given.
    #[serde(default)]
    pub ipv6: bool,
    /// Driver options, with Docker's names.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Create an endpoint on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointCreate {
    /// The network: id, unique id prefix or name.
    pub network: String,
    /// Name, unique within the network; `ep-<id12>` by default.
    #[serde(default)]
    pub name: Option<String>,
    /// A fixed IPv4 address.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// A fixed IPv6 address.
    #[serde(default)]
    pub ipv6: Option<IpAddr>,
    /// A fixed MAC address.
    #[serde(default)]
    pub mac: Option<String>,
    /// More names the endpoint answers to in the network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// Create a sandbox, or adopt an existing namespace as one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxCreate {
    /// Unique name; `sb-<id12>` by default.
    #[serde(default)]
    pub name: Option<String>,
    /// Adopt this namespace (`/proc/PID/ns/net`, a bind-mounted netns file)
    /// instead of creating one.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// Host name for the hosts file; the sandbox's name by default.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Name servers; the host's (or Docker's fallback) by default.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// Labels, for its maker (netd-cni and `netd oci-hook` record whose
    /// container it stands for).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Join an existing endpoint to a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// The endpoint: id, unique id prefix or name.
    pub endpoint: String,
}

/// Create an endpoint and join it in one step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attach {
    /// The network: id, unique id prefix or name.
    pub network: String,
    /// `network` is a name, never read as an id or id prefix (a CNI
    /// configuration's `name`, which may look like hex digits).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_name: bool,
    /// Endpoint name.
    #[serde(default)]
    pub name: Option<String>,
    /// A fixed IPv4 address.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    /// A fixed IPv6 address.
    #[serde(default)]
    pub ipv6: Option<IpAddr>,
    /// A fixed MAC address.
    #[serde(default)]
    pub mac: Option<String>,
    /// More names the endpoint answers to in the network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Ports to publish (`-p` semantics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<firewall::PortRequest>,
    /// The interface's name in the sandbox (a CNI caller's `CNI_IFNAME`); the
    /// lowest free `ethN` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// Check a Linux interface name: 1 to 15 bytes, none of them '/', ':', '%'
/// (the kernel reads `eth%d` as a pattern to fill in) or whitespace, and not
/// `.` or `..`.
pub fn check_interface_name(name: &str) -> Result<(), String> {
    let ok = (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| {
            matches!(b, b'/' | b':' | b'%') || b.is_ascii_whitespace() || b.is_ascii_control()
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid interface name {name:?}: use 1 to 15 characters, without '/', ':', '%' or spaces"
        ))
    }
}

/// `POST /v1/attachments`: create a sandbox (or adopt a namespace) and attach
/// it to a network in one request, stored in one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// The sandbox.
    pub sandbox: SandboxCreate,
    /// The attach.
    pub attach: Attach,
}

/// The most aliases one endpoint may have.
pub const MAX_ALIASES: usize = 32;

/// Check an endpoint's DNS aliases: host names (letters, digits, '-' and '_' in
/// dot-separated labels of up to 63, 253 in all), at most [`MAX_ALIASES`].
pub fn check_aliases(aliases: &[String]) -> Result<(), String> {
    if aliases.len() > MAX_ALIASES {
        return Err(format!(
            "{} aliases: at most {MAX_ALIASES} per endpoint",
            aliases.len()
        ));
    }
    for a in aliases {
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if a.len() > 253 || !a.split('.').all(label_ok) {
            return Err(format!(
                "invalid alias {a:?}: use letters, digits, '-' and '_' in dot-separated labels of up to 63"
            ));
        }
    }
    Ok(())
}

/// `PUT /v1/endpoints/{key}/ports`: the ports a joined endpoint publishes, replacing
/// what it published (an empty list unpublishes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// Ports to publish.
    pub ports: Vec<firewall::PortRequest>,
}

impl Attach {
    /// The endpoint this attach creates.
    pub fn endpoint(&self) -> EndpointCreate {
        EndpointCreate {
            network: self.network.clone(),
            name: self.name.clone(),
            ip: self.ip,
            ipv6: self.ipv6,
            mac: self.mac.clone(),
            aliases: self.aliases.clone(),
        }
    }
}
