//! What the runtime tests share: CNI directories for podman, runc bundles with
//! netd's OCI hooks.

use super::Netd;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// A CNI plugin directory with `netd-cni`, and a conflist for CNI network
/// `name` (netd's `network`, if another) in a network directory; the two
/// directories.
pub fn cni_dirs(netd: &Netd, name: &str, network: Option<&str>) -> (PathBuf, PathBuf) {
    let bin = netd.host.dir().join("cni-bin");
    let conf = netd.host.dir().join("cni-net");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&conf).unwrap();
    let plugin = tests::workspace_binary("netd-cni").unwrap();
    let _ = std::fs::remove_file(bin.join("netd-cni"));
    std::os::unix::fs::symlink(plugin, bin.join("netd-cni")).unwrap();
    let mut list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "netd-cni",
            "socket": netd.host.dir().join("netd.sock"),
            "capabilities": {"portMappings": true, "mac": true, "ips": true, "aliases": true},
        }],
    });
    if let Some(network) = network {
        list["plugins"][0]["network"] = serde_json::json!(network);
    }
    std::fs::write(conf.join(format!("{name}.conflist")), list.to_string()).unwrap();
    (bin, conf)
}

/// A runc bundle in `dir` running `args`, with `annotations` and netd's hooks.
pub fn bundle(netd: &Netd, dir: &Path, args: &[&str], annotations: Value) -> PathBuf {
    let bundle = dir.to_path_buf();
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let tar = tests::busybox_rootfs_tar(&bundle).unwrap();
    netd.host
        .run(
            "tar",
            &["-C", rootfs.to_str().unwrap(), "-xf", tar.to_str().unwrap()],
        )
        .unwrap();
    netd.host
        .run("runc", &["spec", "--bundle", bundle.to_str().unwrap()])
        .unwrap();
    let path = bundle.join("config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let bin = tests::workspace_binary("netd").unwrap();
    let socket = netd.host.dir().join("netd.sock");
    let hook = |stage: &str| {
        json!([{
            "path": bin,
            "args": ["netd", "--socket", socket, "oci-hook", stage],
        }])
    };
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(args);
    spec["annotations"] = annotations;
    spec["hooks"] = json!({"createRuntime": hook("create"), "poststop": hook("poststop")});
    // Named as the host: a run killed midway leaves a cgroup the harness's
    // sweep of dead tests' hosts removes, with what runs in it.
    spec["linux"]["cgroupsPath"] = json!(format!("/{}", netd.host.name()));
    std::fs::write(&path, spec.to_string()).unwrap();
    bundle
}

/// `runc --root ... args`, its stdio away from the test's: a detached
/// container keeps what it was given, so its stderr goes to a file, not a pipe
/// the test would wait on.
pub fn runc(netd: &Netd, args: &[&str]) -> Result<(), String> {
    let root = netd.host.dir().join("runc");
    let log = netd.host.dir().join("runc.stderr");
    let status = netd
        .host
        .command("runc")
        .arg("--root")
        .arg(&root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    if status.success() {
        Ok(())
    } else {
        Err(std::fs::read_to_string(&log).unwrap_or_default())
    }
}

/// Container `id`, deleted (killed if running) when dropped, also when the
/// test fails: it runs in a namespace of its own, which the host's teardown
/// does not reach.
pub struct Container<'a>(pub &'a Netd, pub &'static str);

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = runc(self.0, &["delete", "--force", self.1]);
    }
}
