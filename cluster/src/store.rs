//! The cluster's shared state in etcd: networks, VNIs, blocks, peers, hosts.
//! Every change that must not race is one transaction.

use crate::blocks::{blocks_of, default_block_prefix};
use crate::keys::prefix_end;
use crate::{BlockClaim, ClusterError, HostRecord, Keys, OverlayRequest, OverlaySpec, PeerRecord};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp,
};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The first VNI handed out (as Docker's overlay: the ones below are left to
/// hand-made VXLANs).
pub const FIRST_VNI: u32 = 4096;
/// The last valid VNI (24 bits).
pub const LAST_VNI: u32 = (1 << 24) - 1;

/// TLS to etcd.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// The CA that signed etcd's certificate.
    pub ca: Option<PathBuf>,
    /// This host's client certificate and key (when etcd asks for one).
    pub cert: Option<PathBuf>,
    /// The key of `cert`.
    pub key: Option<PathBuf>,
}

/// How to reach the cluster store.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// etcd endpoints (`http://10.0.0.1:2379`, or `https://` with TLS).
    pub endpoints: Vec<String>,
    /// The key prefix.
    pub keys: Keys,
    /// TLS, for `https://` endpoints.
    pub tls: Option<Tls>,
    /// How long one request may take before it is reported as unreachable.
    pub timeout: Duration,
}

impl ClusterOptions {
    /// Plain endpoints, the default prefix and a 3 s timeout.
    pub fn new(endpoints: Vec<String>) -> ClusterOptions {
        ClusterOptions {
            endpoints,
            keys: Keys::default(),
            tls: None,
            timeout: Duration::from_secs(3),
        }
    }
}

/// A connection to the cluster store. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    keys: Keys,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("keys", &self.keys).finish()
    }
}

fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|e| ClusterError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        why: e.to_string(),
    })
}

