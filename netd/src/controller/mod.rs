//! The controller: networks, endpoints and sandboxes (the Container Network Model)
//! over the allocator, the drivers and the store. It knows nothing of HTTP; the
//! native API, the Docker face and the CLI are adapters onto it.
//!
//! Locking: the allocator sits behind a plain mutex held for microseconds. Each
//! network has a gate: joins and endpoint changes hold it shared (so attaches to one
//! network run in parallel), deleting the network holds it exclusively. Each sandbox
//! has a mutex, so its interface names are handed out in order. Names are reserved
//! in sets before any work starts. No lock is held across another network's work.

pub mod docker;
mod endpoints;
mod error;
mod networks;
mod persist;
mod reconcile;
mod requests;
mod sandboxes;
mod writer;

pub use docker::DockerJoin;
pub use error::{ControllerError, ErrorKind};
pub use persist::Buffer;
pub use reconcile::Reconciled;
pub use requests::{Attach, EndpointCreate, Join, NetworkCreate, SandboxCreate, SubnetRequest};

use crate::model::{is_full_id, EndpointRecord, NetworkRecord, SandboxRecord};
use crate::store::{Kind, Store};
use drivers::netlink::Netlink;
use drivers::{BridgeDriver, Driver, EndpointSpec, NetworkSpec, SimpleDriver, SubnetSpec};
use ipam::{Ipam, PoolId};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What the controller needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the store lives.
    pub state_dir: PathBuf,
    /// Where owned namespaces (`netns/`) and sandbox files (`sandboxes/`) go.
    pub run_dir: PathBuf,
    /// Default pools and the host's IPv6 prefix.
    pub ipam: ipam::Config,
    /// Name servers for sandboxes when neither the request nor the host gives any.
    pub fallback_dns: Vec<IpAddr>,
    /// The host's resolv.conf, read for sandboxes' name servers.
    pub host_resolv_conf: PathBuf,
}

/// A network's gate and the endpoint names taken on it.
#[derive(Debug, Default)]
pub(crate) struct NetSlot {
    gate: Arc<tokio::sync::RwLock<()>>,
    endpoint_names: Mutex<HashSet<String>>,
}

/// The controller. Share it in an `Arc`.
pub struct Controller {
    store: Arc<Store>,
    /// The thread commits run on.
    writer: writer::Writer,
    ipam: Arc<Mutex<Ipam<Buffer>>>,
    durable: tokio::sync::Mutex<u64>,
    slots: Mutex<HashMap<String, Arc<NetSlot>>>,
    network_names: Mutex<HashSet<String>>,
    sandbox_names: Mutex<HashSet<String>>,
    busy_endpoints: Mutex<HashSet<String>>,
    sandbox_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// A netlink connection inside each namespace netd made, opened when it made it
    /// (or at first use after a restart), so a join costs no thread. Adopted
    /// namespaces get none: a socket would keep a dead container's namespace alive.
    sandbox_netlink: Mutex<HashMap<String, Netlink>>,
    drivers: BTreeMap<&'static str, Arc<dyn Driver>>,
    nl: Netlink,
    settings: Settings,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section checks before it changes, so a panic inside one
    // cannot leave half-made state behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a reserved name from its set unless committed.
pub(crate) struct NameGuard<'a> {
    set: &'a Mutex<HashSet<String>>,
    name: Option<String>,
}

impl<'a> NameGuard<'a> {
    fn reserve(
        set: &'a Mutex<HashSet<String>>,
        name: &str,
        taken: impl FnOnce() -> String,
    ) -> Result<Self, ControllerError> {
        if !lock(set).insert(name.to_string()) {
            return Err(ControllerError::Conflict(taken()));
        }
        Ok(NameGuard {
            set,
            name: Some(name.to_string()),
        })
    }

    fn commit(mut self) {
        self.name = None;
    }
}

impl Drop for NameGuard<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            lock(self.set).remove(&name);
        }
    }
}

/// Allocator holdings made by an operation: given back unless committed.
pub(crate) struct Holdings<'a> {
    ctl: &'a Controller,
    pools: Vec<PoolId>,
    addresses: Vec<(PoolId, IpAddr)>,
}

