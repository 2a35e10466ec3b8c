//! netd's cluster control plane on etcd v3, for overlay networks across hosts.
//!
//! What lives in etcd (every key and value layout is in docs/overlay.md):
//! - hosts: one record per member, bound to the host's lease, so a host that
//!   stops renewing it disappears with everything it claimed;
//! - overlay networks: name, id, VNI and subnet, made once by the first host that
//!   asks (the same name with other settings is refused), with a VNI index that
//!   keeps VNIs unique;
//! - address blocks: each host claims small blocks of a network's subnet with a
//!   transaction and allocates inside them locally, so starting a container never
//!   waits on etcd; bound to the host's lease;
//! - peers: one record per endpoint (its address, MAC and host VTEP), bound to
//!   the host's lease, watched by every host with the network.
//!
//! The data plane (VXLAN devices, neighbour and FDB entries) is the overlay
//! driver's; this crate only keeps the shared state and its changes.

mod blocks;
mod error;
mod keys;
mod membership;
mod model;
mod store;
mod watch;

pub use blocks::blocks_of;
pub use error::ClusterError;
pub use keys::Keys;
pub use membership::{Membership, MembershipState};
pub use model::{BlockClaim, HostRecord, OverlayRequest, OverlaySpec, PeerRecord};
pub use store::{Cluster, ClusterOptions, Tls};
pub use watch::{Currency, PeerEvent, PeerWatch, Watch, WatchEvent, PROGRESS_EVERY};
