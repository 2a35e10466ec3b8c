//! IP address management: the allocator behind netd's IPAM and its Docker
//! `IpamDriver`.
//!
//! - Address spaces `local` and `global`, each with IPv4 and IPv6 pools.
//! - Pools: a given subnet (with an optional sub-pool, Docker's `--ip-range`), or the
//!   first free subnet of the default pools that overlaps neither an allocated pool
//!   nor a prefix the caller excludes. Overlaps are refused, naming the holder.
//! - Addresses: any (lowest-free, or round-robin when the pool is serial), a given one,
//!   release. The IPv4 network and broadcast addresses and IPv6's subnet-router
//!   anycast address are never handed out; every other address is, the last address
//!   of an IPv6 /64 included.
//! - Memory grows with fragmentation, not with pool size: a /64 with a million
//!   addresses handed out lowest-first costs a few hundred bytes.
//! - No I/O: each change is offered to a [`Journal`] before it is made, and the whole
//!   state can be saved and restored ([`Ipam::state`], [`Ipam::restore`]).
//!
//! ```
//! use ipam::{Config, Ipam, PoolRequest};
//! let mut ipam = Ipam::new(Config::defaults("host-1")).unwrap();
//! let pool = ipam.request_pool(&PoolRequest::default()).unwrap();
//! assert_eq!(pool.to_string(), "local/172.24.0.0/24");
//! let gw = ipam.request_address(&pool, None).unwrap();
//! assert_eq!(gw.to_string(), "172.24.0.1/24");
//! ```

#![warn(missing_docs)]

mod addr;
mod allocator;
mod bitmap;
mod config;
pub mod docker;
mod error;
mod id;
mod pool;
mod space;
mod state;

pub use addr::Family;
pub use allocator::{Change, Ipam, Journal, NoJournal, PoolInfo, PoolRequest};
pub use config::{ula_prefix, Config};
pub use error::IpamError;
pub use id::{AddressSpace, PoolId};
pub use pool::{reserved_address, usable_addresses};
pub use space::DefaultPool;
pub use state::{AddressRange, PoolState, State};
