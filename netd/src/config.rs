//! The daemon's configuration: a TOML file (`--config`), each value overridable by
//! a flag. Every key is optional.
//!
//! ```toml
//! state_dir = "/var/lib/netd"          # the store
//! run_dir = "/run/netd"                # namespaces, sandbox files, the API socket
//! plugin_dir = "/run/docker/plugins"   # where dockerd finds netd.sock
//! socket = "/run/netd/netd.sock"       # the native API
//! host_id = "..."                      # seeds the IPv6 ULA prefix; /etc/machine-id by default
//! dns = ["192.0.2.53"]                 # sandboxes' fallback name servers
//! resolv_conf = "/etc/resolv.conf"     # the host's resolvers (sandboxes', DNS responders' upstream)
//! default_address_pools = [{ base = "172.24.0.0/14", size = 24 }]
//! default_address_pools_v6 = [{ base = "fd00:1::/48", size = 64 }]
//! idle_timeout = 30                    # seconds; idle connections and slow bodies
//! firewall = true                      # netd's nftables firewall (false: no rules, no ports)
//! cluster_store = "etcd://10.0.0.1:2379"   # overlay networks across hosts (docs/overlay.md)
//! advertise_addr = "10.0.0.11"         # this host's underlay address (its VTEP)
//! vxlan_port = 4789
//! cluster_lease_ttl = 15               # seconds before a silent host is dropped
//! etcd_ca = "/etc/netd/etcd-ca.pem"    # TLS to etcd (with etcd_cert and etcd_key)
//! ```

use ipam::DefaultPool;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The store's directory.
    pub state_dir: Option<PathBuf>,
    /// Runtime directory.
    pub run_dir: Option<PathBuf>,
    /// Where the Docker plugin socket goes.
    pub plugin_dir: Option<PathBuf>,
    /// The native API socket.
    pub socket: Option<PathBuf>,
    /// The plugin's name (the socket file's stem).
    pub plugin_name: Option<String>,
    /// The host id.
    pub host_id: Option<String>,
    /// Fallback name servers.
    pub dns: Option<Vec<IpAddr>>,
    /// The host's resolv.conf.
    pub resolv_conf: Option<PathBuf>,
    /// Local IPv4 default pools.
    pub default_address_pools: Option<Vec<DefaultPool>>,
    /// Local IPv6 default pools.
    pub default_address_pools_v6: Option<Vec<DefaultPool>>,
    /// Seconds a connection may stay idle, and a request body may take.
    pub idle_timeout: Option<u64>,
    /// Run the firewall.
    pub firewall: Option<bool>,
    /// etcd endpoints (`etcd://HOST:PORT[,...]`).
    pub cluster_store: Option<String>,
    /// This host's underlay address.
    pub advertise_addr: Option<IpAddr>,
    /// The VXLAN port.
    pub vxlan_port: Option<u16>,
    /// Seconds before a silent host is dropped.
    pub cluster_lease_ttl: Option<u64>,
    /// etcd's CA.
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd.
    pub etcd_cert: Option<PathBuf>,
    /// Its key.
    pub etcd_key: Option<PathBuf>,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A default pool is not usable.
    #[error("config: {0}")]
    Pool(#[from] ipam::IpamError),
}

impl FileConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse `text` (read from `path`).
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        let config: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })?;
        for pool in config
            .default_address_pools
            .iter()
            .chain(config.default_address_pools_v6.iter())
            .flatten()
        {
            pool.validate()?;
        }
        Ok(config)
    }

    /// The allocator's configuration for host `host_id`.
    pub fn ipam(&self, host_id: &str) -> ipam::Config {
        let mut config = ipam::Config::defaults(host_id);
        if let Some(p) = &self.default_address_pools {
            config.local_v4 = p.clone();
        }
        if let Some(p) = &self.default_address_pools_v6 {
            config.local_v6 = p.clone();
        }
        config
    }
}

/// The host's id: /etc/machine-id, or the host name.
pub fn default_host_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "netd".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let p = Path::new("netd.toml");
        let c = FileConfig::parse(
            p,
            "state_dir = \"/tmp/s\"\ndefault_address_pools = [{ base = \"10.10.0.0/16\", size = 24 }]\n",
        )
        .unwrap();
        assert_eq!(c.state_dir.as_deref(), Some(Path::new("/tmp/s")));
        assert_eq!(c.ipam("h").local_v4[0].base.to_string(), "10.10.0.0/16");
        let err = FileConfig::parse(p, "stat_dir = \"/x\"\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `stat_dir`"),
            "{err}"
        );
        let err = FileConfig::parse(
            p,
            "default_address_pools = [{ base = \"10.10.0.0/16\", size = 8 }]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("default pool"), "{err}");
    }

    #[test]
    fn the_overlay_walk_through_config_parses() {
        // The file docs/overlay.md's three-host set-up installs.
        let c = FileConfig::parse(
            Path::new("netd.toml"),
            "cluster_store = \"etcd://10.0.0.11:2379,10.0.0.12:2379,10.0.0.13:2379\"\n\
             advertise_addr = \"10.0.0.11\"\n\
             vxlan_port = 4789\n\
             cluster_lease_ttl = 15\n",
        )
        .unwrap();
        assert_eq!(c.advertise_addr, Some("10.0.0.11".parse().unwrap()));
        assert_eq!(c.vxlan_port, Some(4789));
        assert_eq!(
            crate::overlay::parse_cluster_store(c.cluster_store.as_deref().unwrap(), false)
                .unwrap()
                .len(),
            3
        );
    }
}
