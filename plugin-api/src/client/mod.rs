//! The caller side: talk to any plugin the way the engine does.
//!
//! [`PluginClient`] makes one call at a time over a unix socket or TCP, with the
//! engine's headers, a timeout and optional retries while the plugin starts.
//! [`RemoteDriver`] wraps a client so a remote plugin can be used wherever a
//! [`NetworkDriver`](crate::NetworkDriver), [`IpamDriver`](crate::IpamDriver) or
//! [`VolumeDriver`](crate::VolumeDriver) is expected.

mod address;
mod call;
mod error;
mod remote;

pub use address::{discover, PluginAddr, DEFAULT_SPEC_DIRS};
pub use call::{PluginClient, RawReply, ACCEPT};
pub use error::ClientError;
pub use remote::RemoteDriver;
