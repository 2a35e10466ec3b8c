//! What the firewall is told: each network's policy (from Docker's option names)
//! and each published port. Plain values; the rules are rendered from them.

use crate::FirewallError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// `com.docker.network.bridge.enable_ip_masquerade` (default true).
pub const OPTION_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
/// `com.docker.network.bridge.enable_icc` (default true).
pub const OPTION_ICC: &str = "com.docker.network.bridge.enable_icc";
/// `com.docker.network.internal` (`--internal`): no way out, no NAT, no ports.
pub const OPTION_INTERNAL: &str = "com.docker.network.internal";
/// `com.docker.network.host_ipv4`: SNAT to this address instead of masquerade.
pub const OPTION_HOST_IPV4: &str = "com.docker.network.host_ipv4";
/// `com.docker.network.bridge.host_binding_ipv4`: default host address for ports.
pub const OPTION_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
/// `com.docker.network.bridge.gateway_mode_ipv4`.
pub const OPTION_MODE_IPV4: &str = "com.docker.network.bridge.gateway_mode_ipv4";
/// `com.docker.network.bridge.gateway_mode_ipv6`.
pub const OPTION_MODE_IPV6: &str = "com.docker.network.bridge.gateway_mode_ipv6";
/// `com.docker.network.bridge.trusted_host_interfaces`: colon-separated names
/// whose packets may reach container addresses directly.
pub const OPTION_TRUSTED: &str = "com.docker.network.bridge.trusted_host_interfaces";

/// Every option this module reads.
pub const OPTIONS: &[&str] = &[
    OPTION_MASQUERADE,
    OPTION_ICC,
    OPTION_INTERNAL,
    OPTION_HOST_IPV4,
    OPTION_HOST_BINDING,
    OPTION_MODE_IPV4,
    OPTION_MODE_IPV6,
    OPTION_TRUSTED,
];

/// How a network's gateway treats traffic between its containers and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayMode {
    /// Masquerade out; only published ports in; direct routing to containers dropped.
    #[default]
    Nat,
    /// As `nat`, but a host elsewhere may route to container addresses directly.
    NatUnprotected,
    /// No NAT: container addresses are routed; only published ports are open.
    Routed,
    /// No way in or out: traffic stays between the network's containers.
    Isolated,
}

impl GatewayMode {
    fn parse(key: &str, text: &str) -> Result<Self, FirewallError> {
        match text {
            "nat" => Ok(GatewayMode::Nat),
            "nat-unprotected" => Ok(GatewayMode::NatUnprotected),
            "routed" => Ok(GatewayMode::Routed),
            "isolated" => Ok(GatewayMode::Isolated),
            _ => Err(FirewallError::invalid(
                format!("option {key}"),
                format!("{text:?}: expected nat, nat-unprotected, routed or isolated"),
            )),
        }
    }

    /// Whether traffic from outside may reach container addresses without DNAT.
    pub fn unprotected(self) -> bool {
        matches!(self, GatewayMode::NatUnprotected | GatewayMode::Routed)
    }
}

/// A boolean as Docker reads one (Go's `strconv.ParseBool`).
pub fn parse_bool(key: &str, value: &str) -> Result<bool, FirewallError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(FirewallError::invalid(
            format!("option {key}"),
            format!("{value:?}: expected true or false"),
        )),
    }
}

/// A network's firewall policy, from its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Masquerade traffic that leaves the host.
    pub masquerade: bool,
    /// Containers on the network reach each other.
    pub icc: bool,
    /// No way out, no NAT, no published ports.
    pub internal: bool,
    /// SNAT to this address instead of masquerading.
    pub snat_ipv4: Option<Ipv4Addr>,
    /// The host address ports bind to when a request names none.
    pub host_binding_ipv4: Option<Ipv4Addr>,
    /// IPv4 gateway mode.
    pub mode_ipv4: GatewayMode,
    /// IPv6 gateway mode.
    pub mode_ipv6: GatewayMode,
    /// Host interfaces whose packets may reach container addresses directly.
    pub trusted: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            masquerade: true,
            icc: true,
            internal: false,
            snat_ipv4: None,
            host_binding_ipv4: None,
            mode_ipv4: GatewayMode::Nat,
            mode_ipv6: GatewayMode::Nat,
            trusted: Vec::new(),
        }
    }
}

/// A link name as the kernel takes one (1 to 15 of letters, digits, `_.-`).
pub fn valid_link_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Policy {
    /// The policy `options` ask for; options this module does not read are ignored.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Policy, FirewallError> {
        let mut p = Policy::default();
        let address = |key: &str, text: &str| {
            text.parse::<Ipv4Addr>().map_err(|_| {
                FirewallError::invalid(
                    format!("option {key}"),
                    format!("{text:?}: expected an IPv4 address"),
                )
            })
        };
        for (key, value) in options {
            match key.as_str() {
                OPTION_MASQUERADE => p.masquerade = parse_bool(key, value)?,
                OPTION_ICC => p.icc = parse_bool(key, value)?,
                OPTION_INTERNAL => p.internal = parse_bool(key, value)?,
                OPTION_HOST_IPV4 => p.snat_ipv4 = Some(address(key, value)?),
                OPTION_HOST_BINDING => p.host_binding_ipv4 = Some(address(key, value)?),
                OPTION_MODE_IPV4 => p.mode_ipv4 = GatewayMode::parse(key, value)?,
                OPTION_MODE_IPV6 => p.mode_ipv6 = GatewayMode::parse(key, value)?,
                OPTION_TRUSTED => {
                    for name in value.split(':').filter(|n| !n.is_empty()) {
                        if !valid_link_name(name) {
                            return Err(FirewallError::invalid(
                                format!("option {key}"),
                                format!("{name:?} is not an interface name"),
                            ));
                        }
                        p.trusted.push(name.to_string());
                    }
                }
                _ => {}
            }
        }
        if p.host_binding_ipv4 == Some(Ipv4Addr::UNSPECIFIED) {
            p.host_binding_ipv4 = None;
        }
        Ok(p)
    }

    /// The gateway mode for `addr`'s family.
    pub fn mode(&self, addr: IpAddr) -> GatewayMode {
        match addr {
            IpAddr::V4(_) => self.mode_ipv4,
            IpAddr::V6(_) => self.mode_ipv6,
        }
    }

    /// Whether nothing may leave or enter: `--internal` or `isolated` in `addr`'s family.
    pub fn closed(&self, addr: IpAddr) -> bool {
        self.internal || self.mode(addr) == GatewayMode::Isolated
    }
}

