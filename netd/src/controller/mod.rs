//! The controller: networks, endpoints and sandboxes (the Container Network Model)
//! over the allocator, the drivers and the store. It knows nothing of HTTP; the
//! native API, the Docker face and the CLI are adapters onto it.
//!
//! Locking: the allocator sits behind a plain mutex held for microseconds. Each
//! network has a gate: joins and endpoint changes hold it shared (so attaches to one
//! network run in parallel), deleting the network holds it exclusively. Each sandbox
//! has a mutex, so its interface names are handed out in order. Names are reserved
//! in sets before any work starts. No lock is held across another network's work.

mod addressing;
mod allocation;
mod dns;
mod endpoints;
pub mod engine;
mod error;
mod firewall;
mod networks;
pub(crate) mod overlay_addresses;
mod persist;
mod reconcile;
mod records;
mod requests;
mod sandboxes;
mod writer;

pub use engine::{EngineJoin, EnginePool, EnginePoolRequest, EngineView, SyncReport};
pub use error::{ControllerError, ErrorKind};
pub use reconcile::Reconciled;
pub use requests::{
    check_aliases, check_interface_name, Attach, Attachment, EndpointCreate, Join, NetworkCreate,
    Ports, SandboxCreate, SubnetRequest,
};

use crate::model::{EndpointRecord, NetworkRecord, SandboxRecord};
use crate::store::Store;
use drivers::netlink::{Netlink, RouteWatch};
use drivers::{BridgeDriver, Driver, EndpointSpec, Mark, NetworkSpec, SimpleDriver, SubnetSpec};
use ipam::Ipam;
use records::Records;
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
    /// Where remote network plugins' sockets are found (`remote:NAME` drivers),
    /// as dockerd finds them.
    pub plugin_dir: PathBuf,
}

/// A network's gate and the endpoint names taken on it.
#[derive(Debug, Default)]
pub(crate) struct NetSlot {
    gate: Arc<tokio::sync::RwLock<()>>,
    endpoint_names: Mutex<HashSet<String>>,
    /// Addresses and MACs that endpoints being made will hold (`addr IP`, `mac
    /// MAC`): checked against the records and claimed here, so two concurrent
    /// operations cannot both pass the check.
    claims: Mutex<HashSet<String>>,
}

impl NetSlot {
    /// Claim `what` (an address or a MAC) until the returned guard drops.
    pub(crate) fn claim(
        &self,
        what: String,
        network: &str,
    ) -> Result<NameGuard<'_>, ControllerError> {
        NameGuard::reserve(&self.claims, &what, || {
            format!("{what} is being given to another endpoint of network {network}; try again")
        })
    }
}

