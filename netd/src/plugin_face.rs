//! The plugin face: netd served to dockerd as the `NetworkDriver` and `IpamDriver`
//! of one Docker plugin. Each call is translated and handed to the controller's
//! engine operations, which answer only after the change is durable and touch only
//! what dockerd owns.

use crate::controller::{Controller, ControllerError, EnginePool, EnginePoolRequest, ErrorKind};
use async_trait::async_trait;
use plugin_api::protocol::ipam::*;
use plugin_api::protocol::network::*;
use plugin_api::protocol::types::MacAddress;
use plugin_api::server::Plugin;
use plugin_api::{IpamDriver, NetworkDriver, PluginError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `--ipam-opt com.docker.network.ipam.serial=true`: hand addresses out round-robin.
pub const OPTION_SERIAL: &str = "com.docker.network.ipam.serial";

fn to_plugin(e: ControllerError) -> PluginError {
    let err = PluginError::new(e.full_message());
    match e.kind() {
        ErrorKind::Invalid => err.with_status(axum::http::StatusCode::BAD_REQUEST),
        _ => err,
    }
}

/// `NetworkDriver` over the controller.
pub struct PluginNetwork {
    ctl: Arc<Controller>,
}

/// `IpamDriver` over the controller.
pub struct PluginIpam {
    ctl: Arc<Controller>,
}

/// The plugin dockerd talks to: both interfaces.
pub fn plugin(ctl: Arc<Controller>) -> Plugin {
    Plugin::new()
        .network(PluginNetwork {
            ctl: Arc::clone(&ctl),
        })
        .ipam(PluginIpam { ctl })
}

fn serial(options: &BTreeMap<String, String>) -> Result<bool, PluginError> {
    match options.get(OPTION_SERIAL).map(String::as_str) {
        None | Some("false") | Some("") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(to_plugin(ControllerError::Invalid(format!(
            "option {OPTION_SERIAL}={other:?}: expected true or false"
        )))),
    }
}

// Capabilities and address spaces are the trait's defaults: netd keeps the state,
// so dockerd need not replay its requests; spaces LocalDefault and GlobalDefault.
#[async_trait]
impl IpamDriver for PluginIpam {
    async fn request_pool(
        &self,
        req: RequestPoolRequest,
    ) -> Result<RequestPoolResponse, PluginError> {
        let id = self
            .ctl
            .engine_request_pool(EnginePoolRequest {
                space: req.address_space,
                pool: req.pool,
                sub_pool: req.sub_pool,
                v6: req.v6,
                serial: serial(&req.options)?,
            })
            .await
            .map_err(to_plugin)?;
        Ok(RequestPoolResponse {
            pool_id: id.to_string(),
            pool: id.subnet,
            data: BTreeMap::new(),
        })
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<(), PluginError> {
        self.ctl
            .engine_release_pool(&req.pool_id)
            .await
            .map_err(to_plugin)
    }

    async fn request_address(
        &self,
        req: RequestAddressRequest,
    ) -> Result<RequestAddressResponse, PluginError> {
        let gateway = req
            .options
            .get(OPTION_REQUEST_ADDRESS_TYPE)
            .map(String::as_str)
            == Some(REQUEST_ADDRESS_TYPE_GATEWAY);
        let address = self
            .ctl
            .engine_request_address(&req.pool_id, req.address, gateway)
            .await
            .map_err(to_plugin)?;
        Ok(RequestAddressResponse {
            address,
            data: BTreeMap::new(),
        })
    }

    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<(), PluginError> {
        self.ctl
            .engine_release_address(&req.pool_id, req.address)
            .await
            .map_err(to_plugin)
    }
}

/// dockerd's portmap as port requests.
fn port_requests(options: &Options) -> Result<Vec<firewall::PortRequest>, PluginError> {
    let bindings = port_bindings(options).map_err(PluginError::new)?;
    bindings
        .into_iter()
        .map(|b| {
            let proto = firewall::Proto::from_number(u64::from(b.proto))
                .map_err(|e| PluginError::new(e.to_string()))?;
            let host_ip = match b.host_ip.as_str() {
                "" => None,
                text => Some(text.parse::<std::net::IpAddr>().map_err(|_| {
                    PluginError::new(format!(
                        "port {}: host address {text:?} is not an IP address",
                        b.port
                    ))
                })?),
            };
            Ok(firewall::PortRequest {
                proto,
                host_ip,
                host_port: b.host_port,
                host_port_end: (b.host_port_end > b.host_port && b.host_port != 0)
                    .then_some(b.host_port_end),
                container_port: b.port,
                held_by_caller: false,
            })
        })
        .collect()
}

fn pools(data: &[IpamData]) -> Vec<EnginePool> {
    data.iter()
        .map(|d| EnginePool {
            pool: d.pool,
            gateway: d.gateway,
            aux_addresses: d.aux_addresses.clone(),
        })
        .collect()
}

#[async_trait]
impl NetworkDriver for PluginNetwork {
    async fn get_capabilities(&self) -> Result<NetworkCapabilities, PluginError> {
        Ok(NetworkCapabilities::default())
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<(), PluginError> {
        let mut options = req.generic_options();
        // `--internal` arrives beside the generic options; the firewall reads it
        // with the others.
        let internal = match req.options.get(OPTION_INTERNAL) {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        if internal {
            options.insert(OPTION_INTERNAL.to_string(), "true".to_string());
        }
        self.ctl
            .engine_create_network(
                &req.network_id,
                options,
                pools(&req.ipv4_data),
                pools(&req.ipv6_data),
            )
            .await
            .map(|_| ())
            .map_err(to_plugin)
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<(), PluginError> {
        self.ctl
            .engine_delete_network(&req.network_id)
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
            .engine_create_endpoint(&req.network_id, &req.endpoint_id, addresses, mac)
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
            .engine_delete_endpoint(&req.endpoint_id)
            .await
            .map_err(to_plugin)
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinResponse, PluginError> {
        let joined = self
            .ctl
            .engine_join(&req.network_id, &req.endpoint_id, &req.sandbox_key)
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

    async fn program_external_connectivity(
        &self,
        req: ProgramExternalConnectivityRequest,
    ) -> Result<(), PluginError> {
        let requests = port_requests(&req.options)?;
        self.ctl
            .engine_publish(&req.network_id, &req.endpoint_id, &requests)
            .await
            .map_err(to_plugin)
    }

    async fn revoke_external_connectivity(
        &self,
        req: RevokeExternalConnectivityRequest,
    ) -> Result<(), PluginError> {
        self.ctl
            .engine_publish(&req.network_id, &req.endpoint_id, &[])
            .await
            .map_err(to_plugin)
    }

    async fn leave(&self, req: LeaveRequest) -> Result<(), PluginError> {
        self.ctl
            .engine_leave(&req.network_id, &req.endpoint_id)
            .await
            .map_err(to_plugin)
    }
}
