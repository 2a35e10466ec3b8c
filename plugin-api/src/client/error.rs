//! Why a plugin call failed.

use std::time::Duration;

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The plugin address or discovery data is not usable.
    #[error("plugin address {0}")]
    Address(String),
    /// Could not connect (after retrying, if asked).
    #[error("connecting to plugin at {addr}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The plugin did not answer in time.
    #[error("{method}: plugin at {addr} did not answer within {after:?}")]
    Timeout {
        /// The call.
        method: String,
        /// Where.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// The HTTP exchange broke.
    #[error("{method}: HTTP exchange with plugin failed")]
    Http {
        /// The call.
        method: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// The plugin answered with an error (`Err` or, for IPAM, `Error`).
    #[error("{method}: {message}")]
    Plugin {
        /// The call.
        method: String,
        /// HTTP status of the reply (200 when the error came in the body).
        status: u16,
        /// The plugin's message.
        message: String,
    },
    /// The reply was not what the protocol says.
    #[error("{method}: invalid reply from plugin: {message}")]
    BadReply {
        /// The call.
        method: String,
        /// What was wrong.
        message: String,
    },
    /// The request could not be encoded.
    #[error("{method}: encoding the request")]
    Encode {
        /// The call.
        method: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}
