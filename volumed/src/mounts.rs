//! The kernel side of a volume's backing: mount it on `_data` at the first
//! reference, unmount at the last, and what the mount table says.

use crate::options::Backing;
use crate::VolumeError;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::Path;

/// Mount `backing` on `target` (its `_data`).
pub fn attach(backing: &Backing, target: &Path) -> Result<(), VolumeError> {
    let doing = format!("mounting {}", target.display());
    match backing {
        Backing::Plain | Backing::Quota { .. } => Ok(()),
        Backing::Nfs {
            fstype,
            device,
            options,
        } => {
            let options = resolve_addr(options)?;
            mount(
                Some(device.as_str()),
                target,
                Some(fstype.as_str()),
                MsFlags::empty(),
                Some(options.as_str()),
            )
            .map_err(|e| match e {
                nix::errno::Errno::ENODEV => VolumeError::Invalid(format!(
                    "{doing}: this kernel has no {fstype} filesystem (not in /proc/filesystems): load the nfs module or use a host that has it"
                )),
                other => mount_error(format!("{doing} from {device}"), other),
            })
        }
        Backing::Tmpfs { options } => mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::empty(),
            (!options.is_empty()).then_some(options.as_str()),
        )
        .map_err(|e| mount_error(doing, e)),
        Backing::Image {
            fstype, options, ..
        } => {
            let image = target.parent().map(|p| p.join("image")).ok_or_else(|| {
                VolumeError::Invalid(format!("{} has no parent", target.display()))
            })?;
            crate::image::attach(&image, fstype, options, target)
        }
        Backing::Bind { device, options } => {
            let mut flags = MsFlags::MS_BIND;
            if options.split(',').any(|o| o == "rbind") {
                flags |= MsFlags::MS_REC;
            }
            mount(
                Some(device.as_str()),
                target,
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(|e| mount_error(format!("{doing} from {device}"), e))?;
            if options.split(',').any(|o| o == "ro") {
                let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                if let Err(e) = mount(None::<&str>, target, None::<&str>, ro, None::<&str>) {
                    let _ = umount2(target, MntFlags::MNT_DETACH);
                    return Err(mount_error(
                        format!("making {} read-only", target.display()),
                        e,
                    ));
                }
            }
            Ok(())
        }
    }
}

/// `o` with a server name in `addr=` replaced by its address: the kernel takes
/// addresses only (Docker resolves it the same way, at mount).
fn resolve_addr(options: &str) -> Result<String, VolumeError> {
    let mut out = Vec::new();
    for o in options.split(',') {
        match o.strip_prefix("addr=") {
            Some(host) if host.parse::<std::net::IpAddr>().is_err() => {
                use std::net::ToSocketAddrs;
                let ip = (host, 0)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        VolumeError::Invalid(format!(
                            "addr={host}: the NFS server's name does not resolve"
                        ))
                    })?
                    .ip();
                out.push(format!("addr={ip}"));
            }
            _ => out.push(o.to_string()),
        }
    }
    Ok(out.join(","))
}

fn mount_error(doing: String, e: nix::errno::Errno) -> VolumeError {
    match e {
        nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR | nix::errno::Errno::EINVAL => {
            VolumeError::Invalid(format!(
                "{doing}: {e} (check the volume's device and o options)"
            ))
        }
        other => VolumeError::errno(doing)(other),
    }
}

/// Unmount `target` (nothing mounted there is not an error).
pub fn detach(target: &Path) -> Result<(), VolumeError> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(VolumeError::errno(format!(
            "unmounting {}",
            target.display()
        ))(e)),
    }
}

/// Whether something is mounted on `target`, from /proc/self/mountinfo.
pub fn is_mounted(target: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = target.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|point| unescape(point) == want)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let n = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
