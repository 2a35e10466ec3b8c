//! netd inside a test host: start, kill, restart, and run things in its sandboxes.

#![allow(dead_code)]

pub mod lab;
pub mod runtimes;

use netd::client::Client;
use netd::model::SandboxRecord;
use std::path::PathBuf;
use std::time::Duration;
use tests::{Daemon, TestHost};

/// A test host with netd running inside.
pub struct Netd {
    pub host: TestHost,
    pub daemon: Option<Daemon>,
    pub client: Client,
    docker: bool,
    /// Sockets the test holds and passes to each netd it starts, as systemd's
    /// socket activation does: they outlive netd.
    activated: Option<Vec<std::os::unix::net::UnixListener>>,
    /// More `netd daemon` arguments.
    extra: Vec<String>,
}

impl Netd {
    /// A host with netd, native API only.
    pub fn start() -> Netd {
        Self::start_with(false)
    }

    /// A host with netd and one bridge network `name` on `subnet`, and a
    /// runtime for the test's client calls.
    pub fn start_with_network(name: &str, subnet: &str) -> (Netd, tokio::runtime::Runtime) {
        let netd = Self::start();
        let rt = runtime();
        rt.block_on(netd.client.create_network(&network(name, subnet)))
            .expect("creating the test's network");
        (netd, rt)
    }

    /// A host with netd serving the Docker plugin socket too.
    pub fn start_with_docker() -> Netd {
        Self::start_with(true)
    }

    fn start_with(docker: bool) -> Netd {
        Self::start_with_args(docker, &[])
    }

    /// A host with netd started with more `netd daemon` arguments.
    pub fn start_with_args(docker: bool, extra: &[&str]) -> Netd {
        Self::start_on(TestHost::new().expect("test host"), docker, extra)
    }

