//! Sockets handed over by a service manager (systemd's socket activation): the
//! `LISTEN_PID`, `LISTEN_FDS` protocol (sd_listen_fds(3)). With them, a daemon's
//! sockets outlive it: while it restarts or is upgraded, the manager keeps listening
//! and requests queue in the backlog instead of failing, so dockerd never finds the
//! plugin gone. Each passed socket is matched to the socket the daemon serves by the
//! path it is bound to (netd and volumed use it).

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// Why passed sockets cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// `LISTEN_FDS` is not a number.
    #[error("LISTEN_FDS={0:?} is not a number of descriptors")]
    Count(String),
    /// A descriptor is not a listening unix stream socket bound to a path.
    #[error("descriptor {fd} is not a listening unix socket bound to a path: {why}")]
    NotUnixListener {
        /// The descriptor.
        fd: RawFd,
        /// What is wrong with it.
        why: String,
    },
    /// A socket the daemon would not serve.
    #[error("a socket was passed for {0}, which is neither the API socket nor the plugin socket; check the socket unit's ListenStream= paths")]
    Unused(PathBuf),
}

/// The listeners passed, by the path each is bound to.
#[derive(Debug, Default)]
pub struct Passed(Vec<(PathBuf, UnixListener)>);

impl Passed {
    /// The listener bound to `path`, if one was passed.
    pub fn take(&mut self, path: &Path) -> Option<UnixListener> {
        let i = self.0.iter().position(|(p, _)| p == path)?;
        Some(self.0.remove(i).1)
    }

    /// Fail if a passed socket is left over: a unit listening on a path the daemon
    /// does not serve would take requests nobody answers.
    pub fn refuse_leftovers(self) -> Result<(), ActivationError> {
        match self.0.into_iter().next() {
            Some((path, _)) => Err(ActivationError::Unused(path)),
            None => Ok(()),
        }
    }
}

/// The sockets passed to this process, if any; the variables are cleared so
/// that nothing the daemon starts inherits them.
pub fn listeners() -> Result<Passed, ActivationError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: called at start-up, before the runtime starts other threads
        // that read the environment.
        unsafe { std::env::remove_var(var) };
    }
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(Passed::default());
    };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        // Meant for another process (a parent that did not clear them).
        return Ok(Passed::default());
    }
    // A count, not a descriptor: unsigned, and small enough to add to 3.
    let last = count
        .parse::<u16>()
        .ok()
        .and_then(|n| FIRST_FD.checked_add(RawFd::from(n)))
        .ok_or_else(|| ActivationError::Count(count.clone()))?;
    let mut out = Vec::new();
    for fd in FIRST_FD..last {
        out.push(listener(fd)?);
    }
    Ok(Passed(out))
}

fn listener(fd: RawFd) -> Result<(PathBuf, UnixListener), ActivationError> {
    use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, UnixAddr};
    let bad = |why: &str| ActivationError::NotUnixListener {
        fd,
        why: why.to_string(),
    };
    // SAFETY: the service manager passed this descriptor to this process to own.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    match getsockopt(&borrowed, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(other) => return Err(bad(&format!("socket type {other:?}"))),
        Err(e) => return Err(bad(&e.to_string())),
    }
    if !getsockopt(&borrowed, sockopt::AcceptConn).map_err(|e| bad(&e.to_string()))? {
        return Err(bad("not listening"));
    }
    let addr: UnixAddr = getsockname(fd).map_err(|e| bad(&e.to_string()))?;
    let path = addr
        .path()
        .map(Path::to_path_buf)
        .ok_or_else(|| bad("not bound to a path"))?;
    let flags =
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).map_err(|e| bad(&e.to_string()))?;
    let mut flags = nix::fcntl::FdFlag::from_bits_truncate(flags);
    flags.insert(nix::fcntl::FdFlag::FD_CLOEXEC);
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags)).map_err(|e| bad(&e.to_string()))?;
    // SAFETY: checked above to be a listening unix stream socket; owned from here.
    Ok((path, unsafe { UnixListener::from_raw_fd(fd) }))
}
