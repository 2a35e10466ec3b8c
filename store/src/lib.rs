//! The daemons' embedded store: one redb file under the state dir, with a
//! write-ahead log beside it (`FILE.wal`).
//!
//! Records are JSON values keyed by id in one table per kind. A batch is durable
//! before [`Batch::commit`] returns: its changes are written to the log and
//! flushed (one page for most batches, see [`wal`]), then committed to redb
//! without a flush of its own. When the log is full, one durable redb commit
//! takes in everything logged so far and the log starts again; on open, records
//! redb does not hold durably yet are replayed.
//!
//! The record kinds are the daemon's ([`Kind`]): netd's networks, endpoints,
//! sandboxes; volumed's volumes.

mod wal;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use wal::{LogOp, Wal};

/// A kind of record: one table, and a code the log writes for it.
pub trait Kind: Copy + Eq + std::fmt::Debug + Send + Sync + 'static {
    /// The table's name.
    fn table_name(self) -> &'static str;
    /// Its code in the log (stable across versions).
    fn code(self) -> u8;
    /// The kind a code stands for.
    fn from_code(code: u8) -> Option<Self>;
}

fn table<K: Kind>(kind: K) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(kind.table_name())
}

/// redb's page cache. The controller keeps every record in memory and reads the
/// store only at start, so the cache serves writes alone (redb's default, 1 GiB,
/// lets it grow with every page ever written).
const CACHE_BYTES: usize = 16 << 20;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The number of the last log record that redb holds durably.
const LOG_APPLIED: &str = "log_applied";
const IDENTITY: TableDefinition<&str, &str> = TableDefinition::new("identity");
/// This store's instance id (netd marks what it makes in the kernel with it).
const INSTANCE: &str = "instance";

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
    /// The write-ahead log could not be opened, read or written.
    #[error("{doing} the store's log {path}")]
    Log {
        /// What was being done.
        doing: &'static str,
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A logged batch could not be applied nor taken back out of the log: the
    /// next start would replay a batch the caller was told failed.
    #[error("the store refuses writes until the daemon restarts: {0}")]
    Stopped(String),
    /// The thread writing a batch died.
    #[error("the store's writer thread failed")]
    Writer,
    /// The store's files could not be made private.
    #[error("making {path} readable by root only")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
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
pub struct Store<K: Kind> {
    db: Database,
    log: Mutex<Log<K>>,
    instance: String,
}

/// The log and the number its next record takes.
#[derive(Debug)]
struct Log<K: Kind> {
    wal: Wal<K>,
    next: u64,
    stopped: Option<String>,
}

/// A write transaction: several changes made durable together, or not at all.
pub struct Batch<'a, K: Kind> {
    tx: redb::WriteTransaction,
    store: &'a Store<K>,
    ops: Vec<LogOp<K>>,
}

/// Make `path` readable and writable by its owner only: the store holds every
/// container's addresses and namespace paths.
fn private(path: &Path) -> Result<(), StoreError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        StoreError::Permissions {
            path: path.to_path_buf(),
            source,
        }
    })
}

impl<K: Kind> Store<K> {
    /// Open (or create) the store at `path`, and bring back what its log holds
    /// that redb does not.
    pub fn open(path: &Path) -> Result<Store<K>, StoreError> {
        Self::open_dropping(path, &[])
    }

