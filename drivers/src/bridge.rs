//! The `bridge` driver: a Linux bridge per network, a veth pair per endpoint with
//! the peer created inside the sandbox.

use crate::announce::{Announcer, Pending};
use crate::driver::{Driver, DriverError, EndpointSpec, Joined, NetworkSpec, SandboxSpec};
use crate::netlink::{open_netns, Batch, Mac, Netlink, NetlinkError, VethPair, LOOPBACK_INDEX};
use async_trait::async_trait;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// `-o com.docker.network.bridge.name=NAME`: the bridge's name (default `br-<id12>`).
pub const OPTION_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// `-o com.docker.network.driver.mtu=N`: MTU of the bridge and every veth.
pub const OPTION_MTU: &str = "com.docker.network.driver.mtu";

/// Docker bridge options that are accepted now and acted on by the firewall later.
const LATER: &[&str] = &[
    "com.docker.network.bridge.enable_icc",
    "com.docker.network.bridge.enable_ip_masquerade",
    "com.docker.network.bridge.host_binding_ipv4",
    "com.docker.network.bridge.default_bridge",
];

/// The bridge driver, acting in the namespace its [`Netlink`] is bound to.
#[derive(Debug, Clone)]
pub struct BridgeDriver {
    nl: Netlink,
    /// Bridge name to index, so a join needs no lookup. An entry goes stale only if
    /// someone else deletes the bridge; a join then finds out (no such device),
    /// looks again and retries once.
    bridges: Arc<Mutex<HashMap<String, u32>>>,
    announcer: Arc<Announcer>,
}

impl BridgeDriver {
    /// A driver making bridges and veths in `nl`'s namespace.
    pub fn new(nl: Netlink) -> Self {
        BridgeDriver {
            nl,
            bridges: Arc::default(),
            announcer: Arc::default(),
        }
    }

