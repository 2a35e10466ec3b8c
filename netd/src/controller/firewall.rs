//! The controller's side of the firewall: which networks have rules (the bridge
//! driver's), publishing ports as endpoint records, and keeping the firewall in
//! step with every commit.
//!
//! Order: a network's chains are added before its record is committed (a failure
//! leaves nothing); ports are bound and programmed before the endpoint record that
//! lists them is committed, and taken away again if that commit fails. What a
//! commit removes (an endpoint, a join, a network) leaves the firewall after the
//! commit is durable. A crash in between leaves rules the records do not have: the
//! table is programmed whole from the records at every start.

use super::persist::Op;
use super::{lock, network_spec, Controller, ControllerError};
use crate::model::{EndpointRecord, NetworkRecord, Origin};
use crate::store::Kind;
use firewall::{EndpointPorts, Firewall, FirewallError, NetworkRules, Policy, PortRequest};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

impl From<FirewallError> for ControllerError {
    fn from(e: FirewallError) -> Self {
        match e {
            FirewallError::Invalid { what, why } => {
                ControllerError::Invalid(format!("{what}: {why}"))
            }
            FirewallError::PortTaken(m) => ControllerError::Conflict(m),
            other => ControllerError::Firewall(other.to_string()),
        }
    }
}

/// The firewall's view of `net`, if its driver has one (bridge).
pub(crate) fn network_rules(net: &NetworkRecord) -> Option<NetworkRules> {
    if net.driver != "bridge" {
        return None;
    }
    let policy = match Policy::from_options(&net.options) {
        Ok(p) => p,
        Err(e) => {
            // Checked at create; a record from an older netd may not be.
            tracing::warn!(network = %net.name, error = %e, "network options ignored by the firewall");
            Policy::default()
        }
    };
    Some(NetworkRules {
        id: net.id.clone(),
        name: net.name.clone(),
        bridge: drivers::bridge::bridge_name(&network_spec(net)),
        subnets: net.subnets.iter().map(|s| s.subnet).collect(),
        gateways: net.subnets.iter().filter_map(|s| s.gateway).collect(),
        policy,
    })
}

/// Whether `name` is the name another container engine gives its bridges.
fn engine_bridge(name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let docker_net = name
        .strip_prefix("br-")
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    name == "docker0"
        || docker_net
        || numbered("podman")
        || numbered("cni-podman")
        || numbered("cni")
}

impl Controller {
    /// The firewall, once started.
    /// The VXLAN filter for `peers`: every overlay network's port and VTEP as
    /// stored, and the cluster's as configured.
    pub(crate) fn vxlan_filter(&self, peers: Vec<std::net::IpAddr>) -> ::firewall::VxlanFilter {
        use drivers::overlay::{OPTION_PORT, OPTION_VTEP};
        let mut filter = ::firewall::VxlanFilter {
            peers,
            ..Default::default()
        };
        for net in self
            .networks()
            .iter()
            .filter(|n| crate::overlay::is_overlay(n))
        {
            if let Some(p) = net.options.get(OPTION_PORT).and_then(|p| p.parse().ok()) {
                filter.ports.push(p);
            }
            if let Some(v) = net.options.get(OPTION_VTEP).and_then(|v| v.parse().ok()) {
                filter.locals.push(v);
            }
        }
        if let Some(agent) = self.overlay() {
            filter.ports.push(agent.settings().vxlan_port);
            filter.locals.push(agent.settings().advertise);
        }
        filter.ports.sort();
        filter.ports.dedup();
        filter.locals.sort();
        filter.locals.dedup();
        filter
    }

    pub fn firewall(&self) -> Option<&Arc<Firewall>> {
        self.firewall.get()
    }

    fn firewall_or_error(&self) -> Result<&Arc<Firewall>, ControllerError> {
        self.firewall().ok_or_else(|| {
            ControllerError::Invalid(
                "ports: netd runs with --firewall off, so it publishes no ports".into(),
            )
        })
    }

    /// Program the firewall from the records (after reconcile, before serving).
    /// Problems that do not stop it (a port another program took while netd was
    /// down) are returned.
    pub async fn start_firewall(&self) -> Result<Vec<String>, ControllerError> {
        let networks: Vec<NetworkRules> =
            self.networks().iter().filter_map(network_rules).collect();
        let mut ports = BTreeMap::new();
        for ep in self.endpoints() {
            if !ep.ports.is_empty() && ep.join.is_some() {
                ports.insert(
                    ep.id.clone(),
                    EndpointPorts {
                        network: ep.network.clone(),
                        ports: ep.ports.clone(),
                    },
                );
            }
        }
        let foreign = self.foreign_bridges().await;
        // VXLAN is heard only from the hosts known when netd last ran until
        // the cluster says more; with no cluster (netd started without it while
        // overlay networks are stored), from no one.
        let vxlan = self.vxlan_filter(
            self.overlay()
                .map(|agent| agent.saved_peers())
                .unwrap_or_default(),
        );
        let started = Firewall::start(networks, ports, foreign, vxlan).await?;
        // Ports another program took while netd was down are published no more:
        // the records say so too.
        let mut ops = Vec::new();
        for (id, dropped) in &started.dropped {
            if let Ok(mut ep) = self.endpoint_by_id(id) {
                ep.ports.retain(|p| !dropped.contains(p));
                ops.push(Op::Endpoint(ep));
            }
        }
        if let Some(fw) = started.firewall {
            // Set once, at start.
            let _ = self.firewall.set(Arc::new(fw));
        }
        self.commit(ops).await?;
        Ok(started.problems)
    }

