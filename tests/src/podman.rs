//! Debian's podman inside a test host, with its CNI network backend: storage,
//! run state and configuration in the host's directory, CNI plugins and
//! network configurations from directories the test gives, and the busybox
//! image imported (no registry is contacted).

use crate::host::TestHost;
use crate::image::busybox_rootfs_tar;
use crate::process::output;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// podman in a test host. Dropping it removes its containers.
pub struct Podman<'h> {
    host: &'h TestHost,
    dir: PathBuf,
    net_dir: PathBuf,
}

/// What `podman run` needs on this machine: podman's default open-file limit
/// is above the machine's hard limit, and runc then refuses to start.
pub const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

impl<'h> Podman<'h> {
    /// podman in `host`, finding CNI plugins in `plugin_dir` and network
    /// configurations (conflists) in `net_dir`; the image `localhost/busybox`.
    pub fn new(host: &'h TestHost, plugin_dir: &Path, net_dir: &Path) -> Result<Podman<'h>> {
        let dir = host.dir().join("podman");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
                plugin_dir.display(),
                net_dir.display()
            ),
        )?;
        let podman = Podman {
            host,
            dir,
            net_dir: net_dir.to_path_buf(),
        };
        let tar = busybox_rootfs_tar(&podman.dir)?;
        podman
            .run(&[
                "import",
                "--change",
                r#"CMD ["sh"]"#,
                &tar.display().to_string(),
                "localhost/busybox:latest",
            ])
            .context("importing the busybox image")?;
        std::fs::remove_file(tar)?;
        Ok(podman)
    }

    /// A `podman` command with this instance's settings (no arguments yet).
    pub fn command(&self) -> Command {
        let mut cmd = self.host.command("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs", "--network-backend", "cni"])
            .arg("--network-config-dir")
            .arg(&self.net_dir)
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        cmd
    }

    /// Run `podman args...`; its stdout, or an error with its stderr.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        output(self.command().args(args))
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        // Each container's network is taken down through its CNI DEL.
        let _ = output(
            self.command()
                .args(["rm", "--force", "--all", "--time", "0"]),
        );
    }
}
