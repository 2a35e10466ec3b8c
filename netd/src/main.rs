//! The `netd` binary: the daemon and its command-line client.

use clap::Parser;
use netd::cli::{Cli, Command, DaemonArgs, OnOff};
use netd::config::{default_host_id, FileConfig};
use netd::controller::Settings;
use netd::daemon::DaemonOptions;
use std::path::PathBuf;

fn daemon_options(socket: Option<PathBuf>, args: DaemonArgs) -> anyhow::Result<DaemonOptions> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let cluster = cluster_settings(&args, &file)?;
    let run_dir = args
        .run_dir
        .or(file.run_dir.clone())
        .unwrap_or_else(|| "/run/netd".into());
    let host_id = file.host_id.clone().unwrap_or_else(default_host_id);
    let settings = Settings {
        state_dir: args
            .state_dir
            .or(file.state_dir.clone())
            .unwrap_or_else(|| "/var/lib/netd".into()),
        run_dir: run_dir.clone(),
        ipam: file.ipam(&host_id),
        fallback_dns: file
            .dns
            .clone()
            .unwrap_or_else(|| netd::files::FALLBACK_DNS.to_vec()),
        host_resolv_conf: args
            .resolv_conf
            .clone()
            .or(file.resolv_conf.clone())
            .unwrap_or_else(|| "/etc/resolv.conf".into()),
        plugin_dir: args
            .plugin_dir
            .clone()
            .or(file.plugin_dir.clone())
            .unwrap_or_else(|| plugin_api::server::DEFAULT_SOCKET_DIR.into()),
    };
    let plugin_dir = if args.no_docker {
        None
    } else {
        Some(
            args.plugin_dir
                .or(file.plugin_dir.clone())
                .unwrap_or_else(|| plugin_api::server::DEFAULT_SOCKET_DIR.into()),
        )
    };
    Ok(DaemonOptions {
        cluster,
        settings,
        socket: socket
            .or(file.socket.clone())
            .unwrap_or_else(|| run_dir.join("netd.sock")),
        plugin_dir,
        plugin_name: args
            .plugin_name
            .or(file.plugin_name.clone())
            .unwrap_or_else(|| "netd".into()),
        firewall: match args.firewall {
            Some(switch) => switch == OnOff::On,
            None => file.firewall.unwrap_or(true),
        },
        limits: {
            let secs = args.idle_timeout.or(file.idle_timeout).unwrap_or(30);
            plugin_api::server::ServeLimits {
                idle: std::time::Duration::from_secs(secs),
                body: std::time::Duration::from_secs(secs),
                ..Default::default()
            }
        },
    })
}

fn cluster_settings(
    args: &DaemonArgs,
    file: &FileConfig,
) -> anyhow::Result<Option<netd::overlay::ClusterSettings>> {
    let store = args.cluster_store.clone().or(file.cluster_store.clone());
    let advertise = args.advertise_addr.or(file.advertise_addr);
    let Some(store) = store else {
        if advertise.is_some() || args.vxlan_port.is_some() || args.etcd_ca.is_some() {
            anyhow::bail!(
                "--advertise-addr, --vxlan-port and the etcd TLS options need --cluster-store"
            );
        }
        return Ok(None);
    };
    let Some(advertise) = advertise else {
        anyhow::bail!("--cluster-store needs --advertise-addr: this host's underlay address, which other hosts send VXLAN to");
    };
    if advertise.is_loopback() || advertise.is_unspecified() || advertise.is_multicast() {
        anyhow::bail!("--advertise-addr {advertise}: other hosts must reach it; give this host's address on the underlay, not a loopback, unspecified or multicast one");
    }
    let ca = args.etcd_ca.clone().or(file.etcd_ca.clone());
    let cert = args.etcd_cert.clone().or(file.etcd_cert.clone());
    let key = args.etcd_key.clone().or(file.etcd_key.clone());
    let tls = (ca.is_some() || cert.is_some()).then_some(cluster::Tls { ca, cert, key });
    let endpoints =
        netd::overlay::parse_cluster_store(&store, tls.is_some()).map_err(anyhow::Error::msg)?;
    Ok(Some(netd::overlay::ClusterSettings {
        endpoints,
        tls,
        prefix: "/netd/v1".into(),
        advertise,
        vxlan_port: args.vxlan_port.or(file.vxlan_port).unwrap_or(4789),
        lease_ttl: std::time::Duration::from_secs(
            args.cluster_lease_ttl
                .or(file.cluster_lease_ttl)
                .unwrap_or(15),
        ),
        mtu: 1450,
    }))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Before any other thread exists: taking them clears their variables.
    let passed = match &cli.command {
        Command::Daemon(_) => match netd::activation::listeners() {
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
                        netd::daemon::run(opts, passed)
                            .await
                            .map_err(anyhow::Error::from)
                    }
                    Command::Cleanup { state_dir } => {
                        let state_dir = state_dir.unwrap_or_else(|| "/var/lib/netd".into());
                        let removed = netd::daemon::cleanup(&state_dir).await?;
                        for what in removed {
                            println!("removed {what}");
                        }
                        Ok(())
                    }
                    other => netd::cli::run_client(cli.socket, other).await,
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