impl<'a> Holdings<'a> {
    fn new(ctl: &'a Controller) -> Self {
        Holdings {
            ctl,
            pools: Vec::new(),
            addresses: Vec::new(),
        }
    }

    fn commit(mut self) {
        self.pools.clear();
        self.addresses.clear();
    }
}

impl Drop for Holdings<'_> {
    fn drop(&mut self) {
        if self.pools.is_empty() && self.addresses.is_empty() {
            return;
        }
        let mut ipam = self.ctl.lock_ipam();
        for (pool, addr) in self.addresses.drain(..).rev() {
            if let Err(e) = ipam.release_address(&pool, addr) {
                tracing::warn!(%pool, %addr, error = %e, "could not give back an address");
            }
        }
        for pool in self.pools.drain(..).rev() {
            if let Err(e) = ipam.release_pool(&pool) {
                tracing::warn!(%pool, error = %e, "could not give back a pool");
            }
        }
    }
}

impl Controller {
    /// Open the store under `settings.state_dir`, rebuild the allocator and the
    /// name sets. Call [`Controller::reconcile`] next to bring the kernel in line.
    pub fn open(settings: Settings, nl: Netlink) -> Result<Controller, ControllerError> {
        for dir in [
            settings.state_dir.clone(),
            settings.run_dir.join("netns"),
            settings.run_dir.join("sandboxes"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| ControllerError::Io {
                doing: "creating directory",
                path: dir.clone(),
                source,
            })?;
        }
        let store = Store::open(&settings.state_dir.join("netd.redb"))?;
        let ipam = store.load_ipam(settings.ipam.clone(), Buffer::default())?;
        let mut drivers: BTreeMap<&'static str, Arc<dyn Driver>> = BTreeMap::new();
        for d in [
            Arc::new(BridgeDriver::new(nl.clone())) as Arc<dyn Driver>,
            Arc::new(SimpleDriver::Host),
            Arc::new(SimpleDriver::None),
        ] {
            drivers.insert(d.kind(), d);
        }
        let ctl = Controller {
            store: Arc::new(store),
            writer: writer::Writer::start()?,
            ipam: Arc::new(Mutex::new(ipam)),
            durable: tokio::sync::Mutex::new(0),
            slots: Mutex::new(HashMap::new()),
            network_names: Mutex::new(HashSet::new()),
            sandbox_names: Mutex::new(HashSet::new()),
            busy_endpoints: Mutex::new(HashSet::new()),
            sandbox_locks: Mutex::new(HashMap::new()),
            sandbox_netlink: Mutex::new(HashMap::new()),
            drivers,
            nl,
            settings,
        };
        for net in ctl.networks()? {
            lock(&ctl.network_names).insert(net.name.clone());
            ctl.slot(&net.id);
        }
        for ep in ctl.endpoints()? {
            lock(&ctl.slot(&ep.network).endpoint_names).insert(ep.name.clone());
        }
        for sb in ctl.sandboxes()? {
            lock(&ctl.sandbox_names).insert(sb.name.clone());
        }
        Ok(ctl)
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn lock_ipam(&self) -> MutexGuard<'_, Ipam<Buffer>> {
        lock(&self.ipam)
    }

    /// Pools the allocator holds, for metrics and inspection.
    pub fn pools(&self) -> Vec<ipam::PoolInfo> {
        self.lock_ipam().pools()
    }

    /// The allocator, shared with the Docker IPAM face (which must
    /// [`Controller::persist_allocator`] after each call).
    pub fn allocator(&self) -> Arc<Mutex<Ipam<Buffer>>> {
        Arc::clone(&self.ipam)
    }

    /// Make every allocator change made so far durable.
    pub async fn persist_allocator(&self) -> Result<(), ControllerError> {
        let upto = self.ipam_seq();
        self.commit(Vec::new(), upto).await
    }

    fn slot(&self, network: &str) -> Arc<NetSlot> {
        Arc::clone(lock(&self.slots).entry(network.to_string()).or_default())
    }

