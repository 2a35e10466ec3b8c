//! The NetworkDriver side: networks and endpoints whose ids and addresses come from
//! dockerd, and joins where dockerd moves the interface itself.

use super::check_id;
use crate::controller::addressing::{
    check_endpoint_address, check_gateway, check_mac_free, check_subnet, overlapping_network,
    overlaps,
};
use crate::controller::allocation::Holdings;
use crate::controller::endpoints::Prepared;
use crate::controller::persist::Op;
use crate::controller::records::Records;
use crate::controller::{
    endpoint_spec, lock, network_spec, Controller, ControllerError, NameGuard,
};
use crate::model::{
    engine_address_key, format_mac, generate_mac, now, parse_mac, short_id, EndpointRecord,
    JoinRecord, NetworkRecord, Origin, SubnetRecord,
};
use crate::store::Kind;
use drivers::SandboxSpec;
use ipam::PoolRequest;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

/// The driver behind every network dockerd makes on netd.
const ENGINE_DRIVER: &str = "bridge";

/// What a Docker join answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineJoin {
    /// The interface, in netd's namespace, that dockerd moves into the sandbox.
    pub src_name: String,
    /// IPv4 gateway.
    pub gateway: Option<IpAddr>,
    /// IPv6 gateway.
    pub gateway_v6: Option<IpAddr>,
}

/// One pool of a Docker network, as dockerd describes it in `CreateNetwork`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnginePool {
    /// The subnet.
    pub pool: IpNet,
    /// Gateway, CIDR form.
    pub gateway: Option<IpNet>,
    /// Aux addresses, CIDR form.
    pub aux_addresses: BTreeMap<String, IpNet>,
}

fn not_dockers(what: &str, name: &str) -> ControllerError {
    ControllerError::Conflict(format!(
        "{what} {name} was made through netd's own API, not by dockerd; change it there"
    ))
}

/// Check dockerd's description of a network's pools, `v6` for its IPv6Data.
fn check_pools(pools: &[EnginePool], v6: bool) -> Result<(), ControllerError> {
    for p in pools {
        if p.pool.addr().is_ipv6() != v6 {
            return Err(ControllerError::Invalid(format!(
                "pool {} is in {} but is not an IPv{} subnet",
                p.pool,
                if v6 { "IPv6Data" } else { "IPv4Data" },
                if v6 { 6 } else { 4 }
            )));
        }
        check_subnet(&p.pool)?;
        if let Some(gw) = p.gateway {
            check_gateway("gateway", &p.pool, gw.addr(), Some(gw.prefix_len()))?;
        }
        for (name, a) in &p.aux_addresses {
            check_gateway(
                &format!("aux address {name}="),
                &p.pool,
                a.addr(),
                Some(a.prefix_len()),
            )?;
        }
    }
    let all: Vec<IpNet> = pools.iter().map(|p| p.pool).collect();
    for (i, a) in all.iter().enumerate() {
        if let Some(b) = all[i + 1..].iter().find(|b| overlaps(a, b)) {
            return Err(ControllerError::Invalid(format!(
                "pools {a} and {b} overlap"
            )));
        }
    }
    Ok(())
}

fn subnet_records(pools: Vec<EnginePool>) -> Vec<SubnetRecord> {
    pools
        .into_iter()
        .map(|p| SubnetRecord {
            subnet: p.pool,
            gateway: p.gateway.map(|g| g.addr()),
            ip_range: None,
            more_blocks: Vec::new(),
            aux_addresses: p
                .aux_addresses
                .into_iter()
                .map(|(k, v)| (k, v.addr()))
                .collect(),
            pool: None,
        })
        .collect()
}

/// Whether dockerd has evidently abandoned this endpoint of a network it is
/// deleting: it was never joined, or the sandbox it was joined to is gone (dockerd
/// deletes a network only when it knows of no endpoint on it).
pub(super) fn abandoned(ep: &EndpointRecord) -> bool {
    ep.origin == Origin::Docker
        && ep
            .join
            .as_ref()
            .and_then(|j| j.sandbox_key.as_deref())
            .is_none_or(|key| !Path::new(key).exists())
}

