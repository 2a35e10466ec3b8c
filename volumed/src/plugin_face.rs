//! volumed served to dockerd as a `VolumeDriver`: each call handed to the manager.

use crate::manager::Manager;
use crate::{ErrorKind, VolumeError};
use async_trait::async_trait;
use plugin_api::protocol::volume::*;
use plugin_api::protocol::Timestamp;
use plugin_api::server::Plugin;
use plugin_api::{PluginError, VolumeDriver};
use std::sync::Arc;

fn to_plugin(e: VolumeError) -> PluginError {
    let err = PluginError::new(e.to_string());
    match e.kind() {
        ErrorKind::Invalid => err.with_status(axum::http::StatusCode::BAD_REQUEST),
        _ => err,
    }
}

/// The plugin dockerd talks to.
pub fn plugin(manager: Arc<Manager>) -> Plugin {
    Plugin::new().volume(PluginVolumes { manager })
}

struct PluginVolumes {
    manager: Arc<Manager>,
}

fn volume(v: &crate::model::VolumeRecord) -> Volume {
    let mut status = serde_json::Map::new();
    status.insert("references".into(), v.references().into());
    if !v.options.is_empty() {
        status.insert("options".into(), serde_json::json!(v.options));
    }
    Volume {
        name: v.name.clone(),
        mountpoint: v.mountpoint.clone(),
        created_at: v.created.parse::<Timestamp>().ok(),
        status,
    }
}

#[async_trait]
impl VolumeDriver for PluginVolumes {
    async fn create(&self, req: CreateVolumeRequest) -> Result<(), PluginError> {
        // dockerd keeps the labels itself; the plugin gets the options.
        self.manager
            .create(Some(&req.name), req.opts, Default::default())
            .await
            .map(|_| ())
            .map_err(to_plugin)
    }

    async fn remove(&self, req: RemoveVolumeRequest) -> Result<(), PluginError> {
        self.manager
            .remove(&req.name)
            .await
            .map(|_| ())
            .map_err(to_plugin)
    }

    async fn mount(&self, req: MountRequest) -> Result<MountpointResponse, PluginError> {
        let path = self
            .manager
            .mount(&req.name, &req.id)
            .await
            .map_err(to_plugin)?;
        Ok(MountpointResponse {
            mountpoint: path.display().to_string(),
        })
    }

    async fn unmount(&self, req: UnmountRequest) -> Result<(), PluginError> {
        self.manager
            .unmount(&req.name, &req.id)
            .await
            .map_err(to_plugin)
    }

    async fn path(&self, req: PathRequest) -> Result<MountpointResponse, PluginError> {
        let v = self.manager.get(&req.name).map_err(to_plugin)?;
        Ok(MountpointResponse {
            mountpoint: v.mountpoint,
        })
    }

    async fn get(&self, req: GetVolumeRequest) -> Result<GetVolumeResponse, PluginError> {
        let v = self.manager.get(&req.name).map_err(to_plugin)?;
        Ok(GetVolumeResponse { volume: volume(&v) })
    }

    async fn list(&self) -> Result<ListVolumesResponse, PluginError> {
        Ok(ListVolumesResponse {
            volumes: self.manager.list().iter().map(volume).collect(),
        })
    }
}
