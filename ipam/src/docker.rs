//! The allocator as a Docker `IpamDriver` (through plugin-api), with the engine's
//! semantics: address spaces `LocalDefault`/`GlobalDefault`, `V6` pools out of the
//! host's ULA prefix, the `com.docker.network.ipam.serial` option, gateway requests
//! marked by `RequestAddressType`, addresses answered in CIDR form.

use crate::allocator::{Ipam, Journal, PoolRequest};
use crate::error::IpamError;
use crate::id::{AddressSpace, PoolId};
use crate::Family;
use async_trait::async_trait;
use plugin_api::protocol::ipam::*;
use plugin_api::{IpamDriver, PluginError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// `--ipam-opt com.docker.network.ipam.serial=true`: hand addresses out round-robin.
pub const OPTION_SERIAL: &str = "com.docker.network.ipam.serial";

/// Serves an [`Ipam`] to the engine. Each call holds the allocator's lock only for
/// the allocation itself, which takes microseconds.
pub struct DockerIpam<J: Journal + Send + 'static> {
    ipam: Arc<Mutex<Ipam<J>>>,
}

impl<J: Journal + Send + 'static> DockerIpam<J> {
    /// Serve `ipam`, shared with the caller.
    pub fn new(ipam: Arc<Mutex<Ipam<J>>>) -> Self {
        DockerIpam { ipam }
    }

    fn lock(&self) -> MutexGuard<'_, Ipam<J>> {
        // A panic while holding the lock cannot leave the allocator half-changed:
        // every method checks before it changes anything.
        self.ipam.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn space_of(name: &str) -> Result<AddressSpace, IpamError> {
    match name {
        "" | LOCAL_DEFAULT_ADDRESS_SPACE | "local" => Ok(AddressSpace::Local),
        GLOBAL_DEFAULT_ADDRESS_SPACE | "global" => Ok(AddressSpace::Global),
        other => Err(IpamError::UnknownSpace(other.to_string())),
    }
}

fn pool_id(text: &str) -> Result<PoolId, IpamError> {
    text.parse()
}

fn to_plugin(err: IpamError) -> PluginError {
    PluginError::new(err.to_string())
}

fn serial(options: &BTreeMap<String, String>) -> Result<bool, IpamError> {
    match options.get(OPTION_SERIAL).map(String::as_str) {
        None | Some("false") | Some("") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(IpamError::invalid(
            "option",
            format!("{OPTION_SERIAL}={other:?}: expected true or false"),
        )),
    }
}

#[async_trait]
impl<J: Journal + Send + 'static> IpamDriver for DockerIpam<J> {
    async fn get_capabilities(&self) -> Result<IpamCapabilities, PluginError> {
        // State is kept by the allocator's owner, so the engine need not replay.
        Ok(IpamCapabilities::default())
    }

    async fn request_pool(
        &self,
        req: RequestPoolRequest,
    ) -> Result<RequestPoolResponse, PluginError> {
        let space = space_of(&req.address_space).map_err(to_plugin)?;
        if let Some(pool) = req.pool {
            let family = Family::of_net(&pool);
            if (family == Family::V6) != req.v6 {
                let wanted = if req.v6 { Family::V6 } else { Family::V4 };
                return Err(to_plugin(IpamError::invalid(
                    "pool",
                    format!("{pool} is not an {wanted} subnet"),
                )));
            }
        }
        let request = PoolRequest {
            space: Some(space),
            subnet: req.pool,
            range: req.sub_pool,
            v6: req.v6,
            serial: serial(&req.options).map_err(to_plugin)?,
            owner: None,
            exclude: Vec::new(),
        };
        let id = self.lock().request_pool(&request).map_err(to_plugin)?;
        Ok(RequestPoolResponse {
            pool_id: id.to_string(),
            pool: id.subnet,
            data: BTreeMap::new(),
        })
    }

    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<(), PluginError> {
        let id = pool_id(&req.pool_id).map_err(to_plugin)?;
        self.lock().release_pool(&id).map_err(to_plugin)
    }

    async fn request_address(
        &self,
        req: RequestAddressRequest,
    ) -> Result<RequestAddressResponse, PluginError> {
        let id = pool_id(&req.pool_id).map_err(to_plugin)?;
        // A gateway request is an address request like any other: the given address,
        // or the lowest free one of the range.
        let address = self
            .lock()
            .request_address(&id, req.address)
            .map_err(to_plugin)?;
        Ok(RequestAddressResponse {
            address,
            data: BTreeMap::new(),
        })
    }

    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<(), PluginError> {
        let id = pool_id(&req.pool_id).map_err(to_plugin)?;
        self.lock()
            .release_address(&id, req.address)
            .map_err(to_plugin)
    }
}
