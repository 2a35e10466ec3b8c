//! `/v1/mounts/resolve` proven with the real runtime: an OCI bundle whose mounts
//! come from volumed, run with Debian's runc. Inside, the volume's file is there,
//! the read-only bind refuses writes, the tmpfs has its size and mode; release
//! drops the references. Bad specs are refused with nothing taken.

mod common;

use common::{Calls, Volumed};
use hyper::Method;
use serde_json::json;
use volumed::resolve::Resolved;

fn resolve(v: &Volumed, body: serde_json::Value) -> Result<Resolved, String> {
    common::runtime()
        .block_on(
            v.client
                .call(Method::POST, "/v1/mounts/resolve", Some(&body)),
        )
        .map_err(|e| e.to_string())
}

#[test]
fn a_runc_bundle_runs_with_the_mounts_volumed_resolves() {
    let v = Volumed::start();
    let bind_src = v.host.dir().join("bind-src");
    std::fs::create_dir_all(&bind_src).unwrap();
    std::fs::write(bind_src.join("b"), "bound").unwrap();
    let resolved = resolve(
        &v,
        json!({"id": "ctr1", "mounts": [
            {"Type": "volume", "Source": "appdata", "Target": "/data"},
            {"Type": "bind", "Source": bind_src.display().to_string(), "Target": "/ro", "ReadOnly": true},
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 8388608, "Mode": 448}}
        ]}),
    )
    .unwrap();
    let vol = v.client.volume("appdata").unwrap();
    assert_eq!(vol.refs.get("ctr1"), Some(&1), "{:?}", vol.refs);
    std::fs::write(
        std::path::Path::new(&vol.mountpoint).join("f"),
        "from the volume",
    )
    .unwrap();
    let entry = |dest: &str| {
        resolved
            .mounts
            .iter()
            .find(|m| m.destination == dest)
            .unwrap_or_else(|| panic!("no {dest} in {resolved:?}"))
            .clone()
    };
    assert_eq!(entry("/data").options, ["rbind", "rprivate"]);
    assert!(entry("/ro").options.iter().any(|o| o == "rro" || o == "ro"));
    assert_eq!(
        entry("/t").options,
        ["nosuid", "nodev", "noexec", "mode=700", "size=8m", "rprivate"]
    );

    // An OCI bundle: busybox, the default spec, and volumed's mounts.
    let bundle = v.host.dir().join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let tar = tests::busybox_rootfs_tar(v.host.dir()).unwrap();
    v.host
        .run(
            "tar",
            &[
                "-C",
                &rootfs.display().to_string(),
                "-xf",
                &tar.display().to_string(),
            ],
        )
        .unwrap();
    v.host
        .run("runc", &["spec", "-b", &bundle.display().to_string()])
        .unwrap();
    let spec_path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&spec_path).unwrap()).unwrap();
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!([
        "sh",
        "-c",
        "cat /data/f; echo; cat /ro/b; echo; (echo x > /ro/x) 2>/dev/null && echo WROTE || echo REFUSED; stat -c %a /t; df -k /t | tail -n 1"
    ]);
    let mounts = spec["mounts"].as_array_mut().unwrap();
    for m in &resolved.mounts {
        mounts.push(serde_json::to_value(m).unwrap());
    }
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let state = v.host.dir().join("runc-state");
    let out = v
        .host
        .command("runc")
        .args(["--root", &state.display().to_string(), "run", "-b"])
        .arg(&bundle)
        // A name of this test's own: runc names the container's cgroup after it.
        .arg(v.host.name())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runc failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first().copied(), Some("from the volume"), "{stdout}");
    assert!(lines.contains(&"bound"), "{stdout}");
    assert!(
        lines.contains(&"REFUSED"),
        "the read-only bind took a write: {stdout}"
    );
    assert!(lines.contains(&"700"), "tmpfs mode: {stdout}");
    assert!(stdout.contains(" 8192 "), "tmpfs size: {stdout}");

    // The container ended: its references go.
    let released: Vec<String> = common::runtime()
        .block_on(v.client.call(
            Method::POST,
            "/v1/mounts/release",
            Some(&json!({"id": "ctr1"})),
        ))
        .unwrap();
    assert_eq!(released, ["appdata"]);
    assert_eq!(v.client.volume("appdata").unwrap().references(), 0);
}

