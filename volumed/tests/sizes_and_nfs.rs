//! A size on a plain volume (a project quota, as Docker) and NFS volumes: what
//! works where the kernel has it, and a clear error naming what is missing where
//! it does not (this machine's kernel has neither XFS quota nor an NFS client).

mod common;

use common::{Calls, Volumed};
use serde_json::json;
use std::path::Path;

fn nothing_made(v: &Volumed) {
    let made: Vec<_> = std::fs::read_dir(v.data_root().join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(made.is_empty(), "left behind: {made:?}");
}

#[test]
fn a_size_on_a_plain_volume_is_a_project_quota_or_an_error_naming_what_is_missing() {
    let mut v = Volumed::start();
    let c = v.client.clone();
    let root = v.data_root().display().to_string();
    let fstype = v
        .host
        .run("findmnt", &["-rn", "-o", "FSTYPE", "-T", &root])
        .unwrap();
    let fstype = fstype.trim();
    if fstype != "xfs" {
        let err = c
            .create(json!({"name": "q0", "options": {"size": "10m"}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("is on {fstype}"))
                && err.contains("prjquota")
                && err.contains("type=ext4 device=image size=10m"),
            "{err}"
        );
        nothing_made(&v);
    }

    // The data root on an XFS filesystem of its own (an image, in the host's
    // mount namespace), with prjquota where the kernel takes it.
    v.kill_9();
    let image = v.host.dir().join("xfs.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(320 << 20)
        .unwrap();
    let image = image.display().to_string();
    v.host
        .run("mkfs.xfs", &["-q", "-f", &image])
        .expect("mkfs.xfs (xfsprogs) is needed for this test");
    let with_quota = v
        .host
        .command("mount")
        .args(["-o", "loop,prjquota", &image, &root])
        .output()
        .unwrap();
    if with_quota.status.success() {
        v.launch();
        let c = v.client.clone();
        let vol = c
            .create(json!({"name": "q1", "options": {"size": "10m"}}))
            .unwrap();
        c.mount("q1", "a").unwrap();
        let write = |mb: u32| {
            v.host
                .command("dd")
                .args([
                    "if=/dev/zero",
                    &format!("of={}/f{mb}", vol.mountpoint),
                    "bs=1M",
                    &format!("count={mb}"),
                    "conv=fsync",
                ])
                .output()
                .unwrap()
        };
        assert!(write(4).status.success(), "4 MiB under a 10 MiB quota");
        let over = write(20);
        let err = String::from_utf8_lossy(&over.stderr);
        assert!(
            !over.status.success()
                && (err.contains("quota exceeded") || err.contains("No space left")),
            "20 MiB went into a 10 MiB volume: {err}"
        );
        c.unmount("q1", "a").unwrap();
        c.remove("q1").unwrap();
        nothing_made(&v);
        return;
    }
    eprintln!(
        "this kernel does not mount XFS with prjquota ({}): checking that volumed names what is missing",
        String::from_utf8_lossy(&with_quota.stderr).trim()
    );
    v.host.run("mount", &["-o", "loop", &image, &root]).unwrap();
    v.launch();
    let err = v
        .client
        .create(json!({"name": "q2", "options": {"size": "10m"}}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is on xfs mounted without prjquota"), "{err}");
    if !Path::new("/proc/fs/xfs/xqm").exists() {
        assert!(err.contains("CONFIG_XFS_QUOTA"), "{err}");
    }
    nothing_made(&v);
}

#[test]
fn an_xfs_image_volume_holds_its_size() {
    let v = Volumed::start();
    let c = v.client.clone();
    let err = c
        .create(
            json!({"name": "x0", "options": {"type": "xfs", "device": "image", "size": "100m"}}),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 300m"), "{err}");
    let vol = c
        .create(
            json!({"name": "x1", "options": {"type": "xfs", "device": "image", "size": "300m"}}),
        )
        .unwrap();
    c.mount("x1", "a").unwrap();
    let fs = v
        .host
        .run("df", &["--output=fstype,size", "-B1M", &vol.mountpoint])
        .unwrap();
    let last = fs.lines().last().unwrap_or_default().to_string();
    let mut cols = last.split_whitespace();
    assert_eq!(cols.next(), Some("xfs"), "{fs}");
    let size: u64 = cols.next().unwrap().parse().unwrap();
    assert!((200..=300).contains(&size), "an xfs of {size} MiB: {fs}");
    c.unmount("x1", "a").unwrap();
    assert!(!v.mounted(Path::new(&vol.mountpoint)));
    c.remove("x1").unwrap();
    nothing_made(&v);
}

#[test]
fn an_nfs_volume_is_checked_at_create_and_mounted_at_first_use() {
    let v = Volumed::start();
    let c = v.client.clone();
    for (options, words) in [
        (
            json!({"type": "nfs", "device": ":/export", "o": "vers=4"}),
            "needs the server",
        ),
        (
            json!({"type": "nfs", "device": "/export", "o": "addr=10.0.0.1"}),
            "needs the export as :/path",
        ),
        (
            json!({"type": "nfs", "device": ":/export", "o": "addr=10.0.0.1", "size": "1g"}),
            "does not apply to type=nfs",
        ),
    ] {
        let err = c
            .create(json!({"name": "n0", "options": options}))
            .unwrap_err()
            .to_string();
        assert!(err.contains(words), "{options}: {err}");
    }
    nothing_made(&v);

    // As with Docker, the server is not asked at create: at the first mount.
    c.create(json!({"name": "n1", "options": {"type": "nfs", "device": ":/export", "o": "addr=no-such-server.invalid,vers=4"}}))
        .unwrap();
    let err = c.mount("n1", "a").unwrap_err().to_string();
    assert!(
        err.contains("addr=no-such-server.invalid") && err.contains("does not resolve"),
        "{err}"
    );
    assert_eq!(c.volume("n1").unwrap().references(), 0);

    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap();
    let has_nfs = filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("nfs"));
    c.create(json!({"name": "n2", "options": {"type": "nfs", "device": ":/export", "o": "addr=127.0.0.1,vers=4,soft,timeo=10,retrans=1"}}))
        .unwrap();
    let err = c.mount("n2", "a").unwrap_err().to_string();
    if has_nfs {
        // No server in the test host: the mount fails and no reference is kept.
        assert!(err.contains("mounting"), "{err}");
    } else {
        eprintln!("this kernel has no NFS client: checking that volumed says so");
        assert!(err.contains("this kernel has no nfs filesystem"), "{err}");
    }
    assert_eq!(c.volume("n2").unwrap().references(), 0);
    assert!(!v.mounted(&v.data_root().join("volumes/n2/_data")));
    c.remove("n1").unwrap();
    c.remove("n2").unwrap();
    nothing_made(&v);
}