impl Controller {
    /// `NetworkDriver.CreateNetwork`. The same network again is a no-op; the same id
    /// with other settings is refused.
    ///
    /// An overlay network (`-o com.netd.overlay=NAME`: dockerd tells a plugin no
    /// network name, so the option carries the cluster's) is made or found in the
    /// cluster, and its addresses come from the block this host claims there.
    pub async fn engine_create_network(
        &self,
        id: &str,
        options: BTreeMap<String, String>,
        v4: Vec<EnginePool>,
        v6: Vec<EnginePool>,
    ) -> Result<NetworkRecord, ControllerError> {
        check_id("network", id)?;
        check_pools(&v4, false)?;
        check_pools(&v6, true)?;
        let mut subnets = subnet_records(v4.into_iter().chain(v6).collect());
        let cluster_name = match crate::controller::networks::overlay_requested(&options)? {
            None => return self.engine_create_network_with(id, options, subnets).await,
            Some(None) => {
                return Err(ControllerError::Invalid(
                    "dockerd tells a plugin no network name: give the overlay's name in the cluster as the option's value (-o com.netd.overlay=NAME)".into(),
                ))
            }
            Some(Some(name)) => name,
        };
        let existing = self.records().networks.get(id).cloned();
        if let Some(existing) = existing {
            // dockerd asking again: the same network if the options it gave are
            // the same (netd added the cluster's to them).
            let mut given = existing.options.clone();
            for key in [
                drivers::overlay::OPTION_VNI,
                drivers::overlay::OPTION_VTEP,
                drivers::overlay::OPTION_PORT,
                crate::overlay::OPTION_NETWORK,
                crate::overlay::OPTION_CLUSTER_ID,
            ] {
                given.remove(key);
            }
            if !options.contains_key(drivers::bridge::OPTION_MTU) {
                given.remove(drivers::bridge::OPTION_MTU);
            }
            if existing.origin == Origin::Docker && given == options {
                return Ok(existing);
            }
            return Err(ControllerError::Conflict(format!(
                "network {} exists with other options; delete it first",
                existing.name
            )));
        }
        let agent = self.overlay().cloned().ok_or_else(|| {
            ControllerError::Invalid(
                "an overlay network needs netd in a cluster: start `netd daemon` with --cluster-store etcd://HOST:PORT and --advertise-addr IP".into(),
            )
        })?;
        let [s] = subnets.as_mut_slice() else {
            return Err(ControllerError::Invalid(
                "an overlay network has exactly one subnet, IPv4, the same on every host (--subnet)"
                    .into(),
            ));
        };
        if s.subnet.addr().is_ipv6() {
            return Err(ControllerError::Invalid(
                "an overlay network's subnet is IPv4 (IPv6 overlays are not supported yet)".into(),
            ));
        }
        // Every host's options must agree, whichever face made the network.
        let mut agreed = options.clone();
        agreed.remove(drivers::overlay::OPTION_OVERLAY);
        let _claiming = agent.claiming().await;
        let (spec, block) = agent
            .prepare(&cluster_name, s.subnet, s.gateway, agreed)
            .await
            .map_err(crate::overlay::cluster_error)?;
        let made = if s.gateway.is_some_and(|g| g != spec.gateway) {
            Err(ControllerError::Conflict(format!(
                "overlay network {cluster_name}'s gateway is {}; create it with --gateway {}",
                spec.gateway, spec.gateway
            )))
        } else {
            s.ip_range = Some(block);
            let mut options = options;
            options.extend(agent.options_for(&spec));
            options
                .entry(drivers::bridge::OPTION_MTU.to_string())
                .or_insert_with(|| agent.mtu_of(&spec).to_string());
            self.engine_create_network_with(id, options, subnets).await
        };
        if made.is_err() {
            agent
                .forget(&cluster_name, &self.blocks_held(&cluster_name))
                .await;
        }
        made
    }

