//! volumed inside a test host (its own network and mount namespaces): start,
//! kill, restart, and ask the kernel what is mounted there.

#![allow(dead_code)]

use hyper::Method;
use std::path::PathBuf;
use std::time::Duration;
use tests::{Daemon, TestHost};
use volumed::client::{Client, ClientError};
use volumed::model::VolumeRecord;

/// A test host with volumed running inside.
pub struct Volumed {
    pub host: TestHost,
    pub daemon: Option<Daemon>,
    pub client: Client,
    docker: bool,
    /// More `volumed daemon` arguments.
    extra: Vec<String>,
}

impl Volumed {
    /// volumed with its native API only.
    pub fn start() -> Volumed {
        Self::start_with(false)
    }

    /// volumed serving the Docker plugin socket too.
    pub fn start_with_docker() -> Volumed {
        Self::start_with(true)
    }

    fn start_with(docker: bool) -> Volumed {
        Self::start_with_args(docker, |_| Vec::new())
    }

    /// volumed with more daemon arguments, made from the host's directory.
    pub fn start_with_args(
        docker: bool,
        extra: impl FnOnce(&std::path::Path) -> Vec<String>,
    ) -> Volumed {
        let host = TestHost::new().expect("test host");
        let client = Client::new(host.dir().join("volumed.sock"));
        let extra = extra(host.dir());
        let mut v = Volumed {
            host,
            daemon: None,
            client,
            docker,
            extra,
        };
        v.launch();
        v
    }

    /// The data root (the same path inside and outside the host).
    pub fn data_root(&self) -> PathBuf {
        self.host.dir().join("data")
    }

    /// Start the daemon (again) and wait for its sockets.
    pub fn launch(&mut self) {
        self.daemon = Some(self.start_daemon());
    }

    /// Start a daemon and wait for its sockets, leaving `self.daemon` as it is
    /// (for a test that holds a borrow of the host, such as a running dockerd).
    pub fn start_daemon(&self) -> Daemon {
        let dir = self.host.dir().to_path_buf();
        let socket = dir.join("volumed.sock");
        let state = dir.join("state").display().to_string();
        let data = self.data_root().display().to_string();
        let socket_arg = socket.display().to_string();
        let mut args = vec![
            "--socket",
            socket_arg.as_str(),
            "daemon",
            "--state-dir",
            state.as_str(),
            "--data-root",
            data.as_str(),
        ];
        if !self.docker {
            args.push("--no-docker");
        }
        args.extend(self.extra.iter().map(String::as_str));
        let ready = if self.docker {
            self.host.plugin_dir().join("volumed.sock")
        } else {
            socket.clone()
        };
        let daemon = self
            .host
            .spawn_plugin_at("volumed", &ready, env!("CARGO_BIN_EXE_volumed"), &args)
            .expect("volumed starts");
        let mut daemon = daemon;
        tests::wait_for("volumed's API", Duration::from_secs(20), || {
            daemon.check_running()?;
            Ok(std::os::unix::net::UnixStream::connect(&socket)
                .is_ok()
                .then_some(()))
        })
        .expect("volumed API");
        daemon
    }

    /// kill -9.
    pub fn kill_9(&mut self) {
        let mut d = self.daemon.take().expect("running");
        d.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        d.wait_exit(Duration::from_secs(5)).unwrap();
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(|d| d.log()).unwrap_or_default()
    }

    /// Whether something is mounted on `path` in the host's mount namespace.
    pub fn mounted(&self, path: &std::path::Path) -> bool {
        self.host
            .run(
                "findmnt",
                &["-rn", "-o", "TARGET", &path.display().to_string()],
            )
            .map(|out| !out.trim().is_empty())
            .unwrap_or(false)
    }

    /// Run the volumed CLI against this daemon; stdout, or stderr as the error.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_volumed"))
            .arg("--socket")
            .arg(self.host.dir().join("volumed.sock"))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The API's calls, typed.
pub trait Calls {
    fn create(&self, body: serde_json::Value) -> Result<VolumeRecord, ClientError>;
    fn volume(&self, name: &str) -> Result<VolumeRecord, ClientError>;
    fn mount(&self, name: &str, id: &str) -> Result<VolumeRecord, ClientError>;
    fn unmount(&self, name: &str, id: &str) -> Result<VolumeRecord, ClientError>;
    fn remove(&self, name: &str) -> Result<VolumeRecord, ClientError>;
}

impl Calls for Client {
    fn create(&self, body: serde_json::Value) -> Result<VolumeRecord, ClientError> {
        runtime().block_on(self.call(Method::POST, "/v1/volumes", Some(&body)))
    }
    fn volume(&self, name: &str) -> Result<VolumeRecord, ClientError> {
        runtime().block_on(self.call(Method::GET, &format!("/v1/volumes/{name}"), None::<&()>))
    }
    fn mount(&self, name: &str, id: &str) -> Result<VolumeRecord, ClientError> {
        let body = serde_json::json!({ "id": id });
        runtime().block_on(self.call(
            Method::POST,
            &format!("/v1/volumes/{name}/mount"),
            Some(&body),
        ))
    }
    fn unmount(&self, name: &str, id: &str) -> Result<VolumeRecord, ClientError> {
        let body = serde_json::json!({ "id": id });
        runtime().block_on(self.call(
            Method::POST,
            &format!("/v1/volumes/{name}/unmount"),
            Some(&body),
        ))
    }
    fn remove(&self, name: &str) -> Result<VolumeRecord, ClientError> {
        runtime().block_on(self.call(Method::DELETE, &format!("/v1/volumes/{name}"), None::<&()>))
    }
}
