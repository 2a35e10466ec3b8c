//! Sandboxes: namespaces made or adopted, endpoints joined into them as eth0,
//! eth1, ..., and their resolv.conf and hosts files.

use super::allocation::Holdings;
use super::endpoints::not_engine_owned;
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
use std::path::Path;
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

/// Overwrite a sandbox file in place (bind mounts hold its inode).
fn rewrite(path: &Path, text: &str) -> Result<(), ControllerError> {
    let mut result = files::overwrite(path, text);
    if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        // The sandbox's dir went away under netd (the run dir is a tmpfs).
        ensure_parent(path)?;
        result = files::overwrite(path, text);
    }
    result.map_err(written(path))
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

/// `name`, if neither the sandbox's joined endpoints use it nor the namespace
/// has a link of that name.
async fn named_interface(
    name: &str,
    joined: &[EndpointRecord],
    inside: Option<&Netlink>,
) -> Result<String, ControllerError> {
    let used = joined
        .iter()
        .filter_map(|e| e.join.as_ref())
        .any(|j| j.host_link.is_some() && j.interface == name);
    let present = match inside {
        Some(nl) => nl.link(name).await.map_err(|e| {
            ControllerError::Driver(drivers::DriverError::Kernel {
                doing: format!("looking for interface {name} in the sandbox"),
                source: e,
            })
        })?,
        None => None,
    };
    if used || present.is_some() {
        return Err(ControllerError::Conflict(format!(
            "the sandbox has an interface named {name} already"
        )));
    }
    Ok(name.to_string())
}

/// How many `ethN` names a join tries before it gives up.
const MAX_INTERFACES: usize = 4096;

/// The lowest `ethN` that neither the sandbox's joined endpoints use nor the
/// namespace has (a runtime or the container may have made an `eth0` of its own).
async fn next_interface(
    joined: &[EndpointRecord],
    inside: Option<&Netlink>,
) -> Result<String, ControllerError> {
    let used: Vec<&str> = joined
        .iter()
        .filter_map(|e| e.join.as_ref())
        // host and none make no interface, so they take no name.
        .filter(|j| j.host_link.is_some())
        .map(|j| j.interface.as_str())
        .collect();
    for n in 0..MAX_INTERFACES {
        let name = format!("eth{n}");
        if used.contains(&name.as_str()) {
            continue;
        }
        let taken = match inside {
            Some(nl) => nl.link(&name).await.map_err(|e| {
                ControllerError::Driver(drivers::DriverError::Kernel {
                    doing: format!("looking for a free interface name ({name}) in the sandbox"),
                    source: e,
                })
            })?,
            None => None,
        };
        if taken.is_none() {
            return Ok(name);
        }
    }
    Err(ControllerError::Conflict(format!(
        "the sandbox has no free interface name eth0..eth{}",
        MAX_INTERFACES - 1
    )))
}

/// Why `path` cannot be adopted as a sandbox's namespace, checked before anything
/// is made: it must be a network namespace, not netd's own (in production, the
/// host's), and not one netd made or another sandbox holds.
fn check_adoptable(
    path: &Path,
    run_dir: &Path,
    held: impl Fn(u64) -> Option<String>,
) -> Result<u64, ControllerError> {
    let invalid =
        |why: String| ControllerError::Invalid(format!("cannot adopt {}: {why}", path.display()));
    if !path.is_absolute() {
        return Err(invalid(
            "give an absolute path such as /proc/PID/ns/net".into(),
        ));
    }
    let id = netns::identity(path).map_err(|e| {
        invalid(format!(
            "{} (give /proc/PID/ns/net or a bind-mounted network namespace)",
            plugin_api::PluginError::from_error(&e).message()
        ))
    })?;
    if netns::own_identity().is_ok_and(|own| own == id) {
        return Err(invalid(
            "it is netd's own network namespace (the host's); a sandbox needs one of its own"
                .into(),
        ));
    }
    let ours = run_dir.join("netns");
    if let (Ok(real), Ok(base)) = (path.canonicalize(), ours.canonicalize()) {
        if real.starts_with(&base) {
            return Err(invalid(format!(
                "namespaces under {} are netd's own sandboxes'",
                base.display()
            )));
        }
    }
    if let Some(other) = held(id.ino) {
        return Err(ControllerError::Conflict(format!(
            "cannot adopt {}: sandbox {other} holds that namespace already",
            path.display()
        )));
    }
    Ok(id.ino)
}

