//! Keeping one overlay network's VXLAN device in line with its peers: each
//! remote endpoint as a neighbour entry (its address -> its MAC, answered by the
//! device's proxy ARP) and a forwarding entry (its MAC -> its host's VTEP), each
//! remote host once in the flood list, and the gateway answered locally (the
//! same gateway is on every host's bridge: never asked across the tunnel).
//! Changes are applied as they come; every so often the device's tables are
//! compared with the peer table in full and repaired both ways.

use cluster::{Cluster, PeerEvent, PeerRecord, PeerWatch};
use drivers::netlink::{Mac, Netlink, FLOOD_MAC};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the tables are compared in full.
pub const FULL_EVERY: Duration = Duration::from_secs(5);

/// What a program needs to know about its network.
#[derive(Debug, Clone)]
pub struct NetView {
    /// The network id (the cluster's).
    pub id: String,
    /// The VXLAN device's name.
    pub vxlan: String,
    /// The gateway, answered locally.
    pub gateway: Option<IpAddr>,
    /// The bridge's MAC (the gateway's).
    pub bridge_mac: Mac,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Entries written after a full comparison found them missing or wrong.
    pub repairs: AtomicU64,
    /// Remote endpoints programmed now, over all networks.
    pub peers: AtomicU64,
    /// Each running program's peer watch, how current it is, and since when
    /// the program runs (by network id).
    pub watches: std::sync::Mutex<BTreeMap<String, (cluster::Currency, std::time::Instant)>>,
}

impl Counters {
    /// The longest any peer watch has gone without being known current (for a
    /// watch never current yet: since its program started); `None` with no
    /// program running.
    pub fn watch_lag(&self) -> Option<Duration> {
        let watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        watches
            .values()
            .map(|(c, started)| c.behind().unwrap_or_else(|| started.elapsed()))
            .max()
    }
}

/// A running program; dropping it stops it (the device goes with its network)
/// and takes its peers out of the count.
pub struct Program {
    task: JoinHandle<()>,
    programmed: Arc<AtomicU64>,
    counters: Arc<Counters>,
    network: String,
}

impl Drop for Program {
    fn drop(&mut self) {
        self.task.abort();
        self.counters
            .watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.network);
        let mine = self.programmed.swap(0, Ordering::Relaxed);
        self.counters.peers.fetch_sub(mine, Ordering::Relaxed);
    }
}

impl Program {
    /// Follow `net`'s peers and program them (all but `host`'s own).
    pub fn start(
        cluster: Cluster,
        nl: Netlink,
        host: String,
        net: NetView,
        counters: Arc<Counters>,
    ) -> Program {
        let programmed = Arc::new(AtomicU64::new(0));
        let (mine, all) = (Arc::clone(&programmed), Arc::clone(&counters));
        let network = net.id.clone();
        let watch = PeerWatch::start(cluster, net.id.clone());
        counters
            .watches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                network.clone(),
                (watch.currency(), std::time::Instant::now()),
            );
        let task = tokio::spawn(async move {
            let mut state = Device {
                nl,
                net,
                index: None,
                counters,
                programmed: mine,
            };
            let mut watch = watch;
            let mut table: BTreeMap<IpAddr, PeerRecord> = BTreeMap::new();
            // Until the first full list arrives the table is unknown, not empty:
            // what the device holds (from before a restart) stays as it is.
            let mut listed = false;
            let mut full = tokio::time::interval(FULL_EVERY);
            loop {
                tokio::select! {
                    event = watch.next() => {
                        let Some(event) = event else { return };
                        match event {
                            PeerEvent::Resync(all) => {
                                listed = true;
                                table = all.into_iter().filter(|p| p.host != host).map(|p| (p.ip, p)).collect();
                                state.full(&table).await;
                            }
                            PeerEvent::Put(p) if p.host != host => {
                                if let Some(old) = table.insert(p.ip, p.clone()) {
                                    if old.mac != p.mac || old.vtep != p.vtep {
                                        state.withdraw(&old, &table).await;
                                    }
                                }
                                state.program(&p).await;
                            }
                            PeerEvent::Put(p) => {
                                // Now this host's own: not programmed here.
                                if let Some(old) = table.remove(&p.ip) {
                                    state.withdraw(&old, &table).await;
                                }
                            }
                            PeerEvent::Delete(ip) => {
                                if let Some(old) = table.remove(&ip) {
                                    state.withdraw(&old, &table).await;
                                }
                            }
                        }
                        state.count(table.len());
                    }
                    _ = full.tick(), if listed => state.full(&table).await,
                }
            }
        });
        Program {
            task,
            programmed,
            counters: all,
            network,
        }
    }
}

struct Device {
    nl: Netlink,
    net: NetView,
    index: Option<u32>,
    counters: Arc<Counters>,
    /// Remote endpoints in the table now (shared with the [`Program`], which
    /// takes them out of the count when it stops).
    programmed: Arc<AtomicU64>,
}

