//! The error answer and the kinds of error behind it.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

/// How a caller should read an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong; nothing was changed.
    Invalid,
    /// A named object does not exist.
    NotFound,
    /// The request clashes with current state (a name taken, an object in use).
    Conflict,
    /// The daemon or the kernel failed; nothing was changed.
    Internal,
}

impl ErrorKind {
    /// The status and the `kind` word the native APIs answer it with.
    pub fn status(self) -> (StatusCode, &'static str) {
        match self {
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// What went wrong, for a person.
    pub message: String,
    /// `invalid`, `not_found`, `conflict`, `too_large` or `internal`.
    pub kind: String,
}
