//! Crash torture: bursts of mixed operations (networks, sandboxes, attaches,
//! detaches, endpoints, and dockerd's plugin calls), most in parallel, with netd
//! killed by SIGKILL at a random point of each burst. After every restart:
//!
//! - every answered request is there (or, for a delete, gone);
//! - the allocator holds exactly what the records hold: each native pool its
//!   gateway, aux addresses and endpoints' addresses; dockerd's pools what dockerd
//!   was given (and at most one more address per request that got no answer);
//! - no address is on two interfaces, no two endpoints of a network share an
//!   address or a MAC;
//! - the kernel holds exactly what the records say: no orphan link, namespace,
//!   mount or sandbox directory, and every stored join has its interface.
//!
//! `NETD_TORTURE_ROUNDS` (default 24) bursts of `NETD_TORTURE_BURST` (default 45)
//! operations, from seed `NETD_TORTURE_SEED` (default: the clock; printed).
//! `bench/crash-torture` runs it longer.

mod common;

use common::{pool_addresses, runtime, Netd};
use netd::client::Client;
use netd::controller::{
    Attach, Attachment, EndpointCreate, NetworkCreate, SandboxCreate, SubnetRequest,
};
use netd::model::{EndpointRecord, NetworkRecord, Origin, SandboxRecord};
use nix::sys::signal::Signal;
use plugin_api::client::PluginClient;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const ENGINE_OWNER: &str = "dockerd (through netd's IpamDriver)";
const MAX_NETWORKS: usize = 5;
const MAX_SANDBOXES: usize = 20;
const MAX_DOCKER_NETWORKS: usize = 3;
const MAX_ENDPOINTS_PER_NETWORK: usize = 40;

/// xorshift64*: enough randomness for choosing, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hex_id(rng: &mut Rng) -> String {
    (0..4).map(|_| format!("{:016x}", rng.next())).collect()
}

/// One operation of a burst.
#[derive(Debug, Clone)]
enum Op {
    NetCreate {
        name: String,
        subnet: String,
    },
    NetDelete {
        name: String,
    },
    SbCreate {
        name: String,
    },
    /// A new sandbox attached to a network in one request (a CNI ADD's).
    SbCreateAttached {
        name: String,
        net: String,
    },
    SbDelete {
        name: String,
    },
    Attach {
        sb: String,
        net: String,
    },
    Detach {
        sb: String,
        ep: String,
    },
    EpCreate {
        net: String,
        name: String,
    },
    EpDelete {
        ep: String,
    },
    DockerNetUp {
        id: String,
        subnet: String,
    },
    DockerNetDown {
        id: String,
        pool: String,
        gateway: IpAddr,
    },
    DockerEpUp {
        net: String,
        pool: String,
        ep: String,
        key: String,
    },
    DockerEpDown {
        net: String,
        pool: String,
        ep: String,
        addr: IpAddr,
    },
}

/// What must hold after the restart because netd answered it.
#[derive(Debug, Clone, PartialEq)]
enum Fact {
    Network(String, Option<String>),
    Sandbox(String, bool),
    /// Sandbox NAME and its endpoint ENDPOINT on network NET, made by one
    /// request, answered or not: both there and joined, or neither.
    Whole(String, String, String),
    Endpoint(String, Option<(Option<String>, String)>),
    EnginePool(String, bool),
    EngineAddress(String, IpAddr, bool),
    DockerNetwork(String, bool),
    DockerJoin(String, bool),
}

/// What an operation got answered, and which of its requests got no answer.
#[derive(Debug, Default)]
struct Outcome {
    facts: Vec<Fact>,
    /// Pools asked for without an answer (any new engine pool may exist).
    pools_unanswered: usize,
    /// Per engine pool, addresses asked for without an answer.
    addresses_unanswered: Vec<String>,
}

/// The state, as last read from netd.
#[derive(Debug, Default, Clone)]
struct Model {
    networks: Vec<NetworkRecord>,
    endpoints: Vec<EndpointRecord>,
    sandboxes: Vec<SandboxRecord>,
    pools: Vec<ipam::PoolState>,
}

impl Model {
    async fn read(c: &Client) -> Model {
        Model {
            networks: c.networks().await.unwrap(),
            endpoints: c.endpoints().await.unwrap(),
            sandboxes: c.sandboxes().await.unwrap(),
            pools: c.pools().await.unwrap(),
        }
    }

    fn native_networks(&self) -> Vec<&NetworkRecord> {
        self.networks
            .iter()
            .filter(|n| n.origin == Origin::Native)
            .collect()
    }

    fn docker_networks(&self) -> Vec<&NetworkRecord> {
        self.networks
            .iter()
            .filter(|n| n.origin == Origin::Docker)
            .collect()
    }

    fn endpoints_of(&self, net: &str) -> Vec<&EndpointRecord> {
        self.endpoints.iter().filter(|e| e.network == net).collect()
    }

