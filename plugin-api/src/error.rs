//! The error a driver hands back to the engine.

use axum::http::StatusCode;
use std::fmt;

/// An error answered to the caller as `{"Err": message}`.
///
/// Drivers return it from trait methods; the status defaults to 500, which is
/// what the engine expects for a failed call. Build one from a message, or from
/// any error with [`PluginError::from_error`] to keep its chain of causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    status: StatusCode,
    message: String,
}

impl PluginError {
    /// A failed call (HTTP 500).
    pub fn new(message: impl Into<String>) -> Self {
        PluginError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    /// The request itself was wrong (HTTP 400): bad JSON, a missing field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(message).with_status(StatusCode::BAD_REQUEST)
    }

    /// The driver does not support this call (HTTP 501).
    pub fn not_implemented(method: &str) -> Self {
        Self::new(format!("{method} is not supported by this driver"))
            .with_status(StatusCode::NOT_IMPLEMENTED)
    }

    /// An error with its causes joined by `: `, the way Go's engine prints wrapped errors.
    pub fn from_error(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        Self::new(message)
    }

    /// Answer with another HTTP status (the engine treats every non-200 as failure).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The HTTP status the caller sees.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message the caller sees in `Err`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(message: String) -> Self {
        PluginError::new(message)
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> Self {
        PluginError::new(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("create volume v1")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn from_error_keeps_the_chain() {
        let inner = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let err = PluginError::from_error(&Outer(inner));
        assert_eq!(err.message(), "create volume v1: permission denied");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
