//! netd's firewall: one nftables table (`inet netd`) rendered from what netd is
//! told (networks with Docker's policy options, published ports), changed one
//! transaction at a time, and put back whole when something else wipes it.
//!
//! netd touches no other table. [`iptables`] adds the one thing a host whose
//! dockerd runs iptables needs: accepts for netd's bridges at the top of
//! DOCKER-USER (an accept in netd's table cannot overrule a drop in another).

pub mod conntrack;
mod error;
pub mod iptables;
mod netfilter;
pub mod nft;
pub mod ports;
pub mod render;
pub mod spec;

pub use error::FirewallError;
pub use ports::Reservation;
pub use spec::{GatewayMode, NetworkRules, Policy, PortRequest, Proto, PublishedPort};

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// One endpoint's published ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPorts {
    /// The endpoint's network.
    pub network: String,
    /// Its ports.
    pub ports: Vec<PublishedPort>,
}

#[derive(Default)]
struct State {
    networks: BTreeMap<String, NetworkRules>,
    ports: BTreeMap<String, EndpointPorts>,
    reservations: HashMap<String, Reservation>,
    foreign_bridges: Vec<String>,
    /// The VXLAN filter's elements (ports and peers).
    vxlan: Vec<(&'static str, String)>,
    /// Counts changes, so a check that listed the kernel's table while a change
    /// ran knows its listing is stale.
    version: u64,
    /// nftables' generation after netd's last transaction or full check: while
    /// the kernel's is the same, no one has changed anything.
    known_generation: Option<u32>,
    /// When the table was last listed and compared.
    last_full_check: Option<std::time::Instant>,
    /// A removal the kernel refused: the state has it removed, the table may
    /// not; the next check programs the table whole.
    dirty: bool,
    /// Published ports whose host port could not be bound at start (bound again
    /// at checks).
    unheld: Vec<(String, PublishedPort)>,
    /// The last check's listing was stale: the next lists holding the lock.
    skipped: bool,
    /// The fingerprint of the table's rules as netd last made them
    /// ([`nft::inspect`]); `None` when unknown (then the next check
    /// that finds the counts right takes it).
    rules_print: Option<u64>,
}

/// However quiet nftables' generation, the table is listed and compared this often
/// (a change by someone else that landed between netd's transaction and its
/// reading of the generation would otherwise go unseen).
const FULL_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl State {
    fn all_ports(&self) -> Vec<&PublishedPort> {
        self.ports.values().flat_map(|e| e.ports.iter()).collect()
    }

    /// The ports whose elements removing `old` could share: another host port to
    /// the same container port shares its open element; nothing else is shared.
    fn sharing(&self, old: &[&PublishedPort]) -> Vec<&PublishedPort> {
        self.all_ports()
            .into_iter()
            .filter(|p| old.iter().any(|o| o.container_ip == p.container_ip))
            .collect()
    }

    fn full(&self) -> String {
        let networks: Vec<&NetworkRules> = self.networks.values().collect();
        render::full(
            &networks,
            &self.all_ports(),
            &self.foreign_bridges,
            &self.vxlan,
        )
    }

    fn bridges(&self) -> Vec<String> {
        self.networks.values().map(|n| n.bridge.clone()).collect()
    }
}

/// The firewall. Changes are serialised: each is one nft transaction.
pub struct Firewall {
    state: tokio::sync::Mutex<State>,
    /// DOCKER-USER is kept only while dockerd has made it; its own lock, so
    /// running iptables never holds up a change of the table.
    docker_user: tokio::sync::Mutex<iptables::DockerUser>,
    /// The endpoints that publish ports, readable without waiting for a change
    /// in progress (most endpoints publish nothing: asking costs them nothing).
    publishing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Checks that found nothing changed, counted.
    quiet_rounds: std::sync::atomic::AtomicU32,
}

/// The VXLAN filter: VXLAN on `ports` at `locals` (this host's VTEPs) is heard
/// from `peers` (the cluster's other hosts) only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanFilter {
    /// The overlays' UDP ports.
    pub ports: Vec<u16>,
    /// This host's VTEP addresses.
    pub locals: Vec<IpAddr>,
    /// The member hosts' VTEPs.
    pub peers: Vec<IpAddr>,
}

