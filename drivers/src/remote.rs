//! A third-party network plugin (Docker's remote `NetworkDriver` protocol) used
//! as a driver, so netd's API, CLI, CNI and OCI faces reach it as they reach
//! `bridge`: networks `-d remote:NAME`.
//!
//! netd keeps the addresses (its IPAM hands the plugin each network's pools and
//! gateways, and each endpoint its addresses and MAC) and does what an engine
//! does with the plugin's answers: at a join, CreateEndpoint and Join, then the
//! interface the plugin names is moved into the sandbox, renamed, given the
//! endpoint's MAC and addresses, brought up, and routed through the gateway and
//! static routes the plugin gives. At a leave the interface is removed in the
//! sandbox (a veth's pair goes with it), then Leave and DeleteEndpoint. What a
//! failed join made is undone, the plugin's side too; a stored join whose
//! interface is missing at start is made again.

use crate::driver::{
    Driver, DriverData, DriverError, EndpointSpec, Joined, NetworkSpec, Repair, SandboxSpec,
};
use crate::netlink::{Batch, Netlink, NetlinkError, LOOPBACK_INDEX};
use async_trait::async_trait;
use plugin_api::protocol::network::{
    CreateEndpointRequest, CreateNetworkRequest, DeleteNetworkRequest, EndpointInterface,
    EndpointRequest, IpamData, JoinRequest, JoinResponse, RouteType, OPTION_GENERIC,
};
use plugin_api::protocol::types::MacAddress;
use plugin_api::{NetworkDriver, PluginError};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The driver-name prefix of a remote plugin: `remote:NAME`.
pub const PREFIX: &str = "remote:";

/// What the driver notes with a network once the plugin has made it (a start
/// asks the plugin again, and a refusal then is only logged).
const DATA_CREATED: &str = "remote.created";

/// Plugin `name`, reached through `plugin`.
pub struct RemoteNetworkDriver {
    kind: &'static str,
    plugin: Arc<dyn NetworkDriver>,
    nl: Netlink,
    /// The daemon's link group: a link carrying it is never the plugin's.
    mark: u32,
}

impl RemoteNetworkDriver {
    /// The driver `remote:NAME` over `plugin`. `kind` is the full driver name,
    /// kept for the daemon's life (one per plugin found).
    pub fn new(
        kind: &'static str,
        plugin: Arc<dyn NetworkDriver>,
        nl: Netlink,
        mark: crate::Mark,
    ) -> Self {
        RemoteNetworkDriver {
            kind,
            plugin,
            nl,
            mark: mark.0,
        }
    }

    fn refused(&self, doing: &str, e: PluginError) -> DriverError {
        DriverError::Plugin {
            doing: format!("{doing} ({})", self.kind),
            message: e.message().to_string(),
        }
    }
}

fn ipam_data(net: &NetworkSpec, v6: bool) -> Vec<IpamData> {
    net.subnets
        .iter()
        .filter(|s| s.subnet.addr().is_ipv6() == v6)
        .map(|s| IpamData {
            address_space: if v6 { "LocalDefaultV6" } else { "LocalDefault" }.into(),
            pool: s.subnet,
            gateway: s
                .gateway
                .and_then(|g| ipnet::IpNet::new(g, s.subnet.prefix_len()).ok()),
            aux_addresses: Default::default(),
        })
        .collect()
}

fn endpoint_request(net: &NetworkSpec, ep: &EndpointSpec) -> EndpointRequest {
    EndpointRequest {
        network_id: net.id.clone(),
        endpoint_id: ep.id.clone(),
    }
}

#[async_trait]
impl Driver for RemoteNetworkDriver {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn takes_addresses(&self) -> bool {
        true
    }

    /// Options go to the plugin, which says what it makes of them; netd gives
    /// every network a subnet (its IPAM's, when none is asked for).
    fn validate(&self, _net: &NetworkSpec) -> Result<(), DriverError> {
        Ok(())
    }

