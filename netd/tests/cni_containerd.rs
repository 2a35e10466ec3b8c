//! containerd's `ctr run --cni` with a conflist naming `netd-cni` (ctr reads
//! /etc/cni/net.d and /opt/cni/bin: the test host's mount namespace gets its
//! own of both): a container reaches another on the netd network, and the one
//! `ctr run` ran in the foreground is gone from netd when it ends.

mod common;

use common::Netd;
use std::time::Duration;

#[test]
fn ctr_run_with_cni_joins_a_netd_network() {
    let (netd, rt) = Netd::start_with_network("ctrnet", "10.82.0.0/24");
    let host = &netd.host;
    let dir = host.dir().to_path_buf();
    assert!(
        std::path::Path::new("/etc/cni/net.d").is_dir(),
        "/etc/cni/net.d is missing: install containernetworking-plugins (scripts/deps.sh)"
    );
    // Only inside the host's mount namespace.
    host.run("mount", &["-t", "tmpfs", "cni-conf", "/etc/cni/net.d"])
        .unwrap();
    host.run("mount", &["-t", "tmpfs", "cni-opt", "/opt"])
        .unwrap();
    host.run("mkdir", &["-p", "/opt/cni/bin"]).unwrap();
    let plugin = tests::workspace_binary("netd-cni").unwrap();
    host.run(
        "ln",
        &["-s", plugin.to_str().unwrap(), "/opt/cni/bin/netd-cni"],
    )
    .unwrap();
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "ctrnet",
        "plugins": [{"type": "netd-cni", "socket": dir.join("netd.sock")}],
    });
    let conf = dir.join("10-ctrnet.conflist");
    std::fs::write(&conf, list.to_string()).unwrap();
    host.run("cp", &[conf.to_str().unwrap(), "/etc/cni/net.d/"])
        .unwrap();

    // containerd with its state in the host's directory.
    let socket = dir.join("containerd.sock");
    let config = dir.join("containerd.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n",
            dir.join("containerd-root").display(),
            dir.join("containerd-state").display(),
            socket.display()
        ),
    )
    .unwrap();
    let _containerd = host
        .spawn(
            "containerd",
            "containerd",
            &["--config", config.to_str().unwrap()],
        )
        .unwrap();
    let ctr = |args: &[&str]| host.run("ctr", &[&["-a", socket.to_str().unwrap()], args].concat());
    tests::wait_for("containerd", Duration::from_secs(20), || {
        Ok(ctr(&["version"]).is_ok().then_some(()))
    })
    .unwrap();
    let tar = tests::busybox_rootfs_tar(&dir).unwrap();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    host.run(
        "tar",
        &["-C", rootfs.to_str().unwrap(), "-xf", tar.to_str().unwrap()],
    )
    .unwrap();
    let rootfs = rootfs.to_str().unwrap();

    ctr(&[
        "run",
        "-d",
        "--cni",
        "--rootfs",
        rootfs,
        "web",
        "/bin/httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ])
    .unwrap();
    let inspect = rt.block_on(netd.client.network("ctrnet")).unwrap();
    assert_eq!(inspect.endpoints.len(), 1, "{:?}", inspect.endpoints);
    let web = inspect.endpoints[0].addresses[0].addr().to_string();
    // A second container, in the foreground, fetches from the first.
    let url = format!("http://{web}/passwd");
    let page = tests::wait_for("the web container answers", Duration::from_secs(10), || {
        let out = ctr(&[
            "run",
            "--rm",
            "--cni",
            "--rootfs",
            rootfs,
            "fetch",
            "/bin/wget",
            "-qO-",
            &url,
        ]);
        Ok(out.ok().filter(|p| p.contains("root:")))
    })
    .unwrap();
    assert!(page.contains("root:"), "{page}");
    // ctr took the foreground one out of netd (CNI DEL) when it ended.
    let sandboxes = rt.block_on(netd.client.sandboxes()).unwrap();
    let names: Vec<&str> = sandboxes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cni-default-web"], "{names:?}");
    let _ = ctr(&["task", "kill", "-s", "KILL", "web"]);
}
