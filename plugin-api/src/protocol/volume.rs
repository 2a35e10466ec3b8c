//! `VolumeDriver.*`: the volume plugin interface.

use super::types::{Scope, Timestamp};
use super::wire::null_as_default;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `VolumeDriver.Create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateVolumeRequest {
    /// The volume's name.
    #[serde(rename = "Name")]
    pub name: String,
    /// `--opt key=value` options. May be null.
    #[serde(rename = "Opts", default, deserialize_with = "null_as_default")]
    pub opts: BTreeMap<String, String>,
}

/// `VolumeDriver.Remove`, `VolumeDriver.Path` and `VolumeDriver.Get` name one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRequest {
    /// The volume's name.
    #[serde(rename = "Name")]
    pub name: String,
}

/// `VolumeDriver.Remove`.
pub type RemoveVolumeRequest = VolumeRequest;
/// `VolumeDriver.Path`.
pub type PathRequest = VolumeRequest;
/// `VolumeDriver.Get`.
pub type GetVolumeRequest = VolumeRequest;

/// `VolumeDriver.Mount` and `VolumeDriver.Unmount`.
///
/// `id` identifies the caller (a container's mount point). The engine may mount
/// twice with the same id and reuses ids across container restarts: count
/// references, do not keep a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRequest {
    /// The volume's name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Who is mounting.
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// `VolumeDriver.Unmount`.
pub type UnmountRequest = MountRequest;

/// Reply to `VolumeDriver.Mount` and `VolumeDriver.Path`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MountpointResponse {
    /// Host path of the volume's data.
    #[serde(rename = "Mountpoint", default)]
    pub mountpoint: String,
}

/// A volume as a driver describes it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Volume {
    /// The volume's name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Host path, if mounted or known.
    #[serde(
        rename = "Mountpoint",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub mountpoint: String,
    /// Creation time. The engine rejects anything but RFC 3339, so it is typed.
    #[serde(rename = "CreatedAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Driver-specific status shown by `docker volume inspect` (Get only).
    #[serde(
        rename = "Status",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Map::is_empty"
    )]
    pub status: Map<String, Value>,
}

/// Reply to `VolumeDriver.Get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetVolumeResponse {
    /// The volume.
    #[serde(rename = "Volume")]
    pub volume: Volume,
}

/// Reply to `VolumeDriver.List`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListVolumesResponse {
    /// Every volume the driver has.
    #[serde(rename = "Volumes", default, deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
}

/// What a volume driver can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeCapabilities {
    /// `global` when every host sees the same volumes (the engine then skips
    /// some local bookkeeping); `local` otherwise.
    #[serde(rename = "Scope", default)]
    pub scope: Scope,
}

/// Reply to `VolumeDriver.Capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CapabilitiesResponse {
    /// The driver's capabilities.
    #[serde(rename = "Capabilities", default)]
    pub capabilities: VolumeCapabilities,
}
