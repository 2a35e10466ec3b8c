//! `NetworkDriver.*`: the remote network driver interface (libnetwork's `remote` driver).

use super::types::{MacAddress, Scope};
use super::wire::{as_string, empty_as_none, null_as_default};
use ipnet::IpNet;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Generic driver options: the engine sends arbitrary JSON values here
/// (`com.docker.network.generic` holds the `-o key=value` options as a map).
pub type Options = Map<String, Value>;

/// Option key under which the engine passes the user's `-o key=value` driver options.
pub const OPTION_GENERIC: &str = "com.docker.network.generic";
/// Option key the engine sets to `true` when the network has IPv6 enabled.
pub const OPTION_ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
/// Option key the engine sets to `true` for `--internal` networks.
pub const OPTION_INTERNAL: &str = "com.docker.network.internal";
/// Option key under which the engine passes a container's published ports
/// (`ProgramExternalConnectivity`, and in older engines Join and CreateEndpoint).
pub const OPTION_PORTMAP: &str = "com.docker.network.portmap";

/// One entry of [`OPTION_PORTMAP`]: `-p [HostIP:][HostPort[-HostPortEnd]:]Port/Proto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// The IP protocol number: 6 TCP, 17 UDP, 132 SCTP.
    #[serde(rename = "Proto")]
    pub proto: u8,
    /// The container's address: always empty from the engine (the driver knows it).
    #[serde(rename = "IP", default, deserialize_with = "null_as_default")]
    pub ip: String,
    /// The container's port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// The host address; empty means all addresses, IPv4 and IPv6.
    #[serde(rename = "HostIP", default, deserialize_with = "null_as_default")]
    pub host_ip: String,
    /// The host port; 0 lets the driver pick.
    #[serde(rename = "HostPort", default)]
    pub host_port: u16,
    /// Above `host_port`: pick one free port from `host_port..=host_port_end`.
    #[serde(rename = "HostPortEnd", default)]
    pub host_port_end: u16,
}

/// The published ports in `options` ([`OPTION_PORTMAP`]); none if absent or null.
pub fn port_bindings(options: &Options) -> Result<Vec<PortBinding>, String> {
    match options.get(OPTION_PORTMAP) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| format!("option {OPTION_PORTMAP}: {e}"))
        }
    }
}

/// Reply to `NetworkDriver.GetCapabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkCapabilities {
    /// Where the driver's network allocations live.
    #[serde(rename = "Scope", default)]
    pub scope: Scope,
    /// How far the driver's connectivity reaches (used for swarm service networks).
    #[serde(rename = "ConnectivityScope", default)]
    pub connectivity_scope: Scope,
    /// Whether the driver wants to be asked before the engine allocates a gateway
    /// address (newer engines only; older ones ignore the field).
    #[serde(rename = "GwAllocChecker", default)]
    pub gw_alloc_checker: bool,
}

/// The addresses IPAM gave a network, for one address family.
///
/// Gateway and aux addresses arrive in CIDR form (`172.20.0.1/16`): the host part
/// is the address, the prefix is the pool's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamData {
    /// Address space the pool came from (`LocalDefault`, `GlobalDefault`, ...).
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    /// The subnet.
    #[serde(rename = "Pool", with = "as_string")]
    pub pool: IpNet,
    /// The gateway, as an address with the pool's prefix length.
    #[serde(
        rename = "Gateway",
        default,
        with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway: Option<IpNet>,
    /// Reserved addresses by name (`--aux-address name=ip`), each with the pool's prefix length.
    #[serde(
        rename = "AuxAddresses",
        default,
        deserialize_with = "aux_addresses::deserialize",
        serialize_with = "aux_addresses::serialize",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, IpNet>,
}

mod aux_addresses {
    use super::*;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, IpNet>, s: S) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, v.to_string())).collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, IpNet>, D::Error> {
        let raw: Option<BTreeMap<String, String>> = Option::deserialize(d)?;
        raw.unwrap_or_default()
            .into_iter()
            .map(|(name, addr)| {
                let net = addr
                    .parse::<IpNet>()
                    .map_err(|e| de::Error::custom(format!("aux address {name}={addr:?}: {e}")))?;
                Ok((name, net))
            })
            .collect()
    }
}

/// `NetworkDriver.CreateNetwork`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateNetworkRequest {
    /// The engine's 64-hex network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Driver options, labels and engine flags (`com.docker.network.*`). May be null.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: Options,
    /// IPv4 pools with gateway and aux addresses. May be null.
    #[serde(rename = "IPv4Data", default, deserialize_with = "null_as_default")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools with gateway and aux addresses. May be null.
    #[serde(rename = "IPv6Data", default, deserialize_with = "null_as_default")]
    pub ipv6_data: Vec<IpamData>,
}

