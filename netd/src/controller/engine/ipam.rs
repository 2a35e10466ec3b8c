//! The IpamDriver side: pools and addresses dockerd holds, each an engine record
//! committed before the answer, so what dockerd holds survives any crash exactly
//! as acknowledged, and the allocator (derived from the records) agrees.
//!
//! dockerd can only name its own pools: a pool id with no engine record, even one
//! naming a subnet a native network holds, is unknown here. Releases dockerd asks
//! for while a network or endpoint still uses the pool or address are deferred to
//! when that user goes: dockerd ignores a failed release and would forget it.

use crate::controller::addressing::check_subnet;
use crate::controller::allocation::{engine_owner, Holdings};
use crate::controller::persist::Op;
use crate::controller::records::Records;
use crate::controller::{Controller, ControllerError};
use crate::model::{
    engine_address_key, now, EndpointRecord, EngineAddressRecord, EnginePoolRecord, NetworkRecord,
    Origin,
};
use crate::store::Kind;
use ipam::{AddressSpace, PoolId, PoolRequest};
use ipnet::IpNet;
use std::net::IpAddr;

/// `RequestPool`, as dockerd asks it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnginePoolRequest {
    /// The address space (`LocalDefault`, `GlobalDefault`, or empty).
    pub space: String,
    /// The subnet, or any free one.
    pub pool: Option<IpNet>,
    /// The range addresses come from (`--ip-range`).
    pub sub_pool: Option<IpNet>,
    /// An IPv6 pool.
    pub v6: bool,
    /// Round-robin allocation.
    pub serial: bool,
}

fn space_of(name: &str) -> Result<AddressSpace, ControllerError> {
    match name {
        "" | "LocalDefault" | "local" => Ok(AddressSpace::Local),
        "GlobalDefault" | "global" => Ok(AddressSpace::Global),
        other => Err(ControllerError::Invalid(format!(
            "unknown address space {other:?}: use LocalDefault or GlobalDefault"
        ))),
    }
}

fn parse_pool(id: &str) -> Result<PoolId, ControllerError> {
    id.parse()
        .map_err(|e: ipam::IpamError| ControllerError::Invalid(e.to_string()))
}

fn unknown_pool(id: &PoolId) -> ControllerError {
    ControllerError::NotFound {
        kind: "pool held by dockerd",
        key: id.to_string(),
    }
}

impl Controller {
    /// `IpamDriver.RequestPool`.
    pub async fn engine_request_pool(
        &self,
        req: EnginePoolRequest,
    ) -> Result<PoolId, ControllerError> {
        let space = space_of(&req.space)?;
        if let Some(pool) = req.pool {
            if pool.addr().is_ipv6() != req.v6 {
                return Err(ControllerError::Invalid(format!(
                    "pool {pool} is not an IPv{} subnet",
                    if req.v6 { 6 } else { 4 }
                )));
            }
            check_subnet(&pool)?;
        } else if req.sub_pool.is_some() {
            return Err(ControllerError::Invalid(
                "an ip range needs a subnet to belong to".into(),
            ));
        }
        let exclude = match req.pool {
            Some(_) => Vec::new(),
            None => self.host_exclusions().await,
        };
        let mut holdings = Holdings::new(self);
        let id = self
            .lock_ipam()
            .request_pool(&PoolRequest {
                space: Some(space),
                subnet: req.pool,
                range: req.sub_pool,
                v6: req.v6,
                serial: req.serial,
                owner: Some(engine_owner()),
                exclude,
            })
            .map_err(ControllerError::ipam("allocating a pool for dockerd"))?;
        holdings.pools.push(id);
        let record = EnginePoolRecord {
            id,
            serial: req.serial,
            released: false,
            created: now(),
        };
        self.commit(vec![Op::EnginePool(record)]).await?;
        holdings.commit();
        Ok(id)
    }

