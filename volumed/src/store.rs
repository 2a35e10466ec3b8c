//! The store: one redb file under the state dir, one JSON record per volume,
//! each change committed durably before it is acknowledged.

use crate::model::VolumeRecord;
use crate::VolumeError;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");

fn store_error(e: impl std::fmt::Display) -> VolumeError {
    VolumeError::Store(e.to_string())
}

/// The store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Open (or make) `path`, mode 0600.
    pub fn open(path: &Path) -> Result<Store, VolumeError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(VolumeError::io(format!("making {}", dir.display())))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => VolumeError::Conflict(format!(
                "another volumed uses the store {}; stop it first (this one changed nothing)",
                path.display()
            )),
            other => store_error(other),
        })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            VolumeError::io(format!("making {} private", path.display())),
        )?;
        let tx = db.begin_write().map_err(store_error)?;
        tx.open_table(VOLUMES).map_err(store_error)?;
        tx.commit().map_err(store_error)?;
        Ok(Store { db })
    }

    /// Every stored volume.
    pub fn load(&self) -> Result<Vec<VolumeRecord>, VolumeError> {
        let tx = self.db.begin_read().map_err(store_error)?;
        let table = tx.open_table(VOLUMES).map_err(store_error)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(store_error)? {
            let (key, value) = row.map_err(store_error)?;
            let record: VolumeRecord = serde_json::from_slice(value.value()).map_err(|e| {
                VolumeError::Store(format!("volume {}: unreadable record: {e}", key.value()))
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// Write `record` durably.
    pub fn put(&self, record: &VolumeRecord) -> Result<(), VolumeError> {
        let json = serde_json::to_vec(record).map_err(store_error)?;
        let tx = self.db.begin_write().map_err(store_error)?;
        {
            let mut table = tx.open_table(VOLUMES).map_err(store_error)?;
            table
                .insert(record.name.as_str(), json.as_slice())
                .map_err(store_error)?;
        }
        tx.commit().map_err(store_error)
    }

    /// Delete volume `name` durably.
    pub fn delete(&self, name: &str) -> Result<(), VolumeError> {
        let tx = self.db.begin_write().map_err(store_error)?;
        {
            let mut table = tx.open_table(VOLUMES).map_err(store_error)?;
            table.remove(name).map_err(store_error)?;
        }
        tx.commit().map_err(store_error)
    }
}
