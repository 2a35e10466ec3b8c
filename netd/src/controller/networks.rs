//! Creating and deleting networks.

use super::addressing::{check_gateway, check_subnet, overlapping_network};
use super::allocation::Holdings;
use super::persist::Op;
use super::{lock, network_spec, Controller, ControllerError, NameGuard, NetworkCreate};
use crate::model::{new_id, now, short_id, Name, NetworkRecord, Origin, SubnetRecord};
use crate::store::Kind;
use ipam::{Family, PoolRequest};
use ipnet::IpNet;

/// How many names an error lists before it says how many more there are.
pub(crate) const NAMES_IN_ERRORS: usize = 10;

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

/// `names` joined with ", ", the first few only.
pub(crate) fn some_names(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(NAMES_IN_ERRORS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_IN_ERRORS {
        text.push_str(&format!(" and {} more", names.len() - NAMES_IN_ERRORS));
    }
    text
}

/// Check a subnet request against itself before anything is allocated.
fn check_request(req: &super::SubnetRequest) -> Result<(), ControllerError> {
    let Some(subnet) = req.subnet else {
        if req.gateway.is_some() || req.ip_range.is_some() || !req.aux_addresses.is_empty() {
            return Err(ControllerError::Invalid(
                "a gateway, ip range or aux address needs a subnet to belong to".into(),
            ));
        }
        return Ok(());
    };
    check_subnet(&subnet)?;
    if req.ipv6 && !matches!(subnet, IpNet::V6(_)) {
        return Err(ControllerError::Invalid(format!(
            "subnet {subnet} is not IPv6, but ipv6 was asked for"
        )));
    }
    if let Some(gw) = req.gateway {
        check_gateway("gateway", &subnet, gw, None)?;
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
        check_gateway(&format!("aux address {name}="), &subnet, *addr, None)?;
        if req.gateway == Some(*addr) {
            return Err(ControllerError::Invalid(format!(
                "aux address {name}={addr} is the gateway"
            )));
        }
    }
    Ok(())
}

/// An overlay network's part from the cluster, for [`Controller::create_network`].
struct OverlayPlan {
    /// The cluster's network.
    spec: cluster::OverlaySpec,
    /// The address block this host claimed.
    block: IpNet,
    /// The options netd adds (VNI, VTEP, port, the cluster's name).
    options: std::collections::BTreeMap<String, String>,
    /// The MTU when the request sets none.
    mtu: u32,
}

/// What `options` ask for: no overlay (`None`), an overlay named as the local
/// network (`Some(None)`: `com.netd.overlay=true`), or one named in the option
/// (`Some(Some(NAME))`); an error for the options netd sets itself.
pub(crate) fn overlay_requested(
    options: &std::collections::BTreeMap<String, String>,
) -> Result<Option<Option<String>>, ControllerError> {
    use drivers::overlay::{OPTION_OVERLAY, OPTION_PORT, OPTION_VNI, OPTION_VTEP};
    for key in [
        OPTION_VNI,
        OPTION_VTEP,
        OPTION_PORT,
        crate::overlay::OPTION_NETWORK,
        crate::overlay::OPTION_CLUSTER_ID,
    ] {
        if options.contains_key(key) {
            return Err(ControllerError::Invalid(format!(
                "option {key} is set by netd, not by a request"
            )));
        }
    }
    match options.get(OPTION_OVERLAY).map(String::as_str) {
        None | Some("false" | "0") => Ok(None),
        Some("true" | "1") => Ok(Some(None)),
        Some(name) => {
            Name::parse("overlay network", name).map_err(|e| {
                ControllerError::Invalid(format!(
                    "option {OPTION_OVERLAY}: {e} (give true, or the network's name in the cluster)"
                ))
            })?;
            Ok(Some(Some(name.to_string())))
        }
    }
}

impl Controller {
    /// Create a network: validate, allocate its subnets and gateways, make its kernel
    /// objects, then store it. A failure at any step undoes the ones before.
    ///
    /// An overlay network (`com.netd.overlay=true`) is first made or found in the
    /// cluster, by name, and a block of its subnet claimed for this host; the
    /// local network takes the cluster's id, VNI and gateway, and hands out
    /// addresses from the block only.
    pub async fn create_network(
        &self,
        req: NetworkCreate,
    ) -> Result<NetworkRecord, ControllerError> {
        let Some(cluster_name) = overlay_requested(&req.options)? else {
            return self.create_network_with(req, None).await;
        };
        let cluster_name = cluster_name.unwrap_or_else(|| req.name.clone());
        let agent = self.overlay().cloned().ok_or_else(|| {
            ControllerError::Invalid(
                "an overlay network needs netd in a cluster: start `netd daemon` with --cluster-store etcd://HOST:PORT and --advertise-addr IP".into(),
            )
        })?;
        Name::parse("network", &req.name).map_err(ControllerError::Invalid)?;
        let [s] = req.subnets.as_slice() else {
            return Err(ControllerError::Invalid(
                "an overlay network has exactly one subnet, the same on every host (--subnet)"
                    .into(),
            ));
        };
        let Some(subnet) = s.subnet else {
            return Err(ControllerError::Invalid(
                "an overlay network needs its subnet given: every host must agree on it".into(),
            ));
        };
        check_request(s)?;
        if subnet.addr().is_ipv6() {
            return Err(ControllerError::Invalid(
                "an overlay network's subnet is IPv4 (IPv6 overlays are not supported yet)".into(),
            ));
        }
        if s.ip_range.is_some() || !s.aux_addresses.is_empty() || req.ipv6 {
            return Err(ControllerError::Invalid(
                "an overlay network takes a subnet and a gateway; ip ranges, aux addresses and a second (IPv6) subnet are not supported".into(),
            ));
        }
        // Checked before anything is claimed in the cluster.
        if let Some(other) = self.networks().into_iter().find(|n| {
            n.name != req.name
                && n.subnets
                    .iter()
                    .any(|s| super::addressing::overlaps(&s.subnet, &subnet))
        }) {
            return Err(ControllerError::Conflict(format!(
                "subnet {subnet} overlaps network {} on this host: one host cannot have two networks with overlapping subnets (both bridges would route them), even overlays that stay apart on other hosts",
                other.name
            )));
        }
        let mut agreed = req.options.clone();
        agreed.remove(drivers::overlay::OPTION_OVERLAY);
        let _claiming = agent.claiming().await;
        let (spec, block) = agent
            .prepare(&cluster_name, subnet, s.gateway, agreed)
            .await
            .map_err(crate::overlay::cluster_error)?;
        let plan = OverlayPlan {
            options: agent.options_for(&spec),
            mtu: agent.mtu_of(&spec),
            spec,
            block,
        };
        let name = plan.spec.name.clone();
        let made = self.create_network_with(req, Some(plan)).await;
        if made.is_err() {
            agent.forget(&name, &self.blocks_held(&name)).await;
        }
        made
    }

    async fn create_network_with(
        &self,
        req: NetworkCreate,
        overlay: Option<OverlayPlan>,
    ) -> Result<NetworkRecord, ControllerError> {
        let name = Name::parse("network", &req.name).map_err(ControllerError::Invalid)?;
        let driver_name = req.driver.clone().unwrap_or_else(|| "bridge".to_string());
        let driver = self.driver(&driver_name)?;
        for s in &req.subnets {
            check_request(s)?;
        }
        for (i, a) in req.subnets.iter().enumerate() {
            for b in &req.subnets[i + 1..] {
                if let (Some(x), Some(y)) = (a.subnet, b.subnet) {
                    if super::addressing::overlaps(&x, &y) {
                        return Err(ControllerError::Invalid(format!(
                            "subnets {x} and {y} overlap"
                        )));
                    }
                }
            }
        }
        for key in req.labels.keys() {
            if key.is_empty() {
                return Err(ControllerError::Invalid("a label has an empty key".into()));
            }
        }
        let wants_addresses = driver.takes_addresses();
        if !wants_addresses && (!req.subnets.is_empty() || req.ipv6) {
            return Err(ControllerError::Invalid(format!(
                "the {driver_name} driver has no addresses of its own: give no subnets"
            )));
        }
        let id = match &overlay {
            Some(plan) => plan.spec.id.clone(),
            None => new_random_id()?,
        };
        let mut record = NetworkRecord {
            id,
            name: name.to_string(),
            driver: driver_name,
            scope: "local".into(),
            subnets: Vec::new(),
            options: req.options.clone(),
            labels: req.labels.clone(),
            origin: Origin::Native,
            created: now(),
            driver_data: Default::default(),
        };
        if let Some(plan) = &overlay {
            record.options.extend(plan.options.clone());
            record
                .options
                .entry(drivers::bridge::OPTION_MTU.to_string())
                .or_insert_with(|| plan.mtu.to_string());
        }
        // The driver checks options before anything is allocated or made.
        driver.validate(&network_spec(&record))?;
        let reservation = NameGuard::reserve(&self.network_names, name.as_str(), || {
            format!("a network named {name} exists already")
        })?;
        let links = self.reserve_links(&*driver, &record)?;

        let mut holdings = Holdings::new(self);
        if let Some(plan) = &overlay {
            let wanted = super::SubnetRequest {
                subnet: Some(plan.spec.subnet),
                gateway: Some(plan.spec.gateway),
                ip_range: Some(plan.block),
                ..Default::default()
            };
            let sub = self.allocate_subnet(
                &mut holdings,
                name.as_str(),
                &wanted,
                &[],
                ipam::AddressSpace::Global,
            )?;
            record.subnets.push(sub);
        } else if wants_addresses {
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
            let mut exclude = if wanted.iter().any(|s| s.subnet.is_none()) {
                self.host_exclusions().await
            } else {
                Vec::new()
            };
            for s in &wanted {
                let sub = self.allocate_subnet(
                    &mut holdings,
                    name.as_str(),
                    s,
                    &exclude,
                    ipam::AddressSpace::Local,
                )?;
                exclude.push(sub.subnet);
                record.subnets.push(sub);
            }
        }
        let spec = network_spec(&record);
        self.make_and_store_network(&*driver, &spec, record, holdings, reservation, links)
            .await
    }

    /// Reserve the links a network will be made of (its bridge), refusing one that
    /// another network uses.
    pub(crate) fn reserve_links(
        &self,
        driver: &dyn drivers::Driver,
        record: &NetworkRecord,
    ) -> Result<Vec<NameGuard<'_>>, ControllerError> {
        driver
            .network_links(&network_spec(record))
            .into_iter()
            .map(|link| {
                NameGuard::reserve(&self.network_links, &link, || {
                    let user = self
                        .records()
                        .networks
                        .values()
                        .find(|n| {
                            self.driver(&n.driver)
                                .is_ok_and(|d| d.network_links(&network_spec(n)).contains(&link))
                        })
                        .map(|n| format!("network {}", n.name))
                        .unwrap_or_else(|| "another network being made".into());
                    format!("link {link} is used by {user} already")
                })
            })
            .collect()
    }

    /// The kernel objects, then the record; the kernel objects are removed if the
    /// record cannot be stored.
    pub(crate) async fn make_and_store_network(
        &self,
        driver: &dyn drivers::Driver,
        spec: &drivers::NetworkSpec,
        mut record: NetworkRecord,
        holdings: Holdings<'_>,
        reservation: NameGuard<'_>,
        links: Vec<NameGuard<'_>>,
    ) -> Result<NetworkRecord, ControllerError> {
        record.driver_data = driver.create_network(spec).await?;
        let made = drivers::NetworkSpec {
            data: record.driver_data.clone(),
            ..spec.clone()
        };
        let stored = match self.firewall_add_network(&record).await {
            Ok(()) => {
                let stored = self.commit(vec![Op::Network(record.clone())]).await;
                if stored.is_err() {
                    if let Some(fw) = self.firewall() {
                        if let Err(undo) = fw.remove_network(&record.id).await {
                            tracing::warn!(network = %record.name, error = %undo, "could not undo a network's firewall rules");
                        }
                    }
                }
                stored
            }
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            if let Err(undo) = driver.delete_network(&made).await {
                tracing::warn!(network = %record.name, error = %undo, "could not undo a network");
            }
            return Err(e);
        }
        holdings.commit();
        reservation.commit();
        for l in links {
            l.commit();
        }
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
        space: ipam::AddressSpace,
    ) -> Result<SubnetRecord, ControllerError> {
        let v6 = req.ipv6 || matches!(req.subnet, Some(IpNet::V6(_)));
        if let Some(subnet) = req.subnet {
            if let Some(taken) = exclude
                .iter()
                .find(|x| super::addressing::overlaps(x, &subnet))
            {
                let records = self.records();
                let holder = overlapping_network(&records, &subnet, None)
                    .map(|(n, _)| format!("network {}", n.name))
                    .unwrap_or_else(|| "another subnet of this network".into());
                return Err(ControllerError::Conflict(format!(
                    "subnet {subnet} overlaps {taken} of {holder}"
                )));
            }
        }
        let pool_req = PoolRequest {
            space: Some(space),
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
            more_blocks: Vec::new(),
            aux_addresses: req.aux_addresses.clone(),
            pool: Some(pool),
        })
    }

    /// Prefixes a chosen subnet must not overlap: the host's routes and name
    /// servers, as Docker avoids them.
    pub(crate) async fn host_exclusions(&self) -> Vec<IpNet> {
        let listed = match &self.routes {
            Some(watch) => Ok(watch.prefixes()),
            None => self.nl.route_prefixes().await,
        };
        let mut out = match listed {
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

    /// Delete a network made through the native API. Refused while it has
    /// endpoints, naming them.
    pub async fn delete_network(&self, key: &str) -> Result<NetworkRecord, ControllerError> {
        let net = self.network(key)?;
        if net.origin == Origin::Docker {
            return Err(ControllerError::Conflict(format!(
                "network {} belongs to dockerd; remove it with `docker network rm`",
                net.name
            )));
        }
        self.remove_network(&net.id, |_| false).await
    }

    /// Delete network `id` under its gate (exclusive). Endpoints for which
    /// `abandoned` holds go with it; any other refuses the delete.
    pub(crate) async fn remove_network(
        &self,
        id: &str,
        abandoned: impl Fn(&crate::model::EndpointRecord) -> bool,
    ) -> Result<NetworkRecord, ControllerError> {
        let slot = self.slot(id);
        let _gate = slot.gate.write().await;
        // Gone while we waited?
        let net = self.network_by_id(id)?;
        let endpoints = self.network_endpoints(&net.id);
        let (gone, members): (Vec<_>, Vec<_>) = endpoints.into_iter().partition(|e| abandoned(e));
        if !members.is_empty() {
            let names: Vec<String> = members
                .iter()
                .map(|e| format!("{} ({})", e.name, short_id(&e.id)))
                .collect();
            return Err(ControllerError::Conflict(format!(
                "network {} has {} endpoint(s): {}; remove them first",
                net.name,
                members.len(),
                some_names(&names)
            )));
        }
        let driver = self.driver(&net.driver)?;
        let spec = network_spec(&net);
        for ep in &gone {
            self.engine_leave_kernel(&net, ep).await?;
        }
        driver.delete_network(&spec).await?;
        let mut ops: Vec<Op> = gone
            .iter()
            .map(|e| Op::Delete(Kind::Endpoint, e.id.clone()))
            .collect();
        ops.push(Op::Delete(Kind::Network, net.id.clone()));
        // Pools and addresses dockerd released while this network (or its
        // abandoned endpoints) still used them go now.
        let _decide = self.engine_ipam.lock().await;
        let (freed_pools, pool_ops) = self.engine_pools_freed_with(&net);
        let gateways: Vec<_> = net.subnets.iter().filter_map(|s| s.gateway).collect();
        let gone_refs: Vec<_> = gone.iter().collect();
        let (freed_addresses, address_ops) =
            self.engine_addresses_freed_with(&gone_refs, &gateways);
        ops.extend(pool_ops);
        ops.extend(address_ops);
        self.commit(ops).await?;
        let mut pools: Vec<_> = net.subnets.iter().filter_map(|s| s.pool).collect();
        pools.extend(freed_pools.iter().copied());
        let addresses = gone
            .iter()
            .flat_map(|e| self.endpoint_holdings(&net, e))
            .chain(
                freed_addresses
                    .into_iter()
                    .filter(|(p, _)| !freed_pools.contains(p)),
            )
            .collect();
        self.give_back(pools, addresses);
        lock(&self.network_names).remove(&net.name);
        for link in driver.network_links(&spec) {
            lock(&self.network_links).remove(&link);
        }
        lock(&self.slots).remove(&net.id);
        tracing::info!(network = %net.name, id = short_id(&net.id), "network deleted");
        if let (Some(agent), true) = (self.overlay(), crate::overlay::is_overlay(&net)) {
            let name = net
                .options
                .get(crate::overlay::OPTION_NETWORK)
                .unwrap_or(&net.name);
            agent.forget(name, &self.blocks_held(name)).await;
        }
        Ok(net)
    }
}
