//! One allocated subnet and the addresses handed out of it.

use crate::addr::{bounds, from_u128, to_u128, Family};
use crate::bitmap::OffsetSet;
use crate::error::IpamError;
use ipnet::IpNet;
use std::net::IpAddr;

/// Why `offset` in `subnet` can never be handed out, if it cannot.
fn reserved_offset(subnet: &IpNet, offset: u128) -> Option<&'static str> {
    let family = Family::of_net(subnet);
    let host_bits = family.bits() - subnet.prefix_len();
    let (lo, hi) = bounds(subnet);
    match family {
        Family::V4 if host_bits <= 1 => None,
        Family::V4 if offset == 0 => Some("network address"),
        Family::V4 if offset == hi - lo => Some("broadcast address"),
        Family::V6 if offset == 0 && host_bits > 0 => Some("subnet-router anycast address"),
        _ => None,
    }
}

/// Why `address` can never be handed out in `subnet` (its network, broadcast or
/// subnet-router anycast address), if it cannot; `None` also for an address outside.
pub fn reserved_address(subnet: &IpNet, address: IpAddr) -> Option<&'static str> {
    if !subnet.contains(&address) {
        return None;
    }
    let (lo, _) = bounds(subnet);
    reserved_offset(subnet, to_u128(address) - lo)
}

/// How many addresses of `subnet` can be handed out (saturating).
pub fn usable_addresses(subnet: &IpNet) -> u128 {
    let (lo, hi) = bounds(subnet);
    let size = (hi - lo).saturating_add(1);
    let reserved = [0, hi - lo]
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|o| reserved_offset(subnet, **o).is_some())
        .count() as u128;
    size - reserved
}

/// An allocated subnet.
///
/// Offsets are relative to the subnet's first address. The first address (IPv4
/// network address, IPv6 subnet-router anycast) and the IPv4 broadcast address are
/// never handed out, except in IPv4 /31 and /32 subnets (RFC 3021), which have
/// neither. Every other address, including the last of an IPv6 subnet, can be.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub(crate) subnet: IpNet,
    /// Where "any address" requests look: the sub-pool (`--ip-range`) or the subnet.
    pub(crate) range: IpNet,
    pub(crate) serial: bool,
    pub(crate) owner: Option<String>,
    family: Family,
    base: u128,
    range_lo: u128,
    range_hi: u128,
    /// Addresses handed out (not the reserved ones).
    used: OffsetSet,
    /// The offset handed out last by an "any" request, where serial allocation resumes.
    cursor: Option<u128>,
}

impl Pool {
    pub(crate) fn new(
        subnet: IpNet,
        range: Option<IpNet>,
        serial: bool,
        owner: Option<String>,
    ) -> Pool {
        let family = Family::of_net(&subnet);
        let (base, last) = bounds(&subnet);
        let range = range.unwrap_or(subnet);
        let (lo, hi) = bounds(&range);
        Pool {
            subnet,
            range,
            serial,
            owner,
            family,
            base,
            range_lo: lo - base,
            range_hi: hi - base,
            used: OffsetSet::new(last - base),
            cursor: None,
        }
    }

    pub(crate) fn family(&self) -> Family {
        self.family
    }

    /// Number of addresses in the subnet, saturating at `u128::MAX`.
    pub(crate) fn size(&self) -> u128 {
        let (lo, hi) = bounds(&self.subnet);
        (hi - lo).saturating_add(1)
    }

    /// How many addresses are handed out.
    pub(crate) fn allocated(&self) -> u128 {
        self.used.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.used.heap_bytes()
    }

