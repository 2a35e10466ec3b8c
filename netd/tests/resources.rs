//! netd's resources stay bounded: idle and half-sent connections are closed,
//! memory does not grow with sandboxes that came and went, and a sandbox costs one
//! descriptor.

mod common;

use common::{runtime, Netd};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// What the server did with a connection: closed it, or answered `HTTP/1.1 NNN`.
fn fate(stream: &mut UnixStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => "closed".into(),
        Ok(n) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "closed".into(),
        Err(e) => format!("still open ({e})"),
    }
}

#[test]
fn idle_and_half_sent_connections_are_closed() {
    let netd = Netd::start_with_args(true, &["--idle-timeout", "2"]);
    let baseline = netd.open_fds();
    let sockets = [
        netd.client.socket().to_path_buf(),
        netd.host.plugin_dir().join("netd.sock"),
    ];
    let mut idle = Vec::new();
    let mut half = Vec::new();
    for (socket, path) in sockets
        .iter()
        .zip(["/v1/networks", "/NetworkDriver.CreateNetwork"])
    {
        for _ in 0..300 {
            idle.push(UnixStream::connect(socket).unwrap());
        }
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"Name\":");
        for _ in 0..50 {
            let mut s = UnixStream::connect(socket).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            half.push(s);
        }
        // Half a request head, too.
        let mut s = UnixStream::connect(socket).unwrap();
        s.write_all(b"GET /v1/info HTTP/1.1\r\nHo").unwrap();
        idle.push(s);
    }
    // Meanwhile the daemon answers others.
    let started = Instant::now();
    runtime().block_on(netd.client.info()).unwrap();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    for s in &mut idle {
        assert_eq!(fate(s), "closed");
    }
    for s in &mut half {
        let f = fate(s);
        assert!(f == "HTTP/1.1 408 Request Timeout" || f == "closed", "{f}");
    }
    drop((idle, half));
    tests::wait_for("descriptors back", Duration::from_secs(5), || {
        Ok((netd.open_fds() <= baseline + 2).then_some(()))
    })
    .unwrap();
}

#[test]
fn memory_and_descriptors_stay_flat_as_sandboxes_come_and_go() {
    let netd = Netd::start();
    let c = &netd.client;
    let rt = runtime();
    // The case is 10 cycles of 1,000: NETD_RSS_SANDBOXES and NETD_RSS_CYCLES
    // run it at that size.
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let per_cycle = env("NETD_RSS_SANDBOXES", 300);
    let cycles = env("NETD_RSS_CYCLES", 6).max(3);
    // The firewall's check runs nft every second (three pipes while it runs):
    // the fewest of a few looks is the baseline.
    let baseline_fds = (0..5)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(70));
            netd.open_fds()
        })
        .min()
        .unwrap_or_default();
    let mut rss = Vec::new();
    for cycle in 0..cycles {
        rt.block_on(async {
            let mut made = Vec::new();
            for i in 0..per_cycle {
                let sb = c
                    .create_sandbox(&common::sandbox(&format!("c{cycle}s{i}")))
                    .await
                    .unwrap();
                made.push(sb.id);
            }
            if cycle == 0 {
                // One descriptor per sandbox netd made: its kept netlink socket.
                let fds = netd.open_fds() - baseline_fds;
                assert!(
                    (per_cycle..per_cycle + 5).contains(&fds),
                    "{fds} descriptors for {per_cycle} sandboxes"
                );
            }
            for id in made {
                c.delete_sandbox(&id).await.unwrap();
            }
        });
        rss.push(netd.rss_kib());
    }
    eprintln!("netd RSS after each cycle of {per_cycle} sandboxes (KiB): {rss:?}");
    assert!(netd.open_fds() <= baseline_fds + 2);
    // Warmed up after two cycles; from there on, flat (allocator noise aside).
    let warm = rss[1];
    let last = rss[cycles - 1];
    assert!(
        last <= warm + warm / 10 + 2048,
        "RSS grew from {warm} to {last} KiB over {} cycles: {rss:?}",
        cycles - 2
    );
}