    fn bridges(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        // Plain inserts and removes: a panic cannot leave the map half-changed.
        self.bridges.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index of bridge `name`, and whether it came from the cache.
    async fn bridge_index(&self, name: &str) -> Result<(u32, bool), NetlinkError> {
        if let Some(index) = self.bridges().get(name) {
            return Ok((*index, true));
        }
        let index = self.nl.index(name).await?;
        self.bridges().insert(name.to_string(), index);
        Ok((index, false))
    }
}

fn valid_link_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The bridge's name.
pub fn bridge_name(net: &NetworkSpec) -> String {
    match net.options.get(OPTION_BRIDGE_NAME) {
        Some(name) => name.clone(),
        None => format!("br-{}", short(&net.id)),
    }
}

/// The host end of an endpoint's veth pair: `vn` and 12 hex digits of its id.
pub fn host_link_name(ep: &EndpointSpec) -> String {
    format!("vn{}", short(&ep.id))
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn mtu(net: &NetworkSpec) -> Result<Option<u32>, DriverError> {
    let Some(text) = net.options.get(OPTION_MTU) else {
        return Ok(None);
    };
    match text.parse::<u32>() {
        Ok(m) if (68..=65535).contains(&m) => Ok(Some(m)),
        _ => Err(DriverError::invalid(
            format!("option {OPTION_MTU}"),
            format!("{text:?}: expected a number from 68 to 65535"),
        )),
    }
}

/// A fixed, locally administered MAC for the bridge, from the network id: without
/// one the bridge takes its lowest port's MAC, which changes as containers come and
/// go and leaves neighbours with stale ARP entries.
fn bridge_mac(id: &str) -> Mac {
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    for (i, byte) in mac.iter_mut().enumerate().skip(1) {
        *byte = id
            .get(i * 2..i * 2 + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    mac
}

/// Undoes a link's creation unless committed: nothing half-made survives a failure.
struct LinkGuard<'a> {
    nl: &'a Netlink,
    name: Option<String>,
}

impl LinkGuard<'_> {
    async fn rollback(mut self) {
        if let Some(name) = self.name.take() {
            if let Err(e) = self.nl.delete_by_name(&name).await {
                tracing::warn!(link = %name, error = %e, "could not remove a half-made link");
            }
        }
    }

    fn commit(mut self) {
        self.name = None;
    }
}

async fn ignore_exists(result: Result<(), NetlinkError>) -> Result<(), NetlinkError> {
    match result {
        Err(e) if e.is_exists() => Ok(()),
        other => other,
    }
}

#[async_trait]
impl Driver for BridgeDriver {
    fn kind(&self) -> &'static str {
        "bridge"
    }

    fn validate(&self, net: &NetworkSpec) -> Result<(), DriverError> {
        if net.id.len() < 12 || !net.id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(DriverError::invalid(
                "network id",
                format!("{:?}: expected at least 12 hex digits", net.id),
            ));
        }
        for (key, value) in &net.options {
            if key == OPTION_BRIDGE_NAME {
                if !valid_link_name(value) {
                    return Err(DriverError::invalid(
                        format!("option {key}"),
                        format!(
                            "{value:?}: a link name has 1 to 15 letters, digits, '_', '.' or '-'"
                        ),
                    ));
                }
            } else if key.starts_with("com.docker.network.bridge.")
                && !LATER.contains(&key.as_str())
            {
                return Err(DriverError::invalid(
                    "option",
                    format!("unknown bridge option {key:?}"),
                ));
            }
        }
        mtu(net)?;
        for s in &net.subnets {
            if let Some(gw) = s.gateway {
                if !s.subnet.contains(&gw) {
                    return Err(DriverError::invalid(
                        "gateway",
                        format!("{gw} is outside subnet {}", s.subnet),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn create_network(&self, net: &NetworkSpec) -> Result<(), DriverError> {
        self.validate(net)?;
        let name = bridge_name(net);
        let doing = |what: &str| format!("network {}: {what} bridge {name}", short(&net.id));
        let (index, guard) = match self
            .nl
            .link(&name)
            .await
            .map_err(DriverError::kernel(doing("looking up")))?
        {
            Some(existing) => (existing.index, None),
            None => {
                let index = self
                    .nl
                    .add_bridge(&name, mtu(net)?, Some(bridge_mac(&net.id)))
                    .await
                    .map_err(DriverError::kernel(doing("creating")))?;
                (
                    index,
                    Some(LinkGuard {
                        nl: &self.nl,
                        name: Some(name.clone()),
                    }),
                )
            }
        };
        let result = async {
            self.bridges().insert(name.clone(), index);
            for s in &net.subnets {
                if let Some(gw) = s.gateway {
                    ignore_exists(self.nl.add_address(index, gw, s.subnet.prefix_len()).await)
                        .await
                        .map_err(DriverError::kernel(doing(&format!(
                            "adding gateway {gw} to"
                        ))))?;
                }
            }
            self.nl
                .set_up(index)
                .await
                .map_err(DriverError::kernel(doing("bringing up")))
        }
        .await;
        match (result, guard) {
            (Ok(()), Some(g)) => {
                g.commit();
                Ok(())
            }
            (Ok(()), None) => Ok(()),
            (Err(e), Some(g)) => {
                g.rollback().await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn delete_network(&self, net: &NetworkSpec) -> Result<(), DriverError> {
        let name = bridge_name(net);
        self.bridges().remove(&name);
        self.nl
            .delete_by_name(&name)
            .await
            .map(|_| ())
            .map_err(DriverError::kernel(format!(
                "network {}: deleting bridge {name}",
                short(&net.id)
            )))
    }

    async fn join(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<Joined, DriverError> {
        if !valid_link_name(ifname) {
            return Err(DriverError::invalid(
                "interface name",
                format!("{ifname:?}"),
            ));
        }
        let host = host_link_name(ep);
        let doing = |what: &str| format!("endpoint {}: {what}", short(&ep.id));
        let netns = match &sandbox.netns {
            Some(path) => {
                Some(open_netns(path).map_err(DriverError::kernel(doing("opening the sandbox")))?)
            }
            None => None,
        };
        let bridge_name = bridge_name(net);
        let mtu = mtu(net)?;
        let find = |what| DriverError::kernel(doing(what));
        let (mut bridge, cached) = self
            .bridge_index(&bridge_name)
            .await
            .map_err(find("finding the network's bridge"))?;
        let veth = |master| VethPair {
            host: &host,
            master: Some(master),
            peer: ifname,
            peer_netns: netns.as_ref(),
            peer_mac: ep.mac,
            mtu,
        };
        let mut created = self.nl.add_veth(&veth(bridge)).await;
        if created.is_err() && cached {
            // The bridge may have been replaced (the kernel then refuses the old
            // index as master): look it up again and retry once if it moved.
            self.bridges().remove(&bridge_name);
            let (fresh, _) = self
                .bridge_index(&bridge_name)
                .await
                .map_err(find("finding the network's bridge"))?;
            if fresh != bridge {
                bridge = fresh;
                created = self.nl.add_veth(&veth(bridge)).await;
            }
        }
        let peer_index = created.map_err(DriverError::kernel(doing(&format!(
            "creating veth {host} with peer {ifname}"
        ))))?;
        let guard = LinkGuard {
            nl: &self.nl,
            name: Some(host.clone()),
        };
        let result = match netns {
            Some(_) => configure_inside(net, ep, sandbox, ifname, peer_index)
                .await
                .map(|inside| self.announce(host.clone(), inside, ep)),
            None => Ok(()),
        };
        match result {
            Ok(()) => {
                guard.commit();
                Ok(Joined {
                    host_link: Some(host),
                })
            }
            Err(e) => {
                guard.rollback().await;
                Err(e)
            }
        }
    }

    fn host_link(&self, ep: &EndpointSpec) -> Option<String> {
        Some(host_link_name(ep))
    }

    async fn repair_join(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<bool, DriverError> {
        let host = host_link_name(ep);
        let doing = |what: &str| format!("endpoint {}: {what}", short(&ep.id));
        let Some(link) = self
            .nl
            .link(&host)
            .await
            .map_err(DriverError::kernel(doing("looking up the host link")))?
        else {
            return Ok(false);
        };
        if self.configured_inside(sandbox, ifname).await? == Some(false) {
            // netd stopped between making the veth and configuring it (the join's
            // record is stored alongside the kernel work): make the join again.
            self.leave(net, ep, sandbox, ifname).await?;
            self.join(net, ep, sandbox, ifname).await?;
            return Ok(true);
        }
        let bridge = self
            .nl
            .index(&bridge_name(net))
            .await
            .map_err(DriverError::kernel(doing("finding the network's bridge")))?;
        if link.master == Some(bridge) {
            return Ok(false);
        }
        self.nl
            .set_master(link.index, bridge)
            .await
            .map_err(DriverError::kernel(doing("attaching to the bridge again")))?;
        self.nl
            .set_up(link.index)
            .await
            .map_err(DriverError::kernel(doing("bringing the host end up")))?;
        Ok(true)
    }

    async fn leave(
        &self,
        _net: &NetworkSpec,
        ep: &EndpointSpec,
        _sandbox: &SandboxSpec,
        _ifname: &str,
    ) -> Result<(), DriverError> {
        let host = host_link_name(ep);
        self.nl
            .delete_by_name(&host)
            .await
            .map(|_| ())
            .map_err(DriverError::kernel(format!(
                "endpoint {}: deleting veth {host}",
                short(&ep.id)
            )))
    }
}

impl BridgeDriver {
    /// Queue the interface's gratuitous ARP for when its port forwards (see
    /// [`crate::announce`]); IPv4 addresses only (IPv6 neighbours learn otherwise).
    fn announce(&self, host: String, inside: (Netlink, u32), ep: &EndpointSpec) {
        let Some(mac) = ep.mac else { return };
        if !ep.addresses.iter().any(|a| a.addr().is_ipv4()) {
            return;
        }
        let (inside, index) = inside;
        self.announcer.announce(Pending {
            host_nl: self.nl.clone(),
            host,
            inside,
            index,
            mac,
        });
    }

    /// Whether the sandbox's interface `ifname` went through a join's configuration
    /// (its `arp_notify`, set in the same request that brought it up, is on); `None`
    /// when there is no sandbox to look into.
    async fn configured_inside(
        &self,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<Option<bool>, DriverError> {
        let doing = format!("looking at {ifname} inside the sandbox");
        let Some(inside) = sandbox
            .connect()
            .await
            .map_err(DriverError::kernel(doing.clone()))?
        else {
            return Ok(None);
        };
        let link = inside
            .link(ifname)
            .await
            .map_err(DriverError::kernel(doing))?;
        Ok(Some(link.is_some_and(|l| l.arp_notify)))
    }
}

/// Addresses, link up with `arp_notify`, loopback up and default routes, inside the
/// sandbox. Returns the sandbox's netlink connection and the
/// interface's index.
async fn configure_inside(
    net: &NetworkSpec,
    ep: &EndpointSpec,
    sandbox: &SandboxSpec,
    ifname: &str,
    index: Option<u32>,
) -> Result<(Netlink, u32), DriverError> {
    let doing = |what: &str| format!("endpoint {}: {what}", short(&ep.id));
    let inside = sandbox
        .connect()
        .await
        .map_err(DriverError::kernel(doing("entering the sandbox")))?
        .ok_or_else(|| DriverError::invalid("sandbox", "no namespace to configure"))?;
    let index = match index {
        Some(i) => i,
        None => inside
            .index(ifname)
            .await
            .map_err(DriverError::kernel(doing("finding the interface")))?,
    };
    // One batch: the kernel carries out each in order, and a failure is undone with
    // the veth (which takes its addresses and routes along).
    let mut batch = Batch::new();
    for addr in &ep.addresses {
        batch = batch.add_address(index, addr.addr(), addr.prefix_len());
    }
    if !ep.addresses.iter().any(|a| a.addr().is_ipv6()) {
        batch = batch.no_ipv6_link_local(index);
    }
    // With arp_notify the kernel announces the address (gratuitous ARP) when the
    // MAC is set, so neighbours drop a stale MAC for a reused address at once.
    batch = batch.set_up_announcing(index).set_up(LOOPBACK_INDEX);
    for gw in gateways(net, ep) {
        batch = batch.default_route(index, gw);
    }
    inside
        .run(batch)
        .await
        .map_err(DriverError::kernel(doing("configuring the interface")))?;
    Ok((inside, index))
}

/// The gateway of each of the endpoint's address families.
pub fn gateways(net: &NetworkSpec, ep: &EndpointSpec) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for addr in &ep.addresses {
        let gw = net
            .subnets
            .iter()
            .find(|s| s.subnet.contains(&addr.addr()))
            .and_then(|s| s.gateway);
        if let Some(gw) = gw {
            if !out.iter().any(|g| g.is_ipv4() == gw.is_ipv4()) {
                out.push(gw);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs() {
        let net = NetworkSpec {
            id: "0123456789abcdef".into(),
            ..NetworkSpec::default()
        };
        assert_eq!(bridge_name(&net), "br-0123456789ab");
        assert_eq!(bridge_mac(&net.id), [0x02, 0x23, 0x45, 0x67, 0x89, 0xab]);
        assert!(valid_link_name("eth0"));
        assert!(!valid_link_name("a-name-that-is-too-long"));
        assert!(!valid_link_name("a/b"));
    }
}
