//! A failed call, with its CNI code and a message a person can act on.

use crate::spec::Code;
use netd::client::ClientError;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn env(msg: impl Into<String>) -> Self {
        CniError::new(Code::InvalidEnvironment, msg)
    }

    pub fn config(msg: impl Into<String>) -> Self {
        CniError::new(Code::InvalidConfig, msg)
    }

    /// netd's answer to `doing`, as a CNI error.
    pub fn netd(doing: &str, e: ClientError) -> Self {
        let code = match &e {
            ClientError::Connect { .. } | ClientError::Http(_) => Code::TryAgainLater,
            ClientError::Api { status, .. } => match status.as_u16() {
                400 | 404 => Code::InvalidConfig,
                409 => Code::Refused,
                503 => Code::TryAgainLater,
                _ => Code::Failed,
            },
            ClientError::Decode(_) => Code::Failed,
        };
        CniError {
            code,
            msg: format!("{doing}: {e}"),
            details: std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default(),
        }
    }
}
