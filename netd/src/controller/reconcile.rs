//! Bringing the kernel in line with the store when netd starts: what the store has
//! and the kernel lacks is made again, and what netd made (links with its mark,
//! namespaces and files under its run dir) that the store no longer knows is
//! removed. Running containers keep their interfaces: nothing the store knows is
//! touched, and nothing netd did not make.

use super::persist::Op;
use super::{endpoint_spec, network_spec, Controller, ControllerError};
use crate::model::{EndpointRecord, NetworkRecord, Origin, SandboxRecord};
use crate::store::Kind;
use drivers::{netns, Repair};
use std::collections::{HashMap, HashSet};

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Networks whose kernel objects were checked (and made again where missing).
    pub networks: usize,
    /// Joins whose interface was missing and was made again.
    pub rejoined: Vec<String>,
    /// Joins dropped because their sandbox's namespace is gone.
    pub dropped: Vec<String>,
    /// Links netd made that the store does not know, removed.
    pub removed_links: Vec<String>,
    /// Namespace files and sandbox directories the store does not know, removed.
    pub removed_files: Vec<String>,
    /// What failed (reconcile goes on past each failure).
    pub errors: Vec<String>,
}

impl Controller {
    /// Reconcile the kernel with the store. Run it at start, before serving.
    pub async fn reconcile(&self) -> Reconciled {
        let mut out = Reconciled::default();
        out.errors
            .extend(self.ipam_problems.iter().map(|p| format!("allocator: {p}")));
        let networks = self.networks();
        let endpoints = self.endpoints();
        let mut sbs: HashMap<String, SandboxRecord> = self
            .sandboxes()
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let nets: HashMap<&str, &NetworkRecord> =
            networks.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut ops = Vec::new();
        for net in &networks {
            out.networks += 1;
            match self.driver(&net.driver) {
                Ok(d) => match d.create_network(&network_spec(net)).await {
                    // A bridge that was gone is netd's now, say.
                    Ok(data) if data != net.driver_data => {
                        let mut changed = net.clone();
                        changed.driver_data = data;
                        ops.push(Op::Network(changed));
                    }
                    Ok(_) => {}
                    Err(e) => out.errors.push(format!(
                        "network {}: {}",
                        net.name,
                        ControllerError::from(e).full_message()
                    )),
                },
                Err(e) => out.errors.push(e.full_message()),
            }
        }
        let mut host_links: HashSet<String> = HashSet::new();
        for ep in &endpoints {
            let Some(join) = &ep.join else { continue };
            if let Some(link) = &join.host_link {
                host_links.insert(link.clone());
            }
            let Some(sb_id) = &join.sandbox else {
                // An engine-placed join: its interface is in the engine's sandbox,
                // which netd cannot make again. Gone (a Leave cut short by a crash,
                // or the sandbox ended), the join is over.
                if let Some(net) = nets.get(ep.network.as_str()) {
                    let spec = drivers::SandboxSpec::default();
                    if self.repair(net, ep, &spec, &join.interface, &mut out).await
                        == Some(Repair::Gone)
                    {
                        let mut left = ep.clone();
                        left.join = None;
                        ops.push(Op::Endpoint(left));
                        out.dropped.push(ep.name.clone());
                    }
                }
                continue;
            };
            let Some(net) = nets.get(ep.network.as_str()) else {
                continue;
            };
            let alive = sbs.get(sb_id).is_some_and(Self::namespace_alive);
            if !alive {
                self.drop_join(ep, &mut sbs, &mut ops, &mut out).await;
                continue;
            }
            if let Some(sb) = sbs.get(sb_id) {
                match self.sandbox_spec(sb).await {
                    Ok(spec) => {
                        self.repair(net, ep, &spec, &join.interface, &mut out).await;
                    }
                    Err(e) => out.errors.push(format!(
                        "repairing endpoint {}: {}",
                        ep.name,
                        e.full_message()
                    )),
                }
            }
        }
        for (kind, d) in &self.drivers {
            let mine: Vec<_> = networks
                .iter()
                .filter(|n| n.driver == *kind)
                .map(network_spec)
                .collect();
            let swept = d.sweep(&mine, &host_links).await;
            out.removed_links.extend(swept.removed);
            out.errors.extend(swept.errors);
        }
        let owned: HashSet<_> = sbs
            .values()
            .filter(|s| s.owned)
            .map(|s| s.netns.clone())
            .collect();
        self.sweep_dir(
            "netns",
            |p| !owned.contains(p),
            |p| netns::remove(p).map(|_| ()).map_err(|e| e.to_string()),
            &mut out,
        );
        let dirs: HashSet<_> = sbs
            .keys()
            .map(|id| self.settings.run_dir.join("sandboxes").join(id))
            .collect();
        self.sweep_dir(
            "sandboxes",
            |p| !dirs.contains(p),
            |p| std::fs::remove_dir_all(p).map_err(|e| e.to_string()),
            &mut out,
        );
        let freed = self.dropped_holdings(&ops);
        if !ops.is_empty() {
            match self.commit(ops).await {
                Ok(()) => self.give_back(Vec::new(), freed),
                Err(e) => out
                    .errors
                    .push(format!("saving reconciled state: {}", e.full_message())),
            }
        }
        out.dropped.extend(self.reap_engine_joins().await);
        // Sandbox files are not synced as they are written (the run dir does not
        // outlive a reboot, and may not a crash): bring them back in line.
        for sb in self.sandboxes() {
            let written = self
                .joined(&sb)
                .and_then(|joined| self.write_files(&sb, &joined));
            if let Err(e) = written {
                out.errors.push(format!(
                    "rewriting the files of sandbox {}: {}",
                    sb.name,
                    e.full_message()
                ));
            }
        }
        out
    }