    /// Why `offset` can never be handed out, if it cannot.
    fn reserved(&self, offset: u128) -> Option<&'static str> {
        reserved_offset(&self.subnet, offset)
    }

    /// The offset of `address`, checked to be usable in this pool.
    fn offset_of(&self, address: IpAddr) -> Result<u128, IpamError> {
        if Family::of(address) != self.family {
            return Err(IpamError::WrongFamily {
                address,
                family: self.family,
                pool: self.subnet,
            });
        }
        if !self.subnet.contains(&address) {
            return Err(IpamError::OutsidePool {
                address,
                pool: self.subnet,
            });
        }
        let offset = to_u128(address) - self.base;
        if let Some(what) = self.reserved(offset) {
            return Err(IpamError::Reserved {
                address,
                what,
                pool: self.subnet,
            });
        }
        Ok(offset)
    }

    fn address(&self, offset: u128) -> IpAddr {
        from_u128(self.family, self.base + offset)
    }

    /// Whether `address` is handed out.
    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        self.offset_of(address)
            .map(|o| self.used.contains(o))
            .unwrap_or(false)
    }

    /// Decide which address a request gets, without taking it.
    pub(crate) fn choose(&self, wanted: Option<IpAddr>) -> Result<Choice, IpamError> {
        if let Some(address) = wanted {
            let offset = self.offset_of(address)?;
            if self.used.contains(offset) {
                return Err(IpamError::InUse {
                    address,
                    pool: self.subnet,
                });
            }
            return Ok(Choice {
                offset,
                moves_cursor: false,
            });
        }
        let (lo, hi) = (self.range_lo, self.range_hi);
        let offset = match self.cursor.filter(|_| self.serial) {
            Some(cursor) if cursor < hi => {
                let start = if cursor >= lo { cursor + 1 } else { lo };
                self.first_usable(start, hi)
                    .or_else(|| self.first_usable(lo, cursor))
            }
            _ => self.first_usable(lo, hi),
        };
        let offset = offset.ok_or_else(|| {
            let (a, b) = bounds(&self.range);
            IpamError::Exhausted {
                pool: self.subnet,
                range: self.range,
                size: (b - a).saturating_add(1),
            }
        })?;
        Ok(Choice {
            offset,
            moves_cursor: true,
        })
    }

    /// Lowest free, non-reserved offset in `lo..=hi`.
    fn first_usable(&self, mut lo: u128, hi: u128) -> Option<u128> {
        loop {
            let offset = self.used.first_free(lo, hi)?;
            if self.reserved(offset).is_none() {
                return Some(offset);
            }
            lo = offset.checked_add(1)?;
        }
    }

    /// The address a choice stands for.
    pub(crate) fn address_of(&self, choice: &Choice) -> IpAddr {
        self.address(choice.offset)
    }

    /// Take what [`Pool::choose`] decided.
    pub(crate) fn take(&mut self, choice: Choice) -> IpAddr {
        self.used.insert(choice.offset);
        if choice.moves_cursor {
            self.cursor = Some(choice.offset);
        }
        self.address(choice.offset)
    }

    /// Check that `address` can be released; its offset.
    pub(crate) fn check_release(&self, address: IpAddr) -> Result<u128, IpamError> {
        let offset = self.offset_of(address)?;
        if !self.used.contains(offset) {
            return Err(IpamError::NotAllocated {
                address,
                pool: self.subnet,
            });
        }
        Ok(offset)
    }

    pub(crate) fn release(&mut self, offset: u128) {
        self.used.remove(offset);
    }

    /// The serial cursor as an address.
    pub(crate) fn cursor(&self) -> Option<IpAddr> {
        self.cursor.map(|o| self.address(o))
    }

    pub(crate) fn set_cursor(&mut self, address: IpAddr) -> Result<(), IpamError> {
        let offset = self.offset_of(address)?;
        self.cursor = Some(offset);
        Ok(())
    }

    /// Handed-out addresses as maximal ranges `(first, last)`.
    pub(crate) fn allocated_ranges(&self) -> Vec<(IpAddr, IpAddr)> {
        self.used
            .runs()
            .into_iter()
            .map(|(a, b)| (self.address(a), self.address(b)))
            .collect()
    }

    /// Mark `first..=last` handed out (restoring state).
    pub(crate) fn restore_range(&mut self, first: IpAddr, last: IpAddr) -> Result<(), IpamError> {
        let (a, b) = (self.offset_of(first)?, self.offset_of(last)?);
        if a > b {
            return Err(IpamError::invalid(
                "saved range",
                format!("{first}-{last} is backwards"),
            ));
        }
        for offset in a..=b {
            if let Some(what) = self.reserved(offset) {
                return Err(IpamError::Reserved {
                    address: self.address(offset),
                    what,
                    pool: self.subnet,
                });
            }
            self.used.insert(offset);
        }
        Ok(())
    }
}

/// An address decided on but not yet taken: lets the caller save the change first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Choice {
    offset: u128,
    moves_cursor: bool,
}

