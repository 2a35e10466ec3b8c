//! volumed under a real dockerd (the suite's private dockerd in a test host):
//! volumes with labels and options, shared between containers, data kept after
//! the containers go, refused removal while in use, counts right after `docker
//! cp`, volumes made by `--mount`, and a kill -9 of volumed while a container
//! holds a tmpfs volume.

mod common;

use common::{Calls, Volumed};
use serde_json::json;
use tests::Dockerd;

#[test]
fn docker_volumes_on_volumed() {
    let mut v = Volumed::start_with_docker();
    let v = &mut v;
    let docker = Dockerd::start(&v.host).unwrap();
    let run = |args: &[&str]| {
        docker
            .run(args)
            .unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
    };
    run(&[
        "volume", "create", "-d", "volumed", "--label", "team=a", "v1",
    ]);
    let inspect = docker.json(&["volume", "inspect", "v1"]).unwrap();
    assert_eq!(inspect[0]["Driver"], "volumed", "{inspect}");
    assert_eq!(inspect[0]["Labels"]["team"], "a", "{inspect}");

    // Two containers share it; the data outlives them.
    run(&[
        "run",
        "--rm",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f",
    ]);
    let read = run(&["run", "--rm", "-v", "v1:/data", "busybox", "cat", "/data/f"]);
    assert_eq!(read.trim(), "hello");
    assert_eq!(
        std::fs::read_to_string(v.data_root().join("volumes/v1/_data/f")).unwrap(),
        "hello\n"
    );

    // In use: not removed; docker cp leaves the counts right.
    run(&[
        "run", "-d", "--name", "holder", "-v", "v1:/data", "busybox", "sleep", "1000",
    ]);
    let err = docker.run_err(&["volume", "rm", "v1"]).unwrap();
    assert!(err.contains("in use"), "{err}");
    let src = v.host.dir().join("copied");
    std::fs::write(&src, "copied in").unwrap();
    run(&["cp", &src.display().to_string(), "holder:/data/copied"]);
    let refs = v.client.volume("v1").unwrap().references();
    assert_eq!(
        refs,
        1,
        "after docker cp: {:?}",
        v.client.volume("v1").unwrap().refs
    );
    run(&["rm", "-f", "holder"]);
    assert_eq!(v.client.volume("v1").unwrap().references(), 0);

    // --mount with volume-driver makes the volume through volumed.
    run(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=auto1,dst=/x,volume-driver=volumed",
        "busybox",
        "true",
    ]);
    assert!(
        v.client.volume("auto1").is_ok(),
        "auto1 was not made by volumed"
    );

    // A tmpfs volume with a size, held by a container while volumed is killed.
    run(&[
        "volume",
        "create",
        "-d",
        "volumed",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=16m",
        "t1",
    ]);
    let df = run(&["run", "--rm", "-v", "t1:/t", "busybox", "df", "-k", "/t"]);
    assert!(df.contains("16384"), "{df}");
    run(&[
        "run", "-d", "--name", "holder2", "-v", "t1:/t", "busybox", "sleep", "1000",
    ]);
    let data = v.data_root().join("volumes/t1/_data");
    assert!(v.mounted(&data));
    let mut daemon = v.daemon.take().unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    daemon.wait_exit(std::time::Duration::from_secs(5)).unwrap();
    v.daemon = Some(v.start_daemon());
    assert!(
        v.mounted(&data),
        "the tmpfs was lost across volumed's restart"
    );
    run(&["rm", "-f", "holder2"]);
    assert!(!v.mounted(&data), "still mounted after its last user went");
    assert_eq!(v.client.volume("t1").unwrap().references(), 0);
    // A bind-typed volume: a host directory, seen inside the container.
    let shared = v.host.dir().join("shared-dir");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("from-host"), "host file").unwrap();
    let device = format!("device={}", shared.display());
    run(&[
        "volume",
        "create",
        "-d",
        "volumed",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "b1",
    ]);
    let seen = run(&[
        "run",
        "--rm",
        "-v",
        "b1:/b",
        "busybox",
        "cat",
        "/b/from-host",
    ]);
    assert_eq!(seen.trim(), "host file");
    // -v of a name that does not exist yet, with volumed as the driver.
    run(&[
        "run",
        "--rm",
        "--volume-driver",
        "volumed",
        "-v",
        "auto2:/y",
        "busybox",
        "true",
    ]);
    assert!(
        v.client.volume("auto2").is_ok(),
        "auto2 was not made by volumed"
    );
    run(&["volume", "rm", "t1", "auto1", "auto2", "b1"]);
    assert!(v.client.volume("t1").is_err());
    drop(docker);

    // dockerd restarted (it asks volumed for each volume it knows): v1 keeps its
    // labels and its data.
    let docker = Dockerd::start(&v.host).unwrap();
    let inspect = docker.json(&["volume", "inspect", "v1"]).unwrap();
    assert_eq!(inspect[0]["Labels"]["team"], "a", "{inspect}");
    let read = docker
        .run(&["run", "--rm", "-v", "v1:/data", "busybox", "cat", "/data/f"])
        .unwrap();
    assert_eq!(read.trim(), "hello");
    docker.run(&["volume", "rm", "v1"]).unwrap();
    assert!(v.client.volume("v1").is_err());
}

/// The OCI mounts dockerd's own engine makes for a container (from the bundle
/// containerd runs it from).
fn docker_oci_mounts(host: &tests::TestHost, id: &str) -> Vec<serde_json::Value> {
    let found = host
        .run(
            "find",
            &[
                &host.dir().join("docker").display().to_string(),
                "-path",
                &format!("*{id}*/config.json"),
            ],
        )
        .unwrap();
    let path = found
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no bundle for {id}"));
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    spec["mounts"].as_array().cloned().unwrap_or_default()
}

