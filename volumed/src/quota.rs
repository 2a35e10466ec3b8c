//! `size` on a plain volume, as Docker's `local` driver does it: a project quota
//! on the volume's `_data`, where the data root's filesystem is XFS (or ext4)
//! mounted with `prjquota`. Each such volume gets a project ID of its own, with
//! PROJINHERIT so everything made inside counts, and a hard block limit.
//!
//! Where that cannot work, `probe` says exactly what is missing (the filesystem,
//! the mount option, or the kernel's quota support) so `create` can name it.
//!
//! The structs are written out as `linux/fs.h` and `linux/dqblk_xfs.h` have
//! them; `quotactl_fd` (Linux 5.14) takes a descriptor, so no block device node
//! needs making, unlike `quotactl`.

use crate::paths::DataRoot;
use crate::VolumeError;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Mutex;

const FS_IOC_FSGETXATTR: u64 = 0x801c_581f;
const FS_IOC_FSSETXATTR: u64 = 0x401c_5820;
const FS_XFLAG_PROJINHERIT: u32 = 0x200;
const PRJQUOTA: u32 = 2;
const Q_XGETQUOTA: u32 = (b'X' as u32) << 8 | 3;
const Q_XSETQLIM: u32 = (b'X' as u32) << 8 | 4;
const FS_DQUOT_VERSION: i8 = 1;
const FS_PROJ_QUOTA: i8 = 2;
const FS_DQ_BSOFT: u16 = 1 << 2;
const FS_DQ_BHARD: u16 = 1 << 3;

/// `struct fsxattr`.
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

/// `struct fs_disk_quota`.
#[repr(C)]
#[derive(Default)]
struct FsDiskQuota {
    version: i8,
    flags: i8,
    fieldmask: u16,
    id: u32,
    blk_hardlimit: u64,
    blk_softlimit: u64,
    ino_hardlimit: u64,
    ino_softlimit: u64,
    bcount: u64,
    icount: u64,
    itimer: i32,
    btimer: i32,
    iwarns: u16,
    bwarns: u16,
    timer_hi: [i8; 3],
    padding2: i8,
    rtb_hardlimit: u64,
    rtb_softlimit: u64,
    rtbcount: u64,
    rtbtimer: i32,
    rtbwarns: u16,
    padding3: i16,
    padding4: [u8; 8],
}

fn qcmd(cmd: u32) -> u32 {
    (cmd << 8) | PRJQUOTA
}

fn quotactl_fd(fd: BorrowedFd<'_>, cmd: u32, id: u32, dq: &mut FsDiskQuota) -> std::io::Result<()> {
    // SAFETY: quotactl_fd reads or writes one `struct fs_disk_quota`, laid out
    // above, through the pointer for the Q_X* commands used here.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_quotactl_fd,
            fd.as_raw_fd(),
            qcmd(cmd),
            id,
            dq as *mut FsDiskQuota,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn get_xattr(fd: BorrowedFd<'_>) -> std::io::Result<FsXattr> {
    let mut x = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR fills one `struct fsxattr`.
    let r = unsafe { nix::libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR as _, &mut x) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(x)
}

fn set_xattr(fd: BorrowedFd<'_>, x: &FsXattr) -> std::io::Result<()> {
    // SAFETY: FS_IOC_FSSETXATTR reads one `struct fsxattr`.
    let r = unsafe { nix::libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR as _, x) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Project quotas under a data root that has them.
#[derive(Debug)]
pub struct ProjectQuota {
    /// The next project ID to hand out.
    next: Mutex<u32>,
}

/// The filesystem the data root is on, from the mount table: its type and its
/// superblock options.
fn filesystem_of(root: &DataRoot) -> Option<(String, String)> {
    let st = nix::sys::stat::fstat(root.fd().as_raw_fd()).ok()?;
    let dev = format!(
        "{}:{}",
        nix::sys::stat::major(st.st_dev),
        nix::sys::stat::minor(st.st_dev)
    );
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.nth(2)? != dev {
            return None;
        }
        let (_, after) = line.split_once(" - ")?;
        let mut rest = after.split(' ');
        let fstype = rest.next()?.to_string();
        let _source = rest.next()?;
        Some((fstype, rest.next().unwrap_or("").to_string()))
    })
}

