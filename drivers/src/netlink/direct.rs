//! Requests on a plain netlink socket, several in one `sendmsg`, answers read
//! back at once.
//!
//! The kernel handles a route-netlink request inside the sender's `sendmsg`: when it
//! returns, every answer is already queued on the socket. So a batch costs one
//! `sendmsg` and a `recvmsg` or two that never wait, on the calling thread. The async
//! connection instead hands each request to its own task and each answer back
//! through a channel, a few task wake-ups per request, one request per wake-up;
//! on the attach path that was most of netd's netlink time.
//!
//! Called from async code only for requests the kernel finishes quickly (link
//! creation, addresses, routes, lookups). Link deletion waits for RCU inside
//! `sendmsg`, so it goes out from a blocking thread, on a socket of its own (see the
//! parent module).

use super::NetlinkError;
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::{TimeVal, TimeValLike};
use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How long an exchange waits for an answer the kernel should already have queued;
/// reached only if something is badly wrong, and then the request fails.
const ANSWER_TIMEOUT_SECS: i64 = 10;

/// Room for one answer datagram.
const ANSWER_BUFFER: usize = 32 * 1024;

/// `MSG_TRUNC`: `recv` then tells the datagram's full length, so a cut-short one
/// is noticed.
fn msg_trunc() -> i32 {
    nix::sys::socket::MsgFlags::MSG_TRUNC.bits()
}

/// One request of a batch.
#[derive(Debug)]
pub(crate) struct Request {
    message: RouteNetlinkMessage,
    flags: u16,
    /// What was asked, for the error.
    what: String,
    /// An error answer that counts as success (`EEXIST` for "make sure it exists").
    tolerated: Option<Errno>,
}

impl Request {
    /// A request with these header flags (`NLM_F_REQUEST | NLM_F_ACK` are added).
    pub(crate) fn new(message: RouteNetlinkMessage, flags: u16, what: impl Into<String>) -> Self {
        Request {
            message,
            flags,
            what: what.into(),
            tolerated: None,
        }
    }

    /// Count the kernel's `errno` answer as success.
    pub(crate) fn tolerating(mut self, errno: Errno) -> Self {
        self.tolerated = Some(errno);
        self
    }
}

/// A netlink socket bound to the namespace of the thread that opened it.
#[derive(Debug)]
pub(crate) struct DirectSocket {
    socket: Socket,
    /// The sequence number of the last request sent; answers to older ones (from
    /// an exchange that gave up) are skipped.
    sequence: u32,
    /// Where answers are read into, kept between exchanges.
    answers: Vec<u8>,
}

impl DirectSocket {
    /// A socket in the calling thread's namespace.
    pub(crate) fn open() -> Result<DirectSocket, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        socket.bind_auto().map_err(NetlinkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        // Error answers without the request echoed back.
        socket.set_cap_ack(true).map_err(NetlinkError::Socket)?;
        setsockopt(
            &socket,
            ReceiveTimeout,
            &TimeVal::seconds(ANSWER_TIMEOUT_SECS),
        )
        .map_err(|e| NetlinkError::Socket(e.into()))?;
        Ok(DirectSocket {
            socket,
            sequence: 0,
            answers: Vec::with_capacity(ANSWER_BUFFER),
        })
    }

