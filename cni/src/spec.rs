//! The CNI specification's shapes: the network configuration a runtime gives on
//! stdin, the result and error printed on stdout, and the error codes.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The versions this plugin speaks (their results differ only in the `version`
/// of each IP, which 1.0.0 dropped).
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// What an error is, as the specification numbers them; 100 and up are this
/// plugin's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The configuration's version is not one this plugin speaks.
    IncompatibleVersion = 1,
    /// A field of the configuration is not supported.
    UnsupportedField = 2,
    /// The container is unknown.
    UnknownContainer = 3,
    /// A CNI_* environment variable is missing or wrong.
    InvalidEnvironment = 4,
    /// Reading or writing failed.
    Io = 5,
    /// The configuration (or a result in it) is not valid JSON of its shape.
    Decode = 6,
    /// The configuration names something that cannot work (an unknown netd
    /// network, a bad address).
    InvalidConfig = 7,
    /// netd is not answering; the same call may work later.
    TryAgainLater = 11,
    /// STATUS: the plugin cannot serve ADD now.
    NotAvailable = 50,
    /// netd refused: the request clashes with what it holds (an address in use,
    /// a port taken, an interface name taken).
    Refused = 100,
    /// netd failed doing it (the kernel refused); nothing was left half-made.
    Failed = 101,
}

/// An error as printed on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorOut {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// The network configuration given on stdin (one plugin's part of a conflist,
/// with `runtimeConfig` and `prevResult` added by the runtime). Other keys
/// (`type`, `capabilities`, `args`, `dns`, ...) are ignored, as the
/// specification lets a plugin ignore what it does not use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    /// The CNI network's name: netd's network of that name unless `network`
    /// names another.
    pub name: String,
    /// The netd network (name or id), when it is not `name`.
    #[serde(default)]
    pub network: Option<String>,
    /// netd's socket, when it is not the default one.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub prev_result: Option<serde_json::Value>,
    /// GC's valid attachments (`cni.dev/valid-attachments`).
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Vec<Attachment>,
    /// An `ipam` section: netd allocates the addresses itself, so one is refused.
    #[serde(default)]
    pub ipam: Option<serde_json::Value>,
}

/// One of GC's valid attachments.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// What the runtime passes for the capabilities the configuration declares.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default)]
    pub mac: Option<String>,
    /// Addresses wanted (`10.88.0.5/16` or `10.88.0.5`).
    #[serde(default)]
    pub ips: Vec<String>,
    /// Names the container answers to, by CNI network name (the `aliases`
    /// capability, as podman passes the container's name and short id).
    #[serde(default)]
    pub aliases: std::collections::BTreeMap<String, Vec<String>>,
}

/// One entry of `runtimeConfig.portMappings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[serde(default)]
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

/// A successful ADD's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    // Both optional in a result (a prevResult from another plugin).
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    /// Optional in the specification (a tap or tun has none).
    #[serde(default)]
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `4` or `6`, before 1.0.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
}

/// VERSION's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

/// Whether `version` is before 1.0.0 (whose results carry an IP's `version`).
pub fn before_1_0(version: &str) -> bool {
    version.starts_with("0.")
}

/// Whether `version` has CHECK (0.4.0 and later).
pub fn has_check(version: &str) -> bool {
    !matches!(version, "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1")
}
