//! Making changes durable: an operation's record writes go to the store in one
//! transaction before it is acknowledged, and into the in-memory [`Records`] right
//! after, on the store's writer thread, so the two never differ in order.
//!
//! Nothing else is stored: the allocator is derived from the records (see
//! `allocation`). That fixes the order of allocator changes around a commit: an
//! operation takes addresses in memory before its commit (a crash before the commit
//! loses both) and gives them back only after the commit that drops their holder
//! is durable (so no other operation can take, and make durable, an address whose
//! holder is still stored).

use super::records::Records;
use super::{lock, Controller, ControllerError};
use crate::model::{
    EndpointRecord, EngineAddressRecord, EnginePoolRecord, NetworkRecord, SandboxRecord,
};
use crate::store::{Kind, Store, StoreError};
use std::sync::{Arc, Mutex};

/// One record write in a commit.
#[derive(Debug, Clone)]
pub enum Op {
    /// Write a network.
    Network(NetworkRecord),
    /// Write an endpoint.
    Endpoint(EndpointRecord),
    /// Write a sandbox.
    Sandbox(SandboxRecord),
    /// Write a pool dockerd holds.
    EnginePool(EnginePoolRecord),
    /// Write an address dockerd holds.
    EngineAddress(EngineAddressRecord),
    /// Delete a record.
    Delete(Kind, String),
}

/// Write `ops` in one batch; each write's JSON as stored (`None` for a delete).
fn write(store: &Store, ops: &[Op]) -> Result<Vec<Option<Arc<[u8]>>>, StoreError> {
    let mut batch = store.batch()?;
    let mut stored = Vec::with_capacity(ops.len());
    for op in ops {
        stored.push(match op {
            Op::Network(r) => Some(batch.put(Kind::Network, &r.id, r)?),
            Op::Endpoint(r) => Some(batch.put(Kind::Endpoint, &r.id, r)?),
            Op::Sandbox(r) => Some(batch.put(Kind::Sandbox, &r.id, r)?),
            Op::EnginePool(r) => Some(batch.put(Kind::EnginePool, &r.key(), r)?),
            Op::EngineAddress(r) => Some(batch.put(Kind::EngineAddress, &r.key(), r)?),
            Op::Delete(kind, id) => {
                batch.delete(*kind, id)?;
                None
            }
        });
    }
    batch.commit()?;
    Ok(stored)
}

impl Controller {
    /// Write `ops` in one durable transaction; the in-memory records follow.
    ///
    /// An endpoint that is not joined publishes no ports: its record is stored
    /// without them, and the firewall follows once the commit is durable.
    pub(crate) async fn commit(&self, mut ops: Vec<Op>) -> Result<(), ControllerError> {
        if ops.is_empty() {
            return Ok(());
        }
        for op in &mut ops {
            if let Op::Endpoint(ep) = op {
                if ep.join.is_none() {
                    ep.ports.clear();
                }
            }
        }
        let follow = self.firewall().is_some().then(|| ops.clone());
        let networks_changed = self.dns_changes(&ops);
        let overlay_changed = ops
            .iter()
            .any(|op| matches!(op, Op::Network(_) | Op::Endpoint(_) | Op::Delete(..)));
        let store = Arc::clone(&self.store);
        let records: Arc<Mutex<Records>> = Arc::clone(&self.records);
        let result = self
            .writer
            .run(move || {
                let stored = write(&store, &ops)?;
                lock(&records).apply(&ops, &stored);
                Ok::<(), StoreError>(())
            })
            .await;
        match result {
            Some(Ok(())) => {
                if let Some(ops) = follow {
                    self.firewall_after_commit(&ops).await;
                }
                if overlay_changed {
                    if let Some(agent) = self.overlay() {
                        agent.wake();
                    }
                }
                self.dns_follow(networks_changed);
                Ok(())
            }
            Some(Err(e)) => Err(e.into()),
            None => {
                // A panic on the writer: whether the batch reached the log is not
                // known, so nothing more is written until a restart settles it.
                self.store
                    .stop("a commit failed in a way that leaves its outcome unknown");
                Err(StoreError::Writer.into())
            }
        }
    }
}