    /// netd started on `host`, made and wired by the test beforehand (an
    /// underlay link for a cluster), with more `netd daemon` arguments; with
    /// `docker`, serving the Docker plugin socket too.
    pub fn start_on(host: TestHost, docker: bool, extra: &[&str]) -> Netd {
        let socket = host.dir().join("netd.sock");
        let mut netd = Netd {
            host,
            daemon: None,
            client: Client::new(socket),
            docker,
            activated: None,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        netd.launch();
        netd
    }

    /// A host whose netd gets its sockets from the test, as from systemd's socket
    /// activation: the native socket, and the plugin socket in the host's
    /// `/run/docker/plugins`.
    pub fn start_activated() -> Netd {
        let host = TestHost::new().expect("test host");
        let socket = host.dir().join("netd.sock");
        let plugin = host.plugin_dir().join("netd.sock");
        let listeners = [&socket, &plugin]
            .iter()
            .map(|p| std::os::unix::net::UnixListener::bind(p).expect("binding a socket"))
            .collect();
        let mut netd = Netd {
            host,
            daemon: None,
            client: Client::new(socket),
            docker: true,
            activated: Some(listeners),
            extra: Vec::new(),
        };
        netd.launch();
        netd
    }

    /// Kill the daemon with SIGKILL and wait for it to go.
    pub fn kill_9(&mut self) {
        let mut daemon = self.daemon.take().expect("netd runs");
        daemon
            .signal(nix::sys::signal::Signal::SIGKILL)
            .expect("kill -9");
        daemon
            .wait_exit(Duration::from_secs(5))
            .expect("netd exits");
    }

    /// Start the daemon (again) and wait for its API.
    pub fn launch(&mut self) {
        let daemon = self.start_daemon();
        self.daemon = Some(daemon);
    }

    /// Start a daemon and wait for its API, leaving `self.daemon` as it is (for a
    /// test that holds a borrow of the host, such as a running dockerd).
    pub fn start_daemon(&self) -> Daemon {
        let dir = self.host.dir().to_path_buf();
        let socket = dir.join("netd.sock");
        let state = dir.join("state");
        let run = dir.join("run");
        let mut args: Vec<String> = vec![
            "--socket".into(),
            socket.display().to_string(),
            "daemon".into(),
            "--state-dir".into(),
            state.display().to_string(),
            "--run-dir".into(),
            run.display().to_string(),
        ];
        if self.docker {
            // Passed sockets are matched by the path they were bound to: the
            // host's plugin directory as the test sees it.
            let plugin_dir = match self.activated {
                Some(_) => self.host.plugin_dir().display().to_string(),
                None => "/run/docker/plugins".into(),
            };
            args.extend(["--plugin-dir".into(), plugin_dir]);
        } else {
            args.push("--no-docker".into());
        }
        args.extend(self.extra.iter().cloned());
        let daemon = match &self.activated {
            Some(listeners) => self.spawn_activated(listeners, &args),
            None => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let socket_ready = if self.docker {
                    self.host.plugin_dir().join("netd.sock")
                } else {
                    socket.clone()
                };
                self.host
                    .spawn_plugin_at("netd", &socket_ready, env!("CARGO_BIN_EXE_netd"), &args)
                    .expect("netd starts")
            }
        };
        let mut daemon = daemon;
        // The socket is bound (or held) before netd reconciles; it answers once
        // it has.
        let client = Client::new(&socket);
        let rt = runtime();
        tests::wait_for("netd API", Duration::from_secs(20), || {
            daemon.check_running()?;
            let answered = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), client.info()).await
            });
            Ok(matches!(answered, Ok(Ok(_))).then_some(()))
        })
        .expect("netd API");
        daemon
    }

    /// netd with the held sockets as descriptors 3.. and `LISTEN_PID`/`LISTEN_FDS`
    /// set for it (a shell that execs netd gives it its own pid).
    fn spawn_activated(
        &self,
        listeners: &[std::os::unix::net::UnixListener],
        args: &[String],
    ) -> Daemon {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fds: Vec<i32> = listeners.iter().map(|l| l.as_raw_fd()).collect();
        let mut cmd = self.host.command("sh");
        cmd.arg("-c")
            .arg(format!(
                "LISTEN_PID=$$ LISTEN_FDS={} exec \"$0\" \"$@\"",
                fds.len()
            ))
            .arg(env!("CARGO_BIN_EXE_netd"))
            .args(args);
        // SAFETY: only dup/dup2, which are async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way first (a listener may sit on 3 or 4 already), then
                // into place without close-on-exec.
                let high: Vec<i32> = fds
                    .iter()
                    .map(|fd| nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_DUPFD(100)))
                    .collect::<Result<_, _>>()?;
                for (i, fd) in high.iter().enumerate() {
                    nix::unistd::dup2(*fd, 3 + i as i32)?;
                }
                Ok(())
            });
        }
        Daemon::spawn("netd", cmd, &self.host.log_path("netd")).expect("netd starts")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.daemon.as_ref().map(|d| d.log()).unwrap_or_default()
    }

    /// Run the netd CLI against this daemon; stdout, or stderr as the error.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netd"))
            .arg("--socket")
            .arg(self.client.socket())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Run the netd binary inside the host (its namespaces), not as a client:
    /// stdout, or stderr as the error.
    pub fn host_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .host
            .command(env!("CARGO_BIN_EXE_netd"))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Run a command inside a sandbox's namespace (through the host's mount
    /// namespace, where netd pinned it).
    pub fn in_sandbox(&self, sb: &SandboxRecord, args: &[&str]) -> std::process::Output {
        let net = format!("--net={}", sb.netns.display());
        let mut all = vec![net.as_str()];
        all.extend_from_slice(args);
        self.host
            .command("nsenter")
            .args(&all)
            .output()
            .expect("nsenter runs")
    }

    /// Whether `sb` gets an answer from `ip`.
    pub fn pings(&self, sb: &SandboxRecord, ip: &str) -> bool {
        self.in_sandbox(sb, &["busybox", "ping", "-c", "1", "-W", "2", ip])
            .status
            .success()
    }

    /// A network namespace made by someone else (as a runtime's container process
    /// would): a process sleeping in a new one, and its `/proc/PID/ns/net` path.
    pub fn foreign_netns(&self, name: &str) -> (Daemon, String) {
        let mut holder = self
            .host
            .spawn(name, "unshare", &["-n", "sleep", "600"])
            .unwrap();
        let netns = tests::wait_for("a namespace of its own", Duration::from_secs(10), || {
            holder.check_running()?;
            let children = std::fs::read_to_string(format!(
                "/proc/{}/task/{}/children",
                holder.pid(),
                holder.pid()
            ))
            .unwrap_or_default();
            // nsenter -> unshare execs sleep: the sleeping process is a child of
            // nsenter, or nsenter itself.
            let own = holder.pid().to_string();
            for pid in children
                .split_whitespace()
                .chain(std::iter::once(own.as_str()))
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    return Ok(Some(format!("/proc/{pid}/ns/net")));
                }
            }
            Ok(None)
        })
        .unwrap();
        (holder, netns)
    }

    /// The host's link names.
    pub fn links(&self) -> Vec<String> {
        let out = self
            .host
            .run("ip", &["-o", "link", "show"])
            .expect("ip link");
        out.lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    }

    /// netd's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.daemon.as_ref().expect("netd runs").pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    /// How many descriptors netd has open.
    pub fn open_fds(&self) -> usize {
        let pid = self.daemon.as_ref().expect("netd runs").pid();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    }

    /// The run dir's namespace files.
    pub fn netns_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.host.dir().join("run/netns"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

/// Every address a pool of the allocator holds (its ranges spelled out).
pub fn pool_addresses(pool: &ipam::PoolState) -> std::collections::BTreeSet<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr};
    let mut out = std::collections::BTreeSet::new();
    for r in &pool.allocated {
        match (r.first, r.last.unwrap_or(r.first)) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                out.extend((u32::from(a)..=u32::from(b)).map(|n| IpAddr::V4(Ipv4Addr::from(n))))
            }
            (a, _) => {
                out.insert(a);
            }
        }
    }
    out
}

