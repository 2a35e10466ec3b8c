//! volumed without an engine: references counted per ID and durable across
//! kill -9, tmpfs mounted at the first reference and unmounted at the last, paths
//! that never leave the data root, and bad input refused with nothing made.

mod common;

use common::{Calls, Volumed};
use serde_json::json;

#[test]
fn references_are_a_multiset_per_id_and_survive_kill_9() {
    let mut v = Volumed::start();
    let c = v.client.clone();
    let vol = c
        .create(json!({"name": "v1", "labels": {"team": "a"}}))
        .unwrap();
    assert_eq!(vol.labels["team"], "a");
    assert!(
        vol.mountpoint.ends_with("/volumes/v1/_data"),
        "{}",
        vol.mountpoint
    );
    // dockerd mounts one ID twice (docker cp) and old clients send no ID.
    for id in ["c1", "c1", "c2", ""] {
        c.mount("v1", id).unwrap();
    }
    // An ID it never saw (a restarted engine's) unmounts without error.
    c.unmount("v1", "never-seen").unwrap();
    c.unmount("v1", "c2").unwrap();
    c.unmount("v1", "c2").unwrap();
    let now = c.volume("v1").unwrap();
    assert_eq!(now.references(), 3, "{:?}", now.refs);
    let err = c.remove("v1").unwrap_err().to_string();
    assert!(err.contains("in use by") && err.contains("c1 (2)"), "{err}");

    v.kill_9();
    v.launch();
    let c = v.client.clone();
    let after = c.volume("v1").unwrap();
    assert_eq!(after.refs, now.refs, "the counts did not survive kill -9");
    assert_eq!(after.labels["team"], "a");
    for id in ["c1", "c1", ""] {
        c.unmount("v1", id).unwrap();
    }
    c.remove("v1").unwrap();
    assert!(!v.data_root().join("volumes/v1").exists());
}

