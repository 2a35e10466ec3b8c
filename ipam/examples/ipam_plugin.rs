//! The allocator served to dockerd as an IPAM plugin, with its state in memory and
//! every change printed as one JSON line (`change {...}`), so you can watch what the
//! engine allocates.
//!
//! ```text
//! cargo run -p ipam --example ipam_plugin -- --name netipam
//! docker network create --ipam-driver netipam -d <network driver> n1
//! ```
//!
//! netd serves the same driver with its state in its store.

use clap::Parser;
use ipam::docker::DockerIpam;
use ipam::{Change, Config, Ipam, Journal};
use plugin_api::{Plugin, Registration};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Parser)]
struct Args {
    /// Plugin name: the engine's `--ipam-driver` value and the socket's file name.
    #[arg(long, default_value = "netipam")]
    name: String,
    /// Directory for the socket (the engine scans /run/docker/plugins).
    #[arg(long, default_value = plugin_api::server::DEFAULT_SOCKET_DIR)]
    socket_dir: PathBuf,
    /// Host id the IPv6 ULA prefix is derived from.
    #[arg(long, default_value = "ipam-example")]
    host_id: String,
}

/// Prints each change; a daemon would write it to its store instead.
struct PrintJournal;

impl Journal for PrintJournal {
    type Error = serde_json::Error;
    fn record(&mut self, change: &Change) -> Result<(), Self::Error> {
        println!("change {}", serde_json::to_string(change)?);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ipam = Ipam::with_journal(Config::defaults(&args.host_id), PrintJournal)?;
    let driver = DockerIpam::new(Arc::new(Mutex::new(ipam)));
    let registration = Registration::SocketIn(args.socket_dir);
    plugin_api::serve_until_signal(
        &args.name,
        &registration,
        Plugin::new().ipam(driver).router(),
    )
    .await?;
    Ok(())
}
