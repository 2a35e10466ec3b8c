//! The pools of one address space and one family, and the choice of a free subnet
//! out of the default pools.

use crate::addr::{bounds, from_u128, overlaps, Family};
use crate::error::IpamError;
use crate::pool::Pool;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where subnets come from when a request names none: `base` split into subnets of
/// prefix length `size` (Docker's `default-address-pools` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPool {
    /// The range to split, such as `172.24.0.0/14`.
    pub base: IpNet,
    /// Prefix length of each subnet, such as 24.
    pub size: u8,
}

impl DefaultPool {
    /// Check the entry: canonical base, size no shorter than the base's prefix.
    pub fn validate(&self) -> Result<(), IpamError> {
        crate::addr::check_canonical(&self.base)
            .map_err(|m| IpamError::invalid("default pool", m))?;
        if self.size < self.base.prefix_len() || self.size > self.base.max_prefix_len() {
            return Err(IpamError::invalid(
                "default pool",
                format!(
                    "size /{} must be between the base's /{} and /{}",
                    self.size,
                    self.base.prefix_len(),
                    self.base.max_prefix_len()
                ),
            ));
        }
        Ok(())
    }

    /// Distance between two candidate subnets, `None` when the one candidate is
    /// the whole address space.
    fn step(&self) -> Option<u128> {
        1u128.checked_shl(u32::from(self.base.max_prefix_len() - self.size))
    }

    /// The `k`-th subnet of the pool, if there is one.
    fn candidate(&self, k: u128) -> Option<(u128, u128)> {
        let (base_lo, base_hi) = bounds(&self.base);
        let start = match self.step() {
            Some(step) => base_lo.checked_add(k.checked_mul(step)?)?,
            None if k == 0 => base_lo,
            None => return None,
        };
        if start > base_hi {
            return None;
        }
        let end = self.step().map_or(u128::MAX, |step| start + (step - 1));
        Some((start, end))
    }

    /// Index of the first candidate that starts after `addr`.
    fn index_after(&self, addr: u128) -> Option<u128> {
        let (base_lo, _) = bounds(&self.base);
        let step = self.step()?;
        Some(addr.checked_sub(base_lo).map_or(0, |d| d / step + 1))
    }

    /// Index of the candidate holding `addr` (or 0 below the base).
    fn index_of(&self, addr: u128) -> u128 {
        let (base_lo, _) = bounds(&self.base);
        match self.step() {
            Some(step) => addr.saturating_sub(base_lo) / step,
            None => 0,
        }
    }
}

impl std::fmt::Display for DefaultPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in /{}s", self.base, self.size)
    }
}

/// A subnet chosen out of the default pools, not yet taken.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubnetChoice {
    pub(crate) subnet: IpNet,
    default: usize,
    next_hint: u128,
}

#[derive(Debug, Clone)]
pub(crate) struct Space {
    family: Family,
    /// Allocated pools by their first address; they never overlap.
    pools: BTreeMap<u128, Pool>,
    defaults: Vec<DefaultPool>,
    /// Per default pool: every candidate below this index is allocated, so searches
    /// start here and choosing with 1,000 pools taken costs a few lookups.
    hints: Vec<u128>,
}

impl Space {
    pub(crate) fn new(family: Family, defaults: Vec<DefaultPool>) -> Space {
        Space {
            family,
            pools: BTreeMap::new(),
            hints: vec![0; defaults.len()],
            defaults,
        }
    }

    /// The allocated pool that overlaps `lo..=hi`, if any. Pools are disjoint, so
    /// only the last one starting at or before `hi` can.
    fn overlapping(&self, lo: u128, hi: u128) -> Option<&Pool> {
        self.pools
            .range(..=hi)
            .next_back()
            .map(|(_, p)| p)
            .filter(|p| bounds(&p.subnet).1 >= lo)
    }

