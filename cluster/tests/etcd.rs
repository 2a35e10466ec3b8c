//! The cluster control plane against a real etcd (Debian's, in a test host;
//! the clients run on a thread inside the same host): networks made once with
//! one VNI, blocks claimed once and returned when a host's lease lapses, a
//! restarted host keeping its lease, peers followed through etcd going away, and
//! clear errors while etcd is down.

use cluster::{
    Cluster, ClusterError, ClusterOptions, HostRecord, Membership, OverlayRequest, PeerEvent,
    PeerRecord, PeerWatch,
};
use std::time::Duration;
use tests::{Etcd, TestHost};

fn request(name: &str, subnet: &str) -> OverlayRequest {
    OverlayRequest {
        name: name.into(),
        subnet: subnet.parse().unwrap(),
        ..Default::default()
    }
}

fn host(id: &str, vtep: &str) -> HostRecord {
    HostRecord {
        host: id.into(),
        name: id.into(),
        vtep: vtep.parse().unwrap(),
        vxlan_port: 4789,
        joined: 0,
    }
}

/// Run `test` inside a fresh test host with etcd, given etcd's endpoint.
fn with_etcd<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut + Send,
    Fut: std::future::Future<Output = ()>,
{
    let h = TestHost::new().unwrap();
    let etcd = Etcd::start(&h).unwrap();
    let endpoint = etcd.endpoint().to_string();
    h.block_on_inside(|| test(endpoint)).unwrap();
}

async fn connect(etcd: &str) -> Cluster {
    let mut opts = ClusterOptions::new(vec![etcd.to_string()]);
    opts.timeout = Duration::from_secs(1);
    Cluster::connect(&opts).await.unwrap()
}

#[test]
fn networks_are_made_once_with_one_vni_and_must_agree() {
    with_etcd(|endpoint| async move {
        let (a, b) = (connect(&endpoint).await, connect(&endpoint).await);
        // Two hosts ask at once: one network, one id, one VNI.
        let req = request("ov1", "10.90.0.0/24");
        let (x, y) = tokio::join!(a.ensure_network(&req, "A"), b.ensure_network(&req, "B"));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x, y);
        assert_eq!(x.vni, 4096);
        assert_eq!(x.gateway.to_string(), "10.90.0.1");
        // The same name with another subnet: refused, naming the difference.
        let err = b
            .ensure_network(&request("ov1", "10.91.0.0/24"), "B")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClusterError::Conflict(_))
                && err
                    .to_string()
                    .contains("subnet 10.91.0.0/24 (it has 10.90.0.0/24)"),
            "{err}"
        );
        // Another network: the next VNI; a VNI asked for that is taken: refused.
        let second = a
            .ensure_network(&request("ov2", "10.90.0.0/24"), "A")
            .await
            .unwrap();
        assert_eq!(second.vni, 4097);
        let mut taken = request("ov3", "10.92.0.0/24");
        taken.vni = Some(4096);
        let err = a.ensure_network(&taken, "A").await.unwrap_err();
        assert!(err.to_string().contains("VNI 4096 is used"), "{err}");
        let err = a
            .ensure_network(&request("a/b", "10.93.0.0/24"), "A")
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterError::Invalid(_)), "{err}");
        assert!(a.network("ov3").await.unwrap().is_none(), "half-made");
        // Removed once no host holds a block of it; its VNI is free again.
        assert!(a.remove_network("ov1").await.unwrap());
        let again = a
            .ensure_network(&request("ov4", "10.94.0.0/24"), "A")
            .await
            .unwrap();
        assert_eq!(again.vni, 4096);
    });
}

#[test]
fn blocks_are_claimed_once_and_return_when_a_hosts_lease_lapses() {
    with_etcd(|endpoint| async move {
        let c = connect(&endpoint).await;
        let ttl = Duration::from_secs(2);
        let a = Membership::join(c.clone(), host("A", "192.168.50.1"), ttl, None)
            .await
            .unwrap();
        let b = Membership::join(c.clone(), host("B", "192.168.50.2"), ttl, None)
            .await
            .unwrap();
        let spec = c
            .ensure_network(&request("ov1", "10.90.0.0/24"), "A")
            .await
            .unwrap();
        // Sixteen /28 blocks in a /24, each claimed by exactly one host even
        // when both ask at once.
        let mut claims = Vec::new();
        for _ in 0..8 {
            let (x, y) = tokio::join!(
                c.claim_block(&spec, "A", a.lease()),
                c.claim_block(&spec, "B", b.lease())
            );
            claims.push(x.unwrap());
            claims.push(y.unwrap());
        }
        let distinct: std::collections::BTreeSet<_> = claims.iter().collect();
        assert_eq!(distinct.len(), 16, "{claims:?}");
        let err = c.claim_block(&spec, "A", a.lease()).await.unwrap_err();
        assert!(err.to_string().contains("every address block"), "{err}");
        let err = c.remove_network("ov1").await.unwrap_err();
        assert!(
            err.to_string().contains("still used by hosts A, B"),
            "{err}"
        );

        // B stops renewing (cut off, or killed for good): past its TTL its
        // record and blocks are gone; A's stay.
        drop(b);
        tokio::time::sleep(ttl * 3).await;
        let hosts: Vec<String> = c
            .hosts()
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.host)
            .collect();
        assert_eq!(hosts, ["A"]);
        let held = c.blocks(&spec.id).await.unwrap();
        assert_eq!(held.len(), 8, "{held:?}");
        assert!(held.iter().all(|b| b.host == "A"));
        // Its blocks are free for others.
        c.claim_block(&spec, "A", a.lease()).await.unwrap();
        // Leaving gives everything back at once.
        a.leave().await.unwrap();
        assert!(c.blocks(&spec.id).await.unwrap().is_empty());
        assert!(c.hosts().await.unwrap().is_empty());
    });
}

