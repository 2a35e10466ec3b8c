//! Helpers shared by the integration tests: fixtures, a recording test driver, and a
//! plugin served on a real unix socket in a temporary directory.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use axum::Router;
use plugin_api::protocol::ipam::*;
use plugin_api::protocol::network::*;
use plugin_api::protocol::volume::*;
use plugin_api::server::ServeError;
use plugin_api::{
    async_trait, IpamDriver, NetworkDriver, PluginClient, PluginError, PluginSocket, Registration,
    VolumeDriver,
};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The directory holding the JSON fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The text of fixture `name` (a file name without `.json`), as the engine sends it.
pub fn fixture_text(name: &str) -> String {
    let path = fixtures_dir().join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Fixture `name` as a JSON value.
pub fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A test driver for all three interfaces. It implements only the required trait
/// methods (so the defaults are what the router serves for the others), records
/// every call with its decoded request, and can be told to fail or to be slow.
#[derive(Clone, Default)]
pub struct Fake {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    fail: Option<PluginError>,
    delay: Option<Duration>,
}

/// The volume every [`Fake`] knows, as `Get` and `List` describe it.
pub fn fake_volume(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        mountpoint: format!("/mnt/volumes/{name}"),
        created_at: Some("2024-05-14T09:21:33Z".parse().unwrap()),
        ..Volume::default()
    }
}

impl Fake {
    /// A driver whose every required method fails with `err`.
    pub fn failing(err: impl Into<PluginError>) -> Self {
        Fake {
            fail: Some(err.into()),
            ..Fake::default()
        }
    }

    /// A driver whose every required method takes `delay` before answering.
    pub fn slow(delay: Duration) -> Self {
        Fake {
            delay: Some(delay),
            ..Fake::default()
        }
    }

    /// Every call so far: method name and the request as the driver decoded it.
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }

    /// The method names of every call so far.
    pub fn methods(&self) -> Vec<String> {
        self.calls().into_iter().map(|(m, _)| m).collect()
    }

    async fn record(&self, method: &str, req: impl Serialize) -> Result<(), PluginError> {
        let req = serde_json::to_value(req).expect("request re-encodes");
        self.calls.lock().unwrap().push((method.to_string(), req));
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        match &self.fail {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl NetworkDriver for Fake {
    async fn create_network(&self, req: CreateNetworkRequest) -> Result<(), PluginError> {
        self.record("NetworkDriver.CreateNetwork", req).await
    }
    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<(), PluginError> {
        self.record("NetworkDriver.DeleteNetwork", req).await
    }
    async fn create_endpoint(
        &self,
        req: CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse, PluginError> {
        self.record("NetworkDriver.CreateEndpoint", req).await?;
        Ok(CreateEndpointResponse::default())
    }
    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<(), PluginError> {
        self.record("NetworkDriver.DeleteEndpoint", req).await
    }
    async fn join(&self, req: JoinRequest) -> Result<JoinResponse, PluginError> {
        self.record("NetworkDriver.Join", req).await?;
        Ok(JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: "veth-test".into(),
                dst_prefix: "eth".into(),
                ..InterfaceName::default()
            }),
            gateway: Some("172.20.0.1".parse().unwrap()),
            ..JoinResponse::default()
        })
    }
    async fn leave(&self, req: LeaveRequest) -> Result<(), PluginError> {
        self.record("NetworkDriver.Leave", req).await
    }
}

