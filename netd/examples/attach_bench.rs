//! Times attach and detach of N sandboxes through netd's native API (used by
//! bench/attach, which starts netd and the peers). Prints one JSON line.

use netd::client::Client;
use netd::controller::{Attach, SandboxCreate};
use std::time::Instant;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let client = Client::new(arg("--socket").unwrap_or_else(|| "/run/netd/netd.sock".into()));
    let n: usize = arg("--n").unwrap_or_else(|| "50".into()).parse()?;
    let network = arg("--network").unwrap_or_else(|| "bench".into());
    let mut sandboxes = Vec::new();
    for i in 0..n {
        let sb = client
            .create_sandbox(&SandboxCreate {
                name: Some(format!("b{i}")),
                ..Default::default()
            })
            .await?;
        sandboxes.push(sb.id);
    }
    let attach = Attach {
        network,
        ..Default::default()
    };
    let started = Instant::now();
    let mut eps = Vec::new();
    for sb in &sandboxes {
        eps.push(client.attach(sb, &attach).await?.id);
    }
    let attach_ms = started.elapsed().as_secs_f64() * 1000.0 / n as f64;
    let started = Instant::now();
    for (sb, ep) in sandboxes.iter().zip(&eps) {
        client.detach(sb, ep).await?;
    }
    let detach_ms = started.elapsed().as_secs_f64() * 1000.0 / n as f64;
    // Again, detaching all at once.
    let mut eps = Vec::new();
    for sb in &sandboxes {
        eps.push(client.attach(sb, &attach).await?.id);
    }
    let started = Instant::now();
    let tasks: Vec<_> = sandboxes
        .iter()
        .zip(eps)
        .map(|(sb, ep)| {
            let (c, sb) = (client.clone(), sb.clone());
            tokio::spawn(async move { c.detach(&sb, &ep).await })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let parallel_ms = started.elapsed().as_secs_f64() * 1000.0 / n as f64;
    for sb in &sandboxes {
        client.delete_sandbox(sb).await?;
    }
    println!("{{\"attach_ms\":{attach_ms:.2},\"detach_ms\":{detach_ms:.2},\"parallel_detach_ms_per\":{parallel_ms:.2}}}");
    Ok(())
}
