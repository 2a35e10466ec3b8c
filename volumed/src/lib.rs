//! volumed: named volumes under a data root, counted mounts that survive
//! restarts, served to dockerd (`VolumeDriver`) and through a native API and CLI.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
mod error;
pub mod image;
pub mod manager;
pub mod model;
pub mod mounts;
pub mod oci_hook;
pub mod options;
pub mod paths;
pub mod plugin_face;
pub mod quota;
pub mod resolve;
pub mod store;

pub use error::{ErrorKind, VolumeError};