    async fn engine_create_network_with(
        &self,
        id: &str,
        options: BTreeMap<String, String>,
        subnets: Vec<SubnetRecord>,
    ) -> Result<NetworkRecord, ControllerError> {
        if let Some(existing) = self.records().networks.get(id).cloned() {
            if existing.origin != Origin::Docker {
                return Err(not_dockers("network", &existing.name));
            }
            // What dockerd gave, whatever pool netd holds the subnet with.
            let given = |s: &[SubnetRecord]| -> Vec<SubnetRecord> {
                s.iter()
                    .map(|s| SubnetRecord {
                        pool: None,
                        more_blocks: Vec::new(),
                        ..s.clone()
                    })
                    .collect()
            };
            if given(&existing.subnets) == subnets && existing.options == options {
                return Ok(existing);
            }
            return Err(ControllerError::Conflict(format!(
                "network {} exists with other subnets or options; delete it first",
                existing.name
            )));
        }
        let driver = self.driver(ENGINE_DRIVER)?;
        let name = format!("docker-{}", short_id(id));
        let mut holdings = Holdings::new(self);
        let subnets = self.hold_engine_subnets(subnets, &name, &mut holdings)?;
        let record = NetworkRecord {
            id: id.to_string(),
            name,
            driver: ENGINE_DRIVER.into(),
            scope: "local".into(),
            subnets,
            options,
            labels: BTreeMap::new(),
            origin: Origin::Docker,
            created: now(),
            driver_data: BTreeMap::new(),
        };
        let spec = network_spec(&record);
        driver.validate(&spec)?;
        let reservation = NameGuard::reserve(&self.network_names, &record.name, || {
            format!("a network named {} exists already", record.name)
        })?;
        let links = self.reserve_links(&*driver, &record)?;
        self.make_and_store_network(&*driver, &spec, record, holdings, reservation, links)
            .await
    }

    /// Make the allocator hold a Docker network's subnets, so that no other network
    /// or pool can overlap them: a subnet dockerd holds through netd's IpamDriver
    /// is held by that pool already (and may be one network's only); any other
    /// (from dockerd's own IPAM) gets a pool of its own, which the network's record
    /// holds, with no address handed out of it.
    fn hold_engine_subnets(
        &self,
        mut subnets: Vec<SubnetRecord>,
        owner: &str,
        holdings: &mut Holdings<'_>,
    ) -> Result<Vec<SubnetRecord>, ControllerError> {
        for s in &mut subnets {
            let engine_held = {
                let records = self.records();
                if let Some((other, theirs)) = overlapping_network(&records, &s.subnet, None) {
                    return Err(ControllerError::Conflict(format!(
                        "subnet {} overlaps {} of network {}",
                        s.subnet, theirs.subnet, other.name
                    )));
                }
                records
                    .engine_pools
                    .values()
                    .any(|p| p.id.subnet == s.subnet)
            };
            if engine_held {
                continue;
            }
            let id = self
                .lock_ipam()
                .request_pool(&PoolRequest {
                    subnet: Some(s.subnet),
                    v6: s.subnet.addr().is_ipv6(),
                    owner: Some(owner.to_string()),
                    ..Default::default()
                })
                .map_err(ControllerError::ipam(format!(
                    "holding subnet {} for network {owner}",
                    s.subnet
                )))?;
            holdings.pools.push(id);
            s.pool = Some(id);
        }
        Ok(subnets)
    }

    /// An address in a subnet dockerd holds through netd's IpamDriver must be one
    /// dockerd was given there (with its own IPAM, dockerd answers for them).
    fn check_engine_holds(&self, records: &Records, addr: IpAddr) -> Result<(), ControllerError> {
        let Some(pool) = records
            .engine_pools
            .values()
            .find(|p| p.id.subnet.contains(&addr))
        else {
            return Ok(());
        };
        if records
            .engine_addresses
            .contains_key(&engine_address_key(&pool.id, addr))
        {
            return Ok(());
        }
        Err(ControllerError::Invalid(format!(
            "address {addr} was not handed out by netd's IpamDriver in pool {}",
            pool.id
        )))
    }

    /// `NetworkDriver.DeleteNetwork`; an unknown network is already deleted.
    /// Endpoints dockerd has evidently abandoned go with it.
    pub async fn engine_delete_network(&self, id: &str) -> Result<(), ControllerError> {
        check_id("network", id)?;
        let Some(net) = self.records().networks.get(id).cloned() else {
            return Ok(());
        };
        if net.origin != Origin::Docker {
            return Err(not_dockers("network", &net.name));
        }
        let gone = self.abandoned_endpoints(&net).await;
        self.remove_network(id, |e| gone.contains(&e.id))
            .await
            .map(|_| ())
    }

