//! A container's mounts, in Docker's `--mount` vocabulary (the Engine API's
//! `Mount` object), turned into OCI runtime-spec `mounts` entries with Docker's
//! rules: volumes created and mounted as needed under the caller's ID, binds
//! `rbind` + `rprivate` by default with the host-side propagation checks, read-only
//! recursive where the kernel can, tmpfs `nosuid,noexec,nodev` and mode 1777 by
//! default. A deny list keeps sources such as `/` and the daemons' own state out.

use crate::manager::Manager;
use crate::VolumeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One mount, as Docker's Engine API spells it (`--mount type=...,src=...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// A volume name, or a host path for a bind; none for tmpfs.
    #[serde(rename = "Source", default)]
    pub source: String,
    /// The absolute path in the container.
    #[serde(rename = "Target")]
    pub target: String,
    /// Read-only.
    #[serde(rename = "ReadOnly", default)]
    pub read_only: bool,
    /// Bind options.
    #[serde(rename = "BindOptions", default)]
    pub bind: Option<BindOptions>,
    /// Volume options (used when the volume does not exist yet).
    #[serde(rename = "VolumeOptions", default)]
    pub volume: Option<VolumeOptions>,
    /// tmpfs options.
    #[serde(rename = "TmpfsOptions", default)]
    pub tmpfs: Option<TmpfsOptions>,
}

/// `BindOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    /// `private`, `rprivate` (default), `shared`, `rshared`, `slave`, `rslave`.
    #[serde(rename = "Propagation", default)]
    pub propagation: Option<String>,
    /// Make a missing source directory (as `-v` does; `--mount` refuses).
    #[serde(rename = "CreateMountpoint", default)]
    pub create_mountpoint: bool,
    /// Read-only only at the top, not recursively.
    #[serde(rename = "ReadOnlyNonRecursive", default)]
    pub read_only_non_recursive: bool,
    /// Fail unless read-only can be made recursive.
    #[serde(rename = "ReadOnlyForceRecursive", default)]
    pub read_only_force_recursive: bool,
}

/// `VolumeOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    /// Labels for a volume made here.
    #[serde(rename = "Labels", default)]
    pub labels: BTreeMap<String, String>,
    /// The driver and its options for a volume made here.
    #[serde(rename = "DriverConfig", default)]
    pub driver_config: Option<DriverConfig>,
}

/// `DriverConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    /// Only `local` (or empty).
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Driver options.
    #[serde(rename = "Options", default)]
    pub options: BTreeMap<String, String>,
}

/// `TmpfsOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    /// Size in bytes; 0 or absent: the kernel's default (half the memory).
    #[serde(rename = "SizeBytes", default)]
    pub size_bytes: u64,
    /// Permission bits (1777 octal by default).
    #[serde(rename = "Mode", default)]
    pub mode: Option<u32>,
    /// More options, such as `[["exec"]]`.
    #[serde(rename = "Options", default)]
    pub options: Vec<Vec<String>>,
}

/// `POST /v1/mounts/resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The caller (a container): volume references are taken under it.
    pub id: String,
    /// Its mounts.
    pub mounts: Vec<MountSpec>,
}

/// An OCI runtime-spec mount entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciMount {
    /// Path in the container.
    pub destination: String,
    /// `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Host path, or `tmpfs`.
    pub source: String,
    /// Mount options.
    pub options: Vec<String>,
}

/// The answer: the entries, in the order asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// OCI `mounts` entries.
    pub mounts: Vec<OciMount>,
}

/// What resolving needs beyond the manager.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Bind sources refused: each path and everything under it (`/` only itself).
    pub deny: Vec<PathBuf>,
}

fn invalid(why: String) -> VolumeError {
    VolumeError::Invalid(why)
}

fn clean_absolute(what: &str, path: &str) -> Result<PathBuf, VolumeError> {
    let p = Path::new(path);
    if !p.is_absolute()
        || p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(invalid(format!(
            "{what} {path:?} must be an absolute path without . or .."
        )));
    }
    Ok(p.to_path_buf())
}

/// Whether the running kernel has mount_setattr (5.12+): read-only recursion.
fn recursive_read_only_supported() -> bool {
    let Ok(release) = nix::sys::utsname::uname() else {
        return false;
    };
    let release = release.release().to_string_lossy().into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => (major, minor) >= (5, 12),
        _ => false,
    }
}

/// The propagation of the mount `path` is on: `shared`, `slave` or `private`.
fn propagation_of(path: &Path) -> &'static str {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(usize, &'static str)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else { continue };
        if !path.starts_with(point) {
            continue;
        }
        let optional: Vec<&str> = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .copied()
            .collect();
        let kind = if optional.iter().any(|f| f.starts_with("shared:")) {
            "shared"
        } else if optional.iter().any(|f| f.starts_with("master:")) {
            "slave"
        } else {
            "private"
        };
        if best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), kind));
        }
    }
    best.map(|(_, k)| k).unwrap_or("private")
}

impl Policy {
    fn check_bind_source(&self, source: &Path) -> Result<(), VolumeError> {
        for denied in &self.deny {
            let hit = if denied == Path::new("/") {
                source == denied
            } else {
                source.starts_with(denied)
            };
            if hit {
                return Err(invalid(format!(
                    "bind source {} is refused by volumed's deny list ({})",
                    source.display(),
                    denied.display()
                )));
            }
        }
        Ok(())
    }
}

