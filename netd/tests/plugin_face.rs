//! The plugin socket, called as dockerd (or anyone who can reach it) would: it
//! keeps to dockerd's own objects, validates every address, and defers releases
//! that would free what is still in use.

mod common;

use common::{attach, held, ipv4, network, runtime, sandbox, Netd};
use plugin_api::client::PluginClient;
use serde_json::{json, Value};

const NET: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const EP: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const EP2: &str = "3333333333333333333333333333333333333333333333333333333333333333";

/// The plugin socket of a netd, called like dockerd calls it.
struct Engine {
    client: PluginClient,
    rt: tokio::runtime::Runtime,
}

impl Engine {
    fn of(netd: &Netd) -> Engine {
        Engine {
            client: PluginClient::unix(netd.host.plugin_dir().join("netd.sock")),
            rt: runtime(),
        }
    }

    fn call(&self, method: &str, body: Value) -> Result<Value, String> {
        self.rt
            .block_on(self.client.call::<Value, Value>(method, &body))
            .map_err(|e| {
                plugin_api::PluginError::from_error(&e)
                    .message()
                    .to_string()
            })
    }

    fn ok(&self, method: &str, body: Value) -> Value {
        self.call(method, body)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn refused(&self, method: &str, body: Value, fragment: &str) {
        match self.call(method, body.clone()) {
            Ok(v) => panic!("{method} {body} was accepted: {v}"),
            Err(e) => assert!(
                e.contains(fragment),
                "{method} {body}: {e:?} lacks {fragment:?}"
            ),
        }
    }

    /// What dockerd does for `docker network create --ipam-driver netd --subnet S`:
    /// a pool, its gateway, the network. Returns the pool id.
    fn network(&self, id: &str, subnet: &str) -> String {
        let pool = self.ok(
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "Pool": subnet, "V6": false}),
        );
        let pool_id = pool["PoolID"].as_str().unwrap().to_string();
        let gw = self.ok(
            "IpamDriver.RequestAddress",
            json!({"PoolID": pool_id, "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
        );
        self.ok(
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": id, "Options": {}, "IPv4Data": [
                {"AddressSpace": "LocalDefault", "Pool": subnet, "Gateway": gw["Address"]}
            ]}),
        );
        pool_id
    }

    /// An endpoint with an address from `pool`; returns the address in CIDR form.
    fn endpoint(&self, net: &str, ep: &str, pool: &str) -> String {
        let addr = self.ok("IpamDriver.RequestAddress", json!({"PoolID": pool}));
        let addr = addr["Address"].as_str().unwrap().to_string();
        self.ok(
            "NetworkDriver.CreateEndpoint",
            json!({"NetworkID": net, "EndpointID": ep, "Interface": {"Address": addr}}),
        );
        addr
    }
}

#[test]
fn the_plugin_socket_cannot_name_what_the_native_api_made() {
    let netd = Netd::start_with_docker();
    let engine = Engine::of(&netd);
    let c = &netd.client;
    let rt = runtime();
    let (net, a, ep) = rt.block_on(async {
        let net = c
            .create_network(&network("n1", "10.85.0.0/24"))
            .await
            .unwrap();
        let a = c.create_sandbox(&sandbox("a")).await.unwrap();
        let ep = c.attach("a", &attach("n1")).await.unwrap();
        (net, a, ep)
    });
    let pool = "local/10.85.0.0/24";
    let unknown = "no pool held by dockerd";
    engine.refused(
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool, "Address": ipv4(&ep)}),
        unknown,
    );
    engine.refused("IpamDriver.ReleasePool", json!({"PoolID": pool}), unknown);
    engine.refused(
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool}),
        unknown,
    );
    engine.refused(
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "10.85.0.0/25"}),
        "overlaps 10.85.0.0/24, which is allocated to n1",
    );
    let native = "made through netd's own API";
    engine.refused(
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": net.id}),
        native,
    );
    engine.refused(
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": net.id, "EndpointID": ep.id}),
        native,
    );
    engine.refused(
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": net.id, "EndpointID": EP, "Interface": {"Address": "10.85.0.9/24"}}),
        native,
    );
    engine.refused(
        "NetworkDriver.Join",
        json!({"NetworkID": net.id, "EndpointID": ep.id, "SandboxKey": "/proc/1/ns/net"}),
        native,
    );
    engine.refused(
        "NetworkDriver.Leave",
        json!({"NetworkID": net.id, "EndpointID": ep.id}),
        native,
    );
    engine.refused(
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": net.id, "Options": {}, "IPv4Data": [{"Pool": "10.85.0.0/24", "Gateway": "10.85.0.1/24"}]}),
        native,
    );

    // Nothing changed: the addresses are still held, the network and endpoint are
    // there and work, and the next endpoint gets a new address.
    assert_eq!(held(&netd, pool), ["10.85.0.1", "10.85.0.2"]);
    let b = rt.block_on(c.create_sandbox(&sandbox("b"))).unwrap();
    let second = rt.block_on(c.attach("b", &attach("n1"))).unwrap();
    assert_eq!(ipv4(&second), "10.85.0.3");
    assert!(netd.pings(&b, &ipv4(&ep)));
    assert!(netd.pings(&a, &ipv4(&second)));
}

