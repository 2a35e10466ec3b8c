//! Reconciling dockerd's objects with dockerd's own view: what dockerd could not
//! tell netd (a call it gave up on while netd was away, a container that ended
//! with its daemon) must not stay behind. The view is read from dockerd's API by
//! `netd docker-sync`, never from inside a plugin call (dockerd waits for those).

use crate::controller::{Controller, ControllerError};
use crate::model::{EndpointRecord, Origin};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use time::OffsetDateTime;

/// What dockerd knows, as `netd docker-sync` reads it from dockerd's API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineView {
    /// dockerd's networks on netd's network driver, by id, with the endpoint ids on
    /// each.
    #[serde(default)]
    pub networks: BTreeMap<String, Vec<String>>,
    /// Subnets of dockerd's networks whose IPAM driver is netd, each with the
    /// addresses dockerd uses in it (gateway, endpoints' addresses).
    #[serde(default)]
    pub ipam: BTreeMap<IpNet, Vec<IpAddr>>,
    /// Leave alone what was made less than this many seconds ago (dockerd may be
    /// making it now); 60 by default.
    #[serde(default)]
    pub grace_seconds: Option<u64>,
    /// Say what would go, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Go on when the view has none of netd's Docker networks (dockerd lost them
    /// all); without it that is refused, as a sign of a wrong plugin name.
    #[serde(default)]
    pub allow_empty: bool,
}

/// What a sync removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Networks dockerd no longer has.
    pub networks: Vec<String>,
    /// Endpoints dockerd no longer has.
    pub endpoints: Vec<String>,
    /// Pools dockerd no longer uses.
    pub pools: Vec<String>,
    /// Addresses dockerd no longer uses, as `POOL ADDRESS`.
    pub addresses: Vec<String>,
    /// Pools and addresses dockerd had released while in use whose user was gone:
    /// freed at last.
    #[serde(default)]
    pub released: Vec<String>,
    /// What could not be removed.
    pub errors: Vec<String>,
}

const DEFAULT_GRACE_SECONDS: u64 = 60;

/// Whether a record made at `created` (RFC 3339) is older than `grace` seconds;
/// an unreadable time counts as old.
fn older_than(created: &str, grace: u64) -> bool {
    let Ok(at) = OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
    else {
        return true;
    };
    (OffsetDateTime::now_utc() - at).whole_seconds() >= i64::try_from(grace).unwrap_or(i64::MAX)
}

impl Controller {
    /// Remove dockerd's networks, endpoints, pools and addresses that dockerd's
    /// own view no longer has.
    pub async fn engine_sync(&self, view: EngineView) -> Result<SyncReport, ControllerError> {
        let grace = view.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
        let mut report = SyncReport::default();
        if !view.allow_empty {
            self.check_view_knows_something(&view)?;
        }
        let (networks, endpoints) = {
            let r = self.records();
            let networks: Vec<_> = r
                .networks
                .values()
                .filter(|n| n.origin == Origin::Docker && older_than(&n.created, grace))
                .filter(|n| !view.networks.contains_key(&n.id))
                .cloned()
                .collect();
            let known: BTreeSet<&String> = view.networks.values().flatten().collect();
            let endpoints: Vec<EndpointRecord> = r
                .endpoints
                .values()
                .filter(|e| e.origin == Origin::Docker && older_than(&e.created, grace))
                .filter(|e| view.networks.contains_key(&e.network) && !known.contains(&e.id))
                .cloned()
                .collect();
            (networks, endpoints)
        };
        // One still joined to a sandbox that exists and holds its interface is
        // live, whatever the view.
        let mut live = Vec::new();
        for net_id in endpoints
            .iter()
            .map(|e| e.network.clone())
            .collect::<BTreeSet<_>>()
        {
            if let Ok(net) = self.network_by_id(&net_id) {
                let gone = self.abandoned_endpoints(&net).await;
                live.extend(
                    endpoints
                        .iter()
                        .filter(|e| e.network == net_id && !gone.contains(&e.id))
                        .map(|e| e.id.clone()),
                );
            }
        }
        let endpoints: Vec<EndpointRecord> = endpoints
            .into_iter()
            .filter(|e| !live.contains(&e.id))
            .collect();
        for net in networks {
            report.networks.push(net.id.clone());
            if !view.dry_run {
                let gone = self.abandoned_endpoints(&net).await;
                if let Err(e) = self.remove_network(&net.id, |e| gone.contains(&e.id)).await {
                    report
                        .errors
                        .push(format!("network {}: {}", net.id, e.full_message()));
                }
            }
        }
        for ep in endpoints {
            report.endpoints.push(ep.id.clone());
            if !view.dry_run {
                if let Err(e) = self.engine_forget_endpoint(&ep).await {
                    report
                        .errors
                        .push(format!("endpoint {}: {}", ep.id, e.full_message()));
                }
            }
        }
        self.sync_engine_ipam(&view, grace, &mut report).await;
        if !view.dry_run {
            match self.engine_free_released().await {
                Ok(freed) => report.released.extend(freed),
                Err(e) => report.errors.push(format!(
                    "freeing released pools and addresses: {}",
                    e.full_message()
                )),
            }
        }
        Ok(report)
    }