    pub(crate) fn check_free(
        &self,
        subnet: &IpNet,
        holder: impl Fn(&Pool) -> String,
    ) -> Result<(), IpamError> {
        let (lo, hi) = bounds(subnet);
        match self.overlapping(lo, hi) {
            Some(p) => Err(IpamError::Overlap {
                requested: *subnet,
                held: p.subnet,
                holder: holder(p),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn get(&self, subnet: &IpNet) -> Option<&Pool> {
        self.pools
            .get(&bounds(subnet).0)
            .filter(|p| p.subnet == *subnet)
    }

    pub(crate) fn get_mut(&mut self, subnet: &IpNet) -> Option<&mut Pool> {
        self.pools
            .get_mut(&bounds(subnet).0)
            .filter(|p| p.subnet == *subnet)
    }

    pub(crate) fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    /// First free subnet of the default pools, in order, that overlaps neither an
    /// allocated pool nor any of `exclude`.
    pub(crate) fn choose(&self, exclude: &[IpNet]) -> Result<SubnetChoice, IpamError> {
        if self.defaults.is_empty() {
            return Err(IpamError::NoDefaultPools {
                family: self.family,
            });
        }
        let exclude: Vec<(u128, u128)> = exclude
            .iter()
            .filter(|e| Family::of_net(e) == self.family)
            .map(bounds)
            .collect();
        for (i, default) in self.defaults.iter().enumerate() {
            let mut k = self.hints[i];
            // The hint may only move past candidates that are allocated, not past
            // ones that were merely excluded this time.
            let mut only_allocated_below = true;
            while let Some((lo, hi)) = default.candidate(k) {
                if let Some(p) = self.overlapping(lo, hi) {
                    match default.index_after(bounds(&p.subnet).1) {
                        Some(next) => k = next.max(k + 1),
                        None => break,
                    }
                    continue;
                }
                if let Some(&(_, end)) = exclude.iter().find(|&&(a, b)| a <= hi && lo <= b) {
                    only_allocated_below = false;
                    match default.index_after(end) {
                        Some(next) => k = next.max(k + 1),
                        None => break,
                    }
                    continue;
                }
                let subnet = IpNet::new(from_u128(self.family, lo), default.size)
                    .map_err(|e| IpamError::invalid("default pool", e.to_string()))?;
                let next_hint = if only_allocated_below {
                    k + 1
                } else {
                    self.hints[i]
                };
                return Ok(SubnetChoice {
                    subnet,
                    default: i,
                    next_hint,
                });
            }
        }
        Err(IpamError::NoFreePool {
            family: self.family,
            pools: self
                .defaults
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Add `pool`; `choice` is set when it came from [`Space::choose`].
    pub(crate) fn insert(&mut self, pool: Pool, choice: Option<SubnetChoice>) {
        if let Some(c) = choice {
            self.hints[c.default] = c.next_hint;
        }
        self.pools.insert(bounds(&pool.subnet).0, pool);
    }

    pub(crate) fn remove(&mut self, subnet: &IpNet) -> Option<Pool> {
        let pool = self.pools.remove(&bounds(subnet).0)?;
        let (lo, _) = bounds(subnet);
        for (default, hint) in self.defaults.iter().zip(self.hints.iter_mut()) {
            if overlaps(&default.base, subnet) {
                *hint = (*hint).min(default.index_of(lo));
            }
        }
        Some(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn space(defaults: &[(&str, u8)]) -> Space {
        Space::new(
            Family::V4,
            defaults
                .iter()
                .map(|&(b, size)| DefaultPool { base: net(b), size })
                .collect(),
        )
    }

    fn take(s: &mut Space, exclude: &[IpNet]) -> IpNet {
        let c = s.choose(exclude).unwrap();
        s.insert(Pool::new(c.subnet, None, false, None), Some(c));
        c.subnet
    }

    #[test]
    fn first_fit_skips_allocated_and_excluded() {
        let mut s = space(&[("10.0.0.0/22", 24)]);
        s.insert(Pool::new(net("10.0.1.0/25"), None, false, None), None);
        assert_eq!(take(&mut s, &[net("10.0.0.0/24")]), net("10.0.2.0/24"));
        // The excluded /24 is free again once the exclusion is gone.
        assert_eq!(take(&mut s, &[]), net("10.0.0.0/24"));
        assert_eq!(take(&mut s, &[]), net("10.0.3.0/24"));
        assert!(matches!(s.choose(&[]), Err(IpamError::NoFreePool { .. })));
        s.remove(&net("10.0.2.0/24"));
        assert_eq!(take(&mut s, &[]), net("10.0.2.0/24"));
    }

    #[test]
    fn a_large_allocation_is_jumped_over() {
        let mut s = space(&[("10.0.0.0/16", 24), ("192.0.2.0/24", 26)]);
        s.insert(Pool::new(net("10.0.0.0/17"), None, false, None), None);
        assert_eq!(take(&mut s, &[]), net("10.0.128.0/24"));
        assert_eq!(take(&mut s, &[net("10.0.0.0/16")]), net("192.0.2.0/26"));
    }

    #[test]
    fn invalid_defaults_are_refused() {
        for (base, size) in [("10.0.0.1/16", 24), ("10.0.0.0/16", 8), ("10.0.0.0/16", 33)] {
            let d = DefaultPool {
                base: net(base),
                size,
            };
            assert!(d.validate().is_err(), "{base} /{size}");
        }
    }
}
