//! Times what gets slower as netd holds more: creating network #10 and network #N
//! (each the median of 30 creations, deleted again, once the networks before it
//! exist; with a subnet netd chooses, as `docker network create` without
//! `--subnet`),
//! inspecting a sandbox by name among M, and listing M sandboxes. `bench/scale`
//! starts netd (in a network namespace of its own) and runs this against it; it
//! prints one JSON line.
//!
//! Times are wall-clock in this process around each API call (a unix-socket
//! exchange included).
//!
//! ```text
//! cargo run --release -p netd --example scale_bench -- --socket S --networks 1000 --sandboxes 2000
//! ```

use anyhow::Context;
use clap::Parser;
use netd::client::Client;
use netd::controller::{NetworkCreate, SandboxCreate};
use serde_json::json;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Time network creation, inspection and listing at scale; prints one JSON line")]
struct Args {
    /// netd's API socket.
    #[arg(long, default_value = netd::client::DEFAULT_SOCKET)]
    socket: String,
    /// Networks to create, one after another.
    #[arg(long, default_value_t = 1000)]
    networks: usize,
    /// Sandboxes to create before the lookups.
    #[arg(long, default_value_t = 2000)]
    sandboxes: usize,
    /// Lookups and listings timed.
    #[arg(long, default_value_t = 200)]
    lookups: usize,
    /// Leave everything in place at the end.
    #[arg(long)]
    keep: bool,
}

/// Samples of one network's creation.
const SAMPLES: usize = 30;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// Create networks until `count - 1` exist (timing each into `create`), then
/// network #`count` [`SAMPLES`] times, deleting it after each: its median.
async fn create_at(c: &Client, count: usize, create: &mut Vec<f64>) -> anyhow::Result<f64> {
    while create.len() < count - 1 {
        let i = create.len();
        let t = Instant::now();
        c.create_network(&NetworkCreate {
            name: format!("scale{i}"),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating network #{}", i + 1))?;
        create.push(ms(t));
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        c.create_network(&NetworkCreate {
            name: "scale-probe".into(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating network #{count}"))?;
        samples.push(ms(t));
        c.delete_network("scale-probe").await?;
    }
    Ok(median(&samples))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let c = Client::new(&args.socket);
    // Network #10 and network #N, each created (and deleted again) `SAMPLES` times
    // once the networks before it exist: medians of many samples, so a burst of
    // noise on the machine does not decide the comparison.
    let mut create = Vec::with_capacity(args.networks);
    let first = create_at(&c, 10.min(args.networks), &mut create).await?;
    let last = create_at(&c, args.networks, &mut create).await?;

    for i in 0..args.sandboxes {
        let req = SandboxCreate {
            name: Some(format!("scale-sb{i}")),
            ..Default::default()
        };
        c.create_sandbox(&req)
            .await
            .with_context(|| format!("creating sandbox #{}", i + 1))?;
    }
    let mut inspect = Vec::with_capacity(args.lookups);
    for i in 0..args.lookups {
        // Spread over the whole set (a prime stride).
        let name = format!("scale-sb{}", (i * 7919) % args.sandboxes.max(1));
        let t = Instant::now();
        c.sandbox(&name)
            .await
            .context("inspecting a sandbox by name")?;
        inspect.push(ms(t));
    }
    let mut list = Vec::new();
    for _ in 0..args.lookups.min(50) {
        let t = Instant::now();
        let all = c.sandboxes().await.context("listing sandboxes")?;
        list.push(ms(t));
        anyhow::ensure!(
            all.len() == args.sandboxes,
            "listed {} sandboxes",
            all.len()
        );
    }
    if !args.keep {
        for i in 0..args.sandboxes {
            c.delete_sandbox(&format!("scale-sb{i}")).await?;
        }
        for i in 0..args.networks - 1 {
            c.delete_network(&format!("scale{i}")).await?;
        }
    }
    let by_hundred: Vec<f64> = create.chunks(100).map(median).collect();
    println!(
        "{}",
        json!({
            "networks": args.networks,
            "create_median_by_hundred_ms": by_hundred,
            "create_first_ms": first,
            "create_last_ms": last,
            "create_ratio": last / first,
            "sandboxes": args.sandboxes,
            "inspect_median_ms": median(&inspect),
            "inspect_p99_ms": quantile(&inspect, 0.99),
            "list_median_ms": median(&list),
            "list_p99_ms": quantile(&list, 0.99),
        })
    );
    Ok(())
}
