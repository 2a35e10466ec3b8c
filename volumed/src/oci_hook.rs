//! `volumed oci-hook create|poststop`: volumes for a plain OCI runtime (runc,
//! crun) with no engine. The runtime runs the hook with the container's state
//! on stdin; the annotation `org.volumed.mounts` names the volumes, as `-v`
//! does: `NAME:/path[:ro]`, comma-separated.
//!
//! At `create` (a createRuntime or prestart hook: the container's namespaces
//! exist and its root is not yet pivoted to) each volume is made if missing and
//! referenced for the container (`/v1/mounts/resolve`, caller
//! `oci:<bundle>:<id>`), then its mount is cloned (read-only where asked,
//! recursively) and attached in the container's mount namespace at the path
//! under its root. The path is resolved inside the root,
//! refusing symbolic links, so an image cannot send the mount elsewhere. At
//! `poststop` the references go (`/v1/mounts/release`). A failed create leaves
//! no reference behind.

use crate::client::Client;
use crate::resolve::{MountSpec, OciMount, ResolveRequest, Resolved};
use anyhow::{bail, Context, Result};
use hyper::Method;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{mkdirat, Mode};
use serde::Deserialize;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// The annotation naming the volumes.
pub const MOUNTS: &str = "org.volumed.mounts";

/// When the hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// createRuntime or prestart (in the runtime's namespaces): mount.
    #[value(alias = "createRuntime", alias = "prestart")]
    Create,
    /// poststop: drop the references.
    Poststop,
}

/// One volume the annotation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    volume: String,
    target: String,
    read_only: bool,
}

fn parse(annotation: &str) -> Result<Vec<Wanted>> {
    let mut out = Vec::new();
    for entry in annotation
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let parts: Vec<&str> = entry.split(':').collect();
        let (volume, target, read_only) = match parts.as_slice() {
            [v, t] => (*v, *t, false),
            [v, t, "ro"] => (*v, *t, true),
            [v, t, "rw"] => (*v, *t, false),
            _ => bail!("annotation {MOUNTS}: {entry:?} is not VOLUME:/PATH[:ro]"),
        };
        if volume.is_empty() || !target.starts_with('/') {
            bail!("annotation {MOUNTS}: {entry:?} is not VOLUME:/PATH[:ro] (the path is absolute)");
        }
        out.push(Wanted {
            volume: volume.to_string(),
            target: target.to_string(),
            read_only,
        });
    }
    Ok(out)
}

/// The container's root as the runtime sees it: `root.path` of the bundle's
/// config.json, relative to the bundle unless absolute.
fn rootfs(bundle: &str) -> Result<PathBuf> {
    #[derive(Deserialize)]
    struct Root {
        path: String,
    }
    #[derive(Deserialize)]
    struct Config {
        root: Option<Root>,
    }
    let path = Path::new(bundle).join("config.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: Config = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not an OCI config", path.display()))?;
    let root = config
        .root
        .map(|r| r.path)
        .unwrap_or_else(|| "rootfs".into());
    Ok(Path::new(bundle).join(root))
}

/// Run the hook for `stage` against the daemon `client` talks to.
pub async fn run(client: &Client, stage: Stage) -> Result<()> {
    let state = native_api::oci::read_state(std::io::stdin(), "volumed oci-hook")?;
    let Some(annotation) = state.annotations.get(MOUNTS) else {
        return Ok(());
    };
    let caller = format!("oci:{}:{}", state.bundle, state.id);
    let release = || async {
        client
            .call::<Vec<String>>(
                Method::POST,
                "/v1/mounts/release",
                Some(&serde_json::json!({ "id": caller })),
            )
            .await
    };
    if stage == Stage::Poststop {
        release()
            .await
            .with_context(|| format!("releasing container {}'s volumes", state.id))?;
        return Ok(());
    }
    let wanted = parse(annotation)?;
    let Some(pid) = state.pid.filter(|p| *p > 0) else {
        bail!("the OCI state has no pid: run `volumed oci-hook create` as a createRuntime or prestart hook");
    };
    let root = rootfs(&state.bundle)?;
    let req = ResolveRequest {
        id: caller.clone(),
        mounts: wanted
            .iter()
            .map(|w| MountSpec {
                kind: "volume".into(),
                source: w.volume.clone(),
                target: w.target.clone(),
                read_only: w.read_only,
                bind: None,
                volume: None,
                tmpfs: None,
            })
            .collect(),
    };
    let resolved: Resolved = client
        .call(Method::POST, "/v1/mounts/resolve", Some(&req))
        .await
        .with_context(|| format!("taking container {}'s volumes", state.id))?;
    if let Err(e) = mount_all(pid, &root, &resolved.mounts) {
        // Nothing half-made: the references this hook took go again.
        if let Err(undo) = release().await {
            eprintln!("volumed oci-hook: releasing the volumes again: {undo}");
        }
        return Err(e.context(format!("mounting container {}'s volumes", state.id)));
    }
    Ok(())
}

