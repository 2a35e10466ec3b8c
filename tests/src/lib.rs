//! The test harness: throwaway hosts made of network and mount namespaces, a private
//! stock `dockerd` inside one, and the busybox image it runs.
//!
//! Every object here removes what it made when dropped, also when a test panics:
//! processes are killed, namespaces deleted, mounts vanish with their mount namespace,
//! and temporary directories are removed. Names carry the test process's pid, so tests
//! in parallel (threads or processes) never collide, and a later run sweeps what a
//! killed run left behind ([`sweep_stale`]).
//!
//! ```no_run
//! use tests::{Dockerd, TestHost};
//! let host = TestHost::new().unwrap();
//! let docker = Dockerd::start(&host).unwrap();
//! let out = docker.run(&["run", "--rm", "--network", "none", "busybox", "echo", "hi"]).unwrap();
//! assert_eq!(out.trim(), "hi");
//! ```

mod dockerd;
mod etcd;
mod examples;
mod host;
mod image;
mod names;
mod podman;
mod process;
mod reap;

pub use dockerd::Dockerd;
pub use etcd::Etcd;
pub use examples::{example_binary, workspace_binary};
pub use host::TestHost;
pub use image::busybox_rootfs_tar;
pub use names::unique_name;
pub use podman::{Podman, ULIMITS};
pub use process::{wait_for, Daemon};
pub use reap::sweep_stale;
