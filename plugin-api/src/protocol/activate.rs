//! `Plugin.Activate`: the handshake in which a plugin lists what it implements.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One of the plugin interfaces the engine knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Interface {
    /// `NetworkDriver.*` calls.
    NetworkDriver,
    /// `IpamDriver.*` calls.
    IpamDriver,
    /// `VolumeDriver.*` calls.
    VolumeDriver,
}

impl Interface {
    /// The name as it appears in `Implements` and in call paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::NetworkDriver => "NetworkDriver",
            Interface::IpamDriver => "IpamDriver",
            Interface::VolumeDriver => "VolumeDriver",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interface {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "NetworkDriver" => Ok(Interface::NetworkDriver),
            "IpamDriver" => Ok(Interface::IpamDriver),
            "VolumeDriver" => Ok(Interface::VolumeDriver),
            other => Err(format!("unknown plugin interface {other:?}")),
        }
    }
}

/// Reply to `POST /Plugin.Activate`.
///
/// `Implements` is kept as strings so a client can talk to plugins that implement
/// interfaces this crate does not model (for example `authz`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActivateResponse {
    /// Interfaces the plugin serves, such as `"VolumeDriver"`.
    #[serde(
        rename = "Implements",
        default,
        deserialize_with = "super::wire::null_as_default"
    )]
    pub implements: Vec<String>,
}

impl ActivateResponse {
    /// Whether the plugin says it implements `interface`.
    pub fn implements(&self, interface: Interface) -> bool {
        self.implements.iter().any(|i| i == interface.as_str())
    }
}