impl CreateNetworkRequest {
    /// The user's `-o key=value` driver options, if the engine passed any.
    ///
    /// Values that are not strings are rendered as JSON text.
    pub fn generic_options(&self) -> BTreeMap<String, String> {
        match self.options.get(OPTION_GENERIC) {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

/// `NetworkDriver.DeleteNetwork`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteNetworkRequest {
    /// The network to delete.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// `NetworkDriver.AllocateNetwork` (swarm managers allocate global-scope resources).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateNetworkRequest {
    /// The network being allocated.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Driver options as strings. May be null.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    /// IPv4 pools. May be null.
    #[serde(rename = "IPv4Data", default, deserialize_with = "null_as_default")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools. May be null.
    #[serde(rename = "IPv6Data", default, deserialize_with = "null_as_default")]
    pub ipv6_data: Vec<IpamData>,
}

/// Reply to `NetworkDriver.AllocateNetwork`: options handed to every node's CreateNetwork.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllocateNetworkResponse {
    /// Options the driver chose (for example a VNI).
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
}

/// `NetworkDriver.FreeNetwork`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeNetworkRequest {
    /// The network whose global resources are released.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// An endpoint's addresses. Empty strings on the wire mean "not set".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EndpointInterface {
    /// IPv4 address with prefix length, such as `172.20.0.2/16`.
    #[serde(rename = "Address", default, with = "empty_as_none")]
    pub address: Option<IpNet>,
    /// IPv6 address with prefix length.
    #[serde(rename = "AddressIPv6", default, with = "empty_as_none")]
    pub address_ipv6: Option<IpNet>,
    /// MAC address.
    #[serde(rename = "MacAddress", default, with = "empty_as_none")]
    pub mac_address: Option<MacAddress>,
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateEndpointRequest {
    /// The endpoint's network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The engine's 64-hex endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Addresses the engine (its IPAM) already chose. The driver must not change
    /// an address that is set here; it may fill in those that are empty.
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterface>,
    /// Endpoint options (exposed ports, port bindings, MAC, ...). May be null.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: Options,
}

/// Reply to `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateEndpointResponse {
    /// Only the fields the request left empty and the driver filled in; `None` when
    /// the driver accepts the engine's addresses as they are.
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterface>,
}

/// `NetworkDriver.EndpointOperInfo`, `NetworkDriver.DeleteEndpoint` and `NetworkDriver.Leave`
/// all name one endpoint of one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRequest {
    /// The endpoint's network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// `NetworkDriver.EndpointOperInfo`.
pub type EndpointOperInfoRequest = EndpointRequest;
/// `NetworkDriver.DeleteEndpoint`.
pub type DeleteEndpointRequest = EndpointRequest;
/// `NetworkDriver.Leave`.
pub type LeaveRequest = EndpointRequest;
/// `NetworkDriver.RevokeExternalConnectivity`.
pub type RevokeExternalConnectivityRequest = EndpointRequest;

/// Reply to `NetworkDriver.EndpointOperInfo`: free-form data shown by `docker inspect`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EndpointOperInfoResponse {
    /// Driver-defined key/value data.
    #[serde(rename = "Value", default, deserialize_with = "null_as_default")]
    pub value: Options,
}

/// `NetworkDriver.Join`: attach an endpoint to a sandbox (a container's network namespace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The endpoint's network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Path of the sandbox's network namespace, such as `/var/run/docker/netns/1a2b3c`.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// Join options. May be null.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: Options,
}

/// Names for the interface a Join hands to the engine.
///
/// `src_name` must exist in the plugin's own network namespace; the engine moves it
/// into the sandbox and renames it to `dst_prefix` plus an index (`eth0`, `eth1`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InterfaceName {
    /// The interface to move, in the plugin's namespace.
    #[serde(rename = "SrcName")]
    pub src_name: String,
    /// A full name for the interface inside the sandbox. The engine decodes it but
    /// names the interface from `dst_prefix`; leave it empty.
    #[serde(rename = "DstName", default)]
    pub dst_name: String,
    /// Prefix for its name inside the sandbox, such as `eth`.
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

/// How a static route reaches its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouteType {
    /// Through `next_hop` (wire value 0).
    #[default]
    NextHop,
    /// Directly on the interface (wire value 1).
    Connected,
}

impl Serialize for RouteType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            RouteType::NextHop => 0,
            RouteType::Connected => 1,
        })
    }
}

impl<'de> Deserialize<'de> for RouteType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match i64::deserialize(d)? {
            0 => Ok(RouteType::NextHop),
            1 => Ok(RouteType::Connected),
            n => Err(de::Error::custom(format!(
                "unknown RouteType {n}: expected 0 (next hop) or 1 (connected)"
            ))),
        }
    }
}