/// A sandbox made (namespace, files, name and namespace reserved) but not yet
/// stored: dropped, it is undone; [`MadeSandbox::keep`] once its record is
/// durable.
pub(super) struct MadeSandbox<'a> {
    ctl: &'a Controller,
    pub(super) record: SandboxRecord,
    dir: PathBuf,
    reservation: Option<NameGuard<'a>>,
    namespace_claim: Option<NameGuard<'a>>,
    netns: NetnsGuard,
    kept: bool,
}

impl MadeSandbox<'_> {
    /// Its record is stored: the guards let go.
    pub(super) fn keep(mut self) {
        self.kept = true;
        self.netns.0 = None;
        if let Some(r) = self.reservation.take() {
            r.commit();
        }
        match self.namespace_claim.take() {
            Some(claim) => claim.commit(),
            None => {
                if let Some(ino) = self.record.netns_inode {
                    lock(&self.ctl.sandbox_namespaces).insert(ino.to_string());
                }
            }
        }
    }
}

impl Drop for MadeSandbox<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.dir);
            lock(&self.ctl.sandbox_netlink).remove(&self.record.id);
        }
    }
}

impl Controller {
    /// Create a sandbox: a new namespace under the run dir, or an adopted one.
    pub async fn create_sandbox(
        &self,
        req: SandboxCreate,
    ) -> Result<SandboxRecord, ControllerError> {
        let made = self.make_sandbox(&req)?;
        self.commit(vec![Op::Sandbox(made.record.clone())]).await?;
        let record = made.record.clone();
        made.keep();
        Ok(record)
    }

