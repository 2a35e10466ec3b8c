//! Finding and removing what a test host left: processes in its namespace or cgroup,
//! the cgroup itself, and whole hosts of test processes that were killed.

use crate::names::{owner_pid, PREFIX};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const NETNS_DIR: &str = "/run/netns";

/// Pids of the processes whose network namespace is the one at `netns` (a bind-mounted
/// namespace file such as `/run/netns/NAME`).
pub(crate) fn pids_in_netns(netns: &Path) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(netns) else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| m.dev() == target.dev() && m.ino() == target.ino())
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILL every process listed by `find` until none is left (or 10 s pass).
fn kill_until_gone(find: impl Fn() -> Vec<i32>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = find();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kill every process in the network namespace at `netns`.
pub(crate) fn kill_netns_processes(netns: &Path) {
    kill_until_gone(|| pids_in_netns(netns));
}

/// The directories of cgroup `name` (a direct child of a hierarchy's root) in every
/// mounted hierarchy, v1 or v2.
pub(crate) fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    let mut out = Vec::new();
    let direct = root.join(name);
    if direct.is_dir() {
        out.push(direct);
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let dir = entry.path().join(name);
            if dir.is_dir() {
                out.push(dir);
            }
        }
    }
    out
}

/// Every directory under `dir`, deepest first, `dir` last.
fn subtree_deepest_first(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                subtree_deepest_first(&entry.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// Kill every process in cgroup `name` and its children, then remove the cgroups.
pub(crate) fn remove_cgroup(name: &str) {
    let mut dirs = Vec::new();
    for top in cgroup_dirs(name) {
        subtree_deepest_first(&top, &mut dirs);
    }
    kill_until_gone(|| {
        dirs.iter()
            .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    });
    for dir in &dirs {
        // A cgroup can be busy for a moment after its last process died.
        for _ in 0..50 {
            if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Detach every mount at or below `dir` in this process's mount namespace (a test
/// that pinned a namespace file there and failed before removing it).
pub(crate) fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    // Field 5 is the mount point; deepest first so nested mounts go before parents.
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Delete the named network namespace (after killing what runs in it).
pub(crate) fn remove_netns(name: &str) {
    let path = Path::new(NETNS_DIR).join(name);
    kill_netns_processes(&path);
    if path.exists() {
        let _ = Command::new("ip").args(["netns", "delete", name]).status();
    }
}

fn owner_is_dead(name: &str) -> bool {
    match owner_pid(name) {
        Some(pid) => {
            // Signal 0 probes without sending anything; ESRCH means no such process.
            kill(Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH)
        }
        None => false,
    }
}

fn stale_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(PREFIX) && owner_is_dead(n))
        .collect()
}

/// Remove hosts, cgroups and directories left by test processes that died without
/// cleaning up (killed by a signal or a timeout). Objects of live processes are left
/// alone, so this is safe while other tests run.
pub fn sweep_stale() {
    for name in stale_names(Path::new(NETNS_DIR)) {
        remove_netns(&name);
    }
    let mut cgroups: Vec<String> = stale_names(Path::new(CGROUP_ROOT));
    if let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) {
        for entry in entries.flatten() {
            cgroups.extend(stale_names(&entry.path()));
        }
    }
    cgroups.sort();
    cgroups.dedup();
    for name in cgroups {
        remove_cgroup(&name);
    }
    for name in stale_names(&std::env::temp_dir()) {
        unmount_under(&std::env::temp_dir().join(&name));
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(name));
    }
}
