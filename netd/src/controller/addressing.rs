//! Checks on subnets, gateways and endpoint addresses, the same for every face:
//! netd says why before the allocator or the kernel would refuse (or, worse,
//! accept something that breaks the host).

use super::records::{Held, Records};
use super::ControllerError;
use crate::model::{NetworkRecord, SubnetRecord};
use ipnet::IpNet;
use std::net::IpAddr;

/// Ranges no container network may overlap, with what they are.
const FORBIDDEN: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
    ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
    ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
    ("240.0.0.0/4", "reserved and broadcast (240.0.0.0/4)"),
    ("::/128", "the unspecified address (::)"),
    ("::1/128", "loopback (::1)"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6 (::ffff:0:0/96)"),
    ("fe80::/10", "link-local (fe80::/10)"),
    ("ff00::/8", "multicast (ff00::/8)"),
];

/// Shortest prefix a network may have: anything wider is a catch-all that would
/// send much of the Internet into one bridge.
const MIN_PREFIX_V4: u8 = 8;
const MIN_PREFIX_V6: u8 = 16;

fn invalid(message: String) -> ControllerError {
    ControllerError::Invalid(message)
}

/// Whether `subnet` can be a container network's: canonical, not a catch-all, not
/// overlapping a special range, with room for a gateway and an endpoint.
pub(crate) fn check_subnet(subnet: &IpNet) -> Result<(), ControllerError> {
    if subnet.trunc() != *subnet {
        return Err(invalid(format!(
            "invalid subnet {subnet}: host bits are set; did you mean {}?",
            subnet.trunc()
        )));
    }
    let min = if subnet.addr().is_ipv4() {
        MIN_PREFIX_V4
    } else {
        MIN_PREFIX_V6
    };
    if subnet.prefix_len() < min {
        return Err(invalid(format!(
            "subnet {subnet} is too large for a network: use a /{min} or longer prefix"
        )));
    }
    for (range, what) in FORBIDDEN {
        let Ok(range) = range.parse::<IpNet>() else {
            continue;
        };
        if overlaps(subnet, &range) {
            return Err(invalid(format!(
                "subnet {subnet} overlaps {what}, which no container network may use"
            )));
        }
    }
    if ipam::usable_addresses(subnet) < 2 {
        return Err(invalid(format!(
            "subnet {subnet} has no room for a gateway and an endpoint: use a shorter prefix"
        )));
    }
    Ok(())
}

/// Whether two prefixes share any address.
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A gateway (or aux address) given for `subnet`: inside it, not its network or
/// broadcast address, and with its prefix length if given in CIDR form.
pub(crate) fn check_gateway(
    what: &str,
    subnet: &IpNet,
    addr: IpAddr,
    prefix: Option<u8>,
) -> Result<(), ControllerError> {
    if !subnet.contains(&addr) {
        return Err(invalid(format!("{what} {addr} is outside subnet {subnet}")));
    }
    if let Some(reason) = ipam::reserved_address(subnet, addr) {
        return Err(invalid(format!(
            "{what} {addr} is the {reason} of {subnet}, which cannot be assigned"
        )));
    }
    if let Some(p) = prefix {
        if p != subnet.prefix_len() {
            return Err(invalid(format!(
                "{what} {addr}/{p} has prefix length {p}, but subnet {subnet} has {}",
                subnet.prefix_len()
            )));
        }
    }
    Ok(())
}

/// The network, other than `except`, whose subnets overlap `subnet`.
pub(crate) fn overlapping_network<'a>(
    records: &'a Records,
    subnet: &IpNet,
    except: Option<&str>,
) -> Option<(&'a NetworkRecord, &'a SubnetRecord)> {
    records
        .networks
        .values()
        .filter(|n| Some(n.id.as_str()) != except)
        .find_map(|n| {
            n.subnets
                .iter()
                .find(|s| overlaps(&s.subnet, subnet))
                .map(|s| (n, s))
        })
}

/// Check an endpoint's address against its network: inside one of its subnets with
/// that subnet's prefix length, not reserved, not the gateway or an aux address,
/// and held by no other endpoint of the network.
pub(crate) fn check_endpoint_address(
    records: &Records,
    net: &NetworkRecord,
    endpoint: &str,
    addr: &IpNet,
) -> Result<(), ControllerError> {
    let Some(s) = net.subnets.iter().find(|s| s.subnet.contains(&addr.addr())) else {
        return Err(invalid(format!(
            "address {addr} is not in any subnet of network {}",
            net.name
        )));
    };
    check_gateway("address", &s.subnet, addr.addr(), Some(addr.prefix_len()))?;
    if s.gateway == Some(addr.addr()) {
        return Err(invalid(format!(
            "address {} is the gateway of network {}",
            addr.addr(),
            net.name
        )));
    }
    if let Some((name, _)) = s.aux_addresses.iter().find(|(_, a)| **a == addr.addr()) {
        return Err(invalid(format!(
            "address {} is network {}'s aux address {name}",
            addr.addr(),
            net.name
        )));
    }
    if let Some(other) = records
        .holder(&net.id, &Held::Address(addr.addr()))
        .filter(|e| e.id != endpoint)
    {
        return Err(ControllerError::Conflict(format!(
            "address {} is held by endpoint {} on network {}",
            addr.addr(),
            other.name,
            net.name
        )));
    }
    Ok(())
}

/// Refuse a MAC another endpoint of the network has.
pub(crate) fn check_mac_free(
    records: &Records,
    net: &NetworkRecord,
    endpoint: &str,
    mac: &str,
) -> Result<(), ControllerError> {
    match records
        .holder(&net.id, &Held::Mac(mac.to_string()))
        .filter(|e| e.id != endpoint)
    {
        Some(other) => Err(ControllerError::Conflict(format!(
            "MAC address {mac} is held by endpoint {} on network {}",
            other.name, net.name
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_that_cannot_work_or_would_hurt_the_host_are_refused() {
        for bad in [
            "0.0.0.0/0",
            "::/0",
            "128.0.0.0/1",
            "10.0.0.0/7",
            "2000::/3",
            "127.0.0.0/8",
            "127.1.0.0/16",
            "169.254.0.0/16",
            "224.0.0.0/24",
            "255.255.255.0/24",
            "0.0.0.0/24",
            "::1/128",
            "fe80::/64",
            "ff02::/64",
            "::ffff:10.0.0.0/120",
            "10.1.2.3/32",
            "fd00::1/128",
            "fd00::/127",
        ] {
            assert!(check_subnet(&net(bad)).is_err(), "{bad} was accepted");
        }
        assert!(check_subnet(&"10.1.2.3/24".parse::<IpNet>().unwrap()).is_err());
        for good in [
            "10.0.0.0/8",
            "172.24.0.0/24",
            "192.168.1.0/31",
            "fd00:1::/64",
        ] {
            assert!(check_subnet(&net(good)).is_ok(), "{good} was refused");
        }
    }

    #[test]
    fn gateways() {
        let s = net("10.0.0.0/24");
        for bad in ["10.0.0.0", "10.0.0.255", "10.0.1.1"] {
            assert!(check_gateway("gateway", &s, bad.parse().unwrap(), None).is_err());
        }
        assert!(check_gateway("gateway", &s, "10.0.0.1".parse().unwrap(), Some(16)).is_err());
        assert!(check_gateway("gateway", &s, "10.0.0.1".parse().unwrap(), Some(24)).is_ok());
    }
}
