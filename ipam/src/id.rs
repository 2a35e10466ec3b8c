//! Pool ids: the address space, the subnet and the sub-pool, readable and stable
//! across restarts (`local/172.24.0.0/24`, `local/10.0.0.0/16/10.0.8.0/24`).

use crate::addr::check_canonical;
use crate::error::IpamError;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An address space. Local networks live on one host; global ones (overlay) are
/// shared by all hosts, so their pools must not collide across hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressSpace {
    /// This host's networks.
    Local,
    /// Networks shared across hosts.
    Global,
}

impl AddressSpace {
    /// `local` or `global`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressSpace::Local => "local",
            AddressSpace::Global => "global",
        }
    }
}

impl fmt::Display for AddressSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AddressSpace {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(AddressSpace::Local),
            "global" => Ok(AddressSpace::Global),
            other => Err(IpamError::UnknownSpace(other.to_string())),
        }
    }
}

/// Identifies an allocated pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId {
    /// The address space.
    pub space: AddressSpace,
    /// The subnet.
    pub subnet: IpNet,
    /// The sub-pool "any" requests draw from, if one was given.
    pub range: Option<IpNet>,
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.space, self.subnet)?;
        if let Some(range) = self.range {
            write!(f, "/{range}")?;
        }
        Ok(())
    }
}

impl FromStr for PoolId {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            IpamError::invalid(
                "pool id",
                format!("{s:?}: {why} (expected SPACE/SUBNET or SPACE/SUBNET/RANGE)"),
            )
        };
        let parts: Vec<&str> = s.split('/').collect();
        let net = |a: &str, b: &str| -> Result<IpNet, IpamError> {
            let n: IpNet = format!("{a}/{b}").parse().map_err(|_| bad("not a CIDR"))?;
            check_canonical(&n).map_err(|m| bad(&m))?;
            Ok(n)
        };
        let (space, subnet, range) = match parts.as_slice() {
            [space, a, b] => (space, net(a, b)?, None),
            [space, a, b, c, d] => (space, net(a, b)?, Some(net(c, d)?)),
            _ => return Err(bad("wrong number of parts")),
        };
        Ok(PoolId {
            space: space.parse().map_err(|e: IpamError| bad(&e.to_string()))?,
            subnet,
            range,
        })
    }
}

impl Serialize for PoolId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PoolId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        for id in [
            "local/10.0.0.0/16",
            "global/fd00::/64/fd00::/80",
            "local/10.0.0.0/16/10.0.8.0/24",
        ] {
            assert_eq!(id.parse::<PoolId>().unwrap().to_string(), id);
        }
        for bad in [
            "",
            "local",
            "remote/10.0.0.0/16",
            "local/10.0.0.1/16",
            "local/10.0.0.0/16/x/1",
            "local/10.0.0.0",
        ] {
            assert!(bad.parse::<PoolId>().is_err(), "{bad}");
        }
    }
}
