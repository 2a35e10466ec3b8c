//! The records netd keeps (one per network, endpoint and sandbox) and the validated
//! values they are made of. These are also the native API's answers.

use ipam::PoolId;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Who created an object: netd's own API, or dockerd through the plugin protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The native API or CLI.
    #[default]
    Native,
    /// dockerd, through the NetworkDriver/IpamDriver plugin protocol.
    Docker,
}

/// One subnet of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetRecord {
    /// The subnet.
    pub subnet: IpNet,
    /// The gateway (the bridge's address), if the network has one.
    pub gateway: Option<IpAddr>,
    /// The range addresses are handed out from (`--ip-range`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<IpNet>,
    /// On an overlay network, where `ip_range` is this host's first address
    /// block: the blocks it claimed later, once the ones before were full.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_blocks: Vec<IpNet>,
    /// Addresses kept out of allocation, by name (`--aux-address`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// The allocator's pool, when netd's own API allocated it (a Docker network's
    /// pools belong to the engine's IPAM calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolId>,
}

impl SubnetRecord {
    /// The address blocks this host hands out from on an overlay network: the
    /// first (`ip_range`), then the ones claimed later.
    pub fn host_blocks(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.ip_range
            .into_iter()
            .chain(self.more_blocks.iter().copied())
    }
}

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// `bridge`, `host` or `none`.
    pub driver: String,
    /// Always `local` for now.
    pub scope: String,
    /// Its subnets.
    pub subnets: Vec<SubnetRecord>,
    /// Driver options (Docker's names).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// User labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Who made it.
    #[serde(default)]
    pub origin: Origin,
    /// RFC 3339.
    pub created: String,
    /// What its driver noted when it made it (the bridge driver: whether the bridge
    /// was made by netd or existed already).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_data: BTreeMap<String, String>,
}

/// Where an endpoint is joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRecord {
    /// The sandbox's id (native joins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// The engine's sandbox key (Docker joins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_key: Option<String>,
    /// The interface name: `ethN` in the sandbox, or the name the engine moves.
    pub interface: String,
    /// The endpoint's link in netd's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_link: Option<String>,
}

fn stored_before_responders() -> bool {
    true
}

/// An endpoint: a network attachment with its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// 64 hex digits.
    pub id: String,
    /// Name, unique within its network.
    pub name: String,
    /// The network's id.
    pub network: String,
    /// Addresses with their subnet's prefix length.
    pub addresses: Vec<IpNet>,
    /// MAC address, `xx:xx:xx:xx:xx:xx`.
    pub mac: String,
    /// Set while joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinRecord>,
    /// Made by a sandbox attach, and removed by its detach.
    #[serde(default)]
    pub attached: bool,
    /// Ports published to it (host side chosen), while joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<firewall::PublishedPort>,
    /// More names its addresses answer to in the network's DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Who made it.
    #[serde(default)]
    pub origin: Origin,
    /// RFC 3339.
    pub created: String,
}

/// A sandbox: a container's network namespace and the files the runtime mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The namespace file.
    pub netns: PathBuf,
    /// Whether netd made the namespace (and removes it with the sandbox) or adopted it.
    pub owned: bool,
    /// The namespace's inode number (`net:[N]`), taken when it was made or adopted:
    /// an adopted `/proc/PID/ns/net` whose process is gone (and whose PID another
    /// process may have now) is never taken for the sandbox's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_inode: Option<u64>,
    /// Host name written into the hosts file.
    pub hostname: String,
    /// Name servers written into resolv.conf: those asked for, else the DNS
    /// responders of the networks joined, else the host's.
    pub dns: Vec<IpAddr>,
    /// Whether `dns` was asked for at creation (and joins leave it alone).
    /// Records stored before netd had DNS responders have none: they keep
    /// their servers, as joins then never changed them.
    #[serde(default = "stored_before_responders")]
    pub dns_asked: bool,
    /// The sandbox's resolv.conf, for the runtime to mount.
    pub resolv_conf: PathBuf,
    /// The sandbox's hosts file, for the runtime to mount.
    pub hosts: PathBuf,
    /// Joined endpoints' ids, in join order.
    pub endpoints: Vec<String>,
    /// RFC 3339.
    pub created: String,
    /// Labels its maker gave.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A pool dockerd holds through netd's IpamDriver (`RequestPool`), kept until its
/// `ReleasePool`, or, when a network still uses the subnet then, until that network
/// goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnginePoolRecord {
    /// The allocator's pool.
    pub id: PoolId,
    /// Round-robin allocation (`com.docker.network.ipam.serial`).
    #[serde(default)]
    pub serial: bool,
    /// dockerd asked for its release while a network still used the subnet.
    #[serde(default)]
    pub released: bool,
    /// RFC 3339.
    pub created: String,
}

