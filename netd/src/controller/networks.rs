//! Creating and deleting networks.

use super::persist::Op;
use super::{lock, network_spec, Controller, ControllerError, Holdings, NameGuard, NetworkCreate};
use crate::model::{new_id, now, short_id, Name, NetworkRecord, Origin, SubnetRecord};
use crate::store::Kind;
use ipam::{Family, PoolRequest};
use ipnet::IpNet;

fn io(doing: &'static str) -> impl FnOnce(std::io::Error) -> ControllerError {
    move |source| ControllerError::Io {
        doing,
        path: "/dev/urandom".into(),
        source,
    }
}

pub(crate) fn new_random_id() -> Result<String, ControllerError> {
    new_id().map_err(io("making an id from"))
}

/// Check a subnet request against itself before anything is allocated.
fn check_subnet(req: &super::SubnetRequest) -> Result<(), ControllerError> {
    let Some(subnet) = req.subnet else {
        if req.gateway.is_some() || req.ip_range.is_some() || !req.aux_addresses.is_empty() {
            return Err(ControllerError::Invalid(
                "a gateway, ip range or aux address needs a subnet to belong to".into(),
            ));
        }
        return Ok(());
    };
    if subnet.trunc() != subnet {
        return Err(ControllerError::Invalid(format!(
            "invalid subnet {subnet}: host bits are set; did you mean {}?",
            subnet.trunc()
        )));
    }
    if req.ipv6 != matches!(subnet, IpNet::V6(_)) && req.ipv6 {
        return Err(ControllerError::Invalid(format!(
            "subnet {subnet} is not IPv6, but ipv6 was asked for"
        )));
    }
    let inside = |what: &str, addr: std::net::IpAddr| {
        if subnet.contains(&addr) {
            Ok(())
        } else {
            Err(ControllerError::Invalid(format!(
                "{what} {addr} is outside subnet {subnet}"
            )))
        }
    };
    if let Some(gw) = req.gateway {
        inside("gateway", gw)?;
    }
    if let Some(range) = req.ip_range {
        if !subnet.contains(&range) || range.trunc() != range {
            return Err(ControllerError::Invalid(format!(
                "ip range {range} is not a subnet inside {subnet}"
            )));
        }
    }
    for (name, addr) in &req.aux_addresses {
        if name.is_empty() {
            return Err(ControllerError::Invalid(format!(
                "aux address {addr} has no name"
            )));
        }
        inside(&format!("aux address {name}="), *addr)?;
    }
    Ok(())
}

impl Controller {
    /// Create a network: validate, allocate its subnets and gateways, make its kernel
    /// objects, then store it. A failure at any step undoes the ones before.
    pub async fn create_network(
        &self,
        req: NetworkCreate,
    ) -> Result<NetworkRecord, ControllerError> {
        let name = Name::parse("network", &req.name).map_err(ControllerError::Invalid)?;
        let driver_name = req.driver.clone().unwrap_or_else(|| "bridge".to_string());
        let driver = self.driver(&driver_name)?;
        for s in &req.subnets {
            check_subnet(s)?;
        }
        for key in req.labels.keys() {
            if key.is_empty() {
                return Err(ControllerError::Invalid("a label has an empty key".into()));
            }
        }
        let wants_addresses = driver_name == "bridge";
        if !wants_addresses && (!req.subnets.is_empty() || req.ipv6) {
            return Err(ControllerError::Invalid(format!(
                "the {driver_name} driver has no addresses of its own: give no subnets"
            )));
        }
        let id = new_random_id()?;
        // The driver checks options before anything is allocated or made.
        let mut spec = network_spec(&NetworkRecord {
            id: id.clone(),
            name: name.to_string(),
            driver: driver_name.clone(),
            scope: "local".into(),
            subnets: Vec::new(),
            options: req.options.clone(),
            labels: Default::default(),
            origin: Origin::Native,
            created: String::new(),
        });
        driver.validate(&spec)?;
        let reservation = NameGuard::reserve(&self.network_names, name.as_str(), || {
            format!("a network named {name} exists already")
        })?;

        let mut holdings = Holdings::new(self);
        let mut subnets = Vec::new();
        if wants_addresses {
            let mut wanted = req.subnets.clone();
            if wanted.is_empty() {
                wanted.push(Default::default());
            }
            if req.ipv6
                && !wanted
                    .iter()
                    .any(|s| s.ipv6 || s.subnet.is_some_and(|n| matches!(n, IpNet::V6(_))))
            {
                wanted.push(super::SubnetRequest {
                    ipv6: true,
                    ..Default::default()
                });
            }
            let exclude = if wanted.iter().any(|s| s.subnet.is_none()) {
                self.host_exclusions().await
            } else {
                Vec::new()
            };
            for s in &wanted {
                subnets.push(self.allocate_subnet(&mut holdings, name.as_str(), s, &exclude)?);
            }
        }
        spec.subnets = network_spec(&NetworkRecord {
            subnets: subnets.clone(),
            ..blank_network()
        })
        .subnets;
        let record = NetworkRecord {
            id,
            name: name.to_string(),
            driver: driver_name,
            scope: "local".into(),
            subnets,
            options: req.options,
            labels: req.labels,
            origin: Origin::Native,
            created: now(),
        };
        self.make_and_store_network(&*driver, &spec, record, holdings, reservation)
            .await
    }

