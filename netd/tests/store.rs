//! The store keeps records and allocator changes across a reopen, writes a batch
//! all or nothing, and rebuilds the allocator exactly.

use ipam::{Change, Config, Ipam, Journal, PoolRequest};
use netd::store::{Kind, Store};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Net {
    name: String,
    subnet: String,
}

/// Buffers the allocator's changes for the next batch, as the controller will.
#[derive(Default)]
struct Buffer(Vec<Change>);

impl Journal for Buffer {
    type Error = std::convert::Infallible;
    fn record(&mut self, change: &Change) -> Result<(), Self::Error> {
        self.0.push(change.clone());
        Ok(())
    }
}

#[test]
fn records_and_allocations_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netd.redb");
    let config = Config::defaults("host-1");
    let n1 = Net {
        name: "n1".into(),
        subnet: "172.24.0.0/24".into(),
    };
    let (pool, gateway, state) = {
        let store = Store::open(&path).unwrap();
        let mut ipam = Ipam::with_journal(config.clone(), Buffer::default()).unwrap();
        let pool = ipam.request_pool(&PoolRequest::default()).unwrap();
        let gateway = ipam.request_address(&pool, None).unwrap();
        let mut batch = store.batch().unwrap();
        batch.put(Kind::Network, "id1", &n1).unwrap();
        batch.record_changes(ipam.journal_mut().0.drain(..));
        batch.commit().unwrap();

        // A batch dropped without commit leaves nothing behind.
        let mut lost = store.batch().unwrap();
        lost.put(Kind::Network, "id2", &n1).unwrap();
        drop(lost);
        assert_eq!(store.get::<Net>(Kind::Network, "id2").unwrap(), None);
        (pool, gateway, ipam.state())
    };

    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.get::<Net>(Kind::Network, "id1").unwrap(),
        Some(n1.clone())
    );
    assert_eq!(
        store.list::<Net>(Kind::Network).unwrap(),
        vec![("id1".to_string(), n1)]
    );
    assert!(store.list::<Net>(Kind::Endpoint).unwrap().is_empty());
    let mut ipam = store.load_ipam(config.clone(), ipam::NoJournal).unwrap();
    assert_eq!(ipam.state(), state);
    assert!(ipam.is_allocated(&pool, gateway.addr()).unwrap());
    assert_eq!(
        ipam.request_address(&pool, None).unwrap().to_string(),
        "172.24.0.2/24"
    );

    // Loading folded the journal into a snapshot; loading again gives the same.
    let again = store.load_ipam(config, ipam::NoJournal).unwrap();
    assert_eq!(again.state(), state);

    let mut batch = store.batch().unwrap();
    assert!(batch.delete(Kind::Network, "id1").unwrap());
    assert!(!batch.delete(Kind::Network, "id1").unwrap());
    batch.commit().unwrap();
    assert_eq!(store.get::<Net>(Kind::Network, "id1").unwrap(), None);
}

#[test]
fn a_store_that_cannot_be_opened_says_where() {
    let err = Store::open(std::path::Path::new("/nonexistent-dir/netd.redb")).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent-dir/netd.redb"),
        "{err}"
    );
}

const CRASH_DIR: &str = "NETD_STORE_TEST_CRASH_DIR";

/// Run by `batches_survive_a_crash_of_the_writer` in a process of its own: commit
/// batches, then end the process at once, as a crash would (no destructor runs,
/// so redb gets no chance to write anything at close).
#[test]
#[ignore = "run as a child process by batches_survive_a_crash_of_the_writer"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let store = Store::open(&std::path::Path::new(&dir).join("netd.redb")).unwrap();
    let mut ipam = Ipam::with_journal(Config::defaults("host-1"), Buffer::default()).unwrap();
    let pool = ipam.request_pool(&PoolRequest::default()).unwrap();
    let mut last = String::new();
    // More batches than the log holds, so the log fills and starts again once.
    for i in 0..300 {
        let mut batch = store.batch().unwrap();
        if i % 2 == 0 {
            last = ipam
                .request_address(&pool, None)
                .unwrap()
                .addr()
                .to_string();
            batch.record_changes(ipam.journal_mut().0.drain(..));
        }
        // The network's name is the pool, its subnet the last address taken.
        let net = Net {
            name: pool.to_string(),
            subnet: last.clone(),
        };
        batch.put(Kind::Network, &format!("id{i}"), &net).unwrap();
        if i >= 1 {
            assert!(batch
                .delete(Kind::Network, &format!("id{}", i - 1))
                .unwrap());
        }
        batch.commit().unwrap();
    }
    // Last, a rebuild of the allocator while running (what netd does after a
    // failed commit): it folds the journal into a snapshot, so the batches logged
    // before it must not be replayed onto that snapshot at the next start.
    store
        .load_ipam(Config::defaults("host-1"), ipam::NoJournal)
        .unwrap();
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

    let store = Store::open(&dir.path().join("netd.redb")).unwrap();
    // Each batch put one network and deleted the one before: only the last is left.
    let nets = store.list::<Net>(Kind::Network).unwrap();
    let ids: Vec<_> = nets.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["id299"]);
    let (pool, last): (ipam::PoolId, std::net::IpAddr) = (
        nets[0].1.name.parse().unwrap(),
        nets[0].1.subnet.parse().unwrap(),
    );
    // The allocator has all 150 addresses, each once: the last one is taken, and
    // the next one handed out is the one after it.
    let mut ipam = store
        .load_ipam(Config::defaults("host-1"), ipam::NoJournal)
        .unwrap();
    assert!(ipam.is_allocated(&pool, last).unwrap(), "{last} was lost");
    let next = ipam.request_address(&pool, None).unwrap().addr();
    let std::net::IpAddr::V4(last4) = last else {
        panic!("{last} is not IPv4")
    };
    assert_eq!(next, std::net::Ipv4Addr::from(u32::from(last4) + 1));
}
