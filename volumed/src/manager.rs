//! The volume manager: volumes as records (durable before acknowledged), their
//! data under the data root, and mount references counted per caller ID.
//!
//! Order around the kernel: a backing is mounted before the first reference is
//! committed (and unmounted if the commit fails); the last reference's removal is
//! committed before the unmount. A crash in between leaves a mount without a
//! reference, which `reconcile` at start removes.

use crate::model::VolumeRecord;
use crate::options::{self, Backing};
use crate::paths::DataRoot;
use crate::store::Store;
use crate::{mounts, VolumeError};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What `reconcile` did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Volumes whose backing was mounted again (references held, mount gone).
    pub remounted: Vec<String>,
    /// Volumes whose backing was unmounted (mounted, no reference held).
    pub unmounted: Vec<String>,
    /// What failed.
    pub errors: Vec<String>,
}

/// Other volume plugins volumed fronts, by name, found the way dockerd finds
/// plugins at their first use (so they may start after volumed).
pub struct Remotes {
    names: Vec<String>,
    socket_dir: PathBuf,
    found: Mutex<BTreeMap<String, Arc<dyn plugin_api::VolumeDriver>>>,
}

impl Remotes {
    /// The plugins `names`, looked for in `socket_dir` and dockerd's spec dirs.
    pub fn new(names: Vec<String>, socket_dir: PathBuf) -> Remotes {
        Remotes {
            names,
            socket_dir,
            found: Mutex::new(BTreeMap::new()),
        }
    }

    /// None.
    pub fn none() -> Remotes {
        Remotes::new(Vec::new(), PathBuf::new())
    }

    fn knows(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    fn driver(&self, name: &str) -> Result<Arc<dyn plugin_api::VolumeDriver>, VolumeError> {
        if let Some(d) = lock(&self.found).get(name) {
            return Ok(Arc::clone(d));
        }
        let specs = [
            Path::new("/etc/docker/plugins"),
            Path::new("/usr/lib/docker/plugins"),
        ];
        let addr = plugin_api::client::discover(name, &self.socket_dir, &specs).map_err(|e| {
            VolumeError::Invalid(format!(
                "volume driver {name}: {e} (is the plugin running?)"
            ))
        })?;
        let driver: Arc<dyn plugin_api::VolumeDriver> = Arc::new(plugin_api::RemoteDriver::new(
            plugin_api::PluginClient::new(addr),
        ));
        lock(&self.found).insert(name.to_string(), Arc::clone(&driver));
        Ok(driver)
    }
}

fn remote_error(driver: &str, e: plugin_api::PluginError) -> VolumeError {
    let message = format!("volume driver {driver}: {}", e.message());
    if e.status().is_client_error() {
        VolumeError::Invalid(message)
    } else {
        VolumeError::Conflict(message)
    }
}

/// The manager. Share it in an `Arc`.
pub struct Manager {
    root: DataRoot,
    store: Store,
    remotes: Remotes,
    /// Project quota under the data root, or what it lacks.
    quota: Result<crate::quota::ProjectQuota, String>,
    volumes: Mutex<BTreeMap<String, VolumeRecord>>,
    /// One lock per volume: its operations run one at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Manager {
    /// Open the store under `state_dir` and the data root `data_root`, and load
    /// every volume (before any socket serves: dockerd asks for each at its start).
    pub fn open(
        state_dir: &Path,
        data_root: &Path,
        remotes: Remotes,
    ) -> Result<Manager, VolumeError> {
        let root = DataRoot::open(data_root)?;
        let store = Store::open(&state_dir.join("volumed.redb"))?;
        let volumes: BTreeMap<String, VolumeRecord> = store
            .load()?
            .into_iter()
            .map(|v| (v.name.clone(), v))
            .collect();
        let sized: Vec<String> = volumes
            .values()
            .filter(|v| matches!(Self::backing(v), Backing::Quota { .. }))
            .map(|v| v.name.clone())
            .collect();
        let quota = crate::quota::ProjectQuota::probe(&root, &sized);
        if let (Err(missing), false) = (&quota, sized.is_empty()) {
            tracing::warn!(
                volumes = sized.len(),
                "volumes with a size were made on project quota, and now {missing}: their sizes are not enforced"
            );
        }
        Ok(Manager {
            root,
            store,
            remotes,
            quota,
            volumes: Mutex::new(volumes),
            locks: Mutex::new(HashMap::new()),
        })
    }

