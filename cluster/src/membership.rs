//! A host's membership: its record under a lease it keeps alive. When the lease
//! lapses (the host was cut off past its TTL), etcd deletes the record and every
//! block and peer bound to the lease, and the other hosts see them go; when the
//! host is back it joins under a new lease, and whoever holds this membership
//! sees the lease change and publishes again what it has.

use crate::{Cluster, ClusterError, HostRecord};
use etcd_client::{LeaseTimeToLiveOptions, PutOptions};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where a membership stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipState {
    /// Joined, under this lease, renewed at the last try.
    Joined {
        /// The lease.
        lease: i64,
    },
    /// etcd did not answer the last renewal; the lease may still be alive.
    Unreachable {
        /// The lease held before.
        lease: i64,
    },
}

impl MembershipState {
    /// The lease.
    pub fn lease(&self) -> i64 {
        match self {
            MembershipState::Joined { lease } | MembershipState::Unreachable { lease } => *lease,
        }
    }
}

/// A joined host. Dropping it stops renewing (the lease then lapses after its
/// TTL); [`Membership::leave`] gives it up at once.
pub struct Membership {
    cluster: Cluster,
    state: watch::Receiver<MembershipState>,
    task: JoinHandle<()>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn lease_alive(cluster: &Cluster, lease: i64) -> Result<bool, ClusterError> {
    let resp = cluster
        .client()
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new()))
        .await
        .map_err(ClusterError::etcd("reading the host's lease"))?;
    Ok(resp.ttl() > 0)
}

async fn grant_and_register(
    cluster: &Cluster,
    record: &HostRecord,
    ttl: Duration,
    previous: Option<i64>,
) -> Result<i64, ClusterError> {
    let lease = match previous {
        Some(l) if lease_alive(cluster, l).await? => l,
        _ => cluster
            .client()
            .lease_grant(ttl.as_secs().max(2) as i64, None)
            .await
            .map_err(ClusterError::etcd("taking a lease for this host"))?
            .id(),
    };
    cluster
        .client()
        .put(
            cluster.keys().host(&record.host),
            serde_json::to_vec(record).unwrap_or_default(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(ClusterError::etcd("registering this host"))?;
    Ok(lease)
}

/// One renewal: the lease's remaining TTL (0 or less: it lapsed).
async fn renew(cluster: &Cluster, lease: i64) -> Result<i64, ClusterError> {
    let doing = "renewing the host's lease";
    let (mut keeper, mut stream) = cluster
        .client()
        .lease_keep_alive(lease)
        .await
        .map_err(ClusterError::etcd(doing))?;
    keeper
        .keep_alive()
        .await
        .map_err(ClusterError::etcd(doing))?;
    match stream.message().await.map_err(ClusterError::etcd(doing))? {
        Some(resp) => Ok(resp.ttl()),
        None => Ok(0),
    }
}

impl Membership {
    /// Join the cluster as `record`, under a lease of `ttl` (the `previous` one
    /// if it is still alive: a restarted netd keeps its blocks and peers).
    pub async fn join(
        cluster: Cluster,
        record: HostRecord,
        ttl: Duration,
        previous: Option<i64>,
    ) -> Result<Membership, ClusterError> {
        let lease = grant_and_register(&cluster, &record, ttl, previous).await?;
        let (tx, state) = watch::channel(MembershipState::Joined { lease });
        let keeper = cluster.clone();
        let every = (ttl / 3).max(Duration::from_millis(500));
        let task = tokio::spawn(async move {
            let mut lease = lease;
            loop {
                tokio::time::sleep(every).await;
                // A renewal that fails may mean etcd is away, or that the lease
                // is gone (etcd answers a keep-alive of an expired lease with an
                // error on some versions): ask which.
                let left = match renew(&keeper, lease).await {
                    Ok(left) => Ok(left),
                    Err(e) => match lease_alive(&keeper, lease).await {
                        Ok(true) => Ok(1),
                        Ok(false) => Ok(0),
                        Err(_) => Err(e),
                    },
                };
                let next = match left {
                    Ok(left) if left > 0 => MembershipState::Joined { lease },
                    Ok(_) => {
                        tracing::warn!(lease, "this host's lease lapsed: joining again");
                        match grant_and_register(&keeper, &record, ttl, None).await {
                            Ok(new) => {
                                lease = new;
                                MembershipState::Joined { lease }
                            }
                            Err(_) => MembershipState::Unreachable { lease },
                        }
                    }
                    Err(_) => MembershipState::Unreachable { lease },
                };
                if let (MembershipState::Unreachable { .. }, MembershipState::Joined { .. }) =
                    (next, *tx.borrow())
                {
                    tracing::warn!(
                        lease,
                        "the cluster store does not answer: this host's lease may lapse"
                    );
                }
                tx.send_if_modified(|s| {
                    let changed = *s != next;
                    *s = next;
                    changed
                });
            }
        });
        Ok(Membership {
            cluster,
            state,
            task,
        })
    }

    /// The lease held now.
    pub fn lease(&self) -> i64 {
        self.state.borrow().lease()
    }

    /// The state, to wait on changes (a new lease after a lapse means what
    /// this host published is gone and must be published again).
    pub fn watch(&self) -> watch::Receiver<MembershipState> {
        self.state.clone()
    }

    /// Leave now: the lease is revoked, and with it this host's record, blocks
    /// and peers.
    pub async fn leave(self) -> Result<(), ClusterError> {
        self.task.abort();
        let lease = self.lease();
        self.cluster
            .client()
            .lease_revoke(lease)
            .await
            .map_err(ClusterError::etcd("leaving the cluster"))?;
        Ok(())
    }
}