    /// [`Store::open`], dropping the tables of earlier versions named `legacy`.
    pub fn open_dropping(path: &Path, legacy: &[&str]) -> Result<Store<K>, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        private(path)?;
        let mut log_path = path.as_os_str().to_owned();
        log_path.push(".wal");
        let log_path = PathBuf::from(log_path);
        let (mut wal, records) = Wal::open(&log_path).map_err(|source| StoreError::Log {
            doing: "opening",
            path: log_path.clone(),
            source,
        })?;
        private(&log_path)?;
        let applied = applied(&db)?;
        let last = records.last().map_or(applied, |(seq, _)| applied.max(*seq));
        let replay: Vec<_> = records.iter().filter(|(seq, _)| *seq > applied).collect();
        if !replay.is_empty() {
            let tx = db.begin_write().map_err(dbe("starting the log's replay"))?;
            for (_, ops) in &replay {
                apply(&tx, ops)?;
            }
            set_applied(&tx, last)?;
            tx.commit().map_err(dbe("committing the log's replay"))?;
            tracing::info!(batches = replay.len(), "store: replayed the log");
        }
        // Everything logged is in redb durably now.
        wal.restart();
        let instance = settle(&db, legacy)?;
        Ok(Store {
            db,
            log: Mutex::new(Log {
                wal,
                next: last + 1,
                stopped: None,
            }),
            instance,
        })
    }

    /// This store's instance id (16 hex digits, made at its first open): what netd
    /// marks its kernel objects with, so it never takes another instance's for its own.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Refuse every write from now on, saying `why`: an outcome is unknown and a
    /// restart (which replays the log) must settle it.
    pub fn stop(&self, why: &str) {
        self.lock_log()
            .stopped
            .get_or_insert_with(|| why.to_string());
    }

    fn lock_log(&self) -> MutexGuard<'_, Log<K>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a batch of writes; nothing is visible or durable until [`Batch::commit`].
    pub fn batch(&self) -> Result<Batch<'_, K>, StoreError> {
        let tx = self.db.begin_write().map_err(dbe("starting a write"))?;
        Ok(Batch {
            tx,
            store: self,
            ops: Vec::new(),
        })
    }

    /// One record.
    pub fn get<T: DeserializeOwned>(&self, kind: K, id: &str) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(dbe("starting a read"))?;
        let table = match tx.open_table(table(kind)) {
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
    pub fn list<T: DeserializeOwned>(&self, kind: K) -> Result<Vec<(String, T)>, StoreError> {
        self.list_raw(kind)?
            .into_iter()
            .map(|(key, bytes)| decode(&key, &bytes).map(|r| (key, r)))
            .collect()
    }

    /// Every record of a kind, by id, as stored (JSON).
    pub fn list_raw(&self, kind: K) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(dbe("starting a read"))?;
        let table = match tx.open_table(table(kind)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(dbe("opening a table")(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(dbe("listing"))? {
            let (k, v) = entry.map_err(dbe("listing"))?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl<K: Kind> Batch<'_, K> {
    /// Write `record` under `id`; its JSON, as stored.
    pub fn put<T: Serialize>(
        &mut self,
        kind: K,
        id: &str,
        record: &T,
    ) -> Result<std::sync::Arc<[u8]>, StoreError> {
        let bytes = encode(id, record)?;
        let mut table = self
            .tx
            .open_table(table(kind))
            .map_err(dbe("opening a table"))?;
        table.insert(id, bytes.as_slice()).map_err(dbe("writing"))?;
        let stored = std::sync::Arc::from(bytes.as_slice());
        self.ops.push(LogOp::Put(kind, id.to_string(), bytes));
        Ok(stored)
    }

    /// Delete the record `id`; whether there was one.
    pub fn delete(&mut self, kind: K, id: &str) -> Result<bool, StoreError> {
        let mut table = self
            .tx
            .open_table(table(kind))
            .map_err(dbe("opening a table"))?;
        let existed = table.remove(id).map_err(dbe("deleting"))?.is_some();
        self.ops.push(LogOp::Delete(kind, id.to_string()));
        Ok(existed)
    }

    /// Make the batch durable.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let mut log = self.store.lock_log();
        if let Some(why) = &log.stopped {
            return Err(StoreError::Stopped(why.clone()));
        }
        let seq = log.next;
        let logged = match log.wal.append(seq, &self.ops) {
            Ok(logged) => logged,
            Err(source) => {
                // Written but not flushed, or half written: whether a restart
                // replays it is not known, so nothing more goes in until then.
                log.stopped = Some(format!(
                    "writing the log {} failed: {source}",
                    log.wal.path().display()
                ));
                return Err(StoreError::Log {
                    doing: "writing",
                    path: log.wal.path().to_path_buf(),
                    source,
                });
            }
        };
        if !logged {
            // The log is full (or this batch is bigger than all of it): one durable
            // commit takes in this batch and every one before it.
            set_applied(&self.tx, seq)?;
            self.tx.commit().map_err(dbe("committing"))?;
            log.wal.restart();
            log.next = seq + 1;
            return Ok(());
        }
        self.tx
            .set_durability(Durability::None)
            .map_err(dbe("choosing the commit's durability"))?;
        match self.tx.commit() {
            Ok(()) => {
                log.next = seq + 1;
                Ok(())
            }
            Err(e) => {
                // The caller hears of a failure, so the log must not replay it.
                if let Err(undo) = log.wal.retract() {
                    log.stopped = Some(format!(
                        "a batch that failed could not be taken out of the log {}: {undo}",
                        log.wal.path().display()
                    ));
                }
                Err(dbe("committing")(e))
            }
        }
    }
}

/// The number of the last log record redb holds durably (0: none yet).
fn applied(db: &Database) -> Result<u64, StoreError> {
    let tx = db.begin_read().map_err(dbe("starting a read"))?;
    let table = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(dbe("opening the meta table")(e)),
    };
    let applied = table.get(LOG_APPLIED).map_err(dbe("reading"))?;
    Ok(applied.map_or(0, |v| v.value()))
}

/// Drop the tables of earlier versions and read (or make, durably) the instance id.
fn settle(db: &Database, legacy: &[&str]) -> Result<String, StoreError> {
    let tx = db.begin_write().map_err(dbe("starting a write"))?;
    let mut changed = false;
    for name in legacy {
        let table: TableDefinition<&str, &[u8]> = TableDefinition::new(name);
        match tx.delete_table(table) {
            Ok(dropped) => changed |= dropped,
            // The journal's keys were numbers: a table of another type is still ours.
            Err(redb::TableError::TableTypeMismatch { .. }) => {
                let table: TableDefinition<u64, &[u8]> = TableDefinition::new(name);
                changed |= tx
                    .delete_table(table)
                    .map_err(dbe("dropping a table of an earlier version"))?;
            }
            Err(e) => return Err(dbe("dropping a table of an earlier version")(e)),
        }
    }
    let instance = {
        let mut table = tx
            .open_table(IDENTITY)
            .map_err(dbe("opening the identity table"))?;
        let existing = table
            .get(INSTANCE)
            .map_err(dbe("reading the instance id"))?
            .map(|v| v.value().to_string());
        match existing {
            Some(id) => id,
            None => {
                let id = new_id()
                    .map_err(|source| StoreError::Log {
                        doing: "making an instance id for",
                        path: PathBuf::from("/dev/urandom"),
                        source,
                    })?
                    .chars()
                    .take(16)
                    .collect::<String>();
                table
                    .insert(INSTANCE, id.as_str())
                    .map_err(dbe("writing the instance id"))?;
                changed = true;
                id
            }
        }
    };
    if changed {
        tx.commit().map_err(dbe("committing the instance id"))?;
    } else {
        tx.abort().map_err(dbe("ending a read"))?;
    }
    Ok(instance)
}

/// A new random 64-hex id.
fn new_id() -> Result<String, std::io::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::from)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn set_applied(tx: &redb::WriteTransaction, seq: u64) -> Result<(), StoreError> {
    let mut table = tx.open_table(META).map_err(dbe("opening the meta table"))?;
    table
        .insert(LOG_APPLIED, seq)
        .map_err(dbe("writing the meta table"))?;
    Ok(())
}

/// Redo a logged batch.
fn apply<K: Kind>(tx: &redb::WriteTransaction, ops: &[LogOp<K>]) -> Result<(), StoreError> {
    for op in ops {
        match op {
            LogOp::Put(kind, id, value) => {
                let mut table = tx
                    .open_table(table(*kind))
                    .map_err(dbe("opening a table"))?;
                table
                    .insert(id.as_str(), value.as_slice())
                    .map_err(dbe("replaying a write"))?;
            }
            LogOp::Delete(kind, id) => {
                let mut table = tx
                    .open_table(table(*kind))
                    .map_err(dbe("opening a table"))?;
                table
                    .remove(id.as_str())
                    .map_err(dbe("replaying a delete"))?;
            }
        }
    }
    Ok(())
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
