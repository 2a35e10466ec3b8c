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

/// The manager. Share it in an `Arc`.
pub struct Manager {
    root: DataRoot,
    store: Store,
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
    pub fn open(state_dir: &Path, data_root: &Path) -> Result<Manager, VolumeError> {
        let store = Store::open(&state_dir.join("volumed.redb"))?;
        let root = DataRoot::open(data_root)?;
        let volumes = store
            .load()?
            .into_iter()
            .map(|v| (v.name.clone(), v))
            .collect();
        Ok(Manager {
            root,
            store,
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
        let (name, anonymous) = match name {
            Some(n) if !n.is_empty() => (n.to_string(), false),
            _ => (random_name()?, true),
        };
        options::check_name(&name)?;
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
        let data = self.root.make(&name)?;
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

    /// Take a reference for caller `id` (empty for callers that send none);
    /// mount the backing at the first. Returns the data path.
    pub async fn mount(&self, name: &str, id: &str) -> Result<PathBuf, VolumeError> {
        let vlock = self.volume_lock(name);
        let _held = vlock.lock().await;
        let mut v = self.get(name)?;
        let data = self.root.check(name)?;
        let backing = Self::backing(&v);
        let first = v.references() == 0;
        if first && backing.mounted() && !mounts::is_mounted(&data) {
            mounts::attach(&backing, &data)?;
        }
        *v.refs.entry(id.to_string()).or_default() += 1;
        if let Err(e) = self.store.put(&v) {
            if first && backing.mounted() {
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
        let Some(n) = v.refs.get_mut(id) else {
            return Ok(());
        };
        *n -= 1;
        if *n == 0 {
            v.refs.remove(id);
        }
        self.store.put(&v)?;
        let last = v.references() == 0;
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
        let data = self.root.data_path(name);
        if mounts::is_mounted(&data) {
            mounts::detach(&data)?;
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
            if !backing.mounted() {
                continue;
            }
            let data = self.root.data_path(&v.name);
            let mounted = mounts::is_mounted(&data);
            let result = match (v.references() > 0, mounted) {
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