#[test]
fn the_native_api_cannot_change_what_dockerd_made() {
    let netd = Netd::start_with_docker();
    let engine = Engine::of(&netd);
    let c = &netd.client;
    let rt = runtime();
    let pool = engine.network(NET, "10.86.0.0/24");
    engine.endpoint(NET, EP, &pool);
    let key = netd.host.dir().join("sandbox-key");
    std::fs::write(&key, "").unwrap();
    let joined = engine.ok(
        "NetworkDriver.Join",
        json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": key}),
    );
    assert_eq!(joined["Gateway"], "10.86.0.1");
    rt.block_on(c.create_sandbox(&sandbox("sb"))).unwrap();

    let dockers = "belongs to dockerd";
    for (method, path, body) in [
        ("POST", "/v1/sandboxes/sb/join", json!({"endpoint": EP})),
        ("POST", "/v1/sandboxes/sb/leave", json!({"endpoint": EP})),
        ("POST", "/v1/sandboxes/sb/detach", json!({"endpoint": EP})),
        ("DELETE", &format!("/v1/endpoints/{EP}"), Value::Null),
        ("DELETE", &format!("/v1/networks/{NET}"), Value::Null),
    ] {
        let body = (!body.is_null()).then(|| body.to_string().into_bytes());
        let (status, answer) = rt
            .block_on(c.raw(method.parse().unwrap(), path, body))
            .unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(
            status,
            hyper::StatusCode::CONFLICT,
            "{method} {path}: {text}"
        );
        assert!(text.contains(dockers), "{method} {path}: {text}");
    }

    // Other runtimes' containers may join dockerd's network (netd-cni, oci-hook):
    // their addresses come from the pool dockerd holds through netd's
    // IpamDriver, so neither side is given the other's.
    let native = rt.block_on(c.attach("sb", &attach(NET))).unwrap();
    assert_eq!(ipv4(&native), "10.86.0.3");
    let next = engine.ok("IpamDriver.RequestAddress", json!({"PoolID": pool}));
    assert_eq!(next["Address"], "10.86.0.4/24");
    engine.ok(
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool, "Address": "10.86.0.4"}),
    );
    // dockerd cannot delete the network from under it.
    engine.refused(
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NET}),
        &native.name,
    );
    rt.block_on(c.detach("sb", &native.id)).unwrap();
    // A network dockerd made with Docker's own IPAM cannot be joined so:
    // dockerd hands its addresses out without netd.
    engine.ok(
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": EP2, "Options": {}, "IPv4Data": [{"Pool": "10.87.0.0/24", "Gateway": "10.87.0.1/24"}]}),
    );
    let err = rt
        .block_on(c.attach("sb", &attach(EP2)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--ipam-driver netd"), "{err}");
    engine.ok("NetworkDriver.DeleteNetwork", json!({"NetworkID": EP2}));

    // dockerd's own calls still work, and leave nothing behind.
    engine.ok(
        "NetworkDriver.Leave",
        json!({"NetworkID": NET, "EndpointID": EP}),
    );
    engine.ok(
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": NET, "EndpointID": EP}),
    );
    engine.ok(
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool, "Address": "10.86.0.2"}),
    );
    engine.ok("NetworkDriver.DeleteNetwork", json!({"NetworkID": NET}));
    engine.ok(
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool, "Address": "10.86.0.1"}),
    );
    engine.ok("IpamDriver.ReleasePool", json!({"PoolID": pool}));
    assert_eq!(held(&netd, &pool), Vec::<String>::new());
    assert!(rt.block_on(c.networks()).unwrap().is_empty());
    assert_eq!(netd.links(), ["lo"]);
}

