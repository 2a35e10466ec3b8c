//! Name resolution for the sandboxes dockerd does not manage (netd's own,
//! netd-cni's, `netd oci-hook`'s): a responder on each network's gateway
//! address, as Docker's embedded DNS and podman's aardvark-dns give, answering
//! A, AAAA and PTR for the network's sandboxes and aliases and relaying every
//! other query to the host's resolvers.
//!
//! The names come from the controller's records (through [`Directory`]), built
//! again for a network only when the records changed since: a query costs a
//! hash lookup however many sandboxes there are.

mod answer;
mod listener;
mod names;
mod upstream;

pub use answer::{query, TTL};
pub use names::Names;
pub use upstream::Upstream;

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use tokio::task::JoinHandle;

pub use drivers::bridge::OPTION_DNS;

/// Where names come from.
pub trait Directory: Send + Sync {
    /// A number that changes whenever the records do.
    fn version(&self) -> u64;
    /// Network `id`'s names and the version they are of; `None` once it is gone.
    fn names(&self, network: &str) -> Option<(u64, Names)>;
}

/// A network's responder: where it listens and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The network's id.
    pub network: String,
    /// Its name (for logs).
    pub name: String,
    /// The bridge the sockets are bound to.
    pub bridge: String,
    /// The gateway address listened on.
    pub address: IpAddr,
    /// Only queries from these are answered...
    pub subnets: Vec<IpNet>,
    /// ...except from these, the network's gateways: the host itself (whose
    /// own packets to the gateway pass the bridge binding).
    pub gateways: Vec<IpAddr>,
    /// Whether other names go to the host's resolvers (not on internal networks).
    pub forward: bool,
}

struct Responder {
    target: Target,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Responder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Each network's names, built again when the records changed since.
pub(crate) struct Tables {
    directory: Weak<dyn Directory>,
    built: Mutex<HashMap<String, (u64, Arc<Names>)>>,
}

impl Tables {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Arc<Names>)>> {
        self.built.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Network `id`'s names, as the records are now.
    fn get(&self, network: &str) -> Option<Arc<Names>> {
        let dir = self.directory.upgrade()?;
        let version = dir.version();
        if let Some((built, names)) = self.lock().get(network) {
            if *built == version {
                return Some(Arc::clone(names));
            }
        }
        let Some((built, names)) = dir.names(network) else {
            self.lock().remove(network);
            return None;
        };
        let names = Arc::new(names);
        self.lock()
            .insert(network.to_string(), (built, Arc::clone(&names)));
        Some(names)
    }
}

/// Every network's responder.
pub struct Service {
    tables: Arc<Tables>,
    upstream: Arc<Upstream>,
    responders: Mutex<HashMap<String, Responder>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// A service answering from `directory`, relaying to `upstream`.
    pub fn new(directory: Weak<dyn Directory>, upstream: Upstream) -> Service {
        Service {
            tables: Arc::new(Tables {
                directory,
                built: Mutex::new(HashMap::new()),
            }),
            upstream: Arc::new(upstream),
            responders: Mutex::new(HashMap::new()),
        }
    }

    fn responders(&self) -> std::sync::MutexGuard<'_, HashMap<String, Responder>> {
        self.responders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer on `target` (nothing changes if it is served so already). An error
    /// (the port taken by another program on that address) leaves the network
    /// without one: its sandboxes then get the host's name servers.
    pub fn serve(&self, target: Target) -> std::io::Result<()> {
        if self
            .responders()
            .get(&target.network)
            .is_some_and(|r| r.target == target)
        {
            return Ok(());
        }
        self.stop(&target.network);
        let udp = listener::bind_udp(&target)?;
        let tcp = listener::bind_tcp(&target)?;
        let shared = Arc::new(listener::Shared::new(
            target.clone(),
            Arc::clone(&self.tables),
            Arc::clone(&self.upstream),
        ));
        let tasks = [
            tokio::spawn(listener::serve_udp(udp, Arc::clone(&shared))),
            tokio::spawn(listener::serve_tcp(tcp, shared)),
        ];
        tracing::debug!(network = %target.name, address = %target.address, "DNS responder up");
        self.responders()
            .insert(target.network.clone(), Responder { target, tasks });
        Ok(())
    }

    /// Stop network `id`'s responder, if it has one.
    pub fn stop(&self, network: &str) {
        self.responders().remove(network);
        self.tables.lock().remove(network);
    }

    /// The address network `id`'s responder listens on, if it has one.
    pub fn name_server(&self, network: &str) -> Option<IpAddr> {
        self.responders().get(network).map(|r| r.target.address)
    }
}