impl ProjectQuota {
    /// Project quota under `root`, where the volumes named `sized` already hold
    /// project IDs, or what is missing for it (a sentence to go into an error).
    pub fn probe(root: &DataRoot, sized: &[String]) -> Result<ProjectQuota, String> {
        let where_ = root.path().display();
        let Some((fstype, options)) = filesystem_of(root) else {
            return Err(format!(
                "the filesystem under {where_} is not in the mount table"
            ));
        };
        if fstype != "xfs" && fstype != "ext4" {
            return Err(format!(
                "{where_} is on {fstype}: project quota needs XFS (or ext4) mounted with prjquota"
            ));
        }
        let options: Vec<&str> = options.split(',').collect();
        if options.contains(&"pqnoenforce") {
            return Err(format!(
                "{where_} is on {fstype} mounted with pqnoenforce (project quota counted, not enforced): mount it with prjquota"
            ));
        }
        if !options.contains(&"prjquota") {
            let kernel = if fstype == "xfs" && !std::path::Path::new("/proc/fs/xfs/xqm").exists() {
                " (and this kernel has no XFS quota support: CONFIG_XFS_QUOTA is off, /proc/fs/xfs/xqm is missing)"
            } else {
                ""
            };
            return Err(format!(
                "{where_} is on {fstype} mounted without prjquota{kernel}"
            ));
        }
        let mut dq = FsDiskQuota::default();
        match quotactl_fd(root.fd(), Q_XGETQUOTA, 0, &mut dq) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSYS) => {
                return Err("this kernel has no quotactl_fd (Linux 5.14 or later is needed)".into())
            }
            Err(e) => return Err(format!("project quota under {where_} does not answer: {e}")),
        }
        // The project ID of `ROOT/volumes` is the floor (an operator can
        // reserve the IDs below by setting it); sized volumes keep theirs. Only
        // their directories are read: never a mounted volume's.
        let floor = get_xattr(root.fd()).map(|x| x.projid).unwrap_or(0);
        let highest = sized
            .iter()
            .filter_map(|name| root.open_data(name).ok())
            .filter_map(|fd| get_xattr(fd.as_fd()).ok())
            .map(|x| x.projid)
            .max()
            .unwrap_or(0);
        Ok(ProjectQuota {
            next: Mutex::new(floor.max(highest)),
        })
    }

    /// A project ID nobody on the filesystem uses: no limit and no usage
    /// recorded for it (dockerd or an operator may hold IDs on the same
    /// filesystem).
    fn free_id(&self, fd: BorrowedFd<'_>) -> Result<u32, VolumeError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..10_000 {
            let id = next.checked_add(1).ok_or_else(|| {
                VolumeError::Conflict("no project ID is left above the data root's".into())
            })?;
            *next = id;
            let mut dq = FsDiskQuota::default();
            let free = match quotactl_fd(fd, Q_XGETQUOTA, id, &mut dq) {
                Err(e) => e.raw_os_error() == Some(nix::libc::ENOENT),
                Ok(()) => {
                    dq.blk_hardlimit == 0
                        && dq.blk_softlimit == 0
                        && dq.ino_hardlimit == 0
                        && dq.bcount == 0
                        && dq.icount == 0
                }
            };
            if free {
                return Ok(id);
            }
        }
        Err(VolumeError::Conflict(
            "10,000 project IDs in a row are in use on the data root's filesystem".into(),
        ))
    }

    /// Hold volume `name`'s `_data` to `bytes`: a project of its own (given at
    /// the first call, kept after), PROJINHERIT, and the limit, set again at
    /// each call (as Docker does at each mount: another program may have reset
    /// it).
    pub fn limit(&self, root: &DataRoot, name: &str, bytes: u64) -> Result<(), VolumeError> {
        let data = root.open_data(name)?;
        let io = |what: &str| VolumeError::io(format!("{what} of volume {name}"));
        let mut x = get_xattr(data.as_fd()).map_err(io("reading the project"))?;
        if x.projid == 0 || x.xflags & FS_XFLAG_PROJINHERIT == 0 {
            x.projid = self.free_id(data.as_fd())?;
            x.xflags |= FS_XFLAG_PROJINHERIT;
            set_xattr(data.as_fd(), &x).map_err(io("setting the project"))?;
        }
        set_limit(data.as_fd(), x.projid, bytes).map_err(io("setting the quota"))
    }

    /// Lift the limit of volume `name`'s project and take the project off its
    /// `_data` (before its record and data go).
    pub fn clear(&self, root: &DataRoot, name: &str) {
        let Ok(data) = root.open_data(name) else {
            return;
        };
        if let Ok(mut x) = get_xattr(data.as_fd()) {
            if x.projid != 0 {
                let _ = set_limit(data.as_fd(), x.projid, 0);
                // A directory left by a crash and taken again by a new volume
                // of the name carries no project.
                x.projid = 0;
                x.xflags &= !FS_XFLAG_PROJINHERIT;
                let _ = set_xattr(data.as_fd(), &x);
            }
        }
    }
}

fn set_limit(fd: BorrowedFd<'_>, id: u32, bytes: u64) -> std::io::Result<()> {
    // In 512-byte basic blocks, rounded up.
    let blocks = bytes.div_ceil(512);
    let mut dq = FsDiskQuota {
        version: FS_DQUOT_VERSION,
        flags: FS_PROJ_QUOTA,
        fieldmask: FS_DQ_BSOFT | FS_DQ_BHARD,
        id,
        blk_hardlimit: blocks,
        blk_softlimit: blocks,
        ..FsDiskQuota::default()
    };
    quotactl_fd(fd, Q_XSETQLIM, id, &mut dq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernels_sizes() {
        assert_eq!(std::mem::size_of::<FsDiskQuota>(), 112);
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(qcmd(Q_XSETQLIM), 0x58_0402);
    }
}