    /// `IpamDriver.ReleasePool`.
    pub async fn engine_release_pool(&self, pool: &str) -> Result<(), ControllerError> {
        let id = parse_pool(pool)?;
        let _decide = self.engine_ipam.lock().await;
        let (record, in_use, addresses) = {
            let r = self.records();
            let record = r
                .engine_pools
                .get(&id.to_string())
                .cloned()
                .ok_or_else(|| unknown_pool(&id))?;
            let in_use = r
                .networks
                .values()
                .any(|n| n.subnets.iter().any(|s| s.subnet == id.subnet));
            (record, in_use, addresses_of(&r, &id))
        };
        if record.released {
            return Ok(());
        }
        if in_use {
            // A network still has this subnet (its DeleteNetwork failed): the pool
            // goes when the network does, never before.
            let record = EnginePoolRecord {
                released: true,
                ..record
            };
            return self.commit(vec![Op::EnginePool(record)]).await;
        }
        let mut ops: Vec<Op> = addresses
            .iter()
            .map(|a| Op::Delete(Kind::EngineAddress, a.key()))
            .collect();
        ops.push(Op::Delete(Kind::EnginePool, record.key()));
        self.commit(ops).await?;
        self.give_back(vec![id], Vec::new());
        Ok(())
    }

    /// `IpamDriver.RequestAddress`: the given address, or the lowest free one.
    pub async fn engine_request_address(
        &self,
        pool: &str,
        address: Option<IpAddr>,
        gateway: bool,
    ) -> Result<IpNet, ControllerError> {
        let id = parse_pool(pool)?;
        let _decide = self.engine_ipam.lock().await;
        {
            let r = self.records();
            match r.engine_pools.get(&id.to_string()) {
                Some(p) if !p.released => {}
                Some(_) => {
                    return Err(ControllerError::Conflict(format!(
                        "pool {id} was released by dockerd"
                    )))
                }
                None => return Err(unknown_pool(&id)),
            }
        }
        // On an overlay network (made already: dockerd asks the gateway
        // before), a container's address comes from this host's blocks only.
        let overlay = if gateway {
            None
        } else {
            self.records()
                .networks
                .values()
                .find(|n| {
                    n.origin == Origin::Docker
                        && crate::overlay::is_overlay(n)
                        && n.subnets.iter().any(|s| s.subnet == id.subnet)
                })
                .cloned()
        };
        let mut holdings = Holdings::new(self);
        let doing = format!("allocating an address in {} for dockerd", id.subnet);
        let addr = match (overlay, address) {
            (Some(net), Some(a)) => {
                crate::controller::overlay_addresses::check_in_blocks(&net, "address", a)?;
                self.lock_ipam()
                    .request_address(&id, Some(a))
                    .map_err(ControllerError::ipam(doing))?
            }
            (Some(net), None) => self.take_overlay_address(&net.id, id.subnet, &id).await?,
            _ => self
                .lock_ipam()
                .request_address(&id, address)
                .map_err(ControllerError::ipam(doing))?,
        };
        holdings.addresses.push((id, addr.addr()));
        let record = EngineAddressRecord {
            pool: id,
            address: addr.addr(),
            gateway,
            released: false,
            created: now(),
        };
        self.commit(vec![Op::EngineAddress(record)]).await?;
        holdings.commit();
        Ok(addr)
    }

    /// `IpamDriver.ReleaseAddress`.
    pub async fn engine_release_address(
        &self,
        pool: &str,
        address: IpAddr,
    ) -> Result<(), ControllerError> {
        let id = parse_pool(pool)?;
        let _decide = self.engine_ipam.lock().await;
        let (record, user) = {
            let r = self.records();
            if !r.engine_pools.contains_key(&id.to_string()) {
                return Err(unknown_pool(&id));
            }
            let record = r
                .engine_addresses
                .get(&engine_address_key(&id, address))
                .cloned()
                .ok_or_else(|| ControllerError::NotFound {
                    kind: "address held by dockerd",
                    key: format!("{address} in {id}"),
                })?;
            (record, address_user(&r, address, &id.subnet))
        };
        if record.released {
            return Ok(());
        }
        if user.is_some() {
            // Still an endpoint's or a network's gateway: freed with it.
            let record = EngineAddressRecord {
                released: true,
                ..record
            };
            return self.commit(vec![Op::EngineAddress(record)]).await;
        }
        self.commit(vec![Op::Delete(Kind::EngineAddress, record.key())])
            .await?;
        self.give_back(Vec::new(), vec![(id, address)]);
        Ok(())
    }

