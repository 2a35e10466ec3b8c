//! The agent: membership, networks and blocks, peer publishing, programs.

use super::program::{Counters, NetView, Program};
use crate::controller::Controller;
use crate::model::NetworkRecord;
use cluster::{
    Cluster, ClusterError, ClusterOptions, HostRecord, Keys, Membership, OverlayRequest,
    OverlaySpec, PeerRecord,
};
use drivers::netlink::Netlink;
use drivers::overlay::{OPTION_OVERLAY, OPTION_PORT, OPTION_VNI, OPTION_VTEP};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, RwLock};

/// The cluster's name for the network, kept in the local record's options (a
/// Docker network's local name may differ).
pub const OPTION_NETWORK: &str = "com.netd.overlay.network";
/// The cluster's id for the network (a Docker network's local id is dockerd's).
pub const OPTION_CLUSTER_ID: &str = "com.netd.overlay.id";

/// The cluster's id of overlay network `net`.
pub fn cluster_id(net: &NetworkRecord) -> &str {
    net.options
        .get(OPTION_CLUSTER_ID)
        .map(String::as_str)
        .unwrap_or(&net.id)
}

/// How to join the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// etcd endpoints (`http://10.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// TLS to etcd.
    pub tls: Option<cluster::Tls>,
    /// The key prefix.
    pub prefix: String,
    /// This host's underlay address: its VTEP.
    pub advertise: IpAddr,
    /// The VXLAN UDP port.
    pub vxlan_port: u16,
    /// The membership lease's TTL: a host silent for longer is removed.
    pub lease_ttl: Duration,
    /// The largest overlay MTU the underlay carries, as read at start (its
    /// link's MTU less VXLAN's headers).
    pub mtu: u32,
}

impl ClusterSettings {
    /// VXLAN's headers: 50 bytes over IPv4, 70 over IPv6.
    pub fn mtu_overhead(&self) -> u32 {
        if self.advertise.is_ipv4() {
            50
        } else {
            70
        }
    }
}

struct Joined {
    cluster: Cluster,
    membership: Membership,
}

/// netd's cluster agent. Share it in an `Arc`.
pub struct Agent {
    settings: ClusterSettings,
    host: String,
    name: String,
    lease_file: PathBuf,
    /// The other hosts' VTEPs, as last known (see [`Agent::vxlan_seed`]).
    peers_file: PathBuf,
    joined: RwLock<Option<Joined>>,
    wake: Notify,
    counters: Arc<Counters>,
    nl: Netlink,
    /// Held (shared) from a block claim until its record is committed or the
    /// claim given back; held alone while [`Agent::tidy`] gives back what no
    /// record accounts for, so it never takes a claim in flight for an orphan.
    claims: tokio::sync::RwLock<()>,
    /// Whether what an earlier run left under this lease was looked at.
    tidied: std::sync::atomic::AtomicBool,
}

/// An overlay network's MTU when neither its options nor its maker's underlay
/// say less: Docker's (1500 less VXLAN's 50 bytes), so that a jumbo-frame host
/// that makes a network does not lock out the hosts with ordinary links.
pub const DEFAULT_MTU: u32 = 1450;

