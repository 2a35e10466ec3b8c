//! The address allocator as a function of the records.
//!
//! At start the allocator is rebuilt from what is stored, and from nothing else:
//! native networks hold their pools, gateways and aux addresses; native endpoints
//! hold their addresses; dockerd holds the pools and addresses of its IpamDriver
//! calls (engine records). A network dockerd made holds a pool for each subnet
//! dockerd's own IPAM gave it (so nothing can overlap it), and no address: its
//! addresses came from an IPAM (netd's engine records, or dockerd's own).
//!
//! While running, the allocator is the records plus the holdings of operations in
//! flight: [`Holdings`] gives back what an operation took unless it committed, and
//! what a durable delete frees is given back only after the commit (see `persist`).

use super::records::Records;
use super::{lock, Controller};
use crate::model::{NetworkRecord, Origin};
use ipam::{Ipam, PoolId, PoolRequest};
use std::net::IpAddr;

/// The allocator for `records`, and what could not be put back (two records
/// claiming one address: reported, never silently dropped). Fails only when the
/// configured default pools are unusable.
pub(crate) fn derive(
    config: ipam::Config,
    records: &Records,
) -> Result<(Ipam, Vec<String>), ipam::IpamError> {
    let mut problems = Vec::new();
    let mut ipam = Ipam::new(config)?;
    for net in records.networks.values() {
        for s in &net.subnets {
            let Some(pool) = s.pool else { continue };
            let mut take = || -> Result<(), ipam::IpamError> {
                request_pool(&mut ipam, &pool, false, Some(net.name.clone()))?;
                // A Docker network's own pool holds its subnet only: its
                // addresses are dockerd's IPAM's.
                if net.origin != Origin::Native {
                    return Ok(());
                }
                for addr in s.aux_addresses.values() {
                    ipam.request_address(&pool, Some(*addr))?;
                }
                if let Some(gw) = s.gateway {
                    ipam.request_address(&pool, Some(gw))?;
                }
                Ok(())
            };
            if let Err(e) = take() {
                problems.push(format!("network {}, subnet {}: {e}", net.name, s.subnet));
            }
        }
    }
    for pool in records.engine_pools.values() {
        if let Err(e) = request_pool(&mut ipam, &pool.id, pool.serial, Some(engine_owner())) {
            problems.push(format!("dockerd's pool {}: {e}", pool.id));
        }
    }
    for a in records.engine_addresses.values() {
        if let Err(e) = ipam.request_address(&a.pool, Some(a.address)) {
            problems.push(format!(
                "dockerd's address {} in {}: {e}",
                a.address, a.pool
            ));
        }
    }
    for ep in records.endpoints.values() {
        if ep.origin != Origin::Native {
            continue;
        }
        let Some(net) = records.networks.get(&ep.network) else {
            continue;
        };
        for a in &ep.addresses {
            let Some(pool) = pool_of(records, net, a.addr()) else {
                continue;
            };
            if let Err(e) = ipam.request_address(&pool, Some(a.addr())) {
                problems.push(format!("endpoint {}: {e}", ep.name));
            }
        }
    }
    Ok((ipam, problems))
}

fn request_pool(
    ipam: &mut Ipam,
    id: &PoolId,
    serial: bool,
    owner: Option<String>,
) -> Result<(), ipam::IpamError> {
    ipam.request_pool(&PoolRequest {
        space: Some(id.space),
        subnet: Some(id.subnet),
        range: id.range,
        v6: id.subnet.addr().is_ipv6(),
        serial,
        owner,
        exclude: Vec::new(),
    })
    .map(|_| ())
}

/// Who engine pools belong to, as overlap errors name it.
pub(crate) fn engine_owner() -> String {
    "dockerd (through netd's IpamDriver)".to_string()
}

/// The pool a native endpoint's address on `net` comes from: the subnet's own,
/// or on a network dockerd made, the pool dockerd holds the subnet with
/// through netd's IpamDriver.
pub(crate) fn pool_of(records: &Records, net: &NetworkRecord, addr: IpAddr) -> Option<PoolId> {
    let s = net.subnets.iter().find(|s| s.subnet.contains(&addr))?;
    s.pool.or_else(|| engine_pool(records, s.subnet))
}

fn engine_pool(records: &Records, subnet: ipnet::IpNet) -> Option<PoolId> {
    records
        .engine_pools
        .values()
        .find(|p| p.id.subnet == subnet && !p.released)
        .map(|p| p.id)
}

/// Where a native endpoint on `net` gets its addresses: each subnet and its
/// pool. A network dockerd made with Docker's own IPAM has none netd may hand
/// out (dockerd chooses its containers' addresses without asking netd).
pub(crate) fn endpoint_pools(
    records: &Records,
    net: &NetworkRecord,
) -> Result<Vec<(ipnet::IpNet, PoolId)>, super::ControllerError> {
    if net.origin == Origin::Native {
        return Ok(net
            .subnets
            .iter()
            .filter_map(|s| s.pool.map(|p| (s.subnet, p)))
            .collect());
    }
    net.subnets
        .iter()
        .map(|s| match engine_pool(records, s.subnet) {
            Some(p) => Ok((s.subnet, p)),
            None => Err(super::ControllerError::Conflict(format!(
                "network {} was made by dockerd with Docker's own IPAM, which gives out addresses without netd: only dockerd's containers can join it; create it with `--ipam-driver netd` to attach other runtimes' containers",
                net.name
            ))),
        })
        .collect()
}

/// Allocator holdings made by an operation: given back unless committed.
pub(crate) struct Holdings<'a> {
    ctl: &'a Controller,
    pub(crate) pools: Vec<PoolId>,
    pub(crate) addresses: Vec<(PoolId, IpAddr)>,
}

impl<'a> Holdings<'a> {
    pub(crate) fn new(ctl: &'a Controller) -> Self {
        Holdings {
            ctl,
            pools: Vec::new(),
            addresses: Vec::new(),
        }
    }

    /// The records that hold them are durable: keep them.
    pub(crate) fn commit(mut self) {
        self.pools.clear();
        self.addresses.clear();
    }
}

impl Drop for Holdings<'_> {
    fn drop(&mut self) {
        if self.pools.is_empty() && self.addresses.is_empty() {
            return;
        }
        self.ctl.give_back(
            std::mem::take(&mut self.pools),
            std::mem::take(&mut self.addresses),
        );
    }
}

impl Controller {
    /// Give addresses and pools back to the allocator: what an operation took and
    /// did not commit, or what a durable delete freed.
    pub(crate) fn give_back(&self, pools: Vec<PoolId>, addresses: Vec<(PoolId, IpAddr)>) {
        let mut ipam = lock(&self.ipam);
        for (pool, addr) in addresses.into_iter().rev() {
            if let Err(e) = ipam.release_address(&pool, addr) {
                tracing::warn!(%pool, %addr, error = %e, "could not give back an address");
            }
        }
        for pool in pools.into_iter().rev() {
            if let Err(e) = ipam.release_pool(&pool) {
                tracing::warn!(%pool, error = %e, "could not give back a pool");
            }
        }
    }

    /// The addresses an endpoint holds in the allocator (none for dockerd's).
    pub(crate) fn endpoint_holdings(
        &self,
        net: &NetworkRecord,
        ep: &crate::model::EndpointRecord,
    ) -> Vec<(PoolId, IpAddr)> {
        if ep.origin != Origin::Native {
            return Vec::new();
        }
        let records = self.records();
        ep.addresses
            .iter()
            .filter_map(|a| pool_of(&records, net, a.addr()).map(|p| (p, a.addr())))
            .collect()
    }
}
