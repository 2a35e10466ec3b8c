//! The plugin side: driver traits, the router that serves them, and the unix-socket
//! listener that registers the plugin where the engine looks.

pub mod activation;
mod body;
mod router;
mod serve;
mod traits;

pub use body::{read_json, BodyTimeout};
pub use router::{Plugin, DEFAULT_BODY_LIMIT, PLUGIN_CONTENT_TYPE};
pub use serve::{
    serve_until_signal, shutdown_signal, PluginSocket, Registration, ServeError, ServeLimits,
    SocketPermissions, DEFAULT_SOCKET_DIR, DEFAULT_SPEC_DIR,
};
pub use traits::{IpamDriver, NetworkDriver, VolumeDriver};
