//! The store keeps records across a reopen, writes a batch all or nothing, replays
//! its log after a crash, and keeps its files private.

use netd::store::Kind;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Net {
    name: String,
    subnet: String,
}

#[test]
fn records_survive_a_reopen_and_a_dropped_batch_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netd.redb");
    let n1 = Net {
        name: "n1".into(),
        subnet: "172.24.0.0/24".into(),
    };
    let instance = {
        let store = netd::store::open(&path).unwrap();
        let mut batch = store.batch().unwrap();
        batch.put(Kind::Network, "id1", &n1).unwrap();
        batch
            .put(Kind::EnginePool, "local/10.9.0.0/24", &n1)
            .unwrap();
        batch.commit().unwrap();

        let mut lost = store.batch().unwrap();
        lost.put(Kind::Network, "id2", &n1).unwrap();
        drop(lost);
        assert_eq!(store.get::<Net>(Kind::Network, "id2").unwrap(), None);
        store.instance().to_string()
    };

    let store = netd::store::open(&path).unwrap();
    assert_eq!(store.instance(), instance, "the instance id changed");
    assert_eq!(instance.len(), 16);
    assert_eq!(
        store.list::<Net>(Kind::Network).unwrap(),
        vec![("id1".to_string(), n1.clone())]
    );
    assert_eq!(
        store.list::<Net>(Kind::EnginePool).unwrap(),
        vec![("local/10.9.0.0/24".to_string(), n1)]
    );
    assert!(store.list::<Net>(Kind::Endpoint).unwrap().is_empty());
    let mut batch = store.batch().unwrap();
    assert!(batch.delete(Kind::Network, "id1").unwrap());
    assert!(!batch.delete(Kind::Network, "id1").unwrap());
    batch.commit().unwrap();
    assert_eq!(store.get::<Net>(Kind::Network, "id1").unwrap(), None);
}

#[test]
fn the_store_files_are_readable_by_root_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netd.redb");
    drop(netd::store::open(&path).unwrap());
    for file in [path.clone(), dir.path().join("netd.redb.wal")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
    // Also when an earlier version left them readable.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(netd::store::open(&path).unwrap());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_store_that_cannot_be_opened_says_where() {
    let err = netd::store::open(std::path::Path::new("/nonexistent-dir/netd.redb")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-dir/netd.redb"),
        "{err}"
    );
}

const CRASH_DIR: &str = "NETD_STORE_TEST_CRASH_DIR";

/// How many batches the crash child commits: more than the log holds (256), so the
/// log fills, is taken into redb durably and starts again, and the last 44 batches
/// are in the log only when the process ends.
const CRASH_BATCHES: usize = 300;

/// Run by `batches_survive_a_crash_of_the_writer` in a process of its own: commit
/// batches, then end the process at once, as a crash would (no destructor runs,
/// so redb gets no chance to write anything at close).
#[test]
#[ignore = "run as a child process by batches_survive_a_crash_of_the_writer"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let store = netd::store::open(&std::path::Path::new(&dir).join("netd.redb")).unwrap();
    for i in 0..CRASH_BATCHES {
        let mut batch = store.batch().unwrap();
        let net = Net {
            name: format!("n{i}"),
            subnet: format!("10.{}.{}.0/24", i / 256, i % 256),
        };
        batch.put(Kind::Network, &format!("id{i}"), &net).unwrap();
        if i >= 1 {
            assert!(batch
                .delete(Kind::Network, &format!("id{}", i - 1))
                .unwrap());
        }
        batch
            .put(Kind::EngineAddress, &format!("a{i}"), &net)
            .unwrap();
        batch.commit().unwrap();
    }
    std::process::exit(0);
}

#[test]
fn batches_survive_a_crash_of_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--ignored", "--quiet"])
        .env(CRASH_DIR, dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the writer failed: {status}");

    let store = netd::store::open(&dir.path().join("netd.redb")).unwrap();
    // Each batch put one network and deleted the one before: only the last is left.
    let nets = store.list::<Net>(Kind::Network).unwrap();
    let ids: Vec<_> = nets.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec![format!("id{}", CRASH_BATCHES - 1)]);
    // And every batch's other write is there, the log-only ones included.
    let addresses = store.list::<Net>(Kind::EngineAddress).unwrap();
    assert_eq!(addresses.len(), CRASH_BATCHES);
}
