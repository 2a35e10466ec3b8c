//! The allocator's state as data, to save and restore.

use crate::id::PoolId;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Every pool with its allocated addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The pools.
    pub pools: Vec<PoolState>,
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolState {
    /// Its id.
    pub id: PoolId,
    /// Round-robin allocation.
    #[serde(default)]
    pub serial: bool,
    /// Who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Where serial allocation resumes (the last address handed out to an "any" request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<IpAddr>,
    /// Allocated addresses, as ranges (reserved addresses are not listed).
    #[serde(default)]
    pub allocated: Vec<AddressRange>,
}

/// `first..=last`, or the single address `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRange {
    /// First address.
    pub first: IpAddr,
    /// Last address, if more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<IpAddr>,
}