#[test]
fn bad_mount_specs_are_refused_and_take_nothing() {
    let v = Volumed::start();
    let missing = v.host.dir().join("missing-dir");
    for (mounts, words) in [
        (
            json!([{"Type": "bind", "Source": "/", "Target": "/host"}]),
            "deny list",
        ),
        (
            json!([{"Type": "bind", "Source": v.data_root().display().to_string(), "Target": "/x"}]),
            "deny list",
        ),
        (
            json!([{"Type": "bind", "Source": "relative/dir", "Target": "/x"}]),
            "absolute",
        ),
        (
            json!([{"Type": "bind", "Source": missing.display().to_string(), "Target": "/x"}]),
            "does not exist",
        ),
        (json!([{"Type": "tmpfs", "Target": "../x"}]), "absolute"),
        (
            json!([{"Type": "nfs", "Target": "/x"}]),
            "expected volume, bind or tmpfs",
        ),
        (
            json!([
                {"Type": "volume", "Source": "first", "Target": "/a"},
                {"Type": "bind", "Source": "/", "Target": "/b"}
            ]),
            "deny list",
        ),
        (
            json!([{"Type": "bind", "Source": v.host.dir().display().to_string(), "Target": "/s",
                    "BindOptions": {"Propagation": "rshared"}}]),
            "needs a shared mount",
        ),
    ] {
        let err = resolve(&v, json!({"id": "c", "mounts": mounts})).unwrap_err();
        assert!(err.contains(words), "{mounts}: {err}");
    }
    assert!(!missing.exists(), "a refused bind made its source");
    // The volume of the refused request holds no reference.
    let first = v.client.volume("first").unwrap();
    assert_eq!(first.references(), 0, "{:?}", first.refs);
    // -v semantics: a missing source is made when asked.
    let ok = resolve(
        &v,
        json!({"id": "c", "mounts": [{"Type": "bind", "Source": missing.display().to_string(),
               "Target": "/x", "BindOptions": {"CreateMountpoint": true}}]}),
    );
    assert!(ok.is_ok(), "{ok:?}");
    assert!(missing.is_dir());
}

#[test]
fn the_config_file_adds_to_the_deny_list_and_metrics_count_references() {
    let v = Volumed::start_with_args(false, |dir| {
        let secret = dir.join("secrets");
        std::fs::create_dir_all(&secret).unwrap();
        let config = dir.join("volumed.toml");
        std::fs::write(
            &config,
            format!("deny_bind = [{:?}]\n", secret.display().to_string()),
        )
        .unwrap();
        vec!["--config".into(), config.display().to_string()]
    });
    let secret = v.host.dir().join("secrets/inner");
    std::fs::create_dir_all(&secret).unwrap();
    let err = resolve(
        &v,
        json!({"id": "c", "mounts": [{"Type": "bind", "Source": secret.display().to_string(), "Target": "/s"}]}),
    )
    .unwrap_err();
    assert!(err.contains("deny list"), "{err}");
    resolve(
        &v,
        json!({"id": "c", "mounts": [{"Type": "volume", "Source": "m1", "Target": "/m"}]}),
    )
    .unwrap();
    let out = v
        .host
        .run(
            "curl",
            &[
                "-s",
                "--unix-socket",
                &v.host.dir().join("volumed.sock").display().to_string(),
                "http://volumed/metrics",
            ],
        )
        .unwrap();
    assert!(out.contains("volumed_volumes 1"), "{out}");
    assert!(out.contains("volumed_references 1"), "{out}");

    // A config file with an unknown key is an error that names it.
    let bad = v.host.dir().join("bad.toml");
    std::fs::write(&bad, "data_rot = \"/x\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_volumed"))
        .args(["daemon", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("data_rot"), "{err}");
}

