//! Making changes durable: records and the allocator's changes go to the store in one
//! transaction before an operation is acknowledged.
//!
//! The allocator writes its changes into [`Buffer`], each with a sequence number. An
//! operation that allocated notes the last number it produced and calls
//! [`Controller::commit`] with its records. Commits are serialised; each drains every
//! buffered change, so one commit may carry another operation's allocation. An
//! operation is durable once the durable sequence number has reached its own. If a
//! commit fails, the allocator is rebuilt from the store, which undoes every change
//! not yet durable; operations that find their number neither durable nor buffered
//! then fail with [`ControllerError::Lost`].

use super::{Controller, ControllerError};
use crate::model::{EndpointRecord, NetworkRecord, SandboxRecord};
use crate::store::{Kind, Store, StoreError};
use ipam::{Change, Journal};
use std::sync::Arc;

/// The allocator's journal: changes wait here for the next commit.
#[derive(Debug, Default)]
pub struct Buffer {
    last: u64,
    pending: Vec<Change>,
}

impl Buffer {
    /// The sequence number of the newest change.
    pub fn last(&self) -> u64 {
        self.last
    }

    fn continuing(last: u64) -> Buffer {
        Buffer {
            last,
            pending: Vec::new(),
        }
    }
}

impl Journal for Buffer {
    type Error = std::convert::Infallible;
    fn record(&mut self, change: &Change) -> Result<(), Self::Error> {
        self.last += 1;
        self.pending.push(change.clone());
        Ok(())
    }
}

/// One record write in a commit.
#[derive(Debug, Clone)]
pub enum Op {
    /// Write a network.
    Network(NetworkRecord),
    /// Write an endpoint.
    Endpoint(EndpointRecord),
    /// Write a sandbox.
    Sandbox(SandboxRecord),
    /// Delete a record.
    Delete(Kind, String),
}

fn write(store: &Store, ops: &[Op], changes: Vec<Change>) -> Result<(), StoreError> {
    let mut batch = store.batch()?;
    for op in ops {
        match op {
            Op::Network(r) => batch.put(Kind::Network, &r.id, r)?,
            Op::Endpoint(r) => batch.put(Kind::Endpoint, &r.id, r)?,
            Op::Sandbox(r) => batch.put(Kind::Sandbox, &r.id, r)?,
            Op::Delete(kind, id) => {
                batch.delete(*kind, id)?;
            }
        }
    }
    batch.record_changes(changes);
    batch.commit()
}

impl Controller {
    /// The sequence number of the allocator's newest change.
    pub(crate) fn ipam_seq(&self) -> u64 {
        self.lock_ipam().journal().last()
    }

    /// Write `ops` and every buffered allocator change in one durable transaction,
    /// and make sure the allocator changes up to `upto` are durable.
    pub(crate) async fn commit(&self, ops: Vec<Op>, upto: u64) -> Result<(), ControllerError> {
        let mut durable = self.durable.lock().await;
        let (pending, last) = {
            let mut ipam = self.lock_ipam();
            let journal = ipam.journal_mut();
            (std::mem::take(&mut journal.pending), journal.last)
        };
        if ops.is_empty() && pending.is_empty() {
            return if *durable >= upto {
                Ok(())
            } else {
                Err(ControllerError::Lost)
            };
        }
        let had_changes = !pending.is_empty();
        let store = Arc::clone(&self.store);
        let result = self
            .writer
            .run(move || write(&store, &ops, pending))
            .await
            .unwrap_or(Err(StoreError::Writer));
        match result {
            Ok(()) => {
                if had_changes {
                    *durable = last;
                }
                if *durable >= upto {
                    Ok(())
                } else {
                    Err(ControllerError::Lost)
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; rebuilding the allocator from the store");
                self.reload_ipam(*durable);
                Err(e.into())
            }
        }
    }

    /// Undo every allocator change that is not durable.
    fn reload_ipam(&self, durable: u64) {
        let config = self.lock_ipam().config().clone();
        match self.store.load_ipam(config, Buffer::continuing(durable)) {
            Ok(fresh) => *self.lock_ipam() = fresh,
            Err(e) => tracing::error!(error = %e, "could not rebuild the allocator"),
        }
    }
}
