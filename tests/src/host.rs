//! A test host: a network namespace and a private mount namespace that together play
//! one machine. Daemons and plugins run inside it; the machine itself is not touched.

use crate::names::unique_name;
use crate::process::{output, Daemon};
use crate::reap::{kill_netns_processes, remove_netns, sweep_stale, unmount_under};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

/// One throwaway host.
///
/// - its own network namespace `/run/netns/<name>` with only `lo`, up;
/// - its own mount namespace, in which `/run` is a fresh tmpfs and
///   `/run/docker/plugins` and `/etc/docker` are directories of this host, so the
///   plugins a test registers are seen by this host's dockerd and by no other;
/// - a scratch directory `/tmp/<name>` for state, sockets and logs.
///
/// Dropping it kills every process still in its network namespace, deletes the
/// namespace (its mounts go with the last process) and removes the directory.
#[derive(Debug)]
pub struct TestHost {
    name: String,
    dir: PathBuf,
    holder: Option<Daemon>,
}

impl TestHost {
    /// Make a new host. Needs root.
    pub fn new() -> Result<TestHost> {
        static SWEEP: Once = Once::new();
        if !nix::unistd::geteuid().is_root() {
            bail!("integration tests make network namespaces and need root (run them with sudo)");
        }
        SWEEP.call_once(sweep_stale);

        let name = unique_name();
        output(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on, Drop removes whatever exists.
        let mut host = TestHost {
            dir: std::env::temp_dir().join(&name),
            name,
            holder: None,
        };
        for sub in ["plugins", "etc-docker", "logs"] {
            let path = host.dir.join(sub);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        output(Command::new("ip").args(["-n", &host.name, "link", "set", "lo", "up"]))?;
        host.start_holder()?;
        Ok(host)
    }

    /// The process that owns the mount namespace: it sets the mounts up and sleeps.
    fn start_holder(&mut self) -> Result<()> {
        let dir = self.dir.display();
        let ready = self.dir.join("ready");
        let script = format!(
            "set -e\n\
             mount -t tmpfs -o mode=0755,size=16m {name}-run /run\n\
             mkdir -p /run/docker/plugins\n\
             mount --bind {dir}/plugins /run/docker/plugins\n\
             if [ -d /etc/docker ]; then mount --bind {dir}/etc-docker /etc/docker; fi\n\
             touch {ready}\n\
             exec sleep infinity\n",
            name = self.name,
            ready = ready.display(),
        );
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns_path().display()))
            .args(["--", "unshare", "--mount", "--propagation", "private"])
            .args(["sh", "-c", &script]);
        let holder = Daemon::spawn("host", cmd, &self.dir.join("logs/host.log"))?;
        let holder = self.holder.insert(holder);
        crate::wait_for(
            "the host's mount namespace",
            Duration::from_secs(10),
            || {
                holder.check_running()?;
                Ok(ready.exists().then_some(()))
            },
        )
    }

    /// The host's name, also the name of its network namespace.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Its mount namespace, as a path another process can enter.
    pub fn mount_ns_path(&self) -> Result<PathBuf> {
        let holder = self
            .holder
            .as_ref()
            .context("the host has no mount namespace")?;
        Ok(PathBuf::from(format!("/proc/{}/ns/mnt", holder.pid())))
    }

    /// The host's scratch directory (the same path inside and outside the host).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory the host sees as `/etc/docker` (spec files go in `plugins/`).
    pub fn etc_docker_dir(&self) -> PathBuf {
        self.dir.join("etc-docker")
    }

    /// The directory the host sees as `/run/docker/plugins`: a plugin that puts its
    /// socket here is found by this host's dockerd.
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.join("plugins")
    }

    /// Where [`TestHost::spawn`] writes the log of `name`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// A command that runs `program` inside the host (its network and mount
    /// namespaces), entered with nsenter: `ip netns exec` would remount /sys and
    /// hide the cgroup mounts dockerd needs.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns_path().display()));
        if let Ok(mnt) = self.mount_ns_path() {
            cmd.arg(format!("--mount={}", mnt.display()));
        }
        cmd.arg("--").arg(program);
        cmd
    }

    /// Run the future `make` returns on a thread of its own inside the host's
    /// network namespace, on a current-thread runtime: every socket it opens
    /// lives in the host (the test's own threads never change namespace).
    pub fn block_on_inside<T, F>(&self, make: impl FnOnce() -> F + Send) -> Result<T>
    where
        T: Send,
        F: std::future::Future<Output = T>,
    {
        let netns = std::fs::File::open(self.netns_path())
            .with_context(|| format!("opening {}", self.netns_path().display()))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || -> Result<T> {
                    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .context("entering the host's network namespace")?;
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    Ok(rt.block_on(make()))
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the thread inside the host panicked"))?
        })
    }

    /// Run `program -n HOST args...` from outside the host (`ip`, `bridge`: tools
    /// that take a namespace by name, which inside the host's own `/run` they
    /// could not find); its stdout.
    pub fn netns_tool(&self, program: &str, args: &[&str]) -> Result<String> {
        output(Command::new(program).args(["-n", &self.name]).args(args))
    }

    /// Run `program args...` inside the host and return its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        output(self.command(program).args(args))
    }

    /// Start `program args...` inside the host in the background, logging to
    /// [`TestHost::log_path`]`(name)`.
    pub fn spawn(
        &self,
        name: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
    ) -> Result<Daemon> {
        let mut cmd = self.command(program);
        cmd.args(args);
        Daemon::spawn(name, cmd, &self.log_path(name))
    }

    /// Start a plugin inside the host and wait until its socket `<name>.sock` in the
    /// host's `/run/docker/plugins` accepts connections (a stale file does not count).
    pub fn spawn_plugin(
        &self,
        name: &str,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
    ) -> Result<Daemon> {
        let socket = self.plugin_dir().join(format!("{name}.sock"));
        self.spawn_plugin_at(name, &socket, program, args)
    }

    /// Start a plugin inside the host and wait until `socket` (a path as seen from
    /// outside the host) accepts connections.
    pub fn spawn_plugin_at(
        &self,
        name: &str,
        socket: &Path,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
    ) -> Result<Daemon> {
        let mut plugin = self.spawn(name, program, args)?;
        crate::wait_for(
            &format!("plugin socket {}", socket.display()),
            Duration::from_secs(30),
            || {
                plugin.check_running()?;
                Ok(std::os::unix::net::UnixStream::connect(socket)
                    .is_ok()
                    .then_some(()))
            },
        )?;
        Ok(plugin)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        kill_netns_processes(&self.netns_path());
        drop(self.holder.take());
        remove_netns(&self.name);
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
