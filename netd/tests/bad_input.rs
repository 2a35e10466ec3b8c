//! Every kind of bad request gets a clear error with the right status, and leaves
//! no link, address, namespace, file or store record behind.

mod common;

use common::{runtime, Netd};
use hyper::{Method, StatusCode};

/// Everything a failed request could have left behind.
fn snapshot(
    netd: &Netd,
) -> (
    Vec<String>,
    String,
    String,
    String,
    Vec<std::path::PathBuf>,
    String,
) {
    let c = &netd.client;
    let (n, e, s) = runtime().block_on(async {
        (
            serde_json::to_string(&c.networks().await.unwrap()).unwrap(),
            serde_json::to_string(&c.endpoints().await.unwrap()).unwrap(),
            serde_json::to_string(&c.sandboxes().await.unwrap()).unwrap(),
        )
    });
    // Link-local addresses come and go with the kernel's timing, not netd's.
    let addrs = netd
        .host
        .run("ip", &["-o", "addr"])
        .unwrap()
        .lines()
        .filter(|l| !l.contains("scope link"))
        .map(|l| l.replace(" tentative", ""))
        .collect::<Vec<_>>()
        .join("\n");
    (netd.links(), n, e, s, netd.netns_files(), addrs)
}

#[test]
fn bad_requests_are_refused_clearly_and_change_nothing() {
    let netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    // Something to collide with.
    netd.cli(&["network", "create", "n1", "--subnet", "10.75.0.0/24"])
        .unwrap();
    netd.cli(&["sandbox", "create", "--name", "sb"]).unwrap();
    netd.cli(&[
        "sandbox",
        "attach",
        "sb",
        "n1",
        "--ip",
        "10.75.0.9",
        "--name",
        "taken",
    ])
    .unwrap();
    let before = snapshot(&netd);

    let cases: Vec<(Method, &str, &str, StatusCode, &str)> = vec![
        // JSON shape
        (Method::POST, "/v1/networks", "{", StatusCode::BAD_REQUEST, "invalid JSON body"),
        (Method::POST, "/v1/networks", "{\"name\": 5}", StatusCode::BAD_REQUEST, "at name"),
        (Method::POST, "/v1/networks", "{\"name\": \"x\", \"subnet\": \"10.0.0.0/24\"}", StatusCode::BAD_REQUEST, "unknown field `subnet`"),
        (Method::POST, "/v1/networks", "", StatusCode::BAD_REQUEST, "missing field `name`"),
        (Method::POST, "/v1/networks", "[\"n9\"]", StatusCode::BAD_REQUEST, "expected a JSON object"),
        // names
        (Method::POST, "/v1/networks", "{\"name\": \"bad name\"}", StatusCode::BAD_REQUEST, "invalid network name"),
        (Method::POST, "/v1/networks", "{\"name\": \"n1\", \"subnets\": [{\"subnet\": \"10.76.0.0/24\"}]}", StatusCode::CONFLICT, "a network named n1 exists already"),
        (Method::POST, "/v1/sandboxes", "{\"name\": \"-x\"}", StatusCode::BAD_REQUEST, "invalid sandbox name"),
        (Method::POST, "/v1/sandboxes", "{\"name\": \"sb\"}", StatusCode::CONFLICT, "a sandbox named sb exists already"),
        (Method::POST, "/v1/sandboxes", "{\"hostname\": \"a_b\"}", StatusCode::BAD_REQUEST, "invalid hostname"),
        // CIDRs and addresses
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.0/33\"}]}", StatusCode::BAD_REQUEST, "at subnets[0].subnet"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.5/24\"}]}", StatusCode::BAD_REQUEST, "host bits are set; did you mean 10.76.0.0/24"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.0/24\", \"gateway\": \"10.77.0.1\"}]}", StatusCode::BAD_REQUEST, "gateway 10.77.0.1 is outside subnet 10.76.0.0/24"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.0/24\", \"ip_range\": \"10.77.0.0/25\"}]}", StatusCode::BAD_REQUEST, "ip range 10.77.0.0/25 is not a subnet inside 10.76.0.0/24"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.75.0.0/25\"}]}", StatusCode::CONFLICT, "overlaps 10.75.0.0/24, which is allocated to n1"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.0/24\", \"gateway\": \"10.76.0.0\"}]}", StatusCode::BAD_REQUEST, "10.76.0.0 is the network address"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.0/24\", \"gateway\": \"10.76.0.255\"}]}", StatusCode::BAD_REQUEST, "10.76.0.255 is the broadcast address"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.0/24\", \"aux_addresses\": {\"a\": \"10.76.0.0\"}}]}", StatusCode::BAD_REQUEST, "is the network address"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.0/24\"}, {\"subnet\": \"10.76.0.0/25\"}]}", StatusCode::BAD_REQUEST, "overlap"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"0.0.0.0/0\"}]}", StatusCode::BAD_REQUEST, "too large for a network"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"128.0.0.0/1\"}]}", StatusCode::BAD_REQUEST, "too large for a network"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"::/0\"}]}", StatusCode::BAD_REQUEST, "too large for a network"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"127.0.0.0/8\"}]}", StatusCode::BAD_REQUEST, "loopback"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"169.254.0.0/16\"}]}", StatusCode::BAD_REQUEST, "link-local"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"224.0.0.0/24\"}]}", StatusCode::BAD_REQUEST, "multicast"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"255.255.255.0/24\"}]}", StatusCode::BAD_REQUEST, "reserved and broadcast"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"::ffff:10.0.0.0/120\"}]}", StatusCode::BAD_REQUEST, "IPv4-mapped"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"fe80::/64\"}]}", StatusCode::BAD_REQUEST, "link-local"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"10.76.0.7/32\"}]}", StatusCode::BAD_REQUEST, "no room for a gateway and an endpoint"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"subnets\": [{\"subnet\": \"fd00::7/128\"}]}", StatusCode::BAD_REQUEST, "no room for a gateway and an endpoint"),
        // options and drivers
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"driver\": \"macvlan\"}", StatusCode::BAD_REQUEST, "unknown driver \"macvlan\""),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"options\": {\"com.docker.network.driver.mtu\": \"9\"}}", StatusCode::BAD_REQUEST, "expected a number from 68 to 65535"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"options\": {\"com.docker.network.bridge.nope\": \"1\"}}", StatusCode::BAD_REQUEST, "unknown bridge option"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"options\": {\"com.docker.network.driver.mtu\": \"+1500\"}}", StatusCode::BAD_REQUEST, "expected a number from 68 to 65535"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"options\": {\"com.docker.network.bridge.enable_icc\": \"garbage\"}}", StatusCode::BAD_REQUEST, "expected true or false"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"options\": {\"com.docker.network.bridge.name\": \"lo\"}}", StatusCode::BAD_REQUEST, "not a bridge"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"options\": {\"com.docker.network.bridge.name\": \"way-too-long-bridge-name\"}}", StatusCode::BAD_REQUEST, "a link name has 1 to 15"),
        (Method::POST, "/v1/networks", "{\"name\": \"n2\", \"driver\": \"host\", \"subnets\": [{\"subnet\": \"10.76.0.0/24\"}]}", StatusCode::BAD_REQUEST, "has no addresses of its own"),
        // unknown ids
        (Method::GET, "/v1/networks/nope", "", StatusCode::NOT_FOUND, "no network \"nope\""),
        (Method::DELETE, "/v1/endpoints/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "", StatusCode::NOT_FOUND, "no endpoint"),
        (Method::POST, "/v1/sandboxes/nope/attach", "{\"network\": \"n1\"}", StatusCode::NOT_FOUND, "no sandbox \"nope\""),
        (Method::POST, "/v1/sandboxes/sb/attach", "{\"network\": \"nope\"}", StatusCode::NOT_FOUND, "no network \"nope\""),
        (Method::POST, "/v1/sandboxes/sb/join", "{\"endpoint\": \"nope\"}", StatusCode::NOT_FOUND, "no endpoint \"nope\""),
        // conflicting or wrong addresses, MACs, namespaces
        (Method::POST, "/v1/sandboxes/sb/attach", "{\"network\": \"n1\", \"ip\": \"10.75.0.9\"}", StatusCode::CONFLICT, "10.75.0.9 is already allocated in 10.75.0.0/24"),
        (Method::POST, "/v1/sandboxes/sb/attach", "{\"network\": \"n1\", \"ip\": \"10.99.0.9\"}", StatusCode::BAD_REQUEST, "not in any subnet of network n1"),
        (Method::POST, "/v1/sandboxes/sb/attach", "{\"network\": \"n1\", \"ip\": \"10.75.0.1\"}", StatusCode::CONFLICT, "10.75.0.1 is already allocated"),
        (Method::POST, "/v1/sandboxes/sb/attach", "{\"network\": \"n1\", \"mac\": \"01:00:5e:00:00:01\"}", StatusCode::BAD_REQUEST, "multicast"),
        (Method::POST, "/v1/sandboxes/sb/attach", "{\"network\": \"n1\", \"mac\": \"+2:42:ac:11:00:02\"}", StatusCode::BAD_REQUEST, "invalid MAC address"),
        (Method::POST, "/v1/sandboxes/sb/attach", "{\"network\": \"n1\", \"mac\": \"02:42:0a:4b:00:09\"}", StatusCode::CONFLICT, "is held by endpoint taken"),
        (Method::POST, "/v1/sandboxes/sb/attach", "{\"network\": \"n1\", \"name\": \"taken\"}", StatusCode::CONFLICT, "has an endpoint named taken already"),
        (Method::POST, "/v1/sandboxes", "{\"netns\": \"/etc/hostname\"}", StatusCode::BAD_REQUEST, "is not a network namespace file"),
        (Method::POST, "/v1/sandboxes", "{\"netns\": \"/proc/self/ns/uts\"}", StatusCode::BAD_REQUEST, "is not a network namespace file"),
        (Method::POST, "/v1/sandboxes", "{\"netns\": \"/proc/self/ns/net\"}", StatusCode::BAD_REQUEST, "netd's own network namespace"),
        (Method::POST, "/v1/sandboxes", "{\"netns\": \"relative/path\"}", StatusCode::BAD_REQUEST, "absolute path"),
        (Method::POST, "/v1/sandboxes/sb/join", "{\"endpoint\": \"taken\"}", StatusCode::CONFLICT, "is joined already"),
        (Method::DELETE, "/v1/endpoints/taken", "", StatusCode::CONFLICT, "leave it first"),
        // protocol
        (Method::GET, "/v1/nothing", "", StatusCode::NOT_FOUND, "no such API path"),
        (Method::PUT, "/v1/networks", "{}", StatusCode::METHOD_NOT_ALLOWED, "PUT is not allowed"),
    ];
    for (method, path, body, status, fragment) in cases {
        let body = (!body.is_empty()).then(|| body.as_bytes().to_vec());
        let (got, bytes) = rt.block_on(c.raw(method.clone(), path, body)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(got, status, "{method} {path}: {text}");
        let answer: netd::api::ApiErrorBody = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {path}: not an error body ({e}): {text}"));
        assert!(
            answer.message.contains(fragment),
            "{method} {path}: {:?} lacks {fragment:?}",
            answer.message
        );
        assert_eq!(
            snapshot(&netd),
            before,
            "{method} {path} left something behind"
        );
    }

    // An oversized body is refused before it is read.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(100 * 1024));
    let (got, _) = rt
        .block_on(c.raw(Method::POST, "/v1/networks", Some(big.into_bytes())))
        .unwrap();
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);

    // A kernel failure half-way through a join (IPv6 is off in the sandbox, and
    // the network is dual stack) is undone: no veth, no address, no record.
    netd.cli(&[
        "network",
        "create",
        "n6",
        "--subnet",
        "10.76.0.0/24",
        "--subnet",
        "fd00:76::/64",
    ])
    .unwrap();
    let sb = rt.block_on(c.sandbox("sb")).unwrap();
    let sysctl = |value: &str| {
        for key in ["all", "default"] {
            let out = netd.in_sandbox(
                &sb,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{key}.disable_ipv6={value}"),
                ],
            );
            assert!(out.status.success(), "{out:?}");
        }
    };
    sysctl("1");
    let before = snapshot(&netd);
    let err = netd
        .cli(&["sandbox", "attach", "sb", "n6", "--ip", "10.76.0.2"])
        .unwrap_err();
    assert!(err.contains("adding address fd00:76::"), "{err}");
    assert_eq!(
        snapshot(&netd),
        before,
        "a failed join left something behind"
    );
    // The address it had taken is free again.
    sysctl("0");
    let ok = netd.cli(&["sandbox", "attach", "sb", "n6", "--ip", "10.76.0.2"]);
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn a_namespace_netd_runs_in_or_another_sandbox_holds_cannot_be_adopted() {
    let netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    let sb = rt
        .block_on(c.create_sandbox(&common::sandbox("sb")))
        .unwrap();
    let pid = netd.daemon.as_ref().unwrap().pid();
    // netd's own namespace under other names: its pid's, and a bind mount of it.
    let pinned = netd.host.dir().join("pinned-host-ns");
    std::fs::write(&pinned, "").unwrap();
    netd.host
        .run(
            "mount",
            &[
                "--bind",
                &format!("/proc/{pid}/ns/net"),
                &pinned.display().to_string(),
            ],
        )
        .unwrap();
    for path in [format!("/proc/{pid}/ns/net"), pinned.display().to_string()] {
        let err = rt
            .block_on(c.create_sandbox(&netd::controller::SandboxCreate {
                netns: Some(path.clone().into()),
                ..Default::default()
            }))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("netd's own network namespace"),
            "{path}: {err}"
        );
    }
    // A namespace under netd's run dir, which another sandbox holds.
    let err = rt
        .block_on(c.create_sandbox(&netd::controller::SandboxCreate {
            netns: Some(sb.netns.clone()),
            ..Default::default()
        }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("netd's own sandboxes'"), "{err}");
    // A namespace another (adopted) sandbox holds, under another path.
    let (_holder, first) = netd.foreign_netns("holder");
    rt.block_on(c.create_sandbox(&netd::controller::SandboxCreate {
        name: Some("adopted".into()),
        netns: Some(first.clone().into()),
        ..Default::default()
    }))
    .unwrap();
    let again = netd.host.dir().join("same-ns");
    std::fs::write(&again, "").unwrap();
    netd.host
        .run("mount", &["--bind", &first, &again.display().to_string()])
        .unwrap();
    let err = rt
        .block_on(c.create_sandbox(&netd::controller::SandboxCreate {
            netns: Some(again.clone()),
            ..Default::default()
        }))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sandbox adopted holds that namespace"),
        "{err}"
    );
    assert_eq!(rt.block_on(c.sandboxes()).unwrap().len(), 2);
    // netd's own namespace has no new link or address.
    assert_eq!(netd.links(), vec!["lo".to_string()]);
}

#[test]
fn a_network_with_many_endpoints_names_a_few_when_it_refuses_to_go() {
    let netd = Netd::start();
    let c = netd.client.clone();
    let rt = runtime();
    rt.block_on(async {
        c.create_network(&common::network("n1", "10.77.0.0/24"))
            .await
            .unwrap();
        for i in 0..25 {
            c.create_endpoint(&netd::controller::EndpointCreate {
                network: "n1".into(),
                name: Some(format!("ep{i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let err = c.delete_network("n1").await.unwrap_err().to_string();
        assert!(err.contains("has 25 endpoint(s)"), "{err}");
        assert!(err.contains("and 15 more"), "{err}");
        assert!(err.len() < 600, "{} bytes: {err}", err.len());
    });
}
