//! netd in a cluster: overlay networks across hosts, on etcd.
//!
//! [`Agent`] joins the cluster (a host record under a kept-alive lease), makes
//! or finds an overlay network and claims an address block for it when one is
//! created here, publishes this host's endpoints of overlay networks as peers,
//! and runs one [`program::Program`] per overlay network that keeps the
//! network's VXLAN device programmed with every other host's endpoints.

mod agent;
mod program;
mod status;

pub use agent::{
    cluster_error, cluster_id, is_overlay, Agent, ClusterSettings, OPTION_CLUSTER_ID,
    OPTION_NETWORK,
};
pub use status::{ClusterStatus, KernelMatch, NetworkStatus};

/// The etcd endpoints of `--cluster-store etcd://HOST:PORT[,HOST:PORT...]`, as
/// `http://` (or `https://` with TLS) URLs, or why not.
pub fn parse_cluster_store(text: &str, tls: bool) -> Result<Vec<String>, String> {
    let rest = text.strip_prefix("etcd://").ok_or_else(|| {
        format!("--cluster-store {text:?}: expected etcd://HOST:PORT[,HOST:PORT...]")
    })?;
    let scheme = if tls { "https" } else { "http" };
    rest.split(',')
        .map(|hostport| {
            let ok = hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if ok && !hostport.contains('/') {
                Ok(format!("{scheme}://{hostport}"))
            } else {
                Err(format!(
                    "--cluster-store: {hostport:?} is not HOST:PORT (as in etcd://10.0.0.1:2379)"
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_stores_are_checked() {
        assert_eq!(
            parse_cluster_store("etcd://10.0.0.1:2379,e2:2379", false).unwrap(),
            ["http://10.0.0.1:2379", "http://e2:2379"]
        );
        assert_eq!(
            parse_cluster_store("etcd://[fd00::1]:2379", true).unwrap(),
            ["https://[fd00::1]:2379"]
        );
        for bad in [
            "10.0.0.1:2379",
            "etcd://",
            "etcd://h",
            "etcd://h:0",
            "etcd://h:2379/x",
            "consul://h:1",
        ] {
            assert!(parse_cluster_store(bad, false).is_err(), "{bad}");
        }
    }
}
