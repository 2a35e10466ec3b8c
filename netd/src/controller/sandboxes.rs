//! Sandboxes: namespaces made or adopted, endpoints joined into them as eth0,
//! eth1, ..., and their resolv.conf and hosts files.

use super::networks::new_random_id;
use super::persist::Op;
use super::{
    endpoint_spec, ensure_parent, lock, network_spec, Attach, Controller, ControllerError,
    NameGuard, SandboxCreate,
};
use crate::files;
use crate::model::{now, short_id, EndpointRecord, JoinRecord, Name, NetworkRecord, SandboxRecord};
use crate::store::Kind;
use drivers::netlink::{Batch, Netlink, LOOPBACK_INDEX};
use drivers::{netns, SandboxSpec};
use std::future::{poll_fn, Future};
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

fn hosts_text(sb: &SandboxRecord, joined: &[EndpointRecord]) -> String {
    let addresses: Vec<_> = joined.iter().flat_map(|e| e.addresses.clone()).collect();
    files::hosts(&sb.hostname, &addresses)
}

fn written(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ControllerError + '_ {
    move |source| ControllerError::Io {
        doing: "writing",
        path: path.to_path_buf(),
        source,
    }
}

/// A sandbox and an endpoint, locked for a join or leave, with fresh records.
struct Pair<'a> {
    sb: SandboxRecord,
    ep: EndpointRecord,
    net: NetworkRecord,
    slot: Arc<super::NetSlot>,
    _claim: NameGuard<'a>,
    _sb_lock: tokio::sync::OwnedMutexGuard<()>,
    _gate: tokio::sync::OwnedRwLockReadGuard<()>,
}

/// Removes a namespace netd made unless committed.
struct NetnsGuard(Option<PathBuf>);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(e) = netns::remove(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a half-made namespace");
            }
        }
    }
}

/// The lowest `ethN` not used by the sandbox's joined endpoints.
fn next_interface(joined: &[EndpointRecord]) -> String {
    let used: Vec<&str> = joined
        .iter()
        .filter_map(|e| e.join.as_ref())
        // host and none make no interface, so they take no name.
        .filter(|j| j.host_link.is_some())
        .map(|j| j.interface.as_str())
        .collect();
    (0..)
        .map(|n| format!("eth{n}"))
        .find(|name| !used.contains(&name.as_str()))
        .unwrap_or_else(|| "eth0".to_string())
}

