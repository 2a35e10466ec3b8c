//! `docker run -p` on a netd network, with a real dockerd that runs its own
//! iptables rules (FORWARD policy drop) beside netd's table: the port answers from
//! outside, netd shows it, containers get out, dockerd's own bridge network keeps
//! working and stays isolated from netd's, and the port goes with the container.

mod common;

use common::{Netd, Outside, HOST_ADDR, OUTSIDE_ADDR};
use std::time::Duration;
use tests::Dockerd;

#[test]
fn docker_run_publish_works_beside_dockerds_own_iptables() {
    let netd = Netd::start_with_docker();
    let outside = Outside::connect(&netd);
    let docker = Dockerd::start_with_iptables(&netd.host).unwrap();
    let run = |args: &[&str]| {
        docker
            .run(args)
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}\n--- netd log\n{}", netd.log()))
    };
    run(&[
        "network",
        "create",
        "-d",
        "netd",
        "--ipam-driver",
        "netd",
        "--subnet",
        "10.125.0.0/24",
        "n1",
    ]);
    let web = run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "n1",
        "-p",
        "18200:80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let web = web.trim();
    // busybox httpd serves /etc: its hostname file names the container.
    let url = format!("http://{HOST_ADDR}:18200/hostname");
    let answered = tests::wait_for("the published port", Duration::from_secs(10), || {
        Ok(outside.fetches(&url, &web[..12]).then_some(()))
    });
    assert!(
        answered.is_ok(),
        "no answer from outside on 18200\n--- netd log\n{}\n--- nft\n{}\n--- iptables\n{}",
        netd.log(),
        netd.host
            .run("nft", &["list", "ruleset"])
            .unwrap_or_default(),
        netd.host.run("iptables", &["-S"]).unwrap_or_default()
    );
    // dockerd cannot show a plugin's ports; netd can.
    let shown = netd.cli(&["port"]).unwrap();
    assert!(shown.contains("80/tcp -> 0.0.0.0:18200"), "{shown}");
    // dockerd's FORWARD policy is drop: netd's accepts in DOCKER-USER let its
    // containers out.
    let user = netd.host.run("iptables", &["-S", "DOCKER-USER"]).unwrap();
    assert!(user.contains("netd"), "{user}");
    docker.run_sleeper("c1", "n1").unwrap();
    let pinged = docker.run(&["exec", "c1", "ping", "-c", "1", "-W", "2", OUTSIDE_ADDR]);
    assert!(
        pinged.is_ok(),
        "a netd container cannot get out: {pinged:?}"
    );

    // Flushed by someone (a firewall reload), the accepts come back.
    netd.host.run("iptables", &["-F", "DOCKER-USER"]).unwrap();
    let back = tests::wait_for("DOCKER-USER's accepts", Duration::from_secs(5), || {
        let user = netd
            .host
            .run("iptables", &["-S", "DOCKER-USER"])
            .unwrap_or_default();
        Ok(user.contains("netd").then_some(()))
    });
    assert!(back.is_ok(), "netd's DOCKER-USER accepts were not put back");
    let pinged = docker.run(&["exec", "c1", "ping", "-c", "1", "-W", "2", OUTSIDE_ADDR]);
    assert!(
        pinged.is_ok(),
        "a netd container cannot get out after the flush: {pinged:?}"
    );

    // dockerd's own bridge network works and is isolated from netd's.
    run(&["network", "create", "--subnet", "10.126.0.0/24", "dn"]);
    docker.run_sleeper("d1", "dn").unwrap();
    let pinged = docker.run(&["exec", "d1", "ping", "-c", "1", "-W", "2", OUTSIDE_ADDR]);
    assert!(
        pinged.is_ok(),
        "dockerd's own network cannot get out: {pinged:?}"
    );
    let c1 = docker.container_ip("c1", "n1").unwrap();
    let d1 = docker.container_ip("d1", "dn").unwrap();
    assert!(
        docker
            .run(&["exec", "d1", "ping", "-c", "1", "-W", "2", &c1])
            .is_err(),
        "dockerd's network reaches a netd container"
    );
    assert!(
        docker
            .run(&["exec", "c1", "ping", "-c", "1", "-W", "2", &d1])
            .is_err(),
        "a netd container reaches dockerd's network"
    );
    // Yet a published port is reachable from dockerd's network, as Docker's are.
    let fetched = docker.run(&[
        "exec",
        "d1",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{HOST_ADDR}:18200/hostname"),
    ]);
    assert!(
        fetched.as_deref().is_ok_and(|b| b.contains(&web[..12])),
        "dockerd's network cannot reach a published port: {fetched:?}"
    );

    // A network whose name sorts first becomes the container's gateway: dockerd
    // revokes the ports on n1's endpoint and programs them on a0's.
    run(&[
        "network",
        "create",
        "-d",
        "netd",
        "--ipam-driver",
        "netd",
        "--subnet",
        "10.125.9.0/24",
        "a0",
    ]);
    run(&["network", "connect", "a0", "web"]);
    let a0_ip = docker.container_ip("web", "a0").unwrap();
    let moved = tests::wait_for("the ports on a0", Duration::from_secs(5), || {
        let json = netd.cli(&["port", "--format", "json"]).unwrap_or_default();
        Ok(json.contains(&a0_ip).then_some(json))
    });
    assert!(
        moved.is_ok(),
        "{}",
        netd.cli(&["port", "--format", "json"]).unwrap_or_default()
    );
    let shown = netd.cli(&["port"]).unwrap();
    assert_eq!(shown.matches("18200").count(), 1, "{shown}");
    assert!(
        outside.fetches(&url, &web[..12]),
        "the port stopped answering after the move"
    );

    // The port goes with the container: free again, and no longer answering.
    run(&["rm", "-f", "web"]);
    assert!(!outside.fetches(&url, &web[..12]), "still answers");
    assert!(!netd.cli(&["port"]).unwrap().contains("18200"));
    let bound = netd
        .host
        .command("busybox")
        .args(["nc", "-l", "-p", "18200", "-w", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bound.stderr);
    assert!(
        !err.contains("in use"),
        "the host port is still held: {err}"
    );
}
