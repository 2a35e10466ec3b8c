//! `IpamDriver.*`: the remote IP address management interface.
//!
//! Unlike the other interfaces, an IPAM reply reports failure in a field named
//! `Error` (not `Err`); [`crate::client`] understands both, and the server answers
//! failures with HTTP 500 and `Err`, which every engine version reads.

use super::wire::{as_string, empty_as_none, null_as_default};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Option key in `RequestAddress` that says what the address is for.
pub const OPTION_REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
/// Value of [`OPTION_REQUEST_ADDRESS_TYPE`] when the engine asks for the gateway.
pub const REQUEST_ADDRESS_TYPE_GATEWAY: &str = "com.docker.network.gateway";
/// Address space the engine uses for local-scope networks by default.
pub const LOCAL_DEFAULT_ADDRESS_SPACE: &str = "LocalDefault";
/// Address space the engine uses for global-scope networks by default.
pub const GLOBAL_DEFAULT_ADDRESS_SPACE: &str = "GlobalDefault";

/// Reply to `IpamDriver.GetCapabilities`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpamCapabilities {
    /// Ask the engine to pass the endpoint's MAC address in `RequestAddress` options.
    #[serde(rename = "RequiresMACAddress", default)]
    pub requires_mac_address: bool,
    /// Ask the engine to replay pool and address requests after a restart.
    #[serde(rename = "RequiresRequestReplay", default)]
    pub requires_request_replay: bool,
}

/// Reply to `IpamDriver.GetDefaultAddressSpaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSpacesResponse {
    /// Name of the address space for local-scope networks.
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local_default_address_space: String,
    /// Name of the address space for global-scope networks.
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global_default_address_space: String,
}

impl Default for AddressSpacesResponse {
    fn default() -> Self {
        AddressSpacesResponse {
            local_default_address_space: LOCAL_DEFAULT_ADDRESS_SPACE.to_string(),
            global_default_address_space: GLOBAL_DEFAULT_ADDRESS_SPACE.to_string(),
        }
    }
}

/// `IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolRequest {
    /// Address space to allocate from.
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    /// The subnet asked for (`--subnet`), or `None` for "any".
    #[serde(rename = "Pool", default, with = "empty_as_none")]
    pub pool: Option<IpNet>,
    /// A range inside `pool` to allocate addresses from (`--ip-range`).
    #[serde(rename = "SubPool", default, with = "empty_as_none")]
    pub sub_pool: Option<IpNet>,
    /// `--ipam-opt` options. May be null.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    /// Whether an IPv6 pool is asked for.
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

/// Reply to `IpamDriver.RequestPool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestPoolResponse {
    /// Opaque id the engine passes back in later calls.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The subnet granted.
    #[serde(rename = "Pool", with = "as_string")]
    pub pool: IpNet,
    /// Extra data; `com.docker.network.gateway` here proposes a gateway (CIDR form).
    #[serde(rename = "Data", default, deserialize_with = "null_as_default")]
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePoolRequest {
    /// The pool to release.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressRequest {
    /// The pool to allocate from.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// A specific address (`--ip`, `--gateway`), or `None` for any free one.
    #[serde(rename = "Address", default, with = "empty_as_none")]
    pub address: Option<IpAddr>,
    /// Options; see [`OPTION_REQUEST_ADDRESS_TYPE`]. May be null.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
}

impl RequestAddressRequest {
    /// Whether the engine is asking for the network's gateway address.
    pub fn is_gateway(&self) -> bool {
        self.options
            .get(OPTION_REQUEST_ADDRESS_TYPE)
            .map(String::as_str)
            == Some(REQUEST_ADDRESS_TYPE_GATEWAY)
    }
}

/// Reply to `IpamDriver.RequestAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAddressResponse {
    /// The address granted, with the pool's prefix length (`10.0.0.2/24`).
    #[serde(rename = "Address", with = "as_string")]
    pub address: IpNet,
    /// Extra data.
    #[serde(rename = "Data", default, deserialize_with = "null_as_default")]
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAddressRequest {
    /// The pool the address belongs to.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address, without prefix length.
    #[serde(rename = "Address", with = "as_string")]
    pub address: IpAddr,
}
