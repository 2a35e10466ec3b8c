//! Network drivers behind one trait ([`Driver`]), and the netlink layer they use.
//!
//! Built: `bridge`. To come with issue 4: `host`, `none`, the controller that calls
//! them; later `overlay` and `remote`.

pub mod bridge;
mod driver;
pub mod netlink;

pub use bridge::BridgeDriver;
pub use driver::{Driver, DriverError, EndpointSpec, Joined, NetworkSpec, SandboxSpec, SubnetSpec};
