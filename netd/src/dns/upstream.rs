//! Queries for names no network holds, relayed as they came to the host's
//! resolvers (netd runs in the host's namespace, so a loopback resolver such
//! as systemd-resolved's 127.0.0.53 is reachable from here, unlike from a
//! container).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one resolver gets before the next is asked.
const PER_SERVER: Duration = Duration::from_secs(2);
/// resolv.conf is looked at again at most this often.
const RECHECK: Duration = Duration::from_secs(1);
/// As libc: the first three name servers count.
const MAX_SERVERS: usize = 3;

#[derive(Debug)]
struct Cached {
    checked: Instant,
    modified: Option<SystemTime>,
    servers: Vec<SocketAddr>,
}

/// The host's resolvers, from its resolv.conf, read again when it changes.
#[derive(Debug)]
pub struct Upstream {
    resolv_conf: PathBuf,
    cached: Mutex<Option<Cached>>,
}

impl Upstream {
    /// Resolvers from `resolv_conf`.
    pub fn new(resolv_conf: PathBuf) -> Upstream {
        Upstream {
            resolv_conf,
            cached: Mutex::new(None),
        }
    }

    /// The name servers now, except `own` (a responder never asks itself).
    pub fn servers(&self, own: &IpAddr) -> Vec<SocketAddr> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = cached
            .as_ref()
            .is_some_and(|c| c.checked.elapsed() < RECHECK);
        if !fresh {
            let modified = std::fs::metadata(&self.resolv_conf)
                .and_then(|m| m.modified())
                .ok();
            if cached.as_ref().is_none_or(|c| c.modified != modified) {
                let servers = crate::files::all_name_servers(&self.resolv_conf)
                    .into_iter()
                    .take(MAX_SERVERS)
                    .map(|ip| SocketAddr::new(ip, 53))
                    .collect();
                *cached = Some(Cached {
                    checked: Instant::now(),
                    modified,
                    servers,
                });
            } else if let Some(c) = cached.as_mut() {
                c.checked = Instant::now();
            }
        }
        cached
            .as_ref()
            .map(|c| {
                c.servers
                    .iter()
                    .filter(|s| s.ip() != *own)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first answer of the resolvers, asked in turn, to `query` over UDP.
    pub async fn udp(&self, query: &[u8], own: &IpAddr) -> Option<Vec<u8>> {
        for server in self.servers(own) {
            match tokio::time::timeout(PER_SERVER, udp_exchange(server, query)).await {
                Ok(Ok(answer)) => return Some(answer),
                Ok(Err(e)) => tracing::debug!(%server, error = %e, "resolver"),
                Err(_) => tracing::debug!(%server, "resolver did not answer in time"),
            }
        }
        None
    }

    /// The same over TCP (a client that got a truncated answer asks this way).
    pub async fn tcp(&self, query: &[u8], own: &IpAddr) -> Option<Vec<u8>> {
        for server in self.servers(own) {
            match tokio::time::timeout(PER_SERVER, tcp_exchange(server, query)).await {
                Ok(Ok(answer)) => return Some(answer),
                Ok(Err(e)) => tracing::debug!(%server, error = %e, "resolver over TCP"),
                Err(_) => tracing::debug!(%server, "resolver over TCP did not answer in time"),
            }
        }
        None
    }
}

async fn udp_exchange(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let any: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(any).await?;
    sock.connect(server).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        // A connected socket hears only the server; still, only the answer to
        // this query's id counts.
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0u8; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}
