//! Times attach and detach of N sandboxes through netd's native API. `bench/attach`
//! starts netd (in a network namespace of its own) and runs this against it; it
//! prints one JSON line.
//!
//! Phases, in order, on one network:
//! 1. create N sandboxes (netd makes their namespaces), timed on its own;
//! 2. N attaches one after another (each: an endpoint on the network, joined to a
//!    sandbox as eth0 with an address), a pause (`--pause-ms`), then N detaches
//!    one after another;
//! 3. for each `--parallel K`: N attaches, the pause, then N detaches with at most
//!    K calls in flight (K = N: all at once);
//! 4. delete the sandboxes, timed on its own.
//!
//! Times are wall-clock in this process around the API calls, so each includes a
//! unix-socket connection and an HTTP exchange; `*_ms` is total / N.
//!
//! ```text
//! cargo run --release -p netd --example attach_bench -- --socket S --n 50 --network bench --parallel 8,50
//! ```

use anyhow::{bail, Context};
use clap::Parser;
use netd::client::Client;
use netd::controller::{Attach, SandboxCreate};
use netd::model::EndpointRecord;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Parser, Debug)]
#[command(about = "Time netd attach/detach of N sandboxes; prints one JSON line")]
struct Args {
    /// netd's API socket.
    #[arg(long, default_value = netd::client::DEFAULT_SOCKET)]
    socket: String,
    /// How many sandboxes.
    #[arg(long, default_value_t = 50)]
    n: usize,
    /// The network to attach to (it must exist).
    #[arg(long, default_value = "bench")]
    network: String,
    /// Calls in flight in the parallel phase; repeat or separate by commas to run
    /// it several times. Default: N (all at once).
    #[arg(long, value_delimiter = ',')]
    parallel: Vec<usize>,
    /// Prefix of the sandboxes' names.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Pause between an attach phase and its detach phase, in ms: an attach's
    /// gratuitous ARP goes out in the background once its bridge port forwards (up
    /// to about 1.1 s later); the pause lets those finish, so a detach phase times
    /// detaches alone, as the kernel floor's links (which send none) are timed.
    #[arg(long, default_value_t = 1500)]
    pause_ms: u64,
}

/// Per-operation times of one phase, in ms.
struct Phase {
    total: Duration,
    each: Vec<f64>,
}

impl Phase {
    fn per_op(&self, n: usize) -> f64 {
        self.total.as_secs_f64() * 1000.0 / n as f64
    }

    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.each.clone();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    }
}

