//! `volumed oci-hook create|poststop`: volumes for a plain OCI runtime (runc,
//! crun) with no engine. The runtime runs the hook with the container's state
//! on stdin; the annotation `org.volumed.mounts` names the volumes, as `-v`
//! does: `NAME:/path[:ro]`, comma-separated.
//!
//! At `create` (a createRuntime or prestart hook: the container's namespaces
//! exist and its root is not yet pivoted to) each volume is made if missing and
//! referenced for the container (`/v1/mounts/resolve`, caller
//! `oci:<bundle>:<id>`), then bind-mounted into the container's mount
//! namespace at the path under its root. The path is resolved inside the root,
//! refusing symbolic links, so an image cannot send the mount elsewhere. At
//! `poststop` the references go (`/v1/mounts/release`). A failed create leaves
//! no reference behind.

use crate::client::Client;
use crate::resolve::{MountSpec, OciMount, ResolveRequest, Resolved};
use anyhow::{bail, Context, Result};
use hyper::Method;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{mkdirat, Mode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// The annotation naming the volumes.
pub const MOUNTS: &str = "org.volumed.mounts";

/// More than any OCI state needs.
const MAX_STATE: u64 = 1 << 20;

/// When the hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// createRuntime or prestart (in the runtime's namespaces): mount.
    #[value(alias = "createRuntime", alias = "prestart")]
    Create,
    /// poststop: drop the references.
    Poststop,
}

/// The OCI state the runtime gives on stdin.
#[derive(Debug, Deserialize)]
struct State {
    id: String,
    #[serde(default)]
    bundle: String,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
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
    let mut input = String::new();
    std::io::stdin()
        .take(MAX_STATE)
        .read_to_string(&mut input)
        .context("reading the OCI state on stdin")?;
    let state: State =
        serde_json::from_str(&input).context("stdin is not an OCI state (JSON with an id)")?;
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
/// namespace of process `pid`. On a thread of its own: a thread that shares
/// its filesystem attributes with others cannot change mount namespace.
fn mount_all(pid: u32, root: &Path, mounts: &[OciMount]) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            unshare(CloneFlags::CLONE_FS)
                .context("unsharing this thread's filesystem attributes")?;
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
                .with_context(|| format!("the container's mount namespace (pid {pid})"))?;
            setns(&ns, CloneFlags::CLONE_NEWNS)
                .context("entering the container's mount namespace")?;
            let root_fd = std::fs::File::open(root)
                .with_context(|| format!("the container's root {}", root.display()))?;
            for m in mounts {
                mount_one(&root_fd, m)?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| bail!("the mounting thread panicked"))
    })
}

fn mount_one(root: &std::fs::File, m: &OciMount) -> Result<()> {
    let target = directory_under(root, &m.destination)?;
    let at = format!("/proc/self/fd/{}", target.as_raw_fd());
    mount(
        Some(m.source.as_str()),
        at.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("binding {} at {}", m.source, m.destination))?;
    // The descriptor names the directory under the mount; the mount is seen
    // through the path again.
    drop(target);
    let target = directory_under(root, &m.destination)?;
    let at = format!("/proc/self/fd/{}", target.as_raw_fd());
    if m.options.iter().any(|o| o == "ro" || o == "rro") {
        mount(
            None::<&str>,
            at.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .with_context(|| format!("making {} read-only", m.destination))?;
    }
    mount(
        None::<&str>,
        at.as_str(),
        None::<&str>,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("making {} private", m.destination))?;
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
