//! `netd-cni`, the CNI plugin, run as a runtime runs it (CNI_* variables, the
//! configuration on stdin) against a real netd, on namespaces made the way a
//! runtime makes them: the specification's ADD, CHECK, DEL, DEL again, ADD
//! after a netd restart, and bad input of every kind.

mod common;

use common::{Netd, Outside, HOST_ADDR};
use netd::controller::SandboxCreate;
use serde_json::{json, Value};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// A plugin call's exit status and its stdout as JSON (`Null` if empty).
struct Call {
    ok: bool,
    out: Value,
    stderr: String,
}

impl Call {
    /// The error's code and message; panics on success.
    fn error(&self) -> (u64, String) {
        assert!(!self.ok, "the call succeeded: {}", self.out);
        if !self.stderr.is_empty() {
            eprintln!("netd-cni said on stderr: {}", self.stderr);
        }
        (
            self.out["code"].as_u64().unwrap_or(0),
            self.out["msg"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// Run `netd-cni` on `netd`'s host with `vars` and `stdin`.
fn cni(netd: &Netd, vars: &[(&str, &str)], stdin: &str) -> Call {
    let plugin = tests::workspace_binary("netd-cni").unwrap();
    let mut cmd = netd.host.command(plugin.to_str().unwrap());
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The plugin may refuse (a missing variable) before it reads stdin.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing the plugin's stdin: {e}"),
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    Call {
        ok: out.status.success(),
        out: json,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// The configuration of CNI network `name` for `netd`.
fn conf(netd: &Netd, name: &str, version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "type": "netd-cni",
        "socket": netd.host.dir().join("netd.sock"),
    })
}

/// `command` for container `id` in `netns` as `ifname`.
fn call(netd: &Netd, command: &str, id: &str, netns: &str, ifname: &str, conf: &Value) -> Call {
    let mut vars = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", "/opt/cni/bin"),
    ];
    if !netns.is_empty() {
        vars.push(("CNI_NETNS", netns));
    }
    cni(netd, &vars, &conf.to_string())
}

/// `args` run inside network namespace `netns` on `netd`'s host.
fn inside(netd: &Netd, netns: &str, args: &[&str]) -> std::process::Output {
    netd.host
        .command("nsenter")
        .arg(format!("--net={netns}"))
        .args(args)
        .output()
        .unwrap()
}

fn pings(netd: &Netd, netns: &str, ip: &str) -> bool {
    inside(netd, netns, &["busybox", "ping", "-c", "1", "-W", "2", ip])
        .status
        .success()
}

/// Whether CHECK with `conf` (holding the ADD's result) passes for c1/eth0.
fn check_ok(netd: &Netd, ns: &str, conf: &Value) -> bool {
    call(netd, "CHECK", "c1", ns, "eth0", conf).ok
}

/// The address part of a result's first IP.
fn first_ip(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn add_check_del_del_again_and_add_after_a_restart() {
    let (mut netd, rt) = Netd::start_with_network("cninet", "10.77.0.0/24");
    let conf = conf(&netd, "cninet", "1.0.0");
    let version = cni(
        &netd,
        &[("CNI_COMMAND", "VERSION")],
        r#"{"cniVersion":"1.0.0"}"#,
    );
    assert!(version.ok, "{}", version.out);
    assert!(
        version.out["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("1.0.0")),
        "{}",
        version.out
    );
    let status = cni(&netd, &[("CNI_COMMAND", "STATUS")], &conf.to_string());
    assert!(status.ok, "{}", status.out);

    let (_c1, ns1) = netd.foreign_netns("c1");
    let (_c2, ns2) = netd.foreign_netns("c2");
    let add1 = call(&netd, "ADD", "c1", &ns1, "eth0", &conf);
    assert!(add1.ok, "{}", add1.out);
    let r = &add1.out;
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(r["interfaces"][0]["sandbox"], ns1.as_str());
    assert!(
        r["ips"][0].get("version").is_none(),
        "1.0.0 has no version: {r}"
    );
    assert!(
        r["ips"][0]["address"].as_str().unwrap().ends_with("/24"),
        "{r}"
    );
    assert_eq!(r["ips"][0]["gateway"], "10.77.0.1");
    assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0");
    let ip1 = first_ip(r);
    // The namespace has it, as the result says, and reaches the gateway.
    let addr =
        String::from_utf8_lossy(&inside(&netd, &ns1, &["ip", "-o", "addr", "show", "eth0"]).stdout)
            .to_string();
    assert!(addr.contains(&format!("{ip1}/24")), "{addr}");
    assert!(pings(&netd, &ns1, "10.77.0.1"));

    // A second container (CNI 0.4.0, interface net1) reaches the first.
    let old = self::conf(&netd, "cninet", "0.4.0");
    let add2 = call(&netd, "ADD", "c2", &ns2, "net1", &old);
    assert!(add2.ok, "{}", add2.out);
    assert_eq!(add2.out["ips"][0]["version"], "4", "{}", add2.out);
    assert_eq!(add2.out["interfaces"][0]["name"], "net1");
    assert!(pings(&netd, &ns2, &ip1));
    assert_ne!(first_ip(&add2.out), ip1);

    // CHECK with the ADD's result; the same ADD again is an error (the
    // specification: the interface exists).
    let mut checked = conf.clone();
    checked["prevResult"] = add1.out.clone();
    let check = call(&netd, "CHECK", "c1", &ns1, "eth0", &checked);
    assert!(check.ok, "{}", check.out);
    let (code, msg) = call(&netd, "ADD", "c1", &ns1, "eth0", &conf).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("has an interface eth0"), "{msg}");
    assert!(
        check_ok(&netd, &ns1, &checked),
        "the refused ADD broke the attachment"
    );
    // CHECK sees an address taken away by hand.
    inside(
        &netd,
        &ns1,
        &["ip", "addr", "del", &format!("{ip1}/24"), "dev", "eth0"],
    );
    let (_, msg) = call(&netd, "CHECK", "c1", &ns1, "eth0", &checked).error();
    assert!(msg.contains("lacks its address"), "{msg}");
    inside(
        &netd,
        &ns1,
        &["ip", "addr", "add", &format!("{ip1}/24"), "dev", "eth0"],
    );

    // netd killed and started again: CHECK holds, traffic flows, DEL works.
    netd.kill_9();
    netd.launch();
    let check = call(&netd, "CHECK", "c1", &ns1, "eth0", &checked);
    assert!(check.ok, "{}", check.out);
    assert!(pings(&netd, &ns2, &ip1));
    // ADD after the restart: a third container.
    let (_c3, ns3) = netd.foreign_netns("c3");
    let add3 = call(&netd, "ADD", "c3", &ns3, "eth0", &conf);
    assert!(add3.ok, "{}", add3.out);
    assert!(pings(&netd, &ns3, &ip1));

    // A container whose namespace is gone (its process died) before its DEL:
    // DEL without CNI_NETNS takes it out of netd.
    let (c4, ns4) = netd.foreign_netns("c4");
    assert!(call(&netd, "ADD", "c4", &ns4, "eth0", &conf).ok);
    drop(c4);
    let del = call(&netd, "DEL", "c4", "", "eth0", &conf);
    assert!(del.ok, "{}", del.out);
    let gone = rt.block_on(netd.client.sandbox("cni-c4"));
    assert!(gone.is_err(), "{gone:?}");

    // DEL: the interface leaves the namespace, netd forgets the container.
    let del = call(&netd, "DEL", "c1", &ns1, "eth0", &conf);
    assert!(del.ok, "{}", del.out);
    let links =
        String::from_utf8_lossy(&inside(&netd, &ns1, &["ip", "-o", "link"]).stdout).to_string();
    assert!(!links.contains("eth0"), "{links}");
    let gone = rt.block_on(netd.client.sandbox("cni-c1"));
    assert!(gone.is_err(), "{gone:?}");
    // DEL again, DEL without a namespace, and DEL of a container never seen.
    for (id, ns) in [("c1", ns1.as_str()), ("c1", ""), ("never-seen", "")] {
        let del = call(&netd, "DEL", id, ns, "eth0", &conf);
        assert!(del.ok, "DEL {id}: {}", del.out);
    }
    // CHECK of what is gone: the container is unknown.
    let (code, _) = call(&netd, "CHECK", "c1", &ns1, "eth0", &checked).error();
    assert_eq!(code, 3);
    // The address went back: nothing is left held.
    for (id, ns, ifname) in [("c2", &ns2, "net1"), ("c3", &ns3, "eth0")] {
        assert!(call(&netd, "DEL", id, ns, ifname, &conf).ok);
    }
    let inspect = rt.block_on(netd.client.network("cninet")).unwrap();
    assert!(inspect.endpoints.is_empty(), "{:?}", inspect.endpoints);
    assert!(rt.block_on(netd.client.sandboxes()).unwrap().is_empty());
    // The plugin's lock files went with the containers (no file per container
    // ever run is left behind).
    assert_eq!(lock_files(&netd), Vec::<String>::new());
}

#[test]
fn port_mappings_mac_and_ips_from_the_runtime_are_honoured() {
    let (netd, rt) = Netd::start_with_network("cniports", "10.78.0.0/24");
    let outside = Outside::connect(&netd);
    let (_c, ns) = netd.foreign_netns("web");
    // docs/cni.md's example conflist, as a runtime hands its plugin over: the
    // list's version and name, the plugin's keys (this netd's socket).
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/cni/netd.conflist"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut conf = example["plugins"][0].clone();
    conf["cniVersion"] = example["cniVersion"].clone();
    conf["name"] = json!("cniports");
    conf["socket"] = json!(netd.host.dir().join("netd.sock"));
    assert_eq!(conf["capabilities"]["portMappings"], true);
    conf["runtimeConfig"] = json!({
        "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}],
        "mac": "02:42:0a:4e:00:99",
        "ips": ["10.78.0.99/24"],
    });
    let add = call(&netd, "ADD", "web", &ns, "eth0", &conf);
    assert!(add.ok, "{}", add.out);
    assert_eq!(first_ip(&add.out), "10.78.0.99");
    assert_eq!(add.out["interfaces"][0]["mac"], "02:42:0a:4e:00:99");
    let sb = rt.block_on(netd.client.sandbox("cni-web")).unwrap();
    let _web = netd.serve_http(&sb, "through-cni");
    let url = format!("http://{HOST_ADDR}:18080/");
    tests::wait_for("the published port", Duration::from_secs(10), || {
        Ok(outside.fetches(&url, "through-cni").then_some(()))
    })
    .unwrap();
    // Another container asking for the same address, or (with another
    // address) the same host port, is refused, and leaves nothing behind.
    let (_d, ns2) = netd.foreign_netns("web2");
    let (code, msg) = call(&netd, "ADD", "web2", &ns2, "eth0", &conf).error();
    assert_eq!(code, 100, "{msg}");
    let mut other = conf.clone();
    other["runtimeConfig"]["ips"] = json!(["10.78.0.98"]);
    other["runtimeConfig"]["mac"] = json!("02:42:0a:4e:00:98");
    let (code, msg) = call(&netd, "ADD", "web2", &ns2, "eth0", &other).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("18080"), "{msg}");
    let left = rt.block_on(netd.client.sandbox("cni-web2"));
    assert!(left.is_err(), "{left:?}");
    // A port a program on the host listens on is refused too (the runtime
    // holds its ports only after the ADD).
    let _listener = netd
        .host
        .spawn("listener", "busybox", &["nc", "-l", "-p", "18081"])
        .unwrap();
    tests::wait_for("the listener", Duration::from_secs(5), || {
        Ok(netd
            .host
            .run("ss", &["-ltn", "sport = :18081"])
            .unwrap_or_default()
            .contains("18081")
            .then_some(()))
    })
    .unwrap();
    other["runtimeConfig"]["portMappings"] = json!([{"hostPort": 18081, "containerPort": 80}]);
    let (code, msg) = call(&netd, "ADD", "web2", &ns2, "eth0", &other).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("listens"), "{msg}");
    assert!(call(&netd, "DEL", "web2", &ns2, "eth0", &conf).ok);
    assert!(call(&netd, "DEL", "web", &ns, "eth0", &conf).ok);
    // The port is no longer published (the firewall's own view).
    let ports = netd.cli(&["port"]).unwrap();
    assert!(!ports.contains("18080"), "{ports}");
}

#[test]
fn bad_input_gets_the_specifications_errors_and_leaves_nothing() {
    let (netd, rt) = Netd::start_with_network("cnibad", "10.79.0.0/24");
    let (_c, ns) = netd.foreign_netns("bad");
    let good = conf(&netd, "cnibad", "1.0.0");
    let env = |command: &'static str, ns: &str| -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", "bad".to_string()),
            ("CNI_NETNS", ns.to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
        ]
    };
    let run = |vars: Vec<(&'static str, String)>, stdin: &str| -> (u64, String) {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        cni(&netd, &vars, stdin).error()
    };
    // Malformed configuration, and one of the wrong shape.
    let (code, msg) = run(env("ADD", &ns), "{not json");
    assert_eq!(code, 6, "{msg}");
    let (code, msg) = run(env("ADD", &ns), r#"{"cniVersion": 1, "name": "cnibad"}"#);
    assert_eq!(code, 6, "{msg}");
    // A version it does not speak.
    let mut v = good.clone();
    v["cniVersion"] = json!("9.9.9");
    let (code, msg) = run(env("ADD", &ns), &v.to_string());
    assert_eq!(code, 1, "{msg}");
    // An ipam section (netd allocates).
    let mut v = good.clone();
    v["ipam"] = json!({"type": "host-local"});
    let (code, msg) = run(env("ADD", &ns), &v.to_string());
    assert_eq!(code, 2, "{msg}");
    // An unknown network, named in the message.
    let (code, msg) = run(
        env("ADD", &ns),
        &conf(&netd, "nosuchnet", "1.0.0").to_string(),
    );
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("nosuchnet"), "{msg}");
    // A name that is hex digits, the start of a network's id: the network's
    // name is not that, so there is no such network (the id works only given
    // as the "network" key).
    let id = rt
        .block_on(netd.client.network("cnibad"))
        .unwrap()
        .network
        .id;
    let (code, msg) = run(env("ADD", &ns), &conf(&netd, &id[..8], "1.0.0").to_string());
    assert_eq!(code, 7, "{msg}");
    let (code, _) = run(
        vec![("CNI_COMMAND", "STATUS".to_string())],
        &conf(&netd, &id[..8], "1.1.0").to_string(),
    );
    assert_eq!(code, 50);
    let mut by_id = conf(&netd, "anything", "1.0.0");
    by_id["network"] = json!(&id[..12]);
    let add = call(&netd, "ADD", "hexid", &ns, "eth0", &by_id);
    assert!(add.ok, "{}", add.out);
    assert!(first_ip(&add.out).starts_with("10.79.0."), "{}", add.out);
    assert!(call(&netd, "DEL", "hexid", &ns, "eth0", &by_id).ok);
    // A namespace path that is not a namespace, and one that does not exist.
    let file = netd.host.dir().join("not-a-netns");
    std::fs::write(&file, "x").unwrap();
    let (code, msg) = run(env("ADD", file.to_str().unwrap()), &good.to_string());
    assert!(code == 7 || code == 4, "{code} {msg}");
    assert!(msg.contains("not-a-netns"), "{msg}");
    let (code, msg) = run(env("ADD", "/nonexistent/netns"), &good.to_string());
    assert_eq!(code, 4, "{msg}");
    // Missing variables, each named.
    for missing in ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"] {
        let vars: Vec<_> = env("ADD", &ns)
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        let (code, msg) = run(vars, &good.to_string());
        assert_eq!(code, 4, "{missing}: {msg}");
        assert!(msg.contains(missing), "{missing}: {msg}");
    }
    // A bad runtimeConfig address, or prefix, and an unknown CNI_ARGS key.
    for ips in ["10.79.0.300", "10.79.0.20/zzz", "10.79.0.20/33"] {
        let mut v = good.clone();
        v["runtimeConfig"] = json!({ "ips": [ips] });
        let (code, msg) = run(env("ADD", &ns), &v.to_string());
        assert_eq!(code, 7, "{ips}: {msg}");
    }
    // An error found in the environment answers in the configuration's
    // version all the same.
    let old = conf(&netd, "cnibad", "0.3.1");
    let mut vars = env("ADD", &ns);
    vars[1].1 = "bad id".to_string();
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = cni(&netd, &pairs, &old.to_string());
    assert!(!refused.ok);
    assert_eq!(refused.out["cniVersion"], "0.3.1", "{}", refused.out);
    assert_eq!(refused.out["code"], 4, "{}", refused.out);
    let mut vars = env("ADD", &ns);
    vars.push(("CNI_ARGS", "K8S_POD_UID=x".to_string()));
    let (code, msg) = run(vars, &good.to_string());
    assert_eq!(code, 4, "{msg}");
    // netd not running: try again later.
    let mut away = good.clone();
    away["socket"] = json!("/nonexistent/netd.sock");
    let (code, msg) = run(env("ADD", &ns), &away.to_string());
    assert_eq!(code, 11, "{msg}");
    let (code, _) = run(
        vec![("CNI_COMMAND", "STATUS".to_string())],
        &away.to_string(),
    );
    assert_eq!(code, 50);
    // STATUS for a network netd does not have: ADD could not work.
    let (code, msg) = run(
        vec![("CNI_COMMAND", "STATUS".to_string())],
        &conf(&netd, "nosuchnet", "1.1.0").to_string(),
    );
    assert_eq!(code, 50, "{msg}");
    assert!(msg.contains("nosuchnet"), "{msg}");
    // An interface name the kernel would read as a pattern.
    let mut vars = env("ADD", &ns);
    vars[3].1 = "eth%d".to_string();
    let (code, msg) = run(vars, &good.to_string());
    assert_eq!(code, 4, "{msg}");
    // Nothing was made by any of them.
    assert!(rt.block_on(netd.client.sandboxes()).unwrap().is_empty());
    let inspect = rt.block_on(netd.client.network("cnibad")).unwrap();
    assert!(inspect.endpoints.is_empty());
    let links =
        String::from_utf8_lossy(&inside(&netd, &ns, &["ip", "-o", "link"]).stdout).to_string();
    assert!(!links.contains("eth0"), "{links}");
    // The runtime's DEL after its failed ADDs (which the specification asks
    // for) leaves no lock file behind either, even after calls that could not
    // reach netd to tell.
    let del = call(&netd, "DEL", "bad", &ns, "eth0", &good);
    assert!(del.ok, "{}", del.out);
    assert_eq!(lock_files(&netd), Vec::<String>::new());
}

