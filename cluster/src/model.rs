//! The records kept in etcd, as JSON.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A member host (`hosts/HOST`, bound to its lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host's id (netd's instance id: stable across restarts).
    pub host: String,
    /// A name for people (the machine's hostname).
    #[serde(default)]
    pub name: String,
    /// Its underlay address: the VTEP other hosts send VXLAN to.
    pub vtep: IpAddr,
    /// The UDP port its VXLAN devices listen on.
    pub vxlan_port: u16,
    /// When it joined (seconds since the epoch).
    pub joined: u64,
}

/// What a host asks for when a network is made (the first host's request makes
/// it; later ones must agree).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OverlayRequest {
    /// The network's name, the same on every host.
    pub name: String,
    /// Its subnet.
    pub subnet: IpNet,
    /// The gateway every host puts on its bridge (the subnet's first address if
    /// absent).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// A VNI (the lowest free one from 4096 if absent).
    #[serde(default)]
    pub vni: Option<u32>,
    /// The options that must agree across hosts (MTU, internal, ...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The MTU the asking host would give the network when its options set
    /// none (its underlay's, less VXLAN's headers). The first host's becomes
    /// the network's; later hosts' are not compared.
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// An overlay network (`networks/NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlaySpec {
    /// Name, the same on every host.
    pub name: String,
    /// Id (64 hex digits), the same on every host.
    pub id: String,
    /// The VXLAN network identifier.
    pub vni: u32,
    /// The subnet.
    pub subnet: IpNet,
    /// The gateway on every host's bridge.
    pub gateway: IpAddr,
    /// The size of the address blocks hosts claim (a prefix length).
    pub block_prefix: u8,
    /// The options every host agreed to.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The MTU every host gives the network when its options set none (the
    /// first host's default); absent in records of netd before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The host that made it.
    pub created_by: String,
}

impl OverlaySpec {
    /// Whether `req` asks for this network as it is (what a later host's
    /// request must match).
    pub fn matches(&self, req: &OverlayRequest) -> Result<(), String> {
        let mut diffs = Vec::new();
        if req.subnet != self.subnet {
            diffs.push(format!("subnet {} (it has {})", req.subnet, self.subnet));
        }
        if let Some(g) = req.gateway.filter(|g| *g != self.gateway) {
            diffs.push(format!("gateway {g} (it has {})", self.gateway));
        }
        if let Some(v) = req.vni.filter(|v| *v != self.vni) {
            diffs.push(format!("vni {v} (it has {})", self.vni));
        }
        if req.options != self.options {
            diffs.push(format!(
                "options {:?} (it has {:?})",
                req.options, self.options
            ));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join(", "))
        }
    }
}

/// A block of a network's subnet claimed by a host (`blocks/ID/BLOCK`, bound to
/// the host's lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockClaim {
    /// The block.
    pub block: IpNet,
    /// The host that holds it.
    pub host: String,
}

/// An endpoint as every host sees it (`peers/ID/IP`, bound to its host's lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Its address on the overlay.
    pub ip: IpAddr,
    /// Its MAC (`02:42:0a:00:00:02`).
    pub mac: String,
    /// The host it is on.
    pub host: String,
    /// That host's VTEP.
    pub vtep: IpAddr,
}

impl PeerRecord {
    /// The MAC as bytes, or why not.
    pub fn mac_bytes(&self) -> Result<[u8; 6], String> {
        let parts: Vec<&str> = self.mac.split(':').collect();
        if parts.len() != 6 {
            return Err(format!("{:?} is not a MAC", self.mac));
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(parts) {
            *byte =
                u8::from_str_radix(part, 16).map_err(|_| format!("{:?} is not a MAC", self.mac))?;
        }
        Ok(mac)
    }
}
