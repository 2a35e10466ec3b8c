//! Debian's etcd in a test host: a one-member cluster store with its data in
//! the host's directory, listening on the host's loopback (or any address
//! given), stopped and started again at will.

use crate::{Daemon, TestHost};
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// etcd running in a test host.
pub struct Etcd<'h> {
    host: &'h TestHost,
    daemon: Option<Daemon>,
    listen: String,
}

impl<'h> Etcd<'h> {
    /// Start etcd in `host` on `127.0.0.1:2379`.
    pub fn start(host: &'h TestHost) -> Result<Etcd<'h>> {
        Self::start_on(host, "127.0.0.1")
    }

    /// Start etcd in `host` listening on `addr:2379` (an address of the host).
    pub fn start_on(host: &'h TestHost, addr: &str) -> Result<Etcd<'h>> {
        if which("etcd").is_none() {
            bail!("etcd is missing: install Debian's etcd-server");
        }
        let mut etcd = Etcd {
            host,
            daemon: None,
            listen: format!("http://{addr}:2379"),
        };
        etcd.launch()?;
        Ok(etcd)
    }

    /// The client endpoint (`http://ADDR:2379`).
    pub fn endpoint(&self) -> &str {
        &self.listen
    }

    /// Start it (again), on the same data, and wait until it answers.
    pub fn launch(&mut self) -> Result<()> {
        let data = self.host.dir().join("etcd");
        let data = data.display().to_string();
        let peer = "http://127.0.0.1:2380";
        let args = [
            "--name",
            "test",
            "--data-dir",
            &data,
            "--listen-client-urls",
            &self.listen,
            "--advertise-client-urls",
            &self.listen,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            "test=http://127.0.0.1:2380",
            "--log-level",
            "warn",
        ];
        let daemon = self.daemon.insert(self.host.spawn("etcd", "etcd", &args)?);
        let endpoint = self.listen.clone();
        crate::wait_for("etcd to answer", Duration::from_secs(30), || {
            daemon.check_running()?;
            let ok = self
                .host
                .command("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &endpoint, "endpoint", "health"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            Ok(ok.then_some(()))
        })
        .with_context(|| format!("etcd's log:\n{}", daemon.log()))
    }

    /// Stop it (SIGKILL).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut d) = self.daemon.take() {
            d.signal(nix::sys::signal::Signal::SIGKILL)?;
            d.wait_exit(Duration::from_secs(5))?;
        }
        Ok(())
    }

    /// Run `etcdctl args...` against it (v3 API); its stdout.
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        crate::process::output(
            self.host
                .command("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &self.listen])
                .args(args),
        )
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.exists())
    })
}
