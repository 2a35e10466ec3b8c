//! The allocator's Docker face, spoken to over a unix socket exactly as dockerd does.

use ipam::docker::DockerIpam;
use ipam::{ula_prefix, Config, Ipam};
use ipnet::IpNet;
use plugin_api::{Plugin, PluginClient, PluginSocket, Registration};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

struct Served {
    client: PluginClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(Config::defaults("host-1")).unwrap();
        let driver = DockerIpam::new(Arc::new(Mutex::new(ipam)));
        let socket = PluginSocket::bind(
            "netipam",
            &Registration::SocketIn(dir.path().into()),
            Default::default(),
        )
        .unwrap();
        let client = PluginClient::unix(socket.socket_path());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(socket.serve(Plugin::new().ipam(driver).router(), async {
            let _ = stopped.await;
        }));
        Served {
            client,
            stop: Some(stop),
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, body: Value) -> Result<Value, String> {
        self.client
            .call::<Value, Value>(method, &body)
            .await
            .map_err(|e| e.to_string())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test]
async fn pools_and_addresses_follow_dockers_semantics() {
    let s = Served::start().await;
    let spaces = s
        .call("IpamDriver.GetDefaultAddressSpaces", json!({}))
        .await
        .unwrap();
    assert_eq!(
        spaces,
        json!({"LocalDefaultAddressSpace": "LocalDefault", "GlobalDefaultAddressSpace": "GlobalDefault"})
    );

    // Any IPv4 pool comes from the default pools.
    let any = s
        .call(
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "Pool": "", "V6": false}),
        )
        .await
        .unwrap();
    assert_eq!(any["Pool"], "172.24.0.0/24");
    assert_eq!(any["PoolID"], "local/172.24.0.0/24");

    // V6 with no pool: a /64 of the host's ULA /48.
    let v6 = s
        .call(
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "V6": true}),
        )
        .await
        .unwrap();
    let v6_pool: IpNet = v6["Pool"].as_str().unwrap().parse().unwrap();
    assert_eq!(v6_pool.prefix_len(), 64);
    assert!(IpNet::V6(ula_prefix("host-1")).contains(&v6_pool));

    // A given pool with an ip-range: the gateway comes from the range (as the engine
    // asks for it), static addresses may lie outside it, and answers are CIDRs.
    let pool = s
        .call(
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "Pool": "198.18.0.0/24", "SubPool": "198.18.0.128/25", "Options": null}),
        )
        .await
        .unwrap();
    let id = pool["PoolID"].as_str().unwrap().to_string();
    let gw = s
        .call(
            "IpamDriver.RequestAddress",
            json!({"PoolID": id, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
        )
        .await
        .unwrap();
    assert_eq!(gw["Address"], "198.18.0.128/24");
    let fixed = s
        .call(
            "IpamDriver.RequestAddress",
            json!({"PoolID": id, "Address": "198.18.0.7"}),
        )
        .await
        .unwrap();
    assert_eq!(fixed["Address"], "198.18.0.7/24");
    let next = s
        .call(
            "IpamDriver.RequestAddress",
            json!({"PoolID": id, "Options": null}),
        )
        .await
        .unwrap();
    assert_eq!(next["Address"], "198.18.0.129/24");

    let err = s
        .call(
            "IpamDriver.RequestAddress",
            json!({"PoolID": id, "Address": "198.18.0.7"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.ends_with("198.18.0.7 is already allocated in 198.18.0.0/24"),
        "{err}"
    );

    s.call(
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": id, "Address": "198.18.0.7"}),
    )
    .await
    .unwrap();
    let err = s
        .call(
            "IpamDriver.ReleaseAddress",
            json!({"PoolID": id, "Address": "198.18.0.7"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.ends_with("198.18.0.7 is not allocated in 198.18.0.0/24"),
        "{err}"
    );

    // The same subnet cannot be had twice.
    let err = s
        .call(
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "Pool": "198.18.0.0/25"}),
        )
        .await
        .unwrap_err();
    assert!(err.contains("overlaps 198.18.0.0/24, which is allocated to pool local/198.18.0.0/24/198.18.0.128/25"), "{err}");

    s.call("IpamDriver.ReleasePool", json!({"PoolID": id}))
        .await
        .unwrap();
    s.call(
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "LocalDefault", "Pool": "198.18.0.0/25"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn serial_option_goes_round_robin() {
    let s = Served::start().await;
    let pool = s
        .call(
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "Pool": "198.18.1.0/29", "Options": {"com.docker.network.ipam.serial": "true"}}),
        )
        .await
        .unwrap();
    let id = pool["PoolID"].as_str().unwrap().to_string();
    let mut got = Vec::new();
    for _ in 0..2 {
        let a = s
            .call("IpamDriver.RequestAddress", json!({"PoolID": id}))
            .await
            .unwrap();
        got.push(a["Address"].as_str().unwrap().to_string());
    }
    s.call(
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": id, "Address": "198.18.1.1"}),
    )
    .await
    .unwrap();
    let a = s
        .call("IpamDriver.RequestAddress", json!({"PoolID": id}))
        .await
        .unwrap();
    got.push(a["Address"].as_str().unwrap().to_string());
    assert_eq!(got, ["198.18.1.1/29", "198.18.1.2/29", "198.18.1.3/29"]);
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let s = Served::start().await;
    let cases = [
        (
            json!({"AddressSpace": "Elsewhere"}),
            "unknown address space \"Elsewhere\": use \"local\" or \"global\"",
        ),
        (
            json!({"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24", "V6": true}),
            "invalid pool: 10.0.0.0/24 is not an IPv6 subnet",
        ),
        (
            json!({"AddressSpace": "LocalDefault", "Pool": "10.0.0.1/24"}),
            "invalid pool: 10.0.0.1/24 has host bits set: did you mean 10.0.0.0/24?",
        ),
        (
            json!({"AddressSpace": "LocalDefault", "Pool": "10.0.0.0/24", "Options": {"com.docker.network.ipam.serial": "yes"}}),
            "invalid option: com.docker.network.ipam.serial=\"yes\": expected true or false",
        ),
    ];
    for (body, want) in cases {
        let err = s
            .call("IpamDriver.RequestPool", body.clone())
            .await
            .unwrap_err();
        assert!(err.ends_with(want), "{body}: {err}");
    }
    // A malformed CIDR is caught while decoding, naming the field.
    let err = s
        .call(
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "Pool": "10.0.0/24"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.contains("at Pool") && err.contains("10.0.0/24"),
        "{err}"
    );
    let err = s
        .call(
            "IpamDriver.RequestAddress",
            json!({"PoolID": "local/10.9.9.0"}),
        )
        .await
        .unwrap_err();
    assert!(err.contains("invalid pool id"), "{err}");
    let err = s
        .call(
            "IpamDriver.ReleasePool",
            json!({"PoolID": "local/10.9.9.0/24"}),
        )
        .await
        .unwrap_err();
    assert!(err.ends_with("unknown pool local/10.9.9.0/24"), "{err}");
}