#[test]
fn a_tmpfs_volume_is_mounted_while_referenced_and_has_its_size() {
    let v = Volumed::start();
    let c = v.client.clone();
    let vol = c
        .create(json!({"name": "scratch", "options": {"type": "tmpfs", "device": "tmpfs", "o": "size=8m,mode=0700"}}))
        .unwrap();
    let data = std::path::PathBuf::from(&vol.mountpoint);
    assert!(!v.mounted(&data), "mounted before anyone uses it");
    c.mount("scratch", "a").unwrap();
    c.mount("scratch", "b").unwrap();
    assert!(v.mounted(&data), "not mounted at the first reference");
    let size = v
        .host
        .run("findmnt", &["-rn", "-o", "FSTYPE,SIZE", &vol.mountpoint])
        .unwrap();
    assert!(size.contains("tmpfs") && size.contains("8M"), "{size}");
    c.unmount("scratch", "a").unwrap();
    assert!(v.mounted(&data), "unmounted while b still uses it");
    c.unmount("scratch", "b").unwrap();
    assert!(!v.mounted(&data), "still mounted after the last reference");

    // Generic options in o are mount flags (the kernel refuses them as a
    // tmpfs's own options), as with mount(8) and Docker.
    let flagged = c
        .create(json!({"name": "flagged", "options": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,noexec,nosuid,noatime"}}))
        .unwrap();
    c.mount("flagged", "a").unwrap();
    let options = v
        .host
        .run("findmnt", &["-rn", "-o", "OPTIONS", &flagged.mountpoint])
        .unwrap();
    for flag in ["noexec", "nosuid", "noatime"] {
        assert!(
            options.split(',').any(|o| o.trim() == flag),
            "{flag}: {options}"
        );
    }
    c.unmount("flagged", "a").unwrap();
}

#[test]
fn a_mount_left_by_a_crash_is_reconciled_at_start() {
    let mut v = Volumed::start();
    let c = v.client.clone();
    let vol = c
        .create(
            json!({"name": "t1", "options": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}),
        )
        .unwrap();
    let data = std::path::PathBuf::from(&vol.mountpoint);
    c.mount("t1", "x").unwrap();
    v.kill_9();
    // Gone while volumed was down (a reboot): mounted again at start.
    v.host.run("umount", &[&vol.mountpoint]).unwrap();
    v.launch();
    assert!(
        v.mounted(&data),
        "a referenced tmpfs volume was not mounted again"
    );
    v.client.unmount("t1", "x").unwrap();
    v.kill_9();
    // Mounted with no reference (a crash between commit and unmount): unmounted.
    v.host
        .run("mount", &["-t", "tmpfs", "tmpfs", &vol.mountpoint])
        .unwrap();
    v.launch();
    assert!(!v.mounted(&data), "an unreferenced mount was left");
}

#[test]
fn bad_input_is_refused_and_nothing_is_made() {
    let v = Volumed::start();
    let c = v.client.clone();
    for (body, words) in [
        (json!({"name": ".."}), "invalid characters"),
        (json!({"name": "a/b"}), "invalid characters"),
        (json!({"name": "/etc"}), "invalid characters"),
        (json!({"name": "x"}), "at least two"),
        (
            json!({"name": "v2", "options": {"foo": "1"}}),
            "invalid option: \"foo\"",
        ),
        (
            json!({"name": "v2", "options": {"device": "tmpfs"}}),
            "missing required option: \"type\"",
        ),
        (
            json!({"name": "v2", "options": {"type": "none", "device": "/srv", "o": "bind", "size": "1g"}}),
            "does not apply to type=none",
        ),
        (
            json!({"name": "v2", "options": {"type": "ext4", "device": "image", "size": "1m"}}),
            "at least 16m",
        ),
        (
            json!({"name": "v2", "options": {"type": "nfs", "device": ":/x", "o": "vers=4"}}),
            "needs the server",
        ),
        (json!({"name": "v2", "nope": 1}), "unknown field"),
    ] {
        let err = c.create(body.clone()).unwrap_err().to_string();
        assert!(err.contains(words), "{body}: {err}");
    }
    let made: Vec<_> = std::fs::read_dir(v.data_root().join("volumes"))
        .unwrap()
        .collect();
    assert!(made.is_empty(), "{made:?}");

    // The same name again: the same options return it, others are refused.
    c.create(json!({"name": "v3", "options": {"type": "tmpfs", "device": "tmpfs"}}))
        .unwrap();
    c.create(json!({"name": "v3", "options": {"type": "tmpfs", "device": "tmpfs"}}))
        .unwrap();
    let err = c
        .create(
            json!({"name": "v3", "options": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("exists with other options"), "{err}");
}

#[test]
fn a_data_dir_replaced_by_a_symlink_is_refused_not_followed() {
    let v = Volumed::start();
    let c = v.client.clone();
    let vol = c.create(json!({"name": "evil"})).unwrap();
    // Someone with access to the data root swaps _data for a link to /etc.
    let victim = v.host.dir().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), "keep me").unwrap();
    std::fs::remove_dir(&vol.mountpoint).unwrap();
    std::os::unix::fs::symlink(&victim, &vol.mountpoint).unwrap();
    let err = c.mount("evil", "a").unwrap_err().to_string();
    assert!(err.contains("not a plain directory"), "{err}");
    // Removing the volume removes the link, never what it points to.
    c.remove("evil").unwrap();
    assert_eq!(
        std::fs::read_to_string(victim.join("precious")).unwrap(),
        "keep me"
    );
}

#[test]
fn anonymous_volumes_are_pruned_by_default_and_named_ones_on_request() {
    let v = Volumed::start();
    let c = v.client.clone();
    let anon = c.create(json!({})).unwrap();
    assert_eq!(anon.name.len(), 64, "{}", anon.name);
    c.create(json!({"name": "keep"})).unwrap();
    c.create(json!({"name": "busy"})).unwrap();
    c.mount("busy", "x").unwrap();
    let pruned = v.cli(&["volume", "prune"]).unwrap();
    assert_eq!(pruned.trim(), anon.name);
    let pruned = v.cli(&["volume", "prune", "--all"]).unwrap();
    assert_eq!(pruned.trim(), "keep");
    let listed = v.cli(&["volume", "ls"]).unwrap();
    assert!(
        listed.contains("busy") && !listed.contains("keep"),
        "{listed}"
    );
}

#[test]
fn fifty_concurrent_mounts_by_fifty_ids_then_unmounts_end_unmounted() {
    let v = Volumed::start();
    let c = v.client.clone();
    let vol = c
        .create(json!({"name": "shared", "options": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let all = |path: &'static str| {
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..50 {
                let c = c.clone();
                set.spawn(async move {
                    let body = json!({ "id": format!("c{i}") });
                    c.call::<volumed::model::VolumeRecord>(
                        hyper::Method::POST,
                        &format!("/v1/volumes/shared/{path}"),
                        Some(&body),
                    )
                    .await
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap().unwrap();
            }
        })
    };
    all("mount");
    let held = c.volume("shared").unwrap();
    assert_eq!(held.references(), 50, "{:?}", held.refs);
    assert!(v.mounted(std::path::Path::new(&vol.mountpoint)));
    all("unmount");
    assert_eq!(c.volume("shared").unwrap().references(), 0);
    assert!(
        !v.mounted(std::path::Path::new(&vol.mountpoint)),
        "still mounted"
    );
}

#[test]
fn an_image_volume_has_its_size_on_any_filesystem_and_keeps_its_data() {
    let v = Volumed::start();
    let c = v.client.clone();
    let vol = c
        .create(
            json!({"name": "sized", "options": {"type": "ext4", "device": "image", "size": "32m"}}),
        )
        .unwrap();
    let data = std::path::PathBuf::from(&vol.mountpoint);
    c.mount("sized", "a").unwrap();
    assert!(v.mounted(&data), "not mounted at the first reference");
    let fs = v
        .host
        .run("findmnt", &["-rn", "-o", "FSTYPE", &vol.mountpoint])
        .unwrap();
    assert_eq!(fs.trim(), "ext4");
    // More than its size does not fit; the data root's filesystem is not touched.
    let big = v
        .host
        .command("dd")
        .args([
            "if=/dev/zero",
            &format!("of={}/big", vol.mountpoint),
            "bs=1M",
            "count=40",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&big.stderr);
    assert!(
        !big.status.success() && err.contains("No space left"),
        "{err}"
    );
    v.host
        .run("rm", &[&format!("{}/big", vol.mountpoint)])
        .unwrap();
    // Written inside the host's mount namespace, where the image is mounted.
    v.host
        .run(
            "sh",
            &["-c", &format!("echo still here > {}/kept", vol.mountpoint)],
        )
        .unwrap();
    c.unmount("sized", "a").unwrap();
    assert!(!v.mounted(&data), "still mounted after the last reference");
    let image = v.data_root().join("volumes/sized/image");
    let loops = v
        .host
        .run("losetup", &["-j", &image.display().to_string()])
        .unwrap();
    assert!(
        loops.trim().is_empty(),
        "the loop device was not freed: {loops}"
    );
    c.mount("sized", "b").unwrap();
    let kept = v
        .host
        .run("cat", &[&format!("{}/kept", vol.mountpoint)])
        .unwrap();
    assert_eq!(kept.trim(), "still here");
    c.unmount("sized", "b").unwrap();
    c.remove("sized").unwrap();
    assert!(!image.exists());
}

#[test]
fn volumes_of_a_fronted_plugin_are_made_mounted_and_removed_through_it() {
    let v = Volumed::start_with_args(false, |_| vec!["--remote-driver".into(), "dirvol".into()]);
    // The third party: plugin-api's example volume plugin, in the same host.
    let root = v.host.dir().join("dirvol-root");
    let bin = tests::example_binary("volume_driver").unwrap();
    let root_arg = root.display().to_string();
    let _plugin = v
        .host
        .spawn_plugin_at(
            "dirvol",
            &v.host.plugin_dir().join("dirvol.sock"),
            bin,
            &[
                "--name",
                "dirvol",
                "--root",
                &root_arg,
                "--socket-dir",
                "/run/docker/plugins",
            ],
        )
        .unwrap();
    let c = v.client.clone();
    let vol = c.create(json!({"name": "r1", "driver": "dirvol"})).unwrap();
    assert_eq!(vol.driver, "dirvol");
    assert!(root.join("r1").is_dir(), "the plugin did not make it");
    let mounted = c.mount("r1", "a").unwrap();
    assert_eq!(mounted.mountpoint, root.join("r1").display().to_string());
    let err = c.remove("r1").unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");
    let listed = v.cli(&["volume", "ls"]).unwrap();
    assert!(
        listed.contains("dirvol") && listed.contains("r1"),
        "{listed}"
    );
    c.unmount("r1", "a").unwrap();
    c.remove("r1").unwrap();
    assert!(!root.join("r1").exists(), "the plugin did not remove it");
    // The plugin's own refusal comes back in its words.
    let err = c
        .create(json!({"name": "r2", "driver": "dirvol", "options": {"x": "1"}}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("volume driver dirvol") && err.contains("unknown option"),
        "{err}"
    );
    let err = c
        .create(json!({"name": "r3", "driver": "nosuch"}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--remote-driver"), "{err}");
}

#[test]
fn a_kill_9_in_the_middle_of_mounts_keeps_every_acknowledged_reference() {
    let mut v = Volumed::start();
    let c = v.client.clone();
    let vol = c
        .create(json!({"name": "busy", "options": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}}))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let acked: Vec<String> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..50 {
            let c = c.clone();
            set.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(i)).await;
                let id = format!("c{i}");
                let body = json!({ "id": id });
                c.call::<volumed::model::VolumeRecord>(
                    hyper::Method::POST,
                    "/v1/volumes/busy/mount",
                    Some(&body),
                )
                .await
                .ok()
                .map(|_| id)
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let mut daemon = v.daemon.take().unwrap();
        daemon.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        let mut acked = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Some(id) = r.unwrap() {
                acked.push(id);
            }
        }
        daemon.wait_exit(std::time::Duration::from_secs(5)).unwrap();
        acked
    });
    v.launch();
    let after = v.client.volume("busy").unwrap();
    for id in &acked {
        assert_eq!(
            after.refs.get(id),
            Some(&1),
            "acknowledged {id} was lost: {:?}",
            after.refs
        );
    }
    assert!(after.references() <= 50);
    let data = std::path::PathBuf::from(&vol.mountpoint);
    assert_eq!(
        v.mounted(&data),
        after.references() > 0,
        "mounted does not follow the references ({} of them)",
        after.references()
    );
    let ids: Vec<String> = after.refs.keys().cloned().collect();
    for id in ids {
        v.client.unmount("busy", &id).unwrap();
    }
    assert!(!v.mounted(&data));
}

#[test]
fn a_second_volumed_on_the_same_data_root_stops_before_touching_anything() {
    let v = Volumed::start();
    let c = v.client.clone();
    c.create(json!({"name": "mine"})).unwrap();
    let other = v.host.dir().join("other");
    let out = v
        .host
        .command(env!("CARGO_BIN_EXE_volumed"))
        .arg("--socket")
        .arg(other.join("volumed.sock"))
        .args(["daemon", "--no-docker", "--state-dir"])
        .arg(other.join("state"))
        .arg("--data-root")
        .arg(v.data_root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second volumed started");
    assert!(err.contains("another volumed uses the data root"), "{err}");
    assert!(!other.join("volumed.sock").exists());
    assert!(c.volume("mine").is_ok());
}

/// volumed started as systemd starts it with socket activation: `listener` (the
/// API socket, held by the test) as descriptor 3, LISTEN_PID and LISTEN_FDS set.
fn spawn_activated(
    v: &Volumed,
    listener: &std::os::unix::net::UnixListener,
    socket: &std::path::Path,
) -> tests::Daemon {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let mut cmd = v.host.command("sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_volumed"))
        .arg("--socket")
        .arg(socket)
        .args(["daemon", "--no-docker", "--state-dir"])
        .arg(v.host.dir().join("activated-state"))
        .arg("--data-root")
        .arg(v.host.dir().join("activated-data"));
    // SAFETY: only fcntl/dup2, which are async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let high = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD(100))?;
            nix::unistd::dup2(high, 3)?;
            Ok(())
        });
    }
    tests::Daemon::spawn(
        "volumed-activated",
        cmd,
        &v.host.log_path("volumed-activated"),
    )
    .unwrap()
}

#[test]
fn requests_made_while_volumed_is_away_are_answered_when_it_is_back() {
    let v = Volumed::start();
    let socket = v.host.dir().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let client = volumed::client::Client::new(&socket);
    let mut daemon = spawn_activated(&v, &listener, &socket);
    let made = tests::wait_for(
        "volumed on the passed socket",
        std::time::Duration::from_secs(20),
        || {
            daemon.check_running()?;
            Ok(client.create(json!({"name": "before"})).ok())
        },
    );
    assert!(made.is_ok(), "{}", daemon.log());
    daemon.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    daemon.wait_exit(std::time::Duration::from_secs(5)).unwrap();
    let waiting = {
        let client = client.clone();
        std::thread::spawn(move || client.create(json!({"name": "while-away"})))
    };
    std::thread::sleep(std::time::Duration::from_millis(1000));
    if waiting.is_finished() {
        panic!("answered while volumed was away: {:?}", waiting.join());
    }
    let _back = spawn_activated(&v, &listener, &socket);
    let answered = waiting.join().unwrap();
    assert!(answered.is_ok(), "{answered:?}");
    assert!(client.volume("before").is_ok());
}
