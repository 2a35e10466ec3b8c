//! `PluginClient` and `RemoteDriver` against real plugins: the crate's own server,
//! and canned replies the way Go plugins write them.

mod common;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::{fixture_text, Fake, Served, TestPlugin};
use plugin_api::client::{ClientError, PluginAddr, ACCEPT};
use plugin_api::protocol::ipam::*;
use plugin_api::protocol::network::*;
use plugin_api::protocol::volume::*;
use plugin_api::protocol::Scope;
use plugin_api::{
    IpamDriver, NetworkDriver, Plugin, PluginClient, PluginError, PluginSocket, RemoteDriver,
    VolumeDriver,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A plugin that answers each `(path, status, body)` with that status and body.
fn canned<'a, B: Into<String>>(replies: impl IntoIterator<Item = (&'a str, u16, B)>) -> Router {
    replies
        .into_iter()
        .fold(Router::new(), |router, (path, status, body)| {
            let status = StatusCode::from_u16(status).unwrap();
            let body: String = body.into();
            router.route(path, post(move || async move { (status, body) }))
        })
}

fn mount_request(name: &str) -> MountRequest {
    MountRequest {
        name: name.into(),
        id: "c0ffee".into(),
    }
}

#[tokio::test]
async fn a_slow_plugin_times_out() {
    let p = TestPlugin::start(
        Plugin::new()
            .volume(Fake::slow(Duration::from_secs(30)))
            .router(),
    );
    let client = p.client().timeout(Duration::from_millis(200));
    let started = Instant::now();
    let err = client
        .call::<_, MountpointResponse>("VolumeDriver.Mount", &mount_request("v"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    match &err {
        ClientError::Timeout {
            method,
            addr,
            after,
        } => {
            assert_eq!(method, "VolumeDriver.Mount");
            assert_eq!(*addr, format!("unix://{}", p.served.socket().display()));
            assert_eq!(*after, Duration::from_millis(200));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        err.to_string().contains("did not answer within 200ms"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.sock");
    for retry in [Duration::ZERO, Duration::from_millis(300)] {
        let started = Instant::now();
        let err = PluginClient::unix(&path)
            .retry_connect_for(retry)
            .activate()
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        match &err {
            ClientError::Connect { addr, source } => {
                assert_eq!(*addr, format!("unix://{}", path.display()));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
        // It gives up once the retry window is spent, not before, not much later.
        assert!(elapsed >= retry, "{elapsed:?} < {retry:?}");
        assert!(elapsed < retry + Duration::from_secs(2), "{elapsed:?}");
    }
}

#[tokio::test]
async fn retry_connect_for_waits_for_a_late_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().to_path_buf();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let socket = PluginSocket::bind(
            "late",
            &plugin_api::Registration::SocketIn(sockets),
            Default::default(),
        )
        .unwrap();
        Served::spawn(socket, Plugin::new().volume(Fake::default()).router())
    });
    let client = PluginClient::unix(dir.path().join("late.sock"))
        .retry_connect_for(Duration::from_secs(10))
        .timeout(Duration::from_secs(20));
    let activated = client.activate().await.expect("activates once it appears");
    assert_eq!(activated.implements, ["VolumeDriver"]);
    late.await.unwrap().stop().await.unwrap();
}

#[tokio::test]
async fn errors_in_a_200_reply_are_plugin_errors() {
    let p = TestPlugin::start(canned([
        // IPAM reports failure in `Error`...
        (
            "/IpamDriver.RequestPool",
            200,
            r#"{"Error": "no free pool", "PoolID": "", "Pool": ""}"#,
        ),
        // ...the others in `Err`.
        ("/NetworkDriver.Join", 200, r#"{"Err": "no such endpoint"}"#),
        (
            "/VolumeDriver.Get",
            200,
            r#"{"Err": "no such volume", "Volume": null}"#,
        ),
    ]));
    let client = p.client();
    for (method, expected) in [
        ("IpamDriver.RequestPool", "no free pool"),
        ("NetworkDriver.Join", "no such endpoint"),
        ("VolumeDriver.Get", "no such volume"),
    ] {
        let err = client
            .call::<_, Value>(method, &json!({}))
            .await
            .unwrap_err();
        match &err {
            ClientError::Plugin {
                method: m,
                status,
                message,
            } => {
                assert_eq!(
                    (m.as_str(), *status, message.as_str()),
                    (method, 200, expected)
                );
            }
            other => panic!("{method}: expected a plugin error, got {other:?}"),
        }
        assert_eq!(err.to_string(), format!("{method}: {expected}"));
    }
}

#[tokio::test]
async fn error_bodies_that_are_not_json_keep_the_raw_text() {
    let p = TestPlugin::start(canned([
        (
            "/VolumeDriver.Create",
            500,
            "plugin crashed: out of memory\n",
        ),
        // Go's default mux for a call the plugin does not have.
        ("/VolumeDriver.Path", 404, "404 page not found\n"),
        // An empty Err says nothing: like the engine, show the body.
        ("/VolumeDriver.Remove", 500, r#"{"Err": ""}"#),
    ]));
    for (method, status, expected) in [
        ("VolumeDriver.Create", 500, "plugin crashed: out of memory"),
        ("VolumeDriver.Path", 404, "404 page not found"),
        ("VolumeDriver.Remove", 500, r#"{"Err": ""}"#),
    ] {
        let err = p
            .client()
            .call::<_, Value>(method, &json!({"Name": "v"}))
            .await
            .unwrap_err();
        match err {
            ClientError::Plugin {
                status: s, message, ..
            } => assert_eq!((s, message.as_str()), (status, expected), "{method}"),
            other => panic!("{method}: expected a plugin error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_200_reply_that_is_not_json_is_a_bad_reply() {
    let p = TestPlugin::start(canned([("/VolumeDriver.List", 200, "")]));
    let err = p
        .client()
        .call::<_, ListVolumesResponse>("VolumeDriver.List", &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::BadReply { method, message }
            if method == "VolumeDriver.List" && message.starts_with("body is not JSON")),
        "{err:?}"
    );
}

#[tokio::test]
async fn calls_carry_the_engines_headers() {
    let echo = Router::new().route(
        "/VolumeDriver.List",
        post(|headers: HeaderMap, body: String| async move {
            let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
            json!({
                "Accept": header("accept"),
                "ContentType": header("content-type"),
                "Host": header("host"),
                "Body": body,
            })
            .to_string()
        }),
    );
    let p = TestPlugin::start(echo);
    let reply = p
        .client()
        .call_raw("VolumeDriver.List", "", None)
        .await
        .unwrap();
    assert_eq!(
        reply.json(),
        json!({
            "Accept": ACCEPT,
            "ContentType": null,
            "Host": "plugin.moby.localhost",
            "Body": "",
        })
    );
    assert_eq!(ACCEPT, "application/vnd.docker.plugins.v1.2+json");

    let reply: Value = p
        .client()
        .call("VolumeDriver.List", &json!({}))
        .await
        .unwrap();
    assert_eq!(
        (&reply["ContentType"], &reply["Body"]),
        (&Value::Null, &json!("{}"))
    );
}

/// Go plugins answer `"Err": ""` (IPAM: `"Error": ""`) on success: not an error.
#[tokio::test]
async fn replies_as_go_plugins_write_them_are_decoded() {
    let methods = [
        "Plugin.Activate",
        "IpamDriver.RequestPool",
        "IpamDriver.ReleasePool",
        "NetworkDriver.Join",
        "NetworkDriver.CreateNetwork",
        "VolumeDriver.Get",
        "VolumeDriver.Create",
        "VolumeDriver.Capabilities",
    ];
    let paths = methods.map(|method| format!("/{method}"));
    let replies = methods.iter().zip(&paths).map(|(method, path)| {
        (
            path.as_str(),
            200,
            fixture_text(&format!("{method}.response")),
        )
    });
    let p = TestPlugin::start(canned(replies));
    let remote = RemoteDriver::new(p.client());

    let activated = remote.client().activate().await.unwrap();
    assert_eq!(activated.implements.len(), 3);
    let pool = IpamDriver::request_pool(
        &remote,
        RequestPoolRequest {
            address_space: "LocalDefault".into(),
            pool: None,
            sub_pool: None,
            options: Default::default(),
            v6: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(pool.pool, "172.20.0.0/16".parse().unwrap());
    IpamDriver::release_pool(
        &remote,
        ReleasePoolRequest {
            pool_id: pool.pool_id,
        },
    )
    .await
    .unwrap();
    let joined = NetworkDriver::join(
        &remote,
        JoinRequest {
            network_id: "n".into(),
            endpoint_id: "e".into(),
            sandbox_key: "/var/run/docker/netns/x".into(),
            options: Default::default(),
        },
    )
    .await
    .unwrap();
    assert_eq!(joined.gateway, Some("172.20.0.1".parse().unwrap()));
    NetworkDriver::create_network(
        &remote,
        CreateNetworkRequest {
            network_id: "n".into(),
            options: Default::default(),
            ipv4_data: vec![],
            ipv6_data: vec![],
        },
    )
    .await
    .unwrap();
    let got = VolumeDriver::get(
        &remote,
        VolumeRequest {
            name: "myvol".into(),
        },
    )
    .await
    .unwrap();
    assert!(got.volume.created_at.is_some());
    VolumeDriver::create(
        &remote,
        CreateVolumeRequest {
            name: "myvol".into(),
            opts: Default::default(),
        },
    )
    .await
    .unwrap();
    let caps = VolumeDriver::capabilities(&remote).await.unwrap();
    assert_eq!(caps.capabilities.scope, Scope::Global);
}

#[tokio::test]
async fn remote_driver_forwards_calls() {
    let backend = Fake::default();
    let p = TestPlugin::start(
        Plugin::new()
            .network(backend.clone())
            .ipam(backend.clone())
            .volume(backend.clone())
            .router(),
    );
    let remote = RemoteDriver::new(p.client());

    let mounted = VolumeDriver::mount(&remote, mount_request("myvol"))
        .await
        .unwrap();
    assert_eq!(mounted.mountpoint, "/mnt/volumes/myvol");
    let listed = VolumeDriver::list(&remote).await.unwrap();
    assert_eq!(listed.volumes[0].name, "myvol");
    let address = IpamDriver::request_address(
        &remote,
        RequestAddressRequest {
            pool_id: "p".into(),
            address: Some("10.9.0.7".parse().unwrap()),
            options: Default::default(),
        },
    )
    .await
    .unwrap();
    assert_eq!(address.address, "10.9.0.7/16".parse().unwrap());
    NetworkDriver::leave(
        &remote,
        EndpointRequest {
            network_id: "n".into(),
            endpoint_id: "e".into(),
        },
    )
    .await
    .unwrap();
    // Methods the backend leaves to the trait defaults answer the defaults.
    let caps = NetworkDriver::get_capabilities(&remote).await.unwrap();
    assert_eq!(caps, NetworkCapabilities::default());

    let calls = backend.calls();
    let methods: Vec<&str> = calls.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        methods,
        [
            "VolumeDriver.Mount",
            "VolumeDriver.List",
            "IpamDriver.RequestAddress",
            "NetworkDriver.Leave"
        ]
    );
    assert_eq!(calls[0].1, json!({"Name": "myvol", "ID": "c0ffee"}));
    assert_eq!(calls[2].1["Address"], "10.9.0.7");
}

#[tokio::test]
async fn remote_errors_keep_their_message_and_status() {
    let create = || CreateVolumeRequest {
        name: "myvol".into(),
        opts: Default::default(),
    };
    let cases = [
        (
            TestPlugin::start(Plugin::new().volume(Fake::failing("disk full")).router()),
            "disk full",
            500,
        ),
        (
            TestPlugin::start(
                Plugin::new()
                    .volume(Fake::failing(PluginError::not_implemented(
                        "VolumeDriver.Create",
                    )))
                    .router(),
            ),
            "VolumeDriver.Create is not supported by this driver",
            501,
        ),
        // A 200 with an error is still a failure for the engine: 500.
        (
            TestPlugin::start(canned([(
                "/VolumeDriver.Create",
                200,
                r#"{"Err": "quota"}"#,
            )])),
            "quota",
            500,
        ),
    ];
    for (backend, message, status) in cases {
        let remote = RemoteDriver::new(backend.client());
        let err = VolumeDriver::create(&remote, create()).await.unwrap_err();
        assert_eq!((err.message(), err.status().as_u16()), (message, status));

        // Fronted by our own server, the engine sees the remote's words.
        let front = TestPlugin::start(Plugin::new().volume(remote).router());
        let reply = front
            .client()
            .call_raw("VolumeDriver.Create", r#"{"Name": "myvol"}"#, None)
            .await
            .unwrap();
        assert_eq!(reply.status.as_u16(), status);
        assert_eq!(reply.json(), json!({ "Err": message }));
    }

    // Transport errors carry their cause.
    let dir = tempfile::tempdir().unwrap();
    let remote = RemoteDriver::new(PluginClient::unix(dir.path().join("gone.sock")));
    let err = VolumeDriver::create(&remote, create()).await.unwrap_err();
    assert_eq!(err.status().as_u16(), 500);
    assert!(
        err.message().starts_with("connecting to plugin at unix://"),
        "{err}"
    );
    assert!(err.message().contains("No such file or directory"), "{err}");
}

#[tokio::test]
async fn tcp_addresses_work() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: PluginAddr = format!("tcp://{}", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = Plugin::new().volume(Fake::default()).router();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let client = PluginClient::new(addr).timeout(Duration::from_secs(10));
    assert_eq!(
        client.activate().await.unwrap().implements,
        ["VolumeDriver"]
    );
    let mounted: MountpointResponse = client
        .call("VolumeDriver.Mount", &mount_request("tcpvol"))
        .await
        .unwrap();
    assert_eq!(mounted.mountpoint, "/mnt/volumes/tcpvol");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