fn options_of(mounts: &[serde_json::Value], dest: &str) -> std::collections::BTreeSet<String> {
    mounts
        .iter()
        .find(|m| m["destination"] == dest)
        .unwrap_or_else(|| panic!("no {dest} in {mounts:?}"))["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn resolve_answers_what_docker_makes_for_the_same_mounts() {
    let v = Volumed::start();
    let docker = Dockerd::start(&v.host).unwrap();
    let src = v.host.dir().join("cmp-src");
    std::fs::create_dir_all(&src).unwrap();
    let src = src.display().to_string();
    let id = docker
        .run(&[
            "run",
            "-d",
            "--mount",
            &format!("type=bind,src={src},dst=/b"),
            "--mount",
            &format!("type=bind,src={src},dst=/bro,readonly"),
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=8388608,tmpfs-mode=0700",
            "--mount",
            "type=tmpfs,dst=/t2",
            "busybox",
            "sleep",
            "100",
        ])
        .unwrap();
    let theirs = docker_oci_mounts(&v.host, id.trim());
    let body = json!({"id": "cmp", "mounts": [
        {"Type": "bind", "Source": src, "Target": "/b"},
        {"Type": "bind", "Source": src, "Target": "/bro", "ReadOnly": true},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 8388608, "Mode": 448}},
        {"Type": "tmpfs", "Target": "/t2"}
    ]});
    let ours: volumed::resolve::Resolved = common::runtime()
        .block_on(
            v.client
                .call(hyper::Method::POST, "/v1/mounts/resolve", Some(&body)),
        )
        .unwrap();
    let ours: Vec<serde_json::Value> = ours
        .mounts
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    for dest in ["/b", "/bro", "/t", "/t2"] {
        let mut mine = options_of(&ours, dest);
        let theirs = options_of(&theirs, dest);
        // Docker 20.10 predates recursive read-only (Docker 25 makes it `rro`).
        if mine.remove("rro") {
            mine.insert("ro".into());
        }
        assert_eq!(mine, theirs, "{dest}: volumed {mine:?}, dockerd {theirs:?}");
    }
}

#[test]
fn docker_create_copies_image_content_in_and_leaves_no_reference() {
    let v = Volumed::start_with_docker();
    let docker = Dockerd::start(&v.host).unwrap();
    // A new volume at a path the image has files in: dockerd mounts it at create
    // to copy them in, and unmounts it again.
    let id = docker
        .run(&[
            "create",
            "--volume-driver",
            "volumed",
            "-v",
            "copied:/etc",
            "busybox",
            "true",
        ])
        .unwrap();
    let vol = v.client.volume("copied").unwrap();
    assert_eq!(vol.references(), 0, "after docker create: {:?}", vol.refs);
    assert!(
        std::path::Path::new(&vol.mountpoint)
            .join("passwd")
            .exists(),
        "the image's /etc was not copied in"
    );
    docker.run(&["rm", id.trim()]).unwrap();
    docker.run(&["volume", "rm", "copied"]).unwrap();
}

/// The README's compose file, as a user runs it: a netd network with netd's
/// IPAM, a volumed tmpfs volume with labels, a published port; then `down -v`
/// removes what it made from both daemons.
#[test]
fn the_readme_compose_file_runs_on_netd_and_volumed() {
    let v = Volumed::start_with_docker();
    let dir = v.host.dir();
    let netd_socket = dir.join("netd.sock").display().to_string();
    let netd = tests::workspace_binary("netd").unwrap();
    let (state, run) = (dir.join("netd-state"), dir.join("netd-run"));
    let _netd = v
        .host
        .spawn_plugin_at(
            "netd",
            &v.host.plugin_dir().join("netd.sock"),
            &netd,
            &[
                "--socket",
                &netd_socket,
                "daemon",
                "--state-dir",
                &state.display().to_string(),
                "--run-dir",
                &run.display().to_string(),
            ],
        )
        .unwrap();
    let docker = Dockerd::start(&v.host).unwrap();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/compose/compose.yml"
    );
    let compose = |args: &[&str]| {
        let out = docker
            .compose()
            .args(["-f", file, "-p", "demo"])
            .args(args)
            .output()
            .expect("docker-compose (Debian's docker-compose package) runs");
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    compose(&["up", "-d"]);

    let page = tests::wait_for(
        "the web service",
        std::time::Duration::from_secs(20),
        || {
            Ok(v.host
                .run(
                    "curl",
                    &["-s", "--max-time", "2", "http://127.0.0.1:18081/"],
                )
                .ok()
                .filter(|body| !body.is_empty()))
        },
    )
    .unwrap();
    assert_eq!(page.trim(), "hello from volumed");
    let site = v.client.volume("demo_site").unwrap();
    assert_eq!(site.references(), 1, "{:?}", site.refs);
    // Labels are dockerd's to keep (the plugin protocol carries none).
    let inspect = docker.json(&["volume", "inspect", "demo_site"]).unwrap();
    assert_eq!(inspect[0]["Driver"], "volumed", "{inspect}");
    assert_eq!(inspect[0]["Labels"]["app"], "web", "{inspect}");
    assert!(
        v.mounted(std::path::Path::new(&site.mountpoint)),
        "not a tmpfs"
    );
    let netd_networks = || {
        let out = std::process::Command::new(&netd)
            .args([
                "--socket",
                &netd_socket,
                "network",
                "ls",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let nets = netd_networks();
    assert!(nets.contains("10.82.0.0/24"), "{nets}");

    compose(&["down", "-v"]);
    assert!(
        v.client.volume("demo_site").is_err(),
        "the volume outlived down -v"
    );
    let nets = netd_networks();
    assert!(
        !nets.contains("10.82.0.0/24"),
        "the network outlived down: {nets}"
    );
}