/// What [`Firewall::start`] made of the stored state.
#[derive(Default)]
pub struct Started {
    /// The firewall (always set on success).
    pub firewall: Option<Firewall>,
    /// Ports that could not be bound again, by endpoint: no longer published.
    pub dropped: BTreeMap<String, Vec<PublishedPort>>,
    /// What did not stop it, in words.
    pub problems: Vec<String>,
}

/// The bridge names nft can take as set elements (a link name may hold quotes or
/// a trailing `*`, which nft would read otherwise).
fn foreign_names(mut names: Vec<String>) -> Vec<String> {
    names.retain(|n| spec::valid_link_name(n));
    names.sort();
    names.dedup();
    names
}

/// What [`Firewall::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The table is as netd made it.
    Intact,
    /// Something changed or removed it; it was put back whole.
    Restored,
}

fn write_proc(key: &str, value: &str) -> Result<(), FirewallError> {
    std::fs::write(format!("/proc/sys/{key}"), value).map_err(|source| FirewallError::Io {
        doing: format!("setting {key} to {value}"),
        source,
    })
}

/// nftables' generation after one transaction of netd's that began at `before`,
/// if no one else's came in between (then the next check lists the table).
async fn own_generation(before: Option<u32>) -> Option<u32> {
    let after = nft::generation().await.ok()?;
    (before?.wrapping_add(1) == after).then_some(after)
}

/// Forget UDP flows to newly published host ports (see [`conntrack`]); a failure
/// is logged, not returned: the ports are published either way.
async fn forget_flows(published: &[PublishedPort]) {
    if !published.iter().any(|p| p.proto == Proto::Udp) {
        return;
    }
    let ports = published.to_vec();
    match tokio::task::spawn_blocking(move || conntrack::forget_udp_flows(&ports)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::debug!(flows = n, "forgot UDP flows to newly published ports"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not forget UDP flows to newly published ports")
        }
        Err(e) => tracing::warn!(error = %e, "forgetting UDP flows"),
    }
}

/// Forget UDP flows to the container side of unpublished `ports`, so datagrams of
/// a flow that is still going do not keep reaching the container (or the next one
/// to get its address).
async fn forget_container_flows(ports: &[PublishedPort]) {
    if !ports.iter().any(|p| p.proto == Proto::Udp) {
        return;
    }
    let ports = ports.to_vec();
    match tokio::task::spawn_blocking(move || conntrack::forget_udp_flows_to_containers(&ports))
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not forget UDP flows to unpublished ports"),
        Err(e) => tracing::warn!(error = %e, "forgetting UDP flows"),
    }
}

