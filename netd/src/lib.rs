//! netd, the network daemon: the controller (networks, endpoints, sandboxes) over
//! the allocator, the drivers and the store, with three thin faces onto it: the
//! native API, the Docker plugin protocol and the CLI (see ARCHITECTURE.md).

pub use plugin_api::server::activation;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod dns;
pub mod files;
pub mod model;
pub mod overlay;
pub mod plugin_face;
pub mod store;