    /// `NetworkDriver.CreateEndpoint`: store the endpoint with the addresses dockerd
    /// allocated. Answers the MAC address if netd chose it.
    pub async fn engine_create_endpoint(
        &self,
        network: &str,
        endpoint: &str,
        addresses: Vec<IpNet>,
        mac: Option<String>,
    ) -> Result<Option<String>, ControllerError> {
        check_id("network", network)?;
        check_id("endpoint", endpoint)?;
        let net = self.network_by_id(network)?;
        if net.origin != Origin::Docker {
            return Err(not_dockers("network", &net.name));
        }
        let slot = self.slot(&net.id);
        let _gate = slot.gate.read().await;
        // Deleted while we waited?
        let net = self.network_by_id(&net.id)?;
        let mut claims = Vec::new();
        if self.records().endpoints.contains_key(endpoint) {
            return Err(ControllerError::Conflict(format!(
                "endpoint {} exists already",
                short_id(endpoint)
            )));
        }
        for (i, a) in addresses.iter().enumerate() {
            if addresses[..i]
                .iter()
                .any(|b| b.addr().is_ipv4() == a.addr().is_ipv4())
            {
                return Err(ControllerError::Invalid(format!(
                    "endpoint {} has two addresses of one family",
                    short_id(endpoint)
                )));
            }
            claims.push(slot.claim(format!("address {}", a.addr()), &net.name)?);
            let records = self.records();
            check_endpoint_address(&records, &net, endpoint, a)?;
            self.check_engine_holds(&records, a.addr())?;
        }
        let (mac, chosen) = match mac {
            Some(m) => (parse_mac(&m).map_err(ControllerError::Invalid)?, false),
            None => (
                generate_mac(&addresses).map_err(|source| ControllerError::Io {
                    doing: "making a MAC address from",
                    path: "/dev/urandom".into(),
                    source,
                })?,
                true,
            ),
        };
        let mac = format_mac(&mac);
        claims.push(slot.claim(format!("MAC address {mac}"), &net.name)?);
        check_mac_free(&self.records(), &net, endpoint, &mac)?;
        let name = format!("docker-{}", short_id(endpoint));
        let prepared = Prepared {
            record: EndpointRecord {
                id: endpoint.to_string(),
                name: name.clone(),
                network: net.id.clone(),
                addresses,
                mac,
                join: None,
                attached: false,
                ports: Vec::new(),
                aliases: Vec::new(),
                origin: Origin::Docker,
                created: now(),
            },
            holdings: Holdings::new(self),
            name: NameGuard::reserve(&slot.endpoint_names, &name, || {
                format!("endpoint {name} exists already")
            })?,
            _claims: claims,
        };
        self.commit(vec![Op::Endpoint(prepared.record.clone())])
            .await?;
        prepared.name.commit();
        Ok(chosen.then_some(prepared.record.mac))
    }

    /// `NetworkDriver.DeleteEndpoint`; an unknown endpoint is already deleted. Its
    /// addresses are dockerd's to release (those it released while the endpoint
    /// still held them go now).
    pub async fn engine_delete_endpoint(&self, endpoint: &str) -> Result<(), ControllerError> {
        check_id("endpoint", endpoint)?;
        let Some(ep) = self.records().endpoints.get(endpoint).cloned() else {
            return Ok(());
        };
        if ep.origin != Origin::Docker {
            return Err(not_dockers("endpoint", &ep.name));
        }
        self.engine_forget_endpoint(&ep).await
    }

    /// Remove an endpoint of dockerd's: unjoined in the kernel, its record gone,
    /// with the addresses dockerd released while it held them.
    pub(crate) async fn engine_forget_endpoint(
        &self,
        ep: &EndpointRecord,
    ) -> Result<(), ControllerError> {
        let _claim = self.claim_endpoint(ep)?;
        let slot = self.slot(&ep.network);
        let _gate = slot.gate.read().await;
        let ep = self.endpoint_by_id(&ep.id)?;
        let net = self.network_by_id(&ep.network)?;
        self.engine_leave_kernel(&net, &ep).await?;
        let mut ops = vec![Op::Delete(Kind::Endpoint, ep.id.clone())];
        let _decide = self.engine_ipam.lock().await;
        let (freed, freed_ops) = self.engine_addresses_freed_with(&[&ep], &[]);
        ops.extend(freed_ops);
        self.commit(ops).await?;
        self.give_back(Vec::new(), freed);
        lock(&slot.endpoint_names).remove(&ep.name);
        Ok(())
    }

