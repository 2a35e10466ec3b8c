//! Creating and deleting endpoints.

use super::addressing::check_mac_free;
use super::allocation::Holdings;
use super::networks::new_random_id;
use super::persist::Op;
use super::{lock, Controller, ControllerError, EndpointCreate, NameGuard, NetSlot};
use crate::model::{
    format_mac, generate_mac, now, parse_mac, short_id, EndpointRecord, Name, NetworkRecord, Origin,
};
use crate::store::Kind;
use std::net::IpAddr;
use std::sync::Arc;

/// Refuse a native operation on an object dockerd made.
pub(crate) fn not_engine_owned(
    what: &str,
    name: &str,
    origin: Origin,
) -> Result<(), ControllerError> {
    if origin == Origin::Docker {
        return Err(ControllerError::Conflict(format!(
            "{what} {name} belongs to dockerd; change it through docker"
        )));
    }
    Ok(())
}

/// An endpoint allocated but not yet stored, with what undoes it.
pub(crate) struct Prepared<'a> {
    pub record: EndpointRecord,
    pub holdings: Holdings<'a>,
    pub name: NameGuard<'a>,
    /// Claims on its MAC (and addresses), kept until its record is stored.
    pub _claims: Vec<NameGuard<'a>>,
}

impl Controller {
    /// Allocate an endpoint's addresses and reserve its name. The caller holds the
    /// network's gate (shared) and stores the record.
    pub(crate) async fn prepare_endpoint<'a>(
        &'a self,
        net: &NetworkRecord,
        slot: &'a Arc<NetSlot>,
        req: &EndpointCreate,
    ) -> Result<Prepared<'a>, ControllerError> {
        // Each subnet's pool: on a network dockerd made, the one dockerd holds
        // through netd's IpamDriver, so the two never hand out one address.
        let pools = super::allocation::endpoint_pools(&self.records(), net)?;
        let id = new_random_id()?;
        let name = match &req.name {
            Some(n) => Name::parse("endpoint", n).map_err(ControllerError::Invalid)?,
            None => Name::parse("endpoint", &format!("ep-{}", short_id(&id)))
                .map_err(ControllerError::Invalid)?,
        };
        super::requests::check_aliases(&req.aliases).map_err(ControllerError::Invalid)?;
        let fixed_mac = match &req.mac {
            Some(m) => Some(parse_mac(m).map_err(ControllerError::Invalid)?),
            None => None,
        };
        for (what, addr, v4) in [("ip", req.ip, true), ("ipv6", req.ipv6, false)] {
            let Some(addr) = addr else { continue };
            if addr.is_ipv4() != v4 {
                return Err(ControllerError::Invalid(format!(
                    "{what} {addr} is not an IPv{} address",
                    if v4 { 4 } else { 6 }
                )));
            }
            if !net.subnets.iter().any(|s| s.subnet.contains(&addr)) {
                let subnets: Vec<String> =
                    net.subnets.iter().map(|s| s.subnet.to_string()).collect();
                return Err(ControllerError::Invalid(format!(
                    "{what} {addr} is not in any subnet of network {} ({})",
                    net.name,
                    if subnets.is_empty() {
                        "none".to_string()
                    } else {
                        subnets.join(", ")
                    }
                )));
            }
        }
        let overlay = crate::overlay::is_overlay(net);
        if overlay {
            // Another host may hold any address outside this host's blocks.
            for (what, addr) in [("ip", req.ip), ("ipv6", req.ipv6)] {
                let Some(addr) = addr else { continue };
                super::overlay_addresses::check_in_blocks(net, what, addr)?;
            }
        }
        let guard = NameGuard::reserve(&slot.endpoint_names, name.as_str(), || {
            format!("network {} has an endpoint named {name} already", net.name)
        })?;
        let mut holdings = Holdings::new(self);
        let mut addresses = Vec::new();
        if overlay && req.ip.is_none() {
            // An overlay network has one subnet, an IPv4 one.
            for (subnet, pool) in &pools {
                let addr = self.take_overlay_address(&net.id, *subnet, pool).await?;
                holdings.addresses.push((*pool, addr.addr()));
                addresses.push(addr);
            }
        } else {
            let mut ipam = self.lock_ipam();
            for (subnet, pool) in &pools {
                let wanted: Option<IpAddr> = [req.ip, req.ipv6]
                    .into_iter()
                    .flatten()
                    .find(|a| subnet.contains(a));
                let addr = ipam
                    .request_address(pool, wanted)
                    .map_err(ControllerError::ipam(format!(
                        "allocating an address in {subnet} for endpoint {name}"
                    )))?;
                holdings.addresses.push((*pool, addr.addr()));
                addresses.push(addr);
            }
        }
        let mac = match fixed_mac {
            Some(m) => m,
            None => generate_mac(&addresses).map_err(|source| ControllerError::Io {
                doing: "making a MAC address from",
                path: "/dev/urandom".into(),
                source,
            })?,
        };
        let mac = format_mac(&mac);
        let mac_claim = slot.claim(format!("MAC address {mac}"), &net.name)?;
        check_mac_free(&self.records(), net, &id, &mac)?;
        Ok(Prepared {
            record: EndpointRecord {
                id,
                name: name.to_string(),
                network: net.id.clone(),
                addresses,
                mac,
                join: None,
                attached: false,
                ports: Vec::new(),
                aliases: req.aliases.clone(),
                origin: Origin::Native,
                created: now(),
            },
            holdings,
            name: guard,
            _claims: vec![mac_claim],
        })
    }

    /// Create an endpoint: addresses allocated and stored, not joined anywhere.
    pub async fn create_endpoint(
        &self,
        req: EndpointCreate,
    ) -> Result<EndpointRecord, ControllerError> {
        let net = self.network(&req.network)?;
        let slot = self.slot(&net.id);
        let _gate = slot.gate.read().await;
        let net = self.network_by_id(&net.id)?;
        let prepared = self.prepare_endpoint(&net, &slot, &req).await?;
        self.commit(vec![Op::Endpoint(prepared.record.clone())])
            .await?;
        prepared.holdings.commit();
        prepared.name.commit();
        Ok(prepared.record)
    }

    /// Delete an endpoint that is not joined.
    pub async fn delete_endpoint(&self, key: &str) -> Result<EndpointRecord, ControllerError> {
        let ep = self.endpoint(key)?;
        not_engine_owned("endpoint", &ep.name, ep.origin)?;
        let _claim = self.claim_endpoint(&ep)?;
        let slot = self.slot(&ep.network);
        let _gate = slot.gate.read().await;
        let ep = self.endpoint_by_id(&ep.id)?;
        if let Some(join) = &ep.join {
            let whom = join
                .sandbox
                .as_deref()
                .or(join.sandbox_key.as_deref())
                .unwrap_or("a sandbox");
            return Err(ControllerError::Conflict(format!(
                "endpoint {} is joined to sandbox {}; leave it first",
                ep.name,
                short_id(whom)
            )));
        }
        let net = self.network_by_id(&ep.network)?;
        self.commit(vec![Op::Delete(Kind::Endpoint, ep.id.clone())])
            .await?;
        self.give_back(Vec::new(), self.endpoint_holdings(&net, &ep));
        lock(&slot.endpoint_names).remove(&ep.name);
        Ok(ep)
    }

    /// Keep other operations off this endpoint until the claim drops.
    pub(crate) fn claim_endpoint(
        &self,
        ep: &EndpointRecord,
    ) -> Result<NameGuard<'_>, ControllerError> {
        NameGuard::reserve(&self.busy_endpoints, &ep.id, || {
            format!(
                "endpoint {} is busy with another operation; try again",
                ep.name
            )
        })
    }
}