/// The controller. Share it in an `Arc`.
pub struct Controller {
    store: Arc<Store>,
    /// The thread commits run on.
    writer: writer::Writer,
    /// What the store holds, in memory.
    records: Arc<Mutex<Records>>,
    /// Derived from the records at start; see `allocation`.
    ipam: Mutex<Ipam>,
    /// Records that could not be put back into the allocator at start.
    ipam_problems: Vec<String>,
    /// Serialises what decides over dockerd's pools and addresses (a release
    /// deferred or not, a pool released or used): each decision and its commit
    /// happen with no other in between.
    engine_ipam: tokio::sync::Mutex<()>,
    /// Held while an overlay network's blocks grow, one claim at a time.
    overlay_growth: tokio::sync::Mutex<()>,
    slots: Mutex<HashMap<String, Arc<NetSlot>>>,
    network_names: Mutex<HashSet<String>>,
    /// Links networks are made of (bridges), stored or being made: no two share one.
    network_links: Mutex<HashSet<String>>,
    sandbox_names: Mutex<HashSet<String>>,
    /// Inode numbers of the namespaces sandboxes hold (or are adopting).
    sandbox_namespaces: Mutex<HashSet<String>>,
    busy_endpoints: Mutex<HashSet<String>>,
    sandbox_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// A netlink connection inside each namespace netd made, opened when it made it
    /// (or at first use after a restart), so a join costs no thread. Adopted
    /// namespaces get none: a socket would keep a dead container's namespace alive.
    sandbox_netlink: Mutex<HashMap<String, Netlink>>,
    drivers: BTreeMap<&'static str, Arc<dyn Driver>>,
    /// `remote:NAME` drivers, found at first use.
    remotes: Mutex<BTreeMap<String, Arc<dyn Driver>>>,
    nl: Netlink,
    /// The firewall, started after reconcile (unset with `--firewall off`).
    firewall: std::sync::OnceLock<Arc<::firewall::Firewall>>,
    /// The networks' DNS responders, started after reconcile.
    dns: std::sync::OnceLock<Arc<crate::dns::Service>>,
    /// The cluster agent, with `--cluster-store` (overlay networks).
    overlay: std::sync::OnceLock<Arc<crate::overlay::Agent>>,
    /// The host's routes, kept current (`None` if watching failed: then listed).
    routes: Option<RouteWatch>,
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

impl Controller {
    /// Open the store under `settings.state_dir`, rebuild the allocator and the
    /// name sets. Call [`Controller::reconcile`] next to bring the kernel in line.
    pub fn open(settings: Settings, nl: Netlink) -> Result<Controller, ControllerError> {
        let new_state_dir = !settings.state_dir.exists();
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
        if new_state_dir {
            // Made here: root's only, like the store in it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&settings.state_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|source| ControllerError::Io {
                doing: "making private",
                path: settings.state_dir.clone(),
                source,
            })?;
        }
        let store = crate::store::open(&settings.state_dir.join("netd.redb"))?;
        let records = Records::load(&store)?;
        let (ipam, ipam_problems) = allocation::derive(settings.ipam.clone(), &records)
            .map_err(ControllerError::ipam("building the address allocator"))?;
        for p in &ipam_problems {
            tracing::error!(problem = %p, "a stored record could not take its addresses");
        }
        let mark = Mark::of_instance(store.instance());
        let mut drivers: BTreeMap<&'static str, Arc<dyn Driver>> = BTreeMap::new();
        for d in [
            Arc::new(BridgeDriver::new(nl.clone(), mark)) as Arc<dyn Driver>,
            Arc::new(SimpleDriver::Host),
            Arc::new(SimpleDriver::None),
        ] {
            drivers.insert(d.kind(), d);
        }
        let ctl = Controller {
            store: Arc::new(store),
            writer: writer::Writer::start()?,
            records: Arc::new(Mutex::new(records)),
            ipam: Mutex::new(ipam),
            ipam_problems,
            engine_ipam: tokio::sync::Mutex::new(()),
            overlay_growth: tokio::sync::Mutex::new(()),
            slots: Mutex::new(HashMap::new()),
            network_names: Mutex::new(HashSet::new()),
            network_links: Mutex::new(HashSet::new()),
            sandbox_names: Mutex::new(HashSet::new()),
            sandbox_namespaces: Mutex::new(HashSet::new()),
            busy_endpoints: Mutex::new(HashSet::new()),
            sandbox_locks: Mutex::new(HashMap::new()),
            sandbox_netlink: Mutex::new(HashMap::new()),
            drivers,
            remotes: Mutex::new(BTreeMap::new()),
            firewall: std::sync::OnceLock::new(),
            dns: std::sync::OnceLock::new(),
            overlay: std::sync::OnceLock::new(),
            routes: match nl.watch_routes() {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "not watching routes; each subnet choice lists them");
                    None
                }
            },
            nl,
            settings,
        };
        for net in ctl.networks() {
            lock(&ctl.network_names).insert(net.name.clone());
            if let Ok(d) = ctl.driver(&net.driver) {
                lock(&ctl.network_links).extend(d.network_links(&network_spec(&net)));
            }
            ctl.slot(&net.id);
        }
        for ep in ctl.endpoints() {
            lock(&ctl.slot(&ep.network).endpoint_names).insert(ep.name.clone());
        }
        for sb in ctl.sandboxes() {
            lock(&ctl.sandbox_names).insert(sb.name.clone());
            if let Some(ino) = sb.netns_inode {
                lock(&ctl.sandbox_namespaces).insert(ino.to_string());
            }
        }
        Ok(ctl)
    }

    /// Serve overlay networks through `agent` (set once, before serving).
    pub fn set_overlay(&self, agent: Arc<crate::overlay::Agent>) {
        let _ = self.overlay.set(agent);
    }

    /// The store's instance id (this host's id in a cluster).
    pub fn instance(&self) -> &str {
        self.store.instance()
    }

    /// The cluster agent, if netd runs in a cluster.
    pub fn overlay(&self) -> Option<&Arc<crate::overlay::Agent>> {
        self.overlay.get()
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn lock_ipam(&self) -> MutexGuard<'_, Ipam> {
        lock(&self.ipam)
    }

    pub(crate) fn records(&self) -> MutexGuard<'_, Records> {
        lock(&self.records)
    }

    /// Pools the allocator holds, for metrics and inspection.
    pub fn pools(&self) -> Vec<ipam::PoolInfo> {
        self.lock_ipam().pools()
    }

    /// The allocator's pools with the addresses handed out of each: what
    /// `GET /v1/pools` shows, and what a check of allocator against records reads.
    pub fn pool_states(&self) -> Vec<ipam::PoolState> {
        self.lock_ipam().state().pools
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
        if let Some(d) = self.drivers.get(name) {
            return Ok(Arc::clone(d));
        }
        if let Some(plugin) = name.strip_prefix(drivers::remote::PREFIX) {
            return self.remote_driver(name, plugin);
        }
        let known: Vec<&str> = self.drivers.keys().copied().collect();
        Err(ControllerError::Invalid(format!(
            "unknown driver {name:?}: use one of {}, or remote:NAME for a network plugin",
            known.join(", ")
        )))
    }

    /// The driver `remote:NAME`: plugin NAME, found as dockerd finds plugins (a
    /// socket in the plugin directory, or a spec file), at its first use.
    fn remote_driver(&self, name: &str, plugin: &str) -> Result<Arc<dyn Driver>, ControllerError> {
        let mut remotes = lock(&self.remotes);
        if let Some(d) = remotes.get(name) {
            return Ok(Arc::clone(d));
        }
        let specs = [
            Path::new("/etc/docker/plugins"),
            Path::new("/usr/lib/docker/plugins"),
        ];
        let addr = plugin_api::client::discover(plugin, &self.settings.plugin_dir, &specs)
            .map_err(|e| {
                ControllerError::Invalid(format!("driver {name}: {e} (is the plugin running?)"))
            })?;
        let client: Arc<dyn plugin_api::NetworkDriver> = Arc::new(plugin_api::RemoteDriver::new(
            plugin_api::PluginClient::new(addr),
        ));
        // One name per plugin found, kept for the daemon's life.
        let kind: &'static str = Box::leak(name.to_string().into_boxed_str());
        let driver: Arc<dyn Driver> = Arc::new(drivers::remote::RemoteNetworkDriver::new(
            kind,
            client,
            self.nl.clone(),
            Mark::of_instance(self.store.instance()),
        ));
        remotes.insert(name.to_string(), Arc::clone(&driver));
        Ok(driver)
    }

    /// Every network, by id.
    pub fn networks(&self) -> Vec<NetworkRecord> {
        self.records().networks.values().cloned().collect()
    }

    /// Every endpoint, by id.
    pub fn endpoints(&self) -> Vec<EndpointRecord> {
        self.records().endpoints.values().cloned().collect()
    }

    /// A network's endpoints, by id.
    pub fn network_endpoints(&self, network: &str) -> Vec<EndpointRecord> {
        self.records().endpoints_of(network).cloned().collect()
    }

    /// Every sandbox, by id.
    pub fn sandboxes(&self) -> Vec<SandboxRecord> {
        self.records().sandboxes.values().cloned().collect()
    }

    /// Every record of `kind` (networks, endpoints or sandboxes) as a JSON array,
    /// from the JSON stored: what the API lists, encoded once, at commit.
    pub fn list_json(&self, kind: crate::store::Kind) -> Vec<u8> {
        self.records().json_list(kind)
    }

    /// How many endpoints are joined to a sandbox.
    pub fn joined_count(&self) -> usize {
        self.records()
            .endpoints
            .values()
            .filter(|e| e.join.is_some())
            .count()
    }

    /// How many networks, endpoints and sandboxes there are.
    pub fn counts(&self) -> (usize, usize, usize) {
        let r = self.records();
        (r.networks.len(), r.endpoints.len(), r.sandboxes.len())
    }

    /// A network by id, name or unique id prefix.
    pub fn network(&self, key: &str) -> Result<NetworkRecord, ControllerError> {
        let r = self.records();
        let found = find(&r.networks, "network", key, |name| {
            r.network_named(name)
                .into_iter()
                .map(String::from)
                .collect()
        });
        found
    }

    /// The network an attach names: by name only when it says so.
    pub(crate) fn attach_network(&self, req: &Attach) -> Result<NetworkRecord, ControllerError> {
        if !req.by_name {
            return self.network(&req.network);
        }
        let r = self.records();
        r.network_named(&req.network)
            .and_then(|id| r.networks.get(id))
            .cloned()
            .ok_or_else(|| ControllerError::not_found("network", &req.network))
    }

    /// An endpoint by id, name or unique id prefix.
    pub fn endpoint(&self, key: &str) -> Result<EndpointRecord, ControllerError> {
        let r = self.records();
        let found = find(&r.endpoints, "endpoint", key, |name| {
            r.endpoints_named(name)
                .into_iter()
                .map(String::from)
                .collect()
        });
        found
    }

    /// A sandbox by id, name or unique id prefix.
    pub fn sandbox(&self, key: &str) -> Result<SandboxRecord, ControllerError> {
        let r = self.records();
        let found = find(&r.sandboxes, "sandbox", key, |name| {
            r.sandbox_named(name)
                .into_iter()
                .map(String::from)
                .collect()
        });
        found
    }

    /// The stored network `id`.
    pub(crate) fn network_by_id(&self, id: &str) -> Result<NetworkRecord, ControllerError> {
        self.records()
            .networks
            .get(id)
            .cloned()
            .ok_or_else(|| ControllerError::not_found("network", id))
    }

    /// The stored endpoint `id`.
    pub(crate) fn endpoint_by_id(&self, id: &str) -> Result<EndpointRecord, ControllerError> {
        self.records()
            .endpoints
            .get(id)
            .cloned()
            .ok_or_else(|| ControllerError::not_found("endpoint", id))
    }

    /// The stored sandbox `id`.
    pub(crate) fn sandbox_by_id(&self, id: &str) -> Result<SandboxRecord, ControllerError> {
        self.records()
            .sandboxes
            .get(id)
            .cloned()
            .ok_or_else(|| ControllerError::not_found("sandbox", id))
    }
}