/// The addresses the allocator holds in pool `id` (none if it has no such pool).
pub fn held(netd: &Netd, id: &str) -> Vec<String> {
    runtime()
        .block_on(netd.client.pools())
        .unwrap()
        .iter()
        .find(|p| p.id.to_string() == id)
        .map(|p| pool_addresses(p).iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// The address part of an endpoint's first IPv4 address.
pub fn ipv4(ep: &netd::model::EndpointRecord) -> String {
    ep.addresses
        .iter()
        .find(|a| a.addr().is_ipv4())
        .map(|a| a.addr().to_string())
        .expect("an IPv4 address")
}

/// A bridge network with one subnet.
pub fn network(name: &str, subnet: &str) -> netd::controller::NetworkCreate {
    netd::controller::NetworkCreate {
        name: name.into(),
        subnets: vec![netd::controller::SubnetRequest {
            subnet: Some(subnet.parse().expect("a CIDR")),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An attach to `network` with everything chosen by netd.
pub fn attach(network: &str) -> netd::controller::Attach {
    netd::controller::Attach {
        network: network.into(),
        ..Default::default()
    }
}

/// A sandbox named `name`, created by netd.
pub fn sandbox(name: &str) -> netd::controller::SandboxCreate {
    netd::controller::SandboxCreate {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A multi-thread runtime for a test body.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs each future as a task of its own, all at once, and returns their outputs in
/// order once all have ended.
pub async fn all_at_once<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.expect("the task does not panic"));
    }
    outputs
}

/// Another host on a link with netd's host ("the LAN"): netd's host is
/// 192.0.2.1 on `up0`, the outside host 192.0.2.2 on `o0` and knows no container
/// subnet, so only masqueraded traffic gets an answer from it.
pub struct Outside {
    pub host: TestHost,
}

/// netd's host's address on the link to [`Outside`].
pub const HOST_ADDR: &str = "192.0.2.1";
/// The outside host's address.
pub const OUTSIDE_ADDR: &str = "192.0.2.2";

impl Outside {
    /// Connect a new host to `netd`'s.
    pub fn connect(netd: &Netd) -> Outside {
        let host = TestHost::new().expect("outside host");
        // Both ends made from the root mount namespace, where /run/netns names
        // both hosts; nothing is made in the root network namespace.
        let made = std::process::Command::new("ip")
            .args(["-n", netd.host.name(), "link", "add", "up0", "type", "veth"])
            .args(["peer", "name", "o0", "netns", host.name()])
            .status()
            .unwrap();
        assert!(made.success(), "making the link to the outside host");
        netd.host
            .run(
                "ip",
                &["addr", "add", &format!("{HOST_ADDR}/24"), "dev", "up0"],
            )
            .unwrap();
        netd.host.run("ip", &["link", "set", "up0", "up"]).unwrap();
        host.run(
            "ip",
            &["addr", "add", &format!("{OUTSIDE_ADDR}/24"), "dev", "o0"],
        )
        .unwrap();
        host.run("ip", &["link", "set", "o0", "up"]).unwrap();
        Outside { host }
    }

    /// Route `subnet` to netd's host (a LAN router that knows the containers).
    pub fn route(&self, subnet: &str) {
        self.host
            .run("ip", &["route", "add", subnet, "via", HOST_ADDR])
            .unwrap();
    }

    /// Whether an HTTP GET of `url` from here answers with `body`.
    pub fn fetches(&self, url: &str, body: &str) -> bool {
        fetched(self.host.command("curl"), url, body)
    }
}

/// Whether `curl` run by `cmd` (a `curl` command) gets `body` from `url` within
/// 3 seconds. (busybox wget's own timeout option crashes it.)
pub fn fetched(mut cmd: std::process::Command, url: &str, body: &str) -> bool {
    let out = cmd
        .args(["-s", "--max-time", "3", url])
        .output()
        .expect("busybox runs");
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(body)
}

impl Netd {
    /// Serve `body` over HTTP on port 80 inside `sb` (busybox httpd), until dropped.
    pub fn serve_http(&self, sb: &SandboxRecord, body: &str) -> Daemon {
        let dir = self.host.dir().join(format!("www-{}", sb.name));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), body).unwrap();
        let net = format!("--net={}", sb.netns.display());
        let dir = dir.display().to_string();
        let daemon = self
            .host
            .spawn(
                &format!("httpd-{}", sb.name),
                "nsenter",
                &[&net, "busybox", "httpd", "-f", "-p", "80", "-h", &dir],
            )
            .unwrap();
        // Listening once a local fetch answers.
        tests::wait_for("httpd", Duration::from_secs(10), || {
            let mut cmd = self.host.command("nsenter");
            cmd.args([net.as_str(), "curl"]);
            Ok(fetched(cmd, "http://127.0.0.1/", body).then_some(()))
        })
        .unwrap();
        daemon
    }

    /// Whether an HTTP GET of `url` from netd's host itself answers with `body`.
    pub fn host_fetches(&self, url: &str, body: &str) -> bool {
        fetched(self.host.command("curl"), url, body)
    }

    /// Whether an HTTP GET of `url` from inside `sb` answers with `body`.
    pub fn sandbox_fetches(&self, sb: &SandboxRecord, url: &str, body: &str) -> bool {
        let mut cmd = self.host.command("nsenter");
        cmd.args([format!("--net={}", sb.netns.display()).as_str(), "curl"]);
        fetched(cmd, url, body)
    }
}

/// A port request: host port `host` (0: netd picks) to container port `container`.
pub fn tcp(host: u16, container: u16) -> firewall::PortRequest {
    firewall::PortRequest {
        proto: firewall::Proto::Tcp,
        host_ip: None,
        host_port: host,
        host_port_end: None,
        container_port: container,
        held_by_caller: false,
    }
}
