//! The controller's side of Docker's NetworkDriver protocol: networks and
//! endpoints whose ids and addresses come from dockerd (its IPAM calls came to netd's
//! allocator already), and joins where dockerd moves the interface itself.

use super::endpoints::Prepared;
use super::persist::Op;
use super::{endpoint_spec, lock, network_spec, Controller, ControllerError, Holdings, NameGuard};
use crate::model::{
    format_mac, generate_mac, is_full_id, now, parse_mac, short_id, EndpointRecord, JoinRecord,
    NetworkRecord, Origin, SubnetRecord,
};
use crate::store::Kind;
use drivers::SandboxSpec;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What a Docker join answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerJoin {
    /// The interface, in netd's namespace, that dockerd moves into the sandbox.
    pub src_name: String,
    /// IPv4 gateway.
    pub gateway: Option<IpAddr>,
    /// IPv6 gateway.
    pub gateway_v6: Option<IpAddr>,
}

/// One pool of a Docker network, as dockerd describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerPool {
    /// The subnet.
    pub pool: IpNet,
    /// Gateway, CIDR form.
    pub gateway: Option<IpNet>,
    /// Aux addresses, CIDR form.
    pub aux_addresses: BTreeMap<String, IpNet>,
}

fn check_id(what: &str, id: &str) -> Result<(), ControllerError> {
    if is_full_id(id) {
        Ok(())
    } else {
        Err(ControllerError::Invalid(format!(
            "invalid {what} id {id:?}: expected 64 lower-case hex digits"
        )))
    }
}

impl Controller {
    /// `NetworkDriver.CreateNetwork`. Creating an existing network again is a no-op.
    pub async fn docker_create_network(
        &self,
        id: &str,
        options: BTreeMap<String, String>,
        pools: Vec<DockerPool>,
    ) -> Result<NetworkRecord, ControllerError> {
        check_id("network", id)?;
        if let Some(existing) = self.store.get::<NetworkRecord>(Kind::Network, id)? {
            return Ok(existing);
        }
        let driver = self.driver("bridge")?;
        let record = NetworkRecord {
            id: id.to_string(),
            name: format!("docker-{}", short_id(id)),
            driver: "bridge".into(),
            scope: "local".into(),
            subnets: pools
                .into_iter()
                .map(|p| SubnetRecord {
                    subnet: p.pool,
                    gateway: p.gateway.map(|g| g.addr()),
                    ip_range: None,
                    aux_addresses: p
                        .aux_addresses
                        .into_iter()
                        .map(|(k, v)| (k, v.addr()))
                        .collect(),
                    pool: None,
                })
                .collect(),
            options,
            labels: BTreeMap::new(),
            origin: Origin::Docker,
            created: now(),
        };
        let spec = network_spec(&record);
        driver.validate(&spec)?;
        let reservation = NameGuard::reserve(&self.network_names, &record.name, || {
            format!("a network named {} exists already", record.name)
        })?;
        self.make_and_store_network(&*driver, &spec, record, Holdings::new(self), reservation)
            .await
    }

    /// `NetworkDriver.DeleteNetwork`; an unknown network is already deleted.
    pub async fn docker_delete_network(&self, id: &str) -> Result<(), ControllerError> {
        check_id("network", id)?;
        if self
            .store
            .get::<NetworkRecord>(Kind::Network, id)?
            .is_none()
        {
            return Ok(());
        }
        self.delete_network(id).await.map(|_| ())
    }