    fn engine_pool_of(&self, net: &NetworkRecord) -> Option<String> {
        let subnet = net.subnets.first()?.subnet;
        self.pools
            .iter()
            .find(|p| p.id.subnet == subnet && p.owner.as_deref() == Some(ENGINE_OWNER))
            .map(|p| p.id.to_string())
    }
}

/// Counters for names and subnets no earlier round used.
#[derive(Default)]
struct Names {
    next: u32,
}

impl Names {
    fn take(&mut self) -> u32 {
        self.next += 1;
        self.next
    }
}

/// The networks a burst may attach to: not being deleted, not full.
fn attachable<'a>(
    natives: &[&'a NetworkRecord],
    deleting: &BTreeSet<String>,
    per_net: &HashMap<String, usize>,
) -> Vec<&'a NetworkRecord> {
    natives
        .iter()
        .copied()
        .filter(|n| !deleting.contains(&n.name))
        .filter(|n| per_net.get(&n.id).copied().unwrap_or(0) < MAX_ENDPOINTS_PER_NETWORK)
        .collect()
}

/// Choose a burst of operations on distinct objects.
fn plan(model: &Model, rng: &mut Rng, names: &mut Names, size: usize, dir: &Path) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut used_nets: BTreeSet<String> = BTreeSet::new();
    let mut deleting_nets: BTreeSet<String> = BTreeSet::new();
    let mut deleting_sbs: BTreeSet<String> = BTreeSet::new();
    let mut used_sbs: BTreeSet<String> = BTreeSet::new();
    let mut busy_eps: BTreeSet<String> = BTreeSet::new();
    let mut new_nets = 0;
    let mut new_sbs = 0;
    let mut new_docker = 0;
    let mut per_net: HashMap<String, usize> = HashMap::new();
    for e in &model.endpoints {
        *per_net.entry(e.network.clone()).or_default() += 1;
    }
    let sb_name = |id: &str| {
        model
            .sandboxes
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.name.clone())
    };
    for _ in 0..size * 4 {
        if ops.len() >= size {
            break;
        }
        let natives = model.native_networks();
        let dockers = model.docker_networks();
        match rng.below(12) {
            0 if natives.len() + new_nets < MAX_NETWORKS => {
                let n = names.take();
                new_nets += 1;
                ops.push(Op::NetCreate {
                    name: format!("n{n}"),
                    subnet: format!("10.{}.{}.0/24", 100 + n / 256, n % 256),
                });
            }
            1 => {
                let free: Vec<&&NetworkRecord> = natives
                    .iter()
                    .filter(|n| {
                        model.endpoints_of(&n.id).is_empty() && !used_nets.contains(&n.name)
                    })
                    .collect();
                if let Some(n) = rng.pick(&free) {
                    used_nets.insert(n.name.clone());
                    deleting_nets.insert(n.name.clone());
                    ops.push(Op::NetDelete {
                        name: n.name.clone(),
                    });
                }
            }
            2 if model.sandboxes.len() + new_sbs < MAX_SANDBOXES => {
                new_sbs += 1;
                let name = format!("s{}", names.take());
                let nets = attachable(&natives, &deleting_nets, &per_net);
                match (rng.below(2), rng.pick(&nets)) {
                    (0, Some(n)) => {
                        used_nets.insert(n.name.clone());
                        used_sbs.insert(name.clone());
                        *per_net.entry(n.id.clone()).or_default() += 1;
                        ops.push(Op::SbCreateAttached {
                            name,
                            net: n.name.clone(),
                        });
                    }
                    _ => ops.push(Op::SbCreate { name }),
                }
            }
            3 => {
                let free: Vec<&SandboxRecord> = model
                    .sandboxes
                    .iter()
                    .filter(|s| !used_sbs.contains(&s.name))
                    .filter(|s| s.endpoints.iter().all(|e| !busy_eps.contains(e)))
                    .collect();
                if let Some(s) = rng.pick(&free) {
                    used_sbs.insert(s.name.clone());
                    deleting_sbs.insert(s.name.clone());
                    busy_eps.extend(s.endpoints.iter().cloned());
                    ops.push(Op::SbDelete {
                        name: s.name.clone(),
                    });
                }
            }
            4..=6 => {
                let nets = attachable(&natives, &deleting_nets, &per_net);
                let sbs: Vec<&SandboxRecord> = model
                    .sandboxes
                    .iter()
                    .filter(|s| !deleting_sbs.contains(&s.name))
                    .collect();
                if let (Some(n), Some(s)) = (rng.pick(&nets), rng.pick(&sbs)) {
                    used_nets.insert(n.name.clone());
                    used_sbs.insert(s.name.clone());
                    *per_net.entry(n.id.clone()).or_default() += 1;
                    ops.push(Op::Attach {
                        sb: s.name.clone(),
                        net: n.name.clone(),
                    });
                }
            }
            7 | 8 => {
                let joined: Vec<(&EndpointRecord, String)> = model
                    .endpoints
                    .iter()
                    .filter(|e| e.origin == Origin::Native && !busy_eps.contains(&e.id))
                    .filter_map(|e| {
                        let sb = sb_name(e.join.as_ref()?.sandbox.as_ref()?)?;
                        (!deleting_sbs.contains(&sb)).then_some((e, sb))
                    })
                    .collect();
                if let Some((e, sb)) = rng.pick(&joined) {
                    busy_eps.insert(e.id.clone());
                    used_sbs.insert(sb.clone());
                    ops.push(Op::Detach {
                        sb: sb.clone(),
                        ep: e.id.clone(),
                    });
                }
            }
            9 => {
                if rng.below(2) == 0 {
                    let nets: Vec<&&NetworkRecord> = natives
                        .iter()
                        .filter(|n| !deleting_nets.contains(&n.name))
                        .collect();
                    if let Some(n) = rng.pick(&nets) {
                        used_nets.insert(n.name.clone());
                        ops.push(Op::EpCreate {
                            net: n.name.clone(),
                            name: format!("e{}", names.take()),
                        });
                    }
                } else {
                    let loose: Vec<&EndpointRecord> = model
                        .endpoints
                        .iter()
                        .filter(|e| e.origin == Origin::Native && e.join.is_none())
                        .filter(|e| !busy_eps.contains(&e.id))
                        .collect();
                    if let Some(e) = rng.pick(&loose) {
                        busy_eps.insert(e.id.clone());
                        ops.push(Op::EpDelete { ep: e.id.clone() });
                    }
                }
            }
            10 => {
                if dockers.len() + new_docker < MAX_DOCKER_NETWORKS && rng.below(2) == 0 {
                    let n = names.take();
                    new_docker += 1;
                    ops.push(Op::DockerNetUp {
                        id: hex_id(rng),
                        subnet: format!("10.{}.{}.0/24", 200 + n / 256, n % 256),
                    });
                } else {
                    let free: Vec<&&NetworkRecord> = dockers
                        .iter()
                        .filter(|n| {
                            model.endpoints_of(&n.id).is_empty() && !used_nets.contains(&n.id)
                        })
                        .collect();
                    if let Some(n) = rng.pick(&free) {
                        if let (Some(pool), Some(gw)) =
                            (model.engine_pool_of(n), n.subnets[0].gateway)
                        {
                            used_nets.insert(n.id.clone());
                            ops.push(Op::DockerNetDown {
                                id: n.id.clone(),
                                pool,
                                gateway: gw,
                            });
                        }
                    }
                }
            }
            _ => {
                if rng.below(2) == 0 {
                    let nets: Vec<&&NetworkRecord> = dockers
                        .iter()
                        .filter(|n| !used_nets.contains(&n.id))
                        .collect();
                    if let Some(n) = rng.pick(&nets) {
                        if let Some(pool) = model.engine_pool_of(n) {
                            used_nets.insert(n.id.clone());
                            let ep = hex_id(rng);
                            let key = dir.join(format!("key-{}", &ep[..12]));
                            ops.push(Op::DockerEpUp {
                                net: n.id.clone(),
                                pool,
                                ep,
                                key: key.display().to_string(),
                            });
                        }
                    }
                } else {
                    let eps: Vec<&EndpointRecord> = model
                        .endpoints
                        .iter()
                        .filter(|e| e.origin == Origin::Docker && !busy_eps.contains(&e.id))
                        .filter(|e| !used_nets.contains(&e.network))
                        .collect();
                    if let Some(e) = rng.pick(&eps) {
                        let net = model.networks.iter().find(|n| n.id == e.network);
                        if let Some(pool) = net.and_then(|n| model.engine_pool_of(n)) {
                            busy_eps.insert(e.id.clone());
                            used_nets.insert(e.network.clone());
                            ops.push(Op::DockerEpDown {
                                net: e.network.clone(),
                                pool,
                                ep: e.id.clone(),
                                addr: e.addresses[0].addr(),
                            });
                        }
                    }
                }
            }
        }
    }
    ops
}

