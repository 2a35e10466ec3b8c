//! Host ports: each published port is bound by netd (a socket that never accepts
//! and drops whatever reaches it), so a port another program holds is a clear error
//! and no program can take it while it is published. Traffic itself goes by DNAT.

use crate::spec::{PortRequest, Proto, PublishedPort};
use crate::FirewallError;
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// errno values a bind refuses with when the request, not the host, is at fault
/// (a link-local address without a scope, SCTP without its module, IPv6 off).
mod nix_errno {
    pub const EINVAL: i32 = 22;
    pub const EPROTONOSUPPORT: i32 = 93;
    pub const EAFNOSUPPORT: i32 = 97;
}

/// The sockets holding one endpoint's host ports; closed on drop.
#[derive(Debug, Default)]
pub struct Reservation {
    sockets: Vec<Socket>,
}

impl Reservation {
    /// Hold these too.
    pub fn extend(&mut self, other: Reservation) {
        self.sockets.extend(other.sockets);
    }
}

/// How many times "let netd pick" tries a port the kernel offered for one family
/// that another family has taken.
const PICK_ATTEMPTS: usize = 32;

/// Which (host address, container address) pairs `req` publishes for an endpoint
/// with `addresses`; `default_host` is the network's `host_binding_ipv4`.
fn targets(
    req: &PortRequest,
    addresses: &[IpAddr],
    default_host: Option<Ipv4Addr>,
) -> Result<Vec<(Option<IpAddr>, IpAddr)>, FirewallError> {
    let v4 = addresses.iter().find(|a| a.is_ipv4()).copied();
    let v6 = addresses.iter().find(|a| a.is_ipv6()).copied();
    let host = req.host_ip.or(default_host.map(IpAddr::V4));
    let what = || format!("port {}/{}", req.container_port, req.proto);
    match host {
        Some(ip) if ip.is_unspecified() => {
            let c = if ip.is_ipv4() { v4 } else { v6 };
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            c.map(|c| vec![(None, c)]).ok_or_else(|| {
                FirewallError::invalid(what(), format!("the endpoint has no {family} address"))
            })
        }
        Some(ip) => {
            let c = if ip.is_ipv4() { v4 } else { v6 };
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            c.map(|c| vec![(Some(ip), c)]).ok_or_else(|| {
                FirewallError::invalid(
                    what(),
                    format!(
                        "host address {ip} is {family} and the endpoint has no {family} address"
                    ),
                )
            })
        }
        None => {
            let out: Vec<_> = [v4, v6].into_iter().flatten().map(|c| (None, c)).collect();
            if out.is_empty() {
                return Err(FirewallError::invalid(
                    what(),
                    "the endpoint has no address",
                ));
            }
            Ok(out)
        }
    }
}

fn socket_for(proto: Proto, addr: &SocketAddr) -> std::io::Result<Socket> {
    let domain = Domain::for_address(*addr);
    let socket = match proto {
        Proto::Tcp => Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?,
        Proto::Udp => Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?,
        Proto::Sctp => Socket::new(domain, Type::STREAM, Some(Protocol::from(132)))?,
    };
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // A filter that keeps nothing: whatever reaches the socket (DNAT takes the
    // traffic before it would) is dropped, never queued.
    socket.attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])?;
    socket.bind(&SockAddr::from(*addr))?;
    Ok(socket)
}