    /// Send `requests` in one `sendmsg` and read every answer. Returns the messages
    /// the kernel answered with besides acknowledgements (a lookup's link), in order;
    /// fails with the first request the kernel refused. The kernel carries on past a
    /// refused request, so the caller undoes what the others did.
    pub(crate) fn exchange(
        &mut self,
        requests: Vec<Request>,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let first = self.sequence.wrapping_add(1);
        let mut buffer = Vec::new();
        let mut whats = Vec::with_capacity(requests.len());
        for request in requests {
            self.sequence = self.sequence.wrapping_add(1);
            let mut header = NetlinkHeader::default();
            header.flags = request.flags | NLM_F_REQUEST | NLM_F_ACK;
            header.sequence_number = self.sequence;
            let mut msg =
                NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request.message));
            msg.finalize();
            let start = buffer.len();
            buffer.resize(start + msg.buffer_len(), 0);
            msg.serialize(&mut buffer[start..]);
            whats.push((request.what, request.tolerated));
        }
        let fail = |what: &str, source: std::io::Error| NetlinkError::Request {
            what: what.to_string(),
            source,
        };
        // What an I/O failure is reported as: every request of the batch.
        let all = || {
            whats
                .iter()
                .map(|(w, _)| w.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.socket.send(&buffer, 0).map_err(|e| fail(&all(), e))?;
        let mut answered = 0;
        let mut refused: Option<NetlinkError> = None;
        let mut replies = Vec::new();
        let mut data = std::mem::take(&mut self.answers);
        while answered < whats.len() {
            // One datagram per call (no peek first): answers to these requests
            // are a few KiB at most.
            data.clear();
            // (A no-op but after an exchange that failed half-way and lost it.)
            data.reserve(ANSWER_BUFFER);
            let len = self
                .socket
                .recv(&mut data, msg_trunc())
                .map_err(|e| fail(&all(), e))?;
            if len > data.len() {
                return Err(fail(
                    &all(),
                    std::io::Error::other(format!("an answer of {len} bytes was cut short")),
                ));
            }
            let mut offset = 0;
            while offset < data.len() {
                let answer = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| fail(&all(), std::io::Error::other(e.to_string())))?;
                let len = answer.header.length as usize;
                let index = answer.header.sequence_number.wrapping_sub(first) as usize;
                if let Some((what, tolerated)) = whats.get(index) {
                    match answer.payload {
                        NetlinkPayload::Error(err) => {
                            answered += 1;
                            if let Some(code) = err.code {
                                let errno = -code.get();
                                let ok = tolerated.is_some_and(|t| t as i32 == errno);
                                if !ok && refused.is_none() {
                                    refused =
                                        Some(fail(what, std::io::Error::from_raw_os_error(errno)));
                                }
                            }
                        }
                        // The end of a dump (which the kernel does not acknowledge).
                        NetlinkPayload::Done(done) => {
                            answered += 1;
                            if done.code < 0 && refused.is_none() {
                                refused =
                                    Some(fail(what, std::io::Error::from_raw_os_error(-done.code)));
                            }
                        }
                        NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
        self.answers = data;
        match refused {
            Some(e) => Err(e),
            None => Ok(replies),
        }
    }
}

/// The direct sockets of one namespace.
#[derive(Debug)]
pub(crate) enum Sockets {
    /// The process's namespace, which every thread is in: sockets are opened as
    /// needed and kept for reuse, so concurrent callers never wait on each other.
    Pool(Mutex<Vec<DirectSocket>>),
    /// Another namespace: one socket, opened by a thread inside it. Its callers
    /// (joins to one sandbox) are serialised by netd already.
    Kept(Mutex<DirectSocket>),
}

// `SIOCGSKNS` (linux/sockios.h): a descriptor of the socket's network namespace.
nix::ioctl_none_bad!(siocgskns, 0x894C);

impl Sockets {
    /// A descriptor of the namespace these sockets are in.
    pub(crate) fn namespace(&self) -> Result<std::os::fd::OwnedFd, NetlinkError> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let ask = |socket: &DirectSocket| {
            // SAFETY: the ioctl takes no argument and returns a new descriptor,
            // which is owned from here.
            unsafe { siocgskns(socket.socket.as_raw_fd()) }
                .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
                .map_err(|e| NetlinkError::Socket(e.into()))
        };
        match self {
            Sockets::Kept(socket) => ask(&lock(socket)),
            Sockets::Pool(_) => ask(&DirectSocket::open()?),
        }
    }
}

/// A lock whose holder panicked is still usable: a socket has no invariant to break.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sockets {
    /// Run one batch; see [`DirectSocket::exchange`].
    pub(crate) fn exchange(
        &self,
        requests: Vec<Request>,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        match self {
            Sockets::Kept(socket) => lock(socket).exchange(requests),
            Sockets::Pool(idle) => {
                let reused = lock(idle).pop();
                let mut socket = match reused {
                    Some(s) => s,
                    None => DirectSocket::open()?,
                };
                let result = socket.exchange(requests);
                lock(idle).push(socket);
                result
            }
        }
    }
}
