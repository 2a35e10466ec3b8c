//! The three driver traits a plugin implements. Methods with a default body are
//! calls the engine may make that have a sensible no-op answer.

use crate::error::PluginError;
use crate::protocol::ipam::*;
use crate::protocol::network::*;
use crate::protocol::volume::*;
use async_trait::async_trait;

/// A remote network driver (`NetworkDriver.*`).
#[async_trait]
pub trait NetworkDriver: Send + Sync + 'static {
    /// Scope of the driver. Default: local, local.
    async fn get_capabilities(&self) -> Result<NetworkCapabilities, PluginError> {
        Ok(NetworkCapabilities::default())
    }
    /// Engines 28+, if `gw_alloc_checker` is set: may gateway allocation be skipped?
    /// Default: no.
    async fn gw_alloc_check(
        &self,
        _req: GwAllocCheckRequest,
    ) -> Result<GwAllocCheckResponse, PluginError> {
        Ok(GwAllocCheckResponse::default())
    }
    /// `docker network create`: the engine has allocated the pools already.
    async fn create_network(&self, req: CreateNetworkRequest) -> Result<(), PluginError>;
    /// `docker network rm`.
    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<(), PluginError>;
    /// Swarm managers only: allocate cluster-wide resources. Default: nothing to allocate.
    async fn allocate_network(
        &self,
        _req: AllocateNetworkRequest,
    ) -> Result<AllocateNetworkResponse, PluginError> {
        Ok(AllocateNetworkResponse::default())
    }
    /// Swarm managers only: release what `allocate_network` took. Default: nothing.
    async fn free_network(&self, _req: FreeNetworkRequest) -> Result<(), PluginError> {
        Ok(())
    }
    /// An endpoint is created on a network (before a container joins).
    async fn create_endpoint(
        &self,
        req: CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse, PluginError>;
    /// Operational data for `docker inspect`. Default: none.
    async fn endpoint_oper_info(
        &self,
        _req: EndpointOperInfoRequest,
    ) -> Result<EndpointOperInfoResponse, PluginError> {
        Ok(EndpointOperInfoResponse::default())
    }
    /// The endpoint is deleted.
    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<(), PluginError>;
    /// The endpoint joins a sandbox: answer the interface to move in and the gateway.
    async fn join(&self, req: JoinRequest) -> Result<JoinResponse, PluginError>;
    /// The endpoint leaves its sandbox.
    async fn leave(&self, req: LeaveRequest) -> Result<(), PluginError>;
    /// A node or key appeared. Default: ignored.
    async fn discover_new(&self, _req: DiscoveryNotification) -> Result<(), PluginError> {
        Ok(())
    }
    /// A node or key went away. Default: ignored.
    async fn discover_delete(&self, _req: DiscoveryNotification) -> Result<(), PluginError> {
        Ok(())
    }
    /// Set up external access (port publishing) for the endpoint. Default: nothing.
    async fn program_external_connectivity(
        &self,
        _req: ProgramExternalConnectivityRequest,
    ) -> Result<(), PluginError> {
        Ok(())
    }
    /// Undo `program_external_connectivity`. Default: nothing.
    async fn revoke_external_connectivity(
        &self,
        _req: RevokeExternalConnectivityRequest,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

/// A remote IPAM driver (`IpamDriver.*`).
#[async_trait]
pub trait IpamDriver: Send + Sync + 'static {
    /// Default: needs neither MAC addresses nor request replay.
    async fn get_capabilities(&self) -> Result<IpamCapabilities, PluginError> {
        Ok(IpamCapabilities::default())
    }
    /// Default: `LocalDefault` and `GlobalDefault`.
    async fn get_default_address_spaces(&self) -> Result<AddressSpacesResponse, PluginError> {
        Ok(AddressSpacesResponse::default())
    }
    /// Reserve a subnet (a given one, or any).
    async fn request_pool(
        &self,
        req: RequestPoolRequest,
    ) -> Result<RequestPoolResponse, PluginError>;
    /// Release a subnet.
    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<(), PluginError>;
    /// Reserve an address in a pool (a given one, any, or the gateway).
    async fn request_address(
        &self,
        req: RequestAddressRequest,
    ) -> Result<RequestAddressResponse, PluginError>;
    /// Release an address.
    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<(), PluginError>;
}

/// A volume plugin (`VolumeDriver.*`).
#[async_trait]
pub trait VolumeDriver: Send + Sync + 'static {
    /// `docker volume create`.
    async fn create(&self, req: CreateVolumeRequest) -> Result<(), PluginError>;
    /// `docker volume rm`.
    async fn remove(&self, req: RemoveVolumeRequest) -> Result<(), PluginError>;
    /// A container starts using the volume: make it available and say where.
    async fn mount(&self, req: MountRequest) -> Result<MountpointResponse, PluginError>;
    /// A container stops using the volume.
    async fn unmount(&self, req: UnmountRequest) -> Result<(), PluginError>;
    /// Where the volume is (empty if not mounted).
    async fn path(&self, req: PathRequest) -> Result<MountpointResponse, PluginError>;
    /// One volume.
    async fn get(&self, req: GetVolumeRequest) -> Result<GetVolumeResponse, PluginError>;
    /// Every volume.
    async fn list(&self) -> Result<ListVolumesResponse, PluginError>;
    /// Default: local scope.
    async fn capabilities(&self) -> Result<CapabilitiesResponse, PluginError> {
        Ok(CapabilitiesResponse::default())
    }
}