/// A network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    /// The network's id (64 hex digits); chains are named after its first 12.
    pub id: String,
    /// The network's name, for `firewall show`.
    pub name: String,
    /// Its bridge.
    pub bridge: String,
    /// Its subnets.
    pub subnets: Vec<IpNet>,
    /// Its gateways (the bridge's addresses).
    pub gateways: Vec<IpAddr>,
    /// Its policy.
    pub policy: Policy,
}

impl NetworkRules {
    /// The first 12 hex digits of the id.
    pub fn short(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }
}

/// A transport protocol ports are published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Proto {
    /// From the IP protocol number dockerd sends.
    pub fn from_number(n: u64) -> Result<Proto, FirewallError> {
        match n {
            6 => Ok(Proto::Tcp),
            17 => Ok(Proto::Udp),
            132 => Ok(Proto::Sctp),
            _ => Err(FirewallError::invalid(
                "port protocol",
                format!("{n}: expected 6 (tcp), 17 (udp) or 132 (sctp)"),
            )),
        }
    }

    /// From its name.
    pub fn parse(text: &str) -> Result<Proto, FirewallError> {
        match text {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(FirewallError::invalid(
                "port protocol",
                format!("{text:?}: expected tcp, udp or sctp"),
            )),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// A port to publish, as asked (`-p [HOST_IP:][HOST_PORT[-END]:]PORT[/PROTO]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// Protocol (default tcp).
    #[serde(default = "tcp")]
    pub proto: Proto,
    /// The host address; none means all (IPv4 and, for an endpoint with IPv6, IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// The host port; 0 (or absent) lets netd pick a free one.
    #[serde(default)]
    pub host_port: u16,
    /// With `host_port`, a range to pick one free port from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_end: Option<u16>,
    /// The container's port.
    pub container_port: u16,
    /// The caller holds the host port itself (a runtime such as podman listens
    /// on it to keep it, and CNI's convention is that a plugin does not): netd
    /// neither binds it nor asks who listens on it. Needs a fixed host port.
    #[serde(default, skip_serializing_if = "is_false")]
    pub held_by_caller: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn tcp() -> Proto {
    Proto::Tcp
}

impl PortRequest {
    /// Checks what needs no state: a container port, a sane range, a usable address.
    pub fn check(&self) -> Result<(), FirewallError> {
        let what = || format!("port {}/{}", self.container_port, self.proto);
        if self.container_port == 0 {
            return Err(FirewallError::invalid(
                "port",
                "the container port must be 1 to 65535",
            ));
        }
        if let Some(end) = self.host_port_end {
            if self.host_port == 0 || end < self.host_port {
                return Err(FirewallError::invalid(
                    what(),
                    format!(
                        "host port range {}-{end}: the range needs a start and an end not below it",
                        self.host_port
                    ),
                ));
            }
        }
        if let Some(ip) = self.host_ip {
            let bad = match ip {
                IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
                IpAddr::V6(v6) => v6.is_multicast(),
            };
            if bad {
                return Err(FirewallError::invalid(
                    what(),
                    format!("host address {ip} cannot receive connections"),
                ));
            }
            if let IpAddr::V6(v6) = ip {
                if v6.is_loopback() {
                    return Err(FirewallError::invalid(
                        what(),
                        "host address ::1: IPv6 cannot forward from loopback (no route_localnet); publish on 127.0.0.1",
                    ));
                }
                if v6.to_ipv4_mapped().is_some() {
                    return Err(FirewallError::invalid(
                        what(),
                        format!(
                            "host address {ip} is an IPv4-mapped address: give the IPv4 address"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A published port: one host address (or all of one family) and port, to one
/// container address and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublishedPort {
    /// Protocol.
    pub proto: Proto,
    /// The host address; none means every address of the container address's family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The container's address.
    pub container_ip: IpAddr,
    /// The container's port.
    pub container_port: u16,
    /// The caller holds the host port (see [`PortRequest::held_by_caller`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub held_by_caller: bool,
}

impl PublishedPort {
    /// Whether the host side is a loopback address (reachable from this host only).
    pub fn loopback(&self) -> bool {
        self.host_ip.is_some_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match (self.host_ip, self.container_ip) {
            (Some(IpAddr::V6(ip)), _) => format!("[{ip}]"),
            (Some(ip), _) => ip.to_string(),
            (None, IpAddr::V4(_)) => "0.0.0.0".into(),
            (None, IpAddr::V6(_)) => "[::]".into(),
        };
        let container = match self.container_ip {
            IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        write!(
            f,
            "{host}:{} -> {container}:{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}
