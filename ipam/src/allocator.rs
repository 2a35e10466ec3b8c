//! The allocator: address spaces, pools and addresses, with every change offered to
//! a [`Journal`] before it is made.

use crate::addr::{check_canonical, Family};
use crate::config::Config;
use crate::error::IpamError;
use crate::id::{AddressSpace, PoolId};
use crate::pool::Pool;
use crate::space::Space;
use crate::state::{AddressRange, PoolState, State};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A change to the allocator's state, in the order it happened. A daemon that saves
/// each change (or the [`State`] it leads to) before acknowledging the request can
/// rebuild the allocator exactly after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A pool was allocated.
    PoolAdded {
        /// Its id.
        id: PoolId,
        /// Round-robin address allocation.
        serial: bool,
        /// Who holds it.
        owner: Option<String>,
    },
    /// A pool was released, with any addresses still in it.
    PoolRemoved {
        /// Its id.
        id: PoolId,
    },
    /// An address was handed out.
    AddressAllocated {
        /// The pool.
        pool: PoolId,
        /// The address.
        address: IpAddr,
        /// Whether serial allocation resumes after it.
        moves_cursor: bool,
    },
    /// An address was given back.
    AddressReleased {
        /// The pool.
        pool: PoolId,
        /// The address.
        address: IpAddr,
    },
}

/// Where the allocator writes its changes before making them; the daemons implement
/// it on their store. An error refuses the request and leaves the allocator as it was.
pub trait Journal {
    /// The store's error.
    type Error: std::fmt::Display;
    /// Make `change` durable.
    fn record(&mut self, change: &Change) -> Result<(), Self::Error>;
}

/// A journal that keeps nothing, for callers that save [`State`] themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    type Error = std::convert::Infallible;
    fn record(&mut self, _: &Change) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<J: Journal + ?Sized> Journal for &mut J {
    type Error = J::Error;
    fn record(&mut self, change: &Change) -> Result<(), Self::Error> {
        (**self).record(change)
    }
}

/// A request for a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolRequest {
    /// The address space; local by default.
    pub space: Option<AddressSpace>,
    /// A given subnet, or `None` for any free one out of the default pools.
    pub subnet: Option<IpNet>,
    /// The sub-pool "any address" requests draw from (`--ip-range`); needs `subnet`.
    pub range: Option<IpNet>,
    /// With no subnet: IPv6 rather than IPv4.
    pub v6: bool,
    /// Hand addresses out round-robin instead of lowest-free.
    pub serial: bool,
    /// Who will hold the pool, named in overlap errors (a network's name).
    pub owner: Option<String>,
    /// With no subnet: prefixes the chosen one must not overlap (the host's on-link
    /// routes and DNS servers).
    pub exclude: Vec<IpNet>,
}

/// What is known of an allocated pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// Its id.
    pub id: PoolId,
    /// Who holds it.
    pub owner: Option<String>,
    /// Round-robin allocation.
    pub serial: bool,
    /// Number of addresses in the subnet (saturating).
    pub size: u128,
    /// Addresses handed out.
    pub allocated: u128,
    /// Approximate heap memory of its address set.
    pub heap_bytes: usize,
}

/// The allocator. Pure logic: it does no I/O but through its [`Journal`].
#[derive(Debug, Clone)]
pub struct Ipam<J: Journal = NoJournal> {
    config: Config,
    local4: Space,
    local6: Space,
    global4: Space,
    global6: Space,
    journal: J,
}

impl Ipam<NoJournal> {
    /// An empty allocator with these default pools.
    pub fn new(config: Config) -> Result<Self, IpamError> {
        Ipam::with_journal(config, NoJournal)
    }
}

impl<J: Journal> Ipam<J> {
    /// An empty allocator that records every change in `journal`.
    pub fn with_journal(config: Config, journal: J) -> Result<Self, IpamError> {
        for (defaults, family) in [
            (&config.local_v4, Family::V4),
            (&config.local_v6, Family::V6),
            (&config.global_v4, Family::V4),
            (&config.global_v6, Family::V6),
        ] {
            for d in defaults {
                d.validate()?;
                if Family::of_net(&d.base) != family {
                    return Err(IpamError::invalid(
                        "default pool",
                        format!("{} is not {family}", d.base),
                    ));
                }
            }
        }
        Ok(Ipam {
            local4: Space::new(Family::V4, config.local_v4.clone()),
            local6: Space::new(Family::V6, config.local_v6.clone()),
            global4: Space::new(Family::V4, config.global_v4.clone()),
            global6: Space::new(Family::V6, config.global_v6.clone()),
            config,
            journal,
        })
    }

