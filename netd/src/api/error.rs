//! The native API's error answer: `{"message": ..., "kind": ...}` with a status
//! that says whose fault it is.

use crate::controller::ControllerError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub use native_api::ApiErrorBody;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ApiErrorBody,
}

impl ApiError {
    /// An error with a status and kind.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ApiErrorBody {
                message: message.into(),
                kind: kind.to_string(),
            },
        }
    }
}

impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> Self {
        let (status, kind) = e.kind().status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e.full_message(), "request failed");
        }
        ApiError::new(status, kind, e.full_message())
    }
}

impl From<plugin_api::PluginError> for ApiError {
    fn from(e: plugin_api::PluginError) -> Self {
        let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "invalid"
        };
        ApiError::new(e.status(), kind, e.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