#[test]
fn the_plugin_face_checks_every_address() {
    let netd = Netd::start_with_docker();
    let engine = Engine::of(&netd);
    for (subnet, fragment) in [
        ("0.0.0.0/0", "too large"),
        ("127.0.0.0/16", "loopback"),
        ("224.1.0.0/16", "multicast"),
        ("10.87.0.5/24", "host bits are set"),
        ("10.87.0.1/32", "no room"),
    ] {
        engine.refused(
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "Pool": subnet}),
            fragment,
        );
    }
    engine.refused(
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "fd00:87::/64", "V6": false}),
        "not an IPv4 subnet",
    );
    let pool = engine.network(NET, "10.87.0.0/24");
    let create = |data: Value| json!({"NetworkID": NET, "Options": {}, "IPv4Data": [data]});
    // The same network again is fine; with other data it is refused.
    engine.ok(
        "NetworkDriver.CreateNetwork",
        create(json!({"Pool": "10.87.0.0/24", "Gateway": "10.87.0.1/24"})),
    );
    engine.refused(
        "NetworkDriver.CreateNetwork",
        create(json!({"Pool": "10.87.0.0/24", "Gateway": "10.87.0.3/24"})),
        "exists with other subnets or options",
    );
    let other = "4444444444444444444444444444444444444444444444444444444444444444";
    for (data, fragment) in [
        (json!({"Pool": "10.88.0.5/24"}), "host bits are set"),
        (
            json!({"Pool": "10.88.0.0/24", "Gateway": "10.88.0.0/24"}),
            "network address",
        ),
        (
            json!({"Pool": "10.88.0.0/24", "Gateway": "10.88.0.255/24"}),
            "broadcast address",
        ),
        (
            json!({"Pool": "10.88.0.0/24", "Gateway": "10.88.0.1/16"}),
            "prefix length",
        ),
        (
            json!({"Pool": "fd00:88::/64"}),
            "is in IPv4Data but is not an IPv4 subnet",
        ),
        (json!({"Pool": "10.87.0.0/25"}), "overlaps 10.87.0.0/24"),
        (
            json!({"Pool": "255.255.255.0/24"}),
            "reserved and broadcast",
        ),
    ] {
        engine.refused(
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": other, "Options": {}, "IPv4Data": [data]}),
            fragment,
        );
    }

    let addr = engine.ok("IpamDriver.RequestAddress", json!({"PoolID": pool}));
    let addr = addr["Address"].as_str().unwrap().to_string();
    let endpoint =
        |ep: &str, iface: Value| json!({"NetworkID": NET, "EndpointID": ep, "Interface": iface});
    for (iface, fragment) in [
        (json!({"Address": "10.87.0.1/24"}), "is the gateway"),
        (json!({"Address": "10.87.0.0/24"}), "network address"),
        (json!({"Address": "10.87.0.2/16"}), "prefix length"),
        (json!({"Address": "10.99.0.2/24"}), "not in any subnet"),
        (
            json!({"Address": "10.87.0.77/24"}),
            "was not handed out by netd's IpamDriver",
        ),
        (
            json!({"Address": addr, "MacAddress": "01:00:5e:00:00:01"}),
            "multicast",
        ),
    ] {
        engine.refused(
            "NetworkDriver.CreateEndpoint",
            endpoint(EP, iface),
            fragment,
        );
    }
    engine.ok(
        "NetworkDriver.CreateEndpoint",
        endpoint(
            EP,
            json!({"Address": addr, "MacAddress": "02:42:0a:57:00:02"}),
        ),
    );
    // Another endpoint cannot have its address or its MAC.
    engine.refused(
        "NetworkDriver.CreateEndpoint",
        endpoint(EP2, json!({"Address": addr})),
        "is held by endpoint",
    );
    let addr2 = engine.ok("IpamDriver.RequestAddress", json!({"PoolID": pool}));
    engine.refused(
        "NetworkDriver.CreateEndpoint",
        endpoint(
            EP2,
            json!({"Address": addr2["Address"], "MacAddress": "02:42:0a:57:00:02"}),
        ),
        "MAC address 02:42:0a:57:00:02 is held by endpoint",
    );
    engine.ok(
        "NetworkDriver.CreateEndpoint",
        endpoint(EP2, json!({"Address": addr2["Address"]})),
    );
}