    /// Rebuild an allocator from saved state; it then behaves exactly as the one
    /// that was saved.
    pub fn restore(config: Config, state: &State, journal: J) -> Result<Self, IpamError> {
        let mut ipam = Ipam::with_journal(config, journal)?;
        for p in &state.pools {
            ipam.validate_new_pool(&p.id)?;
            let mut pool = Pool::new(p.id.subnet, p.id.range, p.serial, p.owner.clone());
            for r in &p.allocated {
                pool.restore_range(r.first, r.last.unwrap_or(r.first))?;
            }
            if let Some(cursor) = p.cursor {
                pool.set_cursor(cursor)?;
            }
            ipam.space_mut(p.id.space, pool.family()).insert(pool, None);
        }
        Ok(ipam)
    }

    /// The default pools in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The journal.
    pub fn journal(&self) -> &J {
        &self.journal
    }

    /// The journal, mutably.
    pub fn journal_mut(&mut self) -> &mut J {
        &mut self.journal
    }

    fn space(&self, space: AddressSpace, family: Family) -> &Space {
        match (space, family) {
            (AddressSpace::Local, Family::V4) => &self.local4,
            (AddressSpace::Local, Family::V6) => &self.local6,
            (AddressSpace::Global, Family::V4) => &self.global4,
            (AddressSpace::Global, Family::V6) => &self.global6,
        }
    }

    fn space_mut(&mut self, space: AddressSpace, family: Family) -> &mut Space {
        match (space, family) {
            (AddressSpace::Local, Family::V4) => &mut self.local4,
            (AddressSpace::Local, Family::V6) => &mut self.local6,
            (AddressSpace::Global, Family::V4) => &mut self.global4,
            (AddressSpace::Global, Family::V6) => &mut self.global6,
        }
    }

    fn record(&mut self, change: &Change) -> Result<(), IpamError> {
        self.journal
            .record(change)
            .map_err(|e| IpamError::Journal(e.to_string()))
    }

    /// Check a given subnet and sub-pool, and that the subnet is free.
    fn validate_new_pool(&self, id: &PoolId) -> Result<(), IpamError> {
        check_canonical(&id.subnet).map_err(|m| IpamError::invalid("pool", m))?;
        if let Some(range) = id.range {
            check_canonical(&range).map_err(|m| IpamError::invalid("sub-pool", m))?;
            if Family::of_net(&range) != Family::of_net(&id.subnet) {
                return Err(IpamError::invalid(
                    "sub-pool",
                    format!(
                        "{range} and pool {} are of different IP families",
                        id.subnet
                    ),
                ));
            }
            if !id.subnet.contains(&range) {
                return Err(IpamError::invalid(
                    "sub-pool",
                    format!("{range} is not inside pool {}", id.subnet),
                ));
            }
        }
        self.space(id.space, Family::of_net(&id.subnet))
            .check_free(&id.subnet, |p| holder(id.space, p))
    }

    /// Allocate a pool: the given subnet, or the first free one of the default pools.
    pub fn request_pool(&mut self, req: &PoolRequest) -> Result<PoolId, IpamError> {
        let space = req.space.unwrap_or(AddressSpace::Local);
        let (id, choice) = match req.subnet {
            Some(subnet) => {
                let id = PoolId {
                    space,
                    subnet,
                    range: req.range.filter(|r| *r != subnet),
                };
                self.validate_new_pool(&id)?;
                (id, None)
            }
            None => {
                if let Some(range) = req.range {
                    return Err(IpamError::invalid(
                        "sub-pool",
                        format!("{range} was given without a pool to contain it"),
                    ));
                }
                let family = if req.v6 { Family::V6 } else { Family::V4 };
                let choice = self.space(space, family).choose(&req.exclude)?;
                let id = PoolId {
                    space,
                    subnet: choice.subnet,
                    range: None,
                };
                (id, Some(choice))
            }
        };
        self.record(&Change::PoolAdded {
            id,
            serial: req.serial,
            owner: req.owner.clone(),
        })?;
        let pool = Pool::new(id.subnet, id.range, req.serial, req.owner.clone());
        self.space_mut(space, pool.family()).insert(pool, choice);
        Ok(id)
    }

    fn pool(&self, id: &PoolId) -> Result<&Pool, IpamError> {
        self.space(id.space, Family::of_net(&id.subnet))
            .get(&id.subnet)
            .filter(|p| p.range == id.range.unwrap_or(id.subnet))
            .ok_or_else(|| IpamError::UnknownPool(id.to_string()))
    }

    fn pool_mut(&mut self, id: &PoolId) -> Result<&mut Pool, IpamError> {
        self.pool(id)?;
        self.space_mut(id.space, Family::of_net(&id.subnet))
            .get_mut(&id.subnet)
            .ok_or_else(|| IpamError::UnknownPool(id.to_string()))
    }

