//! `netd daemon`: open the store, reconcile the kernel, then serve the native API
//! and the Docker plugin socket until SIGTERM or SIGINT.

use crate::controller::{Controller, Settings};
use crate::{activation, api, plugin_face};
use drivers::netlink::Netlink;
use plugin_api::server::{
    shutdown_signal, PluginSocket, Registration, ServeLimits, SocketPermissions,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where and how the daemon serves.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The controller's settings.
    pub settings: Settings,
    /// The native API socket.
    pub socket: PathBuf,
    /// Where the Docker plugin socket goes (`None`: no Docker face).
    pub plugin_dir: Option<PathBuf>,
    /// The plugin's name: dockerd's `-d` and `--ipam-driver` value.
    pub plugin_name: String,
    /// Idle and slow-request limits of both sockets.
    pub limits: ServeLimits,
    /// Run the nftables firewall.
    pub firewall: bool,
    /// Join a cluster (overlay networks); the MTU is filled in at start.
    pub cluster: Option<crate::overlay::ClusterSettings>,
}

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Start-up failed.
    #[error("starting the controller")]
    Controller(#[from] crate::controller::ControllerError),
    /// The netlink socket could not be opened.
    #[error("opening netlink")]
    Netlink(#[from] drivers::netlink::NetlinkError),
    /// A socket could not be bound or served.
    #[error("serving")]
    Serve(#[from] plugin_api::server::ServeError),
    /// The socket path has no usable file name.
    #[error("invalid socket path {0}: give a path like /run/netd/netd.sock")]
    SocketPath(PathBuf),
    /// Another netd serves this network namespace.
    #[error("another netd{} runs in this network namespace; stop it first (this one changed nothing)", .0.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AnotherInstance(Option<i32>),
    /// The instance lock could not be taken.
    #[error("taking the instance lock")]
    InstanceLock(#[source] std::io::Error),
    /// A socket stopped serving before a signal asked for it.
    #[error("{0} stopped serving")]
    Stopped(&'static str),
    /// The firewall could not be programmed.
    #[error("starting the firewall (or start netd with --firewall off)")]
    Firewall(#[source] crate::controller::ControllerError),
    /// `netd cleanup` could not remove netd's rules.
    #[error("cleanup: {0}")]
    Cleanup(String),
    /// The cluster settings do not fit this host.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Sockets passed by the service manager are not usable.
    #[error("sockets passed by the service manager")]
    Activation(#[from] activation::ActivationError),
}

/// The name of the abstract socket that one netd per network namespace holds:
/// abstract unix sockets belong to the network namespace they are bound in, so
/// a second daemon there fails to bind it, whatever its state dir or sockets.
const INSTANCE_LOCK: &[u8] = b"netd-instance-lock";

/// Hold the namespace's instance lock for as long as the listener lives.
fn instance_lock() -> Result<std::os::unix::net::UnixListener, DaemonError> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    let addr = SocketAddr::from_abstract_name(INSTANCE_LOCK).map_err(DaemonError::InstanceLock)?;
    match UnixListener::bind_addr(&addr) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let pid = UnixStream::connect_addr(&addr)
                .ok()
                .and_then(|s| {
                    nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
                        .ok()
                })
                .map(|c| c.pid());
            Err(DaemonError::AnotherInstance(pid))
        }
        Err(e) => Err(DaemonError::InstanceLock(e)),
    }
}

/// Run the daemon until a signal. Nothing in the kernel is touched before the
/// instance lock and both sockets are held: a second daemon fails first.
///
/// `passed`: sockets systemd (or another manager) holds across netd's restarts
/// (see [`activation`]), taken before the runtime started; requests that come
/// while netd is away wait in their backlog instead of failing.
pub async fn run(opts: DaemonOptions, passed: activation::Passed) -> Result<(), DaemonError> {
    let _lock = instance_lock()?;
    let mut passed = passed;
    let (dir, name) = split_socket(&opts.socket)?;
    let native = match passed.take(&opts.socket) {
        Some(l) => PluginSocket::inherited(l, opts.socket.clone())?,
        None => PluginSocket::bind(
            &name,
            &Registration::SocketIn(dir),
            SocketPermissions::default(),
        )?,
    }
    .with_limits(opts.limits);
    let docker = match &opts.plugin_dir {
        Some(dir) => {
            let path = dir.join(format!("{}.sock", opts.plugin_name));
            let socket = match passed.take(&path) {
                Some(l) => PluginSocket::inherited(l, path)?,
                None => PluginSocket::bind(
                    &opts.plugin_name,
                    &Registration::SocketIn(dir.clone()),
                    SocketPermissions::default(),
                )?,
            };
            Some(socket.with_limits(opts.limits))
        }
        None => None,
    };
    passed.refuse_leftovers()?;
    raise_open_file_limit();
    let nl = Netlink::current()?;
    let ctl = Arc::new(Controller::open(opts.settings.clone(), nl)?);
    if opts.firewall {
        // At boot the overlays' VXLAN devices come up in reconcile, before the
        // firewall's table is loaded: until then they hear no one.
        match firewall::Firewall::close_vxlan_until_start(&ctl.vxlan_filter(Vec::new())).await {
            Ok(true) => tracing::info!("VXLAN closed until the firewall starts"),
            Ok(false) => {}
            Err(e) => return Err(DaemonError::Firewall(e.into())),
        }
    }
    let report = ctl.reconcile().await;
    tracing::info!(
        networks = report.networks,
        rejoined = report.rejoined.len(),
        dropped = report.dropped.len(),
        removed_links = ?report.removed_links,
        removed_files = report.removed_files.len(),
        "reconciled"
    );
    for e in &report.errors {
        tracing::warn!(error = %e, "reconcile");
    }
    // The cluster agent exists before the firewall starts: its first table
    // hears VXLAN only from the hosts known before (see Agent::vxlan_seed).
    let agent = match opts.cluster.clone() {
        Some(_) if !opts.firewall => {
            return Err(DaemonError::Cluster(
                "an overlay needs netd's firewall, which hears VXLAN from the cluster's hosts only: run with --firewall on".into(),
            ));
        }
        None if !opts.firewall && ctl.networks().iter().any(crate::overlay::is_overlay) => {
            return Err(DaemonError::Cluster(
                "overlay networks are stored and their VXLAN devices would hear anyone without netd's firewall: run with the firewall (and --cluster-store), or delete them".into(),
            ));
        }
        Some(mut settings) => {
            let nl = Netlink::current()?;
            let Some(link) = nl.link_with_address(settings.advertise).await? else {
                return Err(DaemonError::Cluster(format!(
                    "--advertise-addr {} is not an address of this host",
                    settings.advertise
                )));
            };
            settings.mtu = link
                .mtu
                .unwrap_or(1500)
                .saturating_sub(settings.mtu_overhead())
                .min(9000);
            let agent = crate::overlay::Agent::new(
                settings,
                ctl.instance().to_string(),
                &opts.settings.state_dir,
                nl,
            );
            ctl.set_overlay(Arc::clone(&agent));
            Some(agent)
        }
        None => None,
    };
    let guard = if opts.firewall {
        let problems = match ctl.start_firewall().await {
            Ok(p) => p,
            Err(e) => {
                ctl.close_localnet();
                return Err(DaemonError::Firewall(e));
            }
        };
        for p in &problems {
            tracing::warn!(problem = %p, "firewall");
        }
        Some(tokio::spawn(guard_firewall(Arc::clone(&ctl))))
    } else {
        // A table from an earlier run would keep DNATing to ports nobody holds.
        ctl.close_localnet();
        if let Err(e) = firewall::Firewall::remove_all().await {
            tracing::warn!(error = %e, "firewall off: could not remove netd's table of an earlier run");
        }
        tracing::info!("firewall off: no rules are programmed and no ports published");
        None
    };
    // Each network's DNS responder, on its gateway (the bridges exist now).
    ctl.start_dns();
    let agent = match &agent {
        Some(agent) => {
            agent
                .try_join(std::time::Duration::from_secs(5), &ctl)
                .await;
            Some(tokio::spawn(Arc::clone(agent).run(Arc::clone(&ctl))))
        }
        None => None,
    };
    let reaper = tokio::spawn(reap_engine_joins(Arc::clone(&ctl)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    println!("netd listening on {}", native.socket_path().display());
    let native_task =
        tokio::spawn(native.serve(api::router(Arc::clone(&ctl)), stopped(stop_rx.clone())));
    let docker_task = docker.map(|socket| {
        println!(
            "netd plugin listening on {}",
            socket.socket_path().display()
        );
        tokio::spawn(socket.serve(
            plugin_face::plugin(Arc::clone(&ctl)).router(),
            stopped(stop_rx.clone()),
        ))
    });
    let mut native_task = native_task;
    let mut docker_task = docker_task;
    // A socket that stops serving on its own (an accept error) ends the daemon,
    // which a service manager then restarts, rather than leaving it deaf.
    let ended_early = tokio::select! {
        () = shutdown_signal() => None,
        result = &mut native_task => Some(("the native API", result)),
        result = async {
            match docker_task.as_mut() {
                Some(task) => task.await,
                None => std::future::pending().await,
            }
        } => Some(("the plugin socket", result)),
    };
    reaper.abort();
    if let Some(a) = agent {
        a.abort();
    }
    if let Some(g) = guard {
        g.abort();
    }
    let _ = stop_tx.send(true);
    if let Some((what, result)) = ended_early {
        tracing::error!(socket = what, "stopped serving");
        return match result {
            Ok(Err(e)) => Err(e.into()),
            _ => Err(DaemonError::Stopped(what)),
        };
    }
    if let Ok(result) = native_task.await {
        result?;
    }
    if let Some(task) = docker_task {
        if let Ok(result) = task.await {
            result?;
        }
    }
    Ok(())
}

/// `netd cleanup`: remove netd's table, its DOCKER-USER accepts and the links with
/// the mark of the netd whose store is in `state_dir`; what went, described. Refused
/// while a netd runs in this network namespace.
pub async fn cleanup(state_dir: &Path) -> Result<Vec<String>, DaemonError> {
    let _lock = instance_lock()?;
    let mut removed = Vec::new();
    if firewall::nft::show()
        .await
        .map_err(|e| DaemonError::Cleanup(e.to_string()))?
        .is_some()
    {
        removed.push("nftables table inet netd".to_string());
    }
    firewall::Firewall::remove_all()
        .await
        .map_err(|e| DaemonError::Cleanup(e.to_string()))?;
    let store_file = state_dir.join("netd.redb");
    if !store_file.exists() {
        return Ok(removed);
    }
    let store = crate::store::open(&store_file).map_err(|e| DaemonError::Controller(e.into()))?;
    let mark = drivers::Mark::of_instance(store.instance());
    drop(store);
    let nl = Netlink::current()?;
    for link in nl.links().await? {
        if link.group == mark.0 {
            match nl.delete(link.index).await {
                Ok(()) => removed.push(format!("link {}", link.name)),
                // A veth's peer goes with it.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(removed)
}

/// How often joins dockerd placed are checked for a sandbox that is gone.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Unjoin, every [`REAP_EVERY`], Docker endpoints whose sandbox is gone without a
/// Leave (a container that ended while its dockerd was down, say).
async fn reap_engine_joins(ctl: Arc<Controller>) {
    let mut every = tokio::time::interval(REAP_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        let reaped = ctl.reap_engine_joins().await;
        if !reaped.is_empty() {
            tracing::info!(endpoints = ?reaped, "unjoined endpoints whose sandbox is gone");
        }
    }
}

/// How often netd's table is compared with what netd programmed.
const CHECK_FIREWALL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Put netd's table back within a second when something else changes or removes
/// it (`nft flush ruleset`, a firewall reload), and keep the set of bridges netd
/// did not make (which its networks are isolated from) current.
async fn guard_firewall(ctl: Arc<Controller>) {
    let mut every = tokio::time::interval(CHECK_FIREWALL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = ctl.check_firewall().await {
            tracing::warn!(error = %e.full_message(), "checking the firewall");
        }
    }
}

fn split_socket(path: &Path) -> Result<(PathBuf, String), DaemonError> {
    let bad = || DaemonError::SocketPath(path.to_path_buf());
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".sock"))
        .ok_or_else(bad)?;
    let dir = path.parent().ok_or_else(bad)?;
    Ok((dir.to_path_buf(), name.to_string()))
}

/// netd keeps a netlink socket open inside every namespace it made, so the usual soft
/// limit of 1024 open files would cap it near a thousand sandboxes: raise the soft
/// limit to the hard one, as container engines do.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, hard, "could not raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    /// The socket unit listens where `netd daemon` serves by default, so the two
    /// match without flags.
    #[test]
    fn the_socket_unit_listens_on_the_default_paths() {
        let unit = include_str!("../../dist/systemd/netd.socket");
        let listens: Vec<&str> = unit
            .lines()
            .filter_map(|l| l.strip_prefix("ListenStream="))
            .collect();
        let plugin = format!("{}/netd.sock", plugin_api::server::DEFAULT_SOCKET_DIR);
        assert_eq!(listens, [crate::client::DEFAULT_SOCKET, plugin.as_str()]);
        let service = include_str!("../../dist/systemd/netd.service");
        assert!(service.contains("Requires=netd.socket"));
        assert!(service.contains("Before=docker.service"));
        assert!(unit.contains("Before=docker.service"));
    }
}
