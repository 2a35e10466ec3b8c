//! Serving a router on a unix socket that the engine can discover.

use super::body::TimedBody;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the engine looks for plugin sockets.
pub const DEFAULT_SOCKET_DIR: &str = "/run/docker/plugins";
/// Where the engine looks for `.spec` files.
pub const DEFAULT_SPEC_DIR: &str = "/etc/docker/plugins";

/// Why a plugin socket could not be set up or served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The plugin name cannot be used as a file name.
    #[error("invalid plugin name {0:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit")]
    InvalidName(String),
    /// A live process already answers on the socket path.
    #[error("{0} is in use by another running plugin; stop it or choose another name")]
    InUse(PathBuf),
    /// Something that is not a socket sits where the socket should go.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// The named group does not exist.
    #[error("unknown group {0:?} for the plugin socket")]
    UnknownGroup(String),
    /// A filesystem or socket call failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ServeError + 'a {
    move |source| ServeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Who may connect to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketPermissions {
    /// File mode of the socket; 0600 by default (root only).
    pub mode: u32,
    /// Group owning the socket, if any.
    pub gid: Option<u32>,
}

impl Default for SocketPermissions {
    fn default() -> Self {
        SocketPermissions {
            mode: 0o600,
            gid: None,
        }
    }
}

impl SocketPermissions {
    /// Mode 0660, owned by group `name`.
    pub fn group(name: &str) -> Result<Self, ServeError> {
        let group = nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .ok_or_else(|| ServeError::UnknownGroup(name.to_string()))?;
        Ok(SocketPermissions {
            mode: 0o660,
            gid: Some(group.gid.as_raw()),
        })
    }
}

/// How the engine finds the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Put the socket itself at `<dir>/<name>.sock` (the engine scans `/run/docker/plugins`).
    SocketIn(PathBuf),
    /// Serve on `socket` and write `<spec_dir>/<name>.spec` pointing at it
    /// (the engine reads `/etc/docker/plugins`).
    Spec {
        /// Directory for the `.spec` file.
        spec_dir: PathBuf,
        /// Where the socket goes.
        socket: PathBuf,
    },
}

impl Default for Registration {
    fn default() -> Self {
        Registration::SocketIn(PathBuf::from(DEFAULT_SOCKET_DIR))
    }
}

/// How long a connection may hold the server without sending a request, and
/// how many it may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A connection is closed when a request's head has not arrived this long
    /// after the connection opened or its last answer (idle keep-alive included).
    pub idle: Duration,
    /// A request's body must arrive whole this long after its head (408 if not).
    pub body: Duration,
    /// Connections served at once; more wait in the socket's backlog.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            idle: Duration::from_secs(30),
            body: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Removes the plugin's files when dropped, so an aborted start or a finished
/// serve leaves no stale socket or spec file behind.
#[derive(Debug)]
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A bound, registered plugin socket, ready to serve.
#[derive(Debug)]
pub struct PluginSocket {
    listener: StdUnixListener,
    socket_path: PathBuf,
    cleanup: Cleanup,
    limits: ServeLimits,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Refuse a path a live plugin answers on or that is not a socket; a stale socket is fine.
fn check_replaceable(path: &Path) -> Result<(), ServeError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspecting", path)(e)),
        Ok(meta) if !meta.file_type().is_socket() => Err(ServeError::NotASocket(path.into())),
        Ok(_) => match StdUnixStream::connect(path) {
            Ok(_) => Err(ServeError::InUse(path.into())),
            Err(_) => Ok(()),
        },
    }
}

/// Write `contents` to `path` atomically (temporary file, then rename).
fn write_atomic(path: &Path, contents: &str) -> Result<(), ServeError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("renaming into place", path)(e)
    })
}

