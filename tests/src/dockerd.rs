//! A stock dockerd (Debian's docker.io) running inside a [`TestHost`], with its own
//! data-root, exec-root, pidfile, API socket and cgroup parent, so tests touch nothing
//! of the machine's and can run side by side.

use crate::host::TestHost;
use crate::image::busybox_rootfs_tar;
use crate::names::unique_name;
use crate::process::{output, Daemon};
use crate::reap::remove_cgroup;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long dockerd may take to answer its API after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A private dockerd. Dropping it removes its containers, stops it and removes its
/// cgroups; the [`TestHost`] it runs in removes the rest.
///
/// Start the plugins a test uses before dockerd, so that they are dropped after it:
/// dockerd calls them while removing containers and retries for a long time when
/// they are gone.
#[derive(Debug)]
pub struct Dockerd<'h> {
    host: &'h TestHost,
    daemon: Option<Daemon>,
    dir: PathBuf,
    socket: PathBuf,
    cgroup: String,
    cli: PathBuf,
}

/// Debian's client matches Debian's daemon; any other `docker` on PATH will do.
fn docker_cli() -> PathBuf {
    let debian = Path::new("/usr/bin/docker");
    if debian.exists() {
        debian.to_path_buf()
    } else {
        PathBuf::from("docker")
    }
}

impl<'h> Dockerd<'h> {
    /// Start dockerd in `host`, wait until its API answers, and import the `busybox`
    /// image.
    pub fn start(host: &'h TestHost) -> Result<Dockerd<'h>> {
        Self::start_with(host, false)
    }

    /// As [`Dockerd::start`], with dockerd's own iptables rules on (its default
    /// outside tests): FORWARD policy drop, DOCKER-USER, NAT for its own bridges;
    /// all inside the host's namespace.
    pub fn start_with_iptables(host: &'h TestHost) -> Result<Dockerd<'h>> {
        Self::start_with(host, true)
    }

    fn start_with(host: &'h TestHost, iptables: bool) -> Result<Dockerd<'h>> {
        if !Path::new("/etc/docker").is_dir() {
            bail!("/etc/docker is missing: install Debian's docker.io");
        }
        let dir = host.dir().join("docker");
        std::fs::create_dir_all(dir.join("client"))?;
        let mut docker = Dockerd {
            host,
            daemon: None,
            socket: dir.join("docker.sock"),
            cgroup: unique_name(),
            cli: docker_cli(),
            dir,
        };
        let d = docker.dir.display();
        let args = [
            format!("--data-root={d}/data"),
            format!("--exec-root={d}/exec"),
            format!("--pidfile={d}/dockerd.pid"),
            format!("--host=unix://{}", docker.socket.display()),
            format!("--cgroup-parent=/{}", docker.cgroup),
            format!("--iptables={iptables}"),
            "--ip6tables=false".into(),
            format!("--ip-forward={iptables}"),
            format!("--ip-masq={iptables}"),
            "--bridge=none".into(),
            "--shutdown-timeout=2".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker.daemon = Some(host.spawn("dockerd", "dockerd", &args)?);
        docker.wait_ready()?;
        docker.import_busybox()?;
        Ok(docker)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let what = format!("dockerd to answer on {}", self.socket.display());
        crate::wait_for(&what, READY_TIMEOUT, || {
            if let Some(d) = self.daemon.as_mut() {
                d.check_running()?;
            }
            let ok = self
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            Ok(ok.then_some(()))
        })
        .with_context(|| format!("dockerd log:\n{}", self.log()))
    }

    fn import_busybox(&self) -> Result<()> {
        let tar = busybox_rootfs_tar(&self.dir)?;
        self.run(&[
            "import",
            "--change",
            r#"CMD ["sh"]"#,
            &tar.display().to_string(),
            "busybox:latest",
        ])?;
        std::fs::remove_file(tar)?;
        Ok(())
    }

    /// The host dockerd runs in.
    pub fn host(&self) -> &TestHost {
        self.host
    }

    /// The API socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A `docker` client command aimed at this daemon (no arguments yet). It runs
    /// outside the host: it only needs the API socket.
    pub fn docker(&self) -> Command {
        self.client(&self.cli)
    }

    /// A `docker-compose` command aimed at this daemon (no arguments yet).
    pub fn compose(&self) -> Command {
        self.client(Path::new("docker-compose"))
    }

    fn client(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY");
        cmd
    }

    /// Run `docker args...`; its stdout, or an error with its stderr.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        output(self.docker().args(args))
    }

    /// Run `docker args...` expecting it to fail; the error it printed.
    pub fn run_err(&self, args: &[&str]) -> Result<String> {
        let out = self
            .docker()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running docker {args:?}"))?;
        if out.status.success() {
            bail!(
                "docker {args:?} succeeded but was expected to fail; it printed {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Run `docker args...` and parse its stdout as JSON (for `inspect`, `--format json`).
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let text = self.run(args)?;
        serde_json::from_str(&text).with_context(|| format!("docker {args:?} printed {text}"))
    }

    /// Start a busybox container `name` on `network` that sleeps until removed.
    pub fn run_sleeper(&self, name: &str, network: &str) -> Result<String> {
        self.run(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "busybox",
            "sleep",
            "1000",
        ])
    }

    /// The address the engine reports for container `name` on `network`.
    pub fn container_ip(&self, name: &str, network: &str) -> Result<String> {
        let format = format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}");
        Ok(self
            .run(&["inspect", "--format", &format, name])?
            .trim()
            .to_string())
    }

    /// What dockerd has logged.
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(Daemon::log).unwrap_or_default()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// The cgroup its containers are placed under.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup
    }

    fn remove_containers(&self) {
        let Ok(ids) = self.run(&["ps", "-aq"]) else {
            return;
        };
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.run(&args);
        }
    }
}

impl Drop for Dockerd<'_> {
    fn drop(&mut self) {
        if self.daemon.as_mut().is_some_and(Daemon::is_running) {
            self.remove_containers();
        }
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop(Duration::from_secs(20));
        }
        remove_cgroup(&self.cgroup);
    }
}
