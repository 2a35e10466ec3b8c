//! A stock dockerd drives netd through the plugin protocol: `docker network create
//! -d netd --ipam-driver netd`, containers that reach each other, connect and
//! disconnect, and `docker network rm` that leaves nothing behind.

mod common;

use common::Netd;
use serde_json::json;
use tests::Dockerd;

#[test]
fn docker_networks_on_netd() {
    // netd starts first so it outlives dockerd, which calls it while stopping.
    let netd = Netd::start_with_docker();
    let docker = Dockerd::start(&netd.host).unwrap();
    let run = |args: &[&str]| {
        docker
            .run(args)
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}\n--- netd log\n{}", netd.log()))
    };

    let id = docker_network(
        &docker,
        "n1",
        "10.80.0.0/24",
        &[
            "-o",
            "com.docker.network.bridge.name=dk-n1",
            "-o",
            "com.docker.network.driver.mtu=1400",
        ],
    );
    docker_network(&docker, "n2", "10.80.1.0/24", &[]);

    // netd knows the network under dockerd's id, with the bridge named as asked.
    let ours = netd.cli(&["network", "inspect", &id]).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(ours["origin"], "docker");
    assert_eq!(ours["subnets"][0]["subnet"], "10.80.0.0/24");
    assert!(
        netd.links().contains(&"dk-n1".to_string()),
        "{:?}",
        netd.links()
    );

    for (c, net) in [("c1", "n1"), ("c2", "n1"), ("c3", "n2")] {
        docker
            .run_sleeper(c, net)
            .unwrap_or_else(|e| panic!("{c}: {e}\n--- netd log\n{}", netd.log()));
    }
    let ip = |c: &str, net: &str| docker.container_ip(c, net).unwrap();
    let (ip1, ip2, ip3) = (ip("c1", "n1"), ip("c2", "n1"), ip("c3", "n2"));
    assert!(ip2.starts_with("10.80.0."), "{ip2}");
    // One interface only: Join answered a gateway, so no docker_gwbridge.
    let links = run(&["exec", "c1", "ip", "-o", "link"]);
    assert_eq!(
        links.lines().filter(|l| l.contains("eth")).count(),
        1,
        "{links}"
    );
    assert!(links.contains("mtu 1400"), "{links}");
    let routes = run(&["exec", "c1", "ip", "route"]);
    assert!(
        routes.contains("default via 10.80.0.1 dev eth0"),
        "{routes}"
    );
    // An internal network answers no gateway, as Docker's bridge: no default
    // route out through it.
    docker_network(&docker, "n3", "10.80.2.0/24", &["--internal"]);
    docker
        .run_sleeper("c4", "n3")
        .unwrap_or_else(|e| panic!("c4: {e}\n--- netd log\n{}", netd.log()));
    let routes = run(&["exec", "c4", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert!(routes.contains("10.80.2.0/24 dev eth0"), "{routes}");
    run(&["rm", "-f", "c4"]);
    run(&["network", "rm", "n3"]);

    // Same network: reachable by IP. Other network: not.
    run(&["exec", "c1", "ping", "-c", "1", "-W", "2", &ip2]);
    assert!(docker
        .run(&["exec", "c1", "ping", "-c", "1", "-W", "1", &ip3])
        .is_err());

    // connect / disconnect
    run(&["network", "connect", "n2", "c1"]);
    run(&["exec", "c1", "ping", "-c", "1", "-W", "2", &ip3]);
    let links = run(&["exec", "c1", "ip", "-o", "link"]);
    assert!(links.contains("eth1"), "{links}");
    run(&["network", "disconnect", "n2", "c1"]);
    assert!(docker
        .run(&["exec", "c1", "ping", "-c", "1", "-W", "1", &ip3])
        .is_err());
    let _ = ip1;

    // netd's view matches dockerd's.
    let eps: serde_json::Value =
        serde_json::from_str(&netd.cli(&["endpoint", "ls", "--format", "json"]).unwrap()).unwrap();
    assert_eq!(eps.as_array().unwrap().len(), 3, "{eps}");

    // A network with containers cannot go; after they go, nothing is left.
    assert!(docker.run(&["network", "rm", "n1"]).is_err());
    run(&["rm", "-f", "c1", "c2", "c3"]);
    run(&["network", "rm", "n1", "n2"]);
    let left = netd.cli(&["network", "ls", "--format", "json"]).unwrap();
    assert_eq!(left.trim(), "[]", "{left}");
    let links = netd.links();
    assert_eq!(links, vec!["lo".to_string()], "links left: {links:?}");
    let pools = common::runtime().block_on(netd.client.metrics()).unwrap();
    assert!(pools.contains("netd_ipam_pools 0"), "pools left:\n{pools}");
}

/// `docker network create -d netd --ipam-driver netd --subnet SUBNET MORE... NAME`:
/// its id.
fn docker_network(docker: &Dockerd, name: &str, subnet: &str, more: &[&str]) -> String {
    let mut args = vec![
        "network",
        "create",
        "-d",
        "netd",
        "--ipam-driver",
        "netd",
        "--subnet",
        subnet,
    ];
    args.extend_from_slice(more);
    args.push(name);
    docker
        .run(&args)
        .unwrap_or_else(|e| panic!("docker network create {name}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn docker_sync_removes_what_dockerd_no_longer_has() {
    let netd = Netd::start_with_docker();
    let docker = Dockerd::start(&netd.host).unwrap();
    let n1 = docker_network(&docker, "n1", "10.93.0.0/24", &[]);
    docker.run_sleeper("c1", "n1").unwrap();
    let c1_ip = docker.container_ip("c1", "n1").unwrap();
    // A network on dockerd's own bridge driver that takes only its addresses from
    // netd, with no gateway given (dockerd's API then shows none) and an aux address.
    docker
        .run(&[
            "network",
            "create",
            "-d",
            "bridge",
            "--ipam-driver",
            "netd",
            "--subnet",
            "10.97.0.0/24",
            "--aux-address",
            "r=10.97.0.9",
            "-o",
            "com.docker.network.bridge.name=dk-n2",
            "n2",
        ])
        .unwrap();
    docker.run_sleeper("c2", "n2").unwrap();
    let c2_ip = docker.container_ip("c2", "n2").unwrap();

    // What dockerd no longer knows of (calls it gave up on while netd was away):
    // a whole network with its pool, an endpoint and an address on n1.
    let plugin = plugin_api::client::PluginClient::unix(netd.host.plugin_dir().join("netd.sock"));
    let rt = common::runtime();
    let call = |method: &str, body: serde_json::Value| -> serde_json::Value {
        rt.block_on(plugin.call::<serde_json::Value, serde_json::Value>(method, &body))
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    };
    let lost = "5".repeat(64);
    let pool = call("IpamDriver.RequestPool", json!({"Pool": "10.94.0.0/24"}))["PoolID"].clone();
    let gw = call("IpamDriver.RequestAddress", json!({"PoolID": pool}))["Address"].clone();
    call(
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": lost, "IPv4Data": [{"Pool": "10.94.0.0/24", "Gateway": gw}]}),
    );
    let n1_pool = "local/10.93.0.0/24";
    let stray = call("IpamDriver.RequestAddress", json!({"PoolID": n1_pool}))["Address"].clone();
    call(
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": n1, "EndpointID": "6".repeat(64), "Interface": {"Address": stray}}),
    );
    let stray_ip = stray
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();

    let socket = docker.socket().display().to_string();
    let sync = |extra: &[&str]| {
        let mut args = vec!["docker-sync", "--docker-socket", &socket, "--grace", "0"];
        args.extend_from_slice(extra);
        netd.cli(&args)
            .unwrap_or_else(|e| panic!("docker-sync {extra:?}: {e}"))
    };
    let planned = sync(&["--dry-run"]);
    for want in [
        format!("would remove network {lost}"),
        format!("would remove endpoint {}", "6".repeat(64)),
        "would remove pool local/10.94.0.0/24".to_string(),
        format!("would remove address local/10.93.0.0/24 {stray_ip}"),
    ] {
        assert!(planned.contains(&want), "{want}:\n{planned}");
    }
    assert_eq!(
        rt.block_on(netd.client.networks()).unwrap().len(),
        2,
        "a dry run changed something"
    );
    sync(&[]);

    let nets = rt.block_on(netd.client.networks()).unwrap();
    assert_eq!(
        nets.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        [n1.as_str()]
    );
    let eps = rt.block_on(netd.client.endpoints()).unwrap();
    assert_eq!(eps.len(), 1, "{eps:?}");
    assert_eq!(eps[0].addresses[0].addr().to_string(), c1_ip);
    let pools = rt.block_on(netd.client.pools()).unwrap();
    assert_eq!(pools.len(), 2, "{pools:?}");
    assert_eq!(common::held(&netd, n1_pool), ["10.93.0.1", &c1_ip]);
    // n2's gateway and aux address stay, though dockerd's API lists neither as used.
    assert_eq!(
        common::held(&netd, "local/10.97.0.0/24"),
        ["10.97.0.1", &c2_ip, "10.97.0.9"]
    );
    // dockerd's container is untouched, and a second sync finds nothing.
    docker
        .run(&["exec", "c1", "ping", "-c", "1", "-W", "2", "10.93.0.1"])
        .unwrap();
    assert_eq!(sync(&[]).trim(), "");
    docker
        .run(&["exec", "c2", "ping", "-c", "1", "-W", "2", "10.97.0.1"])
        .unwrap();
    docker.run(&["rm", "-f", "c1", "c2"]).unwrap();
    docker.run(&["network", "rm", "n1", "n2"]).unwrap();
}

#[test]
fn docker_calls_made_while_netd_restarts_wait_and_leave_nothing_behind() {
    let mut netd = Netd::start_activated();
    let mut daemon = netd.daemon.take().unwrap();
    let docker = Dockerd::start(&netd.host).unwrap();
    docker_network(&docker, "n1", "10.95.0.0/24", &[]);
    docker.run_sleeper("c1", "n1").unwrap();

    // netd goes away (a crash, an upgrade); dockerd removes the container meanwhile.
    daemon.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    daemon.wait_exit(std::time::Duration::from_secs(5)).unwrap();
    let rm = {
        let mut cmd = docker.docker();
        cmd.args(["rm", "-f", "c1"]);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(!rm.is_finished(), "dockerd did not wait for netd");
    let restarted = netd.start_daemon();
    let out = rm.join().unwrap();
    assert!(out.status.success(), "{out:?}\n{}", restarted.log());

    // Nothing stayed behind: the network goes, and its subnet can be had again.
    docker.run(&["network", "rm", "n1"]).unwrap();
    let rt = common::runtime();
    assert!(rt.block_on(netd.client.endpoints()).unwrap().is_empty());
    assert!(rt.block_on(netd.client.networks()).unwrap().is_empty());
    assert!(rt.block_on(netd.client.pools()).unwrap().is_empty());
    assert_eq!(netd.links(), ["lo"]);
    docker_network(&docker, "n2", "10.95.0.0/24", &[]);
    assert_eq!(rt.block_on(netd.client.networks()).unwrap().len(), 1);
}
