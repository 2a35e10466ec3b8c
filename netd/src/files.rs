//! The resolv.conf and hosts files netd writes for each sandbox, for the runtime to
//! bind-mount into the container.
//!
//! Files are rewritten in place, not replaced by rename: a bind mount holds the
//! inode, so a renamed-over file would never be seen inside the container.

use ipnet::IpNet;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

/// Docker's name servers when the host has only local ones (which a container's
/// own namespace cannot reach).
pub const FALLBACK_DNS: [IpAddr; 2] = [
    IpAddr::V4(std::net::Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V4(std::net::Ipv4Addr::new(8, 8, 4, 4)),
];

/// The host's resolv.conf split into name servers and the other lines worth
/// copying (`search`, `options`).
struct HostResolv {
    servers: Vec<IpAddr>,
    other: Vec<String>,
}

fn read_host(path: &Path) -> HostResolv {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut servers = Vec::new();
    let mut other = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(addr) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                    servers.push(addr);
                }
            }
            Some("search") | Some("options") | Some("domain") => {
                other.push(line.trim().to_string())
            }
            _ => {}
        }
    }
    HostResolv { servers, other }
}

/// Every name server of the host's resolv.conf, loopback ones too (netd's DNS
/// responders, in the host's namespace, reach those).
pub fn all_name_servers(path: &Path) -> Vec<IpAddr> {
    read_host(path).servers
}

/// The host's name servers that a container can reach (not loopback).
pub fn host_name_servers(path: &Path) -> Vec<IpAddr> {
    read_host(path)
        .servers
        .into_iter()
        .filter(|a| !a.is_loopback())
        .collect()
}

/// The name servers a sandbox gets: those asked for, else the host's reachable
/// ones, else `fallback`.
pub fn sandbox_name_servers(asked: &[IpAddr], host: &Path, fallback: &[IpAddr]) -> Vec<IpAddr> {
    if !asked.is_empty() {
        return asked.to_vec();
    }
    let host = host_name_servers(host);
    if host.is_empty() {
        fallback.to_vec()
    } else {
        host
    }
}

/// resolv.conf text.
pub fn resolv_conf(servers: &[IpAddr], host: &Path) -> String {
    let mut out = String::from("# written by netd\n");
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    for line in read_host(host).other {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// hosts text: loopback names, then each address of the sandbox under its host name.
pub fn hosts(hostname: &str, addresses: &[IpNet]) -> String {
    let mut out = String::from(
        "# written by netd\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    for a in addresses {
        out.push_str(&format!("{}\t{hostname}\n", a.addr()));
    }
    out
}

/// Write `text` into `path` in place (containers bind-mount the file, so it is
/// never replaced), unless it holds exactly that already (most restarts leave
/// the files as they are). Not synced: these files live in the run dir, are
/// derived from the store, and are rewritten when netd starts.
pub fn write_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    overwrite(path, text)
}

/// Write `text` into `path` in place without reading it first (a join or leave
/// always changes the hosts file). Overwrite, then cut: cheaper than truncating
/// to nothing first, which makes the filesystem free and reallocate the block.
pub fn overwrite(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.set_len(text.len() as u64)
}

/// Whether `name` is a valid host name (RFC 1123 labels).
pub fn valid_hostname(name: &str) -> bool {
    (1..=253).contains(&name.len())
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_and_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("resolv.conf");
        std::fs::write(
            &host,
            "nameserver 127.0.0.53\nsearch example.org\noptions edns0\n",
        )
        .unwrap();
        assert!(host_name_servers(&host).is_empty());
        let servers = sandbox_name_servers(&[], &host, &FALLBACK_DNS);
        assert_eq!(servers, FALLBACK_DNS.to_vec());
        let text = resolv_conf(&servers, &host);
        assert!(text.contains("nameserver 8.8.8.8\n"), "{text}");
        assert!(text.contains("search example.org\n"), "{text}");
        std::fs::write(&host, "nameserver 10.0.0.2\n").unwrap();
        assert_eq!(
            host_name_servers(&host),
            vec!["10.0.0.2".parse::<IpAddr>().unwrap()]
        );
        let h = hosts("web", &["10.1.0.5/24".parse().unwrap()]);
        assert!(h.contains("10.1.0.5\tweb\n"), "{h}");
        assert!(valid_hostname("web-1.example"));
        assert!(!valid_hostname("-web"));
        assert!(!valid_hostname("a_b"));
    }
}