    /// A stored join whose sandbox is alive, as its driver finds it (made again if
    /// missing, repaired if miswired or never configured); `None` on failure, which
    /// is reported.
    async fn repair(
        &self,
        net: &NetworkRecord,
        ep: &EndpointRecord,
        sandbox: &drivers::SandboxSpec,
        ifname: &str,
        out: &mut Reconciled,
    ) -> Option<Repair> {
        let result = match self.driver(&net.driver) {
            Ok(d) => d
                .repair_join(&network_spec(net), &endpoint_spec(ep), sandbox, ifname)
                .await
                .map_err(ControllerError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(Repair::Repaired) => {
                out.rejoined.push(ep.name.clone());
                Some(Repair::Repaired)
            }
            Ok(other) => Some(other),
            Err(e) => {
                out.errors.push(format!(
                    "repairing endpoint {}: {}",
                    ep.name,
                    e.full_message()
                ));
                None
            }
        }
    }

    /// A join whose sandbox is gone: the host link goes, the endpoint is unjoined (or
    /// deleted, if an attach made it), the sandbox forgets it.
    async fn drop_join(
        &self,
        ep: &EndpointRecord,
        sbs: &mut HashMap<String, SandboxRecord>,
        ops: &mut Vec<Op>,
        out: &mut Reconciled,
    ) {
        if let Ok(net) = self.network_by_id(&ep.network) {
            if let (Ok(d), Some(join)) = (self.driver(&net.driver), &ep.join) {
                let sspec = drivers::SandboxSpec::default();
                if let Err(e) = d
                    .leave(
                        &network_spec(&net),
                        &endpoint_spec(ep),
                        &sspec,
                        &join.interface,
                    )
                    .await
                {
                    out.errors.push(format!(
                        "removing the link of endpoint {}, whose sandbox is gone: {}",
                        ep.name,
                        ControllerError::from(e).full_message()
                    ));
                }
            }
        }
        if let Some(sb) = ep
            .join
            .as_ref()
            .and_then(|j| j.sandbox.as_ref())
            .and_then(|id| sbs.get_mut(id))
        {
            sb.endpoints.retain(|id| *id != ep.id);
            ops.push(Op::Sandbox(sb.clone()));
        }
        if ep.attached {
            ops.push(Op::Delete(Kind::Endpoint, ep.id.clone()));
        } else {
            let mut ep = ep.clone();
            ep.join = None;
            ops.push(Op::Endpoint(ep));
        }
        out.dropped.push(ep.name.clone());
    }

    /// The allocator holdings of the endpoints `ops` delete.
    fn dropped_holdings(&self, ops: &[Op]) -> Vec<(ipam::PoolId, std::net::IpAddr)> {
        ops.iter()
            .filter_map(|op| match op {
                Op::Delete(Kind::Endpoint, id) => self.endpoint_by_id(id).ok(),
                _ => None,
            })
            .filter(|ep| ep.origin == Origin::Native)
            .flat_map(|ep| {
                self.network_by_id(&ep.network)
                    .map(|net| self.endpoint_holdings(&net, &ep))
                    .unwrap_or_default()
            })
            .collect()
    }

    fn sweep_dir(
        &self,
        sub: &str,
        unknown: impl Fn(&std::path::Path) -> bool,
        remove: impl Fn(&std::path::Path) -> Result<(), String>,
        out: &mut Reconciled,
    ) {
        let dir = self.settings.run_dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if unknown(&path) {
                match remove(&path) {
                    Ok(()) => out.removed_files.push(path.display().to_string()),
                    Err(e) => out.errors.push(format!("removing {}: {e}", path.display())),
                }
            }
        }
    }
}