    async fn create_network(&self, net: &NetworkSpec) -> Result<DriverData, DriverError> {
        let generic: Map<String, Value> = net
            .options
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut options = Map::new();
        options.insert(OPTION_GENERIC.into(), Value::Object(generic));
        let req = CreateNetworkRequest {
            network_id: net.id.clone(),
            options,
            ipv4_data: ipam_data(net, false),
            ipv6_data: ipam_data(net, true),
        };
        let again = net.data.contains_key(DATA_CREATED);
        match self.plugin.create_network(req).await {
            Ok(()) => {}
            // netd starting again: the plugin may know the network already.
            Err(e) if again => {
                tracing::warn!(driver = self.kind, network = %net.id, error = %e.message(), "the plugin refused the network again at start");
            }
            Err(e) => return Err(self.refused("creating the network", e)),
        }
        let mut data = net.data.clone();
        data.insert(DATA_CREATED.into(), "true".into());
        Ok(data)
    }

    async fn delete_network(&self, net: &NetworkSpec) -> Result<(), DriverError> {
        let req = DeleteNetworkRequest {
            network_id: net.id.clone(),
        };
        self.plugin
            .delete_network(req)
            .await
            .map_err(|e| self.refused("deleting the network", e))
    }

    async fn join(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<Joined, DriverError> {
        let Some(netns) = sandbox
            .open()
            .map_err(DriverError::kernel("opening the sandbox"))?
        else {
            return Err(DriverError::invalid(
                "sandbox",
                format!("a {} network joins sandboxes netd places", self.kind),
            ));
        };
        let interface = EndpointInterface {
            address: ep.addresses.iter().find(|a| a.addr().is_ipv4()).copied(),
            address_ipv6: ep.addresses.iter().find(|a| a.addr().is_ipv6()).copied(),
            mac_address: ep.mac.map(MacAddress),
        };
        self.plugin
            .create_endpoint(CreateEndpointRequest {
                network_id: net.id.clone(),
                endpoint_id: ep.id.clone(),
                interface: Some(interface),
                options: Map::new(),
            })
            .await
            .map_err(|e| self.refused("creating the endpoint", e))?;
        let joined = self
            .plugin
            .join(JoinRequest {
                network_id: net.id.clone(),
                endpoint_id: ep.id.clone(),
                sandbox_key: sandbox
                    .netns
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                options: Map::new(),
            })
            .await
            .map_err(|e| self.refused("joining", e));
        let made = match joined {
            Ok(answer) => self.wire(ep, sandbox, &netns, ifname, &answer).await,
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            // Nothing half-made: the plugin forgets the endpoint again.
            let req = endpoint_request(net, ep);
            if let Err(undo) = self.plugin.leave(req.clone()).await {
                tracing::debug!(driver = self.kind, error = %undo.message(), "undoing a join: Leave");
            }
            if let Err(undo) = self.plugin.delete_endpoint(req).await {
                tracing::warn!(driver = self.kind, error = %undo.message(), "undoing a join: DeleteEndpoint");
            }
            return Err(e);
        }
        Ok(Joined::default())
    }

    /// At start: a stored join whose interface is not in the sandbox (a crash
    /// after the join's commit, before the plugin's interface was in place, or
    /// an interface removed by hand) is made again: the plugin is told to forget
    /// the endpoint (Leave, DeleteEndpoint; refusals ignored) and asked again.
    async fn repair_join(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<Repair, DriverError> {
        let inside = match sandbox.connect().await {
            Ok(Some(inside)) => inside,
            // No namespace to look in: the caller deals with a gone sandbox.
            _ => return Ok(Repair::Intact),
        };
        match inside.link(ifname).await {
            Ok(Some(_)) => return Ok(Repair::Intact),
            Ok(None) => {}
            Err(e) => {
                return Err(DriverError::Kernel {
                    doing: format!("looking for {ifname} in the sandbox"),
                    source: e,
                })
            }
        }
        let req = endpoint_request(net, ep);
        let _ = self.plugin.leave(req.clone()).await;
        let _ = self.plugin.delete_endpoint(req).await;
        self.join(net, ep, sandbox, ifname).await?;
        Ok(Repair::Repaired)
    }

    async fn leave(
        &self,
        net: &NetworkSpec,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        ifname: &str,
    ) -> Result<(), DriverError> {
        // A sandbox whose namespace is gone (the caller passes none then) took
        // the interface with it; the plugin is told all the same.
        let inside = match sandbox.connect().await {
            Ok(inside) => inside,
            Err(e) => {
                tracing::debug!(driver = self.kind, error = %e, "leave: the sandbox's namespace is gone");
                None
            }
        };
        if let Some(inside) = inside {
            match inside.delete_by_name(ifname).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(DriverError::Kernel {
                        doing: format!("removing {ifname} from the sandbox"),
                        source: e,
                    })
                }
            }
        }
        // The interface is gone: the plugin's refusals are reported, not fatal.
        let req = endpoint_request(net, ep);
        if let Err(e) = self.plugin.leave(req.clone()).await {
            tracing::warn!(driver = self.kind, endpoint = %ep.id, error = %e.message(), "the plugin's Leave failed");
        }
        if let Err(e) = self.plugin.delete_endpoint(req).await {
            tracing::warn!(driver = self.kind, endpoint = %ep.id, error = %e.message(), "the plugin's DeleteEndpoint failed");
        }
        Ok(())
    }
}

