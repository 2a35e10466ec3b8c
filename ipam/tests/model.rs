//! Property tests: the allocator against brute-force models.

use ipam::{Change, Config, DefaultPool, Ipam, Journal, PoolId, PoolRequest};
use ipnet::IpNet;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::IpAddr;

#[derive(Debug, Clone)]
enum Op {
    Any,
    Specific(u16),
    Release(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Any),
        1 => (0u16..80).prop_map(Op::Specific),
        2 => (0u16..80).prop_map(Op::Release),
    ]
}

/// A small pool: an IPv4 /26../29 or IPv6 /122../125 subnet, maybe with a range.
#[derive(Debug, Clone)]
struct Setup {
    v6: bool,
    host_bits: u8,
    /// Range as (extra prefix bits, which part).
    range: Option<(u8, u8)>,
    serial: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        3u8..=6,
        proptest::option::of((1u8..=2, 0u8..4)),
        any::<bool>(),
    )
        .prop_map(|(v6, host_bits, range, serial)| Setup {
            v6,
            host_bits,
            range,
            serial,
        })
}

impl Setup {
    fn subnet(&self) -> IpNet {
        if self.v6 {
            format!("fd00:1::/{}", 128 - self.host_bits)
                .parse()
                .unwrap()
        } else {
            format!("10.7.0.0/{}", 32 - self.host_bits).parse().unwrap()
        }
    }

    fn size(&self) -> u16 {
        1 << self.host_bits
    }

    /// Range bounds as offsets.
    fn range_bounds(&self) -> (u16, u16) {
        match self.range {
            None => (0, self.size() - 1),
            Some((extra, part)) => {
                let len = self.size() >> extra;
                let part = u16::from(part) % (1 << extra);
                (part * len, part * len + len - 1)
            }
        }
    }

    fn range(&self) -> Option<IpNet> {
        self.range.map(|(extra, _)| {
            let (lo, _) = self.range_bounds();
            IpNet::new(self.addr(lo), self.subnet().prefix_len() + extra).unwrap()
        })
    }

    fn addr(&self, offset: u16) -> IpAddr {
        let base = self.subnet().network();
        match base {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) + u32::from(offset)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + u128::from(offset)).into()),
        }
    }

    fn reserved(&self, offset: u16) -> bool {
        offset == 0 || (!self.v6 && offset == self.size() - 1)
    }

    fn start(&self) -> (Ipam<Recorder>, PoolId) {
        let mut ipam = Ipam::with_journal(Config::defaults("h"), Recorder::default()).unwrap();
        let id = ipam
            .request_pool(&PoolRequest {
                subnet: Some(self.subnet()),
                range: self.range(),
                serial: self.serial,
                ..PoolRequest::default()
            })
            .unwrap();
        (ipam, id)
    }
}

#[derive(Debug, Clone, Default)]
struct Recorder(Vec<Change>);

impl Journal for Recorder {
    type Error = String;
    fn record(&mut self, change: &Change) -> Result<(), String> {
        self.0.push(change.clone());
        Ok(())
    }
}