impl EnginePoolRecord {
    /// Its key in the store.
    pub fn key(&self) -> String {
        self.id.to_string()
    }
}

/// An address dockerd holds through netd's IpamDriver (`RequestAddress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineAddressRecord {
    /// The pool it was handed out of.
    pub pool: PoolId,
    /// The address.
    pub address: IpAddr,
    /// Asked for as the network's gateway.
    #[serde(default)]
    pub gateway: bool,
    /// dockerd asked for its release while a network or endpoint still used it.
    #[serde(default)]
    pub released: bool,
    /// RFC 3339.
    pub created: String,
}

impl EngineAddressRecord {
    /// Its key in the store.
    pub fn key(&self) -> String {
        engine_address_key(&self.pool, self.address)
    }
}

/// The store key of an engine-held address.
pub fn engine_address_key(pool: &PoolId, address: IpAddr) -> String {
    format!("{pool} {address}")
}

/// A name as users give it: 1 to 64 of letters, digits, `_`, `.`, `-`, starting
/// with a letter or digit (Docker's rule for container and network names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Check `text`.
    pub fn parse(what: &str, text: &str) -> Result<Name, String> {
        let ok = (1..=64).contains(&text.len())
            && text
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(Name(text.to_string()))
        } else {
            Err(format!(
                "invalid {what} name {text:?}: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new random 64-hex id.
pub fn new_id() -> Result<String, std::io::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::from)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `text` is a full 64-hex id.
pub fn is_full_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The first 12 digits of an id, as tables show it.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A MAC address in text form.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let bad =
        || format!("invalid MAC address {text:?}: expected six hex pairs like 02:42:ac:11:00:02");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(&parts) {
        // from_str_radix alone would take "+2".
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!(
            "invalid MAC address {text:?}: a multicast address cannot be an endpoint's"
        ));
    }
    if mac == [0; 6] {
        return Err(format!("invalid MAC address {text:?}: all zeros"));
    }
    Ok(mac)
}

/// A MAC address as text.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The MAC for an endpoint with no fixed one: `02:42` and its IPv4 address, as
/// Docker did for years (a reused address comes back with the same MAC, so
/// neighbours' caches stay right), or random and locally administered without IPv4.
pub fn generate_mac(addresses: &[IpNet]) -> Result<[u8; 6], std::io::Error> {
    if let Some(IpAddr::V4(v4)) = addresses.iter().map(|a| a.addr()).find(IpAddr::is_ipv4) {
        let o = v4.octets();
        return Ok([0x02, 0x42, o[0], o[1], o[2], o[3]]);
    }
    let mut mac = [0u8; 6];
    getrandom::fill(&mut mac).map_err(std::io::Error::from)?;
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}

/// Now, in RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(Name::parse("network", "n1").is_ok());
        assert!(Name::parse("network", "my_net.v2-x").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(Name::parse("network", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("02:42:ac:11:00").is_err());
        assert!(parse_mac("zz:42:ac:11:00:02").is_err());
        assert!(parse_mac("+2:42:ac:11:00:02").is_err());
        let mac = generate_mac(&["10.0.0.7/24".parse().unwrap()]).unwrap();
        assert_eq!(format_mac(&mac), "02:42:0a:00:00:07");
        let random = generate_mac(&["fd00::7/64".parse().unwrap()]).unwrap();
        assert_eq!(random[0] & 3, 2);
    }

    #[test]
    fn ids() {
        let id = new_id().unwrap();
        assert!(is_full_id(&id));
        assert_ne!(id, new_id().unwrap());
    }

    #[test]
    fn sandboxes_stored_before_dns_responders_keep_their_name_servers() {
        let stored = |extra: &str| -> SandboxRecord {
            serde_json::from_str(&format!(
                r#"{{"id":"a","name":"a","netns":"/x","owned":true,"hostname":"a","dns":["192.0.2.53"],"resolv_conf":"/r","hosts":"/h","endpoints":[],"created":"t"{extra}}}"#
            ))
            .unwrap()
        };
        assert!(stored("").dns_asked, "an old record counts as asked");
        assert!(!stored(r#","dns_asked":false"#).dns_asked);
        let mut sb = stored("");
        sb.dns_asked = false;
        let again: SandboxRecord =
            serde_json::from_str(&serde_json::to_string(&sb).unwrap()).unwrap();
        assert!(
            !again.dns_asked,
            "false survives a round trip through the store"
        );
    }
}
