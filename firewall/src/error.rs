//! What can go wrong, in words a person can act on.

/// A firewall error.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A request or option the firewall cannot honour as given.
    #[error("{what}: {why}")]
    Invalid {
        /// The option or field.
        what: String,
        /// Why, and what would do.
        why: String,
    },
    /// A host port is taken, or none in a range is free.
    #[error("{0}")]
    PortTaken(String),
    /// `nft` could not be run at all.
    #[error("running nft (install nftables, or start netd with --firewall off): {0}")]
    NftMissing(std::io::Error),
    /// `nft` refused a transaction.
    #[error("nft refused {doing}: {stderr}")]
    Nft {
        /// What netd was doing.
        doing: String,
        /// What nft printed.
        stderr: String,
    },
    /// `iptables` refused a change to DOCKER-USER.
    #[error("{doing}: {stderr}")]
    Iptables {
        /// The command.
        doing: String,
        /// What it printed.
        stderr: String,
    },
    /// A system call failed.
    #[error("{doing}: {source}")]
    Io {
        /// What netd was doing.
        doing: String,
        /// The error.
        source: std::io::Error,
    },
}

impl FirewallError {
    pub(crate) fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        FirewallError::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }
}
