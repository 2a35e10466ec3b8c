//! The key layout, under one prefix (`/netd/v1` by default) so that several
//! clusters, or other programs, can share an etcd.

use ipnet::IpNet;
use std::net::IpAddr;

/// The keys of one cluster.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new("/netd/v1")
    }
}

impl Keys {
    /// Keys under `prefix` (no trailing slash needed).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// `PREFIX/hosts/` (every member).
    pub fn hosts(&self) -> String {
        format!("{}/hosts/", self.prefix)
    }

    /// `PREFIX/hosts/HOST`.
    pub fn host(&self, host: &str) -> String {
        format!("{}{host}", self.hosts())
    }

    /// `PREFIX/networks/` (every overlay network).
    pub fn networks(&self) -> String {
        format!("{}/networks/", self.prefix)
    }

    /// `PREFIX/networks/NAME`.
    pub fn network(&self, name: &str) -> String {
        format!("{}{name}", self.networks())
    }

    /// `PREFIX/vnis/VNI`: which network holds a VNI.
    pub fn vni(&self, vni: u32) -> String {
        format!("{}/vnis/{vni}", self.prefix)
    }

    /// `PREFIX/blocks/NETWORK_ID/` (a network's claimed blocks).
    pub fn blocks(&self, network_id: &str) -> String {
        format!("{}/blocks/{network_id}/", self.prefix)
    }

    /// `PREFIX/blocks/NETWORK_ID/ADDR_LEN` (`10.0.0.64_26`: no slash in a key
    /// part, so a prefix scan never crosses into another block).
    pub fn block(&self, network_id: &str, block: &IpNet) -> String {
        format!(
            "{}{}_{}",
            self.blocks(network_id),
            block.network(),
            block.prefix_len()
        )
    }

    /// `PREFIX/cursors/NETWORK_ID`: the block claimed last, after which the
    /// next claim looks first.
    pub fn cursor(&self, network_id: &str) -> String {
        format!("{}/cursors/{network_id}", self.prefix)
    }

    /// `PREFIX/peers/NETWORK_ID/` (a network's endpoints on every host).
    pub fn peers(&self, network_id: &str) -> String {
        format!("{}/peers/{network_id}/", self.prefix)
    }

    /// `PREFIX/peers/NETWORK_ID/IP`.
    pub fn peer(&self, network_id: &str, ip: IpAddr) -> String {
        format!("{}{ip}", self.peers(network_id))
    }
}

/// The key with a prefix's end: the smallest key greater than every key with
/// `prefix` (for range reads and watches).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_cross_a_part() {
        let k = Keys::new("/netd/v1/");
        assert_eq!(k.host("h1"), "/netd/v1/hosts/h1");
        let b: IpNet = "10.0.0.64/26".parse().unwrap();
        assert_eq!(k.block("n1", &b), "/netd/v1/blocks/n1/10.0.0.64_26");
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
    }
}
