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
