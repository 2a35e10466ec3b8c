//! A client for the native API over its unix socket: what the CLI, the tests and
//! the benchmark use.

use crate::api::{ApiErrorBody, Info, NetworkInspect};
use crate::controller::{Attach, EndpointCreate, Join, NetworkCreate, SandboxCreate};
use crate::model::{EndpointRecord, NetworkRecord, SandboxRecord};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::{poll_fn, Future};
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, PoisonError};

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
type Connection =
    hyper::client::conn::http1::Connection<TokioIo<tokio::net::UnixStream>, Full<Bytes>>;

/// One kept-alive HTTP/1 connection to the daemon, driven by the task that uses
/// it: its reads and writes happen in the caller's task, with no hand-off to a
/// connection task on another worker thread (each such wake-up costs tens of
/// microseconds on a small machine).
struct Conn {
    sender: Sender,
    /// `None` once the connection ended (dropping it fails what still waits on it).
    io: Option<Pin<Box<Connection>>>,
}

/// Run `f`, which needs the connection's reads and writes, to its end, driving
/// the connection `io` meanwhile.
async fn drive<F: Future>(io: &mut Option<Pin<Box<Connection>>>, f: F) -> F::Output {
    let mut f = pin!(f);
    poll_fn(|cx| {
        // The connection first: an end the daemon sent (it was killed, say) is
        // read before `f` (a readiness check) could take the connection as open.
        if let Some(conn) = io.as_mut() {
            if conn.as_mut().poll(cx).is_ready() {
                *io = None;
            }
        }
        f.as_mut().poll(cx)
    })
    .await
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("open", &self.io.is_some())
            .finish()
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon's socket did not answer.
    #[error("cannot reach netd at {socket}: is `netd daemon` running?")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to netd: {0}")]
    Http(String),
    /// The daemon refused: its message.
    #[error("{}", .body.message)]
    Api {
        /// HTTP status.
        status: StatusCode,
        /// The error body.
        body: ApiErrorBody,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from netd: {0}")]
    Decode(String),
}

/// A native API client. Connections are kept alive and reused (clones share
/// them): a new one costs a connect and an accept on every call.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    idle: Arc<Mutex<Vec<Conn>>>,
}

/// Where `netd daemon` listens by default.
pub const DEFAULT_SOCKET: &str = "/run/netd/netd.sock";

impl Client {
    /// A client for the daemon at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            socket: socket.into(),
            idle: Arc::default(),
        }
    }

    /// The socket it talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One request; the status and body whatever they are.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "netd");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let mut req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        loop {
            let (mut conn, reused) = match self.take_idle() {
                Some(c) => (c, true),
                None => (self.connect().await?, false),
            };
            // A kept connection the daemon closed (it restarted, say) is found
            // here, before anything is sent: then send on a new one.
            let Conn { sender, io } = &mut conn;
            if let Err(e) = drive(io, sender.ready()).await {
                if reused {
                    continue;
                }
                return Err(ClientError::Http(e.to_string()));
            }
            let resp = match drive(io, sender.try_send_request(req)).await {
                Ok(resp) => resp,
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => {
                        req = unsent;
                        continue;
                    }
                    _ => return Err(ClientError::Http(e.into_error().to_string())),
                },
            };
            let status = resp.status();
            let bytes = drive(io, resp.into_body().collect())
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?
                .to_bytes();
            // Only after a success: a refusal may come before the daemon read the
            // request's body (too large), and then it closes the connection.
            if status.is_success() && conn.io.is_some() {
                self.idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(conn);
            }
            return Ok((status, bytes));
        }
    }

    /// An idle kept connection (only open ones are kept; one the daemon closed
    /// since is found when the request is about to go out).
    fn take_idle(&self) -> Option<Conn> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let (sender, io) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(Conn {
            sender,
            io: Some(Box::pin(io)),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?),
            None => None,
        };
        let (status, bytes) = self.raw(method, path, body).await?;
        if !status.is_success() {
            let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ApiErrorBody {
                message: String::from_utf8_lossy(&bytes).trim().to_string(),
                kind: "internal".into(),
            });
            return Err(ClientError::Api { status, body });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
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