/// A busybox bundle in `dir` running `script`, with volumed's OCI hooks and
/// `annotations`.
fn hooked_bundle(v: &Volumed, dir: &std::path::Path, script: &str, annotations: serde_json::Value) {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let tar = tests::busybox_rootfs_tar(dir).unwrap();
    v.host
        .run(
            "tar",
            &["-C", rootfs.to_str().unwrap(), "-xf", tar.to_str().unwrap()],
        )
        .unwrap();
    v.host
        .run("runc", &["spec", "-b", dir.to_str().unwrap()])
        .unwrap();
    let path = dir.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let bin = tests::workspace_binary("volumed").unwrap();
    let socket = v.host.dir().join("volumed.sock");
    let hook = |stage: &str| json!([{"path": bin, "args": ["volumed", "--socket", socket, "oci-hook", stage]}]);
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(["sh", "-c", script]);
    spec["annotations"] = annotations;
    spec["hooks"] = json!({"createRuntime": hook("create"), "poststop": hook("poststop")});
    spec["linux"]["cgroupsPath"] = json!(format!("/{}", v.host.name()));
    std::fs::write(&path, spec.to_string()).unwrap();
}

/// `runc run` of the bundle in `dir` in the foreground: its stdout, or stderr
/// as the error.
fn runc_run(v: &Volumed, dir: &std::path::Path, id: &str) -> Result<String, String> {
    let state = v.host.dir().join("runc-state");
    let out = v
        .host
        .command("runc")
        .args(["--root", state.to_str().unwrap(), "run", "-b"])
        .arg(dir)
        .arg(id)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_runc_container_gets_its_volumes_from_annotations_through_the_hooks() {
    let v = Volumed::start();
    // First run: the volume is made, written, and read back read-only.
    let dir = v.host.dir().join("writer");
    hooked_bundle(
        &v,
        &dir,
        "echo kept > /data/f && cat /cache/f 2>/dev/null; (echo x > /ro/x) 2>/dev/null && echo WROTE || echo REFUSED",
        json!({"org.volumed.mounts": "appdata:/data,appdata:/ro:ro,scratch:/cache"}),
    );
    let id = format!("{}w", v.host.name());
    let out = runc_run(&v, &dir, &id).unwrap();
    assert!(out.contains("REFUSED"), "{out}");
    let vol = v.client.volume("appdata").unwrap();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(&vol.mountpoint).join("f")).unwrap(),
        "kept\n"
    );
    // poststop dropped the references.
    assert_eq!(vol.references(), 0, "{:?}", vol.refs);
    assert!(v.client.volume("scratch").is_ok());
    // A second container sees what the first wrote.
    let dir = v.host.dir().join("reader");
    hooked_bundle(
        &v,
        &dir,
        "cat /data/f",
        json!({"org.volumed.mounts": "appdata:/data"}),
    );
    let out = runc_run(&v, &dir, &format!("{}r", v.host.name())).unwrap();
    assert_eq!(out.trim(), "kept");
    // A volume whose backing volumed mounts at the first reference (tmpfs),
    // after the container's mount namespace was made: the container gets the
    // backing, not the directory under it.
    v.cli(&[
        "volume",
        "create",
        "mem",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
    ])
    .unwrap();
    let dir = v.host.dir().join("tmpfs");
    hooked_bundle(
        &v,
        &dir,
        "grep ' /mem tmpfs ' /proc/mounts >/dev/null && echo TMPFS",
        json!({"org.volumed.mounts": "mem:/mem"}),
    );
    let out = runc_run(&v, &dir, &format!("{}t", v.host.name())).unwrap();
    assert_eq!(out.trim(), "TMPFS");

    // A path through a symbolic link in the image is refused, and no
    // reference is left.
    let dir = v.host.dir().join("escape");
    hooked_bundle(
        &v,
        &dir,
        "true",
        json!({"org.volumed.mounts": "appdata:/link/x"}),
    );
    std::os::unix::fs::symlink("/etc", dir.join("rootfs/link")).unwrap();
    let err = runc_run(&v, &dir, &format!("{}e", v.host.name())).unwrap_err();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(v.client.volume("appdata").unwrap().references(), 0);
    // A bad annotation is refused before anything is taken.
    let dir = v.host.dir().join("bad");
    hooked_bundle(&v, &dir, "true", json!({"org.volumed.mounts": "appdata"}));
    let err = runc_run(&v, &dir, &format!("{}b", v.host.name())).unwrap_err();
    assert!(err.contains("VOLUME:/PATH"), "{err}");
}