#[test]
fn a_release_of_what_is_still_used_waits_for_its_user() {
    let netd = Netd::start_with_docker();
    let engine = Engine::of(&netd);
    let pool = engine.network(NET, "10.89.0.0/24");
    let addr = engine.endpoint(NET, EP, &pool);
    // dockerd releases the pool and the endpoint's address while netd still has
    // the network and the endpoint (their deletes failed, say): nothing is freed.
    engine.ok(
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool, "Address": addr.split('/').next().unwrap()}),
    );
    engine.ok("IpamDriver.ReleasePool", json!({"PoolID": pool}));
    assert_eq!(held(&netd, &pool), ["10.89.0.1", "10.89.0.2"]);
    engine.refused(
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "10.89.0.0/24"}),
        "overlaps",
    );
    engine.refused(
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool}),
        "was released by dockerd",
    );
    // The endpoint goes: its address with it. The network goes: the pool with it.
    engine.ok(
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": NET, "EndpointID": EP}),
    );
    assert_eq!(held(&netd, &pool), ["10.89.0.1"]);
    engine.ok("NetworkDriver.DeleteNetwork", json!({"NetworkID": NET}));
    assert_eq!(held(&netd, &pool), Vec::<String>::new());
    let again = engine.network(NET, "10.89.0.0/24");
    assert_eq!(again, pool);
}

#[test]
fn a_network_dockerd_deletes_takes_the_endpoints_dockerd_abandoned() {
    let netd = Netd::start_with_docker();
    let engine = Engine::of(&netd);
    let pool = engine.network(NET, "10.90.0.0/24");
    let ep3 = "4".repeat(64);
    for ep in [EP, EP2, ep3.as_str()] {
        engine.endpoint(NET, ep, &pool);
    }
    // EP is joined to a sandbox that is gone since; EP2 to one that is alive and
    // holds its interface (moved there, as dockerd does); the third to one whose
    // file is still there but which never took its interface.
    let gone = netd.host.dir().join("gone-key");
    let alive = netd.host.dir().join("alive-key");
    std::fs::write(&gone, "").unwrap();
    std::fs::write(&alive, "").unwrap();
    for (ep, key) in [(EP, &gone), (EP2, &alive), (ep3.as_str(), &alive)] {
        engine.ok(
            "NetworkDriver.Join",
            json!({"NetworkID": NET, "EndpointID": ep, "SandboxKey": key}),
        );
    }
    let (_container, netns) = netd.foreign_netns("container");
    let moved = format!("vp{}", &EP2[..12]);
    netd.host
        .run("ip", &["link", "set", &moved, "netns", &netns])
        .unwrap();
    std::fs::remove_file(&gone).unwrap();
    engine.refused(
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NET}),
        "has 1 endpoint(s): docker-333333333333",
    );
    std::fs::remove_file(&alive).unwrap();
    engine.ok("NetworkDriver.DeleteNetwork", json!({"NetworkID": NET}));
    let rt = runtime();
    assert!(rt.block_on(netd.client.endpoints()).unwrap().is_empty());
    assert!(rt.block_on(netd.client.networks()).unwrap().is_empty());
    assert_eq!(netd.links(), ["lo"]);
}

/// The join of a container that ended while netd was away (its namespace took the
/// veth pair with it) is undone at netd's start.
#[test]
fn a_join_whose_sandbox_is_gone_is_undone_at_start() {
    let mut netd = Netd::start_with_docker();
    let engine = Engine::of(&netd);
    let pool = engine.network(NET, "10.91.0.0/24");
    engine.endpoint(NET, EP, &pool);
    let key = netd.host.dir().join("key");
    engine.ok(
        "NetworkDriver.Join",
        json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": key}),
    );
    let container = into_a_container(&netd, &key);
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    daemon
        .wait_exit(std::time::Duration::from_secs(10))
        .unwrap();
    // The container goes while netd is away.
    drop(container);
    std::fs::remove_file(&key).unwrap();
    netd.launch();
    let ep = runtime().block_on(netd.client.endpoint(EP)).unwrap();
    assert_eq!(ep.join, None, "still joined: {ep:?}");
    assert_eq!(netd.links().len(), 2, "{:?}", netd.links());
}

