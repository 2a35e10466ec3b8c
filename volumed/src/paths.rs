//! Paths under the data root, never leaving it: every path is resolved from a
//! descriptor of `ROOT/volumes` with `openat2` (RESOLVE_BENEATH and
//! RESOLVE_NO_SYMLINKS), so a `_data` replaced by a symlink to /etc is refused,
//! not followed, and removal walks descriptors, unlinking links without
//! following them.

use crate::VolumeError;
use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// `ROOT/volumes`, held open.
#[derive(Debug)]
pub struct DataRoot {
    dir: OwnedFd,
    path: PathBuf,
}

fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

fn open_dir_at(dir: &OwnedFd, rel: &str) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(beneath());
    let fd = openat2(dir.as_raw_fd(), rel, how)?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl DataRoot {
    /// Open (and make) `root/volumes`.
    pub fn open(root: &Path) -> Result<DataRoot, VolumeError> {
        let path = root.join("volumes");
        std::fs::create_dir_all(&path)
            .map_err(VolumeError::io(format!("making {}", path.display())))?;
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(VolumeError::errno(format!("opening {}", path.display())))?;
        // SAFETY: a new descriptor nothing else owns.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        // One volumed per data root: held for as long as the descriptor lives.
        // SAFETY: flock on a descriptor this function owns.
        let locked =
            unsafe { nix::libc::flock(dir.as_raw_fd(), nix::libc::LOCK_EX | nix::libc::LOCK_NB) };
        if locked != 0 {
            return Err(VolumeError::Conflict(format!(
                "another volumed uses the data root {}; stop it first (this one changed nothing)",
                root.display()
            )));
        }
        Ok(DataRoot { dir, path })
    }

    /// `ROOT/volumes`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where volume `name`'s data is: `ROOT/volumes/NAME/_data`.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.path.join(name).join("_data")
    }

    /// Make `NAME/_data` (mode 0755; what exists is kept) and check it.
    pub fn make(&self, name: &str) -> Result<PathBuf, VolumeError> {
        for rel in [name.to_string(), format!("{name}/_data")] {
            let (parent, leaf) = match rel.rsplit_once('/') {
                Some((p, l)) => (Some(p.to_string()), l.to_string()),
                None => (None, rel.clone()),
            };
            let parent_fd = match &parent {
                Some(p) => Some(open_dir_at(&self.dir, p).map_err(|e| self.refused(p, e))?),
                None => None,
            };
            let at = parent_fd.as_ref().unwrap_or(&self.dir);
            match mkdirat(
                Some(at.as_raw_fd()),
                leaf.as_str(),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(VolumeError::errno(format!("making {rel}"))(e)),
            }
        }
        self.check(name)
    }

    /// `NAME/_data` if it is a real directory beneath the root (no symlink on
    /// the way), or why not.
    pub fn check(&self, name: &str) -> Result<PathBuf, VolumeError> {
        self.open_data(name)?;
        Ok(self.data_path(name))
    }

    /// `NAME/_data`, opened without following a symlink on the way.
    pub fn open_data(&self, name: &str) -> Result<OwnedFd, VolumeError> {
        let rel = format!("{name}/_data");
        open_dir_at(&self.dir, &rel).map_err(|e| self.refused(&rel, e))
    }

    /// `ROOT/volumes` itself.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The names of the directories under the root.
    pub fn names(&self) -> Vec<String> {
        std::fs::read_dir(&self.path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn refused(&self, rel: &str, e: Errno) -> VolumeError {
        let path = self.path.join(rel);
        match e {
            Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR => VolumeError::Invalid(format!(
                "{} is not a plain directory under the data root (a symlink or another file): refused",
                path.display()
            )),
            Errno::ENOENT => VolumeError::Io {
                doing: format!("{} is missing", path.display()),
                source: e.into(),
            },
            other => VolumeError::errno(format!("opening {}", path.display()))(other),
        }
    }

    /// Remove `NAME` and everything in it, following no link (a symlink is
    /// removed, not what it points to). Nothing of it must be mounted.
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        let dir = match open_dir_at(&self.dir, name) {
            Ok(d) => d,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(self.refused(name, e)),
        };
        remove_contents(dir).map_err(VolumeError::errno(format!("removing volume {name}")))?;
        match unlinkat(Some(self.dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(VolumeError::errno(format!("removing volume {name}"))(e)),
        }
    }
}

/// Remove everything inside the directory `dir`, depth first, by descriptor.
fn remove_contents(dir: OwnedFd) -> Result<(), Errno> {
    let raw = dir.as_raw_fd();
    let mut listing = Dir::from_fd(raw)?;
    // The Dir owns the descriptor from here.
    std::mem::forget(dir);
    let mut entries = Vec::new();
    for entry in listing.iter() {
        let entry = entry?;
        let name = entry.file_name().to_owned();
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        entries.push((name, entry.file_type()));
    }
    for (name, kind) in entries {
        let name_str = name.to_string_lossy().into_owned();
        let is_dir = match kind {
            Some(Type::Directory) => true,
            Some(_) => false,
            None => {
                let st = nix::sys::stat::fstatat(
                    Some(raw),
                    name.as_c_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
                st.st_mode & libc_s_ifmt() == libc_s_ifdir()
            }
        };
        if is_dir {
            let how = OpenHow::new()
                .flags(OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
                .resolve(beneath() | ResolveFlag::RESOLVE_NO_XDEV);
            let fd = openat2(raw, name.as_c_str(), how)?;
            // SAFETY: a new descriptor nothing else owns.
            remove_contents(unsafe { OwnedFd::from_raw_fd(fd) })?;
            unlinkat(Some(raw), name_str.as_str(), UnlinkatFlags::RemoveDir)?;
        } else {
            unlinkat(Some(raw), name_str.as_str(), UnlinkatFlags::NoRemoveDir)?;
        }
    }
    drop(listing);
    Ok(())
}

fn libc_s_ifmt() -> u32 {
    0o170000
}

fn libc_s_ifdir() -> u32 {
    0o040000
}