impl Controller {
    /// Create a sandbox: a new namespace under the run dir, or an adopted one.
    pub async fn create_sandbox(
        &self,
        req: SandboxCreate,
    ) -> Result<SandboxRecord, ControllerError> {
        let id = new_random_id()?;
        let name = match &req.name {
            Some(n) => Name::parse("sandbox", n).map_err(ControllerError::Invalid)?,
            None => Name::parse("sandbox", &format!("sb-{}", short_id(&id)))
                .map_err(ControllerError::Invalid)?,
        };
        let hostname = req.hostname.clone().unwrap_or_else(|| name.to_string());
        if !files::valid_hostname(&hostname) {
            return Err(ControllerError::Invalid(format!(
                "invalid hostname {hostname:?}: use letters, digits and '-' in dot-separated labels of up to 63"
            )));
        }
        if let Some(path) = &req.netns {
            if !path.is_absolute() || !netns::is_netns(path) {
                return Err(ControllerError::Invalid(format!(
                    "{} is not a network namespace file (give /proc/PID/ns/net or a bind-mounted netns)",
                    path.display()
                )));
            }
        }
        let reservation = NameGuard::reserve(&self.sandbox_names, name.as_str(), || {
            format!("a sandbox named {name} exists already")
        })?;
        let (netns_path, owned, mut guard) = match &req.netns {
            Some(path) => (path.clone(), false, NetnsGuard(None)),
            None => {
                let path = self.settings.run_dir.join("netns").join(&id);
                let runtime = tokio::runtime::Handle::current();
                // Loopback comes up with the namespace, as in Docker's and runc's
                // sandboxes (a sandbox on no network has a working lo); joins
                // still raise it, for adopted namespaces.
                let inside = netns::create_with(&path, move || {
                    Netlink::on_this_thread(&runtime).map(|nl| {
                        let lo = nl.run_here(Batch::new().set_up(LOOPBACK_INDEX));
                        (nl, lo)
                    })
                })
                .map_err(ControllerError::netns(format!(
                    "creating the namespace of sandbox {name}"
                )))?;
                match inside {
                    Ok((nl, lo)) => {
                        if let Err(e) = lo {
                            // A join raises it (again) all the same.
                            tracing::warn!(sandbox = %name, error = %e, "loopback not up");
                        }
                        lock(&self.sandbox_netlink).insert(id.clone(), nl);
                    }
                    // Joins open their own connection then, and raise lo.
                    Err(e) => {
                        tracing::warn!(sandbox = %name, error = %e, "no netlink connection kept")
                    }
                }
                (path.clone(), true, NetnsGuard(Some(path)))
            }
        };
        let dir = self.settings.run_dir.join("sandboxes").join(&id);
        let dns = files::sandbox_name_servers(
            &req.dns,
            &self.settings.host_resolv_conf,
            &self.settings.fallback_dns,
        );
        let record = SandboxRecord {
            id: id.clone(),
            name: name.to_string(),
            netns: netns_path,
            owned,
            hostname,
            dns,
            resolv_conf: dir.join("resolv.conf"),
            hosts: dir.join("hosts"),
            endpoints: Vec::new(),
            created: now(),
        };
        let result = async {
            self.write_files(&record, &[])?;
            self.commit(vec![Op::Sandbox(record.clone())], 0).await
        }
        .await;
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&dir);
            lock(&self.sandbox_netlink).remove(&id);
            return Err(e);
        }
        guard.0 = None;
        reservation.commit();
        Ok(record)
    }

    /// Both of a sandbox's files, each left alone if it holds its text already: at
    /// creation, and when netd starts.
    pub(super) fn write_files(
        &self,
        sb: &SandboxRecord,
        joined: &[EndpointRecord],
    ) -> Result<(), ControllerError> {
        ensure_parent(&sb.hosts)?;
        let resolv = files::resolv_conf(&sb.dns, &self.settings.host_resolv_conf);
        for (path, text) in [
            (&sb.resolv_conf, resolv),
            (&sb.hosts, hosts_text(sb, joined)),
        ] {
            files::write_in_place(path, &text).map_err(written(path))?;
        }
        Ok(())
    }

    /// The hosts file, which is all a join or leave changes (resolv.conf is the
    /// sandbox's, not its endpoints'), written without reading it first.
    pub(super) fn write_hosts(
        &self,
        sb: &SandboxRecord,
        joined: &[EndpointRecord],
    ) -> Result<(), ControllerError> {
        let text = hosts_text(sb, joined);
        let mut result = files::overwrite(&sb.hosts, &text);
        if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            // The sandbox's dir went away under netd (the run dir is a tmpfs).
            ensure_parent(&sb.hosts)?;
            result = files::overwrite(&sb.hosts, &text);
        }
        result.map_err(written(&sb.hosts))
    }

    /// What a driver is told of a sandbox, with its kept netlink connection (opened
    /// now if netd made the namespace before a restart).
    pub(super) async fn sandbox_spec(&self, sb: &SandboxRecord) -> SandboxSpec {
        let kept = lock(&self.sandbox_netlink).get(&sb.id).cloned();
        let netlink = match kept {
            Some(nl) => Some(nl),
            None if sb.owned => match Netlink::in_netns(&sb.netns).await {
                Ok(nl) => {
                    lock(&self.sandbox_netlink).insert(sb.id.clone(), nl.clone());
                    Some(nl)
                }
                Err(e) => {
                    tracing::debug!(sandbox = %sb.name, error = %e, "no netlink connection inside");
                    None
                }
            },
            None => None,
        };
        SandboxSpec {
            netns: Some(sb.netns.clone()),
            netlink,
        }
    }

    pub(super) fn joined(
        &self,
        sb: &SandboxRecord,
    ) -> Result<Vec<EndpointRecord>, ControllerError> {
        sb.endpoints
            .iter()
            .map(|id| self.get(Kind::Endpoint, "endpoint", id))
            .collect()
    }

    /// Join an existing endpoint to a sandbox.
    pub async fn join(
        &self,
        sandbox: &str,
        endpoint: &str,
    ) -> Result<EndpointRecord, ControllerError> {
        let p = self.lock_pair(sandbox, endpoint).await?;
        if p.ep.join.is_some() {
            return Err(ControllerError::Conflict(format!(
                "endpoint {} is joined already; leave it first",
                p.ep.name
            )));
        }
        let (ep, _) = self
            .join_locked(&p.net, p.ep.clone(), p.sb.clone(), None)
            .await?;
        Ok(ep)
    }

    /// Claim the endpoint, lock the sandbox and the endpoint's network gate (in that
    /// order everywhere), then read all three records fresh.
    async fn lock_pair(&self, sandbox: &str, endpoint: &str) -> Result<Pair<'_>, ControllerError> {
        let sb = self.sandbox(sandbox)?;
        let ep = self.endpoint(endpoint)?;
        let claim = self.claim_endpoint(&ep)?;
        let sb_lock = self.sandbox_lock(&sb.id).lock_owned().await;
        let slot = self.slot(&ep.network);
        let gate = Arc::clone(&slot.gate).read_owned().await;
        let sb: SandboxRecord = self.get(Kind::Sandbox, "sandbox", &sb.id)?;
        let ep: EndpointRecord = self.get(Kind::Endpoint, "endpoint", &ep.id)?;
        let net: NetworkRecord = self.get(Kind::Network, "network", &ep.network)?;
        Ok(Pair {
            sb,
            ep,
            net,
            slot,
            _claim: claim,
            _sb_lock: sb_lock,
            _gate: gate,
        })
    }

    /// The join itself, under the sandbox's lock and the network's gate. The kernel
    /// work and the commit of the join's records run at once (a restart repairs a
    /// join whose kernel work a crash cut short, see reconcile); whichever fails, the
    /// other is undone: the interface removed, or the old records committed again.
    /// `fresh` holds the allocations of an endpoint made for this join (an attach):
    /// the endpoint is then deleted, not restored, when the join fails.
    async fn join_locked(
        &self,
        net: &NetworkRecord,
        ep: EndpointRecord,
        sb: SandboxRecord,
        fresh: Option<super::Holdings<'_>>,
    ) -> Result<(EndpointRecord, SandboxRecord), ControllerError> {
        let mut joined = self.joined(&sb)?;
        let ifname = next_interface(&joined);
        let driver = self.driver(&net.driver)?;
        let nspec = network_spec(net);
        let espec = endpoint_spec(&ep);
        let sspec = self.sandbox_spec(&sb).await;
        let (old_ep, old_sb) = (ep.clone(), sb.clone());
        let (mut ep, mut sb) = (ep, sb);
        ep.join = Some(JoinRecord {
            sandbox: Some(sb.id.clone()),
            sandbox_key: None,
            interface: ifname.clone(),
            host_link: driver.host_link(&espec),
        });
        sb.endpoints.push(ep.id.clone());
        joined.push(ep.clone());
        let ops = vec![Op::Endpoint(ep.clone()), Op::Sandbox(sb.clone())];
        let upto = self.ipam_seq();
        // The commit goes to the store's writer thread at once; the kernel work,
        // which mostly runs without yielding, and the hosts file overlap it.
        let mut store = pin!(self.commit(ops, upto));
        let started = poll_fn(|cx| Poll::Ready(store.as_mut().poll(cx))).await;
        let kernel = async {
            let made = driver.join(&nspec, &espec, &sspec, &ifname).await?;
            if let Err(e) = self.write_hosts(&sb, &joined) {
                if let Err(undo) = driver.leave(&nspec, &espec, &sspec, &ifname).await {
                    tracing::warn!(endpoint = %ep.name, error = %undo, "could not undo a join");
                }
                return Err(e);
            }
            Ok::<_, ControllerError>(made)
        };
        let made = kernel.await;
        // Usually done by now, so this answers without this task being put back
        // on the run queue (which `join!` would do: the commit's wake-up arrives
        // while the kernel work runs, and it costs a worker hand-off).
        let stored = match started {
            Poll::Ready(stored) => stored,
            Poll::Pending => store.await,
        };
        if made.is_err() || stored.is_err() {
            joined.pop();
            if let Err(e) = self.write_hosts(&old_sb, &joined) {
                tracing::warn!(sandbox = %sb.name, error = %e.full_message(), "could not restore the hosts file");
            }
        }
        match (made, stored) {
            (Ok(_), Ok(())) => {
                if let Some(holdings) = fresh {
                    holdings.commit();
                }
                tracing::debug!(endpoint = %ep.name, sandbox = %sb.name, interface = %ifname, "joined");
                Ok((ep, sb))
            }
            (Ok(_), Err(e)) => {
                if let Err(undo) = driver.leave(&nspec, &espec, &sspec, &ifname).await {
                    tracing::warn!(endpoint = %ep.name, error = %undo, "could not undo a join");
                }
                Err(e)
            }
            (Err(e), Ok(())) => {
                let mut undo = vec![Op::Sandbox(old_sb)];
                match fresh {
                    Some(holdings) => {
                        // Given back now, so the undo commit carries the release.
                        drop(holdings);
                        undo.push(Op::Delete(Kind::Endpoint, old_ep.id.clone()));
                    }
                    None => undo.push(Op::Endpoint(old_ep)),
                }
                let upto = self.ipam_seq();
                if let Err(c) = self.commit(undo, upto).await {
                    tracing::error!(endpoint = %ep.name, error = %c.full_message(), "could not store the undoing of a failed join; a restart reconciles it");
                }
                Err(e)
            }
            (Err(e), Err(_)) => Err(e),
        }
    }

    /// Create an endpoint on a network and join it to a sandbox, stored in one commit.
    pub async fn attach(
        &self,
        sandbox: &str,
        req: Attach,
    ) -> Result<EndpointRecord, ControllerError> {
        let sb = self.sandbox(sandbox)?;
        let net = self.network(&req.network)?;
        let lock_ = self.sandbox_lock(&sb.id);
        let _sb_lock = lock_.lock().await;
        let slot = self.slot(&net.id);
        let _gate = slot.gate.read().await;
        let sb: SandboxRecord = self.get(Kind::Sandbox, "sandbox", &sb.id)?;
        let net: NetworkRecord = self.get(Kind::Network, "network", &net.id)?;
        let mut prepared = self.prepare_endpoint(&net, &slot, &req.endpoint())?;
        prepared.record.attached = true;
        let (ep, _) = self
            .join_locked(&net, prepared.record, sb, Some(prepared.holdings))
            .await?;
        prepared.name.commit();
        Ok(ep)
    }

    /// Leave: the endpoint's interface is removed from the sandbox.
    pub async fn leave(
        &self,
        sandbox: &str,
        endpoint: &str,
    ) -> Result<EndpointRecord, ControllerError> {
        self.leave_or_detach(sandbox, endpoint, false).await
    }

    /// Detach: leave, and delete the endpoint.
    pub async fn detach(
        &self,
        sandbox: &str,
        endpoint: &str,
    ) -> Result<EndpointRecord, ControllerError> {
        self.leave_or_detach(sandbox, endpoint, true).await
    }

    async fn leave_or_detach(
        &self,
        sandbox: &str,
        endpoint: &str,
        delete: bool,
    ) -> Result<EndpointRecord, ControllerError> {
        let p = self.lock_pair(sandbox, endpoint).await?;
        if !p.sb.endpoints.contains(&p.ep.id) {
            return Err(ControllerError::Conflict(format!(
                "endpoint {} is not joined to sandbox {}",
                p.ep.name, p.sb.name
            )));
        }
        let (ep, _) = self
            .leave_locked(&p.net, p.ep.clone(), p.sb.clone(), delete)
            .await?;
        if delete {
            lock(&p.slot.endpoint_names).remove(&ep.name);
        }
        Ok(ep)
    }

    /// Leave under the sandbox's lock and the network's gate; with `delete`, the
    /// endpoint goes too.
    async fn leave_locked(
        &self,
        net: &NetworkRecord,
        mut ep: EndpointRecord,
        mut sb: SandboxRecord,
        delete: bool,
    ) -> Result<(EndpointRecord, SandboxRecord), ControllerError> {
        let ifname = ep
            .join
            .as_ref()
            .map(|j| j.interface.clone())
            .unwrap_or_default();
        let driver = self.driver(&net.driver)?;
        let sspec = SandboxSpec::at(&sb.netns);
        driver
            .leave(&network_spec(net), &endpoint_spec(&ep), &sspec, &ifname)
            .await?;
        ep.join = None;
        sb.endpoints.retain(|id| *id != ep.id);
        let mut ops = vec![Op::Sandbox(sb.clone())];
        if delete {
            self.release_endpoint_addresses(net, &ep);
            ops.push(Op::Delete(Kind::Endpoint, ep.id.clone()));
        } else {
            ops.push(Op::Endpoint(ep.clone()));
        }
        let upto = self.ipam_seq();
        self.commit(ops, upto).await?;
        let joined = self.joined(&sb)?;
        if let Err(e) = self.write_hosts(&sb, &joined) {
            tracing::warn!(sandbox = %sb.name, error = %e.full_message(), "could not rewrite the hosts file");
        }
        Ok((ep, sb))
    }

    /// Delete a sandbox: its endpoints leave (attached ones are deleted), its
    /// namespace is removed if netd made it, and its files go.
    pub async fn delete_sandbox(&self, key: &str) -> Result<SandboxRecord, ControllerError> {
        let sb = self.sandbox(key)?;
        let lock_ = self.sandbox_lock(&sb.id);
        let _sb_lock = lock_.lock().await;
        let mut sb: SandboxRecord = self.get(Kind::Sandbox, "sandbox", &sb.id)?;
        for ep in self.joined(&sb)? {
            let _claim = self.claim_endpoint(&ep)?;
            let slot = self.slot(&ep.network);
            let _gate = slot.gate.read().await;
            let net: NetworkRecord = self.get(Kind::Network, "network", &ep.network)?;
            let delete = ep.attached;
            let name = ep.name.clone();
            sb = self.leave_locked(&net, ep, sb, delete).await?.1;
            if delete {
                lock(&slot.endpoint_names).remove(&name);
            }
        }
        self.commit(vec![Op::Delete(Kind::Sandbox, sb.id.clone())], 0)
            .await?;
        if sb.owned {
            if let Err(e) = netns::remove(&sb.netns) {
                tracing::warn!(sandbox = %sb.name, error = %e, "could not remove the namespace");
            }
        }
        let _ = std::fs::remove_dir_all(self.settings.run_dir.join("sandboxes").join(&sb.id));
        lock(&self.sandbox_names).remove(&sb.name);
        lock(&self.sandbox_locks).remove(&sb.id);
        lock(&self.sandbox_netlink).remove(&sb.id);
        Ok(sb)
    }
}