    /// Release a pool, and any addresses still allocated in it.
    pub fn release_pool(&mut self, id: &PoolId) -> Result<(), IpamError> {
        self.pool(id)?;
        self.record(&Change::PoolRemoved { id: *id })?;
        self.space_mut(id.space, Family::of_net(&id.subnet))
            .remove(&id.subnet);
        Ok(())
    }

    /// Allocate `wanted`, or any free address of the pool's range. The address comes
    /// with the subnet's prefix length, as the engine expects.
    pub fn request_address(
        &mut self,
        id: &PoolId,
        wanted: Option<IpAddr>,
    ) -> Result<IpNet, IpamError> {
        let pool = self.pool(id)?;
        let choice = pool.choose(wanted)?;
        let prefix = pool.subnet.prefix_len();
        // Decide first, record, then take: a failed record changes nothing.
        let address = pool.address_of(&choice);
        self.record(&Change::AddressAllocated {
            pool: *id,
            address,
            moves_cursor: choice.moves_cursor(),
        })?;
        self.pool_mut(id)?.take(choice);
        IpNet::new(address, prefix).map_err(|e| IpamError::invalid("address", e.to_string()))
    }

    /// Give an address back.
    pub fn release_address(&mut self, id: &PoolId, address: IpAddr) -> Result<(), IpamError> {
        let offset = self.pool(id)?.check_release(address)?;
        self.record(&Change::AddressReleased { pool: *id, address })?;
        self.pool_mut(id)?.release(offset);
        Ok(())
    }

    /// Apply a recorded change (replaying a journal onto restored state). The change
    /// is not recorded again.
    pub fn apply(&mut self, change: &Change) -> Result<(), IpamError> {
        match change {
            Change::PoolAdded { id, serial, owner } => {
                self.validate_new_pool(id)?;
                let pool = Pool::new(id.subnet, id.range, *serial, owner.clone());
                self.space_mut(id.space, pool.family()).insert(pool, None);
            }
            Change::PoolRemoved { id } => {
                self.pool(id)?;
                self.space_mut(id.space, Family::of_net(&id.subnet))
                    .remove(&id.subnet);
            }
            Change::AddressAllocated {
                pool,
                address,
                moves_cursor,
            } => {
                let p = self.pool_mut(pool)?;
                let choice = p.choose(Some(*address))?;
                p.take(choice);
                if *moves_cursor {
                    p.set_cursor(*address)?;
                }
            }
            Change::AddressReleased { pool, address } => {
                let p = self.pool_mut(pool)?;
                let offset = p.check_release(*address)?;
                p.release(offset);
            }
        }
        Ok(())
    }

    /// Whether `address` is allocated in pool `id`.
    pub fn is_allocated(&self, id: &PoolId, address: IpAddr) -> Result<bool, IpamError> {
        Ok(self.pool(id)?.contains(address))
    }

    /// One pool.
    pub fn pool_info(&self, id: &PoolId) -> Result<PoolInfo, IpamError> {
        Ok(info(*id, self.pool(id)?))
    }

    /// Every pool, local before global, IPv4 before IPv6, by subnet.
    pub fn pools(&self) -> Vec<PoolInfo> {
        let mut out = Vec::new();
        for space in [AddressSpace::Local, AddressSpace::Global] {
            for family in [Family::V4, Family::V6] {
                out.extend(
                    self.space(space, family)
                        .pools()
                        .map(|p| info(pool_id(space, p), p)),
                );
            }
        }
        out
    }

    /// Everything needed to [`Ipam::restore`] this allocator.
    pub fn state(&self) -> State {
        let mut pools = Vec::new();
        for space in [AddressSpace::Local, AddressSpace::Global] {
            for family in [Family::V4, Family::V6] {
                for p in self.space(space, family).pools() {
                    pools.push(PoolState {
                        id: pool_id(space, p),
                        serial: p.serial,
                        owner: p.owner.clone(),
                        cursor: p.cursor(),
                        allocated: p
                            .allocated_ranges()
                            .into_iter()
                            .map(|(first, last)| AddressRange {
                                first,
                                last: (last != first).then_some(last),
                            })
                            .collect(),
                    });
                }
            }
        }
        State { pools }
    }
}

fn pool_id(space: AddressSpace, p: &Pool) -> PoolId {
    PoolId {
        space,
        subnet: p.subnet,
        range: (p.range != p.subnet).then_some(p.range),
    }
}

fn holder(space: AddressSpace, p: &Pool) -> String {
    match &p.owner {
        Some(owner) => owner.clone(),
        None => format!("pool {}", pool_id(space, p)),
    }
}

fn info(id: PoolId, p: &Pool) -> PoolInfo {
    PoolInfo {
        id,
        owner: p.owner.clone(),
        serial: p.serial,
        size: p.size(),
        allocated: p.allocated(),
        heap_bytes: p.heap_bytes(),
    }
}
