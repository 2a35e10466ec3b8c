//! Docker's plugin protocol for Rust.
//!
//! The engine (`dockerd`) talks to network, IPAM and volume plugins with JSON over
//! HTTP on a unix socket: `POST /Plugin.Activate`, then `POST /NetworkDriver.*`,
//! `/IpamDriver.*` or `/VolumeDriver.*`. This crate has
//!
//! - [`protocol`]: every request and reply, with the engine's exact JSON field names
//!   and its quirks (CIDR-form gateways, `null` options, RFC 3339 times) handled;
//! - [`server`]: async traits [`NetworkDriver`], [`IpamDriver`] and [`VolumeDriver`],
//!   a [`Plugin`] builder that turns any set of them into an axum router, and
//!   [`PluginSocket`], which serves it on a unix socket registered where the engine
//!   looks;
//! - [`client`]: call any plugin as the engine does, or use a remote plugin as a
//!   driver through [`RemoteDriver`].
//!
//! A minimal volume plugin:
//!
//! ```no_run
//! use plugin_api::protocol::volume::*;
//! use plugin_api::{async_trait, Plugin, PluginError, PluginSocket, Registration, VolumeDriver};
//!
//! struct Nothing;
//!
//! #[async_trait]
//! impl VolumeDriver for Nothing {
//!     async fn create(&self, _: CreateVolumeRequest) -> Result<(), PluginError> {
//!         Err("read-only driver".into())
//!     }
//!     async fn remove(&self, _: RemoveVolumeRequest) -> Result<(), PluginError> { Ok(()) }
//!     async fn mount(&self, r: MountRequest) -> Result<MountpointResponse, PluginError> {
//!         Err(format!("no volume {}", r.name).into())
//!     }
//!     async fn unmount(&self, _: UnmountRequest) -> Result<(), PluginError> { Ok(()) }
//!     async fn path(&self, _: PathRequest) -> Result<MountpointResponse, PluginError> {
//!         Ok(MountpointResponse::default())
//!     }
//!     async fn get(&self, r: GetVolumeRequest) -> Result<GetVolumeResponse, PluginError> {
//!         Err(format!("no volume {}", r.name).into())
//!     }
//!     async fn list(&self) -> Result<ListVolumesResponse, PluginError> {
//!         Ok(ListVolumesResponse::default())
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let socket = PluginSocket::bind("nothing", &Registration::default(), Default::default())?;
//! socket.serve(Plugin::new().volume(Nothing).router(), plugin_api::shutdown_signal()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod client;
mod error;
pub mod protocol;
pub mod server;

pub use async_trait::async_trait;
pub use client::{PluginClient, RemoteDriver};
pub use error::PluginError;
pub use server::{
    serve_until_signal, shutdown_signal, IpamDriver, NetworkDriver, Plugin, PluginSocket,
    Registration, SocketPermissions, VolumeDriver,
};
