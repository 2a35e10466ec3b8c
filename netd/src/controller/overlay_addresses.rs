//! Endpoint addresses on an overlay network: from this host's address blocks
//! only, so no two hosts hand out one address, and with one more block claimed
//! from the cluster when they are all full. A container start waits on etcd
//! only then.
//!
//! A block is claimed in etcd before it is recorded here; a crash in between
//! leaves a claim no record accounts for, which the agent gives back when netd
//! joins again.

use super::persist::Op;
use super::{Controller, ControllerError};
use ipam::PoolId;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

/// What an overlay subnet's record says of this host's share of it.
struct Share {
    /// The network's name in the cluster.
    name: String,
    /// Its id in the cluster.
    cluster_id: String,
    blocks: Vec<IpNet>,
}

impl Controller {
    /// Hand out an address on overlay network `network_id` in `subnet` (whose
    /// allocator pool is `pool`), from this host's blocks; when they are full,
    /// claim another block first.
    pub(crate) async fn take_overlay_address(
        &self,
        network_id: &str,
        subnet: IpNet,
        pool: &PoolId,
    ) -> Result<IpNet, ControllerError> {
        // Bounded: each round claims a block, and a subnet has only so many.
        for _ in 0..64 {
            let seen = self.overlay_share(network_id, subnet)?;
            if let Some(addr) = self.take_from_blocks(pool, &seen.blocks)? {
                return Ok(addr);
            }
            let _grow = self.overlay_growth.lock().await;
            let share = self.overlay_share(network_id, subnet)?;
            if share.blocks != seen.blocks {
                // Another request claimed a block while this one waited.
                continue;
            }
            let agent = self.overlay().cloned().ok_or_else(|| {
                ControllerError::Unavailable(
                    "this host's address blocks are full, and netd is not in a cluster to claim another".into(),
                )
            })?;
            let _claiming = agent.claiming().await;
            let block = agent
                .claim_another_block(&share.name, &share.cluster_id)
                .await
                .map_err(crate::overlay::cluster_error)?;
            tracing::info!(network = %share.name, %block, "claimed another address block: the ones before are full");
            let mut record = match self.network_record(network_id) {
                Ok(r) => r,
                Err(e) => {
                    agent.release_blocks(&share.name, &[block]).await;
                    return Err(e);
                }
            };
            for s in record.subnets.iter_mut().filter(|s| s.subnet == subnet) {
                s.more_blocks.push(block);
            }
            if let Err(e) = self.commit(vec![Op::Network(record)]).await {
                agent.release_blocks(&share.name, &[block]).await;
                return Err(e);
            }
        }
        Err(ControllerError::Conflict(format!(
            "network {network_id}: no address found in this host's blocks, claimed again and again"
        )))
    }

    /// The blocks local overlay networks hold of cluster network `name`.
    pub(crate) fn blocks_held(&self, name: &str) -> Vec<IpNet> {
        self.networks()
            .iter()
            .filter(|n| crate::overlay::is_overlay(n))
            .filter(|n| {
                n.options
                    .get(crate::overlay::OPTION_NETWORK)
                    .unwrap_or(&n.name)
                    == name
            })
            .flat_map(|n| {
                n.subnets
                    .iter()
                    .flat_map(|s| s.host_blocks())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn network_record(&self, id: &str) -> Result<crate::model::NetworkRecord, ControllerError> {
        self.records()
            .networks
            .get(id)
            .cloned()
            .ok_or_else(|| ControllerError::NotFound {
                kind: "network",
                key: id.to_string(),
            })
    }

    fn overlay_share(&self, network_id: &str, subnet: IpNet) -> Result<Share, ControllerError> {
        let net = self.network_record(network_id)?;
        let name = net
            .options
            .get(crate::overlay::OPTION_NETWORK)
            .unwrap_or(&net.name)
            .clone();
        let blocks = net
            .subnets
            .iter()
            .filter(|s| s.subnet == subnet)
            .flat_map(|s| s.host_blocks())
            .collect();
        Ok(Share {
            name,
            cluster_id: crate::overlay::cluster_id(&net).to_string(),
            blocks,
        })
    }

    /// The lowest free address in `blocks`, handed out; `None` when all are full.
    fn take_from_blocks(
        &self,
        pool: &PoolId,
        blocks: &[IpNet],
    ) -> Result<Option<IpNet>, ControllerError> {
        let mut ipam = self.lock_ipam();
        for block in blocks {
            let IpNet::V4(b) = block else { continue };
            let (lo, hi) = (u32::from(b.network()), u32::from(b.broadcast()));
            for n in lo..=hi {
                let candidate = IpAddr::V4(Ipv4Addr::from(n));
                match ipam.request_address(pool, Some(candidate)) {
                    Ok(addr) => return Ok(Some(addr)),
                    // Held, or the subnet's own network or broadcast address.
                    Err(ipam::IpamError::InUse { .. } | ipam::IpamError::Reserved { .. }) => {}
                    Err(e) => {
                        return Err(ControllerError::ipam(format!(
                            "allocating an address in {}",
                            pool.subnet
                        ))(e))
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Refuse `addr` (named `what` in the error) on overlay network `net` unless
/// it is in one of this host's blocks: another host may hold any other address.
pub(crate) fn check_in_blocks(
    net: &crate::model::NetworkRecord,
    what: &str,
    addr: IpAddr,
) -> Result<(), ControllerError> {
    let blocks: Vec<String> = net
        .subnets
        .iter()
        .filter(|s| s.subnet.contains(&addr))
        .flat_map(|s| s.host_blocks())
        .filter(|b| !b.contains(&addr))
        .map(|b| b.to_string())
        .collect();
    let inside = net
        .subnets
        .iter()
        .flat_map(|s| s.host_blocks())
        .any(|b| b.contains(&addr));
    if inside || blocks.is_empty() {
        return Ok(());
    }
    Err(ControllerError::Invalid(format!(
        "{what} {addr}: on an overlay network this host hands out addresses from its blocks only ({}; another host may hold {addr})",
        blocks.join(", ")
    )))
}
