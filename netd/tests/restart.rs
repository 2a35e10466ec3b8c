//! netd can die at any moment: running sandboxes stay connected, and a restart
//! finds the store intact and the kernel reconciled with it.

mod common;

use common::{attach, ipv4, network, runtime, sandbox, Netd};
use nix::sys::signal::Signal;
use std::time::Duration;

fn setup(
    netd: &Netd,
) -> (
    netd::model::SandboxRecord,
    netd::model::SandboxRecord,
    String,
) {
    let c = &netd.client;
    runtime().block_on(async {
        c.create_network(&network("n1", "10.74.0.0/24"))
            .await
            .unwrap();
        let a = c.create_sandbox(&sandbox("a")).await.unwrap();
        let b = c.create_sandbox(&sandbox("b")).await.unwrap();
        let at = attach("n1");
        c.attach("a", &at).await.unwrap();
        let eb = c.attach("b", &at).await.unwrap();
        (a, b, ipv4(&eb))
    })
}

#[test]
fn kill_9_and_restart_keeps_traffic_flowing_and_state_intact() {
    let mut netd = Netd::start();
    let (a, _b, b_ip) = setup(&netd);
    let c = netd.client.clone();
    let rt = runtime();
    let before = rt.block_on(async {
        (
            c.networks().await.unwrap(),
            c.endpoints().await.unwrap(),
            c.sandboxes().await.unwrap(),
        )
    });
    let links_before = netd.links();

    // 40 pings, 0.1 s apart, across the kill and the restart.
    let net = format!("--net={}", a.netns.display());
    let pinger = netd
        .host
        .command("nsenter")
        .args([
            net.as_str(),
            "busybox",
            "ping",
            "-c",
            "40",
            "-i",
            "0.1",
            "-W",
            "1",
            b_ip.as_str(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    netd.launch();
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("40 packets transmitted, 40 packets received"),
        "pings were lost:\n{text}"
    );

    let after = rt.block_on(async {
        (
            c.networks().await.unwrap(),
            c.endpoints().await.unwrap(),
            c.sandboxes().await.unwrap(),
        )
    });
    assert_eq!(before, after, "state changed across the restart");
    assert_eq!(
        netd.links(),
        links_before,
        "links changed across the restart"
    );

    // And it keeps working: a new sandbox gets the next address, not a taken one.
    rt.block_on(async {
        let s = c.create_sandbox(&sandbox("c")).await.unwrap();
        let ep = c.attach("c", &attach("n1")).await.unwrap();
        let taken: Vec<String> = before.1.iter().map(ipv4).collect();
        assert!(
            !taken.contains(&ipv4(&ep)),
            "{} handed out twice",
            ipv4(&ep)
        );
        assert!(netd.pings(&s, &b_ip));
    });
}

#[test]
fn restart_recreates_a_missing_bridge_and_removes_orphans() {
    let mut netd = Netd::start();
    let (a, b, b_ip) = setup(&netd);
    let c = netd.client.clone();
    let rt = runtime();
    let net = rt.block_on(c.network("n1")).unwrap().network;
    let bridge = format!("br-{}", &net.id[..12]);
    let hosts = std::fs::read_to_string(&b.hosts).unwrap();
    assert!(hosts.contains(&b_ip), "{hosts}");
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(5)).unwrap();

    // While netd is down: its bridge disappears (taking the ports with it), and
    // links of its naming that it never made show up.
    netd.host.run("ip", &["link", "del", &bridge]).unwrap();
    netd.host
        .run(
            "ip",
            &[
                "link",
                "add",
                "vn0123456789ab",
                "type",
                "veth",
                "peer",
                "name",
                "orphanpeer",
            ],
        )
        .unwrap();
    netd.host
        .run("ip", &["link", "add", "br-0123456789ab", "type", "bridge"])
        .unwrap();
    netd.host
        .run("ip", &["link", "add", "keepme", "type", "bridge"])
        .unwrap();
    // Sandbox files are not synced as they are written: a crash can lose one.
    std::fs::write(&b.hosts, "").unwrap();

    netd.launch();
    assert_eq!(
        std::fs::read_to_string(&b.hosts).unwrap(),
        hosts,
        "the hosts file was not rewritten"
    );
    let links = netd.links();
    assert!(links.contains(&bridge), "bridge not recreated: {links:?}");
    assert!(
        !links
            .iter()
            .any(|l| l == "vn0123456789ab" || l == "br-0123456789ab"),
        "orphans left: {links:?}"
    );
    assert!(
        links.contains(&"keepme".to_string()),
        "a link netd does not own was removed: {links:?}"
    );
    // The veths were still there (deleting a bridge only detaches its ports):
    // reattached, the sandboxes reach each other again.
    assert!(
        netd.pings(&a, &b_ip),
        "a cannot reach b after reconcile\n{}",
        netd.log()
    );
}
