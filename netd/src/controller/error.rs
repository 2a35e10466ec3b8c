//! The controller's errors. Each says what was being done to which object; the
//! native API and the Docker face turn [`ErrorKind`] into their status codes.

use crate::store::StoreError;
use drivers::netns::NetnsError;
use drivers::DriverError;

pub use native_api::ErrorKind;

/// Why a controller operation failed. Whatever it made before failing is undone.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// No such object.
    #[error("no {kind} {key:?}")]
    NotFound {
        /// `network`, `endpoint` or `sandbox`.
        kind: &'static str,
        /// What was asked for.
        key: String,
    },
    /// Clashes with current state.
    #[error("{0}")]
    Conflict(String),
    /// The address allocator refused.
    #[error("{doing}")]
    Ipam {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: ipam::IpamError,
    },
    /// A driver refused or failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A namespace could not be made, checked or removed.
    #[error("{doing}")]
    Netns {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: NetnsError,
    },
    /// The store failed; the operation was not acknowledged and is undone.
    #[error("saving state")]
    Store(#[from] StoreError),
    /// A file (resolv.conf, hosts) could not be written.
    #[error("{doing} {path}")]
    Io {
        /// What was being done.
        doing: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The firewall (nft, a host port) failed; nothing was changed.
    #[error("firewall: {0}")]
    Firewall(String),
    /// The cluster store is away: a change that needs it fails, and goes
    /// through once it is back.
    #[error("{0}")]
    Unavailable(String),
    /// A teardown went on past failures and reports them all; what failed is
    /// still there.
    #[error("{0}")]
    Incomplete(String),
}

impl ControllerError {
    /// How to read it.
    pub fn kind(&self) -> ErrorKind {
        use ipam::IpamError as I;
        match self {
            ControllerError::Invalid(_) => ErrorKind::Invalid,
            ControllerError::NotFound { .. } => ErrorKind::NotFound,
            ControllerError::Conflict(_) => ErrorKind::Conflict,
            ControllerError::Ipam { source, .. } => match source {
                I::Overlap { .. }
                | I::InUse { .. }
                | I::Exhausted { .. }
                | I::NoFreePool { .. } => ErrorKind::Conflict,
                I::Journal(_) => ErrorKind::Internal,
                _ => ErrorKind::Invalid,
            },
            ControllerError::Driver(DriverError::Invalid { .. }) => ErrorKind::Invalid,
            _ => ErrorKind::Internal,
        }
    }

    /// The message with its causes, `: `-joined, for answers and logs.
    pub fn full_message(&self) -> String {
        plugin_api::PluginError::from_error(self)
            .message()
            .to_string()
    }

    pub(crate) fn ipam(doing: impl Into<String>) -> impl FnOnce(ipam::IpamError) -> Self {
        let doing = doing.into();
        move |source| ControllerError::Ipam { doing, source }
    }

    pub(crate) fn netns(doing: impl Into<String>) -> impl FnOnce(NetnsError) -> Self {
        let doing = doing.into();
        move |source| ControllerError::Netns { doing, source }
    }

    pub(crate) fn not_found(kind: &'static str, key: &str) -> Self {
        ControllerError::NotFound {
            kind,
            key: key.to_string(),
        }
    }
}
