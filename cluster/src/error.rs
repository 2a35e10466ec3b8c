//! The cluster's errors: what was being done, and whether etcd was away.

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd did not answer (down, or this host cut off): running containers are
    /// unaffected; the change goes through once etcd is back.
    #[error("{doing}: the cluster store (etcd) is unreachable: {source}")]
    Unreachable {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: etcd_client::Error,
    },
    /// This host has not joined the cluster (etcd was unreachable when it tried).
    #[error("{0}")]
    NotJoined(String),
    /// etcd answered and refused (permissions, a lease gone, a limit).
    #[error("{0}")]
    Refused(String),
    /// The request clashes with what the cluster holds.
    #[error("{0}")]
    Conflict(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// A record in etcd that is not what netd writes.
    #[error("cluster key {key}: {why}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong with it.
        why: String,
    },
}

impl ClusterError {
    pub(crate) fn etcd(doing: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> Self {
        let doing = doing.into();
        move |source| {
            // etcd answered, and refused: not the same as etcd being away.
            if let etcd_client::Error::GRpcStatus(status) = &source {
                use tonic::Code::*;
                if !matches!(
                    status.code(),
                    Unavailable | DeadlineExceeded | Cancelled | Unknown
                ) {
                    return ClusterError::Refused(format!(
                        "{doing}: etcd refused: {}",
                        status.message()
                    ));
                }
            }
            ClusterError::Unreachable { doing, source }
        }
    }

    /// Whether etcd was away (the operation may be tried again).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClusterError::Unreachable { .. } | ClusterError::NotJoined(_)
        )
    }
}
