//! Bringing the kernel in line with the store when netd starts: what the store has
//! and the kernel lacks is made again, and links, namespaces and files of netd's
//! that the store no longer knows are removed. Running containers keep their
//! interfaces: nothing the store knows is touched.

use super::persist::Op;
use super::{endpoint_spec, network_spec, Controller};
use crate::model::{EndpointRecord, NetworkRecord, SandboxRecord};
use crate::store::Kind;
use drivers::bridge::bridge_name;
use drivers::netns;
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
    /// Links of netd's naming that the store does not know, removed.
    pub removed_links: Vec<String>,
    /// Namespace files and sandbox directories the store does not know, removed.
    pub removed_files: Vec<String>,
    /// What failed (reconcile goes on past each failure).
    pub errors: Vec<String>,
}

/// Whether a link name is one netd makes: `br-`, `vn` or `vp` and 12 hex digits.
fn netd_link_name(name: &str) -> bool {
    let rest = name
        .strip_prefix("br-")
        .or_else(|| name.strip_prefix("vn"))
        .or_else(|| name.strip_prefix("vp"));
    rest.is_some_and(|r| r.len() == 12 && r.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Controller {
    /// Reconcile the kernel with the store. Safe to run at any time.
    pub async fn reconcile(&self) -> Reconciled {
        let mut out = Reconciled::default();
        let (networks, endpoints, sandboxes) =
            match (self.networks(), self.endpoints(), self.sandboxes()) {
                (Ok(n), Ok(e), Ok(s)) => (n, e, s),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    out.errors.push(e.full_message());
                    return out;
                }
            };
        let nets: HashMap<&str, &NetworkRecord> =
            networks.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut sbs: HashMap<String, SandboxRecord> = sandboxes
            .iter()
            .map(|s| (s.id.clone(), s.clone()))
            .collect();
        let mut known: HashSet<String> = HashSet::new();
        for net in &networks {
            out.networks += 1;
            if net.driver == "bridge" {
                known.insert(bridge_name(&network_spec(net)));
            }
            match self.driver(&net.driver) {
                Ok(d) => {
                    if let Err(e) = d.create_network(&network_spec(net)).await {
                        out.errors.push(format!(
                            "network {}: {}",
                            net.name,
                            super::ControllerError::from(e).full_message()
                        ));
                    }
                }
                Err(e) => out.errors.push(e.full_message()),
            }
        }
        let links: HashSet<String> = match self.nl.links().await {
            Ok(l) => l.into_iter().map(|l| l.name).collect(),
            Err(e) => {
                out.errors.push(format!("listing links: {e}"));
                return out;
            }
        };
        let mut ops = Vec::new();
        for ep in &endpoints {
            let Some(join) = &ep.join else { continue };
            if let Some(link) = &join.host_link {
                known.insert(link.clone());
            }
            let Some(sb_id) = &join.sandbox else { continue };
            let Some(net) = nets.get(ep.network.as_str()) else {
                continue;
            };
            let alive = sbs.get(sb_id).is_some_and(|sb| netns::is_netns(&sb.netns));
            if !alive {
                self.drop_join(net, ep, &mut sbs, &mut ops).await;
                out.dropped.push(ep.name.clone());
                continue;
            }
            let missing = join.host_link.as_ref().is_some_and(|l| !links.contains(l));
            if !missing {
                let Some(sb) = sbs.get(sb_id) else { continue };
                let sspec = self.sandbox_spec(sb).await;
                if let Ok(d) = self.driver(&net.driver) {
                    let repaired = d
                        .repair_join(
                            &network_spec(net),
                            &endpoint_spec(ep),
                            &sspec,
                            &join.interface,
                        )
                        .await;
                    match repaired {
                        Ok(true) => out.rejoined.push(ep.name.clone()),
                        Ok(false) => {}
                        Err(e) => out.errors.push(format!(
                            "repairing endpoint {}: {}",
                            ep.name,
                            super::ControllerError::from(e).full_message()
                        )),
                    }
                }
            }
            if missing {
                let Some(sb) = sbs.get(sb_id) else { continue };
                let sspec = self.sandbox_spec(sb).await;
                let result = match self.driver(&net.driver) {
                    Ok(d) => d
                        .join(
                            &network_spec(net),
                            &endpoint_spec(ep),
                            &sspec,
                            &join.interface,
                        )
                        .await
                        .map_err(|e| super::ControllerError::from(e).full_message()),
                    Err(e) => Err(e.full_message()),
                };
                match result {
                    Ok(_) => out.rejoined.push(ep.name.clone()),
                    Err(e) => out
                        .errors
                        .push(format!("rejoining endpoint {}: {e}", ep.name)),
                }
            }
        }
        for name in links
            .iter()
            .filter(|n| netd_link_name(n) && !known.contains(*n))
        {
            match self.nl.delete_by_name(name).await {
                Ok(_) => out.removed_links.push(name.clone()),
                Err(e) => out.errors.push(format!("removing orphan link {name}: {e}")),
            }
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
        if !ops.is_empty() {
            let upto = self.ipam_seq();
            if let Err(e) = self.commit(ops, upto).await {
                out.errors
                    .push(format!("saving reconciled state: {}", e.full_message()));
            }
        }
        // Sandbox files are not synced as they are written (the run dir does not
        // outlive a reboot, and may not a crash): bring them back in line.
        for sb in self.sandboxes().unwrap_or_default() {
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

    /// A join whose sandbox is gone: the host link goes, the endpoint is unjoined (or
    /// deleted, if an attach made it), the sandbox forgets it.
    async fn drop_join(
        &self,
        net: &NetworkRecord,
        ep: &EndpointRecord,
        sbs: &mut HashMap<String, SandboxRecord>,
        ops: &mut Vec<Op>,
    ) {
        if let Some(link) = ep.join.as_ref().and_then(|j| j.host_link.as_ref()) {
            if let Err(e) = self.nl.delete_by_name(link).await {
                tracing::warn!(link = %link, error = %e, "removing the link of a gone sandbox");
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
            self.release_endpoint_addresses(net, ep);
            ops.push(Op::Delete(Kind::Endpoint, ep.id.clone()));
        } else {
            let mut ep = ep.clone();
            ep.join = None;
            ops.push(Op::Endpoint(ep));
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn link_names() {
        assert!(super::netd_link_name("br-0123456789ab"));
        assert!(super::netd_link_name("vn0123456789ab"));
        assert!(!super::netd_link_name("br-lan"));
        assert!(!super::netd_link_name("veth0123456789"));
        assert!(!super::netd_link_name("eth0"));
    }
}
