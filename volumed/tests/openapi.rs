//! docs/volumed-api.json is true of the real daemon: every documented operation
//! is called and answers a documented status, the schemas' required fields are
//! present in the answers, and methods the document does not list are refused.

mod common;

use common::Volumed;
use serde_json::{json, Value};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/volumed-api.json");

fn doc() -> Value {
    serde_json::from_str(&std::fs::read_to_string(DOC).unwrap()).unwrap()
}

/// One raw call: the status and the body as JSON (or as a string).
fn call(v: &Volumed, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut args = vec![
        "-s".to_string(),
        "-o".into(),
        "/dev/stdout".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "-X".into(),
        method.into(),
        "--unix-socket".into(),
        v.host.dir().join("volumed.sock").display().to_string(),
    ];
    if let Some(b) = body {
        args.extend([
            "-H".into(),
            "Content-Type: application/json".into(),
            "-d".into(),
            b.to_string(),
        ]);
    }
    args.push(format!("http://volumed{path}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = v.host.run("curl", &args).unwrap();
    let (text, code) = out.rsplit_once('\n').unwrap();
    let value = serde_json::from_str(text).unwrap_or(Value::String(text.to_string()));
    (code.parse().unwrap(), value)
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
        None => v,
    }
}

/// The answer is documented for the operation, and an object answer has the
/// documented schema's required fields.
fn check(doc: &Value, template: &str, method: &str, status: u16, body: &Value) {
    let op = &doc["paths"][template][method];
    let response = op["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{method} {template} answered {status}, not documented: {body}"));
    let schema = &response["content"]["application/json"]["schema"];
    if schema.is_null() {
        return;
    }
    let schema = resolve(doc, schema);
    for field in schema["required"].as_array().into_iter().flatten() {
        let field = field.as_str().unwrap();
        assert!(
            body.get(field).is_some(),
            "{method} {template} {status}: no {field} in {body}"
        );
    }
}

#[test]
fn the_daemon_answers_as_documented() {
    let v = Volumed::start();
    let doc = doc();
    let mut called = std::collections::BTreeSet::new();
    let mut go = |template: &str, path: &str, method: &str, body: Option<Value>, expect: u16| {
        let (status, answer) = call(&v, method, path, body);
        assert_eq!(status, expect, "{method} {path}: {answer}");
        check(&doc, template, &method.to_lowercase(), status, &answer);
        called.insert((template.to_string(), method.to_lowercase()));
        answer
    };
    go(
        "/v1/volumes",
        "/v1/volumes",
        "POST",
        Some(json!({"name": "oa1", "labels": {"a": "b"}})),
        201,
    );
    go(
        "/v1/volumes",
        "/v1/volumes",
        "POST",
        Some(json!({"name": "x"})),
        400,
    );
    go(
        "/v1/volumes",
        "/v1/volumes",
        "POST",
        Some(json!({"name": "oa1", "options": {"type": "tmpfs", "device": "tmpfs"}})),
        409,
    );
    go("/v1/volumes", "/v1/volumes", "GET", None, 200);
    go("/v1/volumes/{name}", "/v1/volumes/oa1", "GET", None, 200);
    go("/v1/volumes/{name}", "/v1/volumes/nope", "GET", None, 404);
    go(
        "/v1/volumes/{name}/mount",
        "/v1/volumes/oa1/mount",
        "POST",
        Some(json!({"id": "c"})),
        200,
    );
    go(
        "/v1/volumes/{name}/mount",
        "/v1/volumes/nope/mount",
        "POST",
        Some(json!({"id": "c"})),
        404,
    );
    go("/v1/volumes/{name}", "/v1/volumes/oa1", "DELETE", None, 409);
    go(
        "/v1/volumes/{name}/unmount",
        "/v1/volumes/oa1/unmount",
        "POST",
        Some(json!({"id": "c"})),
        200,
    );
    go(
        "/v1/volumes/{name}/unmount",
        "/v1/volumes/nope/unmount",
        "POST",
        Some(json!({"id": "c"})),
        404,
    );
    go(
        "/v1/mounts/resolve",
        "/v1/mounts/resolve",
        "POST",
        Some(json!({"id": "c", "mounts": [{"Type": "volume", "Source": "oa2", "Target": "/x"}]})),
        200,
    );
    go(
        "/v1/mounts/resolve",
        "/v1/mounts/resolve",
        "POST",
        Some(json!({"id": "c", "mounts": [{"Type": "bind", "Source": "/", "Target": "/x"}]})),
        400,
    );
    go(
        "/v1/mounts/release",
        "/v1/mounts/release",
        "POST",
        Some(json!({"id": "c"})),
        200,
    );
    go(
        "/v1/volumes/prune",
        "/v1/volumes/prune",
        "POST",
        Some(json!({"all": true})),
        200,
    );
    go(
        "/v1/volumes/{name}",
        "/v1/volumes/nope",
        "DELETE",
        None,
        404,
    );
    go("/metrics", "/metrics", "GET", None, 200);
    // A body too large, and one with an unknown field.
    let big = json!({"name": "y".repeat(70 * 1024)});
    go("/v1/volumes", "/v1/volumes", "POST", Some(big), 413);
    go(
        "/v1/volumes",
        "/v1/volumes",
        "POST",
        Some(json!({"nope": 1})),
        400,
    );

    // Every documented operation was called; undocumented methods are refused.
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            let path = template.replace("{name}", "oa1");
            if item.get(method).is_some() {
                assert!(
                    called.contains(&(template.clone(), method.to_string())),
                    "{method} {template} not called"
                );
            } else {
                let (status, _) = call(&v, &method.to_uppercase(), &path, None);
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented, yet answered {status}"
                );
            }
        }
    }
}