impl Choice {
    pub(crate) fn moves_cursor(&self) -> bool {
        self.moves_cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(subnet: &str, range: Option<&str>, serial: bool) -> Pool {
        Pool::new(
            subnet.parse().unwrap(),
            range.map(|r| r.parse().unwrap()),
            serial,
            None,
        )
    }

    fn any(p: &mut Pool) -> Result<IpAddr, IpamError> {
        let c = p.choose(None)?;
        Ok(p.take(c))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_skips_network_and_broadcast() {
        let mut p = pool("10.0.0.0/30", None, false);
        assert_eq!(any(&mut p).unwrap(), ip("10.0.0.1"));
        assert_eq!(any(&mut p).unwrap(), ip("10.0.0.2"));
        let err = any(&mut p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no free address in 10.0.0.0/30 (pool 10.0.0.0/30): all 4 addresses are allocated"
        );
        assert!(matches!(
            p.choose(Some(ip("10.0.0.3"))),
            Err(IpamError::Reserved {
                what: "broadcast address",
                ..
            })
        ));
    }

    #[test]
    fn point_to_point_subnets_use_every_address() {
        let mut p = pool("10.0.0.0/31", None, false);
        assert_eq!(any(&mut p).unwrap(), ip("10.0.0.0"));
        assert_eq!(any(&mut p).unwrap(), ip("10.0.0.1"));
        let mut p = pool("10.0.0.7/32", None, false);
        assert_eq!(any(&mut p).unwrap(), ip("10.0.0.7"));
    }

    #[test]
    fn ipv6_hands_out_the_last_address() {
        let mut p = pool("fd00::/64", None, false);
        let last = ip("fd00::ffff:ffff:ffff:ffff");
        let c = p.choose(Some(last)).unwrap();
        assert_eq!(p.take(c), last);
        assert_eq!(any(&mut p).unwrap(), ip("fd00::1"));
        assert!(matches!(
            p.choose(Some(ip("fd00::"))),
            Err(IpamError::Reserved { .. })
        ));
    }

    #[test]
    fn serial_goes_round_and_lowest_free_does_not() {
        let mut lowest = pool("10.0.0.0/29", None, false);
        let mut serial = pool("10.0.0.0/29", None, true);
        for p in [&mut lowest, &mut serial] {
            for _ in 0..3 {
                any(p).unwrap();
            }
            let offset = p.check_release(ip("10.0.0.2")).unwrap();
            p.release(offset);
        }
        assert_eq!(any(&mut lowest).unwrap(), ip("10.0.0.2"));
        assert_eq!(any(&mut serial).unwrap(), ip("10.0.0.4"));
        for _ in 0..2 {
            any(&mut serial).unwrap();
        }
        // .4 .5 .6 taken after .1 .3: wraps round to .2.
        assert_eq!(any(&mut serial).unwrap(), ip("10.0.0.2"));
    }

    #[test]
    fn sub_pool_bounds_any_but_not_static() {
        let mut p = pool("10.0.0.0/24", Some("10.0.0.128/30"), false);
        assert_eq!(any(&mut p).unwrap(), ip("10.0.0.128"));
        let c = p.choose(Some(ip("10.0.0.5"))).unwrap();
        assert_eq!(p.take(c), ip("10.0.0.5"));
        for _ in 0..3 {
            any(&mut p).unwrap();
        }
        assert!(matches!(any(&mut p), Err(IpamError::Exhausted { .. })));
    }

    #[test]
    fn errors_leave_the_pool_unchanged() {
        let mut p = pool("10.0.0.0/24", None, false);
        any(&mut p).unwrap();
        assert!(matches!(
            p.choose(Some(ip("10.0.1.1"))),
            Err(IpamError::OutsidePool { .. })
        ));
        assert!(matches!(
            p.choose(Some(ip("fd00::1"))),
            Err(IpamError::WrongFamily { .. })
        ));
        assert!(matches!(
            p.choose(Some(ip("10.0.0.1"))),
            Err(IpamError::InUse { .. })
        ));
        assert!(matches!(
            p.check_release(ip("10.0.0.9")),
            Err(IpamError::NotAllocated { .. })
        ));
        assert_eq!(p.allocated(), 1);
    }
}
