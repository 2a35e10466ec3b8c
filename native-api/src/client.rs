//! A client for a daemon's native API over its unix socket. Connections are kept
//! alive and reused, and driven by the task that makes the call.

use crate::ApiErrorBody;
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
    #[error("cannot reach {daemon} at {socket}: is `{daemon} daemon` running?")]
    Connect {
        /// The daemon's name.
        daemon: &'static str,
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to {0}")]
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
    #[error("unexpected answer from {0}")]
    Decode(String),
}

/// A native API client. Connections are kept alive and reused (clones share
/// them): a new one costs a connect and an accept on every call.
#[derive(Debug, Clone)]
pub struct Client {
    daemon: &'static str,
    socket: PathBuf,
    idle: Arc<Mutex<Vec<Conn>>>,
}

impl Client {
    /// A client for the daemon `daemon` (its name, for errors) at `socket`.
    pub fn new(daemon: &'static str, socket: impl Into<PathBuf>) -> Self {
        Client {
            daemon,
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
            .header(hyper::header::HOST, self.daemon);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let mut req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.http(e))?;
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
                return Err(self.http(e));
            }
            let resp = match drive(io, sender.try_send_request(req)).await {
                Ok(resp) => resp,
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => {
                        req = unsent;
                        continue;
                    }
                    _ => return Err(self.http(e.into_error())),
                },
            };
            let status = resp.status();
            let bytes = drive(io, resp.into_body().collect())
                .await
                .map_err(|e| self.http(e))?
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
                daemon: self.daemon,
                socket: self.socket.clone(),
                source,
            })?;
        let (sender, io) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.http(e))?;
        Ok(Conn {
            sender,
            io: Some(Box::pin(io)),
        })
    }

    fn http(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Http(format!("{}: {e}", self.daemon))
    }

    fn decode(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Decode(format!("{}: {e}", self.daemon))
    }

    /// One call: `body` as JSON, the answer decoded, or the daemon's error.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| self.decode(e))?),
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
        serde_json::from_slice(&bytes).map_err(|e| self.decode(e))
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }
}
