//! `volumed daemon`: load every volume, reconcile mounts with the kernel, then
//! serve the native API and the Docker plugin socket until SIGTERM or SIGINT.

use crate::manager::Manager;
use crate::{api, plugin_face};
use plugin_api::server::{shutdown_signal, PluginSocket, Registration, SocketPermissions};
use std::path::PathBuf;
use std::sync::Arc;

/// Where and how the daemon serves.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Where the store lives.
    pub state_dir: PathBuf,
    /// Where volumes' data lives (`DATA_ROOT/volumes/NAME/_data`).
    pub data_root: PathBuf,
    /// The native API socket.
    pub socket: PathBuf,
    /// Where the Docker plugin socket goes (`None`: no Docker face).
    pub plugin_dir: Option<PathBuf>,
    /// The plugin's name (`docker volume create -d NAME`).
    pub plugin_name: String,
    /// Other volume plugins volumed fronts, by name.
    pub remote_drivers: Vec<String>,
    /// Where those are looked for (dockerd's plugin socket dir).
    pub remote_socket_dir: PathBuf,
    /// Bind sources `/v1/mounts/resolve` refuses (each and everything under it;
    /// `/` only itself).
    pub deny_bind: Vec<PathBuf>,
}

/// Run until a signal. The state is loaded before either socket is bound:
/// dockerd asks for every volume it knows at its start and forgets the labels of
/// those a plugin does not know.
///
/// `passed`: sockets a service manager holds across volumed's restarts (systemd's
/// socket activation), taken before the runtime started: requests that come while
/// volumed is away wait in their backlog.
pub async fn run(
    opts: DaemonOptions,
    passed: plugin_api::server::activation::Passed,
) -> anyhow::Result<()> {
    let mut passed = passed;
    let remotes =
        crate::manager::Remotes::new(opts.remote_drivers.clone(), opts.remote_socket_dir.clone());
    let manager = Arc::new(Manager::open(&opts.state_dir, &opts.data_root, remotes)?);
    let report = manager.reconcile();
    tracing::info!(
        volumes = manager.list().len(),
        remounted = ?report.remounted,
        unmounted = ?report.unmounted,
        "loaded"
    );
    for e in &report.errors {
        tracing::warn!(error = %e, "reconcile");
    }
    let dir = opts
        .socket
        .parent()
        .ok_or_else(|| anyhow::anyhow!("invalid socket path {}", opts.socket.display()))?
        .to_path_buf();
    let name = opts
        .socket
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".sock"))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "invalid socket path {}: give a path like /run/volumed/volumed.sock",
                opts.socket.display()
            )
        })?
        .to_string();
    let native = match passed.take(&opts.socket) {
        Some(l) => PluginSocket::inherited(l, opts.socket.clone())?,
        None => PluginSocket::bind(
            &name,
            &Registration::SocketIn(dir),
            SocketPermissions::default(),
        )?,
    };
    let docker = match &opts.plugin_dir {
        Some(dir) => {
            let path = dir.join(format!("{}.sock", opts.plugin_name));
            Some(match passed.take(&path) {
                Some(l) => PluginSocket::inherited(l, path)?,
                None => PluginSocket::bind(
                    &opts.plugin_name,
                    &Registration::SocketIn(dir.clone()),
                    SocketPermissions::default(),
                )?,
            })
        }
        None => None,
    };
    passed.refuse_leftovers()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    println!("volumed listening on {}", native.socket_path().display());
    let policy = crate::resolve::Policy {
        deny: opts.deny_bind.clone(),
    };
    let native_task = tokio::spawn(native.serve(
        api::router(Arc::clone(&manager), policy),
        stopped(stop_rx.clone()),
    ));
    let docker_task = docker.map(|socket| {
        println!(
            "volumed plugin listening on {}",
            socket.socket_path().display()
        );
        tokio::spawn(socket.serve(
            plugin_face::plugin(Arc::clone(&manager)).router(),
            stopped(stop_rx.clone()),
        ))
    });
    shutdown_signal().await;
    let _ = stop_tx.send(true);
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
