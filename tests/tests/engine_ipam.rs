//! A stock dockerd allocates through the ipam crate's IpamDriver (served by
//! ipam/examples/ipam_plugin.rs), and reports exactly the addresses it handed out.

use serde_json::Value;
use std::collections::BTreeSet;
use tests::{example_binary, Dockerd, TestHost};

/// The addresses the plugin's journal says are allocated now, and its pools.
fn journal(log: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut addresses = BTreeSet::new();
    let mut pools = BTreeSet::new();
    for line in log.lines() {
        let Some(json) = line.strip_prefix("change ") else {
            continue;
        };
        let change: Value = serde_json::from_str(json).unwrap();
        let text = |k: &str| change[k].as_str().unwrap().to_string();
        match change["change"].as_str().unwrap() {
            "address_allocated" => assert!(addresses.insert(text("address"))),
            "address_released" => assert!(addresses.remove(&text("address"))),
            "pool_added" => assert!(pools.insert(text("id"))),
            "pool_removed" => assert!(pools.remove(&text("id"))),
            other => panic!("unknown change {other}"),
        }
    }
    (addresses, pools)
}

#[test]
fn dockerd_gets_its_addresses_from_our_ipam_driver() {
    let host = TestHost::new().unwrap();
    let _net = host
        .spawn_plugin("vethnet", example_binary("network_driver").unwrap(), &[])
        .unwrap();
    let ipam = host
        .spawn_plugin("netipam", example_binary("ipam_plugin").unwrap(), &[])
        .unwrap();
    // Plugins start first so they outlive dockerd, which calls them while it stops.
    let docker = Dockerd::start(&host).unwrap();

    // A network with a given subnet and range, and one the allocator chooses.
    docker
        .run(&[
            "network",
            "create",
            "-d",
            "vethnet",
            "--ipam-driver",
            "netipam",
            "--subnet",
            "198.18.9.0/24",
            "--ip-range",
            "198.18.9.64/26",
            "n1",
        ])
        .unwrap();
    docker
        .run(&[
            "network",
            "create",
            "-d",
            "vethnet",
            "--ipam-driver",
            "netipam",
            "n2",
        ])
        .unwrap();
    let n2 = docker.json(&["network", "inspect", "n2"]).unwrap();
    assert_eq!(n2[0]["IPAM"]["Config"][0]["Subnet"], "172.24.0.0/24");
    assert_eq!(n2[0]["IPAM"]["Driver"], "netipam");

    for (name, net, ip) in [
        ("c1", "n1", None),
        ("c2", "n1", None),
        ("c3", "n1", Some("198.18.9.200")),
        ("c4", "n2", None),
    ] {
        let mut args = vec!["run", "-d", "--name", name, "--network", net];
        if let Some(ip) = ip {
            args.extend(["--ip", ip]);
        }
        args.extend(["busybox", "sleep", "1000"]);
        docker.run(&args).unwrap();
    }

    // What the engine reports: each container's address and its network's gateway.
    let mut reported = BTreeSet::new();
    for (c, net) in [("c1", "n1"), ("c2", "n1"), ("c3", "n1"), ("c4", "n2")] {
        let format = format!(
            "{{{{.NetworkSettings.Networks.{net}.IPAddress}}}} {{{{.NetworkSettings.Networks.{net}.Gateway}}}}"
        );
        let out = docker.run(&["inspect", "--format", &format, c]).unwrap();
        reported.extend(out.split_whitespace().map(str::to_string));
    }
    let (allocated, pools) = journal(&ipam.log());
    assert_eq!(allocated, reported, "the plugin's journal:\n{}", ipam.log());
    let want: BTreeSet<String> = [
        "198.18.9.64",
        "198.18.9.65",
        "198.18.9.66",
        "198.18.9.200",
        "172.24.0.1",
        "172.24.0.2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        allocated, want,
        "gateway and containers draw from the range"
    );
    assert_eq!(
        pools,
        ["local/172.24.0.0/24", "local/198.18.9.0/24/198.18.9.64/26"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    // Removing everything gives every address and pool back.
    docker.run(&["rm", "-f", "c1", "c2", "c3", "c4"]).unwrap();
    docker.run(&["network", "rm", "n1", "n2"]).unwrap();
    let (allocated, pools) = journal(&ipam.log());
    assert!(allocated.is_empty(), "{allocated:?}");
    assert!(pools.is_empty(), "{pools:?}");
}
