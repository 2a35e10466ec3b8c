//! Following a network's peers: a full list, then every change from the
//! revision after it; a watch that breaks (etcd away) resumes from the last
//! revision seen, and one that fell behind a compaction lists again.

use crate::{Cluster, PeerRecord};
use etcd_client::{EventType, WatchOptions};
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
    events: mpsc::Receiver<PeerEvent>,
    task: JoinHandle<()>,
}

impl Drop for PeerWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const RETRY: Duration = Duration::from_millis(500);

impl PeerWatch {
    /// Watch network `network_id`'s peers.
    pub fn start(cluster: Cluster, network_id: String) -> PeerWatch {
        let (tx, events) = mpsc::channel(1024);
        let task = tokio::spawn(follow(cluster, network_id, tx));
        PeerWatch { events, task }
    }

    /// The next change (`None`: the watch ended).
    pub async fn next(&mut self) -> Option<PeerEvent> {
        self.events.recv().await
    }
}

async fn follow(cluster: Cluster, network_id: String, tx: mpsc::Sender<PeerEvent>) {
    let prefix = cluster.keys().peers(&network_id);
    let mut revision: Option<i64> = None;
    loop {
        let from = match revision {
            Some(r) => r,
            None => match cluster.peers(&network_id).await {
                Ok((peers, r)) => {
                    if tx.send(PeerEvent::Resync(peers)).await.is_err() {
                        return;
                    }
                    revision = Some(r);
                    r
                }
                Err(e) => {
                    tracing::debug!(error = %e, "listing peers; trying again");
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
                    EventType::Put => match serde_json::from_slice::<PeerRecord>(kv.value()) {
                        Ok(peer) => PeerEvent::Put(peer),
                        Err(e) => {
                            tracing::warn!(key = %String::from_utf8_lossy(kv.key()), error = %e, "a peer record netd cannot read");
                            continue;
                        }
                    },
                    EventType::Delete => {
                        let key = String::from_utf8_lossy(kv.key());
                        match key
                            .strip_prefix(prefix.as_str())
                            .and_then(|ip| ip.parse().ok())
                        {
                            Some(ip) => PeerEvent::Delete(ip),
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
