//! netd inside a test host: start, kill, restart, and run things in its sandboxes.

#![allow(dead_code)]

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
}

impl Netd {
    /// A host with netd, native API only.
    pub fn start() -> Netd {
        Self::start_with(false)
    }

    /// A host with netd serving the Docker plugin socket too.
    pub fn start_with_docker() -> Netd {
        Self::start_with(true)
    }

    fn start_with(docker: bool) -> Netd {
        let host = TestHost::new().expect("test host");
        let socket = host.dir().join("netd.sock");
        let mut netd = Netd {
            host,
            daemon: None,
            client: Client::new(socket),
            docker,
        };
        netd.launch();
        netd
    }

    /// Start the daemon (again) and wait for its API.
    pub fn launch(&mut self) {
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
            args.extend(["--plugin-dir".into(), "/run/docker/plugins".into()]);
        } else {
            args.push("--no-docker".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let socket_ready = if self.docker {
            self.host.plugin_dir().join("netd.sock")
        } else {
            socket.clone()
        };
        let daemon = self
            .host
            .spawn_plugin_at("netd", &socket_ready, env!("CARGO_BIN_EXE_netd"), &args)
            .expect("netd starts");
        // The socket is bound before netd reconciles; it answers once it has.
        let client = Client::new(&socket);
        let rt = runtime();
        tests::wait_for("netd API", Duration::from_secs(20), || {
            Ok(rt.block_on(client.info()).is_ok().then_some(()))
        })
        .expect("netd API");
        self.daemon = Some(daemon);
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

    /// The run dir's namespace files.
    pub fn netns_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.host.dir().join("run/netns"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
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
