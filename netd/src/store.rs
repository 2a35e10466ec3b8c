//! netd's embedded store: one redb file under the state dir.
//!
//! Records are JSON values keyed by id in one table per kind. Every write is a
//! transaction committed with redb's default (immediate) durability, so a change is
//! on disk before the caller acknowledges it. The allocator's changes go to a journal
//! table in the same transaction as the records they belong to; on start the journal
//! is replayed onto the last snapshot and folded into a new one.

use ipam::{Change, Config, Ipam, Journal, State};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The kinds of record netd keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Networks by id.
    Network,
    /// Endpoints by id.
    Endpoint,
    /// Sandboxes by id.
    Sandbox,
}

impl Kind {
    fn table(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Kind::Network => TableDefinition::new("networks"),
            Kind::Endpoint => TableDefinition::new("endpoints"),
            Kind::Sandbox => TableDefinition::new("sandboxes"),
        }
    }
}

const IPAM_JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("ipam_journal");
const IPAM_SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("ipam_snapshot");
const SNAPSHOT_KEY: &str = "state";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("opening the store {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or write failed.
    #[error("store {doing}")]
    Db {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: redb::Error,
    },
    /// A record could not be encoded or decoded.
    #[error("store record {key}")]
    Record {
        /// The record's key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The thread writing a batch died.
    #[error("the store's writer thread failed")]
    Writer,
    /// Saved allocator state could not be rebuilt.
    #[error("rebuilding the address allocator from the store")]
    Ipam(#[source] ipam::IpamError),
}

fn db(doing: impl Into<String>) -> impl FnOnce(redb::Error) -> StoreError {
    let doing = doing.into();
    move |source| StoreError::Db { doing, source }
}

/// Shorthand for mapping any redb error type.
fn dbe<E: Into<redb::Error>>(doing: &str) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| db(doing)(e.into())
}

/// The store.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

/// A write transaction: several changes made durable together, or not at all.
pub struct Batch<'a> {
    tx: redb::WriteTransaction,
    _store: &'a Store,
    changes: Vec<Change>,
}

impl Store {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Store { db })
    }

    /// Start a batch of writes; nothing is visible or durable until [`Batch::commit`].
    pub fn batch(&self) -> Result<Batch<'_>, StoreError> {
        let tx = self.db.begin_write().map_err(dbe("starting a write"))?;
        Ok(Batch {
            tx,
            _store: self,
            changes: Vec::new(),
        })
    }

    /// One record.
    pub fn get<T: DeserializeOwned>(&self, kind: Kind, id: &str) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(dbe("starting a read"))?;
        let table = match tx.open_table(kind.table()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(dbe("opening a table")(e)),
        };
        let Some(value) = table.get(id).map_err(dbe("reading"))? else {
            return Ok(None);
        };
        decode(id, value.value()).map(Some)
    }

    /// Every record of a kind, by id.
    pub fn list<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<(String, T)>, StoreError> {
        let tx = self.db.begin_read().map_err(dbe("starting a read"))?;
        let table = match tx.open_table(kind.table()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(dbe("opening a table")(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(dbe("listing"))? {
            let (k, v) = entry.map_err(dbe("listing"))?;
            let key = k.value().to_string();
            let record = decode(&key, v.value())?;
            out.push((key, record));
        }
        Ok(out)
    }

    /// Rebuild the allocator: the snapshot plus the journal replayed onto it. The
    /// result is then saved as the new snapshot and the journal emptied, in one
    /// transaction.
    pub fn load_ipam<J: Journal>(&self, config: Config, journal: J) -> Result<Ipam<J>, StoreError> {
        let tx = self.db.begin_write().map_err(dbe("starting a write"))?;
        let ipam = {
            let snapshot = tx
                .open_table(IPAM_SNAPSHOT)
                .map_err(dbe("opening the snapshot"))?;
            let state: State = match snapshot
                .get(SNAPSHOT_KEY)
                .map_err(dbe("reading the snapshot"))?
            {
                Some(v) => decode(SNAPSHOT_KEY, v.value())?,
                None => State::default(),
            };
            let mut ipam = Ipam::restore(config, &state, journal).map_err(StoreError::Ipam)?;
            let journal = tx
                .open_table(IPAM_JOURNAL)
                .map_err(dbe("opening the journal"))?;
            for entry in journal.iter().map_err(dbe("reading the journal"))? {
                let (k, v) = entry.map_err(dbe("reading the journal"))?;
                let change: Change = decode(&k.value().to_string(), v.value())?;
                ipam.apply(&change).map_err(StoreError::Ipam)?;
            }
            ipam
        };
        {
            let mut snapshot = tx
                .open_table(IPAM_SNAPSHOT)
                .map_err(dbe("opening the snapshot"))?;
            let bytes = encode(SNAPSHOT_KEY, &ipam.state())?;
            snapshot
                .insert(SNAPSHOT_KEY, bytes.as_slice())
                .map_err(dbe("writing the snapshot"))?;
            let mut journal = tx
                .open_table(IPAM_JOURNAL)
                .map_err(dbe("opening the journal"))?;
            journal
                .retain(|_, _| false)
                .map_err(dbe("emptying the journal"))?;
        }
        tx.commit().map_err(dbe("committing the snapshot"))?;
        Ok(ipam)
    }
}

impl Batch<'_> {
    /// Write `record` under `id`.
    pub fn put<T: Serialize>(
        &mut self,
        kind: Kind,
        id: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        let bytes = encode(id, record)?;
        let mut table = self
            .tx
            .open_table(kind.table())
            .map_err(dbe("opening a table"))?;
        table.insert(id, bytes.as_slice()).map_err(dbe("writing"))?;
        Ok(())
    }

    /// Delete the record `id`; whether there was one.
    pub fn delete(&mut self, kind: Kind, id: &str) -> Result<bool, StoreError> {
        let mut table = self
            .tx
            .open_table(kind.table())
            .map_err(dbe("opening a table"))?;
        let existed = table.remove(id).map_err(dbe("deleting"))?.is_some();
        Ok(existed)
    }

    /// Write these allocator changes with the batch (the controller drains them from
    /// its allocator's buffer journal after each allocation).
    pub fn record_changes(&mut self, changes: impl IntoIterator<Item = Change>) {
        self.changes.extend(changes);
    }

    /// Make the batch durable: records and allocator changes together.
    pub fn commit(self) -> Result<(), StoreError> {
        if !self.changes.is_empty() {
            let mut journal = self
                .tx
                .open_table(IPAM_JOURNAL)
                .map_err(dbe("opening the journal"))?;
            let next = journal
                .last()
                .map_err(dbe("reading the journal"))?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(0);
            for (seq, change) in (next..).zip(&self.changes) {
                let bytes = encode("ipam change", change)?;
                journal
                    .insert(seq, bytes.as_slice())
                    .map_err(dbe("writing the journal"))?;
            }
        }
        self.tx.commit().map_err(dbe("committing"))
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Record {
        key: key.to_string(),
        source,
    })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Record {
        key: key.to_string(),
        source,
    })
}
