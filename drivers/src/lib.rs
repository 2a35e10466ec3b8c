//! Network drivers behind one trait ([`Driver`]), and the netlink layer they use.
//!
//! Built: `bridge`, `host`, `none`; `overlay` and `remote` to come. netd's
//! controller calls them and never knows which one answers.

mod announce;
pub mod bridge;
mod driver;
pub mod netlink;
pub mod netns;
pub mod overlay;
pub mod remote;
mod simple;

pub use bridge::BridgeDriver;
pub use driver::{
    Driver, DriverData, DriverError, EndpointSpec, Joined, Mark, NetworkSpec, Repair, SandboxSpec,
    SubnetSpec, Swept,
};
pub use simple::SimpleDriver;
