//! The allocator as a caller sees it: pools, addresses, default pools, and every bad
//! request refused with a clear error and the state left as it was.

use ipam::{
    ula_prefix, AddressSpace, Change, Config, Ipam, IpamError, Journal, PoolId, PoolRequest,
};
use ipnet::IpNet;
use std::net::IpAddr;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ipam() -> Ipam {
    Ipam::new(Config::defaults("host-1")).unwrap()
}

fn subnet(ipam: &mut Ipam, subnet: &str, range: Option<&str>) -> PoolId {
    ipam.request_pool(&PoolRequest {
        subnet: Some(net(subnet)),
        range: range.map(net),
        ..PoolRequest::default()
    })
    .unwrap()
}

/// Run a request that must fail, and check it changed nothing.
fn refused<J: Journal, T: std::fmt::Debug>(
    ipam: &mut Ipam<J>,
    op: impl FnOnce(&mut Ipam<J>) -> Result<T, IpamError>,
) -> String {
    let before = ipam.state();
    let err = op(ipam).expect_err("the request should be refused");
    assert_eq!(ipam.state(), before, "a refused request changed the state");
    err.to_string()
}

#[test]
fn an_overlapping_pool_is_refused_naming_its_holder() {
    let mut ipam = ipam();
    ipam.request_pool(&PoolRequest {
        subnet: Some(net("10.1.0.0/16")),
        owner: Some("network frontend".into()),
        ..PoolRequest::default()
    })
    .unwrap();
    subnet(&mut ipam, "10.2.0.0/24", None);
    let err = refused(&mut ipam, |i| {
        i.request_pool(&PoolRequest {
            subnet: Some(net("10.1.2.0/24")),
            ..PoolRequest::default()
        })
    });
    assert_eq!(
        err,
        "pool 10.1.2.0/24 overlaps 10.1.0.0/16, which is allocated to network frontend"
    );
    let err = refused(&mut ipam, |i| {
        i.request_pool(&PoolRequest {
            subnet: Some(net("10.0.0.0/8")),
            ..PoolRequest::default()
        })
    });
    assert!(err.contains("overlaps 10."), "{err}");
    // The global space is separate from the local one.
    ipam.request_pool(&PoolRequest {
        space: Some(AddressSpace::Global),
        subnet: Some(net("10.1.0.0/16")),
        ..PoolRequest::default()
    })
    .unwrap();
}

#[test]
fn default_pools_give_a_thousand_networks_and_skip_exclusions() {
    let mut ipam = ipam();
    let first = ipam
        .request_pool(&PoolRequest {
            exclude: vec![net("172.24.0.0/23"), net("192.168.1.0/24")],
            ..PoolRequest::default()
        })
        .unwrap();
    assert_eq!(first.subnet, net("172.24.2.0/24"));
    let mut count = 1;
    while ipam.request_pool(&PoolRequest::default()).is_ok() {
        count += 1;
    }
    assert_eq!(count, 1024);
    let err = refused(&mut ipam, |i| i.request_pool(&PoolRequest::default()));
    assert_eq!(
        err,
        "no free IPv4 subnet left in the default pools (172.24.0.0/14 in /24s); \
         free a network, give a subnet, or add default pools"
    );
    // A released subnet is the next one handed out.
    ipam.release_pool(&first).unwrap();
    let again = ipam.request_pool(&PoolRequest::default()).unwrap();
    assert_eq!(again.subnet, net("172.24.2.0/24"));
}

