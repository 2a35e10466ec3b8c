//! A stock dockerd uses the example volume plugin (plugin-api/examples/volume_driver.rs)
//! through the plugin protocol: create, run with the volume, ls, inspect, rm.

use tests::{example_binary, Dockerd, TestHost};

/// The calls the example logged, in order, as `VolumeDriver.X name=...` lines.
fn calls(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix("call "))
        .map(str::to_string)
        .collect()
}

#[test]
fn docker_creates_mounts_lists_inspects_and_removes_a_plugin_volume() {
    let host = TestHost::new().unwrap();
    let root = host.dir().join("volumes");
    let root_arg = root.display().to_string();
    let plugin = host
        .spawn_plugin(
            "dirvol",
            example_binary("volume_driver").unwrap(),
            &["--name", "dirvol", "--root", &root_arg],
        )
        .unwrap();
    // Plugins start first so they outlive dockerd, which calls them while it stops.
    let docker = Dockerd::start(&host).unwrap();

    assert_eq!(
        docker
            .run(&["volume", "create", "-d", "dirvol", "v1"])
            .unwrap()
            .trim(),
        "v1"
    );
    let listed = docker
        .run(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"])
        .unwrap();
    assert!(listed.lines().any(|l| l == "dirvol v1"), "{listed}");

    // A container writes through the volume; the file lands in the plugin's directory
    // and a second container reads it back.
    docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "v1:/data",
            "busybox",
            "sh",
            "-c",
            "echo hi > /data/f",
        ])
        .unwrap();
    assert_eq!(std::fs::read_to_string(root.join("v1/f")).unwrap(), "hi\n");
    let read = docker
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "v1:/data:ro",
            "busybox",
            "cat",
            "/data/f",
        ])
        .unwrap();
    assert_eq!(read, "hi\n");

    let inspected = docker.json(&["volume", "inspect", "v1"]).unwrap();
    let v = &inspected[0];
    assert_eq!(v["Name"], "v1");
    assert_eq!(v["Driver"], "dirvol");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Mountpoint"], root.join("v1").display().to_string());
    let created = v["CreatedAt"].as_str().unwrap();
    assert!(
        created.len() >= 20 && created.as_bytes()[10] == b'T',
        "CreatedAt {created:?} is not RFC 3339"
    );

    // The engine relays the driver's own error to the user.
    let err = docker
        .run_err(&["volume", "create", "-d", "dirvol", "-o", "size=1G", "v2"])
        .unwrap();
    assert!(err.contains("unknown option \"size\""), "{err}");

    assert_eq!(docker.run(&["volume", "rm", "v1"]).unwrap().trim(), "v1");
    let listed = docker.run(&["volume", "ls", "-q"]).unwrap();
    assert!(!listed.lines().any(|l| l == "v1"), "{listed}");
    assert!(!root.join("v1").exists());

    // Every Mount was matched by an Unmount (the engine mounts at create and at start),
    // the volume was created before its first mount, and removed after its last unmount.
    let calls = calls(&plugin.log());
    let position = |what: &str| calls.iter().position(|c| c.starts_with(what));
    let last = |what: &str| calls.iter().rposition(|c| c.starts_with(what));
    let count = |what: &str| calls.iter().filter(|c| c.starts_with(what)).count();
    let mounts = count("VolumeDriver.Mount name=v1");
    assert!(mounts >= 2, "two containers used v1: {calls:#?}");
    assert_eq!(mounts, count("VolumeDriver.Unmount name=v1"), "{calls:#?}");
    assert!(
        position("VolumeDriver.Create name=v1") < position("VolumeDriver.Mount name=v1"),
        "{calls:#?}"
    );
    assert!(
        last("VolumeDriver.Unmount name=v1") < position("VolumeDriver.Remove name=v1"),
        "{calls:#?}"
    );
}

#[test]
fn docker_finds_a_plugin_through_a_spec_file() {
    let host = TestHost::new().unwrap();
    let sockets = host.dir().join("sockets");
    let root = host.dir().join("volumes").display().to_string();
    let socket_dir = sockets.display().to_string();
    let _plugin = host
        .spawn_plugin_at(
            "specvol",
            &sockets.join("specvol.sock"),
            example_binary("volume_driver").unwrap(),
            &[
                "--name",
                "specvol",
                "--root",
                &root,
                "--socket-dir",
                &socket_dir,
                "--spec-dir",
                "/etc/docker/plugins",
            ],
        )
        .unwrap();
    // The spec file is in the host's /etc/docker/plugins, and names the socket.
    // The plugin writes it once its socket listens: wait for it too.
    let spec_path = host.etc_docker_dir().join("plugins/specvol.spec");
    let spec = tests::wait_for(
        "the plugin's spec file",
        std::time::Duration::from_secs(10),
        || Ok(std::fs::read_to_string(&spec_path).ok()),
    )
    .unwrap();
    assert_eq!(spec.trim(), format!("unix://{socket_dir}/specvol.sock"));
    assert!(!host.plugin_dir().join("specvol.sock").exists());

    let docker = Dockerd::start(&host).unwrap();
    docker
        .run(&["volume", "create", "-d", "specvol", "s1"])
        .unwrap();
    let inspected = docker.json(&["volume", "inspect", "s1"]).unwrap();
    assert_eq!(inspected[0]["Driver"], "specvol");
    assert!(std::path::Path::new(&root).join("s1").is_dir());
    docker.run(&["volume", "rm", "s1"]).unwrap();
}
