//! A responder's sockets: UDP and TCP port 53 on the network's gateway address,
//! bound to its bridge, so only packets that came in through that bridge reach
//! them; and of those, only ones from the network's own subnets are answered.

use super::answer::{answer, failure, Reply};
use super::{Tables, Target};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

/// Queries being relayed to the host's resolvers at once, per network; past
/// that a query gets SERVFAIL at once rather than a task.
const MAX_FORWARDS: usize = 256;
/// TCP connections at once, per network.
const MAX_TCP: usize = 64;
/// A TCP connection with nothing to read, or an answer not taken, this long is
/// closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// No TCP connection lives longer.
const TCP_LIFETIME: Duration = Duration::from_secs(60);

/// What a responder's tasks share.
pub(super) struct Shared {
    pub target: Target,
    tables: Arc<Tables>,
    upstream: Arc<super::Upstream>,
    forwards: Arc<Semaphore>,
}

impl Shared {
    pub(super) fn new(
        target: Target,
        tables: Arc<Tables>,
        upstream: Arc<super::Upstream>,
    ) -> Shared {
        Shared {
            target,
            tables,
            upstream,
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
        }
    }

    /// The answer for `from`: from this network's names, then from those of
    /// the asker's other networks.
    fn decide(&self, query: &[u8], from: &IpAddr, udp: bool) -> Reply {
        let Some(own) = self.tables.get(&self.target.network) else {
            return Reply::Drop;
        };
        let others: Vec<_> = own
            .others(from)
            .iter()
            .filter_map(|n| self.tables.get(n))
            .collect();
        let mut tables = vec![own.as_ref()];
        tables.extend(others.iter().map(|t| t.as_ref()));
        answer(query, &tables, self.target.forward, udp)
    }

    fn accepts(&self, from: &IpAddr) -> bool {
        self.target.subnets.iter().any(|s| s.contains(from)) && !self.target.gateways.contains(from)
    }
}

fn socket(target: &Target, kind: Type, protocol: Protocol) -> std::io::Result<Socket> {
    let addr = SocketAddr::new(target.address, 53);
    let s = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    s.set_reuse_address(true)?;
    // Bound before the bridge has the address (or while IPv6 still checks it).
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        s.set_freebind_v6(true)?;
    } else {
        s.set_freebind_v4(true)?;
    }
    s.bind_device(Some(target.bridge.as_bytes()))?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// The UDP socket of `target`.
pub(super) fn bind_udp(target: &Target) -> std::io::Result<UdpSocket> {
    let s = socket(target, Type::DGRAM, Protocol::UDP)?;
    UdpSocket::from_std(s.into())
}

/// The TCP listener of `target`.
pub(super) fn bind_tcp(target: &Target) -> std::io::Result<TcpListener> {
    let s = socket(target, Type::STREAM, Protocol::TCP)?;
    s.listen(128)?;
    TcpListener::from_std(s.into())
}

/// Answer UDP queries until aborted.
pub(super) async fn serve_udp(sock: UdpSocket, shared: Arc<Shared>) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(network = %shared.target.name, error = %e, "DNS receive");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !shared.accepts(&from.ip()) {
            continue;
        }
        let query = &buf[..n];
        match shared.decide(query, &from.ip(), true) {
            Reply::Local(bytes) => {
                let _ = sock.send_to(&bytes, from).await;
            }
            Reply::Drop => {}
            Reply::Forward => {
                let Ok(permit) = Arc::clone(&shared.forwards).try_acquire_owned() else {
                    if let Some(busy) = failure(query, true) {
                        let _ = sock.send_to(&busy, from).await;
                    }
                    continue;
                };
                let (query, sock, shared) =
                    (query.to_vec(), Arc::clone(&sock), Arc::clone(&shared));
                tokio::spawn(async move {
                    let _permit = permit;
                    let own = shared.target.address;
                    let reply = match shared.upstream.udp(&query, &own).await {
                        Some(reply) => Some(reply),
                        None => failure(&query, true),
                    };
                    if let Some(reply) = reply {
                        let _ = sock.send_to(&reply, from).await;
                    }
                });
            }
        }
    }
}

/// Answer TCP connections until aborted.
pub(super) async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let connections = Arc::new(Semaphore::new(MAX_TCP));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(got) => got,
            Err(e) => {
                tracing::debug!(network = %shared.target.name, error = %e, "DNS accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if !shared.accepts(&from.ip()) {
            continue;
        }
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(TCP_LIFETIME, tcp_connection(stream, from.ip(), &shared))
                .await;
        });
    }
}

async fn tcp_connection(
    mut stream: TcpStream,
    from: IpAddr,
    shared: &Shared,
) -> std::io::Result<()> {
    loop {
        let Ok(len) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return Ok(());
        };
        let mut query = vec![0u8; usize::from(len?)];
        if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
            .await
            .is_err()
        {
            return Ok(());
        }
        let reply = match shared.decide(&query, &from, false) {
            Reply::Local(bytes) => bytes,
            Reply::Drop => return Ok(()),
            Reply::Forward => {
                let own = shared.target.address;
                match shared.upstream.tcp(&query, &own).await {
                    Some(reply) => reply,
                    None => match failure(&query, false) {
                        Some(f) => f,
                        None => return Ok(()),
                    },
                }
            }
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&reply);
        if tokio::time::timeout(TCP_IDLE, stream.write_all(&out))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
}