    /// The kernel objects, then the record; the kernel objects are removed if the
    /// record cannot be stored.
    pub(crate) async fn make_and_store_network(
        &self,
        driver: &dyn drivers::Driver,
        spec: &drivers::NetworkSpec,
        record: NetworkRecord,
        holdings: Holdings<'_>,
        reservation: NameGuard<'_>,
    ) -> Result<NetworkRecord, ControllerError> {
        driver.create_network(spec).await?;
        let upto = self.ipam_seq();
        if let Err(e) = self.commit(vec![Op::Network(record.clone())], upto).await {
            if let Err(undo) = driver.delete_network(spec).await {
                tracing::warn!(network = %record.name, error = %undo, "could not undo a network");
            }
            return Err(e);
        }
        holdings.commit();
        reservation.commit();
        self.slot(&record.id);
        tracing::info!(network = %record.name, id = short_id(&record.id), "network created");
        Ok(record)
    }

    fn allocate_subnet(
        &self,
        holdings: &mut Holdings<'_>,
        owner: &str,
        req: &super::SubnetRequest,
        exclude: &[IpNet],
    ) -> Result<SubnetRecord, ControllerError> {
        let v6 = req.ipv6 || matches!(req.subnet, Some(IpNet::V6(_)));
        let pool_req = PoolRequest {
            space: None,
            subnet: req.subnet,
            range: req.ip_range,
            v6,
            serial: false,
            owner: Some(owner.to_string()),
            exclude: exclude.to_vec(),
        };
        let what = req.subnet.map(|s| s.to_string()).unwrap_or_else(|| {
            format!("a free {} subnet", if v6 { Family::V6 } else { Family::V4 })
        });
        let mut ipam = self.lock_ipam();
        let pool = ipam
            .request_pool(&pool_req)
            .map_err(ControllerError::ipam(format!(
                "allocating {what} for network {owner}"
            )))?;
        holdings.pools.push(pool);
        // Aux addresses first, so the lowest-free gateway does not take one of them.
        for (aux, addr) in &req.aux_addresses {
            ipam.request_address(&pool, Some(*addr))
                .map_err(ControllerError::ipam(format!(
                    "reserving aux address {aux}={addr} in {}",
                    pool.subnet
                )))?;
            holdings.addresses.push((pool, *addr));
        }
        let gateway = ipam
            .request_address(&pool, req.gateway)
            .map_err(ControllerError::ipam(format!(
                "allocating the gateway of {}",
                pool.subnet
            )))?;
        holdings.addresses.push((pool, gateway.addr()));
        Ok(SubnetRecord {
            subnet: pool.subnet,
            gateway: Some(gateway.addr()),
            ip_range: pool.range,
            aux_addresses: req.aux_addresses.clone(),
            pool: Some(pool),
        })
    }

    /// Prefixes a chosen subnet must not overlap: the host's routes and name
    /// servers, as Docker avoids them.
    pub(crate) async fn host_exclusions(&self) -> Vec<IpNet> {
        let mut out = match self.nl.route_prefixes().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the host's routes to avoid them");
                Vec::new()
            }
        };
        out.extend(
            crate::files::host_name_servers(&self.settings.host_resolv_conf)
                .into_iter()
                .map(IpNet::from),
        );
        out
    }

    /// Delete a network. Refused while it has endpoints, naming them.
    pub async fn delete_network(&self, key: &str) -> Result<NetworkRecord, ControllerError> {
        let net = self.network(key)?;
        let slot = self.slot(&net.id);
        let _gate = slot.gate.write().await;
        // Gone while we waited?
        let net: NetworkRecord = self.get(Kind::Network, "network", &net.id)?;
        let members: Vec<String> = self
            .endpoints()?
            .into_iter()
            .filter(|e| e.network == net.id)
            .map(|e| format!("{} ({})", e.name, short_id(&e.id)))
            .collect();
        if !members.is_empty() {
            return Err(ControllerError::Conflict(format!(
                "network {} has {} endpoint(s): {}; remove them first",
                net.name,
                members.len(),
                members.join(", ")
            )));
        }
        let driver = self.driver(&net.driver)?;
        driver.delete_network(&network_spec(&net)).await?;
        {
            let mut ipam = self.lock_ipam();
            for pool in net.subnets.iter().filter_map(|s| s.pool) {
                if let Err(e) = ipam.release_pool(&pool) {
                    tracing::warn!(%pool, error = %e, "releasing a deleted network's pool");
                }
            }
        }
        let upto = self.ipam_seq();
        self.commit(vec![Op::Delete(Kind::Network, net.id.clone())], upto)
            .await?;
        lock(&self.network_names).remove(&net.name);
        lock(&self.slots).remove(&net.id);
        tracing::info!(network = %net.name, id = short_id(&net.id), "network deleted");
        Ok(net)
    }
}

pub(crate) fn blank_network() -> NetworkRecord {
    NetworkRecord {
        id: String::new(),
        name: String::new(),
        driver: String::new(),
        scope: "local".into(),
        subnets: Vec::new(),
        options: Default::default(),
        labels: Default::default(),
        origin: Origin::Native,
        created: String::new(),
    }
}
