//! Network drivers behind one trait ([`Driver`]), and the netlink layer they use.
//!
//! Built: `bridge`, `host`, `none`. To come: the controller that calls them (netd),
//! later `overlay` and `remote`.

mod announce;
pub mod bridge;
mod driver;
pub mod netlink;
pub mod netns;
mod simple;

pub use bridge::BridgeDriver;
pub use driver::{Driver, DriverError, EndpointSpec, Joined, NetworkSpec, SandboxSpec, SubnetSpec};
pub use simple::SimpleDriver;