#[test]
fn ipv6_pools_come_from_the_hosts_ula_prefix() {
    let mut ipam = ipam();
    let ula = IpNet::V6(ula_prefix("host-1"));
    let a = ipam
        .request_pool(&PoolRequest {
            v6: true,
            ..PoolRequest::default()
        })
        .unwrap();
    let b = ipam
        .request_pool(&PoolRequest {
            v6: true,
            ..PoolRequest::default()
        })
        .unwrap();
    for id in [a, b] {
        assert!(ula.contains(&id.subnet), "{} not in {ula}", id.subnet);
        assert_eq!(id.subnet.prefix_len(), 64);
    }
    assert_ne!(a.subnet, b.subnet);
    let addr = ipam.request_address(&a, None).unwrap();
    assert_eq!(addr.addr(), ip(&(a.subnet.network().to_string() + "1")));
    let err = refused(&mut ipam, |i| {
        i.request_pool(&PoolRequest {
            space: Some(AddressSpace::Global),
            v6: true,
            ..PoolRequest::default()
        })
    });
    assert!(err.contains("give a subnet"), "{err}");
}

#[test]
fn addresses_come_lowest_first_from_the_range_and_answer_in_cidr_form() {
    let mut ipam = ipam();
    let id = subnet(&mut ipam, "10.9.0.0/16", Some("10.9.4.0/24"));
    assert_eq!(id.to_string(), "local/10.9.0.0/16/10.9.4.0/24");
    assert_eq!(ipam.request_address(&id, None).unwrap(), net("10.9.4.0/16"));
    assert_eq!(
        ipam.request_address(&id, Some(ip("10.9.0.1"))).unwrap(),
        net("10.9.0.1/16")
    );
    assert_eq!(ipam.request_address(&id, None).unwrap(), net("10.9.4.1/16"));
    ipam.release_address(&id, ip("10.9.4.0")).unwrap();
    assert_eq!(ipam.request_address(&id, None).unwrap(), net("10.9.4.0/16"));
    let info = ipam.pool_info(&id).unwrap();
    assert_eq!((info.size, info.allocated), (65536, 3));
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let mut ipam = ipam();
    let v4 = subnet(&mut ipam, "10.0.0.0/24", None);
    let v6 = subnet(&mut ipam, "fd00:1::/64", None);
    ipam.request_address(&v4, Some(ip("10.0.0.5"))).unwrap();

    let pool = |s: &str, r: Option<&str>| PoolRequest {
        subnet: Some(net(s)),
        range: r.map(net),
        ..PoolRequest::default()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            refused(&mut ipam, |i| i.request_pool(&pool("10.5.0.1/24", None))),
            "invalid pool: 10.5.0.1/24 has host bits set: did you mean 10.5.0.0/24?",
        ),
        (
            refused(&mut ipam, |i| {
                i.request_pool(&pool("10.5.0.0/24", Some("10.6.0.0/25")))
            }),
            "invalid sub-pool: 10.6.0.0/25 is not inside pool 10.5.0.0/24",
        ),
        (
            refused(&mut ipam, |i| {
                i.request_pool(&pool("10.5.0.0/24", Some("fd00::/120")))
            }),
            "invalid sub-pool: fd00::/120 and pool 10.5.0.0/24 are of different IP families",
        ),
        (
            refused(&mut ipam, |i| {
                i.request_pool(&PoolRequest {
                    range: Some(net("10.5.0.0/25")),
                    ..PoolRequest::default()
                })
            }),
            "invalid sub-pool: 10.5.0.0/25 was given without a pool to contain it",
        ),
        (
            refused(&mut ipam, |i| {
                i.request_address(&"local/10.7.0.0/24".parse().unwrap(), None)
            }),
            "unknown pool local/10.7.0.0/24",
        ),
        (
            refused(&mut ipam, |i| {
                i.request_address(&"local/10.0.0.0/24/10.0.0.0/25".parse().unwrap(), None)
            }),
            "unknown pool local/10.0.0.0/24/10.0.0.0/25",
        ),
        (
            refused(&mut ipam, |i| i.request_address(&v6, Some(ip("10.0.0.9")))),
            "10.0.0.9 is not an IPv6 address, as pool fd00:1::/64 needs",
        ),
        (
            refused(&mut ipam, |i| i.request_address(&v4, Some(ip("10.0.1.9")))),
            "10.0.1.9 is outside pool 10.0.0.0/24",
        ),
        (
            refused(&mut ipam, |i| {
                i.request_address(&v4, Some(ip("10.0.0.255")))
            }),
            "10.0.0.255 is the broadcast address of 10.0.0.0/24 and cannot be allocated",
        ),
        (
            refused(&mut ipam, |i| i.request_address(&v4, Some(ip("10.0.0.5")))),
            "10.0.0.5 is already allocated in 10.0.0.0/24",
        ),
        (
            refused(&mut ipam, |i| i.release_address(&v4, ip("10.0.0.6"))),
            "10.0.0.6 is not allocated in 10.0.0.0/24",
        ),
        (
            refused(&mut ipam, |i| {
                i.release_pool(&"global/10.0.0.0/24".parse().unwrap())
            }),
            "unknown pool global/10.0.0.0/24",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    // A double release is refused the second time.
    ipam.release_address(&v4, ip("10.0.0.5")).unwrap();
    let err = refused(&mut ipam, |i| i.release_address(&v4, ip("10.0.0.5")));
    assert_eq!(err, "10.0.0.5 is not allocated in 10.0.0.0/24");
    for bad in [
        "local/10.0.0.1/24",
        "local/10.0.0/24",
        "site/10.0.0.0/24",
        "10.0.0.0/24",
    ] {
        let err = bad.parse::<PoolId>().unwrap_err().to_string();
        assert!(err.starts_with("invalid pool id"), "{bad}: {err}");
    }
}

/// A journal that fails when told to, and keeps what it recorded.
#[derive(Default)]
struct Recorder {
    fail: bool,
    changes: Vec<Change>,
}

impl Journal for Recorder {
    type Error = String;
    fn record(&mut self, change: &Change) -> Result<(), String> {
        if self.fail {
            return Err("disk full".into());
        }
        self.changes.push(change.clone());
        Ok(())
    }
}

#[test]
fn a_change_that_cannot_be_saved_is_not_made() {
    let config = Config::defaults("host-1");
    let mut ipam = Ipam::with_journal(config.clone(), Recorder::default()).unwrap();
    let id = ipam.request_pool(&PoolRequest::default()).unwrap();
    ipam.request_address(&id, None).unwrap();
    ipam.journal_mut().fail = true;
    let err = refused(&mut ipam, |i| i.request_address(&id, None));
    assert_eq!(err, "saving the IPAM change: disk full");
    refused(&mut ipam, |i| i.request_pool(&PoolRequest::default()));
    refused(&mut ipam, |i| i.release_pool(&id));
    ipam.journal_mut().fail = false;

    // Replaying the journal rebuilds the same allocator.
    let mut replayed = Ipam::new(config).unwrap();
    for change in &ipam.journal().changes {
        replayed.apply(change).unwrap();
    }
    assert_eq!(replayed.state(), ipam.state());
    assert_eq!(
        replayed.request_address(&id, None).unwrap(),
        ipam.request_address(&id, None).unwrap()
    );
}

#[test]
fn state_survives_json_and_restores_serial_allocation() {
    let config = Config::defaults("host-1");
    let mut ipam = Ipam::new(config.clone()).unwrap();
    let id = ipam
        .request_pool(&PoolRequest {
            subnet: Some(net("10.3.0.0/29")),
            serial: true,
            owner: Some("n1".into()),
            ..PoolRequest::default()
        })
        .unwrap();
    for _ in 0..3 {
        ipam.request_address(&id, None).unwrap();
    }
    ipam.release_address(&id, ip("10.3.0.2")).unwrap();
    let json = serde_json::to_string(&ipam.state()).unwrap();
    let state = serde_json::from_str(&json).unwrap();
    let mut restored = Ipam::restore(config, &state, ipam::NoJournal).unwrap();
    // Serial allocation resumes after .3 in both, not at the freed .2.
    for _ in 0..4 {
        assert_eq!(
            restored.request_address(&id, None).ok(),
            ipam.request_address(&id, None).ok()
        );
    }
    assert_eq!(restored.state(), ipam.state());
}
