//! The command line: `volumed daemon` runs the server; `volumed volume ...` are
//! clients of its native API.

use crate::api::{PruneBody, VolumeCreate};
use crate::client::{Client, DEFAULT_SOCKET};
use crate::model::VolumeRecord;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hyper::Method;
use std::path::PathBuf;

/// volumed: named volumes with counted mounts, for dockerd and any runtime.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "VOLUMED_SOCKET")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Daemon(DaemonArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// An OCI runtime hook (createRuntime/prestart, poststop): volumes named in
    /// the annotation `org.volumed.mounts` (`NAME:/path[:ro]`, comma-separated)
    /// mounted into the container, and released when it stops.
    OciHook {
        /// When the hook runs.
        #[arg(value_enum)]
        stage: crate::oci_hook::Stage,
    },
}

/// `volumed daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// TOML config file; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the store lives [default: /var/lib/volumed].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Where volumes' data lives [default: /var/lib/volumed].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Runtime directory (the API socket goes here) [default: /run/volumed].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Where dockerd looks for plugin sockets [default: /run/docker/plugins].
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Do not serve the Docker plugin protocol.
    #[arg(long)]
    pub no_docker: bool,
    /// The plugin's name, as given to `docker volume create -d` [default: volumed].
    #[arg(long)]
    pub plugin_name: Option<String>,
    /// Refuse this bind source (and what is under it) in /v1/mounts/resolve, besides
    /// the defaults: `/`, the state dir, the data root, /run/volumed, /run/netd,
    /// /var/lib/netd and the plugin dir (repeatable).
    #[arg(long, value_name = "PATH")]
    pub deny_bind: Vec<PathBuf>,
    /// Front this volume plugin (found as dockerd finds plugins): volumes made
    /// with `driver` NAME go to it (repeatable).
    #[arg(long, value_name = "NAME")]
    pub remote_driver: Vec<String>,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON, for scripts.
    Json,
}

/// `volumed volume ...`.
#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume; prints its name.
    Create {
        /// Its name (generated if absent: an anonymous volume).
        name: Option<String>,
        /// Driver option KEY=VALUE (`type`, `device`, `o`, `size`).
        #[arg(long = "opt", short = 'o', value_parser = parse_kv)]
        opt: Vec<(String, String)>,
        /// Label KEY=VALUE.
        #[arg(long, value_parser = parse_kv)]
        label: Vec<(String, String)>,
        /// `local` (default) or a plugin volumed fronts.
        #[arg(long, short = 'd')]
        driver: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a volume as JSON.
    Inspect {
        /// Its name.
        name: String,
    },
    /// Remove volumes (refused while in use).
    #[command(alias = "remove")]
    Rm {
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused volumes: anonymous ones, or all with --all.
    Prune {
        /// Named ones too.
        #[arg(long, short = 'a')]
        all: bool,
    },
}

fn parse_kv(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?}: expected KEY=VALUE")),
    }
}

fn rows(volumes: &[VolumeRecord]) -> String {
    let mut out = format!(
        "{:<8} {:<40} {:>4}  {}\n",
        "DRIVER", "VOLUME NAME", "REFS", "OPTIONS"
    );
    for v in volumes {
        let opts: Vec<String> = v.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(
            "{:<8} {:<40} {:>4}  {}\n",
            v.driver,
            v.name,
            v.references(),
            opts.join(",")
        ));
    }
    out
}

/// Run one client command.
pub async fn run_client(socket: Option<PathBuf>, cmd: VolumeCmd) -> anyhow::Result<()> {
    let client = Client::new(socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)));
    match cmd {
        VolumeCmd::Create {
            name,
            opt,
            label,
            driver,
        } => {
            let req = VolumeCreate {
                name,
                driver,
                options: opt.into_iter().collect(),
                labels: label.into_iter().collect(),
            };
            let v: VolumeRecord = client.call(Method::POST, "/v1/volumes", Some(&req)).await?;
            println!("{}", v.name);
        }
        VolumeCmd::Ls { format } => {
            let vs: Vec<VolumeRecord> =
                client.call(Method::GET, "/v1/volumes", None::<&()>).await?;
            match format {
                Format::Table => print!("{}", rows(&vs)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&vs)?),
            }
        }
        VolumeCmd::Inspect { name } => {
            let v: VolumeRecord = client
                .call(
                    Method::GET,
                    &format!("/v1/volumes/{}", path_part(&name)),
                    None::<&()>,
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        VolumeCmd::Rm { names } => {
            let mut failed = 0;
            for name in names {
                let r: Result<VolumeRecord, _> = client
                    .call(
                        Method::DELETE,
                        &format!("/v1/volumes/{}", path_part(&name)),
                        None::<&()>,
                    )
                    .await;
                match r {
                    Ok(_) => println!("{name}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed += 1;
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} could not be removed");
        }
        VolumeCmd::Prune { all } => {
            let removed: Vec<String> = client
                .call(Method::POST, "/v1/volumes/prune", Some(&PruneBody { all }))
                .await?;
            for n in removed {
                println!("{n}");
            }
        }
    }
    Ok(())
}

/// A name as a URI path segment: names are checked by the daemon; anything
/// outside the name alphabet is percent-encoded so it reaches it intact.
fn path_part(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_.-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