/// The plugin's lock files in the test host's /run/netd-cni.
fn lock_files(netd: &Netd) -> Vec<String> {
    let out = netd
        .host
        .command("sh")
        .args(["-c", "ls /run/netd-cni 2>/dev/null || true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn sandboxes_are_the_containers_own_and_gc_takes_the_stale() {
    let (netd, rt) = Netd::start_with_network("cniown", "10.86.0.0/24");
    let conf = conf(&netd, "cniown", "1.1.0");
    // An operator's sandbox that happens to be named as container x's would
    // be: an ADD for x is refused, a DEL for x leaves it.
    rt.block_on(netd.client.create_sandbox(&common::sandbox("cni-x")))
        .unwrap();
    let (_x, nsx) = netd.foreign_netns("x");
    let (code, msg) = call(&netd, "ADD", "x", &nsx, "eth0", &conf).error();
    assert_eq!(code, 100, "{msg}");
    assert!(call(&netd, "DEL", "x", &nsx, "eth0", &conf).ok);
    assert!(rt.block_on(netd.client.sandbox("cni-x")).is_ok());
    // Two containers whose long ids share their first 65 characters are two.
    let stem = "a".repeat(65);
    let (id_a, id_b) = (format!("{stem}11111"), format!("{stem}22222"));
    let (_a, nsa) = netd.foreign_netns("a");
    let (_b, nsb) = netd.foreign_netns("b");
    let add_a = call(&netd, "ADD", &id_a, &nsa, "eth0", &conf);
    let add_b = call(&netd, "ADD", &id_b, &nsb, "eth0", &conf);
    assert!(add_a.ok && add_b.ok, "{} {}", add_a.out, add_b.out);
    assert!(pings(&netd, &nsa, &first_ip(&add_b.out)));
    // A container whose id is spelled as A's cut sandbox name is a third
    // container, not A (nor blocked by A).
    let a_name = rt
        .block_on(netd.client.sandboxes())
        .unwrap()
        .into_iter()
        .find(|s| s.labels.get("org.netd.cni.container") == Some(&id_a))
        .unwrap()
        .name;
    let id_c = a_name.strip_prefix("cni-").unwrap().to_string();
    let (_cc, nsc) = netd.foreign_netns("c");
    let add_c = call(&netd, "ADD", &id_c, &nsc, "eth0", &conf);
    assert!(add_c.ok, "{}", add_c.out);
    assert!(call(&netd, "DEL", &id_c, &nsc, "eth0", &conf).ok);
    assert!(
        pings(&netd, &nsa, &first_ip(&add_b.out)),
        "A lost its interface"
    );
    // Sandboxes someone labelled by hand with what no container id can be:
    // GC leaves them, and goes on.
    for (name, label) in [
        ("by-hand-1", "é".repeat(40)),
        ("by-hand-2", "a/b".to_string()),
    ] {
        let req = SandboxCreate {
            name: Some(name.into()),
            labels: [("org.netd.cni.container".to_string(), label)].into(),
            ..Default::default()
        };
        rt.block_on(netd.client.create_sandbox(&req)).unwrap();
    }
    // GC with only A valid takes B out, sandbox and all; A stays.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": id_a, "ifname": "eth0"}]);
    let done = cni(&netd, &[("CNI_COMMAND", "GC")], &gc.to_string());
    assert!(done.ok, "{}", done.out);
    let names: Vec<String> = rt
        .block_on(netd.client.sandboxes())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for kept in ["cni-x", "by-hand-1", "by-hand-2"] {
        assert!(names.contains(&kept.to_string()), "{names:?}");
    }
    assert!(pings(&netd, &nsa, "10.86.0.1"));
    assert!(!pings(&netd, &nsa, &first_ip(&add_b.out)));
    assert!(call(&netd, "DEL", &id_a, &nsa, "eth0", &conf).ok);
}

#[test]
fn a_later_plugin_in_a_chain_adds_to_the_earlier_result() {
    let (netd, rt) = Netd::start_with_network("cnichain", "10.76.0.0/24");
    let (_c, ns) = netd.foreign_netns("chain");
    let mut conf = conf(&netd, "cnichain", "1.0.0");
    // What an earlier plugin of the list answered, with fields netd-cni does
    // not model (an interface's mtu, dns search) and without the optional
    // ones (a tap has no mac).
    conf["prevResult"] = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "tap0", "mtu": 1400}],
        "ips": [{"address": "192.0.2.5/24", "interface": 0}],
        "routes": [{"dst": "198.51.100.0/24", "gw": "192.0.2.1"}],
        "dns": {"nameservers": ["192.0.2.53"], "search": ["example.test"]}
    });
    let add = call(&netd, "ADD", "chain", &ns, "eth0", &conf);
    assert!(add.ok, "{}", add.out);
    let out = &add.out;
    assert_eq!(out["interfaces"][0]["name"], "tap0");
    assert_eq!(out["interfaces"][0]["mtu"], 1400);
    assert_eq!(out["interfaces"][1]["name"], "eth0");
    assert_eq!(out["ips"][0]["address"], "192.0.2.5/24");
    let ip = out["ips"][1]["address"].as_str().unwrap_or_default();
    assert!(ip.starts_with("10.76.0."), "{out}");
    assert_eq!(out["ips"][1]["interface"], 1, "{out}");
    assert_eq!(out["routes"][0]["dst"], "198.51.100.0/24");
    assert_eq!(out["routes"][1]["dst"], "0.0.0.0/0");
    assert_eq!(out["dns"]["search"], json!(["example.test"]));
    assert_eq!(
        out["dns"]["nameservers"],
        json!(["192.0.2.53", "10.76.0.1"])
    );
    // The kernel agrees, and a CHECK given this result as the runtime keeps it
    // compares only this interface's addresses.
    let shown = inside(&netd, &ns, &["ip", "-o", "addr", "show", "eth0"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains(&format!("inet {ip}")), "{shown}");
    let mut checked = conf.clone();
    checked["prevResult"] = out.clone();
    let check = call(&netd, "CHECK", "chain", &ns, "eth0", &checked);
    assert!(check.ok, "{}", check.out);

    // A prevResult that is not a result, or whose parts are not of their
    // shape: refused, and nothing made.
    let (_c2, ns2) = netd.foreign_netns("chain2");
    let mut bad = conf.clone();
    for prev in [
        json!("not a result"),
        json!({"cniVersion": "1.0.0", "ips": 5}),
        json!({"cniVersion": "1.0.0", "routes": {}}),
        json!({"cniVersion": "1.0.0", "dns": []}),
        json!({"cniVersion": "1.0.0", "dns": {"nameservers": "10.0.0.1"}}),
    ] {
        bad["prevResult"] = prev.clone();
        let (code, msg) = call(&netd, "ADD", "chain2", &ns2, "eth0", &bad).error();
        assert_eq!(code, 6, "{prev}: {msg}");
        assert!(msg.contains("prevResult"), "{prev}: {msg}");
        assert!(rt.block_on(netd.client.sandbox("cni-chain2")).is_err());
    }
    assert!(call(&netd, "DEL", "chain", &ns, "eth0", &conf).ok);
    assert!(call(&netd, "DEL", "chain2", &ns2, "eth0", &bad).ok);
    assert_eq!(lock_files(&netd), Vec::<String>::new());
}

