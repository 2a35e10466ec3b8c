//! Default pools: where subnets come from when a request names none.

use crate::space::DefaultPool;
use ipnet::{IpNet, Ipv6Net};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::Ipv6Addr;

/// The default pools of each address space and family.
///
/// The local IPv4 default is `172.24.0.0/14` in /24s: 1,024 networks of 254
/// addresses each (Docker's defaults give 31, and users run out). It stays clear of
/// the ranges home and office routers hand out (`192.168.0.0/16`, `10.0.0.0/16`,
/// `10.1.0.0/16`), of Docker's own `docker0` (`172.17.0.0/16`) and of AWS's default
/// VPC (`172.31.0.0/16`). Whatever a host does use is skipped anyway: callers pass
/// the host's on-link routes and DNS servers as exclusions. IPv6 networks get /64s
/// of a ULA /48 derived from the host id (RFC 4193), as Docker 27 and later do.
/// The global IPv4 default is `10.128.0.0/12` in /24s (4,096 networks); global IPv6
/// has no default until hosts share a cluster-wide prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Local IPv4 default pools, searched in order.
    pub local_v4: Vec<DefaultPool>,
    /// Local IPv6 default pools.
    pub local_v6: Vec<DefaultPool>,
    /// Global IPv4 default pools.
    pub global_v4: Vec<DefaultPool>,
    /// Global IPv6 default pools.
    pub global_v6: Vec<DefaultPool>,
}

fn pool(base: &str, size: u8) -> DefaultPool {
    DefaultPool {
        // The literals below are valid CIDRs.
        base: base.parse().unwrap_or_else(|_| unreachable!("{base}")),
        size,
    }
}

impl Config {
    /// The defaults described on [`Config`], for the host with id `host_id` (for
    /// example the contents of /etc/machine-id).
    pub fn defaults(host_id: &str) -> Config {
        Config {
            local_v4: vec![pool("172.24.0.0/14", 24)],
            local_v6: vec![DefaultPool {
                base: IpNet::V6(ula_prefix(host_id)),
                size: 64,
            }],
            global_v4: vec![pool("10.128.0.0/12", 24)],
            global_v6: Vec::new(),
        }
    }
}

/// A unique local /48 (`fdXX:XXXX:XXXX::/48`) whose 40-bit global id is taken from a
/// SHA-256 of `host_id`: stable for a host, and unlikely to match another host's.
pub fn ula_prefix(host_id: &str) -> Ipv6Net {
    let digest = Sha256::digest(host_id.as_bytes());
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..6].copy_from_slice(&digest[..5]);
    Ipv6Net::new(Ipv6Addr::from(octets), 48).unwrap_or_else(|_| unreachable!("48 <= 128"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ula_is_stable_per_host_and_differs_between_hosts() {
        let a = ula_prefix("host-a");
        assert_eq!(a, ula_prefix("host-a"));
        assert_ne!(a, ula_prefix("host-b"));
        assert_eq!(a.prefix_len(), 48);
        assert_eq!(a.addr().octets()[0], 0xfd);
        assert_eq!(a.addr(), a.network());
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::defaults("x");
        for d in c.local_v4.iter().chain(&c.local_v6).chain(&c.global_v4) {
            d.validate().unwrap();
        }
    }
}
