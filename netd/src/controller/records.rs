//! Every stored record, in memory, indexed by id and by name: what reads and lookups
//! use, so none of them decodes records from the store. It changes only when a
//! commit is durable (the writer thread applies the commit's writes right after
//! it), so it always shows what the store holds.

use super::persist::Op;
use crate::model::{
    EndpointRecord, EngineAddressRecord, EnginePoolRecord, NetworkRecord, SandboxRecord,
};
use crate::store::{Kind, Store, StoreError};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// The records.
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub networks: BTreeMap<String, NetworkRecord>,
    network_names: HashMap<String, String>,
    pub endpoints: BTreeMap<String, EndpointRecord>,
    /// Endpoint names are unique per network only: name to ids.
    endpoint_names: HashMap<String, BTreeSet<String>>,
    /// Network id to its endpoints' ids.
    by_network: HashMap<String, BTreeSet<String>>,
    /// Who on a network holds an address or a MAC (network id, then what is held,
    /// to endpoint id): the duplicate checks are lookups, not scans.
    held: HashMap<String, HashMap<Held, String>>,
    pub sandboxes: BTreeMap<String, SandboxRecord>,
    sandbox_names: HashMap<String, String>,
    pub engine_pools: BTreeMap<String, EnginePoolRecord>,
    pub engine_addresses: BTreeMap<String, EngineAddressRecord>,
    /// Each record's JSON as stored, by kind and id: a listing is these joined,
    /// with nothing encoded again.
    stored: HashMap<Kind, BTreeMap<String, Arc<[u8]>>>,
    /// One more with every batch applied (what the DNS responders cache by).
    pub version: u64,
}

/// What an endpoint holds on its network, that no other endpoint there may have.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Held {
    Address(IpAddr),
    /// As stored: `xx:xx:xx:xx:xx:xx`.
    Mac(String),
}

/// What `ep` holds: its addresses and its MAC.
fn held_by(ep: &EndpointRecord) -> impl Iterator<Item = Held> + '_ {
    ep.addresses
        .iter()
        .map(|a| Held::Address(a.addr()))
        .chain(std::iter::once(Held::Mac(ep.mac.clone())))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Record {
        key: key.to_string(),
        source,
    })
}

impl Records {
    /// Everything the store holds.
    pub fn load(store: &Store) -> Result<Records, StoreError> {
        let mut records = Records::default();
        let mut ops = Vec::new();
        let mut stored = Vec::new();
        for kind in Kind::ALL {
            for (key, bytes) in store.list_raw(kind)? {
                ops.push(match kind {
                    Kind::Network => Op::Network(decode(&key, &bytes)?),
                    Kind::Endpoint => Op::Endpoint(decode(&key, &bytes)?),
                    Kind::Sandbox => Op::Sandbox(decode(&key, &bytes)?),
                    Kind::EnginePool => Op::EnginePool(decode(&key, &bytes)?),
                    Kind::EngineAddress => Op::EngineAddress(decode(&key, &bytes)?),
                });
                stored.push(Some(Arc::from(bytes.as_slice())));
            }
        }
        records.apply(&ops, &stored);
        Ok(records)
    }

    /// A committed batch's writes, with each write's JSON as stored.
    pub fn apply(&mut self, ops: &[Op], stored: &[Option<Arc<[u8]>>]) {
        self.version += 1;
        for (op, json) in ops.iter().zip(stored) {
            let key = match op {
                Op::Network(r) => Some((Kind::Network, r.id.clone())),
                Op::Endpoint(r) => Some((Kind::Endpoint, r.id.clone())),
                Op::Sandbox(r) => Some((Kind::Sandbox, r.id.clone())),
                _ => None,
            };
            if let (Some((kind, id)), Some(json)) = (key, json) {
                self.stored
                    .entry(kind)
                    .or_default()
                    .insert(id, Arc::clone(json));
            }
        }
        for op in ops {
            match op {
                Op::Network(r) => self.put_network(r.clone()),
                Op::Endpoint(r) => self.put_endpoint(r.clone()),
                Op::Sandbox(r) => self.put_sandbox(r.clone()),
                Op::EnginePool(r) => {
                    self.engine_pools.insert(r.key(), r.clone());
                }
                Op::EngineAddress(r) => {
                    self.engine_addresses.insert(r.key(), r.clone());
                }
                Op::Delete(kind, id) => self.delete(*kind, id),
            }
        }
    }

