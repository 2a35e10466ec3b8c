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
            let (flags, data) = split_options(&resolve_addr(options)?);
            mount(
                Some(device.as_str()),
                target,
                Some(fstype.as_str()),
                flags,
                Some(data.as_str()),
            )
            .map_err(|e| match e {
                nix::errno::Errno::ENODEV => VolumeError::Invalid(format!(
                    "{doing}: this kernel has no {fstype} filesystem (not in /proc/filesystems): load the nfs module or use a host that has it"
                )),
                other => mount_error(format!("{doing} from {device}"), other),
            })
        }
        Backing::Tmpfs { options } => {
            let (flags, data) = split_options(options);
            mount(
                Some("tmpfs"),
                target,
                Some("tmpfs"),
                flags,
                (!data.is_empty()).then_some(data.as_str()),
            )
            .map_err(|e| mount_error(doing, e))
        }
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

/// `o` split as mount(8) and Docker split it: the generic options (`ro`,
/// `noatime`, `nosuid`, ...) become mount flags, which the kernel refuses as
/// text; the rest is the filesystem's own data.
pub fn split_options(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|x| !x.is_empty()) {
        let (set, flag) = match opt {
            "defaults" => continue,
            "ro" => (true, MsFlags::MS_RDONLY),
            "rw" => (false, MsFlags::MS_RDONLY),
            "nosuid" => (true, MsFlags::MS_NOSUID),
            "suid" => (false, MsFlags::MS_NOSUID),
            "nodev" => (true, MsFlags::MS_NODEV),
            "dev" => (false, MsFlags::MS_NODEV),
            "noexec" => (true, MsFlags::MS_NOEXEC),
            "exec" => (false, MsFlags::MS_NOEXEC),
            "sync" => (true, MsFlags::MS_SYNCHRONOUS),
            "async" => (false, MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (true, MsFlags::MS_DIRSYNC),
            "mand" => (true, MsFlags::MS_MANDLOCK),
            "nomand" => (false, MsFlags::MS_MANDLOCK),
            "noatime" => (true, MsFlags::MS_NOATIME),
            "atime" => (false, MsFlags::MS_NOATIME),
            "nodiratime" => (true, MsFlags::MS_NODIRATIME),
            "diratime" => (false, MsFlags::MS_NODIRATIME),
            "relatime" => (true, MsFlags::MS_RELATIME),
            "norelatime" => (false, MsFlags::MS_RELATIME),
            "strictatime" => (true, MsFlags::MS_STRICTATIME),
            "nostrictatime" => (false, MsFlags::MS_STRICTATIME),
            other => {
                data.push(other);
                continue;
            }
        };
        flags.set(flag, set);
    }
    (flags, data.join(","))
}

/// `o` with a server name in `addr=` replaced by its address: the kernel takes
/// addresses only (Docker resolves it the same way, at mount, preferring IPv4).
fn resolve_addr(options: &str) -> Result<String, VolumeError> {
    let mut out = Vec::new();
    for o in options.split(',') {
        match o.strip_prefix("addr=") {
            Some(host) if host.parse::<std::net::IpAddr>().is_err() => {
                use std::net::ToSocketAddrs;
                let found: Vec<std::net::IpAddr> = (host, 0)
                    .to_socket_addrs()
                    .map(|a| a.map(|a| a.ip()).collect())
                    .unwrap_or_default();
                let ip = found
                    .iter()
                    .find(|ip| ip.is_ipv4())
                    .or(found.first())
                    .ok_or_else(|| {
                        VolumeError::Invalid(format!(
                            "addr={host}: the NFS server's name does not resolve"
                        ))
                    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_options_become_flags_and_the_rest_stays_data() {
        let (flags, data) = split_options("addr=10.0.0.1,rw,noatime,nosuid,vers=4,ro");
        assert_eq!(
            flags,
            MsFlags::MS_NOATIME | MsFlags::MS_NOSUID | MsFlags::MS_RDONLY
        );
        assert_eq!(data, "addr=10.0.0.1,vers=4");
        let (flags, data) = split_options("size=64m,mode=0700,noexec,exec");
        assert_eq!(flags, MsFlags::empty());
        assert_eq!(data, "size=64m,mode=0700");
    }
}