/// Look `key` up as Docker does: a full id, then a name, then a unique id prefix
/// (of at least 4 hex digits).
fn find<T: Clone>(
    map: &BTreeMap<String, T>,
    what: &'static str,
    key: &str,
    named: impl Fn(&str) -> Vec<String>,
) -> Result<T, ControllerError> {
    if key.is_empty() {
        return Err(ControllerError::Invalid(format!("no {what} given")));
    }
    if let Some(r) = map.get(key) {
        return Ok(r.clone());
    }
    match named(key).as_slice() {
        [] => {}
        [id] => {
            if let Some(r) = map.get(id) {
                return Ok(r.clone());
            }
        }
        ids => {
            return Err(ControllerError::Invalid(format!(
                "{} {what}s are named {key:?} (on different networks); give an id",
                ids.len()
            )))
        }
    }
    if key.len() >= 4 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut matches = map
            .range(key.to_string()..)
            .take_while(|(id, _)| id.starts_with(key));
        if let Some((_, first)) = matches.next() {
            return match matches.next() {
                None => Ok(first.clone()),
                Some(_) => Err(ControllerError::Invalid(format!(
                    "{what} id prefix {key:?} matches more than one {what}; give more digits"
                ))),
            };
        }
    }
    Err(ControllerError::not_found(what, key))
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
        data: net.driver_data.clone(),
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