/// A size as Docker writes it for tmpfs: in the largest of k, m, g that divides
/// it evenly, else in bytes.
fn size_text(bytes: u64) -> String {
    for (shift, unit) in [(30, 'g'), (20, 'm'), (10, 'k')] {
        let div = 1u64 << shift;
        if bytes.is_multiple_of(div) {
            return format!("{}{unit}", bytes / div);
        }
    }
    bytes.to_string()
}

/// Resolve `req`'s mounts. Volumes are mounted under `req.id`; if any mount is
/// refused, the references taken for this request are dropped again.
pub async fn resolve(
    manager: &Manager,
    policy: &Policy,
    req: &ResolveRequest,
) -> Result<Resolved, VolumeError> {
    let mut taken: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for m in &req.mounts {
        match resolve_one(manager, policy, &req.id, m, &mut taken).await {
            Ok(entry) => out.push(entry),
            Err(e) => {
                for name in taken {
                    let _ = manager.unmount(&name, &req.id).await;
                }
                return Err(e);
            }
        }
    }
    Ok(Resolved { mounts: out })
}

async fn resolve_one(
    manager: &Manager,
    policy: &Policy,
    id: &str,
    m: &MountSpec,
    taken: &mut Vec<String>,
) -> Result<OciMount, VolumeError> {
    let target = clean_absolute("target", &m.target)?;
    let destination = target.display().to_string();
    let read_only =
        |options: &mut Vec<String>, bind: Option<&BindOptions>| -> Result<(), VolumeError> {
            if !m.read_only {
                return Ok(());
            }
            let b = bind.cloned().unwrap_or_default();
            if b.read_only_non_recursive {
                options.push("ro".into());
            } else if recursive_read_only_supported() {
                options.push("rro".into());
            } else if b.read_only_force_recursive {
                return Err(invalid(format!(
                    "mount {destination}: recursive read-only needs Linux 5.12 or later"
                )));
            } else {
                options.push("ro".into());
            }
            Ok(())
        };
    match m.kind.as_str() {
        "volume" => {
            if m.bind.is_some() || m.tmpfs.is_some() {
                return Err(invalid(format!(
                    "mount {destination}: bind or tmpfs options on a volume"
                )));
            }
            let name = m.source.as_str();
            if manager.get(name).is_err() {
                let vo = m.volume.clone().unwrap_or_default();
                let dc = vo.driver_config.unwrap_or_default();
                let anonymous = name.is_empty();
                manager
                    .create_with(
                        (!anonymous).then_some(name),
                        Some(&dc.name),
                        dc.options,
                        vo.labels,
                    )
                    .await?;
            }
            let path = manager.mount(name, id).await?;
            taken.push(name.to_string());
            let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
            read_only(&mut options, None)?;
            Ok(OciMount {
                destination,
                kind: "bind".into(),
                source: path.display().to_string(),
                options,
            })
        }
        "bind" => {
            if m.volume.is_some() || m.tmpfs.is_some() {
                return Err(invalid(format!(
                    "mount {destination}: volume or tmpfs options on a bind"
                )));
            }
            let source = clean_absolute("bind source", &m.source)?;
            policy.check_bind_source(&source)?;
            let b = m.bind.clone().unwrap_or_default();
            if !source.exists() {
                if !b.create_mountpoint {
                    return Err(invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        source.display()
                    )));
                }
                std::fs::create_dir_all(&source).map_err(VolumeError::io(format!(
                    "making bind source {}",
                    source.display()
                )))?;
            }
            let propagation = b.propagation.clone().unwrap_or_else(|| "rprivate".into());
            let needs = match propagation.as_str() {
                "private" | "rprivate" => None,
                "shared" | "rshared" => Some(&["shared"][..]),
                "slave" | "rslave" => Some(&["shared", "slave"][..]),
                other => {
                    return Err(invalid(format!(
                        "mount {destination}: propagation {other:?}: expected private, rprivate, shared, rshared, slave or rslave"
                    )))
                }
            };
            if let Some(kinds) = needs {
                let has = propagation_of(&source);
                if !kinds.contains(&has) {
                    return Err(invalid(format!(
                        "path {} is mounted on a {has} mount; {propagation} propagation needs a {} mount on the host (mount --make-shared)",
                        source.display(),
                        kinds.join(" or ")
                    )));
                }
            }
            let mut options = vec!["rbind".to_string(), propagation];
            read_only(&mut options, Some(&b))?;
            Ok(OciMount {
                destination,
                kind: "bind".into(),
                source: source.display().to_string(),
                options,
            })
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(invalid(format!(
                    "mount {destination}: a tmpfs takes no source"
                )));
            }
            let t = m.tmpfs.clone().unwrap_or_default();
            let exec = t.options.iter().flatten().any(|o| o == "exec");
            let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
            if !exec {
                options.push("noexec".into());
            }
            // No mode given: none written, as Docker does (tmpfs makes 1777).
            if let Some(mode) = t.mode {
                if mode > 0o7777 {
                    return Err(invalid(format!(
                        "mount {destination}: tmpfs mode {mode:o} is not a permission mode"
                    )));
                }
                options.push(format!("mode={mode:o}"));
            }
            if t.size_bytes > 0 {
                options.push(format!("size={}", size_text(t.size_bytes)));
            }
            options.push("rprivate".into());
            if m.read_only {
                options.push("ro".into());
            }
            Ok(OciMount {
                destination,
                kind: "tmpfs".into(),
                source: "tmpfs".into(),
                options,
            })
        }
        other => Err(invalid(format!(
            "mount {destination}: type {other:?}: expected volume, bind or tmpfs"
        ))),
    }
}
