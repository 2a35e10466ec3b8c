//! The ports benchmark (`bench/ports` runs it; ignored in the suite: timings are
//! never pass/fail). Prints, from one run on one host:
//! - native attach with 0, 1 and 200 ports, and publishing one port when 2,000 are
//!   published already against when none are (ports are map elements: the cost
//!   should not grow);
//! - `docker run -p 20000-20199:20000-20199` on dockerd's own bridge driver (its
//!   iptables rules and userland proxy, as shipped) against the same on a netd
//!   network, alternating, with the ratio.

mod common;

use common::{attach, network, runtime, sandbox, tcp, Netd};
use std::time::{Duration, Instant};
use tests::Dockerd;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn ports(first_host: u16, count: u16) -> Vec<firewall::PortRequest> {
    (0..count).map(|i| tcp(first_host + i, 1000 + i)).collect()
}

#[test]
#[ignore]
fn ports_bench() {
    let netd = Netd::start_with_docker();
    let c = &netd.client;
    let rt = runtime();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(9);
    rt.block_on(async {
        c.create_network(&network("n1", "10.130.0.0/16"))
            .await
            .unwrap();
        for i in 0..rounds {
            c.create_sandbox(&sandbox(&format!("s{i}"))).await.unwrap();
        }
    });
    let timed = |count: u16| -> Duration {
        let mut times = Vec::new();
        for i in 0..rounds {
            let sb = format!("s{i}");
            let mut req = attach("n1");
            req.ports = ports(30000, count);
            let t = Instant::now();
            let ep = rt.block_on(c.attach(&sb, &req)).unwrap();
            times.push(t.elapsed());
            rt.block_on(c.detach(&sb, &ep.id)).unwrap();
        }
        median(times)
    };
    let none = timed(0);
    let one = timed(1);
    let many = timed(200);
    println!("native attach, median of {rounds}:");
    println!("  0 ports    {}", ms(none));
    println!("  1 port     {}", ms(one));
    println!(
        "  200 ports  {}  ({:.1}x of 1 port)",
        ms(many),
        many.as_secs_f64() / one.as_secs_f64()
    );

    // One more port with 2,000 published already.
    let publish_one = |sb: &str, port: u16| -> Duration {
        let mut times = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let ep = rt.block_on(async {
                let ep = c.sandbox(sb).await.unwrap().endpoints[0].clone();
                c.set_ports(&ep, &[tcp(port, 80)]).await.unwrap();
                ep
            });
            times.push(t.elapsed());
            rt.block_on(c.set_ports(&ep, &[])).unwrap();
        }
        median(times)
    };
    rt.block_on(async {
        c.attach("s0", &attach("n1")).await.unwrap();
    });
    let empty = publish_one("s0", 40000);
    rt.block_on(async {
        for i in 0..10u16 {
            let mut req = attach("n1");
            req.ports = ports(41000 + i * 200, 200);
            c.attach(&format!("s{}", 1 + i as usize % (rounds - 1)), &req)
                .await
                .unwrap();
        }
    });
    let full = publish_one("s0", 40000);
    println!("publish one port, median of {rounds}:");
    println!("  none published   {}", ms(empty));
    println!(
        "  2,000 published  {}  ({:.2}x)",
        ms(full),
        full.as_secs_f64() / empty.as_secs_f64()
    );

    // docker run -p with 200 ports: dockerd's own driver against netd's.
    let docker = Dockerd::start_with_iptables(&netd.host).unwrap();
    docker
        .run(&["network", "create", "--subnet", "10.131.0.0/24", "own"])
        .unwrap();
    docker
        .run(&[
            "network",
            "create",
            "-d",
            "netd",
            "--ipam-driver",
            "netd",
            "--subnet",
            "10.132.0.0/24",
            "ours",
        ])
        .unwrap();
    let run = |net: &str| -> Duration {
        let t = Instant::now();
        docker
            .run(&[
                "run",
                "-d",
                "--name",
                "pbench",
                "--network",
                net,
                "-p",
                "20000-20199:20000-20199",
                "busybox",
                "sleep",
                "1000",
            ])
            .unwrap();
        let took = t.elapsed();
        docker.run(&["rm", "-f", "pbench"]).unwrap();
        took
    };
    let (mut own, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        own.push(run("own"));
        ours.push(run("ours"));
    }
    let (own, ours) = (median(own), median(ours));
    println!("docker run -p 20000-20199:20000-20199, median of 3, alternating:");
    println!("  dockerd's bridge driver  {}", ms(own));
    println!("  netd                     {}", ms(ours));
    println!(
        "  ratio dockerd/netd       {:.1}x",
        own.as_secs_f64() / ours.as_secs_f64()
    );
}
