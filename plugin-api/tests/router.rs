//! The router as the engine sees it: a real unix socket, calls made the way dockerd
//! makes them (POST, no Content-Type, empty bodies for calls without arguments),
//! and what a caller gets back for every kind of bad request.

mod common;

use common::{fixture, Fake, TestPlugin};
use plugin_api::client::RawReply;
use plugin_api::server::{DEFAULT_BODY_LIMIT, PLUGIN_CONTENT_TYPE};
use plugin_api::{Plugin, PluginError};
use serde_json::{json, Value};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plugin implementing all three interfaces with `fake`.
fn all_three(fake: &Fake) -> Plugin {
    Plugin::new()
        .network(fake.clone())
        .ipam(fake.clone())
        .volume(fake.clone())
}

/// POST `body` to `method` as dockerd does: no Content-Type.
async fn post(plugin: &TestPlugin, method: &str, body: impl Into<bytes::Bytes>) -> RawReply {
    post_as(plugin, method, body, None).await
}

async fn post_as(
    plugin: &TestPlugin,
    method: &str,
    body: impl Into<bytes::Bytes>,
    content_type: Option<&str>,
) -> RawReply {
    plugin
        .client()
        .call_raw(method, body, content_type)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// The reply's JSON body, after checking its status and Content-Type.
fn reply_json(reply: &RawReply, status: u16) -> Value {
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status.as_u16(), status, "body: {body}");
    assert_eq!(
        reply.content_type.as_deref(),
        Some(PLUGIN_CONTENT_TYPE),
        "body: {body}"
    );
    serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The `Err` of an error reply, which must be the body's only field.
fn error_message(reply: &RawReply, status: u16) -> String {
    let body = reply_json(reply, status);
    let obj = body.as_object().expect("an object");
    assert_eq!(obj.len(), 1, "only Err expected: {body}");
    obj["Err"].as_str().expect("Err is a string").to_string()
}

/// The request body Go's json.Encoder writes for fixture `name`.
fn engine_body(name: &str) -> String {
    format!("{}\n", fixture(name))
}

#[tokio::test]
async fn activate_lists_exactly_the_implemented_interfaces() {
    let fake = Fake::default();
    let cases = [
        (Plugin::new(), json!([])),
        (Plugin::new().volume(fake.clone()), json!(["VolumeDriver"])),
        (
            Plugin::new().ipam(fake.clone()).network(fake.clone()),
            json!(["NetworkDriver", "IpamDriver"]),
        ),
        (
            all_three(&fake),
            json!(["NetworkDriver", "IpamDriver", "VolumeDriver"]),
        ),
    ];
    for (plugin, implements) in cases {
        let p = TestPlugin::start(plugin.router());
        // dockerd activates with an empty body.
        let reply = post(&p, "Plugin.Activate", "").await;
        assert_eq!(reply_json(&reply, 200), json!({ "Implements": implements }));
        let typed = p.client().activate().await.unwrap();
        assert_eq!(json!(typed.implements), implements);
    }
}

#[tokio::test]
async fn engine_requests_reach_the_driver_and_get_its_answer() {
    let fake = Fake::default();
    let p = TestPlugin::start(all_three(&fake).router());
    let volume = json!({
        "Name": "myvol",
        "Mountpoint": "/mnt/volumes/myvol",
        "CreatedAt": "2024-05-14T09:21:33Z",
    });
    let cases = [
        ("NetworkDriver.CreateNetwork", json!({})),
        ("NetworkDriver.DeleteNetwork", json!({})),
        ("NetworkDriver.CreateEndpoint", json!({ "Interface": null })),
        ("NetworkDriver.DeleteEndpoint", json!({})),
        (
            "NetworkDriver.Join",
            json!({
                "InterfaceName": {"SrcName": "veth-test", "DstName": "", "DstPrefix": "eth"},
                "Gateway": "172.20.0.1",
                "GatewayIPv6": "",
                "StaticRoutes": [],
                "DisableGatewayService": false,
            }),
        ),
        ("NetworkDriver.Leave", json!({})),
        (
            "IpamDriver.RequestPool",
            json!({"PoolID": "LocalDefault/172.20.0.0/16", "Pool": "172.20.0.0/16", "Data": {}}),
        ),
        ("IpamDriver.ReleasePool", json!({})),
        (
            "IpamDriver.RequestAddress",
            json!({"Address": "172.20.0.1/16", "Data": {}}),
        ),
        ("IpamDriver.ReleaseAddress", json!({})),
        ("VolumeDriver.Create", json!({})),
        ("VolumeDriver.Remove", json!({})),
        (
            "VolumeDriver.Mount",
            json!({"Mountpoint": "/mnt/volumes/myvol"}),
        ),
        ("VolumeDriver.Unmount", json!({})),
        (
            "VolumeDriver.Path",
            json!({"Mountpoint": "/mnt/volumes/myvol"}),
        ),
        ("VolumeDriver.Get", json!({ "Volume": volume })),
    ];
    let count = cases.len();
    for (method, expected) in cases {
        let name = format!("{method}.request");
        let reply = post(&p, method, engine_body(&name)).await;
        assert_eq!(reply_json(&reply, 200), expected, "{method}");
        // The driver got this call, with the request exactly as the engine sent it.
        let (called, request) = fake.calls().pop().expect("a recorded call");
        assert_eq!(called, method);
        assert_eq!(request, fixture(&name), "{method}");
    }
    assert_eq!(fake.calls().len(), count);

    let reply = post(
        &p,
        "VolumeDriver.List",
        engine_body("VolumeDriver.List.request"),
    )
    .await;
    assert_eq!(reply_json(&reply, 200), json!({ "Volumes": [volume] }));
    assert_eq!(fake.methods().last().unwrap(), "VolumeDriver.List");
}

#[tokio::test]
async fn default_trait_methods_answer_what_the_engine_accepts() {
    let fake = Fake::default();
    let p = TestPlugin::start(all_three(&fake).router());
    let cases = [
        (
            "NetworkDriver.GetCapabilities",
            String::new(),
            json!({"Scope": "local", "ConnectivityScope": "local", "GwAllocChecker": false}),
        ),
        (
            "NetworkDriver.GwAllocCheck",
            engine_body("NetworkDriver.GwAllocCheck.request"),
            json!({"SkipIPv4": false, "SkipIPv6": false}),
        ),
        (
            "NetworkDriver.AllocateNetwork",
            engine_body("NetworkDriver.AllocateNetwork.request"),
            json!({"Options": {}}),
        ),
        (
            "NetworkDriver.FreeNetwork",
            engine_body("NetworkDriver.FreeNetwork.request"),
            json!({}),
        ),
        (
            "NetworkDriver.EndpointOperInfo",
            engine_body("NetworkDriver.EndpointOperInfo.request"),
            json!({"Value": {}}),
        ),
        (
            "NetworkDriver.DiscoverNew",
            engine_body("NetworkDriver.DiscoverNew.request"),
            json!({}),
        ),
        (
            "NetworkDriver.DiscoverDelete",
            engine_body("NetworkDriver.DiscoverDelete.request"),
            json!({}),
        ),
        (
            "NetworkDriver.ProgramExternalConnectivity",
            engine_body("NetworkDriver.ProgramExternalConnectivity.request"),
            json!({}),
        ),
        (
            "NetworkDriver.RevokeExternalConnectivity",
            engine_body("NetworkDriver.RevokeExternalConnectivity.request"),
            json!({}),
        ),
        (
            "IpamDriver.GetCapabilities",
            String::new(),
            json!({"RequiresMACAddress": false, "RequiresRequestReplay": false}),
        ),
        (
            "IpamDriver.GetDefaultAddressSpaces",
            String::new(),
            json!({
                "LocalDefaultAddressSpace": "LocalDefault",
                "GlobalDefaultAddressSpace": "GlobalDefault",
            }),
        ),
        (
            "VolumeDriver.Capabilities",
            engine_body("VolumeDriver.Capabilities.request"),
            json!({"Capabilities": {"Scope": "local"}}),
        ),
    ];
    for (method, body, expected) in cases {
        let reply = post(&p, method, body).await;
        assert_eq!(reply_json(&reply, 200), expected, "{method}");
    }
    assert_eq!(fake.methods(), Vec::<String>::new());
}

#[tokio::test]
async fn calls_without_arguments_accept_empty_and_object_bodies() {
    let fake = Fake::default();
    let p = TestPlugin::start(all_three(&fake).router());
    for method in [
        "Plugin.Activate",
        "NetworkDriver.GetCapabilities",
        "IpamDriver.GetCapabilities",
        "IpamDriver.GetDefaultAddressSpaces",
        "VolumeDriver.List",
        "VolumeDriver.Capabilities",
    ] {
        let empty = reply_json(&post(&p, method, "").await, 200);
        for body in ["{}", "{}\n", " \n"] {
            let reply = post(&p, method, body).await;
            assert_eq!(reply_json(&reply, 200), empty, "{method} with {body:?}");
        }
    }
}

#[tokio::test]
async fn content_type_is_neither_required_nor_checked() {
    let fake = Fake::default();
    let p = TestPlugin::start(Plugin::new().volume(fake.clone()).router());
    let body = engine_body("VolumeDriver.Create.request");
    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let reply = post_as(&p, "VolumeDriver.Create", body.clone(), content_type).await;
        assert_eq!(reply_json(&reply, 200), json!({}), "{content_type:?}");
    }
    assert_eq!(fake.methods(), ["VolumeDriver.Create"; 3]);
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_method() {
    let fake = Fake::default();
    let p = TestPlugin::start(all_three(&fake).router());
    for content_type in [None, Some("application/json")] {
        for (method, body) in [
            ("VolumeDriver.Create", r#"{"Name": "v""#),
            ("NetworkDriver.Join", "not json"),
            (
                "IpamDriver.RequestPool",
                r#"{"AddressSpace": "x"} trailing"#,
            ),
        ] {
            let reply = post_as(&p, method, body, content_type).await;
            let message = error_message(&reply, 400);
            assert!(
                message.starts_with(&format!("invalid JSON body for {method}")),
                "{message}"
            );
        }
    }
    assert_eq!(fake.methods(), Vec::<String>::new());
}

#[tokio::test]
async fn wrong_types_name_the_field() {
    let fake = Fake::default();
    let p = TestPlugin::start(all_three(&fake).router());
    let mut network = fixture("NetworkDriver.CreateNetwork.request");
    network["IPv4Data"][0]["Gateway"] = json!("172.20.0.1");
    let cases = [
        (
            "VolumeDriver.Create",
            json!({"Name": "v", "Opts": {"size": 10}}),
            "at Opts.size: invalid type: integer `10`, expected a string",
        ),
        (
            "NetworkDriver.Join",
            json!({"NetworkID": 5}),
            "at NetworkID",
        ),
        (
            "IpamDriver.RequestPool",
            json!({"AddressSpace": "LocalDefault", "V6": "yes"}),
            "at V6",
        ),
        // A bare gateway where the engine sends CIDR form.
        (
            "NetworkDriver.CreateNetwork",
            network,
            "at IPv4Data[0].Gateway: \"172.20.0.1\"",
        ),
    ];
    for (method, body, expected) in cases {
        let reply = post(&p, method, body.to_string()).await;
        let message = error_message(&reply, 400);
        assert!(message.contains(method), "{message}");
        assert!(message.contains(expected), "{method}: {message}");
    }
    assert_eq!(fake.methods(), Vec::<String>::new());
}

#[tokio::test]
async fn empty_body_where_a_field_is_required_is_400() {
    let fake = Fake::default();
    let p = TestPlugin::start(all_three(&fake).router());
    for (method, field) in [
        ("VolumeDriver.Create", "Name"),
        ("VolumeDriver.Mount", "Name"),
        ("NetworkDriver.Join", "NetworkID"),
        ("IpamDriver.ReleasePool", "PoolID"),
    ] {
        let message = error_message(&post(&p, method, "").await, 400);
        assert!(message.contains(method), "{message}");
        assert!(
            message.contains(&format!("missing field `{field}`")),
            "{message}"
        );
    }
    assert_eq!(fake.methods(), Vec::<String>::new());
}

/// `{"Name": "aaa…"}` of exactly `len` bytes.
fn create_body(len: usize) -> String {
    let body = format!(r#"{{"Name":"{}"}}"#, "a".repeat(len - 11));
    assert_eq!(body.len(), len);
    body
}

#[tokio::test]
async fn oversized_body_is_413_with_the_limit() {
    let fake = Fake::default();
    let p = TestPlugin::start(Plugin::new().volume(fake.clone()).router());
    // Just over the limit, and far over it: the caller still gets the reply (the
    // server answers before reading the body), not a broken connection.
    for (len, content_type) in [
        (DEFAULT_BODY_LIMIT + 1, None),
        (DEFAULT_BODY_LIMIT + 1, Some("application/json")),
        (16 * DEFAULT_BODY_LIMIT, None),
    ] {
        let reply = post_as(&p, "VolumeDriver.Create", create_body(len), content_type).await;
        let message = error_message(&reply, 413);
        assert_eq!(
            message,
            "request body of VolumeDriver.Create is larger than the limit of 1048576 bytes"
        );
    }
    let reply = post(&p, "VolumeDriver.Create", create_body(DEFAULT_BODY_LIMIT)).await;
    assert_eq!(reply_json(&reply, 200), json!({}));
    assert_eq!(fake.methods(), ["VolumeDriver.Create"]);
}

#[tokio::test]
async fn custom_body_limit() {
    let fake = Fake::default();
    let p = TestPlugin::start(Plugin::new().volume(fake.clone()).body_limit(64).router());
    let message = error_message(&post(&p, "VolumeDriver.Create", create_body(65)).await, 413);
    assert!(message.contains("limit of 64 bytes"), "{message}");
    let reply = post(&p, "VolumeDriver.Create", create_body(64)).await;
    assert_eq!(reply_json(&reply, 200), json!({}));
    assert_eq!(fake.methods(), ["VolumeDriver.Create"]);
}

#[tokio::test]
async fn unknown_method_is_404_listing_what_is_implemented() {
    let fake = Fake::default();
    let p = TestPlugin::start(Plugin::new().volume(fake.clone()).router());
    let message = error_message(&post(&p, "VolumeDriver.Frobnicate", "{}").await, 404);
    assert_eq!(
        message,
        "unknown plugin method \"/VolumeDriver.Frobnicate\": this plugin implements VolumeDriver"
    );

    let p = TestPlugin::start(Plugin::new().network(fake.clone()).ipam(fake).router());
    let message = error_message(&post(&p, "authz.AuthZReq", "{}").await, 404);
    assert!(message.contains("\"/authz.AuthZReq\""), "{message}");
    assert!(
        message.ends_with("this plugin implements NetworkDriver, IpamDriver"),
        "{message}"
    );

    let p = TestPlugin::start(Plugin::new().router());
    let message = error_message(&post(&p, "VolumeDriver.List", "").await, 404);
    assert!(message.ends_with("implements nothing"), "{message}");
}

#[tokio::test]
async fn calls_to_interfaces_not_implemented_are_404() {
    let fake = Fake::default();
    let p = TestPlugin::start(Plugin::new().volume(fake.clone()).router());
    for method in [
        "NetworkDriver.CreateNetwork",
        "NetworkDriver.GetCapabilities",
        "IpamDriver.RequestPool",
    ] {
        let reply = post(&p, method, engine_body(&format!("{method}.request"))).await;
        let message = error_message(&reply, 404);
        assert!(message.contains(method), "{message}");
        assert!(message.ends_with("implements VolumeDriver"), "{message}");
    }
    assert_eq!(fake.methods(), Vec::<String>::new());
}

/// Send a bodiless request with any HTTP method and return status, Content-Type and body.
async fn raw_request(socket: &Path, method: &str, path: &str) -> (u16, String, Value) {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: plugin.moby.localhost\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (status, content_type, serde_json::from_str(body).unwrap())
}

#[tokio::test]
async fn only_post_is_allowed() {
    let fake = Fake::default();
    let p = TestPlugin::start(all_three(&fake).router());
    for (method, path) in [
        ("GET", "/VolumeDriver.List"),
        ("PUT", "/VolumeDriver.Create"),
        ("GET", "/Plugin.Activate"),
        ("DELETE", "/NetworkDriver.DeleteNetwork"),
    ] {
        let (status, content_type, body) = raw_request(p.served.socket(), method, path).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(content_type, PLUGIN_CONTENT_TYPE);
        let call = path.trim_start_matches('/');
        assert_eq!(
            body,
            json!({ "Err": format!("{call} must be called with POST, not {method}") })
        );
    }
    assert_eq!(fake.methods(), Vec::<String>::new());
}

#[tokio::test]
async fn driver_errors_become_err_replies() {
    let p = TestPlugin::start(all_three(&Fake::failing("disk full")).router());
    for (method, body) in [
        ("VolumeDriver.Create", "VolumeDriver.Create.request"),
        ("NetworkDriver.Join", "NetworkDriver.Join.request"),
        // IPAM failures use `Err` too: on a non-200 the engine reads only `Err`.
        ("IpamDriver.RequestPool", "IpamDriver.RequestPool.request"),
    ] {
        let reply = post(&p, method, engine_body(body)).await;
        assert_eq!(
            reply_json(&reply, 500),
            json!({"Err": "disk full"}),
            "{method}"
        );
    }

    // A driver may choose the status.
    let fake = Fake::failing(PluginError::not_implemented("VolumeDriver.Create"));
    let p = TestPlugin::start(Plugin::new().volume(fake).router());
    let reply = post(
        &p,
        "VolumeDriver.Create",
        engine_body("VolumeDriver.Create.request"),
    )
    .await;
    assert_eq!(
        error_message(&reply, 501),
        "VolumeDriver.Create is not supported by this driver"
    );
}