/// A plugin call: the answer, or `None` when netd gave none (or refused).
async fn plugin(client: &PluginClient, method: &str, body: Value) -> Option<Value> {
    client.call::<Value, Value>(method, &body).await.ok()
}

/// Run one operation, noting each answer as a fact.
async fn run(op: Op, c: Client, p: PluginClient) -> Outcome {
    let mut out = Outcome::default();
    match op {
        Op::NetCreate { name, subnet } => {
            let req = NetworkCreate {
                name: name.clone(),
                subnets: vec![SubnetRequest {
                    subnet: Some(subnet.parse().unwrap()),
                    ..Default::default()
                }],
                ..Default::default()
            };
            if c.create_network(&req).await.is_ok() {
                out.facts.push(Fact::Network(name, Some(subnet)));
            }
        }
        Op::NetDelete { name } => {
            if c.delete_network(&name).await.is_ok() {
                out.facts.push(Fact::Network(name, None));
            }
        }
        Op::SbCreate { name } => {
            let req = SandboxCreate {
                name: Some(name.clone()),
                ..Default::default()
            };
            if c.create_sandbox(&req).await.is_ok() {
                out.facts.push(Fact::Sandbox(name, true));
            }
        }
        Op::SbCreateAttached { name, net } => {
            let ep = format!("{name}-e");
            let req = Attachment {
                sandbox: SandboxCreate {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                attach: Attach {
                    network: net.clone(),
                    name: Some(ep.clone()),
                    ..Default::default()
                },
            };
            out.facts.push(Fact::Whole(name.clone(), ep, net));
            if let Ok(a) = c.create_attached(&req).await {
                let addr = a.endpoint.addresses[0].addr().to_string();
                out.facts.push(Fact::Sandbox(name.clone(), true));
                out.facts
                    .push(Fact::Endpoint(a.endpoint.id, Some((Some(name), addr))));
            }
        }
        Op::SbDelete { name } => {
            if c.delete_sandbox(&name).await.is_ok() {
                out.facts.push(Fact::Sandbox(name, false));
            }
        }
        Op::Attach { sb, net } => {
            let req = Attach {
                network: net,
                ..Default::default()
            };
            if let Ok(ep) = c.attach(&sb, &req).await {
                let addr = ep.addresses[0].addr().to_string();
                out.facts
                    .push(Fact::Endpoint(ep.id, Some((Some(sb), addr))));
            }
        }
        Op::Detach { sb, ep } => {
            if c.detach(&sb, &ep).await.is_ok() {
                out.facts.push(Fact::Endpoint(ep, None));
            }
        }
        Op::EpCreate { net, name } => {
            let req = EndpointCreate {
                network: net,
                name: Some(name),
                ..Default::default()
            };
            if let Ok(ep) = c.create_endpoint(&req).await {
                let addr = ep.addresses[0].addr().to_string();
                out.facts.push(Fact::Endpoint(ep.id, Some((None, addr))));
            }
        }
        Op::EpDelete { ep } => {
            if c.delete_endpoint(&ep).await.is_ok() {
                out.facts.push(Fact::Endpoint(ep, None));
            }
        }
        Op::DockerNetUp { id, subnet } => docker_net_up(&p, id, subnet, &mut out).await,
        Op::DockerNetDown { id, pool, gateway } => {
            if plugin(&p, "NetworkDriver.DeleteNetwork", json!({"NetworkID": id}))
                .await
                .is_none()
            {
                return out;
            }
            out.facts.push(Fact::DockerNetwork(id, false));
            let release = json!({"PoolID": pool, "Address": gateway});
            if plugin(&p, "IpamDriver.ReleaseAddress", release)
                .await
                .is_none()
            {
                return out;
            }
            out.facts
                .push(Fact::EngineAddress(pool.clone(), gateway, false));
            if plugin(&p, "IpamDriver.ReleasePool", json!({"PoolID": pool}))
                .await
                .is_some()
            {
                out.facts.push(Fact::EnginePool(pool, false));
            }
        }
        Op::DockerEpUp { net, pool, ep, key } => {
            let Some(addr) = plugin(&p, "IpamDriver.RequestAddress", json!({"PoolID": pool})).await
            else {
                out.addresses_unanswered.push(pool);
                return out;
            };
            let cidr = addr["Address"].as_str().unwrap_or_default().to_string();
            let ip: IpAddr = cidr.split('/').next().unwrap().parse().unwrap();
            out.facts.push(Fact::EngineAddress(pool, ip, true));
            let create =
                json!({"NetworkID": net, "EndpointID": ep, "Interface": {"Address": cidr}});
            if plugin(&p, "NetworkDriver.CreateEndpoint", create)
                .await
                .is_none()
            {
                return out;
            }
            out.facts
                .push(Fact::Endpoint(ep.clone(), Some((None, ip.to_string()))));
            let _ = std::fs::write(&key, "");
            let join = json!({"NetworkID": net, "EndpointID": ep, "SandboxKey": key});
            if plugin(&p, "NetworkDriver.Join", join).await.is_some() {
                out.facts.push(Fact::DockerJoin(ep, true));
            }
        }
        Op::DockerEpDown {
            net,
            pool,
            ep,
            addr,
        } => {
            let leave = json!({"NetworkID": net, "EndpointID": ep});
            if plugin(&p, "NetworkDriver.Leave", leave.clone())
                .await
                .is_none()
            {
                return out;
            }
            out.facts.push(Fact::DockerJoin(ep.clone(), false));
            if plugin(&p, "NetworkDriver.DeleteEndpoint", leave)
                .await
                .is_none()
            {
                return out;
            }
            out.facts.push(Fact::Endpoint(ep, None));
            let release = json!({"PoolID": pool, "Address": addr});
            if plugin(&p, "IpamDriver.ReleaseAddress", release)
                .await
                .is_some()
            {
                out.facts.push(Fact::EngineAddress(pool, addr, false));
            }
        }
    }
    out
}

/// `docker network create --ipam-driver netd -d netd --subnet S`, step by step.
async fn docker_net_up(p: &PluginClient, id: String, subnet: String, out: &mut Outcome) {
    let req = json!({"AddressSpace": "LocalDefault", "Pool": subnet, "V6": false});
    let Some(pool) = plugin(p, "IpamDriver.RequestPool", req).await else {
        out.pools_unanswered += 1;
        return;
    };
    let pool = pool["PoolID"].as_str().unwrap_or_default().to_string();
    out.facts.push(Fact::EnginePool(pool.clone(), true));
    let gw_req =
        json!({"PoolID": pool, "Options": {"RequestAddressType": "com.docker.network.gateway"}});
    let Some(gw) = plugin(p, "IpamDriver.RequestAddress", gw_req).await else {
        out.addresses_unanswered.push(pool);
        return;
    };
    let gw = gw["Address"].as_str().unwrap_or_default().to_string();
    let ip: IpAddr = gw.split('/').next().unwrap().parse().unwrap();
    out.facts.push(Fact::EngineAddress(pool, ip, true));
    let create = json!({"NetworkID": id, "Options": {}, "IPv4Data": [
        {"AddressSpace": "LocalDefault", "Pool": subnet, "Gateway": gw}
    ]});
    if plugin(p, "NetworkDriver.CreateNetwork", create)
        .await
        .is_some()
    {
        out.facts.push(Fact::DockerNetwork(id, true));
    }
}

/// Check every fact answered before the crash against what netd holds now.
fn check_facts(m: &Model, facts: &[Fact], context: &str) {
    // One operation per object in a burst, its steps in order: the last fact about
    // an object is the one that holds.
    for fact in facts {
        match fact {
            Fact::Network(name, subnet) => {
                let found = m.networks.iter().find(|n| &n.name == name);
                match subnet {
                    Some(s) => {
                        let n = found.unwrap_or_else(|| {
                            panic!("{context}: network {name} answered but lost")
                        });
                        assert_eq!(n.subnets[0].subnet.to_string(), *s, "{context}");
                    }
                    None => assert!(
                        found.is_none(),
                        "{context}: network {name} deleted but back"
                    ),
                }
            }
            Fact::Sandbox(name, exists) => {
                let found = m.sandboxes.iter().any(|s| &s.name == name);
                assert_eq!(found, *exists, "{context}: sandbox {name}");
            }
            Fact::Whole(name, ep, net) => {
                let sb = m.sandboxes.iter().find(|s| &s.name == name);
                let e = m.endpoints.iter().find(|e| &e.name == ep);
                match (sb, e) {
                    (None, None) => {}
                    (Some(sb), Some(e)) => {
                        assert_eq!(
                            sb.endpoints,
                            std::slice::from_ref(&e.id),
                            "{context}: {sb:?}"
                        );
                        let joined = e.join.as_ref().and_then(|j| j.sandbox.as_ref());
                        assert_eq!(joined, Some(&sb.id), "{context}: {e:?}");
                        let on = m.networks.iter().find(|n| n.id == e.network);
                        assert_eq!(on.map(|n| &n.name), Some(net), "{context}: {e:?}");
                    }
                    _ => panic!("{context}: half-made by one request: {sb:?} {e:?}"),
                }
            }
            Fact::Endpoint(id, expect) => {
                let found = m.endpoints.iter().find(|e| &e.id == id);
                match expect {
                    None => assert!(found.is_none(), "{context}: endpoint {id} deleted but back"),
                    Some((sb, addr)) => {
                        let e = found.unwrap_or_else(|| {
                            panic!("{context}: endpoint {id} answered but lost")
                        });
                        assert_eq!(e.addresses[0].addr().to_string(), *addr, "{context}: {e:?}");
                        if let Some(sb) = sb {
                            let sb = m.sandboxes.iter().find(|s| &s.name == sb).unwrap();
                            let joined = e.join.as_ref().and_then(|j| j.sandbox.as_ref());
                            assert_eq!(joined, Some(&sb.id), "{context}: {e:?}");
                            assert!(sb.endpoints.contains(id), "{context}: {sb:?}");
                        }
                    }
                }
            }
            Fact::EnginePool(id, held) => {
                let found = m.pools.iter().any(|p| p.id.to_string() == *id);
                assert_eq!(found, *held, "{context}: engine pool {id}");
            }
            Fact::EngineAddress(pool, addr, held) => {
                let found = m
                    .pools
                    .iter()
                    .find(|p| p.id.to_string() == *pool)
                    .is_some_and(|p| pool_addresses(p).contains(addr));
                assert_eq!(found, *held, "{context}: {addr} in engine pool {pool}");
            }
            Fact::DockerNetwork(id, exists) => {
                let found = m.networks.iter().any(|n| &n.id == id);
                assert_eq!(found, *exists, "{context}: docker network {id}");
            }
            Fact::DockerJoin(id, joined) => {
                if let Some(e) = m.endpoints.iter().find(|e| &e.id == id) {
                    assert_eq!(e.join.is_some(), *joined, "{context}: {e:?}");
                }
            }
        }
    }
}

/// The allocator against the records, and records against each other.
fn check_allocator(before: &Model, m: &Model, outcomes: &[Outcome], context: &str) {
    let pool_of = |id: &str| m.pools.iter().find(|p| p.id.to_string() == id);
    for net in m.native_networks() {
        for s in &net.subnets {
            let pool = s
                .pool
                .unwrap_or_else(|| panic!("{context}: {net:?} has no pool"));
            let held = pool_addresses(pool_of(&pool.to_string()).unwrap_or_else(|| {
                panic!(
                    "{context}: the pool of network {} is not in the allocator",
                    net.name
                )
            }));
            let mut want: BTreeSet<IpAddr> = s.gateway.into_iter().collect();
            want.extend(s.aux_addresses.values());
            for e in m.endpoints_of(&net.id) {
                want.extend(e.addresses.iter().map(|a| a.addr()));
            }
            assert_eq!(
                held, want,
                "{context}: allocator vs records of network {}",
                net.name
            );
        }
    }
    let engine_new_pools: usize = outcomes.iter().map(|o| o.pools_unanswered).sum();
    let mut unknown_pools = 0;
    for p in &m.pools {
        match p.owner.as_deref() {
            Some(ENGINE_OWNER) => {
                let id = p.id.to_string();
                let known = before.pools.iter().any(|b| b.id == p.id)
                    || outcomes
                        .iter()
                        .flat_map(|o| &o.facts)
                        .any(|f| f == &Fact::EnginePool(id.clone(), true));
                if !known {
                    unknown_pools += 1;
                }
                let earlier = before
                    .pools
                    .iter()
                    .find(|b| b.id == p.id)
                    .map(pool_addresses)
                    .unwrap_or_default();
                let answered: BTreeSet<IpAddr> = outcomes
                    .iter()
                    .flat_map(|o| &o.facts)
                    .filter_map(|f| match f {
                        Fact::EngineAddress(pool, a, true) if *pool == id => Some(*a),
                        _ => None,
                    })
                    .collect();
                let unanswered = outcomes
                    .iter()
                    .flat_map(|o| &o.addresses_unanswered)
                    .filter(|pool| **pool == id)
                    .count();
                let extra = pool_addresses(p)
                    .into_iter()
                    .filter(|a| !earlier.contains(a) && !answered.contains(a))
                    .count();
                assert!(
                    extra <= unanswered,
                    "{context}: engine pool {id} holds {extra} addresses nobody was given ({unanswered} requests unanswered): {p:?}"
                );
            }
            Some(owner) => assert!(
                m.networks.iter().any(|n| n.name == owner),
                "{context}: pool {} held for network {owner}, which is gone",
                p.id
            ),
            None => panic!("{context}: pool {} has no owner", p.id),
        }
    }
    assert!(
        unknown_pools <= engine_new_pools,
        "{context}: {unknown_pools} engine pools nobody asked for"
    );
    for net in m.docker_networks() {
        let pool = m
            .engine_pool_of(net)
            .unwrap_or_else(|| panic!("{context}: docker network {} has no engine pool", net.id));
        let held = pool_addresses(pool_of(&pool).unwrap());
        let gw = net.subnets[0].gateway.unwrap();
        assert!(
            held.contains(&gw),
            "{context}: gateway {gw} of {pool} not held"
        );
        for e in m.endpoints_of(&net.id) {
            let a = e.addresses[0].addr();
            assert!(
                held.contains(&a),
                "{context}: {a} of {} not held in {pool}",
                e.id
            );
        }
    }
    for net in &m.networks {
        let eps = m.endpoints_of(&net.id);
        let addrs: BTreeSet<IpAddr> = eps
            .iter()
            .flat_map(|e| e.addresses.iter().map(|a| a.addr()))
            .collect();
        let count: usize = eps.iter().map(|e| e.addresses.len()).sum();
        assert_eq!(
            addrs.len(),
            count,
            "{context}: an address twice on network {}",
            net.name
        );
        let macs: BTreeSet<&str> = eps.iter().map(|e| e.mac.as_str()).collect();
        assert_eq!(
            macs.len(),
            eps.len(),
            "{context}: a MAC twice on network {}",
            net.name
        );
    }
}

/// The kernel and the run dir against the records.
fn check_kernel(netd: &Netd, m: &Model, context: &str) {
    let mut want: BTreeSet<String> = ["lo".to_string()].into();
    for n in &m.networks {
        want.insert(format!("br-{}", &n.id[..12]));
    }
    for e in &m.endpoints {
        if let Some(j) = &e.join {
            want.insert(j.host_link.clone().unwrap());
            if e.origin == Origin::Docker {
                // Nobody moves it in this test: it stays beside its host end.
                want.insert(j.interface.clone());
            }
        }
    }
    let links: BTreeSet<String> = netd.links().into_iter().collect();
    assert_eq!(links, want, "{context}: links vs records");

    let owned: BTreeSet<String> = m
        .sandboxes
        .iter()
        .map(|s| s.netns.display().to_string())
        .collect();
    let files: BTreeSet<String> = netd
        .netns_files()
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(files, owned, "{context}: namespace files vs sandboxes");
    let run = netd.host.dir().join("run");
    let pid = netd.daemon.as_ref().unwrap().pid();
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let pinned: BTreeSet<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&run.join("netns").display().to_string()))
        .map(String::from)
        .collect();
    assert_eq!(pinned, owned, "{context}: namespace mounts vs sandboxes");
    let dirs: BTreeSet<String> = std::fs::read_dir(run.join("sandboxes"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let ids: BTreeSet<String> = m.sandboxes.iter().map(|s| s.id.clone()).collect();
    assert_eq!(dirs, ids, "{context}: sandbox directories vs sandboxes");

    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for sb in &m.sandboxes {
        let out = netd.in_sandbox(sb, &["ip", "-o", "-4", "addr", "show"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut have: BTreeSet<String> = BTreeSet::new();
        for line in text.lines().filter(|l| !l.contains(" lo ")) {
            let addr = line.split_whitespace().nth(3).unwrap().to_string();
            if let Some(other) = seen.insert(addr.clone(), sb.name.clone()) {
                panic!("{context}: {addr} is on {other} and on {}", sb.name);
            }
            have.insert(addr);
        }
        let want: BTreeSet<String> = m
            .endpoints
            .iter()
            .filter(|e| e.join.as_ref().and_then(|j| j.sandbox.as_ref()) == Some(&sb.id))
            .flat_map(|e| e.addresses.iter().map(|a| a.to_string()))
            .collect();
        assert_eq!(have, want, "{context}: addresses in sandbox {}", sb.name);
    }
}

/// Do what dockerd does after calls that failed: give back what no network or
/// endpoint of its own uses, and drop endpoints it never joined.
async fn engine_cleanup(m: &Model, p: &PluginClient) {
    for e in m
        .endpoints
        .iter()
        .filter(|e| e.origin == Origin::Docker && e.join.is_none())
    {
        let body = json!({"NetworkID": e.network, "EndpointID": e.id});
        plugin(p, "NetworkDriver.DeleteEndpoint", body)
            .await
            .expect("DeleteEndpoint");
    }
    for pool in m
        .pools
        .iter()
        .filter(|p| p.owner.as_deref() == Some(ENGINE_OWNER))
    {
        let id = pool.id.to_string();
        let net = m
            .docker_networks()
            .into_iter()
            .find(|n| n.subnets[0].subnet == pool.id.subnet);
        let keep: BTreeSet<IpAddr> = match net {
            Some(n) => m
                .endpoints_of(&n.id)
                .iter()
                .filter(|e| e.join.is_some())
                .map(|e| e.addresses[0].addr())
                .chain(n.subnets[0].gateway)
                .collect(),
            None => BTreeSet::new(),
        };
        for a in pool_addresses(pool)
            .into_iter()
            .filter(|a| !keep.contains(a))
        {
            plugin(
                p,
                "IpamDriver.ReleaseAddress",
                json!({"PoolID": id, "Address": a}),
            )
            .await
            .expect("ReleaseAddress");
        }
        if net.is_none() {
            plugin(p, "IpamDriver.ReleasePool", json!({"PoolID": id}))
                .await
                .expect("ReleasePool");
        }
    }
}

fn kill_9(netd: &mut Netd) {
    let mut daemon = netd.daemon.take().unwrap();
    daemon.signal(Signal::SIGKILL).unwrap();
    daemon.wait_exit(Duration::from_secs(10)).unwrap();
}

#[test]
fn state_equals_what_was_acknowledged_after_kill_9_anywhere() {
    let rounds = env("NETD_TORTURE_ROUNDS", 24);
    let burst = env("NETD_TORTURE_BURST", 45) as usize;
    let seed = env(
        "NETD_TORTURE_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    )
    .max(1);
    eprintln!("crash torture: {rounds} rounds of {burst} operations, NETD_TORTURE_SEED={seed}");
    let mut rng = Rng(seed);
    let mut names = Names::default();
    let mut netd = Netd::start_with_docker();
    let c = netd.client.clone();
    let plugin_socket = netd.host.plugin_dir().join("netd.sock");
    let p = PluginClient::unix(&plugin_socket).timeout(Duration::from_secs(30));
    let rt = runtime();
    let keys = netd.host.dir().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let mut operations = 0;
    let mut answered = 0;
    // (asked, answered) of the sandboxes made attached by one request.
    let mut one_request = (0usize, 0usize);
    for round in 0..rounds {
        let before = rt.block_on(Model::read(&c));
        let ops = plan(&before, &mut rng, &mut names, burst, &keys);
        operations += ops.len();
        // Kill points spread over the burst: at once, during, and after it.
        let kill_after = match rng.below(10) {
            0 => 0,
            9 => 500,
            _ => rng.below(150) as u64,
        };
        let outcomes: Vec<Outcome> = rt.block_on(async {
            // Each starts at its own moment, so that they interleave differently
            // (an attach that starts while a detach is between its kernel work
            // and its commit, say).
            let tasks: Vec<_> = ops
                .iter()
                .cloned()
                .map(|op| {
                    let start = Duration::from_millis(rng.below(80) as u64);
                    let (c, p) = (c.clone(), p.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(start).await;
                        run(op, c, p).await
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(kill_after)).await;
            kill_9(&mut netd);
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await.unwrap());
            }
            outcomes
        });
        for o in &outcomes {
            let whole = o.facts.iter().any(|f| matches!(f, Fact::Whole(..)));
            let facts = o.facts.iter().filter(|f| !matches!(f, Fact::Whole(..)));
            let n = facts.count();
            answered += n;
            one_request.0 += usize::from(whole);
            one_request.1 += usize::from(whole && n > 0);
        }
        netd.launch();
        let context = format!(
            "seed {seed}, round {round}, killed after {kill_after} ms of {} operations",
            ops.len()
        );
        let after = rt.block_on(Model::read(&c));
        let facts: Vec<Fact> = outcomes.iter().flat_map(|o| o.facts.clone()).collect();
        check_facts(&after, &facts, &context);
        check_allocator(&before, &after, &outcomes, &context);
        check_kernel(&netd, &after, &context);
        // What dockerd would do next; then all must still hold.
        rt.block_on(engine_cleanup(&after, &p));
        let settled = rt.block_on(Model::read(&c));
        check_allocator(&settled, &settled, &[], &context);
        check_kernel(&netd, &settled, &context);
        if round % 6 == 5 {
            check_traffic(&netd, &settled, &context);
        }
    }
    eprintln!("crash torture: {operations} operations, {answered} answers, {rounds} kills; sandboxes made attached in one request: {} asked, {} answered", one_request.0, one_request.1);
    // Over the suite's 24 rounds some are answered (a dozen or more, typically);
    // a run of a few rounds may see none.
    if rounds >= 12 {
        assert!(one_request.1 > 0, "no one-request attachment was answered");
    }
    assert!(
        operations >= (rounds as usize) * burst / 2,
        "too few operations"
    );

    // Everything can be deleted, and then nothing is left anywhere.
    let end = rt.block_on(Model::read(&c));
    rt.block_on(async {
        for sb in &end.sandboxes {
            c.delete_sandbox(&sb.id).await.unwrap();
        }
        for e in c.endpoints().await.unwrap() {
            match e.origin {
                Origin::Native => {
                    c.delete_endpoint(&e.id).await.unwrap();
                }
                Origin::Docker => {
                    let body = json!({"NetworkID": e.network, "EndpointID": e.id});
                    plugin(&p, "NetworkDriver.DeleteEndpoint", body)
                        .await
                        .unwrap();
                }
            }
        }
        for n in c.networks().await.unwrap() {
            match n.origin {
                Origin::Native => {
                    c.delete_network(&n.id).await.unwrap();
                }
                Origin::Docker => {
                    plugin(
                        &p,
                        "NetworkDriver.DeleteNetwork",
                        json!({"NetworkID": n.id}),
                    )
                    .await
                    .unwrap();
                }
            }
        }
    });
    let left = rt.block_on(Model::read(&c));
    rt.block_on(engine_cleanup(&left, &p));
    let empty = rt.block_on(Model::read(&c));
    assert!(empty.pools.is_empty(), "pools left: {:?}", empty.pools);
    assert_eq!(netd.links(), ["lo"]);
    assert!(netd.netns_files().is_empty());
}

/// Two sandboxes on one network still reach each other.
fn check_traffic(netd: &Netd, m: &Model, context: &str) {
    for net in m.native_networks() {
        let joined: Vec<(&EndpointRecord, &SandboxRecord)> = m
            .endpoints_of(&net.id)
            .into_iter()
            .filter_map(|e| {
                let sb = e.join.as_ref()?.sandbox.as_ref()?;
                Some((e, m.sandboxes.iter().find(|s| &s.id == sb)?))
            })
            .collect();
        if let [(_, a), (eb, b), ..] = joined.as_slice() {
            if a.id != b.id {
                let ip = eb.addresses[0].addr().to_string();
                assert!(
                    netd.pings(a, &ip),
                    "{context}: {} cannot reach {ip}",
                    a.name
                );
                return;
            }
        }
    }
}
