//! The wire types of Docker's plugin protocol, with the exact JSON names the engine uses.
//!
//! Field names are Rust-style; each carries a `serde(rename)` to its wire name.
//! Requests accept Go's zero values (`null` maps, `""` addresses); replies are
//! written the way the engine reads them.

pub mod activate;
pub mod ipam;
pub mod network;
pub mod types;
pub mod volume;
mod wire;

pub use activate::{ActivateResponse, Interface};
pub use types::{MacAddress, MacAddressError, Scope, Timestamp};