    fn volume_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(lock(&self.locks).entry(name.to_string()).or_default())
    }

    /// Volume `name`.
    pub fn get(&self, name: &str) -> Result<VolumeRecord, VolumeError> {
        lock(&self.volumes)
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<VolumeRecord> {
        lock(&self.volumes).values().cloned().collect()
    }

    fn backing(v: &VolumeRecord) -> Backing {
        // Checked at create; a record that no longer parses is served plain.
        options::parse(&v.options).unwrap_or(Backing::Plain)
    }

    /// Create volume `name` (a generated name if none). The same name again with
    /// the same options and labels returns it; with others it is refused.
    pub async fn create(
        &self,
        name: Option<&str>,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<VolumeRecord, VolumeError> {
        self.create_with(name, None, options, labels).await
    }

    /// [`Manager::create`] with a driver: `local` (or none), or a plugin volumed
    /// fronts (`--remote-driver`), which makes the volume and is asked for it
    /// at every mount.
    pub async fn create_with(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<VolumeRecord, VolumeError> {
        let (name, anonymous) = match name {
            Some(n) if !n.is_empty() => (n.to_string(), false),
            _ => (random_name()?, true),
        };
        options::check_name(&name)?;
        let driver = driver.filter(|d| !d.is_empty() && *d != "local");
        if let Some(d) = driver {
            if !self.remotes.knows(d) {
                return Err(VolumeError::Invalid(format!(
                    "driver {d:?}: volumed serves local volumes and fronts only the plugins named with --remote-driver"
                )));
            }
            return self
                .create_remote(name, d, options, labels, anonymous)
                .await;
        }
        let backing = options::parse(&options)?;
        let vlock = self.volume_lock(&name);
        let _held = vlock.lock().await;
        if let Some(existing) = lock(&self.volumes).get(&name).cloned() {
            if existing.options == options && (labels.is_empty() || existing.labels == labels) {
                return Ok(existing);
            }
            return Err(VolumeError::Conflict(format!(
                "volume {name} exists with other options or labels ({:?}, labels {:?}); remove it first or use another name",
                existing.options, existing.labels
            )));
        }
        let quota = match (&backing, &self.quota) {
            (Backing::Quota { .. }, Err(missing)) => {
                let size = options.get("size").map(String::as_str).unwrap_or("");
                return Err(VolumeError::Invalid(format!(
                    "option size={size}: a size on a plain volume needs a project quota under the data root, and {missing}; a tmpfs (type=tmpfs device=tmpfs o=size={size}) or a volume of its own image (type=ext4 device=image size={size}) holds a size on any host"
                )));
            }
            (Backing::Quota { size }, Ok(q)) => Some((q, *size)),
            _ => None,
        };
        let data = self.root.make(&name)?;
        let limited = match quota {
            Some((q, size)) => q.limit(&self.root, &name, size),
            // A directory a crash left, taken by a volume with no size, keeps
            // no project of the old one.
            None => {
                if let Ok(q) = &self.quota {
                    q.clear(&self.root, &name);
                }
                Ok(())
            }
        };
        if let Err(e) = limited {
            let _ = self.root.remove(&name);
            return Err(e);
        }
        if let Backing::Image { fstype, size, .. } = &backing {
            let image = self.root.path().join(&name).join("image");
            if let Err(e) = crate::image::make(&image, fstype, *size) {
                let _ = self.root.remove(&name);
                return Err(e);
            }
        }
        let record = VolumeRecord {
            name: name.clone(),
            driver: "local".into(),
            labels,
            options,
            created: now(),
            anonymous,
            refs: BTreeMap::new(),
            mountpoint: data.display().to_string(),
        };
        if let Err(e) = self.store.put(&record) {
            let _ = self.root.remove(&name);
            return Err(e);
        }
        lock(&self.volumes).insert(name, record.clone());
        Ok(record)
    }

    async fn create_remote(
        &self,
        name: String,
        driver: &str,
        options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<VolumeRecord, VolumeError> {
        let vlock = self.volume_lock(&name);
        let _held = vlock.lock().await;
        if let Some(existing) = lock(&self.volumes).get(&name).cloned() {
            if existing.driver == driver && existing.options == options {
                return Ok(existing);
            }
            return Err(VolumeError::Conflict(format!(
                "volume {name} exists with driver {} and options {:?}",
                existing.driver, existing.options
            )));
        }
        let remote = self.remotes.driver(driver)?;
        remote
            .create(plugin_api::protocol::volume::CreateVolumeRequest {
                name: name.clone(),
                opts: options.clone(),
            })
            .await
            .map_err(|e| remote_error(driver, e))?;
        let record = VolumeRecord {
            name: name.clone(),
            driver: driver.to_string(),
            labels,
            options,
            created: now(),
            anonymous,
            refs: BTreeMap::new(),
            mountpoint: String::new(),
        };
        if let Err(e) = self.store.put(&record) {
            let _ = remote
                .remove(plugin_api::protocol::volume::VolumeRequest { name })
                .await;
            return Err(e);
        }
        lock(&self.volumes).insert(record.name.clone(), record.clone());
        Ok(record)
    }

    fn remote_of(
        &self,
        v: &VolumeRecord,
    ) -> Option<Result<Arc<dyn plugin_api::VolumeDriver>, VolumeError>> {
        (v.driver != "local").then(|| self.remotes.driver(&v.driver))
    }

    /// Take a reference for caller `id` (empty for callers that send none);
    /// mount the backing at the first. Returns the data path.
    pub async fn mount(&self, name: &str, id: &str) -> Result<PathBuf, VolumeError> {
        let vlock = self.volume_lock(name);
        let _held = vlock.lock().await;
        let mut v = self.get(name)?;
        if let Some(remote) = self.remote_of(&v) {
            let answer = remote?
                .mount(plugin_api::protocol::volume::MountRequest {
                    name: name.to_string(),
                    id: id.to_string(),
                })
                .await
                .map_err(|e| remote_error(&v.driver, e))?;
            *v.refs.entry(id.to_string()).or_default() += 1;
            v.mountpoint = answer.mountpoint.clone();
            self.store.put(&v)?;
            lock(&self.volumes).insert(name.to_string(), v);
            return Ok(PathBuf::from(answer.mountpoint));
        }
        let data = self.root.check(name)?;
        let backing = Self::backing(&v);
        if let (Backing::Quota { size }, Ok(q)) = (&backing, &self.quota) {
            // Set again at each mount, as Docker does: another program on the
            // filesystem may have reset it.
            q.limit(&self.root, name, *size)?;
        }
        // Mounted when it is not (the first reference, or a backing reconcile
        // left for its next use), off the async threads: an NFS server may be
        // slow to answer.
        let attached = backing.mounted() && !mounts::is_mounted(&data) && {
            let (b, d) = (backing.clone(), data.clone());
            tokio::task::spawn_blocking(move || mounts::attach(&b, &d))
                .await
                .map_err(|e| VolumeError::Io {
                    doing: format!("mounting {}", data.display()),
                    source: std::io::Error::other(e.to_string()),
                })??;
            true
        };
        *v.refs.entry(id.to_string()).or_default() += 1;
        if let Err(e) = self.store.put(&v) {
            if attached {
                let _ = mounts::detach(&data);
            }
            return Err(e);
        }
        lock(&self.volumes).insert(name.to_string(), v);
        Ok(data)
    }

    /// Drop one reference of caller `id`; unmount the backing at the last. An ID
    /// that holds none (a restarted engine's) is not an error, and counts never go
    /// below zero.
    pub async fn unmount(&self, name: &str, id: &str) -> Result<(), VolumeError> {
        let vlock = self.volume_lock(name);
        let _held = vlock.lock().await;
        let mut v = self.get(name)?;
        if !v.refs.contains_key(id) {
            return Ok(());
        }
        if let Some(remote) = self.remote_of(&v) {
            remote?
                .unmount(plugin_api::protocol::volume::MountRequest {
                    name: name.to_string(),
                    id: id.to_string(),
                })
                .await
                .map_err(|e| remote_error(&v.driver, e))?;
        }
        let Some(n) = v.refs.get_mut(id) else {
            return Ok(());
        };
        *n -= 1;
        if *n == 0 {
            v.refs.remove(id);
        }
        self.store.put(&v)?;
        let last = v.references() == 0 && v.driver == "local";
        let backing = Self::backing(&v);
        lock(&self.volumes).insert(name.to_string(), v);
        if last && backing.mounted() {
            mounts::detach(&self.root.data_path(name))?;
        }
        Ok(())
    }

    /// Remove volume `name` and its data; refused while referenced, naming who
    /// holds it.
    pub async fn remove(&self, name: &str) -> Result<VolumeRecord, VolumeError> {
        let vlock = self.volume_lock(name);
        let _held = vlock.lock().await;
        let v = self.get(name)?;
        if v.references() > 0 {
            return Err(VolumeError::Conflict(format!(
                "volume {name} is in use by {}: unmount it first",
                v.holders()
            )));
        }
        if let Some(remote) = self.remote_of(&v) {
            remote?
                .remove(plugin_api::protocol::volume::VolumeRequest {
                    name: name.to_string(),
                })
                .await
                .map_err(|e| remote_error(&v.driver, e))?;
            self.store.delete(name)?;
            lock(&self.volumes).remove(name);
            return Ok(v);
        }
        let data = self.root.data_path(name);
        // Only a backing is ever mounted there (a plain volume's directory is
        // not): the mount table is read for those alone.
        if Self::backing(&v).mounted() && mounts::is_mounted(&data) {
            mounts::detach(&data)?;
        }
        if let (Backing::Quota { .. }, Ok(q)) = (Self::backing(&v), &self.quota) {
            q.clear(&self.root, name);
        }
        self.store.delete(name)?;
        lock(&self.volumes).remove(name);
        // The record is gone: a crash now leaves only a directory, which the next
        // create of the name takes as it is.
        if let Err(e) = self.root.remove(name) {
            tracing::warn!(volume = %name, error = %e, "could not remove a volume's data");
        }
        Ok(v)
    }

    /// Drop every reference caller `id` holds (a container that ended);
    /// the volumes it released, by name.
    pub async fn release(&self, id: &str) -> Result<Vec<String>, VolumeError> {
        let held: Vec<(String, u32)> = self
            .list()
            .into_iter()
            .filter_map(|v| v.refs.get(id).map(|n| (v.name.clone(), *n)))
            .collect();
        let mut released = Vec::new();
        for (name, n) in held {
            for _ in 0..n {
                self.unmount(&name, id).await?;
            }
            released.push(name);
        }
        Ok(released)
    }

    /// Remove volumes nobody references: anonymous ones, or all with `all`.
    pub async fn prune(&self, all: bool) -> Vec<String> {
        let names: Vec<String> = self
            .list()
            .into_iter()
            .filter(|v| v.references() == 0 && (all || v.anonymous))
            .map(|v| v.name)
            .collect();
        let mut removed = Vec::new();
        for n in names {
            if self.remove(&n).await.is_ok() {
                removed.push(n);
            }
        }
        removed
    }

    /// Bring the kernel in line with the references at start: a referenced
    /// backing that is not mounted is mounted again; a mounted one nobody
    /// references (a crash between commit and unmount) is unmounted.
    pub fn reconcile(&self) -> Reconciled {
        let mut out = Reconciled::default();
        for v in self.list() {
            let backing = Self::backing(&v);
            if v.driver != "local" || !backing.mounted() {
                continue;
            }
            let data = self.root.data_path(&v.name);
            let mounted = mounts::is_mounted(&data);
            let result = match (v.references() > 0, mounted) {
                // Not at start: a server that is down (the network not up yet
                // at boot) would hold every socket closed. Its next mount does it.
                (true, false) if matches!(backing, Backing::Nfs { .. }) => {
                    tracing::info!(volume = %v.name, "an NFS volume is mounted again at its next use");
                    Ok(())
                }
                (true, false) => {
                    mounts::attach(&backing, &data).map(|_| out.remounted.push(v.name.clone()))
                }
                (false, true) => mounts::detach(&data).map(|_| out.unmounted.push(v.name.clone())),
                _ => Ok(()),
            };
            if let Err(e) = result {
                out.errors.push(format!("volume {}: {e}", v.name));
            }
        }
        out
    }
}

/// 64 hex digits, as Docker names anonymous volumes.
fn random_name() -> Result<String, VolumeError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| VolumeError::Io {
        doing: "making a volume name".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