    /// `NetworkDriver.Join`: a veth whose peer stays in netd's namespace for dockerd
    /// to move, and the gateways dockerd must route through. A join again to the
    /// same sandbox answers the same; an endpoint still joined to a sandbox that is
    /// gone is joined afresh.
    pub async fn engine_join(
        &self,
        network: &str,
        endpoint: &str,
        sandbox_key: &str,
    ) -> Result<EngineJoin, ControllerError> {
        check_id("network", network)?;
        check_id("endpoint", endpoint)?;
        let ep = self.endpoint_by_id(endpoint)?;
        if ep.origin != Origin::Docker {
            return Err(not_dockers("endpoint", &ep.name));
        }
        if ep.network != network {
            return Err(ControllerError::Invalid(format!(
                "endpoint {} is not on network {}",
                short_id(endpoint),
                short_id(network)
            )));
        }
        let _claim = self.claim_endpoint(&ep)?;
        let slot = self.slot(&ep.network);
        let _gate = slot.gate.read().await;
        let net = self.network_by_id(&ep.network)?;
        let mut ep = self.endpoint_by_id(endpoint)?;
        // None on an internal network or in an isolated family, as Docker's
        // bridge driver: dockerd then routes the container's default through
        // another of its networks.
        let policy = firewall::Policy::from_options(&net.options).unwrap_or_default();
        let gateway_of = |v4: bool| {
            net.subnets
                .iter()
                .filter(|s| ep.addresses.iter().any(|a| s.subnet.contains(&a.addr())))
                .filter_map(|s| s.gateway)
                .filter(|g| !policy.closed(*g))
                .find(|g| g.is_ipv4() == v4)
        };
        let (gateway, gateway_v6) = (gateway_of(true), gateway_of(false));
        if let Some(join) = &ep.join {
            if join.sandbox_key.as_deref() == Some(sandbox_key) {
                return Ok(EngineJoin {
                    src_name: join.interface.clone(),
                    gateway,
                    gateway_v6,
                });
            }
            if !abandoned(&ep) {
                return Err(ControllerError::Conflict(format!(
                    "endpoint {} is joined to sandbox {} already",
                    short_id(endpoint),
                    join.sandbox_key.as_deref().unwrap_or("?")
                )));
            }
            self.engine_leave_kernel(&net, &ep).await?;
            ep.join = None;
        }
        let driver = self.driver(&net.driver)?;
        let nspec = network_spec(&net);
        let espec = endpoint_spec(&ep);
        let sspec = SandboxSpec::default();
        let made = driver.join(&nspec, &espec, &sspec, "").await?;
        let Some(src_name) = made.engine_link.clone() else {
            return Err(ControllerError::Invalid(format!(
                "the {} driver cannot hand an interface to dockerd",
                net.driver
            )));
        };
        ep.join = Some(JoinRecord {
            sandbox: None,
            sandbox_key: Some(sandbox_key.to_string()),
            interface: src_name.clone(),
            host_link: made.host_link,
        });
        if let Err(e) = self.commit(vec![Op::Endpoint(ep.clone())]).await {
            let _ = driver.leave(&nspec, &espec, &sspec, &src_name).await;
            return Err(e);
        }
        Ok(EngineJoin {
            src_name,
            gateway,
            gateway_v6,
        })
    }

    /// `NetworkDriver.Leave`; an unknown or unjoined endpoint has left already.
    pub async fn engine_leave(&self, network: &str, endpoint: &str) -> Result<(), ControllerError> {
        check_id("network", network)?;
        check_id("endpoint", endpoint)?;
        let Some(ep) = self.records().endpoints.get(endpoint).cloned() else {
            return Ok(());
        };
        if ep.origin != Origin::Docker {
            return Err(not_dockers("endpoint", &ep.name));
        }
        let _claim = self.claim_endpoint(&ep)?;
        let slot = self.slot(&ep.network);
        let _gate = slot.gate.read().await;
        let mut ep = self.endpoint_by_id(endpoint)?;
        let net = self.network_by_id(&ep.network)?;
        if ep.join.is_none() {
            return Ok(());
        }
        self.engine_leave_kernel(&net, &ep).await?;
        ep.join = None;
        self.commit(vec![Op::Endpoint(ep)]).await
    }

    /// `NetworkDriver.ProgramExternalConnectivity` (`requests` from its portmap) and,
    /// with no requests, `RevokeExternalConnectivity`: the ports the endpoint
    /// publishes, replacing what it published. An unknown endpoint has nothing to
    /// revoke.
    pub async fn engine_publish(
        &self,
        network: &str,
        endpoint: &str,
        requests: &[firewall::PortRequest],
    ) -> Result<(), ControllerError> {
        check_id("network", network)?;
        check_id("endpoint", endpoint)?;
        let Some(ep) = self.records().endpoints.get(endpoint).cloned() else {
            if requests.is_empty() {
                return Ok(());
            }
            return Err(ControllerError::not_found("endpoint", endpoint));
        };
        if ep.origin != Origin::Docker {
            return Err(not_dockers("endpoint", &ep.name));
        }
        if ep.network != network {
            return Err(ControllerError::Invalid(format!(
                "endpoint {} is on network {}, not {}",
                short_id(endpoint),
                short_id(&ep.network),
                short_id(network)
            )));
        }
        if requests.is_empty() && ep.ports.is_empty() {
            return Ok(());
        }
        let _claim = self.claim_endpoint(&ep)?;
        let slot = self.slot(&ep.network);
        let _gate = slot.gate.read().await;
        let ep = self.endpoint_by_id(endpoint)?;
        self.publish_locked(ep, requests).await.map(|_| ())
    }