fn bind_all(
    proto: Proto,
    targets: &[(Option<IpAddr>, IpAddr)],
    port: u16,
) -> Result<(Vec<Socket>, u16), std::io::Error> {
    let mut sockets = Vec::new();
    let mut port = port;
    for (host, container) in targets {
        let ip = host.unwrap_or(match container {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let socket = socket_for(proto, &SocketAddr::new(ip, port))?;
        if port == 0 {
            port = socket
                .local_addr()?
                .as_socket()
                .map(|a| a.port())
                .unwrap_or(0);
        }
        sockets.push(socket);
    }
    Ok((sockets, port))
}

fn bind_error(req: &PortRequest, port: u16, e: std::io::Error) -> FirewallError {
    let what = format!("host port {port}/{}", req.proto);
    match e.kind() {
        ErrorKind::AddrInUse => {
            FirewallError::PortTaken(format!("{what} is in use by another program"))
        }
        _ if matches!(
            e.raw_os_error(),
            Some(code) if code == nix_errno::EINVAL || code == nix_errno::EPROTONOSUPPORT || code == nix_errno::EAFNOSUPPORT
        ) =>
        {
            FirewallError::invalid(what, format!("this host cannot bind it: {e}"))
        }
        ErrorKind::AddrNotAvailable => FirewallError::invalid(
            what,
            format!(
                "{} is not an address of this host",
                req.host_ip.map(|i| i.to_string()).unwrap_or_default()
            ),
        ),
        _ => FirewallError::Io {
            doing: format!("binding {what}"),
            source: e,
        },
    }
}

/// Bind what `req` asks for and say which ports were published.
pub fn reserve(
    req: &PortRequest,
    addresses: &[IpAddr],
    default_host: Option<Ipv4Addr>,
) -> Result<(Vec<PublishedPort>, Reservation), FirewallError> {
    req.check()?;
    let targets = targets(req, addresses, default_host)?;
    let published = |port: u16| {
        targets
            .iter()
            .map(|(host, container)| PublishedPort {
                proto: req.proto,
                host_ip: *host,
                host_port: port,
                container_ip: *container,
                container_port: req.container_port,
                held_by_caller: req.held_by_caller,
            })
            .collect()
    };
    if req.held_by_caller {
        if req.host_port == 0 || req.host_port_end.is_some() {
            return Err(FirewallError::invalid(
                "port",
                "a port its caller holds needs one fixed host port",
            ));
        }
        return Ok((published(req.host_port), Reservation::default()));
    }
    let candidates: Vec<u16> = match (req.host_port, req.host_port_end) {
        (0, _) => vec![0; PICK_ATTEMPTS],
        (start, Some(end)) => (start..=end).collect(),
        (port, None) => vec![port],
    };
    let mut last = None;
    for port in candidates {
        match bind_all(req.proto, &targets, port) {
            Ok((sockets, port)) => return Ok((published(port), Reservation { sockets })),
            Err(e) if e.kind() == ErrorKind::AddrInUse => last = Some((port, e)),
            Err(e) => return Err(bind_error(req, port, e)),
        }
    }
    match (req.host_port, req.host_port_end, last) {
        (start, Some(end), _) => Err(FirewallError::PortTaken(format!(
            "no host port from {start} to {end}/{} is free",
            req.proto
        ))),
        (_, None, Some((port, e))) => Err(bind_error(req, port, e)),
        _ => Err(FirewallError::PortTaken("no free host port".into())),
    }
}

/// Whether a program listens on `p`'s host port (a TCP socket in LISTEN, or a
/// bound UDP socket), from /proc/net: such a port was taken, not merely busy.
pub fn listened_on(p: &PublishedPort) -> bool {
    let (files, state) = match p.proto {
        Proto::Udp => (["udp", "udp6"], "07"),
        _ => (["tcp", "tcp6"], "0A"),
    };
    let port = format!("{:04X}", p.host_port);
    files.iter().any(|f| {
        std::fs::read_to_string(format!("/proc/net/{f}"))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                cols.len() > 3
                    && cols[1].rsplit(':').next() == Some(port.as_str())
                    && cols[3] == state
            })
    })
}

/// Whether `a` and `b` publish one host port: the same protocol and port, on
/// the same address or on every address of the family.
pub fn same_host_port(a: &PublishedPort, b: &PublishedPort) -> bool {
    let family = |p: &PublishedPort| p.container_ip.is_ipv4();
    a.proto == b.proto
        && a.host_port == b.host_port
        && family(a) == family(b)
        && match (a.host_ip, b.host_ip) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

/// Bind ports published before (at a restart), but those their caller holds.
pub fn rebind(ports: &[PublishedPort]) -> Result<Reservation, FirewallError> {
    let mut sockets = Vec::new();
    for p in ports.iter().filter(|p| !p.held_by_caller) {
        let targets = [(p.host_ip, p.container_ip)];
        let (mut s, _) = bind_all(p.proto, &targets, p.host_port).map_err(|e| {
            let req = PortRequest {
                proto: p.proto,
                host_ip: p.host_ip,
                host_port: p.host_port,
                host_port_end: None,
                container_port: p.container_port,
                held_by_caller: p.held_by_caller,
            };
            bind_error(&req, p.host_port, e)
        })?;
        sockets.append(&mut s);
    }
    Ok(Reservation { sockets })
}