    /// Everything a sandbox's creation does but store it.
    pub(super) fn make_sandbox(
        &self,
        req: &SandboxCreate,
    ) -> Result<MadeSandbox<'_>, ControllerError> {
        let id = new_random_id()?;
        let name = match &req.name {
            Some(n) => Name::parse("sandbox", n).map_err(ControllerError::Invalid)?,
            None => Name::parse("sandbox", &format!("sb-{}", short_id(&id)))
                .map_err(ControllerError::Invalid)?,
        };
        let hostname = match &req.hostname {
            Some(h) if !files::valid_hostname(h) => {
                return Err(ControllerError::Invalid(format!(
                    "invalid hostname {h:?}: use letters, digits and '-' in dot-separated labels of up to 63"
                )));
            }
            Some(h) => h.clone(),
            // The name when it makes a valid host name (`my_app` does not), else
            // the short id, as Docker names a container's host.
            None if files::valid_hostname(name.as_str()) => name.to_string(),
            None => short_id(&id).to_string(),
        };
        if req.labels.keys().any(|k| k.is_empty()) {
            return Err(ControllerError::Invalid("a label has an empty key".into()));
        }
        let adopted_inode = match &req.netns {
            Some(path) => Some(check_adoptable(path, &self.settings.run_dir, |ino| {
                self.sandbox_holding(ino)
            })?),
            None => None,
        };
        let reservation = NameGuard::reserve(&self.sandbox_names, name.as_str(), || {
            format!("a sandbox named {name} exists already")
        })?;
        let namespace_claim = match adopted_inode {
            Some(ino) => Some(NameGuard::reserve(
                &self.sandbox_namespaces,
                &ino.to_string(),
                || "another sandbox is adopting that namespace now".to_string(),
            )?),
            None => None,
        };
        let (netns_path, owned, netns_inode, guard) = match &req.netns {
            Some(path) => (path.clone(), false, adopted_inode, NetnsGuard(None)),
            None => {
                let path = self.settings.run_dir.join("netns").join(&id);
                // Loopback comes up with the namespace, as in Docker's and runc's
                // sandboxes (a sandbox on no network has a working lo); joins
                // still raise it, for adopted namespaces.
                let inside = netns::create_with(&path, move || {
                    Netlink::on_this_thread().map(|nl| {
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
                let guard = NetnsGuard(Some(path.clone()));
                let inode = netns::identity(&path).ok().map(|i| i.ino);
                (path, true, inode, guard)
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
            netns_inode,
            hostname,
            dns,
            dns_asked: !req.dns.is_empty(),
            resolv_conf: dir.join("resolv.conf"),
            hosts: dir.join("hosts"),
            endpoints: Vec::new(),
            created: now(),
            labels: req.labels.clone(),
        };
        let made = MadeSandbox {
            ctl: self,
            record,
            dir,
            reservation: Some(reservation),
            namespace_claim,
            netns: guard,
            kept: false,
        };
        self.write_files(&made.record, &[])?;
        Ok(made)
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

    /// The hosts file, which every join or leave changes, written without
    /// reading it first.
    pub(super) fn write_hosts(
        &self,
        sb: &SandboxRecord,
        joined: &[EndpointRecord],
    ) -> Result<(), ControllerError> {
        rewrite(&sb.hosts, &hosts_text(sb, joined))
    }

    /// resolv.conf, which a join or leave changes when the sandbox's name
    /// servers are its networks' DNS responders.
    pub(super) fn write_resolv(&self, sb: &SandboxRecord) -> Result<(), ControllerError> {
        rewrite(
            &sb.resolv_conf,
            &files::resolv_conf(&sb.dns, &self.settings.host_resolv_conf),
        )
    }

    /// Both files after a join or leave: `resolv` says whether the name servers
    /// changed.
    fn write_join_files(
        &self,
        sb: &SandboxRecord,
        joined: &[EndpointRecord],
        resolv: bool,
    ) -> Result<(), ControllerError> {
        self.write_hosts(sb, joined)?;
        if resolv {
            self.write_resolv(sb)?;
        }
        Ok(())
    }

    /// The sandbox `ino` names, if one holds that namespace.
    fn sandbox_holding(&self, ino: u64) -> Option<String> {
        self.records()
            .sandboxes
            .values()
            // One whose namespace is gone holds nothing: nsfs numbers are reused.
            .find(|s| s.netns_inode == Some(ino) && Self::namespace_alive(s))
            .map(|s| s.name.clone())
    }

    /// Whether a sandbox's namespace is still there and still the one it had (an
    /// adopted `/proc/PID/ns/net` shows another namespace once PID is reused).
    pub(super) fn namespace_alive(sb: &SandboxRecord) -> bool {
        match (netns::identity(&sb.netns), sb.netns_inode) {
            (Ok(id), Some(ino)) => id.ino == ino,
            (Ok(_), None) => true,
            (Err(_), _) => false,
        }
    }

    /// What a driver is told of a sandbox, with a netlink connection inside: the one
    /// kept for a namespace netd made (opened now after a restart), or one opened for
    /// this call in an adopted namespace, which is opened once and checked to be
    /// the adopted one (the driver uses that very descriptor).
    pub(super) async fn sandbox_spec(
        &self,
        sb: &SandboxRecord,
    ) -> Result<SandboxSpec, ControllerError> {
        let kept = lock(&self.sandbox_netlink).get(&sb.id).cloned();
        let mut opened = None;
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
            None => {
                let gone = || {
                    ControllerError::Conflict(format!(
                        "sandbox {}: {} is no longer the namespace it adopted (its process is gone); delete the sandbox",
                        sb.name,
                        sb.netns.display()
                    ))
                };
                let file = std::fs::File::open(&sb.netns).map_err(|_| gone())?;
                match (netns::identity_of(&file, &sb.netns), sb.netns_inode) {
                    (Ok(id), Some(ino)) if id.ino != ino => return Err(gone()),
                    (Err(_), _) => return Err(gone()),
                    _ => {}
                }
                let nl = Netlink::in_netns_file(&file, &sb.netns).await.ok();
                opened = Some(Arc::new(file));
                nl
            }
        };
        Ok(SandboxSpec {
            netns: Some(sb.netns.clone()),
            netlink,
            opened,
        })
    }

    pub(super) fn joined(
        &self,
        sb: &SandboxRecord,
    ) -> Result<Vec<EndpointRecord>, ControllerError> {
        let records = self.records();
        sb.endpoints
            .iter()
            .map(|id| {
                records
                    .endpoints
                    .get(id)
                    .cloned()
                    .ok_or_else(|| ControllerError::not_found("endpoint", id))
            })
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
            .join_locked(&p.net, p.ep.clone(), p.sb.clone(), None, None, false)
            .await?;
        Ok(ep)
    }

    /// Claim the endpoint, lock the sandbox and the endpoint's network gate (in that
    /// order everywhere), then read all three records fresh.
    async fn lock_pair(&self, sandbox: &str, endpoint: &str) -> Result<Pair<'_>, ControllerError> {
        let sb = self.sandbox(sandbox)?;
        let ep = self.endpoint(endpoint)?;
        not_engine_owned("endpoint", &ep.name, ep.origin)?;
        let claim = self.claim_endpoint(&ep)?;
        let sb_lock = self.sandbox_lock(&sb.id).lock_owned().await;
        let slot = self.slot(&ep.network);
        let gate = Arc::clone(&slot.gate).read_owned().await;
        let sb = self.sandbox_by_id(&sb.id)?;
        let ep = self.endpoint_by_id(&ep.id)?;
        let net = self.network_by_id(&ep.network)?;
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
        fresh: Option<Holdings<'_>>,
        interface: Option<&str>,
        new_sandbox: bool,
    ) -> Result<(EndpointRecord, SandboxRecord), ControllerError> {
        let mut joined = self.joined(&sb)?;
        let driver = self.driver(&net.driver)?;
        let nspec = network_spec(net);
        let espec = endpoint_spec(&ep);
        let sspec = self.sandbox_spec(&sb).await?;
        // host and none make no interface: the name is only recorded.
        let inside = driver.host_link(&espec).and(sspec.netlink.as_ref());
        let ifname = match interface {
            Some(name) => named_interface(name, &joined, inside).await?,
            None => next_interface(&joined, inside).await?,
        };
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
        let servers = self.sandbox_name_servers(&sb, &joined);
        let resolv = servers != sb.dns;
        sb.dns = servers;
        let ops = vec![Op::Endpoint(ep.clone()), Op::Sandbox(sb.clone())];
        // The commit goes to the store's writer thread at once; the kernel work,
        // which mostly runs without yielding, and the hosts file overlap it.
        let mut store = pin!(self.commit(ops));
        let started = poll_fn(|cx| Poll::Ready(store.as_mut().poll(cx))).await;
        let kernel = async {
            let made = driver.join(&nspec, &espec, &sspec, &ifname).await?;
            if let Err(e) = self.write_join_files(&sb, &joined, resolv) {
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
            if let Err(e) = self.write_join_files(&old_sb, &joined, resolv) {
                tracing::warn!(sandbox = %sb.name, error = %e.full_message(), "could not restore the sandbox's files");
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
                // A sandbox stored by this commit goes again with it.
                let mut undo = vec![match new_sandbox {
                    true => Op::Delete(Kind::Sandbox, old_sb.id.clone()),
                    false => Op::Sandbox(old_sb),
                }];
                match &fresh {
                    Some(_) => undo.push(Op::Delete(Kind::Endpoint, old_ep.id.clone())),
                    None => undo.push(Op::Endpoint(old_ep)),
                }
                match self.commit(undo).await {
                    // The endpoint's record is gone for good: its addresses can go.
                    Ok(()) => drop(fresh),
                    Err(c) => {
                        // Stored, the endpoint still holds them; a restart rejoins it.
                        if let Some(h) = fresh {
                            h.commit();
                        }
                        tracing::error!(endpoint = %ep.name, error = %c.full_message(), "could not store the undoing of a failed join; a restart reconciles it");
                    }
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
        if let Some(name) = &req.interface {
            super::requests::check_interface_name(name).map_err(ControllerError::Invalid)?;
        }
        let sb = self.sandbox(sandbox)?;
        let net = self.attach_network(&req)?;
        let lock_ = self.sandbox_lock(&sb.id);
        let _sb_lock = lock_.lock().await;
        let slot = self.slot(&net.id);
        let _gate = slot.gate.read().await;
        let sb = self.sandbox_by_id(&sb.id)?;
        let net = self.network_by_id(&net.id)?;
        let (ep, sb) = self.attach_locked(&net, &slot, sb, &req, false).await?;
        if req.ports.is_empty() {
            return Ok(ep);
        }
        match self.publish_locked(ep.clone(), &req.ports).await {
            Ok(ep) => Ok(ep),
            Err(e) => {
                // Nothing half-made: the attach is undone.
                if let Err(undo) = self.leave_locked(&net, ep.clone(), sb, true).await {
                    tracing::warn!(endpoint = %ep.name, error = %undo.full_message(), "could not undo an attach whose ports failed");
                } else {
                    lock(&slot.endpoint_names).remove(&ep.name);
                }
                Err(e)
            }
        }
    }

    /// A new endpoint on `net` joined to `sb`, under the sandbox's lock and the
    /// network's gate; `new_sandbox`: `sb` is not stored yet, this commit
    /// stores it.
    async fn attach_locked(
        &self,
        net: &NetworkRecord,
        slot: &Arc<super::NetSlot>,
        sb: SandboxRecord,
        req: &Attach,
        new_sandbox: bool,
    ) -> Result<(EndpointRecord, SandboxRecord), ControllerError> {
        let mut prepared = self.prepare_endpoint(net, slot, &req.endpoint()).await?;
        prepared.record.attached = true;
        let id = prepared.record.id.clone();
        // Held from the join to the ports: no other operation sees it half-made.
        let _claim = self.claim_endpoint(&prepared.record)?;
        let joined = self
            .join_locked(
                net,
                prepared.record,
                sb,
                Some(prepared.holdings),
                req.interface.as_deref(),
                new_sandbox,
            )
            .await;
        // Stored (or left stored by an undo that could not be saved), the
        // endpoint keeps its name.
        if joined.is_ok() || self.records().endpoints.contains_key(&id) {
            prepared.name.commit();
        }
        joined
    }

    /// Create a sandbox and attach it to a network, both stored by one commit (a
    /// CNI ADD's whole work in one request). A failure leaves neither; ports
    /// refused take the new sandbox away again.
    pub async fn create_attached(
        &self,
        sandbox: SandboxCreate,
        req: Attach,
    ) -> Result<(SandboxRecord, EndpointRecord), ControllerError> {
        if let Some(name) = &req.interface {
            super::requests::check_interface_name(name).map_err(ControllerError::Invalid)?;
        }
        // Refused before a namespace is made or adopted, not after.
        super::requests::check_aliases(&req.aliases).map_err(ControllerError::Invalid)?;
        let net = self.attach_network(&req)?;
        let made = self.make_sandbox(&sandbox)?;
        let joined = {
            let lock_ = self.sandbox_lock(&made.record.id);
            let _sb_lock = lock_.lock().await;
            let slot = self.slot(&net.id);
            let _gate = slot.gate.read().await;
            let net = self.network_by_id(&net.id)?;
            self.attach_locked(&net, &slot, made.record.clone(), &req, true)
                .await?
        };
        made.keep();
        let (ep, sb) = joined;
        if req.ports.is_empty() {
            return Ok((sb, ep));
        }
        let published = {
            let lock_ = self.sandbox_lock(&sb.id);
            let _sb_lock = lock_.lock().await;
            let slot = self.slot(&net.id);
            let _gate = slot.gate.read().await;
            self.publish_locked(ep.clone(), &req.ports).await
        };
        match published {
            Ok(ep) => Ok((sb, ep)),
            Err(e) => {
                // Nothing half-made: the sandbox goes, with its endpoint.
                if let Err(undo) = self.delete_sandbox(&sb.id).await {
                    tracing::warn!(sandbox = %sb.name, error = %undo.full_message(), "could not undo a sandbox whose ports failed");
                }
                Err(e)
            }
        }
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
        // Whether the leaving interface may have carried the default route.
        let routed = p.ep.join.as_ref().is_some_and(|j| j.host_link.is_some())
            && !drivers::bridge::gateways(&network_spec(&p.net), &endpoint_spec(&p.ep)).is_empty();
        let (ep, sb) = self
            .leave_locked(&p.net, p.ep.clone(), p.sb.clone(), delete)
            .await?;
        if delete {
            lock(&p.slot.endpoint_names).remove(&ep.name);
        }
        if routed {
            self.keep_default_route(&sb).await;
        }
        Ok(ep)
    }

    /// After a leave of an interface with a gateway: in a family left with no
    /// default route, the next joined interface whose network has a gateway
    /// carries it (as Docker moves a container's default gateway to another of
    /// its networks). A default route there already, netd's or not, at any
    /// metric, stays the only one.
    async fn keep_default_route(&self, sb: &SandboxRecord) {
        let joined = self.joined(sb).unwrap_or_default();
        let candidates: Vec<(String, Vec<std::net::IpAddr>)> = joined
            .iter()
            .filter_map(|ep| {
                let join = ep.join.as_ref()?;
                // Only interfaces netd configured (a remote plugin's gateway
                // came in its Join answer).
                join.host_link.as_ref()?;
                let net = self.network_by_id(&ep.network).ok()?;
                let gateways = drivers::bridge::gateways(&network_spec(&net), &endpoint_spec(ep));
                (!gateways.is_empty()).then(|| (join.interface.clone(), gateways))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let inside = match self.sandbox_spec(sb).await.map(|s| s.netlink) {
            Ok(Some(nl)) => nl,
            _ => return,
        };
        // What cannot be read is taken as there: nothing is added then.
        let (has_v4, has_v6) = inside.default_routes().await.unwrap_or((true, true));
        for (ifname, gateways) in candidates {
            let missing: Vec<_> = gateways
                .into_iter()
                .filter(|gw| if gw.is_ipv4() { !has_v4 } else { !has_v6 })
                .collect();
            if missing.is_empty() {
                continue;
            }
            let Ok(index) = inside.index(&ifname).await else {
                continue;
            };
            let batch = missing
                .into_iter()
                .fold(Batch::new(), |b, gw| b.default_route(index, gw));
            if let Err(e) = inside.run(batch).await {
                tracing::warn!(sandbox = %sb.name, interface = %ifname, error = %e, "could not move the default route");
            }
        }
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
        // A remote driver works inside the sandbox at a leave: the namespace is
        // checked to be the sandbox's, and one that is gone (or that another
        // process's pid now names) is not entered. The others work outside.
        let sspec = if net.driver.starts_with(drivers::remote::PREFIX) {
            self.sandbox_spec(&sb).await.unwrap_or_default()
        } else {
            SandboxSpec::at(&sb.netns)
        };
        driver
            .leave(&network_spec(net), &endpoint_spec(&ep), &sspec, &ifname)
            .await?;
        ep.join = None;
        sb.endpoints.retain(|id| *id != ep.id);
        let joined = self.joined(&sb).unwrap_or_default();
        let servers = self.sandbox_name_servers(&sb, &joined);
        let resolv = servers != sb.dns;
        sb.dns = servers;
        let mut ops = vec![Op::Sandbox(sb.clone())];
        if delete {
            ops.push(Op::Delete(Kind::Endpoint, ep.id.clone()));
        } else {
            ops.push(Op::Endpoint(ep.clone()));
        }
        self.commit(ops).await?;
        if delete {
            // Only now: until the delete was durable, a crash would have brought
            // the endpoint back, and its addresses had to stay its own.
            self.give_back(Vec::new(), self.endpoint_holdings(net, &ep));
        }
        if let Err(e) = self.write_join_files(&sb, &joined, resolv) {
            tracing::warn!(sandbox = %sb.name, error = %e.full_message(), "could not rewrite the sandbox's files");
        }
        Ok((ep, sb))
    }

    /// Delete a sandbox: its endpoints leave (attached ones are deleted), its
    /// namespace is removed if netd made it, and its files go. Every endpoint is
    /// tried; if any cannot leave, the sandbox stays and the error names each.
    pub async fn delete_sandbox(&self, key: &str) -> Result<SandboxRecord, ControllerError> {
        let sb = self.sandbox(key)?;
        let lock_ = self.sandbox_lock(&sb.id);
        let _sb_lock = lock_.lock().await;
        let mut sb = self.sandbox_by_id(&sb.id)?;
        let mut failures = Vec::new();
        for ep in self.joined(&sb)? {
            let name = ep.name.clone();
            let left = async {
                let _claim = self.claim_endpoint(&ep)?;
                let slot = self.slot(&ep.network);
                let _gate = slot.gate.read().await;
                let net = self.network_by_id(&ep.network)?;
                let delete = ep.attached;
                let (_, after) = self.leave_locked(&net, ep, sb.clone(), delete).await?;
                if delete {
                    lock(&slot.endpoint_names).remove(&name);
                }
                Ok::<_, ControllerError>(after)
            }
            .await;
            match left {
                Ok(after) => sb = after,
                Err(e) => failures.push(format!("endpoint {name}: {}", e.full_message())),
            }
        }
        if !failures.is_empty() {
            return Err(ControllerError::Incomplete(format!(
                "sandbox {} could not be deleted: {}",
                sb.name,
                failures.join("; ")
            )));
        }
        self.commit(vec![Op::Delete(Kind::Sandbox, sb.id.clone())])
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
        if let Some(ino) = sb.netns_inode {
            lock(&self.sandbox_namespaces).remove(&ino.to_string());
        }
        Ok(sb)
    }
}