    /// `NetworkDriver.CreateEndpoint`: store the endpoint with the addresses dockerd
    /// allocated. Answers the MAC address if netd chose it.
    pub async fn docker_create_endpoint(
        &self,
        network: &str,
        endpoint: &str,
        addresses: Vec<IpNet>,
        mac: Option<String>,
    ) -> Result<Option<String>, ControllerError> {
        check_id("network", network)?;
        check_id("endpoint", endpoint)?;
        let net: NetworkRecord = self.get(Kind::Network, "network", network)?;
        let slot = self.slot(&net.id);
        let _gate = slot.gate.read().await;
        if self
            .store
            .get::<EndpointRecord>(Kind::Endpoint, endpoint)?
            .is_some()
        {
            return Err(ControllerError::Conflict(format!(
                "endpoint {} exists already",
                short_id(endpoint)
            )));
        }
        for a in &addresses {
            if !net.subnets.iter().any(|s| s.subnet.contains(&a.addr())) {
                return Err(ControllerError::Invalid(format!(
                    "address {a} is not in any subnet of network {}",
                    net.name
                )));
            }
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
        let name = format!("docker-{}", short_id(endpoint));
        let prepared = Prepared {
            record: EndpointRecord {
                id: endpoint.to_string(),
                name: name.clone(),
                network: net.id.clone(),
                addresses,
                mac: format_mac(&mac),
                join: None,
                attached: false,
                origin: Origin::Docker,
                created: now(),
            },
            holdings: Holdings::new(self),
            name: NameGuard::reserve(&slot.endpoint_names, &name, || {
                format!("endpoint {name} exists already")
            })?,
        };
        self.commit(vec![Op::Endpoint(prepared.record.clone())], 0)
            .await?;
        prepared.name.commit();
        Ok(chosen.then_some(prepared.record.mac))
    }

    /// `NetworkDriver.DeleteEndpoint`; an unknown endpoint is already deleted. Its
    /// addresses are dockerd's to release.
    pub async fn docker_delete_endpoint(&self, endpoint: &str) -> Result<(), ControllerError> {
        check_id("endpoint", endpoint)?;
        let Some(ep) = self.store.get::<EndpointRecord>(Kind::Endpoint, endpoint)? else {
            return Ok(());
        };
        let _claim = self.claim_endpoint(&ep)?;
        if let Some(net) = self
            .store
            .get::<NetworkRecord>(Kind::Network, &ep.network)?
        {
            if ep.join.is_some() {
                self.docker_unjoin(&net, ep.clone()).await?;
            }
        }
        self.commit(vec![Op::Delete(Kind::Endpoint, ep.id.clone())], 0)
            .await?;
        lock(&self.slot(&ep.network).endpoint_names).remove(&ep.name);
        Ok(())
    }

    /// `NetworkDriver.Join`: a veth whose peer stays in netd's namespace for dockerd
    /// to move, and the gateways dockerd must route through.
    pub async fn docker_join(
        &self,
        network: &str,
        endpoint: &str,
        sandbox_key: &str,
    ) -> Result<DockerJoin, ControllerError> {
        check_id("endpoint", endpoint)?;
        let ep: EndpointRecord = self.get(Kind::Endpoint, "endpoint", endpoint)?;
        let _claim = self.claim_endpoint(&ep)?;
        if ep.network != network {
            return Err(ControllerError::Invalid(format!(
                "endpoint {} is not on network {}",
                short_id(endpoint),
                short_id(network)
            )));
        }
        let slot = self.slot(&ep.network);
        let _gate = slot.gate.read().await;
        let net: NetworkRecord = self.get(Kind::Network, "network", &ep.network)?;
        let mut ep: EndpointRecord = self.get(Kind::Endpoint, "endpoint", endpoint)?;
        let src_name = format!("vp{}", short_id(&ep.id));
        let gateway_of = |v4: bool| {
            net.subnets
                .iter()
                .filter(|s| ep.addresses.iter().any(|a| s.subnet.contains(&a.addr())))
                .filter_map(|s| s.gateway)
                .find(|g| g.is_ipv4() == v4)
        };
        let answer = DockerJoin {
            src_name: src_name.clone(),
            gateway: gateway_of(true),
            gateway_v6: gateway_of(false),
        };
        if ep.join.is_some() {
            return Ok(answer);
        }
        let driver = self.driver(&net.driver)?;
        let nspec = network_spec(&net);
        let espec = endpoint_spec(&ep);
        let sspec = SandboxSpec::default();
        let made = driver.join(&nspec, &espec, &sspec, &src_name).await?;
        ep.join = Some(JoinRecord {
            sandbox: None,
            sandbox_key: Some(sandbox_key.to_string()),
            interface: src_name.clone(),
            host_link: made.host_link,
        });
        if let Err(e) = self.commit(vec![Op::Endpoint(ep.clone())], 0).await {
            let _ = driver.leave(&nspec, &espec, &sspec, &src_name).await;
            return Err(e);
        }
        Ok(answer)
    }

    /// `NetworkDriver.Leave`.
    pub async fn docker_leave(&self, network: &str, endpoint: &str) -> Result<(), ControllerError> {
        check_id("endpoint", endpoint)?;
        let Some(ep) = self.store.get::<EndpointRecord>(Kind::Endpoint, endpoint)? else {
            return Ok(());
        };
        let _claim = self.claim_endpoint(&ep)?;
        let net: NetworkRecord = self.get(Kind::Network, "network", network)?;
        let slot = self.slot(&net.id);
        let _gate = slot.gate.read().await;
        self.docker_unjoin(&net, ep).await
    }

    async fn docker_unjoin(
        &self,
        net: &NetworkRecord,
        mut ep: EndpointRecord,
    ) -> Result<(), ControllerError> {
        let Some(join) = ep.join.take() else {
            return Ok(());
        };
        let driver = self.driver(&net.driver)?;
        driver
            .leave(
                &network_spec(net),
                &endpoint_spec(&ep),
                &SandboxSpec::default(),
                &join.interface,
            )
            .await?;
        self.commit(vec![Op::Endpoint(ep)], 0).await
    }
}
