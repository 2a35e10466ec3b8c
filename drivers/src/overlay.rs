//! Overlay networks are bridge networks with one more port: a VXLAN device
//! (`vx-<id12>`) carrying the network's VNI to the other hosts. The options
//! below mark a network as one; netd sets the last three from the cluster (the
//! user asks only `com.netd.overlay=true`). The entries the device needs for
//! each remote endpoint are programmed by netd's overlay agent, not here.

use crate::driver::{DriverError, Mark, NetworkSpec};
use crate::netlink::{Netlink, NetlinkError, Removal, VxlanSpec};
use std::net::IpAddr;

/// `-o com.netd.overlay=true` (or `=NAME`, the network's name in the cluster):
/// the network spans the cluster's hosts.
pub const OPTION_OVERLAY: &str = "com.netd.overlay";
/// The VNI (set by netd from the cluster).
pub const OPTION_VNI: &str = "com.netd.overlay.vni";
/// This host's VTEP address (set by netd: `--advertise-addr`).
pub const OPTION_VTEP: &str = "com.netd.overlay.vtep";
/// The VXLAN UDP port (set by netd: `--vxlan-port`).
pub const OPTION_PORT: &str = "com.netd.overlay.port";

/// The VXLAN side of an overlay network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlay {
    /// The VNI.
    pub vni: u32,
    /// This host's VTEP.
    pub vtep: IpAddr,
    /// The UDP port.
    pub port: u16,
}

fn invalid(key: &str, why: String) -> DriverError {
    DriverError::invalid(format!("option {key}"), why)
}

/// The overlay `net` is, if it is one; an error for options that do not add up.
pub fn overlay_of(net: &NetworkSpec) -> Result<Option<Overlay>, DriverError> {
    let on = !matches!(
        net.options.get(OPTION_OVERLAY).map(String::as_str),
        None | Some("false" | "0")
    );
    let get = |key: &str| net.options.get(key);
    if !on {
        if let Some(key) = [OPTION_VNI, OPTION_VTEP, OPTION_PORT]
            .into_iter()
            .find(|k| get(k).is_some())
        {
            return Err(invalid(key, "set by netd for overlay networks only".into()));
        }
        return Ok(None);
    }
    let (Some(vni), Some(vtep)) = (get(OPTION_VNI), get(OPTION_VTEP)) else {
        return Err(invalid(
            OPTION_OVERLAY,
            "an overlay network needs netd in a cluster: start it with --cluster-store and --advertise-addr".into(),
        ));
    };
    let vni = vni
        .parse::<u32>()
        .ok()
        .filter(|v| (1..1 << 24).contains(v))
        .ok_or_else(|| invalid(OPTION_VNI, format!("{vni:?}: expected 1 to 16777215")))?;
    let vtep = vtep
        .parse::<IpAddr>()
        .map_err(|_| invalid(OPTION_VTEP, format!("{vtep:?}: expected an address")))?;
    let port = match get(OPTION_PORT) {
        None => 4789,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid(OPTION_PORT, format!("{p:?}: expected a UDP port")))?,
    };
    Ok(Some(Overlay { vni, vtep, port }))
}

/// The VXLAN device's name.
pub fn vxlan_name(net: &NetworkSpec) -> String {
    format!("vx-{}", net.id.get(..12).unwrap_or(&net.id))
}

/// Make (or find) `net`'s VXLAN device, a port of bridge `bridge`, up.
pub(crate) async fn ensure_vxlan(
    nl: &Netlink,
    mark: Mark,
    net: &NetworkSpec,
    overlay: &Overlay,
    bridge: u32,
    mtu: Option<u32>,
) -> Result<(), DriverError> {
    let name = vxlan_name(net);
    let doing = |what: &str| format!("network {}: {what} VXLAN device {name}", &name[3..]);
    let index = match nl
        .link(&name)
        .await
        .map_err(DriverError::kernel(doing("looking up")))?
    {
        Some(link) if link.group == mark.0 && link.kind.as_deref() == Some("vxlan") => link.index,
        Some(_) => {
            return Err(DriverError::invalid(
                format!("link {name}"),
                "it exists and netd did not make it; remove it".to_string(),
            ))
        }
        None => nl
            .add_vxlan(&VxlanSpec {
                name: &name,
                vni: overlay.vni,
                local: overlay.vtep,
                port: overlay.port,
                mtu,
                mac: None,
                group: mark.0,
            })
            .await
            .map_err(|e| overlay_error(e, overlay, doing("creating")))?,
    };
    let undo = |e: DriverError| async {
        let _ = nl.delete_if_marked(&name, mark.0).await;
        e
    };
    if let Err(e) = nl.set_master(index, bridge).await {
        return Err(undo(DriverError::kernel(doing("attaching"))(e)).await);
    }
    if let Err(e) = nl.set_up(index).await {
        return Err(undo(DriverError::kernel(doing("bringing up"))(e)).await);
    }
    Ok(())
}

fn overlay_error(e: NetlinkError, overlay: &Overlay, doing: String) -> DriverError {
    if e.is_exists() {
        // The kernel allows one VXLAN device per VNI, address and port.
        return DriverError::invalid(
            "VNI",
            format!(
                "{}: another VXLAN device on this host uses VNI {} on port {}",
                doing, overlay.vni, overlay.port
            ),
        );
    }
    DriverError::kernel(doing)(e)
}

/// Remove `net`'s VXLAN device if netd made it.
pub(crate) async fn delete_vxlan(
    nl: &Netlink,
    mark: Mark,
    net: &NetworkSpec,
) -> Result<(), DriverError> {
    let name = vxlan_name(net);
    match nl
        .delete_if_marked(&name, mark.0)
        .await
        .map_err(DriverError::kernel(format!("deleting VXLAN device {name}")))?
    {
        Removal::Removed | Removal::Absent => Ok(()),
        Removal::Foreign(_) => {
            tracing::warn!(link = %name, "not deleting a VXLAN device netd did not make");
            Ok(())
        }
    }
}
