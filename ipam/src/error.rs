//! What can go wrong, each with the object concerned, phrased so a person can act.

use ipnet::IpNet;
use std::net::IpAddr;

/// An IPAM request that could not be granted. The allocator's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// A prefix had host bits set, or was otherwise malformed.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What was being parsed (pool, sub-pool, pool id, ...).
        what: &'static str,
        /// Why it was refused.
        message: String,
    },
    /// The address space name is not one this allocator has.
    #[error("unknown address space {0:?}: use \"local\" or \"global\"")]
    UnknownSpace(String),
    /// A requested pool overlaps one that is allocated.
    #[error("pool {requested} overlaps {held}, which is allocated to {holder}")]
    Overlap {
        /// The pool asked for.
        requested: IpNet,
        /// The pool it overlaps.
        held: IpNet,
        /// Who holds it (its owner, or its pool id).
        holder: String,
    },
    /// No default pool had a free subnet.
    #[error("no free {family} subnet left in the default pools ({pools}); free a network, give a subnet, or add default pools")]
    NoFreePool {
        /// IPv4 or IPv6.
        family: crate::Family,
        /// The default pools searched.
        pools: String,
    },
    /// The address space has no default pools of this family.
    #[error("no default {family} pools are configured for this address space: give a subnet")]
    NoDefaultPools {
        /// IPv4 or IPv6.
        family: crate::Family,
    },
    /// The pool id names no allocated pool.
    #[error("unknown pool {0}")]
    UnknownPool(String),
    /// The address is of the other IP family.
    #[error("{address} is not an {family} address, as pool {pool} needs")]
    WrongFamily {
        /// The address.
        address: IpAddr,
        /// The pool's family.
        family: crate::Family,
        /// The pool.
        pool: IpNet,
    },
    /// The address is outside its pool.
    #[error("{address} is outside pool {pool}")]
    OutsidePool {
        /// The address.
        address: IpAddr,
        /// The pool.
        pool: IpNet,
    },
    /// The address is the network or broadcast address (or IPv6's subnet-router anycast).
    #[error("{address} is the {what} of {pool} and cannot be allocated")]
    Reserved {
        /// The address.
        address: IpAddr,
        /// "network address", "broadcast address", "subnet-router anycast address".
        what: &'static str,
        /// The pool.
        pool: IpNet,
    },
    /// The address is allocated already.
    #[error("{address} is already allocated in {pool}")]
    InUse {
        /// The address.
        address: IpAddr,
        /// The pool.
        pool: IpNet,
    },
    /// The address was not allocated (for example a second release).
    #[error("{address} is not allocated in {pool}")]
    NotAllocated {
        /// The address.
        address: IpAddr,
        /// The pool.
        pool: IpNet,
    },
    /// Every address of the pool (or its range) is taken.
    #[error("no free address in {range} (pool {pool}): all {size} addresses are allocated")]
    Exhausted {
        /// The pool.
        pool: IpNet,
        /// The range searched.
        range: IpNet,
        /// How many addresses the range has.
        size: u128,
    },
    /// Saving the change failed; nothing was changed.
    #[error("saving the IPAM change: {0}")]
    Journal(String),
}

impl IpamError {
    pub(crate) fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        IpamError::Invalid {
            what,
            message: message.into(),
        }
    }
}
