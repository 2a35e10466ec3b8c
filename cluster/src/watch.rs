//! Following records under a prefix (a network's peers, the member hosts): a full list, then every change from the
//! revision after it; a watch that breaks (etcd away) resumes from the last
//! revision seen, and one that fell behind a compaction lists again.
//!
//! How far behind a watch may be is kept as the time since it was last known
//! to have passed on every change up to etcd's present: its list, or etcd's
//! answer to a progress request, asked every [`PROGRESS_EVERY`].

use crate::{Cluster, PeerRecord};
use etcd_client::{EventType, WatchOptions};
use serde::de::DeserializeOwned;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A change in a network's peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The whole table (at the start, and after a compaction outran the watch):
    /// what is not in it is gone.
    Resync(Vec<PeerRecord>),
    /// A peer appeared or changed.
    Put(PeerRecord),
    /// The peer with this address went.
    Delete(IpAddr),
}

/// A running watch of one network's peers. Dropping it stops the watch.
pub struct PeerWatch {
    inner: Watch<PeerRecord>,
}

const RETRY: Duration = Duration::from_millis(500);

/// How often a watch asks etcd whether it has everything.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// When a watch was last known to be current; shared with its reporters.
#[derive(Debug, Clone, Default)]
pub struct Currency(Arc<Mutex<Option<Instant>>>);

impl Currency {
    fn mark(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// How long since the watch was last known to have passed on every change
    /// (`None`: not yet, since it started). Under [`PROGRESS_EVERY`] and a
    /// round trip while etcd answers; growing while it does not.
    pub fn behind(&self) -> Option<Duration> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|at| at.elapsed())
    }
}

impl PeerWatch {
    /// Watch network `network_id`'s peers.
    pub fn start(cluster: Cluster, network_id: String) -> PeerWatch {
        let prefix = cluster.keys().peers(&network_id);
        PeerWatch {
            inner: Watch::start(cluster, prefix),
        }
    }

    /// How current the watch is.
    pub fn currency(&self) -> Currency {
        self.inner.currency.clone()
    }

    /// The next change (`None`: the watch ended).
    pub async fn next(&mut self) -> Option<PeerEvent> {
        loop {
            return Some(match self.inner.next().await? {
                WatchEvent::Resync(all) => PeerEvent::Resync(all),
                WatchEvent::Put(p) => PeerEvent::Put(p),
                WatchEvent::Delete(key) => match key.parse() {
                    Ok(ip) => PeerEvent::Delete(ip),
                    Err(_) => continue,
                },
            });
        }
    }
}

/// A change under a key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent<T> {
    /// Everything under the prefix (at the start, and after a compaction
    /// outran the watch): what is not in it is gone.
    Resync(Vec<T>),
    /// A record appeared or changed.
    Put(T),
    /// The record whose key ends in this (after the prefix) went.
    Delete(String),
}

/// A running watch of every record under a prefix. Dropping it stops it.
pub struct Watch<T> {
    events: mpsc::Receiver<WatchEvent<T>>,
    task: JoinHandle<()>,
    currency: Currency,
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: DeserializeOwned + Send + 'static> Watch<T> {
    /// Watch the records under `prefix`.
    pub fn start(cluster: Cluster, prefix: String) -> Watch<T> {
        let (tx, events) = mpsc::channel(1024);
        let currency = Currency::default();
        let task = tokio::spawn(follow(cluster, prefix, tx, currency.clone()));
        Watch {
            events,
            task,
            currency,
        }
    }

    /// How current the watch is.
    pub fn currency(&self) -> Currency {
        self.currency.clone()
    }

    /// The next change (`None`: the watch ended).
    pub async fn next(&mut self) -> Option<WatchEvent<T>> {
        self.events.recv().await
    }
}

async fn follow<T: DeserializeOwned>(
    cluster: Cluster,
    prefix: String,
    tx: mpsc::Sender<WatchEvent<T>>,
    currency: Currency,
) {
    let mut revision: Option<i64> = None;
    loop {
        let from = match revision {
            Some(r) => r,
            None => match cluster.list::<T>(&prefix, "listing records to watch").await {
                Ok((records, r)) => {
                    if tx.send(WatchEvent::Resync(records)).await.is_err() {
                        return;
                    }
                    currency.mark();
                    revision = Some(r);
                    r
                }
                Err(e) => {
                    tracing::debug!(error = %e, "listing records to watch; trying again");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            },
        };
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from + 1);
        let mut stream = match cluster.client().watch(prefix.as_str(), Some(opts)).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                _ = progress.tick() => match stream.request_progress().await {
                    Ok(()) => continue,
                    Err(_) => Ok(None),
                },
            };
            let resp = match message {
                Ok(Some(resp)) => resp,
                // Broken (etcd away): resume from the last revision seen.
                Ok(None) | Err(_) => {
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            };
            if resp.compact_revision() > 0 || resp.canceled() {
                // The revisions wanted are gone: list again.
                revision = None;
                break;
            }
            if resp.events().is_empty() && !resp.created() {
                // A progress answer: every change up to etcd's present is here.
                currency.mark();
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                revision = Some(kv.mod_revision().max(revision.unwrap_or(0)));
                let change = match event.event_type() {
                    EventType::Put => match serde_json::from_slice::<T>(kv.value()) {
                        Ok(record) => WatchEvent::Put(record),
                        Err(e) => {
                            tracing::warn!(key = %String::from_utf8_lossy(kv.key()), error = %e, "a record netd cannot read");
                            continue;
                        }
                    },
                    EventType::Delete => {
                        let key = String::from_utf8_lossy(kv.key());
                        match key.strip_prefix(prefix.as_str()) {
                            Some(rest) => WatchEvent::Delete(rest.to_string()),
                            None => continue,
                        }
                    }
                };
                if tx.send(change).await.is_err() {
                    return;
                }
            }
        }
    }
}