/// What a network needs of the kernel beyond the table: forwarding for its
/// families, and `route_localnet` on its bridge (ports published on 127.0.0.1
/// are DNATed out of it; the protect chain drops what containers send to 127/8).
fn prepare_kernel(n: &NetworkRules) -> Result<(), FirewallError> {
    write_proc(&format!("net/ipv4/conf/{}/route_localnet", n.bridge), "1")?;
    if n.subnets.iter().any(|s| s.addr().is_ipv6()) {
        write_proc("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

impl Firewall {
    /// Keep [`Firewall::publishes`] true to the state for `endpoint`.
    fn note(&self, endpoint: &str, state: &State) {
        let mut set = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        if state.ports.contains_key(endpoint) {
            set.insert(endpoint.to_string());
        } else {
            set.remove(endpoint);
        }
    }

    /// Whether `endpoint` publishes ports (or a change of its ports is running).
    pub fn publishes(&self, endpoint: &str) -> bool {
        self.publishing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(endpoint)
    }

    /// Program the whole table from `networks` and `ports` (by endpoint id), binding
    /// the ports' host sockets again. Ports that cannot be bound again (another
    /// program took one while netd was down) stay programmed and are reported.
    pub async fn start(
        networks: Vec<NetworkRules>,
        ports: BTreeMap<String, EndpointPorts>,
        foreign_bridges: Vec<String>,
        vxlan: VxlanFilter,
    ) -> Result<Started, FirewallError> {
        let mut started = Started::default();
        let mut state = State {
            foreign_bridges: foreign_names(foreign_bridges),
            vxlan: render::vxlan_elements(&vxlan.ports, &vxlan.locals, &vxlan.peers),
            ..State::default()
        };
        for n in networks {
            state.networks.insert(n.id.clone(), n);
        }
        for (ep, mut e) in ports {
            // Each port is bound again. One another program listens on now (it
            // took it while netd was down) is not published any more: its traffic
            // is that program's. One that cannot be bound for another reason (a
            // connection using the port number, an address not up yet) stays
            // published and is bound again at a later check.
            let mut reservation = Reservation::default();
            let mut kept = Vec::new();
            for p in e.ports {
                match ports::rebind(std::slice::from_ref(&p)) {
                    Ok(r) => {
                        reservation.extend(r);
                        kept.push(p);
                    }
                    Err(err) if ports::listened_on(&p) => {
                        started.problems.push(format!(
                            "endpoint {}: {p} is no longer published: {err}",
                            ep.get(..12).unwrap_or(&ep)
                        ));
                        started.dropped.entry(ep.clone()).or_default().push(p);
                    }
                    Err(err) => {
                        started.problems.push(format!(
                            "endpoint {}: {p} stays published, not held yet ({err}); bound again later",
                            ep.get(..12).unwrap_or(&ep)
                        ));
                        state.unheld.push((ep.clone(), p.clone()));
                        kept.push(p);
                    }
                }
            }
            if kept.is_empty() {
                continue;
            }
            e.ports = kept;
            state.reservations.insert(ep.clone(), reservation);
            state.ports.insert(ep, e);
        }
        let before = nft::generation().await.ok();
        nft::apply(&state.full(), "programming netd's table").await?;
        state.known_generation = own_generation(before).await;
        write_proc("net/ipv4/ip_forward", "1")?;
        // Only with the table in place (its protect chain drops what containers
        // send to 127/8): route_localnet alone would open the host's loopback.
        for n in state.networks.values() {
            if let Err(e) = prepare_kernel(n) {
                started.problems.push(format!("network {}: {e}", n.name));
            }
        }
        state.rules_print = nft::inspect().await.ok().flatten().map(|(_, print)| print);
        let publishing = state.ports.keys().cloned().collect();
        let fw = Firewall {
            state: tokio::sync::Mutex::new(state),
            docker_user: tokio::sync::Mutex::default(),
            publishing: std::sync::Mutex::new(publishing),
            quiet_rounds: std::sync::atomic::AtomicU32::new(0),
        };
        fw.sync_docker_user().await;
        started.firewall = Some(fw);
        Ok(started)
    }

    /// At boot (no table of netd's yet), load the table with the VXLAN filter
    /// alone, hearing no one, so the overlay devices netd's reconcile makes are
    /// closed until [`Firewall::start`] replaces the table whole. With a table
    /// there already (a restart) nothing changes: its full rules stay until then.
    /// Whether it loaded one.
    pub async fn close_vxlan_until_start(vxlan: &VxlanFilter) -> Result<bool, FirewallError> {
        if vxlan.ports.is_empty() || nft::show().await?.is_some() {
            return Ok(false);
        }
        let state = State {
            vxlan: render::vxlan_elements(&vxlan.ports, &vxlan.locals, &[]),
            ..State::default()
        };
        nft::apply(
            &state.full(),
            "loading netd's VXLAN filter before the rest of its table",
        )
        .await?;
        Ok(true)
    }

    /// Apply `script`; if the kernel refuses it (the table was changed behind
    /// netd's back), put the whole table back instead, which includes the change.
    /// `rules`: the script changes chains or rules (not only set elements), so
    /// the table's rules fingerprint is taken again.
    async fn apply(
        state: &mut State,
        script: &str,
        doing: &str,
        rules: bool,
    ) -> Result<(), FirewallError> {
        state.version += 1;
        let before = nft::generation().await.ok();
        let result = match nft::apply(script, doing).await {
            Ok(()) => Ok(()),
            Err(FirewallError::Nft { .. }) => {
                tracing::warn!(
                    "{doing}: netd's table was not as netd left it; programming it whole"
                );
                state.known_generation = None;
                let full = nft::apply(&state.full(), doing).await;
                state.rules_print = nft::inspect().await.ok().flatten().map(|(_, p)| p);
                return full;
            }
            Err(e) => Err(e),
        };
        // The generation is netd's own only if nothing else came before this
        // transaction (since the last one netd knew) or during it.
        state.known_generation = match (before, state.known_generation) {
            (Some(b), Some(known)) if b == known => own_generation(before).await,
            _ => None,
        };
        if rules && result.is_ok() {
            state.rules_print = match state.known_generation {
                Some(_) => nft::inspect().await.ok().flatten().map(|(_, p)| p),
                // Someone else's change may be in the table: the next check
                // programs it whole rather than take it as netd's.
                None => {
                    state.dirty = true;
                    None
                }
            };
        }
        result
    }

    /// Add network `n`'s chains (its bridge exists).
    pub async fn add_network(&self, n: NetworkRules) -> Result<(), FirewallError> {
        let mut state = self.state.lock().await;
        let script = render::add_network(&n);
        let id = n.id.clone();
        let old = state.networks.insert(id.clone(), n.clone());
        let doing = format!("adding network {}", id.get(..12).unwrap_or(&id));
        let mut result = Self::apply(&mut state, &script, &doing, true).await;
        if result.is_ok() {
            // After the table: route_localnet alone would open the host's loopback.
            if let Err(e) = prepare_kernel(&n) {
                let undo = render::delete_network(&n);
                let _ = Self::apply(&mut state, &undo, &doing, true).await;
                result = Err(e);
            }
        }
        if let Err(e) = result {
            match old {
                Some(o) => state.networks.insert(id, o),
                None => state.networks.remove(&id),
            };
            return Err(e);
        }
        drop(state);
        self.sync_docker_user().await;
        Ok(())
    }

    /// Remove network `id`'s chains (its endpoints are gone).
    pub async fn remove_network(&self, id: &str) -> Result<(), FirewallError> {
        let mut state = self.state.lock().await;
        let Some(n) = state.networks.remove(id) else {
            return Ok(());
        };
        let script = render::delete_network(&n);
        let doing = format!("removing network {}", n.short());
        // The network is gone from the records: it stays gone here, and a table
        // the kernel would not change is programmed whole at the next check.
        let result = Self::apply(&mut state, &script, &doing, true).await;
        if result.is_err() {
            state.dirty = true;
        }
        drop(state);
        // Its bridge may stay (one the network adopted): no more localnet routing.
        let key = format!("net/ipv4/conf/{}/route_localnet", n.bridge);
        if let Err(e) = write_proc(&key, "0") {
            tracing::debug!(error = %e, "route_localnet of a removed network's bridge");
        }
        self.sync_docker_user().await;
        result
    }

    /// Publish `requests` for endpoint `endpoint` (of `network`, with `addresses`),
    /// replacing what it published before. Host ports are bound first; nothing is
    /// left bound or programmed if any request fails.
    pub async fn publish(
        &self,
        endpoint: &str,
        network: &str,
        requests: &[PortRequest],
        addresses: &[IpAddr],
    ) -> Result<Vec<PublishedPort>, FirewallError> {
        let mut state = self.state.lock().await;
        let Some(net) = state.networks.get(network) else {
            return Err(FirewallError::invalid(
                "ports",
                "the endpoint's network has no firewall (its driver publishes no ports)",
            ));
        };
        // A family that is closed (internal, isolated) publishes nothing.
        let open: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|a| !net.policy.closed(*a))
            .collect();
        if !requests.is_empty() && open.is_empty() {
            let why = if addresses.is_empty() {
                "the endpoint has no address".to_string()
            } else {
                format!(
                    "network {} is internal or isolated: nothing can reach it from outside",
                    net.name
                )
            };
            return Err(FirewallError::invalid("ports", why));
        }
        let default_host = net.policy.host_binding_ipv4;
        self.publishing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(endpoint.to_string());
        let before: Vec<PublishedPort> = state
            .ports
            .get(endpoint)
            .map(|e| e.ports.clone())
            .unwrap_or_default();
        let result = self
            .publish_locked(&mut state, endpoint, network, requests, &open, default_host)
            .await;
        self.note(endpoint, &state);
        drop(state);
        if let Ok(published) = &result {
            // Container ports no longer published by any mapping.
            let gone: Vec<PublishedPort> = before
                .into_iter()
                .filter(|p| {
                    !published.iter().any(|q| {
                        (q.proto, q.container_ip, q.container_port)
                            == (p.proto, p.container_ip, p.container_port)
                    })
                })
                .collect();
            forget_container_flows(&gone).await;
            forget_flows(published).await;
        }
        result
    }

    async fn publish_locked(
        &self,
        state: &mut State,
        endpoint: &str,
        network: &str,
        requests: &[PortRequest],
        open: &[IpAddr],
        default_host: Option<std::net::Ipv4Addr>,
    ) -> Result<Vec<PublishedPort>, FirewallError> {
        // What it had goes first (its sockets closed), so asking again for the
        // same host ports works.
        let before = state.ports.remove(endpoint);
        drop(state.reservations.remove(endpoint));
        let mut published = Vec::new();
        let mut reservation = Reservation::default();
        let mut failed = None;
        for req in requests {
            match ports::reserve(req, open, default_host) {
                Ok((p, r)) => {
                    published.extend(p);
                    reservation.extend(r);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // A port its caller holds is bound by no one here, so a clash with
        // one (either way round, or within this request) is found in the
        // state, not by bind(); and one a program listens on now is refused.
        if failed.is_none() {
            let others = state.ports.values().flat_map(|e| e.ports.iter());
            let taken = published.iter().enumerate().find_map(|(i, p)| {
                others
                    .clone()
                    .chain(published[..i].iter())
                    .filter(|q| p.held_by_caller || q.held_by_caller)
                    .find(|q| ports::same_host_port(p, q))
                    .map(|q| (p.clone(), q.clone()))
            });
            if let Some((p, q)) = taken {
                failed = Some(FirewallError::PortTaken(format!(
                    "host port {}/{} is published already (to {}:{})",
                    p.host_port, p.proto, q.container_ip, q.container_port
                )));
            } else if let Some(p) = published
                .iter()
                .find(|p| p.held_by_caller && ports::listened_on(p))
            {
                failed = Some(FirewallError::PortTaken(format!(
                    "host port {}/{}: a program on this host listens on it",
                    p.host_port, p.proto
                )));
            }
        }
        // On failure, what it had is bound again.
        let restore = |state: &mut State| {
            if let Some(b) = before.clone() {
                match ports::rebind(&b.ports) {
                    Ok(r) => {
                        state.reservations.insert(endpoint.to_string(), r);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not bind the ports an endpoint had again")
                    }
                }
                state.ports.insert(endpoint.to_string(), b);
            }
        };
        if let Some(e) = failed {
            drop(reservation);
            restore(state);
            return Err(e);
        }
        let old: Vec<&PublishedPort> = before.iter().flat_map(|e| e.ports.iter()).collect();
        let staying = state.sharing(&old);
        let new: Vec<&PublishedPort> = published.iter().collect();
        let mut script = render::delete_ports(&old, &staying);
        script.push_str(&render::add_ports(&new));
        let doing = format!(
            "publishing ports of endpoint {}",
            endpoint.get(..12).unwrap_or(endpoint)
        );
        state.ports.insert(
            endpoint.to_string(),
            EndpointPorts {
                network: network.to_string(),
                ports: published.clone(),
            },
        );
        if let Err(e) = Self::apply(state, &script, &doing, false).await {
            state.ports.remove(endpoint);
            drop(reservation);
            restore(state);
            return Err(e);
        }
        if published.is_empty() {
            state.ports.remove(endpoint);
        } else {
            state.reservations.insert(endpoint.to_string(), reservation);
        }
        Ok(published)
    }

    /// Publish `ports` (chosen before) for `endpoint` again: an undo.
    pub async fn restore(
        &self,
        endpoint: &str,
        network: &str,
        ports: Vec<PublishedPort>,
    ) -> Result<(), FirewallError> {
        let reservation = ports::rebind(&ports)?;
        let mut state = self.state.lock().await;
        let script = render::add_ports(&ports.iter().collect::<Vec<_>>());
        // In the state first: a refused script is followed by the whole table.
        state.ports.insert(
            endpoint.to_string(),
            EndpointPorts {
                network: network.to_string(),
                ports,
            },
        );
        if let Err(e) = Self::apply(&mut state, &script, "restoring ports", false).await {
            state.ports.remove(endpoint);
            self.note(endpoint, &state);
            return Err(e);
        }
        state.reservations.insert(endpoint.to_string(), reservation);
        self.note(endpoint, &state);
        Ok(())
    }

    /// Unpublish every port of `endpoint`.
    pub async fn unpublish(&self, endpoint: &str) -> Result<(), FirewallError> {
        let mut state = self.state.lock().await;
        // Its sockets close whatever the kernel says of the rules: the records
        // no longer have these ports.
        drop(state.reservations.remove(endpoint));
        let Some(before) = state.ports.remove(endpoint) else {
            return Ok(());
        };
        self.note(endpoint, &state);
        let old: Vec<&PublishedPort> = before.ports.iter().collect();
        let staying = state.sharing(&old);
        let script = render::delete_ports(&old, &staying);
        let doing = format!(
            "unpublishing ports of endpoint {}",
            endpoint.get(..12).unwrap_or(endpoint)
        );
        let result = Self::apply(&mut state, &script, &doing, false).await;
        if result.is_err() {
            state.dirty = true;
        }
        drop(state);
        forget_container_flows(&before.ports).await;
        result
    }

    /// The ports `endpoint` publishes.
    pub async fn ports(&self, endpoint: &str) -> Vec<PublishedPort> {
        let state = self.state.lock().await;
        state
            .ports
            .get(endpoint)
            .map(|e| e.ports.clone())
            .unwrap_or_default()
    }

    /// Hear VXLAN at this host's VTEPs from the cluster's hosts only; every
    /// other sender is dropped.
    pub async fn set_vxlan(&self, filter: VxlanFilter) -> Result<(), FirewallError> {
        let after = render::vxlan_elements(&filter.ports, &filter.locals, &filter.peers);
        let mut state = self.state.lock().await;
        if state.vxlan == after {
            return Ok(());
        }
        let mut script = String::new();
        render::change_elements(&state.vxlan, &after, &mut script);
        let before = std::mem::replace(&mut state.vxlan, after);
        if let Err(e) = Self::apply(&mut state, &script, "updating the VXLAN peers", true).await {
            state.vxlan = before;
            return Err(e);
        }
        Ok(())
    }

    /// Keep the set of bridges netd did not make (dockerd's and others'), which
    /// netd's networks are isolated from.
    pub async fn set_foreign_bridges(&self, bridges: Vec<String>) -> Result<(), FirewallError> {
        let bridges = foreign_names(bridges);
        let mut state = self.state.lock().await;
        if state.foreign_bridges == bridges {
            return Ok(());
        }
        let mut script = String::new();
        render::set_foreign_bridges(&state.foreign_bridges, &bridges, &mut script);
        let before = std::mem::replace(&mut state.foreign_bridges, bridges);
        if let Err(e) = Self::apply(&mut state, &script, "updating the foreign bridges", true).await
        {
            state.foreign_bridges = before;
            return Err(e);
        }
        Ok(())
    }

    /// Compare the kernel's table with what netd programmed; put it back whole if
    /// they differ (`nft flush ruleset`, a firewall reload, a hand edit), and put
    /// back netd's DOCKER-USER accepts if dockerd's chain lost them.
    pub async fn check(&self) -> Result<Checked, FirewallError> {
        let generation = nft::generation().await.ok();
        self.bind_unheld().await;
        let (expected, version, skipped) = {
            let state = self.state.lock().await;
            let quiet = generation.is_some() && generation == state.known_generation;
            let recent = state
                .last_full_check
                .is_some_and(|t| t.elapsed() < FULL_CHECK_EVERY);
            if quiet && recent && !state.dirty {
                drop(state);
                // A legacy iptables flush of DOCKER-USER moves no generation.
                let n = self
                    .quiet_rounds
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n % 5 == 4 {
                    self.sync_docker_user().await;
                }
                return Ok(Checked::Intact);
            }
            let networks: Vec<&NetworkRules> = state.networks.values().collect();
            let expected = render::expected_counts(
                &networks,
                &state.all_ports(),
                state.foreign_bridges.len(),
                &state.vxlan,
            );
            (expected, state.version, state.skipped)
        };
        // The listing runs without the lock, so a check never holds up a change;
        // a change made meanwhile makes it stale and the round is left to the
        // next, which then lists holding the lock (so changes cannot starve it).
        let (found, mut state) = if skipped {
            let state = self.state.lock().await;
            (nft::inspect().await?, state)
        } else {
            let found = nft::inspect().await?;
            (found, self.state.lock().await)
        };
        if !skipped && state.version != version {
            state.skipped = true;
            return Ok(Checked::Intact);
        }
        state.skipped = false;
        let (counts, print) = match found {
            Some((c, p)) => (Some(c), Some(p)),
            None => (None, None),
        };
        let checked = if counts.as_ref() == Some(&expected)
            && !state.dirty
            && state.rules_print.is_some()
            && state.rules_print == print
        {
            state.known_generation = generation;
            Checked::Intact
        } else {
            if state.dirty {
                tracing::info!(
                    "programming netd's table whole after a change it could not confirm"
                );
            } else {
                tracing::warn!(
                    found = ?counts,
                    "netd's firewall table was changed or removed by someone else; programming it whole"
                );
            }
            state.version += 1;
            let before = nft::generation().await.ok();
            nft::apply(&state.full(), "restoring netd's table").await?;
            state.known_generation = own_generation(before).await;
            state.rules_print = nft::inspect().await.ok().flatten().map(|(_, p)| p);
            state.dirty = false;
            // Datagrams that came while the table was gone made entries without
            // DNAT: forget them, as at a publish.
            let udp: Vec<PublishedPort> = state.all_ports().into_iter().cloned().collect();
            drop(state);
            forget_flows(&udp).await;
            state = self.state.lock().await;
            Checked::Restored
        };
        state.last_full_check = Some(std::time::Instant::now());
        drop(state);
        // Something changed nftables (iptables-nft's DOCKER-USER lives there too).
        self.sync_docker_user().await;
        Ok(checked)
    }

    /// Bind again the published ports that could not be bound at start.
    async fn bind_unheld(&self) {
        let mut state = self.state.lock().await;
        if state.unheld.is_empty() {
            return;
        }
        let unheld = std::mem::take(&mut state.unheld);
        for (ep, p) in unheld {
            let still = state.ports.get(&ep).is_some_and(|e| e.ports.contains(&p));
            if !still {
                continue;
            }
            match ports::rebind(std::slice::from_ref(&p)) {
                Ok(r) => state.reservations.entry(ep).or_default().extend(r),
                Err(_) => state.unheld.push((ep, p)),
            }
        }
    }

    /// The whole table as netd would program it now.
    pub async fn script(&self) -> String {
        self.state.lock().await.full()
    }

    /// Keep DOCKER-USER's accepts for netd's bridges in step (a no-op on a host
    /// where dockerd runs without iptables).
    async fn sync_docker_user(&self) {
        let mut docker_user = self.docker_user.lock().await;
        let bridges = self.state.lock().await.bridges();
        if let Err(e) = docker_user.sync(&bridges).await {
            tracing::warn!(error = %e, "could not keep netd's accepts in DOCKER-USER");
        }
    }

    /// Remove netd's table and its DOCKER-USER accepts (`netd cleanup`).
    pub async fn remove_all() -> Result<(), FirewallError> {
        nft::apply(
            &format!("add table {t}\ndelete table {t}\n", t = render::TABLE),
            "removing netd's table",
        )
        .await?;
        iptables::DockerUser::default().sync(&[]).await?;
        Ok(())
    }
}