#[test]
fn a_container_on_two_networks_has_one_default_route_and_keeps_it() {
    let (netd, rt) = Netd::start_with_network("cnia", "10.75.1.0/24");
    rt.block_on(
        netd.client
            .create_network(&common::network("cnib", "10.75.2.0/24")),
    )
    .unwrap();
    let (_c, ns) = netd.foreign_netns("two");
    let (a, b) = (conf(&netd, "cnia", "1.0.0"), conf(&netd, "cnib", "1.0.0"));
    // A conflist per network, as podman and containerd run them.
    let add_a = call(&netd, "ADD", "two", &ns, "eth0", &a);
    assert!(add_a.ok, "{}", add_a.out);
    let add_b = call(&netd, "ADD", "two", &ns, "eth1", &b);
    assert!(add_b.ok, "{}", add_b.out);
    let default = || {
        let out = inside(&netd, &ns, &["ip", "route", "show", "default"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The first network's gateway carries the default route, and each
    // result says which interface has it.
    assert!(
        default().starts_with("default via 10.75.1.1 dev eth0"),
        "{}",
        default()
    );
    assert_eq!(add_a.out["routes"][0]["dst"], "0.0.0.0/0", "{}", add_a.out);
    assert!(add_b.out.get("routes").is_none(), "{}", add_b.out);
    assert!(
        first_ip(&add_b.out).starts_with("10.75.2."),
        "{}",
        add_b.out
    );
    // Both interfaces' CHECKs hold.
    for (ifname, conf, add) in [("eth0", &a, &add_a), ("eth1", &b, &add_b)] {
        let mut checked = conf.clone();
        checked["prevResult"] = add.out.clone();
        let check = call(&netd, "CHECK", "two", &ns, ifname, &checked);
        assert!(check.ok, "{ifname}: {}", check.out);
    }
    // The first network's DEL: the second's gateway takes the default route,
    // and the sandbox stays for eth1.
    assert!(call(&netd, "DEL", "two", &ns, "eth0", &a).ok);
    assert!(
        default().starts_with("default via 10.75.2.1 dev eth1"),
        "{}",
        default()
    );
    assert!(rt.block_on(netd.client.sandbox("cni-two")).is_ok());
    assert_eq!(lock_files(&netd), ["cni-two.lock"]);
    // An internal network's result names no default route (it has none).
    let mut closed = common::network("cnic", "10.75.3.0/24");
    closed
        .options
        .insert("com.docker.network.internal".into(), "true".into());
    rt.block_on(netd.client.create_network(&closed)).unwrap();
    let (_i, nsi) = netd.foreign_netns("inner");
    let c = conf(&netd, "cnic", "1.0.0");
    let add_c = call(&netd, "ADD", "inner", &nsi, "eth0", &c);
    assert!(add_c.ok, "{}", add_c.out);
    assert!(add_c.out.get("routes").is_none(), "{}", add_c.out);
    assert!(call(&netd, "DEL", "inner", &nsi, "eth0", &c).ok);
    // The last DEL: nothing of the container is left.
    assert!(call(&netd, "DEL", "two", &ns, "eth1", &b).ok);
    assert!(rt.block_on(netd.client.sandbox("cni-two")).is_err());
    assert_eq!(lock_files(&netd), Vec::<String>::new());
}
