//! The `bridge` driver: a Linux bridge per network, a veth pair per endpoint with
//! the peer created inside the sandbox.

use crate::announce::{Announcer, Pending};
use crate::driver::{
    Driver, DriverData, DriverError, EndpointSpec, Joined, Mark, NetworkSpec, Repair, SandboxSpec,
    Swept,
};
use crate::netlink::{Batch, Link, Mac, Netlink, NetlinkError, Removal, VethPair, LOOPBACK_INDEX};
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// `-o com.docker.network.bridge.name=NAME`: the bridge's name (default `br-<id12>`).
pub const OPTION_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// `-o com.docker.network.driver.mtu=N`: MTU of the bridge and every veth.
pub const OPTION_MTU: &str = "com.docker.network.driver.mtu";
/// `com.netd.dns`: `false` gives the network no DNS responder (netd's, on the
/// gateway address); read by netd, checked here with the other options.
pub const OPTION_DNS: &str = "com.netd.dns";

/// `-o com.docker.network.bridge.default_bridge`: accepted for compose files; netd
/// has no default bridge.
const OPTION_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";

/// [`DriverData`] key: who made the bridge, [`MADE`] or [`EXISTING`].
const DATA_BRIDGE: &str = "bridge";
/// netd made the bridge (and removes it with the network).
const MADE: &str = "made";
/// The bridge existed (`com.docker.network.bridge.name` named it): used, and left
/// in place at delete.
const EXISTING: &str = "existing";
/// [`DriverData`] key: the gateway addresses netd added to an existing bridge
/// (space-separated CIDRs), taken off again at delete.
const DATA_ADDED: &str = "added_addresses";

/// The bridge driver, acting in the namespace its [`Netlink`] is bound to.
#[derive(Debug, Clone)]
pub struct BridgeDriver {
    nl: Netlink,
    mark: Mark,
    /// Bridge name to index, so a join needs no lookup. An entry goes stale only if
    /// someone else deletes the bridge; a join then finds out (no such device),
    /// looks again and retries once.
    bridges: Arc<Mutex<HashMap<String, u32>>>,
    announcer: Arc<Announcer>,
}

impl BridgeDriver {
    /// A driver making bridges and veths in `nl`'s namespace, each marked `mark`.
    pub fn new(nl: Netlink, mark: Mark) -> Self {
        BridgeDriver {
            nl,
            mark,
            bridges: Arc::default(),
            announcer: Arc::default(),
        }
    }