impl Device {
    fn count(&mut self, now: usize) {
        let now = now as u64;
        let before = self.programmed.swap(now, Ordering::Relaxed);
        if now >= before {
            self.counters
                .peers
                .fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.counters
                .peers
                .fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    async fn index(&mut self) -> Option<u32> {
        if self.index.is_none() {
            self.index = self
                .nl
                .link(&self.net.vxlan)
                .await
                .ok()
                .flatten()
                .map(|l| l.index);
        }
        self.index
    }

    async fn program(&mut self, p: &PeerRecord) {
        let Some(index) = self.index().await else {
            return;
        };
        let Ok(mac) = p.mac_bytes() else {
            tracing::warn!(peer = %p.ip, mac = %p.mac, "a peer with a MAC netd cannot read");
            return;
        };
        let result = async {
            self.nl.replace_neighbour(index, p.ip, mac).await?;
            self.nl.replace_fdb(index, mac, p.vtep).await?;
            self.nl.append_flood(index, p.vtep).await
        }
        .await;
        if let Err(e) = result {
            // The device may be gone and made again (a new index): look again.
            self.index = None;
            tracing::warn!(peer = %p.ip, error = %e, "programming a peer");
        }
    }

    async fn withdraw(&mut self, p: &PeerRecord, rest: &BTreeMap<IpAddr, PeerRecord>) {
        let Some(index) = self.index().await else {
            return;
        };
        let _ = self.nl.delete_neighbour(index, p.ip).await;
        if let Ok(mac) = p.mac_bytes() {
            let _ = self.nl.delete_fdb(index, mac, p.vtep).await;
        }
        if !rest.values().any(|o| o.vtep == p.vtep) {
            let _ = self.nl.delete_fdb(index, FLOOD_MAC, p.vtep).await;
        }
    }

    /// Compare the device's tables with `table` and repair both ways.
    async fn full(&mut self, table: &BTreeMap<IpAddr, PeerRecord>) {
        let Some(index) = self.index().await else {
            return;
        };
        let Ok(fixes) = plan(&self.nl, index, &self.net, table).await else {
            self.index = None;
            return;
        };
        for fix in &fixes {
            let _ = match fix {
                Fix::DeleteNeighbour(ip) => self.nl.delete_neighbour(index, *ip).await,
                Fix::SetNeighbour(ip, mac) => self.nl.replace_neighbour(index, *ip, *mac).await,
                Fix::DeleteFdb(mac, dst) => self.nl.delete_fdb(index, *mac, *dst).await,
                Fix::SetFdb(mac, dst) => self.nl.replace_fdb(index, *mac, *dst).await,
                Fix::AddFlood(dst) => self.nl.append_flood(index, *dst).await,
            };
        }
        if !fixes.is_empty() {
            tracing::info!(network = %self.net.id.get(..12).unwrap_or(&self.net.id), repairs = fixes.len(), "overlay entries repaired");
            self.counters
                .repairs
                .fetch_add(fixes.len() as u64, Ordering::Relaxed);
        }
        self.count(table.len());
    }
}

/// A difference between a VXLAN device's tables and the peer table, as the
/// change that mends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// A neighbour entry no peer accounts for.
    DeleteNeighbour(IpAddr),
    /// A neighbour entry missing or wrong.
    SetNeighbour(IpAddr, Mac),
    /// A forwarding entry no peer accounts for.
    DeleteFdb(Mac, IpAddr),
    /// A forwarding entry missing.
    SetFdb(Mac, IpAddr),
    /// A host missing from the flood list.
    AddFlood(IpAddr),
}

/// What it takes to make device `index`'s tables match `table` (the remote
/// peers) and the local gateway.
pub async fn plan(
    nl: &Netlink,
    index: u32,
    net: &NetView,
    table: &BTreeMap<IpAddr, PeerRecord>,
) -> Result<Vec<Fix>, drivers::netlink::NetlinkError> {
    let mut want_neigh: BTreeMap<IpAddr, Mac> = table
        .values()
        .filter_map(|p| Some((p.ip, p.mac_bytes().ok()?)))
        .collect();
    if let Some(gw) = net.gateway {
        want_neigh.insert(gw, net.bridge_mac);
    }
    let want_fdb: BTreeSet<(Mac, IpAddr)> = table
        .values()
        .filter_map(|p| Some((p.mac_bytes().ok()?, p.vtep)))
        .collect();
    let want_flood: BTreeSet<IpAddr> = table.values().map(|p| p.vtep).collect();
    let neigh = nl.neighbours(index).await?;
    let fdb = nl.fdb(index).await?;
    let mut fixes = Vec::new();
    let have_neigh: BTreeMap<IpAddr, Mac> =
        neigh.iter().filter_map(|e| Some((e.ip?, e.mac))).collect();
    for ip in have_neigh.keys() {
        if !want_neigh.contains_key(ip) {
            fixes.push(Fix::DeleteNeighbour(*ip));
        }
    }
    for (ip, mac) in &want_neigh {
        if have_neigh.get(ip) != Some(mac) {
            fixes.push(Fix::SetNeighbour(*ip, *mac));
        }
    }
    let have_fdb: BTreeSet<(Mac, IpAddr)> =
        fdb.iter().filter_map(|e| Some((e.mac, e.ip?))).collect();
    for (mac, dst) in &have_fdb {
        let wanted = if *mac == FLOOD_MAC {
            want_flood.contains(dst)
        } else {
            want_fdb.contains(&(*mac, *dst))
        };
        if !wanted {
            fixes.push(Fix::DeleteFdb(*mac, *dst));
        }
    }
    for (mac, dst) in &want_fdb {
        if !have_fdb.contains(&(*mac, *dst)) {
            fixes.push(Fix::SetFdb(*mac, *dst));
        }
    }
    for dst in &want_flood {
        if !have_fdb.contains(&(FLOOD_MAC, *dst)) {
            fixes.push(Fix::AddFlood(*dst));
        }
    }
    Ok(fixes)
}