fn encode(value: &impl Serialize) -> Vec<u8> {
    // The records are plain structs of strings, numbers and maps of strings.
    serde_json::to_vec(value).unwrap_or_default()
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, ClusterError> {
    std::fs::read(path)
        .map_err(|e| ClusterError::Invalid(format!("reading {}: {e}", path.display())))
}

fn random_id() -> Result<String, ClusterError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ClusterError::Invalid(format!("making a network id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// How a block claim is written.
#[derive(Debug, Clone, Copy)]
enum BlockPut {
    /// A free block, claimed anew: the network's cursor moves to it.
    New,
    /// A block claimed again, as it was at this revision (0: free).
    Again(i64),
}

impl Cluster {
    /// Connect. etcd need not be up: calls made while it is away fail with
    /// [`ClusterError::Unreachable`] after the timeout.
    pub async fn connect(opts: &ClusterOptions) -> Result<Cluster, ClusterError> {
        if opts.endpoints.is_empty() {
            return Err(ClusterError::Invalid(
                "no etcd endpoint given (--cluster-store etcd://HOST:PORT)".into(),
            ));
        }
        let mut connect = ConnectOptions::new()
            .with_timeout(opts.timeout)
            .with_connect_timeout(opts.timeout)
            .with_keep_alive(Duration::from_secs(5), opts.timeout);
        if let Some(tls) = &opts.tls {
            let mut t = TlsOptions::new();
            if let Some(ca) = &tls.ca {
                t = t.ca_certificate(Certificate::from_pem(read_file(ca)?));
            }
            match (&tls.cert, &tls.key) {
                (Some(cert), Some(key)) => {
                    t = t.identity(Identity::from_pem(read_file(cert)?, read_file(key)?));
                }
                (None, None) => {}
                _ => {
                    return Err(ClusterError::Invalid(
                        "an etcd client certificate needs its key, and a key its certificate"
                            .into(),
                    ))
                }
            }
            connect = connect.with_tls(t);
        }
        let client = Client::connect(&opts.endpoints, Some(connect))
            .await
            .map_err(ClusterError::etcd(format!(
                "connecting to {}",
                opts.endpoints.join(",")
            )))?;
        Ok(Cluster {
            client,
            keys: opts.keys.clone(),
        })
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// Every record under `prefix`, and the store's revision they were read at.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
        doing: &str,
    ) -> Result<(Vec<T>, i64), ClusterError> {
        let resp = self
            .client()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(ClusterError::etcd(doing))?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        // A record netd cannot read (written by hand, or by another version) is
        // skipped, not allowed to stop every listing and watch.
        let items = resp
            .kvs()
            .iter()
            .filter_map(|kv| match decode(kv.key(), kv.value()) {
                Ok(item) => Some(item),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a record netd cannot read");
                    None
                }
            })
            .collect();
        Ok((items, revision))
    }

    async fn get_one<T: DeserializeOwned>(
        &self,
        key: &str,
        doing: &str,
    ) -> Result<Option<(T, i64)>, ClusterError> {
        let resp = self
            .client()
            .get(key, None)
            .await
            .map_err(ClusterError::etcd(doing))?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some((decode(kv.key(), kv.value())?, kv.mod_revision()))),
            None => Ok(None),
        }
    }

    /// Every member host.
    pub async fn hosts(&self) -> Result<Vec<HostRecord>, ClusterError> {
        Ok(self.list(&self.keys.hosts(), "listing hosts").await?.0)
    }

    /// Overlay network `name`, if the cluster has it.
    pub async fn network(&self, name: &str) -> Result<Option<OverlaySpec>, ClusterError> {
        let doing = format!("reading overlay network {name}");
        Ok(self
            .get_one(&self.keys.network(name), &doing)
            .await?
            .map(|(spec, _)| spec))
    }

    /// Every overlay network.
    pub async fn networks(&self) -> Result<Vec<OverlaySpec>, ClusterError> {
        Ok(self
            .list(&self.keys.networks(), "listing overlay networks")
            .await?
            .0)
    }

    /// The overlay network `req` names: made (with a free VNI) if the cluster
    /// has none of that name, or the one it has if the settings agree; else a
    /// conflict naming the differences.
    pub async fn ensure_network(
        &self,
        req: &OverlayRequest,
        host: &str,
    ) -> Result<OverlaySpec, ClusterError> {
        check_request(req)?;
        let doing = format!("making overlay network {}", req.name);
        let net_key = self.keys.network(&req.name);
        for _ in 0..16 {
            if let Some((spec, _)) = self.get_one::<OverlaySpec>(&net_key, &doing).await? {
                return spec.matches(req).map(|()| spec.clone()).map_err(|diff| {
                    ClusterError::Conflict(format!(
                        "overlay network {} exists in the cluster with other settings: asked for {diff}",
                        req.name
                    ))
                });
            }
            let vni = match req.vni {
                Some(v) => v,
                None => self.free_vni(&doing).await?,
            };
            let spec = OverlaySpec {
                name: req.name.clone(),
                id: random_id()?,
                vni,
                subnet: req.subnet.trunc(),
                gateway: req.gateway.unwrap_or_else(|| first_host(&req.subnet)),
                block_prefix: default_block_prefix(&req.subnet),
                options: req.options.clone(),
                mtu: req.mtu,
                created_by: host.to_string(),
            };
            let vni_key = self.keys.vni(vni);
            let txn = Txn::new()
                .when([
                    Compare::create_revision(net_key.as_str(), CompareOp::Equal, 0),
                    Compare::create_revision(vni_key.as_str(), CompareOp::Equal, 0),
                ])
                .and_then([
                    TxnOp::put(net_key.as_str(), encode(&spec), None),
                    TxnOp::put(vni_key.as_str(), req.name.as_bytes(), None),
                ]);
            let resp = self
                .client()
                .txn(txn)
                .await
                .map_err(ClusterError::etcd(doing.as_str()))?;
            if resp.succeeded() {
                return Ok(spec);
            }
            // The name (then it is read above) or the VNI was taken meanwhile.
            if req.vni.is_some() && self.network(&req.name).await?.is_none() {
                return Err(ClusterError::Conflict(format!(
                    "VNI {vni} is used by another overlay network"
                )));
            }
        }
        Err(ClusterError::Conflict(format!(
            "{doing}: other hosts kept taking the VNIs picked; try again"
        )))
    }

    async fn free_vni(&self, doing: &str) -> Result<u32, ClusterError> {
        let prefix = self.keys.vni(0);
        let prefix = prefix.trim_end_matches('0');
        let resp = self
            .client()
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .map_err(ClusterError::etcd(doing))?;
        let used: std::collections::BTreeSet<u32> = resp
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(prefix)?.parse().ok())
            .collect();
        (FIRST_VNI..=LAST_VNI)
            .find(|v| !used.contains(v))
            .ok_or_else(|| ClusterError::Conflict("every VNI is in use".into()))
    }

    /// Remove overlay network `name` from the cluster, with its blocks and peers;
    /// refused while a host holds a block of it. `Ok(false)`: there was none.
    pub async fn remove_network(&self, name: &str) -> Result<bool, ClusterError> {
        let doing = format!("removing overlay network {name}");
        let net_key = self.keys.network(name);
        let Some((spec, revision)) = self.get_one::<OverlaySpec>(&net_key, &doing).await? else {
            return Ok(false);
        };
        let holders: std::collections::BTreeSet<String> = self
            .blocks(&spec.id)
            .await?
            .into_iter()
            .map(|b| b.host)
            .collect();
        if !holders.is_empty() {
            return Err(ClusterError::Conflict(format!(
                "overlay network {name} is still used by hosts {}",
                holders.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        let blocks = self.keys.blocks(&spec.id);
        let peers = self.keys.peers(&spec.id);
        // Within the transaction: the network unchanged and no block held (a
        // claim that came after the read above makes it fail, not vanish).
        let txn = Txn::new()
            .when([
                Compare::mod_revision(net_key.as_str(), CompareOp::Equal, revision),
                Compare::create_revision(blocks.as_str(), CompareOp::Equal, 0)
                    .with_range(prefix_end(&blocks)),
            ])
            .and_then([
                TxnOp::delete(net_key.as_str(), None),
                TxnOp::delete(self.keys.vni(spec.vni), None),
                TxnOp::delete(self.keys.cursor(&spec.id), None),
                TxnOp::delete(
                    blocks.as_str(),
                    Some(etcd_client::DeleteOptions::new().with_range(prefix_end(&blocks))),
                ),
                TxnOp::delete(
                    peers.as_str(),
                    Some(etcd_client::DeleteOptions::new().with_range(prefix_end(&peers))),
                ),
            ]);
        let resp = self
            .client()
            .txn(txn)
            .await
            .map_err(ClusterError::etcd(doing.as_str()))?;
        if !resp.succeeded() {
            return Err(ClusterError::Conflict(format!(
                "{doing}: it changed meanwhile; try again"
            )));
        }
        Ok(true)
    }

    /// The blocks of network `network_id` that hosts hold.
    pub async fn blocks(&self, network_id: &str) -> Result<Vec<BlockClaim>, ClusterError> {
        Ok(self
            .list(&self.keys.blocks(network_id), "listing address blocks")
            .await?
            .0)
    }

    /// Claim a free block of `spec`'s subnet for `host`, bound to `lease`.
    ///
    /// The search starts after the block claimed last (kept in the network's
    /// cursor), so a block freed by a lapsed lease is handed out again only
    /// once the others were: its old holder's containers may still use its
    /// addresses while that host is cut off.
    pub async fn claim_block(
        &self,
        spec: &OverlaySpec,
        host: &str,
        lease: i64,
    ) -> Result<IpNet, ClusterError> {
        let doing = format!("claiming an address block of {}", spec.name);
        for _ in 0..16 {
            let taken: std::collections::BTreeSet<IpNet> = self
                .blocks(&spec.id)
                .await?
                .into_iter()
                .map(|b| b.block)
                .collect();
            let cursor: Option<IpNet> = self
                .get_one::<IpNet>(&self.keys.cursor(&spec.id), &doing)
                .await?
                .map(|(b, _)| b);
            let all: Vec<IpNet> = blocks_of(&spec.subnet, spec.block_prefix).collect();
            let start = cursor
                .and_then(|c| all.iter().position(|b| *b == c))
                .map_or(0, |i| i + 1);
            let Some(block) = all[start..]
                .iter()
                .chain(&all[..start])
                .copied()
                .find(|b| !taken.contains(b))
            else {
                return Err(ClusterError::Conflict(format!(
                    "overlay network {}: every address block of {} is held by a host",
                    spec.name, spec.subnet
                )));
            };
            if self
                .put_block(spec, block, (host, lease), BlockPut::New, &doing)
                .await?
            {
                return Ok(block);
            }
        }
        Err(ClusterError::Conflict(format!(
            "{doing}: other hosts kept taking the blocks picked; try again"
        )))
    }

    /// Claim `block` again for `host` under `lease` (after a restart or a new
    /// lease): taken if free or already `host`'s; a conflict if another host
    /// holds it.
    pub async fn reclaim_block(
        &self,
        spec: &OverlaySpec,
        block: IpNet,
        host: &str,
        lease: i64,
    ) -> Result<(), ClusterError> {
        let doing = format!("claiming address block {block} of {} again", spec.name);
        let key = self.keys.block(&spec.id, &block);
        for _ in 0..4 {
            let revision = match self.get_one::<BlockClaim>(&key, &doing).await? {
                None => 0,
                Some((claim, rev)) if claim.host == host => rev,
                Some((claim, _)) => {
                    return Err(ClusterError::Conflict(format!(
                        "address block {block} of {} is held by host {} now",
                        spec.name, claim.host
                    )))
                }
            };
            if self
                .put_block(
                    spec,
                    block,
                    (host, lease),
                    BlockPut::Again(revision),
                    &doing,
                )
                .await?
            {
                return Ok(());
            }
        }
        Err(ClusterError::Conflict(format!("{doing}: it kept changing")))
    }

    async fn put_block(
        &self,
        spec: &OverlaySpec,
        block: IpNet,
        (host, lease): (&str, i64),
        how: BlockPut,
        doing: &str,
    ) -> Result<bool, ClusterError> {
        let (revision, move_cursor) = match how {
            BlockPut::New => (0, true),
            BlockPut::Again(revision) => (revision, false),
        };
        let key = self.keys.block(&spec.id, &block);
        let net_key = self.keys.network(&spec.name);
        let claim = BlockClaim {
            block,
            host: host.to_string(),
        };
        let mut ops = vec![TxnOp::put(
            key.as_str(),
            encode(&claim),
            Some(PutOptions::new().with_lease(lease)),
        )];
        if move_cursor {
            ops.push(TxnOp::put(self.keys.cursor(&spec.id), encode(&block), None));
        }
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key.as_str(), CompareOp::Equal, revision),
                Compare::version(net_key.as_str(), CompareOp::Greater, 0),
            ])
            .and_then(ops);
        let resp = self
            .client()
            .txn(txn)
            .await
            .map_err(ClusterError::etcd(doing))?;
        if !resp.succeeded() && self.network(&spec.name).await?.is_none() {
            return Err(ClusterError::Conflict(format!(
                "overlay network {} was removed from the cluster",
                spec.name
            )));
        }
        Ok(resp.succeeded())
    }

    /// Give back `block` if `host` holds it.
    pub async fn release_block(
        &self,
        spec: &OverlaySpec,
        block: IpNet,
        host: &str,
    ) -> Result<(), ClusterError> {
        let key = self.keys.block(&spec.id, &block);
        let claim = BlockClaim {
            block,
            host: host.to_string(),
        };
        let txn = Txn::new()
            .when([Compare::value(
                key.as_str(),
                CompareOp::Equal,
                encode(&claim),
            )])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        self.client()
            .txn(txn)
            .await
            .map_err(ClusterError::etcd(format!(
                "releasing address block {block}"
            )))?;
        Ok(())
    }

    /// Publish an endpoint, bound to its host's `lease`: refused if another
    /// host publishes that address (two hosts must never both claim one).
    pub async fn put_peer(
        &self,
        network_id: &str,
        peer: &PeerRecord,
        lease: i64,
    ) -> Result<(), ClusterError> {
        let key = self.keys.peer(network_id, peer.ip);
        let doing = format!("publishing endpoint {}", peer.ip);
        for _ in 0..4 {
            let revision = match self.get_one::<PeerRecord>(&key, &doing).await? {
                None => 0,
                Some((old, rev)) if old.host == peer.host => rev,
                Some((old, _)) => {
                    return Err(ClusterError::Conflict(format!(
                        "address {} is published by host {} already",
                        peer.ip, old.host
                    )))
                }
            };
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    revision,
                )])
                .and_then([TxnOp::put(
                    key.as_str(),
                    encode(peer),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            let resp = self
                .client()
                .txn(txn)
                .await
                .map_err(ClusterError::etcd(doing.as_str()))?;
            if resp.succeeded() {
                return Ok(());
            }
        }
        Err(ClusterError::Conflict(format!("{doing}: it kept changing")))
    }

    /// Withdraw endpoint `ip` if `host` published it.
    pub async fn delete_peer(
        &self,
        network_id: &str,
        ip: IpAddr,
        host: &str,
    ) -> Result<(), ClusterError> {
        let key = self.keys.peer(network_id, ip);
        let doing = format!("withdrawing endpoint {ip}");
        let Some((peer, revision)) = self.get_one::<PeerRecord>(&key, &doing).await? else {
            return Ok(());
        };
        if peer.host != host {
            return Ok(());
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                revision,
            )])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        self.client()
            .txn(txn)
            .await
            .map_err(ClusterError::etcd(doing))?;
        Ok(())
    }

    /// Every endpoint of network `network_id`, and the revision they were read at.
    pub async fn peers(&self, network_id: &str) -> Result<(Vec<PeerRecord>, i64), ClusterError> {
        self.list(&self.keys.peers(network_id), "listing peers")
            .await
    }
}

fn first_host(subnet: &IpNet) -> IpAddr {
    subnet.hosts().next().unwrap_or(subnet.network())
}

fn check_request(req: &OverlayRequest) -> Result<(), ClusterError> {
    let name_ok = !req.name.is_empty()
        && req.name.len() <= 128
        && req
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !name_ok {
        return Err(ClusterError::Invalid(format!(
            "overlay network name {:?}: use letters, digits, '_', '.' and '-' (at most 128)",
            req.name
        )));
    }
    if let Some(v) = req.vni {
        if !(1..=LAST_VNI).contains(&v) {
            return Err(ClusterError::Invalid(format!(
                "VNI {v}: a VNI is between 1 and {LAST_VNI}"
            )));
        }
    }
    if let Some(g) = req.gateway {
        if !req.subnet.contains(&g) {
            return Err(ClusterError::Invalid(format!(
                "gateway {g} is not in subnet {}",
                req.subnet
            )));
        }
    }
    Ok(())
}
