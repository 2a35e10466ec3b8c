//! Volumes with a size on any host filesystem: each is its own filesystem image
//! (`NAME/image`, sparse, made with mkfs at create), attached to a free loop
//! device with autoclear at the first reference and mounted on `_data`; the last
//! unmount frees the loop device. A full volume answers "no space left", like a
//! disk, and never fills the data root's filesystem beyond its size.
//!
//! The loop ioctls are not in libc: the two structs are written out here, as
//! `linux/loop.h` has them.

use crate::VolumeError;
use nix::mount::mount;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

const LOOP_CTL_GET_FREE: u64 = 0x4C82;
const LOOP_CONFIGURE: u64 = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// The smallest image size accepted for `fstype` (mkfs needs room for its own
/// metadata; mkfs.xfs refuses less than 300 MiB).
pub fn min_size(fstype: &str) -> u64 {
    if fstype == "xfs" {
        300 << 20
    } else {
        16 << 20
    }
}

/// Make `image`, `size` bytes (sparse), and a `fstype` filesystem in it.
pub fn make(image: &Path, fstype: &str, size: u64) -> Result<(), VolumeError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(VolumeError::io(format!("making {}", image.display())))?;
    file.set_len(size)
        .map_err(VolumeError::io(format!("sizing {}", image.display())))?;
    drop(file);
    let mkfs = format!("mkfs.{fstype}");
    let out = std::process::Command::new(&mkfs)
        // Both: quiet, and make it in a regular file without asking.
        .args(["-q", if fstype == "xfs" { "-f" } else { "-F" }])
        .arg(image)
        .output();
    let refused = |why: String| {
        let _ = std::fs::remove_file(image);
        VolumeError::Invalid(why)
    };
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(refused(format!(
            "{mkfs} could not make the volume's filesystem: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(refused(format!(
            "type={fstype} device=image needs {mkfs}, which is not installed (e2fsprogs for ext4, xfsprogs for xfs)"
        ))),
        Err(e) => Err(VolumeError::Io {
            doing: format!("running {mkfs}"),
            source: e,
        }),
    }
}

fn ioctl_error(doing: &str) -> VolumeError {
    VolumeError::Io {
        doing: doing.to_string(),
        source: std::io::Error::last_os_error(),
    }
}

/// Attach `image` to a free loop device (autoclear: it is freed when the last
/// mount of it goes) and mount it on `target`.
pub fn attach(image: &Path, fstype: &str, options: &str, target: &Path) -> Result<(), VolumeError> {
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(VolumeError::io(format!("opening {}", image.display())))?;
    let control = File::open("/dev/loop-control").map_err(VolumeError::io(
        "opening /dev/loop-control (is the loop module loaded?)",
    ))?;
    // Another process may take the device between GET_FREE and CONFIGURE: try a
    // few times.
    for _ in 0..8 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
        let n = unsafe { nix::libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(ioctl_error("finding a free loop device"));
        }
        let path = format!("/dev/loop{n}");
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(VolumeError::io(format!("opening {path}")))?;
        let config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR,
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, laid out above.
        let r = unsafe {
            nix::libc::ioctl(
                device.as_raw_fd(),
                LOOP_CONFIGURE as _,
                &config as *const LoopConfig,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(nix::libc::EBUSY) {
                continue;
            }
            return Err(VolumeError::Io {
                doing: format!("attaching {} to {path}", image.display()),
                source: e,
            });
        }
        let (flags, data) = crate::mounts::split_options(options);
        let mounted = mount(
            Some(path.as_str()),
            target,
            Some(fstype),
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        );
        // The device stays attached while mounted (autoclear frees it after the
        // last unmount, or now if the mount failed and this descriptor closes).
        drop(device);
        return mounted.map_err(|e| VolumeError::Io {
            doing: format!("mounting {path} on {}", target.display()),
            source: e.into(),
        });
    }
    Err(VolumeError::Io {
        doing: format!("attaching {}", image.display()),
        source: std::io::Error::other("every free loop device was taken by others meanwhile"),
    })
}