    fn sandbox_lock(&self, sandbox: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            lock(&self.sandbox_locks)
                .entry(sandbox.to_string())
                .or_default(),
        )
    }

    fn driver(&self, name: &str) -> Result<Arc<dyn Driver>, ControllerError> {
        self.drivers.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.drivers.keys().copied().collect();
            ControllerError::Invalid(format!(
                "unknown driver {name:?}: use one of {}",
                known.join(", ")
            ))
        })
    }

    /// Every network.
    pub fn networks(&self) -> Result<Vec<NetworkRecord>, ControllerError> {
        Ok(self
            .store
            .list(Kind::Network)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Every endpoint.
    pub fn endpoints(&self) -> Result<Vec<EndpointRecord>, ControllerError> {
        Ok(self
            .store
            .list(Kind::Endpoint)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Every sandbox.
    pub fn sandboxes(&self) -> Result<Vec<SandboxRecord>, ControllerError> {
        Ok(self
            .store
            .list(Kind::Sandbox)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// A network by id, unique id prefix or name.
    pub fn network(&self, key: &str) -> Result<NetworkRecord, ControllerError> {
        self.find(Kind::Network, "network", key, |r: &NetworkRecord| {
            (&r.id, &r.name)
        })
    }

    /// An endpoint by id, unique id prefix or name.
    pub fn endpoint(&self, key: &str) -> Result<EndpointRecord, ControllerError> {
        self.find(Kind::Endpoint, "endpoint", key, |r: &EndpointRecord| {
            (&r.id, &r.name)
        })
    }

    /// A sandbox by id, unique id prefix or name.
    pub fn sandbox(&self, key: &str) -> Result<SandboxRecord, ControllerError> {
        self.find(Kind::Sandbox, "sandbox", key, |r: &SandboxRecord| {
            (&r.id, &r.name)
        })
    }

    fn find<T: DeserializeOwned>(
        &self,
        kind: Kind,
        what: &'static str,
        key: &str,
        id_name: impl Fn(&T) -> (&String, &String),
    ) -> Result<T, ControllerError> {
        if key.is_empty() {
            return Err(ControllerError::Invalid(format!("no {what} given")));
        }
        if is_full_id(key) {
            return self
                .store
                .get(kind, key)?
                .ok_or_else(|| ControllerError::not_found(what, key));
        }
        let all: Vec<T> = self.store.list(kind)?.into_iter().map(|(_, r)| r).collect();
        let mut by_prefix = Vec::new();
        for record in all {
            let (id, name) = id_name(&record);
            if name == key {
                return Ok(record);
            }
            if key.len() >= 4 && id.starts_with(key) {
                by_prefix.push(record);
            }
        }
        match by_prefix.len() {
            0 => Err(ControllerError::not_found(what, key)),
            1 => Ok(by_prefix.remove(0)),
            n => Err(ControllerError::Invalid(format!(
                "{what} id prefix {key:?} matches {n} {what}s; give more digits"
            ))),
        }
    }

    fn get<T: DeserializeOwned>(
        &self,
        kind: Kind,
        what: &'static str,
        id: &str,
    ) -> Result<T, ControllerError> {
        self.store
            .get(kind, id)?
            .ok_or_else(|| ControllerError::not_found(what, id))
    }
}

/// The driver's view of a network.
pub(crate) fn network_spec(net: &NetworkRecord) -> NetworkSpec {
    NetworkSpec {
        id: net.id.clone(),
        subnets: net
            .subnets
            .iter()
            .map(|s| SubnetSpec {
                subnet: s.subnet,
                gateway: s.gateway,
            })
            .collect(),
        options: net.options.clone(),
    }
}

/// The driver's view of an endpoint.
pub(crate) fn endpoint_spec(ep: &EndpointRecord) -> EndpointSpec {
    EndpointSpec {
        id: ep.id.clone(),
        addresses: ep.addresses.clone(),
        mac: crate::model::parse_mac(&ep.mac).ok(),
    }
}

/// The pool an address of `net` belongs to.
pub(crate) fn pool_of(net: &NetworkRecord, addr: IpAddr) -> Option<PoolId> {
    net.subnets
        .iter()
        .find(|s| s.subnet.contains(&addr))
        .and_then(|s| s.pool)
}

/// Make a directory path for a file under the run dir.
pub(crate) fn ensure_parent(path: &Path) -> Result<(), ControllerError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ControllerError::Io {
            doing: "creating directory",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}