impl PluginSocket {
    /// Bind the socket for plugin `name` and register it as `registration` says.
    ///
    /// The socket is bound under a temporary name, given its mode and group, and
    /// only then renamed into place, so it is never reachable with looser
    /// permissions and a stale socket is replaced atomically.
    pub fn bind(
        name: &str,
        registration: &Registration,
        perms: SocketPermissions,
    ) -> Result<Self, ServeError> {
        if !valid_name(name) {
            return Err(ServeError::InvalidName(name.to_string()));
        }
        let (socket_path, spec) = match registration {
            Registration::SocketIn(dir) => (dir.join(format!("{name}.sock")), None),
            Registration::Spec { spec_dir, socket } => {
                (socket.clone(), Some(spec_dir.join(format!("{name}.spec"))))
            }
        };
        let dir = socket_path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
        check_replaceable(&socket_path)?;

        let tmp = dir.join(format!(".{name}.sock.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut cleanup = Cleanup(vec![tmp.clone()]);
        let listener = StdUnixListener::bind(&tmp).map_err(io_err("binding", &tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(perms.mode))
            .map_err(io_err("setting the mode of", &tmp))?;
        if let Some(gid) = perms.gid {
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .map_err(io_err("setting the group of", &tmp))?;
        }
        std::fs::rename(&tmp, &socket_path)
            .map_err(io_err("moving the socket to", &socket_path))?;
        cleanup.0 = vec![socket_path.clone()];

        if let Some(spec) = spec {
            let spec_dir = spec.parent().unwrap_or(Path::new("/"));
            std::fs::create_dir_all(spec_dir).map_err(io_err("creating directory", spec_dir))?;
            write_atomic(&spec, &format!("unix://{}\n", socket_path.display()))?;
            cleanup.0.push(spec);
        }
        listener
            .set_nonblocking(true)
            .map_err(io_err("configuring", &socket_path))?;
        Ok(PluginSocket {
            listener,
            socket_path,
            cleanup,
            limits: ServeLimits::default(),
        })
    }

    /// A socket bound by someone else (systemd's socket activation) at `path`: it
    /// is served as it is and left in place at the end, for its owner to keep
    /// listening while the server restarts.
    pub fn inherited(listener: StdUnixListener, path: PathBuf) -> Result<Self, ServeError> {
        listener
            .set_nonblocking(true)
            .map_err(io_err("configuring", &path))?;
        Ok(PluginSocket {
            listener,
            socket_path: path,
            cleanup: Cleanup(Vec::new()),
            limits: ServeLimits::default(),
        })
    }

    /// Serve with these limits instead of the defaults.
    pub fn with_limits(mut self, limits: ServeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Where the socket is.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// Serve `router` until `shutdown` completes, then finish in-flight calls and
    /// remove the socket (and spec file). Must run inside a tokio runtime.
    ///
    /// Each connection is HTTP/1.1 with keep-alive, closed when idle or slow
    /// beyond the [`ServeLimits`].
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let PluginSocket {
            listener,
            socket_path,
            cleanup,
            limits,
        } = self;
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(io_err("listening on", &socket_path))?;
        tracing::info!(socket = %socket_path.display(), "plugin listening");
        let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let result = loop {
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break Ok(()),
                },
                () = &mut shutdown => break Ok(()),
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // A connection that went away before it was taken, or a
                    // passing lack of descriptors: keep serving the others.
                    Err(e) if transient(&e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(e) => break Err(io_err("accepting on", &socket_path)(e)),
                },
                () = &mut shutdown => break Ok(()),
            };
            let router = router.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let req = req.map(|body| axum::body::Body::new(TimedBody::new(body, limits.body)));
                let mut router = router.clone();
                // A task of its own: a client that goes away mid-call (hyper then
                // drops the connection's futures) must not cut a handler short
                // between its commit and what follows it.
                let call =
                    tokio::spawn(async move { tower::Service::call(&mut router, req).await });
                async move {
                    match call.await {
                        Ok(answer) => answer,
                        // A panic: answered in both error shapes (the plugin
                        // protocol's `Err`, netd's API's `message`).
                        Err(_) => Ok(axum::http::Response::builder()
                            .status(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                            .header(axum::http::header::CONTENT_TYPE, "application/json")
                            .body(axum::body::Body::from(
                                r#"{"Err":"internal error: the handler failed","message":"internal error: the handler failed","kind":"internal"}"#,
                            ))
                            .unwrap_or_default()),
                    }
                }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.idle)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // Errors are the client's (it went away, or timed out): nothing to
                // answer to anyone.
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended");
                }
                drop(slot);
            });
        };
        drop(listener);
        graceful.shutdown().await;
        drop(cleanup);
        result
    }
}

/// Accept errors that concern one connection or pass: not a reason to stop.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc_errno) if [
            nix::errno::Errno::ECONNABORTED as i32,
            nix::errno::Errno::EMFILE as i32,
            nix::errno::Errno::ENFILE as i32,
            nix::errno::Errno::ENOBUFS as i32,
            nix::errno::Errno::ENOMEM as i32,
            nix::errno::Errno::EINTR as i32,
        ]
        .contains(&libc_errno)
    )
}

/// The usual life of a plugin in one call: bind socket `name` as `registration` says,
/// root-only, print where it listens, and serve `router` until SIGTERM or SIGINT.
pub async fn serve_until_signal(
    name: &str,
    registration: &Registration,
    router: Router,
) -> Result<(), ServeError> {
    let socket = PluginSocket::bind(name, registration, SocketPermissions::default())?;
    println!("listening on {}", socket.socket_path().display());
    socket.serve(router, shutdown_signal()).await
}

/// Completes on SIGTERM or SIGINT, for [`PluginSocket::serve`].
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, never shut down on our own.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["netd", "my-plugin.v2", "a_b", "0x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", ".hidden", "a/b", "../up", "a b", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