/// Apply one op; its outcome as text (address or error message).
fn run<J: Journal>(s: &Setup, ipam: &mut Ipam<J>, id: &PoolId, op: &Op) -> Result<IpAddr, String> {
    match op {
        Op::Any => ipam.request_address(id, None).map(|a| a.addr()),
        Op::Specific(o) => ipam.request_address(id, Some(s.addr(*o))).map(|a| a.addr()),
        Op::Release(o) => ipam.release_address(id, s.addr(*o)).map(|()| s.addr(*o)),
    }
    .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Addresses are unique, inside the pool (and the range for "any"), never reserved;
    /// lowest-free pools give exactly the lowest free address; failures change nothing.
    #[test]
    fn addresses_agree_with_a_set(s in setup(), ops in proptest::collection::vec(op(), 1..120)) {
        let (mut ipam, id) = s.start();
        let mut model: BTreeSet<u16> = BTreeSet::new();
        let (lo, hi) = s.range_bounds();
        let usable = |o: u16| o < s.size() && !s.reserved(o);
        for op in &ops {
            let before = ipam.state();
            let result = run(&s, &mut ipam, &id, op);
            match (op, &result) {
                (Op::Any, Ok(addr)) => {
                    let o = (0..s.size()).find(|&o| s.addr(o) == *addr).expect("inside the pool");
                    prop_assert!(o >= lo && o <= hi, "{} outside the range", addr);
                    if !s.serial {
                        let lowest = (lo..=hi).find(|&x| usable(x) && !model.contains(&x));
                        prop_assert_eq!(lowest, Some(o), "not the lowest free address");
                    }
                    prop_assert!(usable(o) && model.insert(o), "{} reserved or handed out twice", addr);
                }
                (Op::Any, Err(_)) => {
                    prop_assert!((lo..=hi).all(|o| !usable(o) || model.contains(&o)), "refused with room left: {:?}", result);
                }
                (Op::Specific(o), Ok(_)) => prop_assert!(usable(*o) && model.insert(*o)),
                (Op::Specific(o), Err(_)) => prop_assert!(!usable(*o) || model.contains(o)),
                (Op::Release(o), Ok(_)) => prop_assert!(model.remove(o)),
                (Op::Release(o), Err(_)) => prop_assert!(!model.contains(o)),
            }
            if result.is_err() {
                prop_assert_eq!(ipam.state(), before, "a failed {:?} changed the state", op);
            }
            for &o in &model {
                prop_assert!(ipam.is_allocated(&id, s.addr(o)).unwrap());
            }
        }
        // Release then request of the same address works.
        if let Some(&o) = model.iter().next() {
            ipam.release_address(&id, s.addr(o)).unwrap();
            prop_assert_eq!(ipam.request_address(&id, Some(s.addr(o))).unwrap().addr(), s.addr(o));
        }
    }

    /// Restoring saved state, or replaying the journal, then continuing gives the same
    /// results as never having stopped.
    #[test]
    fn restore_and_replay_continue_identically(
        s in setup(),
        ops in proptest::collection::vec(op(), 1..80),
        cut in 0usize..80,
    ) {
        let (mut ipam, id) = s.start();
        let cut = cut.min(ops.len());
        for op in &ops[..cut] {
            let _ = run(&s, &mut ipam, &id, op);
        }
        let config = ipam.config().clone();
        let mut restored = Ipam::restore(config.clone(), &ipam.state(), ipam::NoJournal).unwrap();
        let mut replayed = Ipam::new(config).unwrap();
        for change in &ipam.journal().0 {
            replayed.apply(change).unwrap();
        }
        for op in &ops[cut..] {
            let want = run(&s, &mut ipam, &id, op);
            prop_assert_eq!(&run(&s, &mut restored, &id, op), &want);
            prop_assert_eq!(&run(&s, &mut replayed, &id, op), &want);
        }
        prop_assert_eq!(restored.state(), ipam.state());
        prop_assert_eq!(replayed.state(), ipam.state());
    }

    /// A pool is granted exactly when it overlaps no granted pool.
    #[test]
    fn overlap_detection_agrees_with_brute_force(
        nets in proptest::collection::vec((0u32..65536, 16u8..=30), 1..40),
    ) {
        let mut ipam = Ipam::new(Config::defaults("h")).unwrap();
        let mut granted: Vec<(u32, u32)> = Vec::new();
        for (offset, len) in nets {
            let base = 0x0a00_0000u32 | (offset & 0xffff);
            let mask = u32::MAX << (32 - len);
            let lo = base & mask;
            let hi = lo | !mask;
            let net = IpNet::new(IpAddr::V4(lo.into()), len).unwrap();
            let overlaps = granted.iter().any(|&(a, b)| a <= hi && lo <= b);
            let result = ipam.request_pool(&PoolRequest { subnet: Some(net), ..PoolRequest::default() });
            prop_assert_eq!(result.is_ok(), !overlaps, "{}: {:?}", net, result);
            if result.is_ok() {
                granted.push((lo, hi));
            }
        }
    }

    /// "Any" pool: the first candidate overlapping neither a pool nor an exclusion,
    /// also after releases.
    #[test]
    fn pool_choice_is_first_fit(
        steps in proptest::collection::vec((any::<bool>(), 0usize..16, proptest::collection::vec(0u32..16, 0..3)), 1..40),
    ) {
        let config = Config {
            local_v4: vec![DefaultPool { base: "10.0.0.0/22".parse().unwrap(), size: 26 }],
            local_v6: vec![],
            global_v4: vec![],
            global_v6: vec![],
        };
        let mut ipam = Ipam::new(config).unwrap();
        let candidate = |k: u32| -> IpNet { IpNet::new(IpAddr::V4((0x0a00_0000u32 + k * 64).into()), 26).unwrap() };
        let mut taken: Vec<PoolId> = Vec::new();
        for (request, release_at, excluded) in steps {
            if request {
                let exclude: Vec<IpNet> = excluded.iter().map(|&k| candidate(k)).collect();
                let expected = (0..16).map(candidate).find(|c| {
                    !exclude.contains(c) && !taken.iter().any(|t| t.subnet == *c)
                });
                let got = ipam.request_pool(&PoolRequest { exclude, ..PoolRequest::default() });
                prop_assert_eq!(got.as_ref().ok().map(|id| id.subnet), expected);
                if let Ok(id) = got {
                    taken.push(id);
                }
            } else if !taken.is_empty() {
                let id = taken.remove(release_at % taken.len());
                ipam.release_pool(&id).unwrap();
            }
        }
    }
}