    fn put_network(&mut self, r: NetworkRecord) {
        if let Some(old) = self.networks.get(&r.id) {
            self.network_names.remove(&old.name);
        }
        self.network_names.insert(r.name.clone(), r.id.clone());
        self.networks.insert(r.id.clone(), r);
    }

    fn put_endpoint(&mut self, r: EndpointRecord) {
        self.forget_endpoint(&r.id);
        self.endpoint_names
            .entry(r.name.clone())
            .or_default()
            .insert(r.id.clone());
        self.by_network
            .entry(r.network.clone())
            .or_default()
            .insert(r.id.clone());
        let held = self.held.entry(r.network.clone()).or_default();
        for what in held_by(&r) {
            held.insert(what, r.id.clone());
        }
        self.endpoints.insert(r.id.clone(), r);
    }

    fn forget_endpoint(&mut self, id: &str) -> Option<EndpointRecord> {
        let old = self.endpoints.remove(id)?;
        if let Some(ids) = self.endpoint_names.get_mut(&old.name) {
            ids.remove(id);
            if ids.is_empty() {
                self.endpoint_names.remove(&old.name);
            }
        }
        if let Some(ids) = self.by_network.get_mut(&old.network) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_network.remove(&old.network);
            }
        }
        if let Some(held) = self.held.get_mut(&old.network) {
            for what in held_by(&old) {
                if held.get(&what).is_some_and(|holder| holder == id) {
                    held.remove(&what);
                }
            }
            if held.is_empty() {
                self.held.remove(&old.network);
            }
        }
        Some(old)
    }

    /// The endpoint of `network` holding `what`.
    pub fn holder(&self, network: &str, what: &Held) -> Option<&EndpointRecord> {
        self.held
            .get(network)?
            .get(what)
            .and_then(|id| self.endpoints.get(id))
    }

    fn put_sandbox(&mut self, r: SandboxRecord) {
        if let Some(old) = self.sandboxes.get(&r.id) {
            self.sandbox_names.remove(&old.name);
        }
        self.sandbox_names.insert(r.name.clone(), r.id.clone());
        self.sandboxes.insert(r.id.clone(), r);
    }

    fn delete(&mut self, kind: Kind, id: &str) {
        if let Some(stored) = self.stored.get_mut(&kind) {
            stored.remove(id);
        }
        match kind {
            Kind::Network => {
                if let Some(old) = self.networks.remove(id) {
                    self.network_names.remove(&old.name);
                }
            }
            Kind::Endpoint => {
                self.forget_endpoint(id);
            }
            Kind::Sandbox => {
                if let Some(old) = self.sandboxes.remove(id) {
                    self.sandbox_names.remove(&old.name);
                }
            }
            Kind::EnginePool => {
                self.engine_pools.remove(id);
            }
            Kind::EngineAddress => {
                self.engine_addresses.remove(id);
            }
        }
    }

    /// Every record of `kind` as one JSON array, by id.
    pub fn json_list(&self, kind: Kind) -> Vec<u8> {
        let Some(stored) = self.stored.get(&kind) else {
            return b"[]".to_vec();
        };
        let size: usize = stored.values().map(|j| j.len() + 1).sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'[');
        for (i, json) in stored.values().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(json);
        }
        out.push(b']');
        out
    }

    /// The id of the network named `name`.
    pub fn network_named(&self, name: &str) -> Option<&str> {
        self.network_names.get(name).map(String::as_str)
    }

    /// The ids of the endpoints named `name` (one per network at most).
    pub fn endpoints_named(&self, name: &str) -> Vec<&str> {
        self.endpoint_names
            .get(name)
            .map(|ids| ids.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The id of the sandbox named `name`.
    pub fn sandbox_named(&self, name: &str) -> Option<&str> {
        self.sandbox_names.get(name).map(String::as_str)
    }

    /// A network's endpoints, by id.
    pub fn endpoints_of<'a>(&'a self, network: &str) -> impl Iterator<Item = &'a EndpointRecord> {
        self.by_network
            .get(network)
            .into_iter()
            .flatten()
            .filter_map(|id| self.endpoints.get(id))
    }
}