    /// The kernel side of leaving an engine-placed join (its records are the
    /// caller's to change).
    pub(crate) async fn engine_leave_kernel(
        &self,
        net: &NetworkRecord,
        ep: &EndpointRecord,
    ) -> Result<(), ControllerError> {
        let Some(join) = &ep.join else {
            return Ok(());
        };
        let driver = self.driver(&net.driver)?;
        driver
            .leave(
                &network_spec(net),
                &endpoint_spec(ep),
                &SandboxSpec::default(),
                &join.interface,
            )
            .await?;
        Ok(())
    }

    /// The ids of `net`'s endpoints dockerd has evidently abandoned: never joined,
    /// joined to a sandbox that is gone, or joined with the interface dockerd was
    /// to move still beside netd (dockerd never took it: its sandbox's file may
    /// linger a while, dockerd removes those lazily).
    pub(crate) async fn abandoned_endpoints(&self, net: &NetworkRecord) -> HashSet<String> {
        let mut out = HashSet::new();
        let Ok(driver) = self.driver(&net.driver) else {
            return out;
        };
        for ep in self.network_endpoints(&net.id) {
            if ep.origin != Origin::Docker {
                continue;
            }
            let untaken = match &ep.join {
                Some(j) => {
                    driver
                        .engine_link_untaken(&endpoint_spec(&ep), &j.interface)
                        .await
                }
                None => false,
            };
            if untaken || abandoned(&ep) {
                out.insert(ep.id);
            }
        }
        out
    }

    /// Whether a Docker join is over although no Leave came: its sandbox's file is
    /// gone and so is its interface (a veth pair goes with the namespace that holds
    /// one end). The file alone says nothing: dockerd makes it only after Join, when
    /// it moves the interface into the container.
    async fn engine_join_over(&self, net: &NetworkRecord, ep: &EndpointRecord) -> bool {
        if !abandoned(ep) {
            return false;
        }
        let Ok(driver) = self.driver(&net.driver) else {
            return false;
        };
        match driver.host_link(&endpoint_spec(ep)) {
            Some(link) => matches!(self.nl.link(&link).await, Ok(None)),
            None => true,
        }
    }

    /// End `ep`'s join if it is still the one seen, and over, once the endpoint and
    /// its network are held (an endpoint busy with a call is looked at next time).
    async fn engine_end_stale_join(&self, ep: &EndpointRecord) -> Result<bool, ControllerError> {
        let Ok(_claim) = self.claim_endpoint(ep) else {
            return Ok(false);
        };
        let slot = self.slot(&ep.network);
        let _gate = slot.gate.read().await;
        let mut current = self.endpoint_by_id(&ep.id)?;
        let net = self.network_by_id(&current.network)?;
        if current.join != ep.join || !self.engine_join_over(&net, &current).await {
            return Ok(false);
        }
        self.engine_leave_kernel(&net, &current).await?;
        current.join = None;
        self.commit(vec![Op::Endpoint(current)]).await?;
        Ok(true)
    }

    /// Unjoin every Docker endpoint whose sandbox and interface are gone (a
    /// container that ended while its dockerd was down, or whose Leave never came):
    /// its record no longer claims a join. Returns their names.
    pub async fn reap_engine_joins(&self) -> Vec<String> {
        let stale: Vec<EndpointRecord> = self
            .records()
            .endpoints
            .values()
            .filter(|e| e.origin == Origin::Docker && e.join.is_some() && abandoned(e))
            .cloned()
            .collect();
        let mut reaped = Vec::new();
        for ep in stale {
            match self.engine_end_stale_join(&ep).await {
                Ok(true) => reaped.push(ep.name),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(endpoint = %ep.name, error = %e.full_message(), "could not unjoin an endpoint whose sandbox is gone")
                }
            }
        }
        reaped
    }
}
