//! The Docker face: netd's controller and allocator served to dockerd as the
//! `NetworkDriver` and `IpamDriver` of one plugin. Each call is translated and handed
//! to the controller; allocator changes are made durable before the answer.

use crate::controller::docker::DockerPool;
use crate::controller::{Buffer, Controller, ControllerError, ErrorKind};
use async_trait::async_trait;
use ipam::docker::DockerIpam;
use ipnet::IpNet;
use plugin_api::protocol::ipam::*;
use plugin_api::protocol::network::*;
use plugin_api::protocol::types::MacAddress;
use plugin_api::server::Plugin;
use plugin_api::{IpamDriver, NetworkDriver, PluginError};
use std::sync::{Arc, Mutex};

fn to_plugin(e: ControllerError) -> PluginError {
    let err = PluginError::new(e.full_message());
    match e.kind() {
        ErrorKind::Invalid => err.with_status(axum::http::StatusCode::BAD_REQUEST),
        _ => err,
    }
}

/// `NetworkDriver` over the controller.
pub struct DockerNetwork {
    ctl: Arc<Controller>,
}

/// `IpamDriver` over the controller's allocator.
pub struct DockerAllocator {
    ctl: Arc<Controller>,
    inner: DockerIpam<Buffer>,
    /// The host's routes and name servers, refreshed before each pool choice.
    exclusions: Arc<Mutex<Vec<IpNet>>>,
}

/// The plugin dockerd talks to: both interfaces.
pub fn plugin(ctl: Arc<Controller>) -> Plugin {
    let exclusions: Arc<Mutex<Vec<IpNet>>> = Arc::default();
    let current = Arc::clone(&exclusions);
    let inner = DockerIpam::new(ctl.allocator()).with_exclusions(Arc::new(move || {
        current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }));
    Plugin::new()
        .network(DockerNetwork {
            ctl: Arc::clone(&ctl),
        })
        .ipam(DockerAllocator {
            ctl,
            inner,
            exclusions,
        })
}

impl DockerAllocator {
    async fn durable<T>(&self, result: Result<T, PluginError>) -> Result<T, PluginError> {
        let value = result?;
        self.ctl.persist_allocator().await.map_err(to_plugin)?;
        Ok(value)
    }
}

#[async_trait]
impl IpamDriver for DockerAllocator {
    async fn get_capabilities(&self) -> Result<IpamCapabilities, PluginError> {
        self.inner.get_capabilities().await
    }

    async fn get_default_address_spaces(&self) -> Result<AddressSpacesResponse, PluginError> {
        self.inner.get_default_address_spaces().await
    }

    async fn request_pool(
        &self,
        req: RequestPoolRequest,
    ) -> Result<RequestPoolResponse, PluginError> {
        if req.pool.is_none() {
            // A pool chosen for dockerd avoids the host's routes and name servers.
            let now = self.ctl.host_exclusions().await;
            *self.exclusions.lock().unwrap_or_else(|e| e.into_inner()) = now;
        }
        self.durable(self.inner.request_pool(req).await).await
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<(), PluginError> {
        self.durable(self.inner.release_pool(req).await).await
    }

    async fn request_address(
        &self,
        req: RequestAddressRequest,
    ) -> Result<RequestAddressResponse, PluginError> {
        self.durable(self.inner.request_address(req).await).await
    }

    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<(), PluginError> {
        self.durable(self.inner.release_address(req).await).await
    }
}

#[async_trait]
impl NetworkDriver for DockerNetwork {
    async fn get_capabilities(&self) -> Result<NetworkCapabilities, PluginError> {
        Ok(NetworkCapabilities::default())
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<(), PluginError> {
        let options = req.generic_options();
        let pools = req
            .ipv4_data
            .iter()
            .chain(&req.ipv6_data)
            .map(|d| DockerPool {
                pool: d.pool,
                gateway: d.gateway,
                aux_addresses: d.aux_addresses.clone(),
            })
            .collect();
        self.ctl
            .docker_create_network(&req.network_id, options, pools)
            .await
            .map(|_| ())
            .map_err(to_plugin)
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<(), PluginError> {
        self.ctl
            .docker_delete_network(&req.network_id)
            .await
            .map_err(to_plugin)
    }

    async fn create_endpoint(
        &self,
        req: CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse, PluginError> {
        let iface = req.interface.unwrap_or_default();
        let addresses = iface
            .address
            .into_iter()
            .chain(iface.address_ipv6)
            .collect();
        let mac = iface.mac_address.map(|m| m.to_string());
        let chosen = self
            .ctl
            .docker_create_endpoint(&req.network_id, &req.endpoint_id, addresses, mac)
            .await
            .map_err(to_plugin)?;
        let interface = match chosen {
            Some(mac) => Some(EndpointInterface {
                mac_address: Some(
                    mac.parse::<MacAddress>()
                        .map_err(|e| PluginError::new(e.0))?,
                ),
                ..Default::default()
            }),
            None => None,
        };
        Ok(CreateEndpointResponse { interface })
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<(), PluginError> {
        self.ctl
            .docker_delete_endpoint(&req.endpoint_id)
            .await
            .map_err(to_plugin)
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinResponse, PluginError> {
        let joined = self
            .ctl
            .docker_join(&req.network_id, &req.endpoint_id, &req.sandbox_key)
            .await
            .map_err(to_plugin)?;
        Ok(JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: joined.src_name,
                dst_name: String::new(),
                dst_prefix: "eth".into(),
            }),
            gateway: joined.gateway,
            gateway_ipv6: joined.gateway_v6,
            static_routes: Vec::new(),
            // No gateway (an IPv6-only or gateway-less network) would make dockerd add
            // its own docker_gwbridge interface; say so explicitly instead.
            disable_gateway_service: joined.gateway.is_none() && joined.gateway_v6.is_none(),
        })
    }

    async fn leave(&self, req: LeaveRequest) -> Result<(), PluginError> {
        self.ctl
            .docker_leave(&req.network_id, &req.endpoint_id)
            .await
            .map_err(to_plugin)
    }
}
