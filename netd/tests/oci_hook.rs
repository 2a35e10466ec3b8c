//! `netd oci-hook` with Debian's runc and no engine: a bundle whose
//! annotations name a netd network and a port gets them at create and gives
//! them back at delete (poststop); bad hook input is refused, leaving nothing.

mod common;

use common::runtimes::{bundle, runc, Container};
use common::{sandbox, Netd, Outside, HOST_ADDR};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn a_runc_container_gets_its_network_and_port_from_annotations() {
    let (netd, rt) = Netd::start_with_network("ocinet", "10.84.0.0/24");
    let outside = Outside::connect(&netd);
    let dir = netd.host.dir().join("web");
    let web = bundle(
        &netd,
        &dir,
        &["httpd", "-f", "-p", "80", "-h", "/etc"],
        json!({"org.netd.networks": "ocinet", "org.netd.ports": "18083:80", "org.netd.aliases": "www"}),
    );
    let _web = Container(&netd, "web");
    runc(
        &netd,
        &["run", "-d", "--bundle", web.to_str().unwrap(), "web"],
    )
    .unwrap();
    let sb = rt.block_on(netd.client.sandbox("oci-web")).unwrap();
    assert_eq!(sb.endpoints.len(), 1, "{sb:?}");
    let ep = rt.block_on(netd.client.endpoint(&sb.endpoints[0])).unwrap();
    let ip = ep.addresses[0].addr().to_string();
    // A netd sandbox on the same network fetches from it, and so does a host
    // outside through the published port.
    let peer = rt
        .block_on(netd.client.create_sandbox(&sandbox("peer")))
        .unwrap();
    rt.block_on(netd.client.attach(&peer.name, &common::attach("ocinet")))
        .unwrap();
    tests::wait_for(
        "the runc container answers",
        Duration::from_secs(10),
        || {
            Ok(netd
                .sandbox_fetches(&peer, &format!("http://{ip}/passwd"), "root:")
                .then_some(()))
        },
    )
    .unwrap();
    let url = format!("http://{HOST_ADDR}:18083/passwd");
    assert!(outside.fetches(&url, "root:"));
    // The network's DNS knows it by its id, its config's host name (runc
    // spec's "runc") and the annotation's alias.
    for name in ["web", "runc", "www"] {
        let out = netd.in_sandbox(&peer, &["busybox", "nslookup", name, "10.84.0.1"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("Address: {ip}")), "{name}: {out:?}");
    }
    // A poststop for a container of the same id in another bundle (another
    // runtime root) leaves this one's sandbox alone.
    let mut other = netd
        .host
        .command(tests::workspace_binary("netd").unwrap())
        .args([
            "--socket",
            netd.host.dir().join("netd.sock").to_str().unwrap(),
        ])
        .args(["oci-hook", "poststop"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        other
            .stdin
            .take()
            .unwrap()
            .write_all(
                br#"{"ociVersion":"1.0.2","id":"web","bundle":"/elsewhere","status":"stopped"}"#,
            )
            .unwrap();
    }
    assert!(other.wait().unwrap().success());
    assert!(rt.block_on(netd.client.sandbox("oci-web")).is_ok());
    // Deleted, the container leaves netd (poststop).
    runc(&netd, &["kill", "web", "KILL"]).unwrap();
    tests::wait_for("the container stops", Duration::from_secs(10), || {
        Ok(runc(&netd, &["delete", "web"]).is_ok().then_some(()))
    })
    .unwrap();
    let gone = rt.block_on(netd.client.sandbox("oci-web"));
    assert!(gone.is_err(), "{gone:?}");
    let inspect = rt.block_on(netd.client.network("ocinet")).unwrap();
    assert_eq!(
        inspect.endpoints.len(),
        1,
        "only the peer's: {:?}",
        inspect.endpoints
    );
    assert!(!outside.fetches(&url, "root:"));
}

#[test]
fn bad_hook_input_is_refused_and_leaves_nothing() {
    let (netd, rt) = Netd::start_with_network("ocibad", "10.85.0.0/24");
    // An unknown network: runc fails the start with netd's message, and netd
    // holds nothing for the container.
    let dir = netd.host.dir().join("bad");
    let b = bundle(
        &netd,
        &dir,
        &["sleep", "600"],
        json!({"org.netd.networks": "ocibad,nosuchnet"}),
    );
    let _bad = Container(&netd, "bad");
    let err = runc(
        &netd,
        &["run", "-d", "--bundle", b.to_str().unwrap(), "bad"],
    )
    .unwrap_err();
    assert!(err.contains("nosuchnet"), "{err}");
    assert!(rt.block_on(netd.client.sandboxes()).unwrap().is_empty());
    let inspect = rt.block_on(netd.client.network("ocibad")).unwrap();
    assert!(inspect.endpoints.is_empty(), "{:?}", inspect.endpoints);
    // The hook run by hand with bad state: each refused, saying why.
    let hook = |stage: &str, stdin: &str| -> String {
        let mut child = netd
            .host
            .command(tests::workspace_binary("netd").unwrap())
            .args([
                "--socket",
                netd.host.dir().join("netd.sock").to_str().unwrap(),
            ])
            .args(["oci-hook", stage])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{stage} {stdin}: succeeded");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let msg = hook(
        "create",
        r#"{"ociVersion":"1.0.2","id":"x","annotations":{"org.netd.networks":"ocibad"}}"#,
    );
    assert!(msg.contains("no pid"), "{msg}");
    let msg = hook("create", "{not json");
    assert!(msg.contains("OCI state"), "{msg}");
    let msg = hook("create", r#"{"ociVersion":"1.0.2","id":"../x","pid":1}"#);
    assert!(msg.contains("container name"), "{msg}");
    // A container in the host's own network namespace (netd's pid stands for
    // it): attaching would move interfaces into the host.
    let shared = format!(
        r#"{{"ociVersion":"1.0.2","id":"shared","pid":{},"annotations":{{"org.netd.networks":"ocibad"}}}}"#,
        netd.daemon.as_ref().unwrap().pid()
    );
    let msg = hook("create", &shared);
    assert!(
        msg.contains("shares this host's network namespace"),
        "{msg}"
    );
    let msg = hook(
        "create",
        r#"{"ociVersion":"1.0.2","id":"p","pid":1,"annotations":{"org.netd.networks":"ocibad","org.netd.ports":"notaport"}}"#,
    );
    assert!(msg.contains("org.netd.ports"), "{msg}");
    assert!(rt.block_on(netd.client.sandboxes()).unwrap().is_empty());
}
