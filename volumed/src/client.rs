//! A client for the native API over its unix socket (the CLI's, and tests'):
//! the shared keep-alive client, named for volumed.

use hyper::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;

pub use native_api::ClientError;

/// Where `volumed daemon` listens by default.
pub const DEFAULT_SOCKET: &str = "/run/volumed/volumed.sock";

/// A native API client; clones share kept-alive connections.
#[derive(Debug, Clone)]
pub struct Client {
    api: native_api::Client,
}

impl Client {
    /// A client for the daemon at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            api: native_api::Client::new("volumed", socket),
        }
    }

    /// One call: `body` as JSON, the answer decoded, or the daemon's error.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        self.api.call(method, path, body).await
    }
}
