//! Network namespaces that netd owns: created as files under its run dir (like
//! `ip netns add`), so they outlive any process, and removed by unmounting them.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::path::{Path, PathBuf};

/// `statfs` magic of nsfs, the filesystem of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Why a namespace could not be made, checked or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Something already exists at the path.
    #[error("{0} exists already")]
    Exists(PathBuf),
    /// A filesystem step failed.
    #[error("{doing} {path}")]
    Io {
        /// What was being done.
        doing: &'static str,
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A namespace or mount call failed.
    #[error("{doing} {path}")]
    Sys {
        /// What was being done.
        doing: &'static str,
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// The setup thread died.
    #[error("the thread creating {0} failed")]
    Thread(PathBuf),
    /// The file is not a network namespace.
    #[error("{0} is not a network namespace file")]
    NotNetns(PathBuf),
}

/// Create a new network namespace and pin it at `path` (which must not exist; its
/// directory must). Only `lo` is in it, down.
pub fn create(path: &Path) -> Result<(), NetnsError> {
    create_with(path, || ())
}

/// [`create`], and run `inside` in the new namespace (on the thread that made it,
/// which ends right after): a way to open sockets there without another `setns`.
pub fn create_with<T: Send + 'static>(
    path: &Path,
    inside: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    if path.symlink_metadata().is_ok() {
        return Err(NetnsError::Exists(path.to_path_buf()));
    }
    std::fs::File::create(path).map_err(|source| NetnsError::Io {
        doing: "creating",
        path: path.to_path_buf(),
        source,
    })?;
    let target = path.to_path_buf();
    // unshare changes only the calling thread, so do it on a thread of its own that
    // ends right after: no other thread ever sees the new namespace.
    let result = std::thread::spawn(move || -> Result<T, NetnsError> {
        let sys = |doing| {
            let path = target.clone();
            move |source| NetnsError::Sys {
                doing,
                path,
                source,
            }
        };
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys("creating a namespace for"))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("pinning the namespace at"))?;
        Ok(inside())
    })
    .join()
    .map_err(|_| NetnsError::Thread(path.to_path_buf()))
    .and_then(|r| r);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

// `NS_GET_NSTYPE` (linux/nsfs.h): the kind of namespace a namespace file is.
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

/// Which namespace a namespace file refers to: the device and inode of its nsfs
/// inode (what `stat` of `/proc/PID/ns/net` or of a bind mount of it gives). Two
/// paths refer to one namespace exactly when their identities are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetnsId {
    /// Device of the nsfs filesystem.
    pub dev: u64,
    /// Inode: the namespace's number (`net:[4026531840]`).
    pub ino: u64,
}

/// Whether `path` is a network namespace file (a pinned one, or `/proc/PID/ns/net`),
/// and not a namespace file of another kind (`/proc/PID/ns/uts` is refused).
pub fn is_netns(path: &Path) -> bool {
    identity(path).is_ok()
}

/// The identity of the network namespace at `path`; fails for anything that is not
/// a network namespace file.
pub fn identity(path: &Path) -> Result<NetnsId, NetnsError> {
    let file = std::fs::File::open(path).map_err(|source| NetnsError::Io {
        doing: "opening",
        path: path.to_path_buf(),
        source,
    })?;
    identity_of(&file, path)
}

/// The identity of the namespace `file` (opened from `path`) refers to; fails for
/// anything that is not a network namespace.
// The magic's integer type differs by architecture, hence the cast.
#[allow(clippy::unnecessary_cast)]
pub fn identity_of(file: &std::fs::File, path: &Path) -> Result<NetnsId, NetnsError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let io = |doing| {
        move |source| NetnsError::Io {
            doing,
            path: path.to_path_buf(),
            source,
        }
    };
    let not_netns = || NetnsError::NotNetns(path.to_path_buf());
    let fs = nix::sys::statfs::fstatfs(file).map_err(|_| not_netns())?;
    if fs.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err(not_netns());
    }
    // SAFETY: the ioctl takes no argument and only reads the descriptor's inode.
    let kind = unsafe { ns_get_nstype(file.as_raw_fd()) }.map_err(|_| not_netns())?;
    if kind != CloneFlags::CLONE_NEWNET.bits() {
        return Err(not_netns());
    }
    let meta = file.metadata().map_err(io("reading"))?;
    Ok(NetnsId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The identity of the calling process's own network namespace.
pub fn own_identity() -> Result<NetnsId, NetnsError> {
    identity(Path::new("/proc/self/ns/net"))
}

/// Unpin and remove the namespace at `path`; whether there was one. The namespace
/// itself ends once no process and no link uses it.
pub fn remove(path: &Path) -> Result<bool, NetnsError> {
    if path.symlink_metadata().is_err() {
        return Ok(false);
    }
    if is_netns(path) {
        umount2(path, MntFlags::MNT_DETACH).map_err(|source| NetnsError::Sys {
            doing: "unpinning",
            path: path.to_path_buf(),
            source,
        })?;
    }
    std::fs::remove_file(path).map_err(|source| NetnsError::Io {
        doing: "removing",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(true)
}

/// Set a per-namespace sysctl (a path under `/proc/sys/`, such as
/// `net/ipv4/conf/eth0/arp_notify`) inside the namespace at `netns`.
///
/// `/proc/sys/net` shows the namespace of the thread that opens it, so the write
/// happens on a thread of its own that `setns`es and then ends.
pub async fn write_sysctl(netns: &Path, key: &str, value: &str) -> Result<(), NetnsError> {
    let file = std::fs::File::open(netns).map_err(|source| NetnsError::Io {
        doing: "opening",
        path: netns.to_path_buf(),
        source,
    })?;
    let target = Path::new("/proc/sys").join(key);
    let value = value.to_string();
    let path = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-sysctl".into())
        .spawn(move || {
            let result = nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|source| NetnsError::Sys {
                    doing: "entering",
                    path: path.clone(),
                    source,
                })
                .and_then(|()| {
                    std::fs::write(&target, value).map_err(|source| NetnsError::Io {
                        doing: "writing sysctl",
                        path: target,
                        source,
                    })
                });
            let _ = tx.send(result);
        })
        .map_err(|source| NetnsError::Io {
            doing: "starting a thread for",
            path: netns.to_path_buf(),
            source,
        })?;
    rx.await
        .map_err(|_| NetnsError::Thread(netns.to_path_buf()))?
}
