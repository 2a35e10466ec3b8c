//! Allocator benchmarks: `cargo bench -p ipam --bench allocator`.
//!
//! First a short report against the targets (printed as ratios), then criterion's
//! measurements. Results are recorded in docs/benchmarks.md.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ipam::{Config, Ipam, PoolId, PoolRequest};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn pool(ipam: &mut Ipam, subnet: &str) -> PoolId {
    ipam.request_pool(&PoolRequest {
        subnet: Some(subnet.parse().unwrap()),
        ..PoolRequest::default()
    })
    .unwrap()
}

fn fresh(subnet: &str) -> (Ipam, PoolId) {
    let mut ipam = Ipam::new(Config::defaults("bench")).unwrap();
    let id = pool(&mut ipam, subnet);
    (ipam, id)
}

/// A pool filled to `level`: "empty", "half" (lowest half taken) or "near_full"
/// (everything taken, then every 1,000th address released: scattered holes).
fn filled(subnet: &str, level: &str) -> (Ipam, PoolId) {
    let (mut ipam, id) = fresh(subnet);
    let size = ipam.pool_info(&id).unwrap().size - 2;
    let count = match level {
        "empty" => 0,
        "half" => size / 2,
        _ => size,
    };
    let mut addrs: Vec<IpAddr> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        addrs.push(ipam.request_address(&id, None).unwrap().addr());
    }
    if level == "near_full" {
        for a in addrs.iter().step_by(1000) {
            ipam.release_address(&id, *a).unwrap();
        }
    }
    (ipam, id)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// One-shot measurements against the targets, printed as ratios.
fn report() {
    let (mut ipam, id) = fresh("10.0.0.0/16");
    let start = Instant::now();
    let mut n = 0u64;
    while ipam.request_address(&id, None).is_ok() {
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "fill a /16: {n} addresses, {:.1} M allocations/s (target >= 1 M/s: {:.1}x)",
        rate / 1e6,
        rate / 1e6
    );

    let rss_before = rss_bytes();
    let (mut ipam, id) = fresh("fd00:1::/64");
    let start = Instant::now();
    for _ in 0..1_000_000 {
        ipam.request_address(&id, None).unwrap();
    }
    let took = start.elapsed();
    let heap = ipam.pool_info(&id).unwrap().heap_bytes;
    let rss = rss_bytes().saturating_sub(rss_before);
    let limit = 64.0 * 1024.0 * 1024.0;
    println!(
        "1M IPv6 addresses in a /64: {:.0} ms; address set {heap} bytes, RSS growth {} KiB \
         (target < 64 MiB: {:.0}x under by RSS)",
        took.as_secs_f64() * 1e3,
        rss / 1024,
        limit / (rss.max(4096) as f64)
    );
    black_box(ipam);
}

fn alloc_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc_release");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    for subnet in ["10.0.0.0/16", "10.0.0.0/8"] {
        for level in ["empty", "half", "near_full"] {
            let (mut ipam, id) = filled(subnet, level);
            group.bench_with_input(BenchmarkId::new(subnet, level), &level, |b, _| {
                b.iter(|| {
                    let a = ipam.request_address(&id, None).unwrap();
                    ipam.release_address(&id, a.addr()).unwrap();
                })
            });
        }
    }
    group.finish();
}

fn fill(c: &mut Criterion) {
    let mut group = c.benchmark_group("fill");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(65_534));
    group.bench_function("ipv4 /16", |b| {
        b.iter_batched(
            || fresh("10.0.0.0/16"),
            |(mut ipam, id)| {
                while ipam.request_address(&id, None).is_ok() {}
                ipam
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("ipv6 /64, 1M addresses", |b| {
        b.iter_batched(
            || fresh("fd00:1::/64"),
            |(mut ipam, id)| {
                for _ in 0..1_000_000 {
                    ipam.request_address(&id, None).unwrap();
                }
                ipam
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn choose_pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("choose_pool");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    let mut ipam = Ipam::new(Config::defaults("bench")).unwrap();
    for _ in 0..1000 {
        ipam.request_pool(&PoolRequest::default()).unwrap();
    }
    let exclude = vec![
        "172.24.0.0/16".parse().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
    ];
    group.bench_function("1000 taken", |b| {
        b.iter(|| {
            let id = ipam
                .request_pool(&PoolRequest {
                    exclude: exclude.clone(),
                    ..PoolRequest::default()
                })
                .unwrap();
            ipam.release_pool(&id).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, alloc_release, fill, choose_pool);

fn main() {
    report();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
