//! One plugin call over HTTP/1.1, as the engine makes it.

use super::address::PluginAddr;
use super::error::ClientError;
use crate::protocol::activate::ActivateResponse;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{HeaderValue, ACCEPT as ACCEPT_HEADER, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// The `Accept` header the engine sends on every plugin call.
pub const ACCEPT: &str = "application/vnd.docker.plugins.v1.2+json";

/// Largest reply the client reads (a volume list can be long).
const REPLY_LIMIT: usize = 16 * 1024 * 1024;

/// A reply as received, for callers that want to see status and body themselves.
#[derive(Debug, Clone)]
pub struct RawReply {
    /// HTTP status.
    pub status: StatusCode,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl RawReply {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The `Err` message of an error reply, if there is one.
    pub fn err(&self) -> Option<String> {
        self.json()
            .get("Err")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }
}

/// A client for one plugin.
#[derive(Debug, Clone)]
pub struct PluginClient {
    addr: PluginAddr,
    timeout: Duration,
    retry_connect_for: Duration,
}

impl PluginClient {
    /// A client for the plugin at `addr`, with a 60 s timeout and no connect retries.
    pub fn new(addr: PluginAddr) -> Self {
        PluginClient {
            addr,
            timeout: Duration::from_secs(60),
            retry_connect_for: Duration::ZERO,
        }
    }

    /// A client for a unix socket.
    pub fn unix(path: impl Into<std::path::PathBuf>) -> Self {
        Self::new(PluginAddr::Unix(path.into()))
    }

    /// The time one call may take, from connecting to the end of the reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Keep retrying a refused or missing socket for this long, backing off from
    /// 100 ms to 2 s, with a last attempt when the window closes (the engine
    /// likewise retries while a plugin starts, from 1 s for up to 30 s).
    pub fn retry_connect_for(mut self, window: Duration) -> Self {
        self.retry_connect_for = window;
        self
    }

    /// The plugin's address.
    pub fn addr(&self) -> &PluginAddr {
        &self.addr
    }

    /// `Plugin.Activate`.
    pub async fn activate(&self) -> Result<ActivateResponse, ClientError> {
        self.call("Plugin.Activate", &serde_json::json!({})).await
    }

    /// Call `method` (such as `VolumeDriver.Create`) with `req` and decode the reply.
    ///
    /// A non-200 reply, or a 200 reply with a non-empty `Err` or `Error`, is a
    /// [`ClientError::Plugin`].
    pub async fn call<Req, Resp>(&self, method: &str, req: &Req) -> Result<Resp, ClientError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(req).map_err(|source| ClientError::Encode {
            method: method.to_string(),
            source,
        })?;
        let reply = self.call_raw(method, body, None).await?;
        let bad = |message: String| ClientError::BadReply {
            method: method.to_string(),
            message,
        };
        let value: serde_json::Value = serde_json::from_slice(&reply.body).map_err(|e| {
            if reply.status.is_success() {
                bad(format!("body is not JSON: {e}"))
            } else {
                ClientError::Plugin {
                    method: method.to_string(),
                    status: reply.status.as_u16(),
                    message: String::from_utf8_lossy(&reply.body).trim().to_string(),
                }
            }
        })?;
        let err_field = ["Err", "Error"]
            .iter()
            .filter_map(|k| value.get(k).and_then(|v| v.as_str()))
            .find(|s| !s.is_empty())
            .map(str::to_string);
        if !reply.status.is_success() || err_field.is_some() {
            return Err(ClientError::Plugin {
                method: method.to_string(),
                status: reply.status.as_u16(),
                message: err_field
                    .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).trim().to_string()),
            });
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }

    /// Send `body` to `method` as is and return the reply whatever its status.
    /// Like the engine, it sends no `Content-Type` unless one is given.
    pub async fn call_raw(
        &self,
        method: &str,
        body: impl Into<Bytes>,
        content_type: Option<&str>,
    ) -> Result<RawReply, ClientError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/{}", method.trim_start_matches('/')))
            .header(HOST, "plugin.moby.localhost")
            .header(ACCEPT_HEADER, ACCEPT);
        if let Some(ct) = content_type {
            req = req.header(
                CONTENT_TYPE,
                HeaderValue::from_str(ct).map_err(|e| ClientError::BadReply {
                    method: method.to_string(),
                    message: format!("invalid content type: {e}"),
                })?,
            );
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| ClientError::BadReply {
                method: method.to_string(),
                message: format!("building the request: {e}"),
            })?;
        let timeout = ClientError::Timeout {
            method: method.to_string(),
            addr: self.addr.to_string(),
            after: self.timeout,
        };
        tokio::time::timeout(self.timeout, self.exchange(method, req))
            .await
            .map_err(|_| timeout)?
    }

    async fn exchange(
        &self,
        method: &str,
        req: Request<Full<Bytes>>,
    ) -> Result<RawReply, ClientError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = match &self.addr {
                PluginAddr::Unix(path) => tokio::net::UnixStream::connect(path)
                    .await
                    .map(|s| Box::new(s) as Box<dyn Io>),
                PluginAddr::Tcp(hostport) => tokio::net::TcpStream::connect(hostport.as_str())
                    .await
                    .map(|s| Box::new(s) as Box<dyn Io>),
            };
            match attempt {
                Ok(stream) => return send(stream, method, req).await,
                Err(e) if started.elapsed() < self.retry_connect_for => {
                    tracing::debug!(addr = %self.addr, error = %e, "plugin not reachable yet; retrying");
                    // The last attempt is made when the window closes, not a backoff before.
                    let left = self.retry_connect_for.saturating_sub(started.elapsed());
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(source) => {
                    return Err(ClientError::Connect {
                        addr: self.addr.to_string(),
                        source,
                    })
                }
            }
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn send(
    stream: Box<dyn Io>,
    method: &str,
    req: Request<Full<Bytes>>,
) -> Result<RawReply, ClientError> {
    let http = |source| ClientError::Http {
        method: method.to_string(),
        source,
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    // The connection task ends when the exchange is done and `sender` is dropped.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "plugin connection closed with an error");
        }
    });
    let resp = sender.send_request(req).await.map_err(http)?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = Limited::new(resp.into_body(), REPLY_LIMIT)
        .collect()
        .await
        .map_err(|e| ClientError::BadReply {
            method: method.to_string(),
            message: if e.downcast_ref::<LengthLimitError>().is_some() {
                format!("reply is larger than {REPLY_LIMIT} bytes")
            } else {
                format!("reading the reply: {e}")
            },
        })?
        .to_bytes();
    Ok(RawReply {
        status,
        content_type,
        body,
    })
}