#[test]
fn a_freed_block_is_claimed_again_only_after_the_others() {
    // A host cut off past its lease loses its blocks, but its containers keep
    // their addresses: others take the blocks never held first.
    with_etcd(|endpoint| async move {
        let c = connect(&endpoint).await;
        let ttl = Duration::from_secs(10);
        let a = Membership::join(c.clone(), host("A", "192.168.50.1"), ttl, None)
            .await
            .unwrap();
        let spec = c
            .ensure_network(&request("ov2", "10.91.0.0/24"), "A")
            .await
            .unwrap();
        let first = c.claim_block(&spec, "A", a.lease()).await.unwrap();
        assert_eq!(first.to_string(), "10.91.0.0/28");
        c.claim_block(&spec, "A", a.lease()).await.unwrap();
        c.release_block(&spec, first, "A").await.unwrap();
        let mut order = Vec::new();
        for _ in 0..15 {
            order.push(
                c.claim_block(&spec, "A", a.lease())
                    .await
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(order[0], "10.91.0.32/28", "{order:?}");
        assert_eq!(
            order.last().map(String::as_str),
            Some("10.91.0.0/28"),
            "{order:?}"
        );
        a.leave().await.unwrap();
    });
}

#[test]
fn a_restarted_host_keeps_its_lease_and_its_blocks() {
    with_etcd(|endpoint| async move {
        let c = connect(&endpoint).await;
        let ttl = Duration::from_secs(3);
        let first = Membership::join(c.clone(), host("A", "192.168.50.1"), ttl, None)
            .await
            .unwrap();
        let lease = first.lease();
        let spec = c
            .ensure_network(&request("ov1", "10.90.0.0/24"), "A")
            .await
            .unwrap();
        let block = c.claim_block(&spec, "A", lease).await.unwrap();
        drop(first); // netd killed
        tokio::time::sleep(Duration::from_secs(1)).await;
        let again = Membership::join(c.clone(), host("A", "192.168.50.1"), ttl, Some(lease))
            .await
            .unwrap();
        assert_eq!(again.lease(), lease, "a live lease was not taken up again");
        tokio::time::sleep(ttl * 2).await;
        let held = c.blocks(&spec.id).await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].block, block);
        // Another host cannot take it; the holder can claim it again.
        let err = c.reclaim_block(&spec, block, "B", lease).await.unwrap_err();
        assert!(err.to_string().contains("held by host A"), "{err}");
        c.reclaim_block(&spec, block, "A", again.lease())
            .await
            .unwrap();
    });
}

fn peer(ip: &str, host: &str) -> PeerRecord {
    PeerRecord {
        ip: ip.parse().unwrap(),
        mac: "02:42:0a:5a:00:02".into(),
        host: host.into(),
        vtep: "192.168.50.2".parse().unwrap(),
    }
}

async fn next(w: &mut PeerWatch) -> PeerEvent {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("a peer event within 10 s")
        .expect("the watch runs")
}

#[test]
fn peers_are_followed_through_etcd_going_away_and_errors_say_so() {
    let h = TestHost::new().unwrap();
    let mut etcd = Etcd::start(&h).unwrap();
    let endpoint = etcd.endpoint().to_string();
    let etcd = &mut etcd;
    h.block_on_inside(|| async move {
        let c = connect(&endpoint).await;
        let b = Membership::join(
            c.clone(),
            host("B", "192.168.50.2"),
            Duration::from_secs(10),
            None,
        )
        .await
        .unwrap();
        let spec = c
            .ensure_network(&request("ov1", "10.90.0.0/24"), "A")
            .await
            .unwrap();
        c.put_peer(&spec.id, &peer("10.90.0.2", "B"), b.lease())
            .await
            .unwrap();
        let mut w = PeerWatch::start(c.clone(), spec.id.clone());
        assert_eq!(
            next(&mut w).await,
            PeerEvent::Resync(vec![peer("10.90.0.2", "B")])
        );
        c.put_peer(&spec.id, &peer("10.90.0.3", "B"), b.lease())
            .await
            .unwrap();
        assert_eq!(next(&mut w).await, PeerEvent::Put(peer("10.90.0.3", "B")));
        // Only the host that published a peer withdraws it.
        c.delete_peer(&spec.id, "10.90.0.2".parse().unwrap(), "A")
            .await
            .unwrap();
        c.delete_peer(&spec.id, "10.90.0.2".parse().unwrap(), "B")
            .await
            .unwrap();
        assert_eq!(
            next(&mut w).await,
            PeerEvent::Delete("10.90.0.2".parse().unwrap())
        );

        // etcd goes away: a global change fails with a clear error.
        etcd.stop().unwrap();
        let err = c
            .ensure_network(&request("ov2", "10.91.0.0/24"), "A")
            .await
            .unwrap_err();
        assert!(err.is_unreachable(), "{err}");
        assert!(
            err.to_string()
                .contains("cluster store (etcd) is unreachable"),
            "{err}"
        );
        // Back: the change goes through, and the watch resumes where it was.
        etcd.launch().unwrap();
        c.ensure_network(&request("ov2", "10.91.0.0/24"), "A")
            .await
            .unwrap();
        c.put_peer(&spec.id, &peer("10.90.0.4", "B"), b.lease())
            .await
            .unwrap();
        assert_eq!(next(&mut w).await, PeerEvent::Put(peer("10.90.0.4", "B")));
    })
    .unwrap();
}
