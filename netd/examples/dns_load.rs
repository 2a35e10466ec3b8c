//! The load side of `bench/dns`, run inside a sandbox's network namespace:
//! A queries for the sandboxes' names to a network's DNS responder, one at a
//! time (latency: p50, p99) and then from many sockets at once (queries per
//! second). Every answer is checked: an answer without an address, or with
//! another query's id, counts as a failure.
//!
//! usage: dns_load SERVER PREFIX COUNT [SECONDS] [SOCKETS]
//!   asks for PREFIX0 .. PREFIX{COUNT-1}

use anyhow::{bail, Context, Result};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// One query for `name`: Ok(latency) if it got an address back.
async fn ask(sock: &UdpSocket, id: u16, name: &str, buf: &mut [u8]) -> Result<Duration> {
    let query = netd::dns::query(id, name, RecordType::A);
    let started = Instant::now();
    sock.send(&query).await?;
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(buf))
        .await
        .context("no answer in 2 s")??;
    let took = started.elapsed();
    let m = Message::from_vec(&buf[..n])?;
    if m.metadata.id != id
        || m.metadata.response_code != ResponseCode::NoError
        || m.answers.is_empty()
    {
        bail!("bad answer for {name}: {:?}", m.metadata.response_code);
    }
    Ok(took)
}

async fn socket(server: SocketAddr) -> Result<UdpSocket> {
    let sock = UdpSocket::bind("0.0.0.0:0").await?;
    sock.connect(server).await?;
    Ok(sock)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: dns_load SERVER PREFIX COUNT [SECONDS] [SOCKETS]");
    }
    let server = SocketAddr::new(args[1].parse::<IpAddr>()?, 53);
    let prefix = args[2].clone();
    let count: usize = args[3].parse()?;
    let seconds: u64 = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let sockets: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(16);
    let names: Arc<Vec<String>> = Arc::new((0..count).map(|i| format!("{prefix}{i}")).collect());

    // Latency: one query at a time, every name five times over.
    let sock = socket(server).await?;
    let mut buf = vec![0u8; 1500];
    for (i, name) in names.iter().take(100).enumerate() {
        ask(&sock, i as u16, name, &mut buf).await?; // warm-up
    }
    let mut times = Vec::with_capacity(count * 5);
    for round in 0..5 {
        for (i, name) in names.iter().enumerate() {
            let id = (round * count + i) as u16;
            times.push(ask(&sock, id, name, &mut buf).await?);
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!("latency_p50_us {}", pct(0.50).as_micros());
    println!("latency_p99_us {}", pct(0.99).as_micros());
    println!("latency_queries {}", times.len());

    // Throughput: `sockets` clients, each with one query in flight, for `seconds`.
    let answered = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for s in 0..sockets {
        let (names, answered, failed) = (
            Arc::clone(&names),
            Arc::clone(&answered),
            Arc::clone(&failed),
        );
        tasks.push(tokio::spawn(async move {
            let sock = socket(server).await?;
            let mut buf = vec![0u8; 1500];
            let mut i = s;
            while Instant::now() < until {
                let name = &names[i % names.len()];
                match ask(&sock, i as u16, name, &mut buf).await {
                    Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                i += sockets;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("qps {:.0}", answered.load(Ordering::Relaxed) as f64 / secs);
    println!("qps_sockets {sockets}");
    println!("failed {}", failed.load(Ordering::Relaxed));
    Ok(())
}