    fn bridges(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        // Plain inserts and removes: a panic cannot leave the map half-changed.
        self.bridges.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index of `net`'s bridge, and whether it came from the cache. Only a
    /// bridge netd made (its mark) or one the network adopted by name is taken: a
    /// link someone else made in place of netd's gets no ports from netd.
    async fn network_bridge(&self, net: &NetworkSpec) -> Result<(u32, bool), DriverError> {
        let name = bridge_name(net);
        if let Some(index) = self.bridges().get(&name) {
            return Ok((*index, true));
        }
        let doing = format!("network {}: finding bridge {name}", short(&net.id));
        let link = self
            .nl
            .link(&name)
            .await
            .map_err(DriverError::kernel(doing))?;
        let Some(link) = link else {
            return Err(DriverError::invalid(
                format!("bridge {name}"),
                format!(
                    "network {}'s bridge is gone; restart netd to make it again",
                    short(&net.id)
                ),
            ));
        };
        let adopted = net.data.get(DATA_BRIDGE).map(String::as_str) == Some(EXISTING);
        if link.kind.as_deref() != Some("bridge") || (link.group != self.mark.0 && !adopted) {
            return Err(DriverError::invalid(
                format!("bridge {name}"),
                format!(
                    "it is not the one netd made for network {}; remove it and restart netd",
                    short(&net.id)
                ),
            ));
        }
        self.bridges().insert(name, link.index);
        Ok((link.index, false))
    }
}

use firewall::spec::valid_link_name;

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

/// The peer an engine moves into its sandbox: `vp` and 12 hex digits of its id.
fn engine_link_name(ep: &EndpointSpec) -> String {
    format!("vp{}", short(&ep.id))
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn mtu(net: &NetworkSpec) -> Result<Option<u32>, DriverError> {
    let Some(text) = net.options.get(OPTION_MTU) else {
        return Ok(None);
    };
    // Digits only: parse() alone would take "+1500".
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u32>() {
        Ok(m) if digits && (68..=65535).contains(&m) => Ok(Some(m)),
        _ => Err(DriverError::invalid(
            format!("option {OPTION_MTU}"),
            format!("{text:?}: expected a number from 68 to 65535"),
        )),
    }
}

fn firewall_option(e: firewall::FirewallError) -> DriverError {
    match e {
        firewall::FirewallError::Invalid { what, why } => DriverError::invalid(what, why),
        other => DriverError::invalid("option", other.to_string()),
    }
}

/// The gateway addresses of `net`, with their subnets' prefix lengths.
fn gateway_addresses(net: &NetworkSpec) -> Vec<IpNet> {
    net.subnets
        .iter()
        .filter_map(|s| {
            s.gateway
                .and_then(|gw| IpNet::new(gw, s.subnet.prefix_len()).ok())
        })
        .collect()
}

fn added_addresses(data: &DriverData) -> Vec<IpNet> {
    data.get(DATA_ADDED)
        .map(|t| {
            t.split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A fixed, locally administered MAC for the bridge, from the network id: without
/// one the bridge takes its lowest port's MAC, which changes as containers come and
/// go and leaves neighbours with stale ARP entries.
pub fn bridge_mac(id: &str) -> Mac {
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
    mark: Mark,
    name: Option<String>,
}

impl LinkGuard<'_> {
    async fn rollback(mut self) {
        if let Some(name) = self.name.take() {
            // Only with the mark: the name may have been taken by someone since.
            if let Err(e) = self.nl.delete_if_marked(&name, self.mark.0).await {
                tracing::warn!(link = %name, error = %e, "could not remove a half-made link");
            }
        }
    }

    fn commit(mut self) {
        self.name = None;
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
            } else if key.starts_with(crate::overlay::OPTION_OVERLAY) {
                // Checked together below.
            } else if key == OPTION_DEFAULT_BRIDGE || key == OPTION_DNS {
                firewall::spec::parse_bool(key, value).map_err(firewall_option)?;
            } else if key.starts_with("com.docker.network.bridge.")
                && !firewall::spec::OPTIONS.contains(&key.as_str())
            {
                return Err(DriverError::invalid(
                    "option",
                    format!("unknown bridge option {key:?}"),
                ));
            }
        }
        // The firewall's options (masquerade, icc, gateway modes, ...).
        firewall::Policy::from_options(&net.options).map_err(firewall_option)?;
        if crate::overlay::overlay_of(net)?.is_some() {
            if net.options.contains_key(OPTION_BRIDGE_NAME) {
                return Err(DriverError::invalid(
                    format!("option {OPTION_BRIDGE_NAME}"),
                    "an overlay network makes its own bridge",
                ));
            }
            if net.subnets.len() > 1 {
                return Err(DriverError::invalid(
                    "subnets",
                    "an overlay network has exactly one subnet",
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

    fn takes_addresses(&self) -> bool {
        true
    }

    fn network_links(&self, net: &NetworkSpec) -> Vec<String> {
        let mut links = vec![bridge_name(net)];
        if let Ok(Some(_)) = crate::overlay::overlay_of(net) {
            links.push(crate::overlay::vxlan_name(net));
        }
        links
    }

    async fn create_network(&self, net: &NetworkSpec) -> Result<DriverData, DriverError> {
        self.validate(net)?;
        let name = bridge_name(net);
        let doing = |what: &str| format!("network {}: {what} bridge {name}", short(&net.id));
        let existing = self
            .nl
            .link(&name)
            .await
            .map_err(DriverError::kernel(doing("looking up")))?;
        let mut data = net.data.clone();
        let (index, guard) = match existing {
            Some(link) => {
                check_usable_bridge(&name, &link)?;
                if link.group != self.mark.0 {
                    // Someone else's bridge: used only where the user named it, and
                    // never in place of a bridge netd made that is gone.
                    let named = net.options.contains_key(OPTION_BRIDGE_NAME);
                    let made = data.get(DATA_BRIDGE).map(String::as_str) == Some(MADE);
                    if !named || made {
                        return Err(DriverError::invalid(
                            format!("bridge {name}"),
                            "it exists and netd did not make it; remove it or name another bridge",
                        ));
                    }
                    data.insert(DATA_BRIDGE.into(), EXISTING.into());
                }
                (link.index, None)
            }
            None => {
                let index = self
                    .nl
                    .add_bridge(&name, mtu(net)?, Some(bridge_mac(&net.id)), self.mark.0)
                    .await
                    .map_err(DriverError::kernel(doing("creating")))?;
                // A bridge that was there and is gone is made again, by netd now.
                data.insert(DATA_BRIDGE.into(), MADE.into());
                data.remove(DATA_ADDED);
                (
                    index,
                    Some(LinkGuard {
                        nl: &self.nl,
                        mark: self.mark,
                        name: Some(name.clone()),
                    }),
                )
            }
        };
        let adopted = data.get(DATA_BRIDGE).map(String::as_str) == Some(EXISTING);
        let made_now = guard.is_some();
        let result = async {
            if made_now && !net.subnets.iter().any(|s| s.subnet.addr().is_ipv6()) {
                // An IPv4-only network's bridge speaks no IPv6 (its endpoints have
                // none either): no link-local address, no DAD or MLD, and none of
                // the per-device IPv6 routes whose upkeep grows with the number of
                // bridges. Set before the bridge comes up.
                let key = format!("net/ipv6/conf/{name}/disable_ipv6");
                match self.nl.write_sysctl(&key, "1").await {
                    // A kernel without IPv6 has nothing to turn off.
                    Err(NetlinkError::Request { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(DriverError::kernel(doing("turning IPv6 off on"))(e)),
                    Ok(()) => {}
                }
            }
            self.bridges().insert(name.clone(), index);
            let mut added = added_addresses(&data);
            for gw in gateway_addresses(net) {
                match self.nl.add_address(index, gw.addr(), gw.prefix_len()).await {
                    Ok(()) if adopted && !added.contains(&gw) => added.push(gw),
                    Ok(()) => {}
                    Err(e) if e.is_exists() => {}
                    Err(e) => {
                        return Err(DriverError::kernel(doing(&format!(
                            "adding gateway {gw} to"
                        )))(e))
                    }
                }
            }
            if adopted && !added.is_empty() {
                let text: Vec<String> = added.iter().map(ToString::to_string).collect();
                data.insert(DATA_ADDED.into(), text.join(" "));
            }
            self.nl
                .set_up(index)
                .await
                .map_err(DriverError::kernel(doing("bringing up")))?;
            if let Some(overlay) = crate::overlay::overlay_of(net)? {
                crate::overlay::ensure_vxlan(&self.nl, self.mark, net, &overlay, index, mtu(net)?)
                    .await?;
            }
            Ok(())
        }
        .await;
        match (result, guard) {
            (Ok(()), Some(g)) => {
                g.commit();
                Ok(data)
            }
            (Ok(()), None) => Ok(data),
            (Err(e), Some(g)) => {
                g.rollback().await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn delete_network(&self, net: &NetworkSpec) -> Result<(), DriverError> {
        if let Ok(Some(_)) = crate::overlay::overlay_of(net) {
            crate::overlay::delete_vxlan(&self.nl, self.mark, net).await?;
        }
        let name = bridge_name(net);
        self.bridges().remove(&name);
        let doing = |what: &str| format!("network {}: {what} bridge {name}", short(&net.id));
        if net.data.get(DATA_BRIDGE).map(String::as_str) == Some(EXISTING) {
            // Not netd's: it stays, without the addresses netd gave it.
            let Some(link) = self
                .nl
                .link(&name)
                .await
                .map_err(DriverError::kernel(doing("looking up")))?
            else {
                return Ok(());
            };
            for addr in added_addresses(&net.data) {
                match self
                    .nl
                    .delete_address(link.index, addr.addr(), addr.prefix_len())
                    .await
                {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() || e.is_address_gone() => {}
                    Err(e) => {
                        return Err(DriverError::kernel(doing(&format!(
                            "taking gateway {addr} off"
                        )))(e))
                    }
                }
            }
            return Ok(());
        }
        match self
            .nl
            .delete_if_marked(&name, self.mark.0)
            .await
            .map_err(DriverError::kernel(doing("deleting")))?
        {
            Removal::Removed | Removal::Absent => Ok(()),
            Removal::Foreign(_) => {
                // Someone else's link took the name since: not netd's to delete.
                tracing::warn!(bridge = %name, "not deleting a bridge netd did not make");
                Ok(())
            }
        }
    }

    async fn join(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<Joined, DriverError> {
        if sandbox.netns.is_some() && !valid_link_name(ifname) {
            return Err(DriverError::invalid(
                "interface name",
                format!("{ifname:?}"),
            ));
        }
        let host = host_link_name(ep);
        let doing = |what: &str| format!("endpoint {}: {what}", short(&ep.id));
        let netns = sandbox
            .open()
            .map_err(DriverError::kernel(doing("opening the sandbox")))?;
        let mtu = mtu(net)?;
        let (mut bridge, cached) = self.network_bridge(net).await?;
        // An engine-placed sandbox: the peer stays here, named for the engine to
        // find and move.
        let engine_link = engine_link_name(ep);
        let peer = match netns {
            Some(_) => ifname,
            None => engine_link.as_str(),
        };
        let veth = |master| VethPair {
            host: &host,
            master: Some(master),
            peer,
            peer_netns: netns.as_ref(),
            peer_mac: ep.mac,
            mtu,
            group: Some(self.mark.0),
        };
        let mut created = self.nl.add_veth(&veth(bridge)).await;
        if created.is_err() && cached {
            // The bridge may have been replaced (the kernel then refuses the old
            // index as master): look it up again and retry once if it moved.
            self.bridges().remove(&bridge_name(net));
            let (fresh, _) = self.network_bridge(net).await?;
            if fresh != bridge {
                bridge = fresh;
                created = self.nl.add_veth(&veth(bridge)).await;
            }
        }
        let peer_index = created.map_err(DriverError::kernel(doing(&format!(
            "creating veth {host} with peer {peer}"
        ))))?;
        let guard = LinkGuard {
            nl: &self.nl,
            mark: self.mark,
            name: Some(host.clone()),
        };
        if let Err(e) = self.set_port_flags(net, &host).await {
            guard.rollback().await;
            return Err(e);
        }
        let placed = netns.is_some();
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
                    engine_link: (!placed).then_some(engine_link),
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
    ) -> Result<Repair, DriverError> {
        let host = host_link_name(ep);
        let doing = |what: &str| format!("endpoint {}: {what}", short(&ep.id));
        let Some(link) = self
            .nl
            .link(&host)
            .await
            .map_err(DriverError::kernel(doing("looking up the host link")))?
        else {
            if sandbox.netns.is_none() {
                return Ok(Repair::Gone);
            }
            self.join(net, ep, sandbox, ifname).await?;
            return Ok(Repair::Repaired);
        };
        if link.group != self.mark.0 {
            return Err(DriverError::invalid(
                format!("link {host}"),
                "it exists but netd did not make it; it is left alone",
            ));
        }
        if self.configured_inside(sandbox, ifname).await? == Some(false) {
            // netd stopped between making the veth and configuring it (the join's
            // record is stored alongside the kernel work): make the join again.
            self.leave(net, ep, sandbox, ifname).await?;
            self.join(net, ep, sandbox, ifname).await?;
            return Ok(Repair::Repaired);
        }
        self.bridges().remove(&bridge_name(net));
        let (bridge, _) = self.network_bridge(net).await?;
        if link.master == Some(bridge) {
            // Ports made by an older netd get the flags too.
            self.set_port_flags(net, &host).await?;
            return Ok(Repair::Intact);
        }
        self.nl
            .set_master(link.index, bridge)
            .await
            .map_err(DriverError::kernel(doing("attaching to the bridge again")))?;
        self.set_port_flags(net, &host).await?;
        self.nl
            .set_up(link.index)
            .await
            .map_err(DriverError::kernel(doing("bringing the host end up")))?;
        Ok(Repair::Repaired)
    }

    async fn leave(
        &self,
        _net: &NetworkSpec,
        ep: &EndpointSpec,
        _sandbox: &SandboxSpec,
        _ifname: &str,
    ) -> Result<(), DriverError> {
        let host = host_link_name(ep);
        match self
            .nl
            .delete_if_marked(&host, self.mark.0)
            .await
            .map_err(DriverError::kernel(format!(
                "endpoint {}: deleting veth {host}",
                short(&ep.id)
            )))? {
            Removal::Removed | Removal::Absent => Ok(()),
            Removal::Foreign(_) => {
                tracing::warn!(link = %host, "not deleting a link netd did not make");
                Ok(())
            }
        }
    }

    async fn engine_link_untaken(&self, ep: &EndpointSpec, ifname: &str) -> bool {
        // Ours only if its peer is our host end of this endpoint, marked.
        let Ok(Some(host)) = self.nl.link(&host_link_name(ep)).await else {
            return false;
        };
        host.group == self.mark.0
            && self
                .nl
                .link(ifname)
                .await
                .is_ok_and(|l| l.is_some_and(|l| l.kind.as_deref() == Some("veth")))
    }

    async fn sweep(&self, networks: &[NetworkSpec], host_links: &HashSet<String>) -> Swept {
        let mut out = Swept::default();
        let bridges: HashSet<String> = networks
            .iter()
            .flat_map(|n| self.network_links(n))
            .collect();
        let links = match self.nl.links().await {
            Ok(l) => l,
            Err(e) => {
                out.errors.push(format!("listing links: {e}"));
                return out;
            }
        };
        for link in links {
            if link.group != self.mark.0
                || bridges.contains(&link.name)
                || host_links.contains(&link.name)
            {
                continue;
            }
            match self.nl.delete_if_marked(&link.name, self.mark.0).await {
                Ok(Removal::Removed) => out.removed.push(link.name),
                Ok(_) => {}
                Err(e) => out
                    .errors
                    .push(format!("removing orphan link {}: {e}", link.name)),
            }
        }
        out
    }
}

/// An existing link a network is told to use must be a bridge.
fn check_usable_bridge(name: &str, link: &Link) -> Result<(), DriverError> {
    if link.kind.as_deref() == Some("bridge") {
        return Ok(());
    }
    let kind = link.kind.as_deref().unwrap_or("plain device");
    Err(DriverError::invalid(
        format!("option {OPTION_BRIDGE_NAME}"),
        format!(
            "link {name} exists and is a {kind}, not a bridge: name an existing bridge or a free name"
        ),
    ))
}

impl BridgeDriver {
    /// Hairpin on every port (a container reaches its own published port through
    /// the host); isolated ports where `enable_icc` is off, so containers of the
    /// network cannot reach each other even where bridged traffic bypasses the
    /// firewall (no br_netfilter).
    async fn set_port_flags(&self, net: &NetworkSpec, host: &str) -> Result<(), DriverError> {
        let icc = firewall::Policy::from_options(&net.options)
            .map(|p| p.icc)
            .unwrap_or(true);
        // With br_netfilter on, the firewall sees bridged traffic and enforces
        // icc itself; isolated ports would then also drop hairpin traffic that
        // br_netfilter DNATs between two ports of the bridge.
        let bridged_traffic_filtered =
            std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
                .is_ok_and(|v| v.trim() == "1");
        self.nl
            .set_bridge_port(host, true, !icc && !bridged_traffic_filtered)
            .await
            .map_err(DriverError::kernel(format!(
                "endpoint link {host}: setting its bridge-port flags"
            )))
    }

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

/// The gateway of each of the endpoint's address families that routes out:
/// none on an internal network, or in a family whose gateway mode is
/// isolated (as Docker gives such endpoints no default gateway, so another
/// of the container's networks can carry its default route).
pub fn gateways(net: &NetworkSpec, ep: &EndpointSpec) -> Vec<IpAddr> {
    let policy = firewall::Policy::from_options(&net.options).unwrap_or_default();
    let mut out: Vec<IpAddr> = Vec::new();
    for addr in &ep.addresses {
        let gw = net
            .subnets
            .iter()
            .find(|s| s.subnet.contains(&addr.addr()))
            .and_then(|s| s.gateway)
            .filter(|gw| !policy.closed(*gw));
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
