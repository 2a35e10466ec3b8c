//! `GET /v1/cluster` (`netd cluster status`): the members, and for each overlay
//! network its blocks, its peers and whether this host's kernel matches them.

use super::agent::{cluster_id, is_overlay, Agent, OPTION_NETWORK};
use super::program::{plan, Fix, NetView};
use crate::controller::Controller;
use cluster::{BlockClaim, HostRecord, PeerRecord};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The cluster as this host sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This host's id.
    pub host: String,
    /// Its VTEP.
    pub advertise: IpAddr,
    /// The VXLAN port.
    pub vxlan_port: u16,
    /// The etcd endpoints.
    pub store: Vec<String>,
    /// Whether this host holds a live lease.
    pub joined: bool,
    /// Why the rest is missing (etcd unreachable), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The member hosts.
    pub hosts: Vec<HostRecord>,
    /// The overlay networks.
    pub networks: Vec<NetworkStatus>,
}

/// One overlay network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// Its name in the cluster.
    pub name: String,
    /// Its id in the cluster.
    pub id: String,
    /// Its VNI.
    pub vni: u32,
    /// Its subnet.
    pub subnet: IpNet,
    /// The blocks hosts hold.
    pub blocks: Vec<BlockClaim>,
    /// Its endpoints on every host.
    pub peers: Vec<PeerRecord>,
    /// This host's kernel against the peers (for networks this host has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelMatch>,
}

/// How this host's VXLAN device compares with the peer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMatch {
    /// Entries missing or wrong.
    pub missing: usize,
    /// Entries no peer accounts for.
    pub extra: usize,
}

impl Agent {
    /// The cluster as this host sees it (what etcd could not answer is said in
    /// `error`).
    pub async fn status(&self, ctl: &Controller) -> ClusterStatus {
        let mut status = ClusterStatus {
            host: self.host().to_string(),
            advertise: self.settings().advertise,
            vxlan_port: self.settings().vxlan_port,
            store: self.settings().endpoints.clone(),
            joined: self.counters().2,
            error: None,
            hosts: Vec::new(),
            networks: Vec::new(),
        };
        let result = async {
            let (cluster, _) = self.connected().await?;
            status.hosts = cluster.hosts().await?;
            let local: BTreeMap<String, crate::model::NetworkRecord> = ctl
                .networks()
                .into_iter()
                .filter(is_overlay)
                .map(|n| {
                    let name = n
                        .options
                        .get(OPTION_NETWORK)
                        .cloned()
                        .unwrap_or(n.name.clone());
                    (name, n)
                })
                .collect();
            for spec in cluster.networks().await? {
                let blocks = cluster.blocks(&spec.id).await?;
                let (peers, _) = cluster.peers(&spec.id).await?;
                let kernel = match local.get(&spec.name) {
                    Some(net) if cluster_id(net) == spec.id => self.kernel_match(net, &peers).await,
                    _ => None,
                };
                status.networks.push(NetworkStatus {
                    name: spec.name,
                    id: spec.id,
                    vni: spec.vni,
                    subnet: spec.subnet,
                    blocks,
                    peers,
                    kernel,
                });
            }
            Ok::<(), cluster::ClusterError>(())
        }
        .await;
        if let Err(e) = result {
            status.error = Some(e.to_string());
        }
        status
    }

    async fn kernel_match(
        &self,
        net: &crate::model::NetworkRecord,
        peers: &[PeerRecord],
    ) -> Option<KernelMatch> {
        let spec = crate::controller::network_spec(net);
        let view = NetView {
            id: cluster_id(net).to_string(),
            vxlan: drivers::overlay::vxlan_name(&spec),
            gateway: net.subnets.first().and_then(|s| s.gateway),
            bridge_mac: drivers::bridge::bridge_mac(&net.id),
        };
        let index = self.netlink().link(&view.vxlan).await.ok().flatten()?.index;
        let table = peers
            .iter()
            .filter(|p| p.host != self.host())
            .map(|p| (p.ip, p.clone()))
            .collect();
        let fixes = plan(self.netlink(), index, &view, &table).await.ok()?;
        let extra = fixes
            .iter()
            .filter(|f| matches!(f, Fix::DeleteNeighbour(_) | Fix::DeleteFdb(..)))
            .count();
        Some(KernelMatch {
            missing: fixes.len() - extra,
            extra,
        })
    }
}
