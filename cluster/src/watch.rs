//! Following records under a prefix (a network's peers, the member hosts): a full list, then every change from the
//! revision after it; a watch that breaks (etcd away) resumes from the last
//! revision seen, and one that fell behind a compaction lists again.

use crate::{Cluster, PeerRecord};
use etcd_client::{EventType, WatchOptions};
use serde::de::DeserializeOwned;
use std::net::IpAddr;
use std::time::Duration;
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

impl PeerWatch {
    /// Watch network `network_id`'s peers.
    pub fn start(cluster: Cluster, network_id: String) -> PeerWatch {
        let prefix = cluster.keys().peers(&network_id);
        PeerWatch {
            inner: Watch::start(cluster, prefix),
        }
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
        let task = tokio::spawn(follow(cluster, prefix, tx));
        Watch { events, task }
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
        loop {
            let resp = match stream.message().await {
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
