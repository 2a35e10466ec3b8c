//! The harness itself: a test host is isolated from the machine, and everything a
//! host and its dockerd made is gone once they are dropped, also after a panic.

use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::path::PathBuf;
use tests::{Dockerd, TestHost};

/// What a host and its dockerd made, recorded while they run.
struct Made {
    name: String,
    netns: PathBuf,
    dir: PathBuf,
    pids: Vec<i32>,
    cgroup: Option<String>,
}

impl Made {
    fn of(host: &TestHost, docker: Option<&Dockerd>) -> Made {
        let mut pids = Vec::new();
        let mut cgroup = None;
        if let Some(docker) = docker {
            pids.extend(docker.pid());
            for id in docker.run(&["ps", "-q"]).unwrap().split_whitespace() {
                let pid = docker
                    .run(&["inspect", "--format", "{{.State.Pid}}", id])
                    .unwrap();
                pids.push(pid.trim().parse().unwrap());
            }
            cgroup = Some(docker.cgroup_parent().to_string());
        }
        Made {
            name: host.name().to_string(),
            netns: host.netns_path(),
            dir: host.dir().to_path_buf(),
            pids,
            cgroup,
        }
    }

    fn assert_gone(&self) {
        assert!(!self.netns.exists(), "{} is left", self.netns.display());
        assert!(!self.dir.exists(), "{} is left", self.dir.display());
        for &pid in &self.pids {
            assert!(
                kill(Pid::from_raw(pid), None).is_err(),
                "process {pid} still runs"
            );
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&self.name),
            "mounts of {} are left:\n{mounts}",
            self.name
        );
        if let Some(cgroup) = &self.cgroup {
            for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
                let dir = hierarchy.path().join(cgroup);
                assert!(!dir.exists(), "cgroup {} is left", dir.display());
            }
        }
    }
}

#[test]
fn a_host_is_isolated_from_the_machine() {
    let host = TestHost::new().unwrap();
    let links = host.run("ip", &["-o", "link", "show"]).unwrap();
    assert_eq!(links.lines().count(), 1, "only lo expected: {links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");

    // A plugin socket put in the host's plugin dir is what its /run/docker/plugins shows,
    // and the machine's /run/docker/plugins does not.
    let marker = format!("{}.sock", host.name());
    std::fs::write(host.plugin_dir().join(&marker), "").unwrap();
    let inside = host.run("ls", &["/run/docker/plugins"]).unwrap();
    assert_eq!(inside.trim(), marker);
    assert!(!std::path::Path::new("/run/docker/plugins")
        .join(&marker)
        .exists());

    let made = Made::of(&host, None);
    drop(host);
    made.assert_gone();
}

#[test]
fn dockerd_runs_containers_and_leaves_nothing_behind() {
    let host = TestHost::new().unwrap();
    let docker = Dockerd::start(&host).unwrap();
    let hi = docker
        .run(&["run", "--rm", "--network", "none", "busybox", "echo", "hi"])
        .unwrap();
    assert_eq!(hi.trim(), "hi");
    docker
        .run(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"])
        .unwrap();
    let made = Made::of(&host, Some(&docker));
    assert_eq!(made.pids.len(), 2, "dockerd and one container");
    drop(docker);
    drop(host);
    made.assert_gone();
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let mut made = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let host = TestHost::new().unwrap();
        let docker = Dockerd::start(&host).unwrap();
        docker
            .run(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"])
            .unwrap();
        made = Some(Made::of(&host, Some(&docker)));
        panic!("the test fails here");
    }));
    assert!(result.is_err());
    made.expect("the host was made").assert_gone();
}

#[test]
fn mounts_a_test_left_in_the_host_directory_are_detached() {
    let host = TestHost::new().unwrap();
    let pinned = host.dir().join("pinned");
    std::fs::write(&pinned, "").unwrap();
    let status = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&pinned)
        .arg(&pinned)
        .status()
        .unwrap();
    assert!(status.success());
    let made = Made::of(&host, None);
    drop(host);
    made.assert_gone();
}