/// Seconds netd spent answering `route` so far, from its `/metrics` page: the
/// server's side of a phase, without the client's connection and HTTP exchange.
async fn server_secs(client: &Client, route: &str) -> anyhow::Result<f64> {
    let page = client.metrics().await.context("netd: GET /metrics")?;
    let needle = format!("route=\"{route}\"");
    Ok(page
        .lines()
        .filter(|l| l.starts_with("netd_api_request_seconds_total{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

const ATTACH_ROUTE: &str = "/v1/sandboxes/{key}/attach";
const DETACH_ROUTE: &str = "/v1/sandboxes/{key}/detach";

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn check(ep: &EndpointRecord, sandbox: &str) -> anyhow::Result<()> {
    let joined = ep.join.as_ref().map(|j| j.interface.as_str());
    if ep.addresses.is_empty() || joined != Some("eth0") {
        bail!(
            "attach to sandbox {sandbox} answered endpoint {} with addresses {:?} and interface {:?}; want an address and eth0",
            ep.id,
            ep.addresses,
            joined
        );
    }
    Ok(())
}

async fn attach_serial(
    client: &Client,
    sandboxes: &[String],
    req: &Attach,
) -> anyhow::Result<(Phase, Vec<String>)> {
    let mut eps = Vec::with_capacity(sandboxes.len());
    let mut each = Vec::with_capacity(sandboxes.len());
    let started = Instant::now();
    for sb in sandboxes {
        let t = Instant::now();
        let ep = client
            .attach(sb, req)
            .await
            .with_context(|| format!("netd: attach sandbox {sb} to network {}", req.network))?;
        each.push(t.elapsed().as_secs_f64() * 1000.0);
        check(&ep, sb)?;
        eps.push(ep.id);
    }
    let total = started.elapsed();
    Ok((Phase { total, each }, eps))
}

async fn detach_serial(
    client: &Client,
    sandboxes: &[String],
    eps: &[String],
) -> anyhow::Result<Phase> {
    let mut each = Vec::with_capacity(sandboxes.len());
    let started = Instant::now();
    for (sb, ep) in sandboxes.iter().zip(eps) {
        let t = Instant::now();
        client
            .detach(sb, ep)
            .await
            .with_context(|| format!("netd: detach endpoint {ep} from sandbox {sb}"))?;
        each.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Phase {
        total: started.elapsed(),
        each,
    })
}

/// Run `op` once per sandbox with at most `k` in flight; all tasks are spawned at
/// once and wait on a semaphore.
async fn parallel<T, F, Fut>(
    sandboxes: &[String],
    k: usize,
    op: F,
) -> anyhow::Result<(Phase, Vec<T>)>
where
    T: Send + 'static,
    F: Fn(usize, String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(k.max(1)));
    let started = Instant::now();
    let tasks: Vec<_> = sandboxes
        .iter()
        .enumerate()
        .map(|(i, sb)| {
            let gate = gate.clone();
            let fut = op(i, sb.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await?;
                let t = Instant::now();
                let out = fut.await?;
                Ok::<_, anyhow::Error>((out, t.elapsed().as_secs_f64() * 1000.0))
            })
        })
        .collect();
    let mut outs = Vec::with_capacity(tasks.len());
    let mut each = Vec::with_capacity(tasks.len());
    let mut first_err = None;
    for t in tasks {
        match t.await.context("task panicked")? {
            Ok((out, ms)) => {
                outs.push(out);
                each.push(ms);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok((
        Phase {
            total: started.elapsed(),
            each,
        },
        outs,
    ))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = args.n;
    if n == 0 {
        bail!("--n must be at least 1");
    }
    let client = Client::new(&args.socket);
    let parallels = if args.parallel.is_empty() {
        vec![n]
    } else {
        args.parallel.clone()
    };
    let req = Attach {
        network: args.network.clone(),
        ..Default::default()
    };

    // 1. Sandboxes (netd creates and pins their namespaces).
    let started = Instant::now();
    let mut sandboxes = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{}{i}", args.prefix);
        let sb = client
            .create_sandbox(&SandboxCreate {
                name: Some(name.clone()),
                ..Default::default()
            })
            .await
            .with_context(|| format!("netd: create sandbox {name}"))?;
        sandboxes.push(sb.id);
    }
    let sandbox_create_ms = started.elapsed().as_secs_f64() * 1000.0 / n as f64;

    // 2. Serial.
    let s0 = server_secs(&client, ATTACH_ROUTE).await?;
    let (attach, eps) = attach_serial(&client, &sandboxes, &req).await?;
    let attach_server_ms = (server_secs(&client, ATTACH_ROUTE).await? - s0) * 1000.0 / n as f64;
    let pause = Duration::from_millis(args.pause_ms);
    tokio::time::sleep(pause).await;
    let s0 = server_secs(&client, DETACH_ROUTE).await?;
    let detach = detach_serial(&client, &sandboxes, &eps).await?;
    let detach_server_ms = (server_secs(&client, DETACH_ROUTE).await? - s0) * 1000.0 / n as f64;

    // 3. Parallel, once per K.
    let mut par = Vec::new();
    for &k in &parallels {
        let (pattach, eps) = parallel(&sandboxes, k, |_, sb| {
            let (c, req) = (client.clone(), req.clone());
            async move {
                let ep = c
                    .attach(&sb, &req)
                    .await
                    .with_context(|| format!("netd: parallel attach sandbox {sb}"))?;
                check(&ep, &sb)?;
                Ok(ep.id)
            }
        })
        .await?;
        tokio::time::sleep(pause).await;
        let (pdetach, _) = parallel(&sandboxes, k, |i, sb| {
            let (c, ep) = (client.clone(), eps[i].clone());
            async move {
                c.detach(&sb, &ep)
                    .await
                    .with_context(|| format!("netd: parallel detach {ep} from sandbox {sb}"))?;
                Ok(())
            }
        })
        .await?;
        par.push(json!({
            "k": k,
            "attach_ms_per": r2(pattach.per_op(n)),
            "detach_ms_per": r2(pdetach.per_op(n)),
            "detach_p50_ms": r2(pdetach.quantile(0.5)),
            "detach_max_ms": r2(pdetach.quantile(1.0)),
        }));
    }

    // 4. Sandboxes away.
    let started = Instant::now();
    for sb in &sandboxes {
        client
            .delete_sandbox(sb)
            .await
            .with_context(|| format!("netd: delete sandbox {sb}"))?;
    }
    let sandbox_delete_ms = started.elapsed().as_secs_f64() * 1000.0 / n as f64;

    // The headline parallel figure: the largest K.
    let headline = par
        .iter()
        .max_by_key(|p| p["k"].as_u64().unwrap_or(0))
        .map(|p| p["detach_ms_per"].clone())
        .unwrap_or(serde_json::Value::Null);
    let out = json!({
        "n": n,
        "sandbox_create_ms": r2(sandbox_create_ms),
        "attach_ms": r2(attach.per_op(n)),
        "attach_p50_ms": r2(attach.quantile(0.5)),
        "attach_max_ms": r2(attach.quantile(1.0)),
        "attach_server_ms": r2(attach_server_ms),
        "detach_ms": r2(detach.per_op(n)),
        "detach_p50_ms": r2(detach.quantile(0.5)),
        "detach_max_ms": r2(detach.quantile(1.0)),
        "detach_server_ms": r2(detach_server_ms),
        "parallel_detach_ms_per": headline,
        "parallel": par,
        "sandbox_delete_ms": r2(sandbox_delete_ms),
    });
    println!("{out}");
    Ok(())
}