    /// Bridges of other container engines on this host (dockerd's `docker0` and
    /// `br-<12 hex>`, podman's and CNI's), which netd's networks are isolated
    /// from. A bridge that is the host's own uplink is not one of them.
    async fn foreign_bridges(&self) -> Vec<String> {
        let ours = lock(&self.network_links).clone();
        match self.nl.links().await {
            Ok(links) => links
                .into_iter()
                .filter(|l| {
                    l.kind.as_deref() == Some("bridge")
                        && !ours.contains(&l.name)
                        && engine_bridge(&l.name)
                })
                .map(|l| l.name)
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "listing links for the firewall");
                Vec::new()
            }
        }
    }

    /// With the firewall off: no bridge of netd's keeps `route_localnet` from an
    /// earlier run (without the firewall's drop it would open the host's loopback
    /// to containers).
    pub fn close_localnet(&self) {
        for rules in self.networks().iter().filter_map(network_rules) {
            let key = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", rules.bridge);
            if let Err(e) = std::fs::write(&key, "0") {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, bridge = %rules.bridge, "could not turn route_localnet off");
                }
            }
        }
    }

    /// Add `net`'s chains before its record is committed.
    pub(crate) async fn firewall_add_network(
        &self,
        net: &NetworkRecord,
    ) -> Result<(), ControllerError> {
        match (self.firewall(), network_rules(net)) {
            (Some(fw), Some(rules)) => Ok(fw.add_network(rules).await?),
            _ => Ok(()),
        }
    }

    /// Bring the firewall in step with a durable commit of `ops`: ports of
    /// endpoints deleted or no longer joined, and networks deleted, go.
    pub(crate) async fn firewall_after_commit(&self, ops: &[Op]) {
        let Some(fw) = self.firewall() else { return };
        for op in ops {
            let result = match op {
                Op::Delete(Kind::Endpoint, id) if fw.publishes(id) => fw.unpublish(id).await,
                Op::Endpoint(ep) if ep.ports.is_empty() && fw.publishes(&ep.id) => {
                    fw.unpublish(&ep.id).await
                }
                Op::Delete(Kind::Network, id) => fw.remove_network(id).await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "the firewall could not follow a change; the next check programs it whole");
            }
        }
    }

    /// Publish `requests` for endpoint `key` (joined), replacing what it published;
    /// an empty list unpublishes. Stored before it is answered.
    pub async fn set_ports(
        &self,
        key: &str,
        requests: &[PortRequest],
    ) -> Result<EndpointRecord, ControllerError> {
        let ep = self.endpoint(key)?;
        if ep.origin == Origin::Docker {
            return Err(ControllerError::Conflict(format!(
                "endpoint {} belongs to dockerd; publish with `docker run -p`",
                ep.name
            )));
        }
        let _claim = self.claim_endpoint(&ep)?;
        let slot = self.slot(&ep.network);
        let _gate = slot.gate.read().await;
        let ep = self.endpoint_by_id(&ep.id)?;
        self.publish_locked(ep, requests).await
    }

    /// Publish for `ep` (claimed, its network gate held).
    pub(crate) async fn publish_locked(
        &self,
        ep: EndpointRecord,
        requests: &[PortRequest],
    ) -> Result<EndpointRecord, ControllerError> {
        if ep.join.is_none() && !requests.is_empty() {
            return Err(ControllerError::Conflict(format!(
                "endpoint {} is not joined to a sandbox: ports are published for a joined endpoint",
                ep.name
            )));
        }
        let fw = self.firewall_or_error()?;
        let net = self.network_by_id(&ep.network)?;
        if network_rules(&net).is_none() {
            return Err(ControllerError::Invalid(format!(
                "ports: network {} uses the {} driver, which publishes no ports",
                net.name, net.driver
            )));
        }
        let addresses: Vec<IpAddr> = ep.addresses.iter().map(|a| a.addr()).collect();
        let before = ep.ports.clone();
        let published = fw.publish(&ep.id, &net.id, requests, &addresses).await?;
        let mut record = ep;
        record.ports = published;
        if let Err(e) = self.commit(vec![Op::Endpoint(record.clone())]).await {
            // Back to what is stored.
            let _ = fw.unpublish(&record.id).await;
            if !before.is_empty() {
                if let Err(undo) = fw.restore(&record.id, &net.id, before).await {
                    tracing::warn!(endpoint = %record.name, error = %undo, "could not restore the ports it had");
                }
            }
            return Err(e);
        }
        tracing::info!(endpoint = %record.name, ports = record.ports.len(), "ports published");
        Ok(record)
    }

    /// Compare the kernel's table with what netd programmed and put it back if it
    /// differs; keep the set of bridges netd did not make current.
    pub async fn check_firewall(&self) -> Result<firewall::Checked, ControllerError> {
        let fw = self.firewall_or_error()?;
        let foreign = self.foreign_bridges().await;
        if let Err(e) = fw.set_foreign_bridges(foreign).await {
            // The check below still runs: it restores the table.
            tracing::warn!(error = %e, "updating the bridges netd's networks are isolated from");
        }
        Ok(fw.check().await?)
    }

    /// The endpoints that publish ports, with them.
    pub fn published(&self) -> Vec<EndpointRecord> {
        lock(&self.records)
            .endpoints
            .values()
            .filter(|e| !e.ports.is_empty())
            .cloned()
            .collect()
    }
}
