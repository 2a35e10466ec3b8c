//! The busybox image the engine tests run: a rootfs made from Debian's busybox-static
//! and imported with `docker import`, so no registry is ever contacted.

use crate::process::output;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's busybox-static installs a statically linked busybox here.
const BUSYBOX: &str = "/bin/busybox";

fn is_static_elf(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // A dynamic executable names its loader in a PT_INTERP segment.
    Ok(bytes.starts_with(b"\x7fELF")
        && !bytes.windows(b"/ld-linux".len()).any(|w| w == b"/ld-linux"))
}

/// Build `<dir>/busybox.tar`: a root filesystem with a static busybox, a symlink per
/// applet in /bin, and minimal /etc files. Returns the tarball's path.
pub fn busybox_rootfs_tar(dir: &Path) -> Result<PathBuf> {
    let busybox = Path::new(BUSYBOX);
    if !busybox.exists() || !is_static_elf(busybox)? {
        bail!("{BUSYBOX} is missing or not static: install Debian's busybox-static");
    }
    let root = dir.join("busybox-rootfs");
    for sub in ["bin", "etc", "tmp", "proc", "sys", "dev", "data"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    let applets = output(Command::new(BUSYBOX).arg("--list"))?;
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = root.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)?;
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    let tar = dir.join("busybox.tar");
    output(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )?;
    std::fs::remove_dir_all(&root)?;
    Ok(tar)
}
