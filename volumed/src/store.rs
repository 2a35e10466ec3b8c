//! volumed's store: the shared `store` crate (redb records made durable by a
//! write-ahead log of one page per change: `volumed.redb` and `volumed.redb.wal`
//! under the state dir), one JSON record per volume, each change durable before it
//! is acknowledged.

use crate::model::VolumeRecord;
use crate::VolumeError;
use std::path::Path;

/// volumed's one kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Volumes;

impl store::Kind for Volumes {
    fn table_name(self) -> &'static str {
        "volumes"
    }

    fn code(self) -> u8 {
        0
    }

    fn from_code(code: u8) -> Option<Volumes> {
        (code == 0).then_some(Volumes)
    }
}

fn store_error(path: &Path) -> impl FnOnce(store::StoreError) -> VolumeError + '_ {
    move |e| match e {
        store::StoreError::Open {
            source: redb::DatabaseError::DatabaseAlreadyOpen,
            ..
        } => VolumeError::Conflict(format!(
            "another volumed uses the store {}; stop it first (this one changed nothing)",
            path.display()
        )),
        other => VolumeError::Store(
            plugin_api::PluginError::from_error(&other)
                .message()
                .to_string(),
        ),
    }
}

/// The store.
pub struct Store {
    inner: store::Store<Volumes>,
    path: std::path::PathBuf,
}

impl Store {
    /// Open (or make) `path`; its directory is made if missing.
    pub fn open(path: &Path) -> Result<Store, VolumeError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(VolumeError::io(format!("making {}", dir.display())))?;
        }
        let inner = store::Store::open(path).map_err(store_error(path))?;
        Ok(Store {
            inner,
            path: path.to_path_buf(),
        })
    }

    /// Every stored volume.
    pub fn load(&self) -> Result<Vec<VolumeRecord>, VolumeError> {
        let all: Vec<(String, VolumeRecord)> =
            self.inner.list(Volumes).map_err(store_error(&self.path))?;
        Ok(all.into_iter().map(|(_, v)| v).collect())
    }

    /// Write `record` durably.
    pub fn put(&self, record: &VolumeRecord) -> Result<(), VolumeError> {
        let mut batch = self.inner.batch().map_err(store_error(&self.path))?;
        batch
            .put(Volumes, &record.name, record)
            .map_err(store_error(&self.path))?;
        batch.commit().map_err(store_error(&self.path))
    }

    /// Delete volume `name` durably.
    pub fn delete(&self, name: &str) -> Result<(), VolumeError> {
        let mut batch = self.inner.batch().map_err(store_error(&self.path))?;
        batch
            .delete(Volumes, name)
            .map_err(store_error(&self.path))?;
        batch.commit().map_err(store_error(&self.path))
    }
}
