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
                        let opts = DaemonOptions {
                            state_dir: args.state_dir.unwrap_or_else(|| "/var/lib/volumed".into()),
                            data_root: args.data_root.unwrap_or_else(|| "/var/lib/volumed".into()),
                            socket: cli.socket.unwrap_or_else(|| run_dir.join("volumed.sock")),
                            plugin_dir: (!args.no_docker).then(|| {
                                args.plugin_dir.unwrap_or_else(|| {
                                    plugin_api::server::DEFAULT_SOCKET_DIR.into()
                                })
                            }),
                            plugin_name: args.plugin_name.unwrap_or_else(|| "volumed".into()),
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