/// Bind each mount's source at its destination under `root`, inside the mount
/// namespace of process `pid`. Each source is cloned as a detached tree here,
/// in volumed's own namespace (where a volume's backing is mounted, whatever
/// the container's copy of the mount table holds), made read-only and private
/// recursively while detached, and then attached at the target, which is
/// opened once. On a thread of its own: a thread that shares its filesystem
/// attributes with others cannot change mount namespace.
fn mount_all(pid: u32, root: &Path, mounts: &[OciMount]) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            let trees = mounts
                .iter()
                .map(|m| detached_tree(m).map(|t| (t, m)))
                .collect::<Result<Vec<_>>>()?;
            unshare(CloneFlags::CLONE_FS)
                .context("unsharing this thread's filesystem attributes")?;
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
                .with_context(|| format!("the container's mount namespace (pid {pid})"))?;
            setns(&ns, CloneFlags::CLONE_NEWNS)
                .context("entering the container's mount namespace")?;
            let root_fd = std::fs::File::open(root)
                .with_context(|| format!("the container's root {}", root.display()))?;
            for (tree, m) in trees {
                let target = directory_under(&root_fd, &m.destination)?;
                attach(&tree, &target)
                    .with_context(|| format!("binding {} at {}", m.source, m.destination))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| bail!("the mounting thread panicked"))
    })
}

/// `open_tree(2)` flags and `mount_setattr(2)`'s argument (the libc crate
/// has the syscall numbers, not these).
const OPEN_TREE_CLONE: nix::libc::c_uint = 1;
const AT_RECURSIVE: nix::libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// MS_PRIVATE, as `mount_attr.propagation` takes it (64 bits everywhere).
const MS_PRIVATE: u64 = 1 << 18;
const MOVE_MOUNT_F_EMPTY_PATH: nix::libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: nix::libc::c_uint = 0x40;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn check(what: &str, rc: nix::libc::c_long) -> Result<nix::libc::c_long> {
    if rc < 0 {
        Err(std::io::Error::last_os_error()).with_context(|| what.to_string())
    } else {
        Ok(rc)
    }
}

/// A recursive copy of the mount at `m.source`, not attached anywhere yet:
/// private, and read-only (recursively) when `m` asks.
fn detached_tree(m: &OciMount) -> Result<OwnedFd> {
    let source = std::ffi::CString::new(m.source.as_str())
        .with_context(|| format!("volume path {:?}", m.source))?;
    // SAFETY: open_tree with a NUL-terminated path; a new descriptor on success.
    let fd = check(&format!("cloning the mount at {}", m.source), unsafe {
        nix::libc::syscall(
            nix::libc::SYS_open_tree,
            nix::libc::AT_FDCWD,
            source.as_ptr(),
            OPEN_TREE_CLONE | nix::libc::O_CLOEXEC as nix::libc::c_uint | AT_RECURSIVE,
        )
    })?;
    // SAFETY: the descriptor open_tree returned, owned here from now on.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let read_only = m.options.iter().any(|o| o == "ro" || o == "rro");
    let attr = MountAttr {
        attr_set: if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: 0,
        propagation: MS_PRIVATE,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on the tree's descriptor with an empty path and a
    // struct of the size passed.
    check(
        &format!(
            "making {} private{}",
            m.destination,
            if read_only { " and read-only" } else { "" }
        ),
        unsafe {
            nix::libc::syscall(
                nix::libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                nix::libc::AT_EMPTY_PATH as nix::libc::c_uint | AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        },
    )?;
    Ok(tree)
}

/// Attach the detached `tree` on the directory `target` refers to.
fn attach(tree: &OwnedFd, target: &OwnedFd) -> Result<()> {
    // SAFETY: move_mount between two descriptors, both with empty paths.
    check("attaching the mount", unsafe {
        nix::libc::syscall(
            nix::libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// `path` (absolute, in the container) under `root`, made as directories where
/// missing; no component may be a symbolic link or lead out of the root.
fn directory_under(root: &std::fs::File, path: &str) -> Result<OwnedFd> {
    let how = || {
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            )
    };
    // SAFETY: dup of a descriptor `root` keeps open; the result is owned here.
    let mut dir = unsafe { OwnedFd::from_raw_fd(nix::unistd::dup(root.as_raw_fd())?) };
    for c in Path::new(path).components() {
        let name = match c {
            Component::RootDir | Component::CurDir => continue,
            Component::Normal(n) => n,
            Component::ParentDir | Component::Prefix(_) => {
                bail!("{path:?}: a mount path has no '..'")
            }
        };
        match mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("making {path} in the container")),
        }
        let fd = openat2(dir.as_raw_fd(), name, how()).with_context(|| {
            format!("{path} in the container (a symbolic link or not a directory on the way is refused)")
        })?;
        // SAFETY: openat2 returned a new descriptor that nothing else owns.
        dir = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_annotation_is_read_as_dash_v_is() {
        assert_eq!(
            parse("data:/data, cache:/var/cache:ro").unwrap(),
            [
                Wanted {
                    volume: "data".into(),
                    target: "/data".into(),
                    read_only: false
                },
                Wanted {
                    volume: "cache".into(),
                    target: "/var/cache".into(),
                    read_only: true
                }
            ]
        );
        for bad in ["data", "data:rel", ":/x", "a:/b:rx", "a:/b:ro:x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
