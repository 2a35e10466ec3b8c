//! A client for the native API over its unix socket: what the CLI, the tests and
//! the benchmark use.

use crate::api::{Info, NetworkInspect};
use crate::controller::{Attach, EndpointCreate, Join, NetworkCreate, SandboxCreate};
use crate::model::{EndpointRecord, NetworkRecord, SandboxRecord};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub use native_api::ClientError;

/// Where `netd daemon` listens by default.
pub const DEFAULT_SOCKET: &str = "/run/netd/netd.sock";

/// A native API client. Connections are kept alive and reused (clones share
/// them): a new one costs a connect and an accept on every call.
#[derive(Debug, Clone)]
pub struct Client {
    api: native_api::Client,
}

impl Client {
    /// A client for the daemon at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            api: native_api::Client::new("netd", socket),
        }
    }

    /// The socket it talks to.
    pub fn socket(&self) -> &Path {
        self.api.socket()
    }

    /// One request; the status and body whatever they are.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.api.raw(method, path, body).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        self.api.call(method, path, body).await
    }

    async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.api.delete(path).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.api.get(path).await
    }

    /// `GET /v1/cluster`.
    pub async fn cluster_status(&self) -> Result<crate::overlay::ClusterStatus, ClientError> {
        self.get("/v1/cluster").await
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info, ClientError> {
        self.get("/v1/info").await
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (status, bytes) = self.raw(Method::GET, "/metrics", None).await?;
        if !status.is_success() {
            return Err(ClientError::Decode(format!("/metrics answered {status}")));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `GET /v1/pools`: the allocator's pools with their addresses.
    pub async fn pools(&self) -> Result<Vec<ipam::PoolState>, ClientError> {
        self.get("/v1/pools").await
    }

    /// `POST /v1/engine/sync`: remove dockerd's objects that `view` lacks.
    pub async fn engine_sync(
        &self,
        view: &crate::controller::EngineView,
    ) -> Result<crate::controller::SyncReport, ClientError> {
        self.call(Method::POST, "/v1/engine/sync", Some(view)).await
    }

    /// Create a network.
    pub async fn create_network(&self, req: &NetworkCreate) -> Result<NetworkRecord, ClientError> {
        self.call(Method::POST, "/v1/networks", Some(req)).await
    }

    /// List networks.
    pub async fn networks(&self) -> Result<Vec<NetworkRecord>, ClientError> {
        self.get("/v1/networks").await
    }

    /// Inspect a network (with its endpoints).
    pub async fn network(&self, key: &str) -> Result<NetworkInspect, ClientError> {
        self.get(&format!("/v1/networks/{}", escape(key))).await
    }

    /// Delete a network.
    pub async fn delete_network(&self, key: &str) -> Result<NetworkRecord, ClientError> {
        self.delete(&format!("/v1/networks/{}", escape(key))).await
    }

    /// Create an endpoint.
    pub async fn create_endpoint(
        &self,
        req: &EndpointCreate,
    ) -> Result<EndpointRecord, ClientError> {
        self.call(Method::POST, "/v1/endpoints", Some(req)).await
    }

    /// List endpoints.
    pub async fn endpoints(&self) -> Result<Vec<EndpointRecord>, ClientError> {
        self.get("/v1/endpoints").await
    }

    /// Inspect an endpoint.
    pub async fn endpoint(&self, key: &str) -> Result<EndpointRecord, ClientError> {
        self.get(&format!("/v1/endpoints/{}", escape(key))).await
    }

    /// Delete an endpoint.
    pub async fn delete_endpoint(&self, key: &str) -> Result<EndpointRecord, ClientError> {
        self.delete(&format!("/v1/endpoints/{}", escape(key))).await
    }

    /// Create (or adopt) a sandbox.
    pub async fn create_sandbox(&self, req: &SandboxCreate) -> Result<SandboxRecord, ClientError> {
        self.call(Method::POST, "/v1/sandboxes", Some(req)).await
    }

    /// Create a sandbox and attach it to a network, in one request and one commit.
    pub async fn create_attached(
        &self,
        req: &crate::controller::Attachment,
    ) -> Result<crate::api::Attached, ClientError> {
        self.call(Method::POST, "/v1/attachments", Some(req)).await
    }

    /// List sandboxes.
    pub async fn sandboxes(&self) -> Result<Vec<SandboxRecord>, ClientError> {
        self.get("/v1/sandboxes").await
    }

    /// Inspect a sandbox.
    pub async fn sandbox(&self, key: &str) -> Result<SandboxRecord, ClientError> {
        self.get(&format!("/v1/sandboxes/{}", escape(key))).await
    }

    /// Delete a sandbox.
    pub async fn delete_sandbox(&self, key: &str) -> Result<SandboxRecord, ClientError> {
        self.delete(&format!("/v1/sandboxes/{}", escape(key))).await
    }

    /// Join an endpoint to a sandbox.
    pub async fn join(&self, sandbox: &str, endpoint: &str) -> Result<EndpointRecord, ClientError> {
        let body = Join {
            endpoint: endpoint.to_string(),
        };
        self.call(
            Method::POST,
            &format!("/v1/sandboxes/{}/join", escape(sandbox)),
            Some(&body),
        )
        .await
    }

    /// Take an endpoint out of a sandbox.
    pub async fn leave(
        &self,
        sandbox: &str,
        endpoint: &str,
    ) -> Result<EndpointRecord, ClientError> {
        let body = Join {
            endpoint: endpoint.to_string(),
        };
        self.call(
            Method::POST,
            &format!("/v1/sandboxes/{}/leave", escape(sandbox)),
            Some(&body),
        )
        .await
    }

    /// `PUT /v1/endpoints/{key}/ports`: what a joined endpoint publishes.
    pub async fn set_ports(
        &self,
        endpoint: &str,
        ports: &[firewall::PortRequest],
    ) -> Result<EndpointRecord, ClientError> {
        let req = crate::controller::Ports {
            ports: ports.to_vec(),
        };
        self.call(
            Method::PUT,
            &format!("/v1/endpoints/{}/ports", escape(endpoint)),
            Some(&req),
        )
        .await
    }

    /// `GET /v1/firewall`: what netd programs.
    pub async fn firewall(&self) -> Result<crate::api::FirewallShow, ClientError> {
        self.get("/v1/firewall").await
    }

    /// Create an endpoint and join it.
    pub async fn attach(&self, sandbox: &str, req: &Attach) -> Result<EndpointRecord, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/sandboxes/{}/attach", escape(sandbox)),
            Some(req),
        )
        .await
    }

    /// Leave and delete an endpoint.
    pub async fn detach(
        &self,
        sandbox: &str,
        endpoint: &str,
    ) -> Result<EndpointRecord, ClientError> {
        let body = Join {
            endpoint: endpoint.to_string(),
        };
        self.call(
            Method::POST,
            &format!("/v1/sandboxes/{}/detach", escape(sandbox)),
            Some(&body),
        )
        .await
    }
}

/// Keys are names or hex ids; anything else is percent-encoded so it cannot
/// change the path.
fn escape(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