    /// Refuse a view that has none of dockerd's networks on netd, or none of the
    /// subnets dockerd holds through netd's IPAM, while netd has some: the sign of a
    /// wrong plugin name, which would otherwise remove everything.
    fn check_view_knows_something(&self, view: &EngineView) -> Result<(), ControllerError> {
        let r = self.records();
        let networks: Vec<&String> = r
            .networks
            .values()
            .filter(|n| n.origin == Origin::Docker)
            .map(|n| &n.id)
            .collect();
        let pools: Vec<IpNet> = r
            .engine_pools
            .values()
            .filter(|p| !p.released)
            .map(|p| p.id.subnet)
            .collect();
        let unknown = |what: String| {
            Err(ControllerError::Invalid(format!(
                "dockerd's view has none of the {what}: is the plugin name right? If dockerd really lost them all, say so (allow_empty, `--allow-empty`)"
            )))
        };
        if !networks.is_empty() && !networks.iter().any(|id| view.networks.contains_key(*id)) {
            return unknown(format!(
                "{} network(s) dockerd made on netd",
                networks.len()
            ));
        }
        if !pools.is_empty() && !pools.iter().any(|s| view.ipam.contains_key(s)) {
            return unknown(format!(
                "{} subnet(s) dockerd holds through netd's IPAM",
                pools.len()
            ));
        }
        Ok(())
    }

    /// Pools and addresses dockerd holds through netd but no longer uses.
    async fn sync_engine_ipam(&self, view: &EngineView, grace: u64, report: &mut SyncReport) {
        let (pools, addresses) = {
            let r = self.records();
            // In use: what dockerd's view lists, and what the networks and
            // endpoints dockerd still has hold.
            let kept = |id: &str| view.networks.contains_key(id);
            let mut used: BTreeSet<IpAddr> = view.ipam.values().flatten().copied().collect();
            for n in r.networks.values().filter(|n| kept(&n.id)) {
                used.extend(n.subnets.iter().filter_map(|s| s.gateway));
                used.extend(n.subnets.iter().flat_map(|s| s.aux_addresses.values()));
            }
            let known: BTreeSet<&String> = view.networks.values().flatten().collect();
            for e in r.endpoints.values().filter(|e| known.contains(&e.id)) {
                used.extend(e.addresses.iter().map(|a| a.addr()));
            }
            let pools: Vec<String> = r
                .engine_pools
                .values()
                .filter(|p| !p.released && older_than(&p.created, grace))
                .filter(|p| !view.ipam.contains_key(&p.id.subnet))
                .map(|p| p.key())
                .collect();
            let addresses: Vec<(String, IpAddr)> = r
                .engine_addresses
                .values()
                .filter(|a| !a.released && older_than(&a.created, grace))
                // A gateway stays while its subnet is in the view: dockerd's API
                // shows it only where the user gave it.
                .filter(|a| !a.gateway)
                .filter(|a| view.ipam.contains_key(&a.pool.subnet) && !used.contains(&a.address))
                .map(|a| (a.pool.to_string(), a.address))
                .collect();
            (pools, addresses)
        };
        for (pool, addr) in addresses {
            report.addresses.push(format!("{pool} {addr}"));
            if !view.dry_run {
                if let Err(e) = self.engine_release_address(&pool, addr).await {
                    report
                        .errors
                        .push(format!("address {addr} in {pool}: {}", e.full_message()));
                }
            }
        }
        for pool in pools {
            report.pools.push(pool.clone());
            if !view.dry_run {
                if let Err(e) = self.engine_release_pool(&pool).await {
                    report
                        .errors
                        .push(format!("pool {pool}: {}", e.full_message()));
                }
            }
        }
    }
}