    /// Engine pools dockerd released while `net` used them, which go with it: the
    /// pools to give back, and the record deletes (their addresses' too).
    pub(crate) fn engine_pools_freed_with(&self, net: &NetworkRecord) -> (Vec<PoolId>, Vec<Op>) {
        if net.origin != Origin::Docker {
            return (Vec::new(), Vec::new());
        }
        let r = self.records();
        let mut pools = Vec::new();
        let mut ops = Vec::new();
        for p in r
            .engine_pools
            .values()
            .filter(|p| net.subnets.iter().any(|s| s.subnet == p.id.subnet))
        {
            if p.released {
                for a in addresses_of(&r, &p.id) {
                    ops.push(Op::Delete(Kind::EngineAddress, a.key()));
                }
                ops.push(Op::Delete(Kind::EnginePool, p.key()));
                pools.push(p.id);
            }
        }
        (pools, ops)
    }

    /// Addresses dockerd released while `endpoints` held them (or `gateways` were
    /// theirs), which go with them.
    pub(crate) fn engine_addresses_freed_with(
        &self,
        endpoints: &[&EndpointRecord],
        gateways: &[IpAddr],
    ) -> (Vec<(PoolId, IpAddr)>, Vec<Op>) {
        let r = self.records();
        let mut freed = Vec::new();
        let mut ops = Vec::new();
        for a in r.engine_addresses.values().filter(|a| a.released) {
            let held = gateways.contains(&a.address)
                || endpoints.iter().any(|e| {
                    e.addresses
                        .iter()
                        .any(|x| x.addr() == a.address && a.pool.subnet.contains(&x.addr()))
                });
            if held {
                ops.push(Op::Delete(Kind::EngineAddress, a.key()));
                freed.push((a.pool, a.address));
            }
        }
        (freed, ops)
    }
}

impl Controller {
    /// Pools and addresses dockerd released while they were in use whose user is
    /// gone now (it went without netd hearing: a crash in between), freed.
    /// Returns them, as `pool` and `pool address`.
    pub(crate) async fn engine_free_released(&self) -> Result<Vec<String>, ControllerError> {
        let _decide = self.engine_ipam.lock().await;
        let (pools, addresses, ops) = {
            let r = self.records();
            let mut ops = Vec::new();
            let pools: Vec<PoolId> = r
                .engine_pools
                .values()
                .filter(|p| p.released)
                .filter(|p| {
                    !r.networks
                        .values()
                        .any(|n| n.subnets.iter().any(|s| s.subnet == p.id.subnet))
                })
                .map(|p| p.id)
                .collect();
            for id in &pools {
                for a in addresses_of(&r, id) {
                    ops.push(Op::Delete(Kind::EngineAddress, a.key()));
                }
                ops.push(Op::Delete(Kind::EnginePool, id.to_string()));
            }
            let addresses: Vec<(PoolId, IpAddr)> = r
                .engine_addresses
                .values()
                .filter(|a| a.released && !pools.contains(&a.pool))
                .filter(|a| address_user(&r, a.address, &a.pool.subnet).is_none())
                .map(|a| (a.pool, a.address))
                .collect();
            for (pool, addr) in &addresses {
                ops.push(Op::Delete(
                    Kind::EngineAddress,
                    engine_address_key(pool, *addr),
                ));
            }
            (pools, addresses, ops)
        };
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.commit(ops).await?;
        let freed = pools
            .iter()
            .map(ToString::to_string)
            .chain(addresses.iter().map(|(p, a)| format!("{p} {a}")))
            .collect();
        self.give_back(pools, addresses);
        Ok(freed)
    }
}

/// The engine-held addresses of pool `id`.
fn addresses_of(r: &Records, id: &PoolId) -> Vec<EngineAddressRecord> {
    let prefix = format!("{id} ");
    r.engine_addresses
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, a)| a.clone())
        .collect()
}

/// Who uses `address` of `subnet`: a network (as its gateway) or an endpoint.
fn address_user(r: &Records, address: IpAddr, subnet: &IpNet) -> Option<String> {
    for n in r.networks.values() {
        if n.subnets
            .iter()
            .any(|s| s.subnet == *subnet && s.gateway == Some(address))
        {
            return Some(format!("network {}", n.name));
        }
    }
    r.endpoints
        .values()
        .find(|e| {
            e.addresses
                .iter()
                .any(|a| a.addr() == address && subnet.contains(&a.addr()))
        })
        .map(|e| format!("endpoint {}", e.name))
}