#[async_trait]
impl IpamDriver for Fake {
    async fn request_pool(
        &self,
        req: RequestPoolRequest,
    ) -> Result<RequestPoolResponse, PluginError> {
        let pool = req.pool.unwrap_or_else(|| "10.1.0.0/16".parse().unwrap());
        let pool_id = format!("{}/{pool}", req.address_space);
        self.record("IpamDriver.RequestPool", req).await?;
        Ok(RequestPoolResponse {
            pool_id,
            pool,
            data: Default::default(),
        })
    }
    async fn release_pool(&self, req: ReleasePoolRequest) -> Result<(), PluginError> {
        self.record("IpamDriver.ReleasePool", req).await
    }
    async fn request_address(
        &self,
        req: RequestAddressRequest,
    ) -> Result<RequestAddressResponse, PluginError> {
        let addr = req.address.unwrap_or_else(|| "10.1.0.2".parse().unwrap());
        self.record("IpamDriver.RequestAddress", req).await?;
        Ok(RequestAddressResponse {
            address: ipnet::IpNet::new(addr, 16).unwrap(),
            data: Default::default(),
        })
    }
    async fn release_address(&self, req: ReleaseAddressRequest) -> Result<(), PluginError> {
        self.record("IpamDriver.ReleaseAddress", req).await
    }
}

#[async_trait]
impl VolumeDriver for Fake {
    async fn create(&self, req: CreateVolumeRequest) -> Result<(), PluginError> {
        self.record("VolumeDriver.Create", req).await
    }
    async fn remove(&self, req: RemoveVolumeRequest) -> Result<(), PluginError> {
        self.record("VolumeDriver.Remove", req).await
    }
    async fn mount(&self, req: MountRequest) -> Result<MountpointResponse, PluginError> {
        let mountpoint = fake_volume(&req.name).mountpoint;
        self.record("VolumeDriver.Mount", req).await?;
        Ok(MountpointResponse { mountpoint })
    }
    async fn unmount(&self, req: UnmountRequest) -> Result<(), PluginError> {
        self.record("VolumeDriver.Unmount", req).await
    }
    async fn path(&self, req: PathRequest) -> Result<MountpointResponse, PluginError> {
        let mountpoint = fake_volume(&req.name).mountpoint;
        self.record("VolumeDriver.Path", req).await?;
        Ok(MountpointResponse { mountpoint })
    }
    async fn get(&self, req: GetVolumeRequest) -> Result<GetVolumeResponse, PluginError> {
        let volume = fake_volume(&req.name);
        self.record("VolumeDriver.Get", req).await?;
        Ok(GetVolumeResponse { volume })
    }
    async fn list(&self) -> Result<ListVolumesResponse, PluginError> {
        self.record("VolumeDriver.List", ()).await?;
        Ok(ListVolumesResponse {
            volumes: vec![fake_volume("myvol")],
        })
    }
}

/// A router being served in a background task until [`Served::stop`].
pub struct Served {
    socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Served {
    /// Serve `router` on `socket` in a tokio task.
    pub fn spawn(socket: PluginSocket, router: Router) -> Self {
        let (tx, rx) = oneshot::channel();
        let path = socket.socket_path().to_path_buf();
        let task = tokio::spawn(socket.serve(router, async {
            let _ = rx.await;
        }));
        Served {
            socket: path,
            shutdown: Some(tx),
            task,
        }
    }

    /// Where it listens.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A client for it, with a short timeout so a broken test fails fast.
    pub fn client(&self) -> PluginClient {
        PluginClient::unix(&self.socket).timeout(Duration::from_secs(10))
    }

    /// Shut down gracefully and return what `serve` returned.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve ends after shutdown")
            .expect("serve task does not panic")
    }
}

/// A plugin served as `test.sock` in its own temporary directory.
pub struct TestPlugin {
    /// Holds the socket; removed on drop.
    pub dir: TempDir,
    /// The running server.
    pub served: Served,
}

impl TestPlugin {
    /// Serve `router` (usually `Plugin::new()...router()`).
    pub fn start(router: Router) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = PluginSocket::bind(
            "test",
            &Registration::SocketIn(dir.path().to_path_buf()),
            Default::default(),
        )
        .expect("bind the test socket");
        TestPlugin {
            served: Served::spawn(socket, router),
            dir,
        }
    }

    /// A client for the plugin.
    pub fn client(&self) -> PluginClient {
        self.served.client()
    }
}
