//! What the daemons' native APIs share: the error answer every endpoint gives
//! (`{"message", "kind"}`, with a status that says whose fault it is), the kinds
//! of error a daemon's core reports, and the client the CLIs, tests and
//! benchmarks use.

pub mod client;
mod error;
pub mod oci;

pub use client::{Client, ClientError};
pub use error::{ApiErrorBody, ErrorKind};