/// What a failed cluster call becomes for the controller.
pub fn cluster_error(e: ClusterError) -> crate::controller::ControllerError {
    use crate::controller::ControllerError;
    match e {
        ClusterError::Conflict(m) => ControllerError::Conflict(m),
        ClusterError::Invalid(m) => ControllerError::Invalid(m),
        other => ControllerError::Unavailable(other.to_string()),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether `net` is an overlay network.
pub fn is_overlay(net: &NetworkRecord) -> bool {
    !matches!(
        net.options.get(OPTION_OVERLAY).map(String::as_str),
        None | Some("false" | "0")
    )
}

impl Agent {
    /// An agent for host `host` (netd's instance id), keeping its lease id
    /// under `state_dir`; it joins in the background ([`Agent::run`]).
    pub fn new(
        settings: ClusterSettings,
        host: String,
        state_dir: &std::path::Path,
        nl: Netlink,
    ) -> Arc<Agent> {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Arc::new(Agent {
            settings,
            host,
            name,
            lease_file: state_dir.join("cluster.lease"),
            peers_file: state_dir.join("cluster.peers"),
            joined: RwLock::new(None),
            wake: Notify::new(),
            counters: Arc::default(),
            nl,
            claims: tokio::sync::RwLock::new(()),
            tidied: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Hold while claiming a block and committing its record (see `claims`).
    pub async fn claiming(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.claims.read().await
    }

    /// This host's id in the cluster.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How it joins.
    pub fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    pub(crate) fn netlink(&self) -> &Netlink {
        &self.nl
    }

    /// The cluster and the lease held, joining first if need be.
    pub(crate) async fn connected(&self) -> Result<(Cluster, i64), ClusterError> {
        self.cluster().await
    }

    /// For `/metrics`: the longest any peer watch has gone without being known
    /// current.
    pub fn watch_lag(&self) -> Option<Duration> {
        self.counters.watch_lag()
    }

    /// For `/metrics`: peers programmed, entries repaired, and whether the
    /// membership was renewed at its last try.
    pub fn counters(&self) -> (u64, u64, bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let joined = self
            .joined
            .try_read()
            .ok()
            .and_then(|j| {
                j.as_ref().map(|j| {
                    matches!(
                        *j.membership.watch().borrow(),
                        cluster::MembershipState::Joined { .. }
                    )
                })
            })
            .unwrap_or(false);
        (
            self.counters.peers.load(Relaxed),
            self.counters.repairs.load(Relaxed),
            joined,
        )
    }

    /// The other hosts' VTEPs when netd last ran (saved as they change), for
    /// the firewall's first table.
    pub fn saved_peers(&self) -> Vec<IpAddr> {
        std::fs::read_to_string(&self.peers_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Something changed (a network or endpoint): sync now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    async fn cluster(&self) -> Result<(Cluster, i64), ClusterError> {
        if self.joined.read().await.is_none() {
            // Not joined yet (etcd was away): one more try, for this request.
            let _ = self.join().await;
        }
        match &*self.joined.read().await {
            Some(j) => Ok((j.cluster.clone(), j.membership.lease())),
            None => Err(ClusterError::NotJoined(format!(
                "netd has not joined the cluster yet: the cluster store ({}) is unreachable",
                self.settings.endpoints.join(",")
            ))),
        }
    }

    /// The overlay network `name` as the cluster has it (made if it has none),
    /// and a block of its subnet claimed for this host.
    pub async fn prepare(
        &self,
        name: &str,
        subnet: IpNet,
        gateway: Option<IpAddr>,
        options: BTreeMap<String, String>,
    ) -> Result<(OverlaySpec, IpNet), ClusterError> {
        let (cluster, lease) = self.cluster().await?;
        let limit = self.underlay_limit().await;
        let existed = cluster.network(name).await?.is_some();
        let req = OverlayRequest {
            name: name.to_string(),
            subnet,
            gateway,
            vni: None,
            options,
            mtu: Some(limit.min(DEFAULT_MTU)),
        };
        let spec = cluster.ensure_network(&req, &self.host).await?;
        let mtu = self.mtu_of(&spec);
        if mtu > limit {
            if !existed && spec.created_by == self.host {
                // Made just now by this request: not left behind unused.
                let _ = cluster.remove_network(name).await;
            }
            let overhead = self.settings.mtu_overhead();
            return Err(ClusterError::Conflict(format!(
                "overlay network {name} has MTU {mtu} (set with -o {} or, when not, by host {} that made it), more than this host's underlay carries with VXLAN's {overhead} bytes of headers ({limit} at most): raise the MTU of the link with {} to {} or more",
                drivers::bridge::OPTION_MTU,
                spec.created_by,
                self.settings.advertise,
                mtu + overhead
            )));
        }
        let block = cluster.claim_block(&spec, &self.host, lease).await?;
        Ok((spec, block))
    }

    /// The options netd adds to an overlay network's local record.
    pub fn options_for(&self, spec: &OverlaySpec) -> BTreeMap<String, String> {
        BTreeMap::from([
            (OPTION_VNI.to_string(), spec.vni.to_string()),
            (OPTION_VTEP.to_string(), self.settings.advertise.to_string()),
            (
                OPTION_PORT.to_string(),
                self.settings.vxlan_port.to_string(),
            ),
            (OPTION_NETWORK.to_string(), spec.name.clone()),
            (OPTION_CLUSTER_ID.to_string(), spec.id.clone()),
        ])
    }

    /// The MTU this host gives overlay network `spec`: its options' if they
    /// set one, else the one the cluster agreed when it was made (so every host
    /// has the same), else this host's default.
    pub fn mtu_of(&self, spec: &OverlaySpec) -> u32 {
        spec.options
            .get(drivers::bridge::OPTION_MTU)
            .and_then(|m| m.parse().ok())
            .or(spec.mtu)
            .unwrap_or(self.settings.mtu.min(DEFAULT_MTU))
    }

    /// The largest overlay MTU this host's underlay carries now (its link's
    /// MTU less VXLAN's headers, read again each time: an operator may have
    /// raised it), or the one worked out at start if the link cannot be read.
    async fn underlay_limit(&self) -> u32 {
        match self.nl.link_with_address(self.settings.advertise).await {
            Ok(Some(link)) => link.mtu.map_or(self.settings.mtu, |m| {
                m.saturating_sub(self.settings.mtu_overhead()).min(9000)
            }),
            _ => self.settings.mtu,
        }
    }

    /// One more block of overlay network `name` (cluster id `id`) for this
    /// host, whose blocks are full.
    pub async fn claim_another_block(&self, name: &str, id: &str) -> Result<IpNet, ClusterError> {
        let (cluster, lease) = self.cluster().await?;
        let spec = cluster
            .network(name)
            .await?
            .filter(|spec| spec.id == id)
            .ok_or_else(|| {
                ClusterError::Conflict(format!(
                    "overlay network {name} is no longer in the cluster as this host knows it; delete it here and create it again"
                ))
            })?;
        cluster.claim_block(&spec, &self.host, lease).await
    }

    /// Give back this host's `blocks` of overlay network `name`. Unreachable,
    /// they go with the lease if netd never gets back (or at its next join).
    pub async fn release_blocks(&self, name: &str, blocks: &[IpNet]) {
        let Ok((cluster, _)) = self.cluster().await else {
            return;
        };
        if blocks.is_empty() {
            return;
        }
        let spec = match cluster.network(name).await {
            Ok(Some(spec)) => spec,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(network = %name, error = %e, "looking up an overlay network to give blocks back");
                return;
            }
        };
        for &block in blocks {
            if let Err(e) = cluster.release_block(&spec, block, &self.host).await {
                tracing::warn!(network = %name, %block, error = %e, "releasing an address block");
            }
        }
    }

    /// This host no longer has network `name` (as far as a local network holds
    /// the blocks in `keep`, it still does): give back every other block etcd
    /// says it holds of it (also one a request claimed while the network was
    /// being deleted, which no record had yet), and remove the network from the
    /// cluster if no host holds a block.
    pub async fn forget(&self, name: &str, keep: &[IpNet]) {
        let Ok((cluster, _)) = self.cluster().await else {
            // The blocks go with the lease if netd never gets back.
            return;
        };
        match cluster.network(name).await {
            Ok(Some(spec)) => match cluster.blocks(&spec.id).await {
                Ok(claims) => {
                    let mine: Vec<IpNet> = claims
                        .into_iter()
                        .filter(|c| c.host == self.host && !keep.contains(&c.block))
                        .map(|c| c.block)
                        .collect();
                    self.release_blocks(name, &mine).await;
                }
                Err(e) => {
                    tracing::warn!(network = %name, error = %e, "listing this host's address blocks to give them back")
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(network = %name, error = %e, "looking up an overlay network to give its blocks back")
            }
        }
        match cluster.remove_network(name).await {
            Ok(_) | Err(ClusterError::Conflict(_)) => {}
            Err(e) => {
                tracing::warn!(network = %name, error = %e, "removing an overlay network from the cluster")
            }
        }
        self.wake();
    }

    /// Join now, before serving, if etcd answers within `wait`; otherwise
    /// [`Agent::run`] keeps trying in the background. Joined under the lease of
    /// a netd that was killed, give back what it claimed or published that no
    /// record here accounts for (a crash between a claim and its commit, or
    /// between a delete's commit and its withdrawal).
    pub async fn try_join(&self, wait: Duration, ctl: &Controller) {
        match tokio::time::timeout(wait, self.join()).await {
            Ok(Ok(())) => self.tidy_once(ctl).await,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "joining the cluster at start; netd serves and keeps trying")
            }
            Err(_) => tracing::warn!(
                "joining the cluster at start took too long; netd serves and keeps trying"
            ),
        }
    }

    /// [`Agent::tidy`], once per run: at the first join, whenever it comes.
    async fn tidy_once(&self, ctl: &Controller) {
        use std::sync::atomic::Ordering;
        if self.tidied.load(Ordering::Acquire) {
            return;
        }
        match self.tidy(ctl).await {
            Ok(()) => self.tidied.store(true, Ordering::Release),
            Err(e) => {
                tracing::warn!(error = %e, "giving back what an earlier run left in the cluster; trying again at the next sync")
            }
        }
    }

    async fn tidy(&self, ctl: &Controller) -> Result<(), ClusterError> {
        let _alone = self.claims.write().await;
        let (cluster, _) = self.cluster().await?;
        let nets: Vec<NetworkRecord> = ctl.networks().into_iter().filter(is_overlay).collect();
        for spec in cluster.networks().await? {
            let local = nets.iter().find(|n| cluster_id(n) == spec.id);
            let blocks: Vec<IpNet> = local
                .map(|n| n.subnets.iter().flat_map(|s| s.host_blocks()).collect())
                .unwrap_or_default();
            for claim in cluster.blocks(&spec.id).await? {
                if claim.host == self.host && !blocks.contains(&claim.block) {
                    tracing::info!(network = %spec.name, block = %claim.block, "giving back a block no record here holds");
                    cluster
                        .release_block(&spec, claim.block, &self.host)
                        .await?;
                }
            }
            let addresses: Vec<IpAddr> = local
                .map(|n| {
                    ctl.network_endpoints(&n.id)
                        .iter()
                        .flat_map(|e| e.addresses.iter().map(|a| a.addr()))
                        .collect()
                })
                .unwrap_or_default();
            for peer in cluster.peers(&spec.id).await?.0 {
                if peer.host == self.host && !addresses.contains(&peer.ip) {
                    tracing::info!(network = %spec.name, peer = %peer.ip, "withdrawing an endpoint no record here has");
                    cluster.delete_peer(&spec.id, peer.ip, &self.host).await?;
                }
            }
        }
        Ok(())
    }

    async fn join(&self) -> Result<(), ClusterError> {
        let mut joined = self.joined.write().await;
        if joined.is_some() {
            return Ok(());
        }
        let mut opts = ClusterOptions::new(self.settings.endpoints.clone());
        opts.keys = Keys::new(&self.settings.prefix);
        opts.tls = self.settings.tls.clone();
        let cluster = Cluster::connect(&opts).await?;
        let previous = std::fs::read_to_string(&self.lease_file)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok());
        let record = HostRecord {
            host: self.host.clone(),
            name: self.name.clone(),
            vtep: self.settings.advertise,
            vxlan_port: self.settings.vxlan_port,
            joined: now_secs(),
        };
        let membership =
            Membership::join(cluster.clone(), record, self.settings.lease_ttl, previous).await?;
        let _ = std::fs::write(&self.lease_file, membership.lease().to_string());
        tracing::info!(lease = membership.lease(), host = %self.host, "joined the cluster");
        *joined = Some(Joined {
            cluster,
            membership,
        });
        Ok(())
    }

    /// Keep this host's part of the cluster in line with its records until
    /// dropped: join (and join again), claim blocks again under a new lease,
    /// publish and withdraw endpoints, run a program per overlay network.
    pub async fn run(self: Arc<Self>, ctl: Arc<Controller>) {
        let mut sync = Sync::default();
        let mut hosts_followed: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            if self.joined.read().await.is_none() {
                if let Err(e) = self.join().await {
                    tracing::warn!(error = %e, "joining the cluster; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = self.wake.notified() => {}
                    }
                    continue;
                }
            }
            // Joined after serving began (etcd was slow or away at start).
            self.tidy_once(&ctl).await;
            let (cluster, lease, mut changes) = {
                let guard = self.joined.read().await;
                let Some(j) = guard.as_ref() else { continue };
                (
                    j.cluster.clone(),
                    j.membership.lease(),
                    j.membership.watch(),
                )
            };
            if hosts_followed.is_none() {
                hosts_followed = Some(tokio::spawn(
                    Arc::clone(&self).follow_hosts(cluster.clone(), Arc::clone(&ctl)),
                ));
            }
            if let Err(e) = self.sync(&ctl, &cluster, lease, &mut sync).await {
                tracing::warn!(error = %e, "syncing with the cluster");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = changes.changed() => {}
            }
        }
    }

    /// Keep the firewall's VXLAN filter to the cluster's hosts: VXLAN on this
    /// host's port is heard from them only (nothing until they are known).
    async fn follow_hosts(self: Arc<Self>, cluster: Cluster, ctl: Arc<Controller>) {
        let Some(fw) = ctl.firewall() else { return };
        let mut hosts: BTreeMap<String, IpAddr> = BTreeMap::new();
        let mut watch =
            cluster::Watch::<HostRecord>::start(cluster.clone(), cluster.keys().hosts());
        while let Some(event) = watch.next().await {
            match event {
                cluster::WatchEvent::Resync(all) => {
                    hosts = all.into_iter().map(|h| (h.host, h.vtep)).collect();
                }
                cluster::WatchEvent::Put(h) => {
                    hosts.insert(h.host, h.vtep);
                }
                cluster::WatchEvent::Delete(host) => {
                    hosts.remove(&host);
                }
            }
            let peers: Vec<IpAddr> = hosts
                .iter()
                .filter(|(host, _)| **host != self.host)
                .map(|(_, vtep)| *vtep)
                .collect();
            let text: String = peers.iter().map(|p| format!("{p}\n")).collect();
            let _ = std::fs::write(&self.peers_file, text);
            if let Err(e) = fw.set_vxlan(ctl.vxlan_filter(peers)).await {
                tracing::error!(error = %e, "updating the VXLAN peers in the firewall");
            }
        }
    }

    async fn sync(
        &self,
        ctl: &Controller,
        cluster: &Cluster,
        lease: i64,
        sync: &mut Sync,
    ) -> Result<(), ClusterError> {
        let nets: Vec<NetworkRecord> = ctl.networks().into_iter().filter(is_overlay).collect();
        if sync.lease != Some(lease) {
            // A new lease (the old one lapsed): what was published went with it.
            sync.published.clear();
            let _ = std::fs::write(&self.lease_file, lease.to_string());
            for net in &nets {
                let name = net.options.get(OPTION_NETWORK).unwrap_or(&net.name);
                let Some(spec) = cluster.network(name).await? else {
                    tracing::warn!(network = %net.name, "an overlay network this host has is gone from the cluster");
                    continue;
                };
                for block in net.subnets.iter().flat_map(|s| s.host_blocks()) {
                    if let Err(e) = cluster.reclaim_block(&spec, block, &self.host, lease).await {
                        tracing::error!(network = %net.name, %block, error = %e, "claiming an address block again");
                    }
                }
            }
            sync.lease = Some(lease);
        }
        // Programs: one per overlay network here.
        sync.programs
            .retain(|id, _| nets.iter().any(|n| &n.id == id));
        for net in &nets {
            if sync.programs.contains_key(&net.id) {
                continue;
            }
            let spec = crate::controller::network_spec(net);
            let view = NetView {
                id: cluster_id(net).to_string(),
                vxlan: drivers::overlay::vxlan_name(&spec),
                gateway: net.subnets.first().and_then(|s| s.gateway),
                bridge_mac: drivers::bridge::bridge_mac(&net.id),
            };
            sync.programs.insert(
                net.id.clone(),
                Program::start(
                    cluster.clone(),
                    self.nl.clone(),
                    self.host.clone(),
                    view,
                    Arc::clone(&self.counters),
                ),
            );
        }
        // Peers: this host's endpoints of overlay networks.
        let mut want: HashMap<(String, IpAddr), PeerRecord> = HashMap::new();
        for net in &nets {
            let cid = cluster_id(net);
            for ep in ctl.network_endpoints(&net.id) {
                for addr in &ep.addresses {
                    want.insert(
                        (cid.to_string(), addr.addr()),
                        PeerRecord {
                            ip: addr.addr(),
                            mac: ep.mac.clone(),
                            host: self.host.clone(),
                            vtep: self.settings.advertise,
                        },
                    );
                }
            }
        }
        for ((net, ip), peer) in &want {
            if sync.published.get(&(net.clone(), *ip)) != Some(peer) {
                match cluster.put_peer(net, peer, lease).await {
                    Ok(()) => {
                        sync.published.insert((net.clone(), *ip), peer.clone());
                    }
                    // Another host publishes that address: not taken over.
                    Err(ClusterError::Conflict(why)) => {
                        tracing::error!(peer = %ip, %why, "an endpoint here has an address another host publishes");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let gone: Vec<(String, IpAddr)> = sync
            .published
            .keys()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        for (net, ip) in gone {
            cluster.delete_peer(&net, ip, &self.host).await?;
            sync.published.remove(&(net, ip));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Sync {
    lease: Option<i64>,
    published: HashMap<(String, IpAddr), PeerRecord>,
    programs: HashMap<String, Program>,
}