impl RemoteNetworkDriver {
    /// Move the plugin's interface into the sandbox and configure it there; on
    /// failure the interface is removed (wherever it is).
    async fn wire(
        &self,
        ep: &EndpointSpec,
        sandbox: &SandboxSpec,
        netns: &std::fs::File,
        ifname: &str,
        answer: &JoinResponse,
    ) -> Result<(), DriverError> {
        let Some(src) = answer
            .interface_name
            .as_ref()
            .map(|n| n.src_name.clone())
            .filter(|n| !n.is_empty())
        else {
            return Err(DriverError::Plugin {
                doing: format!("joining ({})", self.kind),
                message: "the plugin's Join named no interface (InterfaceName.SrcName)".into(),
            });
        };
        let kernel =
            |doing: String| move |source: NetlinkError| DriverError::Kernel { doing, source };
        let link = self
            .nl
            .link(&src)
            .await
            .map_err(kernel(format!("finding the plugin's interface {src}")))?
            .ok_or_else(|| DriverError::Plugin {
                doing: format!("joining ({})", self.kind),
                message: format!(
                    "the plugin named interface {src}, which netd's namespace does not have"
                ),
            })?;
        // Only an interface the plugin made for this join: a veth or macvlan-like
        // link in no bridge and not netd's (a plugin naming eth0, a bridge or a
        // container's veth is refused, and netd touches nothing).
        let kind = link.kind.as_deref().unwrap_or("");
        if link.master.is_some()
            || link.group == self.mark
            || !matches!(
                kind,
                "veth" | "macvlan" | "ipvlan" | "vxlan" | "dummy" | "tap" | "tun"
            )
        {
            return Err(DriverError::Plugin {
                doing: format!("joining ({})", self.kind),
                message: format!(
                    "the plugin named interface {src} ({}), which is not one it made for this endpoint: netd moves only a free veth, macvlan or similar link",
                    if kind.is_empty() { "of no kind" } else { kind }
                ),
            });
        }
        // A failed move leaves the link where it is, the plugin's to remove
        // (DeleteEndpoint follows).
        self.nl
            .move_to_netns(link.index, netns, ifname)
            .await
            .map_err(kernel(format!("moving {src} into the sandbox")))?;
        let inside = sandbox
            .connect()
            .await
            .map_err(kernel("entering the sandbox".into()))?
            .ok_or_else(|| DriverError::invalid("sandbox", "no namespace"))?;
        let configured = async {
            let index = inside.index(ifname).await?;
            if let Some(mac) = ep.mac {
                inside.set_mac(index, mac).await?;
            }
            let mut batch = Batch::new();
            for a in &ep.addresses {
                batch = batch.add_address(index, a.addr(), a.prefix_len());
            }
            batch = batch.set_up(LOOPBACK_INDEX).set_up(index);
            inside.run(batch).await?;
            let mut routes = Batch::new();
            for r in &answer.static_routes {
                let via = match r.route_type {
                    RouteType::NextHop => r.next_hop,
                    RouteType::Connected => None,
                };
                routes = routes.route(index, r.destination, via);
            }
            for gw in [answer.gateway, answer.gateway_ipv6].into_iter().flatten() {
                routes = routes.default_route(index, gw);
            }
            inside.run(routes).await
        }
        .await;
        if let Err(e) = configured {
            let _ = inside.delete_by_name(ifname).await;
            return Err(kernel(format!("configuring {ifname} in the sandbox"))(e));
        }
        Ok(())
    }
}
