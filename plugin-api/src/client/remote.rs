//! A remote plugin used as a local driver: every trait method becomes a call.

use super::call::PluginClient;
use super::error::ClientError;
use crate::error::PluginError;
use crate::protocol::ipam::*;
use crate::protocol::network::*;
use crate::protocol::volume::*;
use crate::server::{IpamDriver, NetworkDriver, VolumeDriver};
use async_trait::async_trait;
use axum::http::StatusCode;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use serde_json::json;

/// Forwards the driver traits to a plugin over its socket, so netd and volumed can
/// front third-party plugins exactly as they serve their own drivers.
#[derive(Debug, Clone)]
pub struct RemoteDriver {
    client: PluginClient,
}

impl RemoteDriver {
    /// Wrap `client`.
    pub fn new(client: PluginClient) -> Self {
        RemoteDriver { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &PluginClient {
        &self.client
    }

    async fn call<Req: Serialize + Sync, Resp: DeserializeOwned>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, PluginError> {
        self.client.call(method, req).await.map_err(to_plugin_error)
    }

    async fn call_unit<Req: Serialize + Sync>(
        &self,
        method: &str,
        req: &Req,
    ) -> Result<(), PluginError> {
        self.call::<Req, IgnoredAny>(method, req).await.map(|_| ())
    }
}

/// Keep the remote plugin's own message and status, so the engine sees what it said.
fn to_plugin_error(err: ClientError) -> PluginError {
    match &err {
        ClientError::Plugin {
            status, message, ..
        } => PluginError::new(message.clone()).with_status(
            StatusCode::from_u16(*status)
                .ok()
                .filter(|s| !s.is_success())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        ),
        _ => PluginError::from_error(&err),
    }
}

#[async_trait]
impl NetworkDriver for RemoteDriver {
    async fn get_capabilities(&self) -> Result<NetworkCapabilities, PluginError> {
        self.call("NetworkDriver.GetCapabilities", &json!({})).await
    }
    async fn gw_alloc_check(
        &self,
        req: GwAllocCheckRequest,
    ) -> Result<GwAllocCheckResponse, PluginError> {
        self.call("NetworkDriver.GwAllocCheck", &req).await
    }
    async fn create_network(&self, req: CreateNetworkRequest) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.CreateNetwork", &req).await
    }
    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.DeleteNetwork", &req).await
    }
    async fn allocate_network(
        &self,
        req: AllocateNetworkRequest,
    ) -> Result<AllocateNetworkResponse, PluginError> {
        self.call("NetworkDriver.AllocateNetwork", &req).await
    }
    async fn free_network(&self, req: FreeNetworkRequest) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.FreeNetwork", &req).await
    }
    async fn create_endpoint(
        &self,
        req: CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse, PluginError> {
        self.call("NetworkDriver.CreateEndpoint", &req).await
    }
    async fn endpoint_oper_info(
        &self,
        req: EndpointOperInfoRequest,
    ) -> Result<EndpointOperInfoResponse, PluginError> {
        self.call("NetworkDriver.EndpointOperInfo", &req).await
    }
    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.DeleteEndpoint", &req).await
    }
    async fn join(&self, req: JoinRequest) -> Result<JoinResponse, PluginError> {
        self.call("NetworkDriver.Join", &req).await
    }
    async fn leave(&self, req: LeaveRequest) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.Leave", &req).await
    }
    async fn discover_new(&self, req: DiscoveryNotification) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.DiscoverNew", &req).await
    }
    async fn discover_delete(&self, req: DiscoveryNotification) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.DiscoverDelete", &req).await
    }
    async fn program_external_connectivity(
        &self,
        req: ProgramExternalConnectivityRequest,
    ) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.ProgramExternalConnectivity", &req)
            .await
    }
    async fn revoke_external_connectivity(
        &self,
        req: RevokeExternalConnectivityRequest,
    ) -> Result<(), PluginError> {
        self.call_unit("NetworkDriver.RevokeExternalConnectivity", &req)
            .await
    }
}

#[async_trait]
impl IpamDriver for RemoteDriver {
    async fn get_capabilities(&self) -> Result<IpamCapabilities, PluginError> {
        self.call("IpamDriver.GetCapabilities", &json!({})).await
    }
    async fn get_default_address_spaces(&self) -> Result<AddressSpacesResponse, PluginError> {
        self.call("IpamDriver.GetDefaultAddressSpaces", &json!({}))
            .await
    }
    async fn request_pool(
        &self,
        req: RequestPoolRequest,
    ) -> Result<RequestPoolResponse, PluginError> {
        self.call("IpamDriver.RequestPool", &req).await
    }
    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<(), PluginError> {
        self.call_unit("IpamDriver.ReleasePool", &req).await
    }
    async fn request_address(
        &self,
        req: RequestAddressRequest,
    ) -> Result<RequestAddressResponse, PluginError> {
        self.call("IpamDriver.RequestAddress", &req).await
    }
    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<(), PluginError> {
        self.call_unit("IpamDriver.ReleaseAddress", &req).await
    }
}

#[async_trait]
impl VolumeDriver for RemoteDriver {
    async fn create(&self, req: CreateVolumeRequest) -> Result<(), PluginError> {
        self.call_unit("VolumeDriver.Create", &req).await
    }
    async fn remove(&self, req: RemoveVolumeRequest) -> Result<(), PluginError> {
        self.call_unit("VolumeDriver.Remove", &req).await
    }
    async fn mount(&self, req: MountRequest) -> Result<MountpointResponse, PluginError> {
        self.call("VolumeDriver.Mount", &req).await
    }
    async fn unmount(&self, req: UnmountRequest) -> Result<(), PluginError> {
        self.call_unit("VolumeDriver.Unmount", &req).await
    }
    async fn path(&self, req: PathRequest) -> Result<MountpointResponse, PluginError> {
        self.call("VolumeDriver.Path", &req).await
    }
    async fn get(&self, req: GetVolumeRequest) -> Result<GetVolumeResponse, PluginError> {
        self.call("VolumeDriver.Get", &req).await
    }
    async fn list(&self) -> Result<ListVolumesResponse, PluginError> {
        self.call("VolumeDriver.List", &json!({})).await
    }
    async fn capabilities(&self) -> Result<CapabilitiesResponse, PluginError> {
        self.call("VolumeDriver.Capabilities", &json!({})).await
    }
}