/// What dockerd does after Join: make the sandbox's file and move the interface
/// into the container's namespace. Returns the container.
fn into_a_container(netd: &Netd, key: &std::path::Path) -> tests::Daemon {
    std::fs::write(key, "").unwrap();
    let (container, netns) = netd.foreign_netns("container");
    let engine_link = format!("vp{}", &EP[..12]);
    netd.host
        .run("ip", &["link", "set", &engine_link, "netns", &netns])
        .unwrap();
    container
}

/// dockerd makes a sandbox's file only after Join, when it moves the interface in:
/// until then the join stands, however long netd's reaper looks. Once the file and
/// the interface are gone (the container ended and no Leave came), netd undoes the
/// join while running.
#[test]
fn a_join_is_undone_only_once_its_sandbox_and_interface_are_gone() {
    let netd = Netd::start_with_docker();
    let engine = Engine::of(&netd);
    let rt = runtime();
    let pool = engine.network(NET, "10.92.0.0/24");
    engine.endpoint(NET, EP, &pool);
    let key = netd.host.dir().join("key");
    engine.ok(
        "NetworkDriver.Join",
        json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": key}),
    );
    // More than a reaper round (10 s) before dockerd takes the interface.
    std::thread::sleep(std::time::Duration::from_secs(12));
    let ep = rt.block_on(netd.client.endpoint(EP)).unwrap();
    assert!(ep.join.is_some(), "unjoined before dockerd took it: {ep:?}");
    assert_eq!(netd.links().len(), 4, "{:?}", netd.links());

    let container = into_a_container(&netd, &key);
    drop(container);
    std::fs::remove_file(&key).unwrap();
    tests::wait_for(
        "the join undone",
        std::time::Duration::from_secs(25),
        || {
            let ep = rt.block_on(netd.client.endpoint(EP)).unwrap();
            Ok(ep.join.is_none().then_some(()))
        },
    )
    .unwrap();
    assert_eq!(netd.links().len(), 2, "{:?}", netd.links());
}

#[test]
fn a_sync_with_a_view_missing_all_of_netds_docker_objects_is_refused_unless_asked() {
    let netd = Netd::start_with_docker();
    let engine = Engine::of(&netd);
    engine.network(NET, "10.98.0.0/24");
    let rt = runtime();
    let empty = netd::controller::EngineView {
        grace_seconds: Some(0),
        ..Default::default()
    };
    let err = rt
        .block_on(netd.client.engine_sync(&empty))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is the plugin name right"), "{err}");
    assert_eq!(rt.block_on(netd.client.networks()).unwrap().len(), 1);
    let report = rt
        .block_on(netd.client.engine_sync(&netd::controller::EngineView {
            allow_empty: true,
            ..empty.clone()
        }))
        .unwrap();
    assert_eq!(report.networks, [NET]);
    assert_eq!(report.pools, ["local/10.98.0.0/24"]);
    assert!(rt.block_on(netd.client.networks()).unwrap().is_empty());
    assert!(rt.block_on(netd.client.pools()).unwrap().is_empty());

    // The same for a host that uses netd only as IPAM (dockerd's bridge driver).
    let pool = engine.ok(
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "10.99.0.0/24"}),
    )["PoolID"]
        .as_str()
        .unwrap()
        .to_string();
    engine.ok("IpamDriver.RequestAddress", json!({"PoolID": pool}));
    let err = rt
        .block_on(netd.client.engine_sync(&empty))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("none of the 1 subnet(s) dockerd holds through netd's IPAM"),
        "{err}"
    );
    assert_eq!(held(&netd, &pool), ["10.99.0.1"]);

    // Without a dockerd to ask, the CLI says which socket it tried.
    let err = netd
        .cli(&["docker-sync", "--docker-socket", "/nonexistent/docker.sock"])
        .unwrap_err();
    assert!(
        err.contains("cannot reach dockerd at /nonexistent/docker.sock"),
        "{err}"
    );
}
