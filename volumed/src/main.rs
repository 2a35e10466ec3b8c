//! The `volumed` binary: the daemon and its command-line client.

use clap::Parser;
use volumed::cli::{Cli, Command};
use volumed::daemon::DaemonOptions;

/// The daemon's options: flags over the config file over the defaults.
fn daemon_options(
    socket: Option<std::path::PathBuf>,
    args: volumed::cli::DaemonArgs,
) -> anyhow::Result<DaemonOptions> {
    let file = match &args.config {
        Some(path) => volumed::config::FileConfig::load(path)?,
        None => Default::default(),
    };
    let run_dir = args
        .run_dir
        .or(file.run_dir)
        .unwrap_or_else(|| "/run/volumed".into());
    let state_dir = args
        .state_dir
        .or(file.state_dir)
        .unwrap_or_else(|| "/var/lib/volumed".into());
    let data_root = args
        .data_root
        .or(file.data_root)
        .unwrap_or_else(|| "/var/lib/volumed".into());
    let plugin_dir = args
        .plugin_dir
        .or(file.plugin_dir)
        .unwrap_or_else(|| plugin_api::server::DEFAULT_SOCKET_DIR.into());
    let docker = !args.no_docker && file.docker.unwrap_or(true);
    let mut deny_bind: Vec<std::path::PathBuf> = vec![
        "/".into(),
        state_dir.clone(),
        data_root.clone(),
        run_dir.clone(),
        "/run/volumed".into(),
        "/run/netd".into(),
        "/var/lib/netd".into(),
        plugin_dir.clone(),
    ];
    deny_bind.extend(file.deny_bind);
    deny_bind.extend(args.deny_bind);
    Ok(DaemonOptions {
        state_dir,
        data_root,
        socket: socket
            .or(file.socket)
            .unwrap_or_else(|| run_dir.join("volumed.sock")),
        plugin_dir: docker.then(|| plugin_dir.clone()),
        remote_drivers: args.remote_driver,
        remote_socket_dir: plugin_dir,
        plugin_name: args
            .plugin_name
            .or(file.plugin_name)
            .unwrap_or_else(|| "volumed".into()),
        deny_bind,
    })
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Before any other thread exists: taking them clears their variables.
    let passed = match &cli.command {
        Command::Daemon(_) => match plugin_api::server::activation::listeners() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        _ => Default::default(),
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async move {
                match cli.command {
                    Command::Daemon(args) => {
                        tracing_subscriber::fmt()
                            .with_env_filter(
                                tracing_subscriber::EnvFilter::try_from_default_env()
                                    .unwrap_or_else(|_| "info".into()),
                            )
                            .with_writer(std::io::stderr)
                            .init();
                        let opts = daemon_options(cli.socket, args)?;
                        volumed::daemon::run(opts, passed).await
                    }
                    Command::Volume(cmd) => volumed::cli::run_client(cli.socket, cmd).await,
                    Command::OciHook { stage } => {
                        let socket = cli
                            .socket
                            .unwrap_or_else(|| volumed::client::DEFAULT_SOCKET.into());
                        volumed::oci_hook::run(&volumed::client::Client::new(socket), stage).await
                    }
                }
            })
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
