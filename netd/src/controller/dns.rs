//! The controller's side of the DNS responders: which networks get one, the
//! names each answers (from the records), and the name servers a sandbox's
//! resolv.conf lists.

use super::{lock, network_spec, Controller};
use crate::dns::{Directory, Names, Service, Target, Upstream, OPTION_DNS};
use crate::model::{EndpointRecord, NetworkRecord, SandboxRecord};
use crate::store::Kind;
use std::net::IpAddr;
use std::sync::Arc;

/// A network changed by a commit: its new record, or `None` when deleted.
pub(crate) type NetworkChange = (String, Option<NetworkRecord>);

impl Directory for Controller {
    fn version(&self) -> u64 {
        lock(&self.records).version
    }

    fn names(&self, network: &str) -> Option<(u64, Names)> {
        let records = lock(&self.records);
        let net = records.networks.get(network)?;
        let mut names = Names::new(net.subnets.iter().map(|s| s.subnet).collect());
        for ep in records.endpoints_of(network) {
            // Only joined endpoints answer, as only running containers do in
            // Docker's DNS.
            let Some(join) = &ep.join else { continue };
            let addresses: Vec<IpAddr> = ep.addresses.iter().map(|a| a.addr()).collect();
            let sandbox = join
                .sandbox
                .as_ref()
                .and_then(|id| records.sandboxes.get(id));
            let mut list: Vec<&str> = Vec::new();
            if let Some(sb) = sandbox {
                list.push(&sb.name);
                list.push(&sb.hostname);
                for other in &sb.endpoints {
                    if let Some(o) = records.endpoints.get(other) {
                        if o.network != network {
                            names.add_other(&addresses, &o.network);
                        }
                    }
                }
            }
            list.extend(ep.aliases.iter().map(String::as_str));
            names.add(list, &addresses);
        }
        Some((records.version, names))
    }
}

impl Controller {
    /// Start the responders of every network that gets one (after reconcile:
    /// the bridges exist). From here on, each commit that makes or deletes a
    /// network starts or stops its responder.
    pub fn start_dns(self: &Arc<Self>) {
        let weak: std::sync::Weak<Controller> = Arc::downgrade(self);
        let directory: std::sync::Weak<dyn Directory> = weak;
        let service = Arc::new(Service::new(
            directory,
            Upstream::new(self.settings.host_resolv_conf.clone()),
        ));
        if self.dns.set(service).is_err() {
            return;
        }
        let changes = self
            .networks()
            .into_iter()
            .map(|n| (n.id.clone(), Some(n)))
            .collect();
        self.dns_follow(changes);
    }

    fn dns(&self) -> Option<&Arc<Service>> {
        self.dns.get()
    }

    /// Where network `id`'s DNS responder listens, if it has one.
    pub fn network_name_server(&self, id: &str) -> Option<IpAddr> {
        self.dns()?.name_server(id)
    }

    /// The networks a batch makes, changes or deletes (none without responders).
    pub(super) fn dns_changes(&self, ops: &[super::persist::Op]) -> Vec<NetworkChange> {
        use super::persist::Op;
        if self.dns().is_none() {
            return Vec::new();
        }
        ops.iter()
            .filter_map(|op| match op {
                Op::Network(r) => Some((r.id.clone(), Some(r.clone()))),
                Op::Delete(Kind::Network, id) => Some((id.clone(), None)),
                _ => None,
            })
            .collect()
    }

    /// Start, move or stop responders after a commit of `changes`.
    pub(super) fn dns_follow(&self, changes: Vec<NetworkChange>) {
        let Some(dns) = self.dns() else { return };
        for (id, record) in changes {
            match record.as_ref().and_then(|n| self.dns_target(n)) {
                Some(target) => {
                    let (name, address) = (target.name.clone(), target.address);
                    if let Err(e) = dns.serve(target) {
                        dns.stop(&id);
                        tracing::warn!(network = %name, %address, error = %e, "no DNS responder: its sandboxes get the host's name servers");
                    }
                }
                None => dns.stop(&id),
            }
        }
    }

    /// Where network `net`'s responder listens, if it gets one: bridge networks
    /// (overlays too) with a gateway, unless `com.netd.dns=false`.
    fn dns_target(&self, net: &NetworkRecord) -> Option<Target> {
        if net.driver != "bridge"
            || net
                .options
                .get(OPTION_DNS)
                .is_some_and(|v| matches!(firewall::spec::parse_bool(OPTION_DNS, v), Ok(false)))
        {
            return None;
        }
        let gateways: Vec<IpAddr> = net.subnets.iter().filter_map(|s| s.gateway).collect();
        let address = gateways
            .iter()
            .find(|g| g.is_ipv4())
            .or(gateways.first())
            .copied()?;
        let driver = self.driver(&net.driver).ok()?;
        let bridge = driver
            .network_links(&network_spec(net))
            .into_iter()
            .next()?;
        let internal = firewall::Policy::from_options(&net.options).is_ok_and(|p| p.internal);
        Some(Target {
            network: net.id.clone(),
            name: net.name.clone(),
            bridge,
            address,
            subnets: net.subnets.iter().map(|s| s.subnet).collect(),
            gateways,
            forward: !internal,
        })
    }

    /// The name servers `sb` lists with `joined` as its endpoints: those it
    /// asked for; else the responders of its networks (each answers the names
    /// of all of them); else the host's.
    pub(super) fn sandbox_name_servers(
        &self,
        sb: &SandboxRecord,
        joined: &[EndpointRecord],
    ) -> Vec<IpAddr> {
        if sb.dns_asked {
            return sb.dns.clone();
        }
        let mut servers = Vec::new();
        if let Some(dns) = self.dns() {
            for ep in joined {
                if let Some(a) = dns.name_server(&ep.network) {
                    if !servers.contains(&a) {
                        servers.push(a);
                    }
                }
            }
        }
        if servers.is_empty() {
            crate::files::sandbox_name_servers(
                &[],
                &self.settings.host_resolv_conf,
                &self.settings.fallback_dns,
            )
        } else {
            servers
        }
    }
}
