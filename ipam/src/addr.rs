//! Addresses as numbers: both families map onto `u128`, so one allocator serves both.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which IP version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family of `net`.
    pub fn of_net(net: &IpNet) -> Family {
        Family::of(net.addr())
    }

    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

pub(crate) fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(crate) fn from_u128(family: Family, n: u128) -> IpAddr {
    match family {
        // Callers only pass values that came from an IPv4 address plus an in-range offset.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// First and last address of `net`, as numbers.
pub(crate) fn bounds(net: &IpNet) -> (u128, u128) {
    (
        to_u128(net.network()),
        to_u128(net.broadcast()), // for IPv6 this is simply the last address
    )
}

/// Whether the prefixes share any address.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    if Family::of_net(a) != Family::of_net(b) {
        return false;
    }
    let (a0, a1) = bounds(a);
    let (b0, b1) = bounds(b);
    a0 <= b1 && b0 <= a1
}

/// `net` if its host bits are zero, else an error message naming the canonical form.
pub(crate) fn check_canonical(net: &IpNet) -> Result<(), String> {
    if net.addr() != net.network() {
        return Err(format!(
            "{net} has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for a in ["10.1.2.3", "255.255.255.255", "::", "fd00::1", "ffff::ffff"] {
            let addr: IpAddr = a.parse().unwrap();
            assert_eq!(from_u128(Family::of(addr), to_u128(addr)), addr);
        }
    }

    #[test]
    fn overlap_and_canonical_form() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(overlaps(&n("10.0.0.0/8"), &n("10.1.0.0/16")));
        assert!(!overlaps(&n("10.0.0.0/16"), &n("10.1.0.0/16")));
        assert!(!overlaps(&n("::/0"), &n("10.0.0.0/8")));
        assert!(check_canonical(&n("10.0.0.0/8")).is_ok());
        assert_eq!(
            check_canonical(&n("10.0.0.1/8")).unwrap_err(),
            "10.0.0.1/8 has host bits set: did you mean 10.0.0.0/8?"
        );
    }
}