/// A route the engine installs in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoute {
    /// Destination prefix.
    #[serde(rename = "Destination", with = "as_string")]
    pub destination: IpNet,
    /// Next hop or directly connected.
    #[serde(rename = "RouteType", default)]
    pub route_type: RouteType,
    /// Gateway for [`RouteType::NextHop`] routes.
    #[serde(rename = "NextHop", default, with = "empty_as_none")]
    pub next_hop: Option<IpAddr>,
}

/// Reply to `NetworkDriver.Join`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The interface to move into the sandbox.
    #[serde(rename = "InterfaceName", default)]
    pub interface_name: Option<InterfaceName>,
    /// IPv4 default gateway. Answer one (or set `disable_gateway_service`), or the
    /// engine attaches the container to its own `docker_gwbridge` as well.
    #[serde(rename = "Gateway", default, with = "empty_as_none")]
    pub gateway: Option<IpAddr>,
    /// IPv6 default gateway.
    #[serde(rename = "GatewayIPv6", default, with = "empty_as_none")]
    pub gateway_ipv6: Option<IpAddr>,
    /// Extra routes for the sandbox.
    #[serde(rename = "StaticRoutes", default, deserialize_with = "null_as_default")]
    pub static_routes: Vec<StaticRoute>,
    /// Tell the engine not to add its gateway network for this endpoint.
    #[serde(rename = "DisableGatewayService", default)]
    pub disable_gateway_service: bool,
}

/// What a discovery notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscoveryType {
    /// A node joined or left (wire value 1); data is [`NodeDiscoveryData`].
    Node,
    /// Initial overlay encryption keys (wire value 2).
    EncryptionKeysConfig,
    /// Rotated overlay encryption keys (wire value 3).
    EncryptionKeysUpdate,
    /// A value this crate does not know.
    Other(i64),
}

impl Serialize for DiscoveryType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(match *self {
            DiscoveryType::Node => 1,
            DiscoveryType::EncryptionKeysConfig => 2,
            DiscoveryType::EncryptionKeysUpdate => 3,
            DiscoveryType::Other(n) => n,
        })
    }
}

impl<'de> Deserialize<'de> for DiscoveryType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match i64::deserialize(d)? {
            1 => DiscoveryType::Node,
            2 => DiscoveryType::EncryptionKeysConfig,
            3 => DiscoveryType::EncryptionKeysUpdate,
            n => DiscoveryType::Other(n),
        })
    }
}

/// `NetworkDriver.DiscoverNew` and `NetworkDriver.DiscoverDelete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryNotification {
    /// What kind of discovery this is.
    #[serde(rename = "DiscoveryType")]
    pub discovery_type: DiscoveryType,
    /// Type-specific data; see [`DiscoveryNotification::node`].
    #[serde(rename = "DiscoveryData", default)]
    pub discovery_data: Value,
}

impl DiscoveryNotification {
    /// The node data of a [`DiscoveryType::Node`] notification.
    pub fn node(&self) -> Option<NodeDiscoveryData> {
        match self.discovery_type {
            DiscoveryType::Node => serde_json::from_value(self.discovery_data.clone()).ok(),
            _ => None,
        }
    }
}

/// Data of a node discovery notification.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeDiscoveryData {
    /// The node's advertised address.
    #[serde(rename = "Address", default)]
    pub address: String,
    /// The address the node binds to.
    #[serde(rename = "BindAddress", default)]
    pub bind_address: String,
    /// Whether the notification is about this node itself.
    #[serde(rename = "Self", default)]
    pub is_self: bool,
}

/// `NetworkDriver.ProgramExternalConnectivity`: set up port publishing and the like
/// once the endpoint is the container's gateway endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramExternalConnectivityRequest {
    /// The endpoint's network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Options such as `com.docker.network.portmap`. May be null.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: Options,
}

/// `NetworkDriver.GwAllocCheck` (engines 28.0 and later, only when the driver set
/// [`NetworkCapabilities::gw_alloc_checker`]): may the engine skip allocating gateways?
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GwAllocCheckRequest {
    /// The network's options, as in CreateNetwork. May be null.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: Options,
}

/// Reply to `NetworkDriver.GwAllocCheck`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GwAllocCheckResponse {
    /// Do not allocate an IPv4 gateway address.
    #[serde(rename = "SkipIPv4", default)]
    pub skip_ipv4: bool,
    /// Do not allocate an IPv6 gateway address.
    #[serde(rename = "SkipIPv6", default)]
    pub skip_ipv6: bool,
}
