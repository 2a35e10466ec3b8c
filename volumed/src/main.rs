//! The `volumed` binary: the daemon and its command-line client.

use clap::Parser;
use volumed::cli::{Cli, Command};
use volumed::daemon::DaemonOptions;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
                        let run_dir = args.run_dir.unwrap_or_else(|| "/run/volumed".into());
                        let state_dir = args.state_dir.unwrap_or_else(|| "/var/lib/volumed".into());
                        let data_root = args.data_root.unwrap_or_else(|| "/var/lib/volumed".into());
                        let plugin_dir = args
                            .plugin_dir
                            .unwrap_or_else(|| plugin_api::server::DEFAULT_SOCKET_DIR.into());
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
                        deny_bind.extend(args.deny_bind);
                        let opts = DaemonOptions {
                            state_dir,
                            data_root,
                            socket: cli.socket.unwrap_or_else(|| run_dir.join("volumed.sock")),
                            plugin_dir: (!args.no_docker).then_some(plugin_dir),
                            plugin_name: args.plugin_name.unwrap_or_else(|| "volumed".into()),
                            deny_bind,
                        };
                        volumed::daemon::run(opts).await
                    }
                    Command::Volume(cmd) => volumed::cli::run_client(cli.socket, cmd).await,
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
