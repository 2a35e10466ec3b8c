//! docs/netd-api.json, the native API's OpenAPI document: well formed, and true of
//! the real router. Every documented operation is called (answers must have a
//! documented status and match its schema's `required`, `type`, `enum` and listed
//! properties), and every undocumented path or method must be refused.

use drivers::netlink::Netlink;
use hyper::{Method, StatusCode};
use netd::client::Client;
use netd::controller::{Controller, Settings};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/netd-api.json");

/// The HTTP methods an OpenAPI path item can hold, lowercase.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    let text = std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("reading {DOC}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DOC} is not JSON: {e}"))
}

/// Every operation: path template, lowercase method, operation object.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.clone(), method.to_string(), op.clone()));
            }
        }
    }
    out
}

/// What a local `$ref` points at.
fn pointee<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// `value`, with `$ref`s followed.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => value = pointee(doc, r).unwrap_or_else(|| panic!("dangling $ref {r}")),
            None => return value,
        }
    }
    panic!("$ref loop at {value}")
}

/// Every `$ref` in `value`, with where it is.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push((at.to_string(), v.as_str().unwrap_or_default().to_string()));
                } else {
                    refs(v, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_self_contained() {
    let doc = doc();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    for field in ["title", "version", "description"] {
        assert!(doc["info"][field].is_string(), "info.{field} missing");
    }
    let info = doc["info"]["description"].as_str().unwrap();
    assert!(
        info.contains("/run/netd/netd.sock"),
        "info names the socket"
    );
    assert!(
        !doc["servers"].as_array().expect("servers").is_empty(),
        "a servers entry"
    );

    let ops = operations(&doc);
    assert!(!ops.is_empty(), "no operations");
    let mut ids = BTreeSet::new();
    for (path, method, op) in &ops {
        let here = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"].as_str();
        assert!(id.is_some_and(|i| !i.is_empty()), "{here}: no operationId");
        assert!(ids.insert(id.unwrap()), "{here}: operationId {id:?} twice");
        assert!(op["summary"].is_string(), "{here}: no summary");
        let responses = op["responses"].as_object();
        assert!(
            responses.is_some_and(|r| !r.is_empty()),
            "{here}: no responses"
        );
        let mut success = 0;
        for (code, response) in responses.unwrap() {
            let status: u16 = code
                .parse()
                .unwrap_or_else(|_| panic!("{here}: response {code:?} is not a status"));
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{here} {code}: no description"
            );
            if status < 400 {
                success += 1;
                assert!(response["content"].is_object(), "{here} {code}: no content");
            } else {
                // Every error answer is the one shared Error schema.
                let schema = &response["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{here} {code}: not the Error schema"
                );
            }
        }
        assert_eq!(success, 1, "{here}: one success answer");
        if let Some(body) = op.get("requestBody") {
            let body = resolve(&doc, body);
            assert!(
                body["content"]["application/json"]["schema"].is_object(),
                "{here}: request body without a JSON schema"
            );
        }
        // Path parameters are declared.
        let mut declared = BTreeSet::new();
        let item = &doc["paths"][path.as_str()];
        for list in [&item["parameters"], &op["parameters"]] {
            for p in list.as_array().into_iter().flatten() {
                let p = resolve(&doc, p);
                if p["in"] == "path" {
                    assert_eq!(p["required"], true, "{here}: path parameter not required");
                    declared.insert(p["name"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        let used: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        assert_eq!(used, declared, "{here}: path parameters");
    }

    let mut all = Vec::new();
    refs(&doc, "#", &mut all);
    assert!(!all.is_empty());
    for (at, reference) in all {
        assert!(
            reference.starts_with("#/"),
            "{at}: $ref {reference:?} leaves the document"
        );
        assert!(
            pointee(&doc, &reference).is_some(),
            "{at}: $ref {reference} resolves to nothing"
        );
    }
}

/// The parts of a schema this test checks, `$ref`s followed and `allOf` merged.
#[derive(Default)]
struct Shape {
    types: Vec<String>,
    any_of: Vec<Value>,
    required: Vec<String>,
    properties: Map<String, Value>,
    items: Option<Value>,
    enumerated: Option<Vec<Value>>,
    format: Option<String>,
}

fn shape(doc: &Value, schema: &Value) -> Shape {
    let schema = resolve(doc, schema);
    let mut s = Shape::default();
    match schema.get("type") {
        Some(Value::String(t)) => s.types.push(t.clone()),
        Some(Value::Array(ts)) => s
            .types
            .extend(ts.iter().filter_map(Value::as_str).map(str::to_string)),
        _ => {}
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            s.any_of.extend(alternatives.iter().cloned());
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        s.required.extend(
            required
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        s.properties.extend(props.clone());
    }
    s.items = schema.get("items").cloned();
    s.enumerated = schema.get("enum").and_then(Value::as_array).cloned();
    s.format = schema
        .get("format")
        .and_then(Value::as_str)
        .map(str::to_string);
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let p = shape(doc, part);
        if s.types.is_empty() {
            s.types = p.types;
        }
        s.any_of.extend(p.any_of);
        s.required.extend(p.required);
        s.properties.extend(p.properties);
        s.items = s.items.or(p.items);
        s.enumerated = s.enumerated.or(p.enumerated);
        s.format = s.format.or(p.format);
    }
    s
}

fn has_type(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        other => panic!("unknown type {other:?} in the document"),
    }
}

fn format_ok(format: &str, text: &str) -> bool {
    match format {
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => text.parse::<std::net::Ipv6Addr>().is_ok(),
        "date-time" => {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok()
        }
        _ => true,
    }
}

/// Check `value` against `schema`: types, enums, a few formats, required and
/// listed properties, array items and `anyOf`, all the way down.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let s = shape(doc, schema);
    if !s.types.is_empty() && !s.types.iter().any(|t| has_type(t, value)) {
        errors.push(format!("{at}: {value} is not {}", s.types.join(" or ")));
        return;
    }
    if let Some(values) = &s.enumerated {
        if !values.contains(value) {
            errors.push(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    if let (Some(format), Some(text)) = (&s.format, value.as_str()) {
        if !format_ok(format, text) {
            errors.push(format!("{at}: {text:?} is not a {format}"));
        }
    }
    if !s.any_of.is_empty() {
        let tries: Vec<Vec<String>> = s
            .any_of
            .iter()
            .map(|alternative| {
                let mut e = Vec::new();
                check(doc, alternative, value, at, &mut e);
                e
            })
            .collect();
        if tries.iter().all(|e| !e.is_empty()) {
            errors.push(format!("{at}: matches no alternative: {tries:?}"));
        }
    }
    if let Some(object) = value.as_object() {
        for name in &s.required {
            if !object.contains_key(name) {
                errors.push(format!("{at}: required property {name:?} is missing"));
            }
        }
        if !s.properties.is_empty() {
            for (name, v) in object {
                match s.properties.get(name) {
                    Some(p) => check(doc, p, v, &format!("{at}.{name}"), errors),
                    None => errors.push(format!("{at}: property {name:?} is not documented")),
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (&s.items, value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

/// A request body.
enum Body {
    None,
    /// A valid request: it must match the documented request schema too.
    Json(Value),
    /// Sent as is, not checked.
    Raw(Vec<u8>),
}

/// Calls the server and holds every answer to the document.
struct Api {
    doc: Value,
    client: Client,
    called: BTreeSet<(String, String)>,
}

impl Api {
    fn operation(&self, method: &Method, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in the document");
        op
    }

    fn schema_errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        check(&self.doc, schema, value, "$", &mut errors);
        errors
    }

    /// Send a request for operation `method template` to `path`; the answer must be
    /// documented for it and match the documented schema.
    async fn send(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        body: Body,
    ) -> (StatusCode, Value) {
        let op = self.operation(&method, template).clone();
        let here = format!("{method} {path}");
        let bytes = match body {
            Body::None => None,
            Body::Raw(b) => Some(b),
            Body::Json(v) => {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                let schema = resolve(&self.doc, schema);
                assert!(schema.is_object(), "{here}: no documented request body");
                let errors = self.schema_errors(schema, &v);
                assert!(
                    errors.is_empty(),
                    "{here}: the test's body {v} is not what the document asks for: {errors:#?}"
                );
                Some(serde_json::to_vec(&v).unwrap())
            }
        };
        let (status, answer) = self
            .client
            .raw(method.clone(), path, bytes)
            .await
            .unwrap_or_else(|e| panic!("{here}: {e}"));
        let text = String::from_utf8_lossy(&answer).into_owned();
        let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        let Some(response) = op["responses"].get(status.as_str()) else {
            panic!("{here} answered {status}, documented are {documented:?}: {text}")
        };
        let content = resolve(&self.doc, response)["content"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let value = if let Some(media) = content.get("application/json") {
            let value: Value = serde_json::from_slice(&answer)
                .unwrap_or_else(|e| panic!("{here} ({status}): not JSON ({e}): {text}"));
            let errors = self.schema_errors(&media["schema"], &value);
            assert!(
                errors.is_empty(),
                "{here} ({status}) does not match the document: {errors:#?}\n{value:#}"
            );
            value
        } else {
            assert!(
                content.keys().any(|k| k.starts_with("text/plain")),
                "{here}: answer of unknown type"
            );
            Value::String(text)
        };
        self.called
            .insert((template.to_string(), method.as_str().to_lowercase()));
        (status, value)
    }

    /// [`Api::send`], expecting `want`.
    async fn expect(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        body: Body,
        want: StatusCode,
    ) -> Value {
        let (status, value) = self.send(method.clone(), template, path, body).await;
        assert_eq!(status, want, "{method} {path}: {value}");
        value
    }

    /// An undocumented request: refused with `want` and an Error body.
    async fn refused(&self, method: Method, path: &str, want: StatusCode) {
        let (status, answer) = self
            .client
            .raw(method.clone(), path, None)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status, want, "{method} {path} (not documented): {text}");
        let value: Value = serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        let errors = self.schema_errors(&json!({"$ref": "#/components/schemas/Error"}), &value);
        assert!(errors.is_empty(), "{method} {path}: {errors:?}");
    }
}

/// Unmounts namespace files the controller pinned under `dir` if the test stops
/// half-way, so the temporary directory can go.
struct Unpin(PathBuf);

impl Drop for Unpin {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn at(template: &str, key: &str) -> String {
    template.replace("{key}", key)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_answers_as_documented() {
    const NETWORKS: &str = "/v1/networks";
    const NETWORK: &str = "/v1/networks/{key}";
    const ENDPOINTS: &str = "/v1/endpoints";
    const ENDPOINT: &str = "/v1/endpoints/{key}";
    const SANDBOXES: &str = "/v1/sandboxes";
    const SANDBOX: &str = "/v1/sandboxes/{key}";
    const JOIN: &str = "/v1/sandboxes/{key}/join";
    const LEAVE: &str = "/v1/sandboxes/{key}/leave";
    const ATTACH: &str = "/v1/sandboxes/{key}/attach";
    const DETACH: &str = "/v1/sandboxes/{key}/detach";
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    let (ok, created) = (StatusCode::OK, StatusCode::CREATED);

    // The controller works in a test namespace, never in the machine's own.
    let host = tests::TestHost::new().expect("a test host (needs root)");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let run_dir = dir.path().join("run");
    let _unpin = Unpin(run_dir.join("netns"));
    let nl = Netlink::in_netns(&host.netns_path())
        .await
        .expect("netlink in the test namespace");
    let ctl = Controller::open(
        Settings {
            state_dir: dir.path().join("state"),
            run_dir: run_dir.clone(),
            ipam: ipam::Config::defaults("openapi-test"),
            fallback_dns: netd::files::FALLBACK_DNS.to_vec(),
            host_resolv_conf: "/etc/resolv.conf".into(),
            plugin_dir: dir.path().join("plugins"),
        },
        nl.clone(),
    )
    .expect("the controller opens");
    let socket = dir.path().join("netd.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("binding the socket");
    let server =
        tokio::spawn(async move { axum::serve(listener, netd::api::router(Arc::new(ctl))).await });
    let mut api = Api {
        doc: doc(),
        client: Client::new(&socket),
        called: BTreeSet::new(),
    };

    let info = api
        .expect(get.clone(), "/v1/info", "/v1/info", Body::None, ok)
        .await;
    assert_eq!(info["networks"], 0);
    let metrics = api
        .expect(get.clone(), "/metrics", "/metrics", Body::None, ok)
        .await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("# TYPE netd_networks gauge"),
        "{metrics}"
    );

    // A network, by name, id and id prefix.
    let pools = api
        .expect(get.clone(), "/v1/pools", "/v1/pools", Body::None, ok)
        .await;
    assert_eq!(pools, json!([]));
    let net = api
        .expect(
            post.clone(),
            NETWORKS,
            NETWORKS,
            Body::Json(json!({"name": "oa-net", "subnets": [{"subnet": "10.231.0.0/24"}]})),
            created,
        )
        .await;
    let net_id = net["id"].as_str().unwrap().to_string();
    assert_eq!(net["subnets"][0]["gateway"], "10.231.0.1");
    let pools = api
        .expect(get.clone(), "/v1/pools", "/v1/pools", Body::None, ok)
        .await;
    assert_eq!(pools[0]["id"], "local/10.231.0.0/24");
    assert_eq!(pools[0]["owner"], "oa-net");
    assert_eq!(pools[0]["allocated"], json!([{"first": "10.231.0.1"}]));
    api.expect(
        post.clone(),
        NETWORKS,
        NETWORKS,
        Body::Json(json!({"name": "oa-net"})),
        StatusCode::CONFLICT,
    )
    .await;
    let listed = api
        .expect(get.clone(), NETWORKS, NETWORKS, Body::None, ok)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    for key in ["oa-net", net_id.as_str(), &net_id[..4]] {
        let inspected = api
            .expect(get.clone(), NETWORK, &at(NETWORK, key), Body::None, ok)
            .await;
        assert_eq!(inspected["id"], net_id.as_str());
        assert_eq!(inspected["endpoints"], json!([]));
    }
    api.expect(
        get.clone(),
        NETWORK,
        &at(NETWORK, "nope"),
        Body::None,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The bridge is in the test namespace, not the machine's.
    let bridge = format!("br-{}", &net_id[..12]);
    assert!(nl.link(&bridge).await.unwrap().is_some(), "no {bridge}");
    assert!(
        Netlink::current()
            .unwrap()
            .link(&bridge)
            .await
            .unwrap()
            .is_none(),
        "{bridge} in the machine's namespace"
    );

    // An endpoint, and a sandbox it joins as eth0.
    let ep = api
        .expect(
            post.clone(),
            ENDPOINTS,
            ENDPOINTS,
            Body::Json(json!({"network": "oa-net", "name": "oa-ep"})),
            created,
        )
        .await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    assert_eq!(ep["addresses"], json!(["10.231.0.2/24"]));
    assert_eq!(ep["attached"], false);
    assert!(ep.get("join").is_none(), "{ep}");
    api.expect(
        post.clone(),
        ENDPOINTS,
        ENDPOINTS,
        Body::Json(json!({"network": "nope"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    api.expect(get.clone(), ENDPOINTS, ENDPOINTS, Body::None, ok)
        .await;
    api.expect(
        get.clone(),
        ENDPOINT,
        &at(ENDPOINT, &ep_id[..12]),
        Body::None,
        ok,
    )
    .await;
    let sb = api
        .expect(
            post.clone(),
            SANDBOXES,
            SANDBOXES,
            Body::Json(json!({"name": "oa-sb"})),
            created,
        )
        .await;
    let sb_id = sb["id"].as_str().unwrap().to_string();
    assert_eq!(sb["owned"], true);
    // Every field is optional: an empty body makes a sandbox too.
    let other = api
        .expect(post.clone(), SANDBOXES, SANDBOXES, Body::None, created)
        .await;
    api.expect(
        post.clone(),
        SANDBOXES,
        SANDBOXES,
        Body::Json(json!({"name": "oa-sb"})),
        StatusCode::CONFLICT,
    )
    .await;
    api.expect(get.clone(), SANDBOXES, SANDBOXES, Body::None, ok)
        .await;
    api.expect(get.clone(), SANDBOX, &at(SANDBOX, "oa-sb"), Body::None, ok)
        .await;
    let other_id = other["id"].as_str().unwrap();
    api.expect(
        delete.clone(),
        SANDBOX,
        &at(SANDBOX, other_id),
        Body::None,
        ok,
    )
    .await;
    api.expect(
        get.clone(),
        SANDBOX,
        &at(SANDBOX, other_id),
        Body::None,
        StatusCode::NOT_FOUND,
    )
    .await;

    let joined = api
        .expect(
            post.clone(),
            JOIN,
            &at(JOIN, "oa-sb"),
            Body::Json(json!({"endpoint": "oa-ep"})),
            ok,
        )
        .await;
    assert_eq!(joined["join"]["interface"], "eth0");
    assert_eq!(joined["join"]["sandbox"], sb_id.as_str());
    assert_eq!(
        joined["join"]["host_link"],
        format!("vn{}", &ep_id[..12]).as_str()
    );
    api.expect(
        post.clone(),
        JOIN,
        &at(JOIN, "oa-sb"),
        Body::Json(json!({"endpoint": "oa-ep"})),
        StatusCode::CONFLICT,
    )
    .await;
    api.expect(
        post.clone(),
        JOIN,
        &at(JOIN, "nope"),
        Body::Json(json!({"endpoint": "oa-ep"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    api.expect(
        delete.clone(),
        ENDPOINT,
        &at(ENDPOINT, "oa-ep"),
        Body::None,
        StatusCode::CONFLICT,
    )
    .await;

    // Attach: a new endpoint, joined as the next interface.
    let attached = api
        .expect(
            post.clone(),
            ATTACH,
            &at(ATTACH, &sb_id),
            Body::Json(json!({"network": "oa-net", "name": "oa-att", "ip": "10.231.0.9"})),
            created,
        )
        .await;
    assert_eq!(attached["join"]["interface"], "eth1");
    assert_eq!(attached["attached"], true);
    assert_eq!(attached["addresses"], json!(["10.231.0.9/24"]));
    api.expect(
        post.clone(),
        ATTACH,
        &at(ATTACH, "oa-sb"),
        Body::Json(json!({"network": "oa-net", "ip": "10.231.0.9"})),
        StatusCode::CONFLICT,
    )
    .await;
    api.expect(
        post.clone(),
        ATTACH,
        &at(ATTACH, "oa-sb"),
        Body::Json(json!({"network": "nope"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    // Ports: this controller runs without a firewall (it would act in the test's
    // own namespace), so a publish is refused as with `--firewall off`.
    const PORTS: &str = "/v1/endpoints/{key}/ports";
    let refused = api
        .expect(
            Method::PUT,
            PORTS,
            &at(PORTS, "oa-att"),
            Body::Json(json!({"ports": [{"host_port": 18080, "container_port": 80}]})),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--firewall off"),
        "{refused}"
    );
    api.expect(
        Method::PUT,
        PORTS,
        &at(PORTS, "nope"),
        Body::Json(json!({"ports": []})),
        StatusCode::NOT_FOUND,
    )
    .await;
    let shown = api
        .expect(get.clone(), "/v1/firewall", "/v1/firewall", Body::None, ok)
        .await;
    assert_eq!(shown["enabled"], false);
    // Not in a cluster: refused, saying how to join one.
    let refused = api
        .expect(
            get.clone(),
            "/v1/cluster",
            "/v1/cluster",
            Body::None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("--cluster-store")),
        "{refused}"
    );
    let sb = api
        .expect(
            get.clone(),
            SANDBOX,
            &at(SANDBOX, &sb_id[..8]),
            Body::None,
            ok,
        )
        .await;
    assert_eq!(sb["endpoints"], json!([ep_id, attached["id"]]));
    let inspected = api
        .expect(get.clone(), NETWORK, &at(NETWORK, "oa-net"), Body::None, ok)
        .await;
    assert_eq!(inspected["endpoints"].as_array().unwrap().len(), 2);

    // A network with endpoints is not deleted; the answer names them.
    let (_, refusal) = api
        .send(delete.clone(), NETWORK, &at(NETWORK, "oa-net"), Body::None)
        .await;
    let message = refusal["message"].as_str().unwrap_or_default();
    assert_eq!(refusal["kind"], "conflict", "{refusal}");
    for name in ["oa-ep (", "oa-att ("] {
        assert!(message.contains(name), "{message:?} does not name {name}");
    }

    // Leave keeps the endpoint; detach deletes it.
    let left = api
        .expect(
            post.clone(),
            LEAVE,
            &at(LEAVE, "oa-sb"),
            Body::Json(json!({"endpoint": "oa-ep"})),
            ok,
        )
        .await;
    assert!(left.get("join").is_none(), "{left}");
    api.expect(
        post.clone(),
        LEAVE,
        &at(LEAVE, "oa-sb"),
        Body::Json(json!({"endpoint": "oa-ep"})),
        StatusCode::CONFLICT,
    )
    .await;
    api.expect(
        post.clone(),
        LEAVE,
        &at(LEAVE, "oa-sb"),
        Body::Json(json!({"endpoint": "nope"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    let detached = api
        .expect(
            post.clone(),
            DETACH,
            &at(DETACH, "oa-sb"),
            Body::Json(json!({"endpoint": "oa-att"})),
            ok,
        )
        .await;
    assert!(detached.get("join").is_none(), "{detached}");
    api.expect(
        get.clone(),
        ENDPOINT,
        &at(ENDPOINT, "oa-att"),
        Body::None,
        StatusCode::NOT_FOUND,
    )
    .await;
    api.expect(
        post.clone(),
        DETACH,
        &at(DETACH, "oa-sb"),
        Body::Json(json!({"endpoint": "oa-ep"})),
        StatusCode::CONFLICT,
    )
    .await;
    api.expect(
        post.clone(),
        DETACH,
        &at(DETACH, "nope"),
        Body::Json(json!({"endpoint": "oa-ep"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    // eth0 and eth1 are free again: the next join takes eth0.
    let again = api
        .expect(
            post.clone(),
            ATTACH,
            &at(ATTACH, "oa-sb"),
            Body::Json(json!({"network": net_id})),
            created,
        )
        .await;
    assert_eq!(again["join"]["interface"], "eth0");
    // oa-ep joins again, as eth1, to stay behind when the sandbox goes.
    let rejoined = api
        .expect(
            post.clone(),
            JOIN,
            &at(JOIN, "oa-sb"),
            Body::Json(json!({"endpoint": ep_id})),
            ok,
        )
        .await;
    assert_eq!(rejoined["join"]["interface"], "eth1");

    // Every request body: malformed, with an unknown field, and too large.
    for (template, method, op) in operations(&api.doc) {
        if op.get("requestBody").is_none() {
            continue;
        }
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let path = at(&template, "oa-sb");
        for bad in [&b"{"[..], &b"{\"no_such_field\": 1}"[..], &b"7"[..]] {
            api.expect(
                method.clone(),
                &template,
                &path,
                Body::Raw(bad.to_vec()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(64 * 1024));
        api.expect(
            method.clone(),
            &template,
            &path,
            Body::Raw(big.into_bytes()),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
    }

    // What is not documented is refused: methods with 405, paths with 404.
    let others = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ];
    let paths: Vec<String> = api.doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for template in &paths {
        let item = &api.doc["paths"][template.as_str()];
        for method in &others {
            if item.get(method.as_str().to_lowercase()).is_none() {
                api.refused(
                    method.clone(),
                    &at(template, "oa-sb"),
                    StatusCode::METHOD_NOT_ALLOWED,
                )
                .await;
            }
        }
    }
    for path in [
        "/",
        "/v1",
        "/v1/nothing",
        "/v2/info",
        "/v1/info/",
        "/v1/networks/",
        "/v1/networks/oa-net/endpoints",
        "/v1/sandboxes/oa-sb/unknown",
        "/metrics/x",
    ] {
        for method in [Method::GET, Method::POST] {
            api.refused(method, path, StatusCode::NOT_FOUND).await;
        }
    }

    // An adopted namespace is left to its owner when its sandbox goes.
    let adopted = api
        .expect(
            post.clone(),
            SANDBOXES,
            SANDBOXES,
            Body::Json(json!({"name": "oa-adopted", "netns": host.netns_path()})),
            created,
        )
        .await;
    assert_eq!(adopted["owned"], false);
    api.expect(
        delete.clone(),
        SANDBOX,
        &at(SANDBOX, "oa-adopted"),
        Body::None,
        ok,
    )
    .await;
    assert!(
        host.netns_path().exists(),
        "an adopted namespace was removed"
    );

    // Deleting the sandbox deletes the attached endpoint and keeps the other, unjoined.
    let deleted = api
        .expect(
            delete.clone(),
            SANDBOX,
            &at(SANDBOX, "oa-sb"),
            Body::None,
            ok,
        )
        .await;
    assert_eq!(deleted["endpoints"], json!([]));
    let again_id = again["id"].as_str().unwrap();
    api.expect(
        get.clone(),
        ENDPOINT,
        &at(ENDPOINT, again_id),
        Body::None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let kept = api
        .expect(get.clone(), ENDPOINT, &at(ENDPOINT, &ep_id), Body::None, ok)
        .await;
    assert!(kept.get("join").is_none(), "{kept}");
    api.expect(
        delete.clone(),
        ENDPOINT,
        &at(ENDPOINT, &ep_id),
        Body::None,
        ok,
    )
    .await;
    api.expect(
        delete.clone(),
        ENDPOINT,
        &at(ENDPOINT, &ep_id),
        Body::None,
        StatusCode::NOT_FOUND,
    )
    .await;
    api.expect(
        delete.clone(),
        SANDBOX,
        &at(SANDBOX, "oa-sb"),
        Body::None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let endpoints = api
        .expect(get.clone(), ENDPOINTS, ENDPOINTS, Body::None, ok)
        .await;
    assert_eq!(endpoints, json!([]));
    api.expect(
        delete.clone(),
        NETWORK,
        &at(NETWORK, "oa-net"),
        Body::None,
        ok,
    )
    .await;
    api.expect(
        delete.clone(),
        NETWORK,
        &at(NETWORK, "oa-net"),
        Body::None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let info = api
        .expect(get.clone(), "/v1/info", "/v1/info", Body::None, ok)
        .await;
    assert_eq!(
        (&info["networks"], &info["endpoints"], &info["sandboxes"]),
        (&json!(0), &json!(0), &json!(0))
    );
    let metrics = api
        .expect(get.clone(), "/metrics", "/metrics", Body::None, ok)
        .await;
    assert!(
        metrics.as_str().unwrap().contains(
            "netd_api_requests_total{method=\"GET\",route=\"/v1/networks/{key}\",code=\"200\"}"
        ),
        "{metrics}"
    );

    // A sync against a dockerd view: nothing of dockerd's is here, so nothing goes.
    let synced = api
        .expect(
            post.clone(),
            "/v1/engine/sync",
            "/v1/engine/sync",
            Body::Json(json!({"networks": {}, "ipam": {}, "grace_seconds": 0, "dry_run": true})),
            ok,
        )
        .await;
    assert_eq!(synced["networks"], json!([]));
    api.expect(
        post.clone(),
        "/v1/engine/sync",
        "/v1/engine/sync",
        Body::Raw(br#"{"networkz": {}}"#.to_vec()),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Every documented operation was called.
    let documented: BTreeSet<(String, String)> = operations(&api.doc)
        .into_iter()
        .map(|(path, method, _)| (path, method))
        .collect();
    let missed: Vec<_> = documented.difference(&api.called).collect();
    assert!(missed.is_empty(), "not exercised: {missed:?}");

    // Nothing is left: only lo in the test namespace, no namespace or sandbox files.
    let links: Vec<String> = nl
        .links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(links, ["lo"], "links left in the test namespace");
    assert_eq!(files_in(&run_dir.join("netns")), Vec::<PathBuf>::new());
    assert_eq!(files_in(&run_dir.join("sandboxes")), Vec::<PathBuf>::new());

    server.abort();
    let _ = server.await;
}
