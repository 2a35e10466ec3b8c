//! A minimal network plugin: it keeps networks and endpoints in memory and, on
//! Join, creates a veth pair whose peer the engine moves into the container.
//!
//! ```text
//! cargo run -p plugin-api --example network_driver -- --name vethnet
//! docker network create -d vethnet n1
//! ```
//!
//! Run it in the engine's network namespace: the interface named in a Join reply
//! must exist where the engine runs. It prints one line per call
//! (`call NetworkDriver.CreateNetwork network=...`). Containers get their address
//! and gateway but no bridge behind them; netd is the real driver.

use clap::Parser;
use plugin_api::protocol::network::*;
use plugin_api::{async_trait, NetworkDriver, Plugin, PluginError, Registration};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

#[derive(Parser)]
struct Args {
    /// Plugin name: the engine's `-d` value and the socket's file name.
    #[arg(long, default_value = "vethnet")]
    name: String,
    /// Directory for the socket (the engine scans /run/docker/plugins).
    #[arg(long, default_value = plugin_api::server::DEFAULT_SOCKET_DIR)]
    socket_dir: PathBuf,
    /// Misbehave: answer every Join with this existing interface instead of
    /// a veth made for the endpoint (to see what an engine does with a plugin
    /// that names someone else's link).
    #[arg(long)]
    name_in_join: Option<String>,
}

#[derive(Default)]
struct VethNetworks {
    /// Network id to its IPv4 gateway, if IPAM gave one.
    networks: Mutex<HashMap<String, Option<IpAddr>>>,
    /// `--name-in-join`.
    name_in_join: Option<String>,
}

impl VethNetworks {
    fn gateway(&self, network: &str) -> Result<Option<IpAddr>, PluginError> {
        let networks = self.networks.lock().unwrap_or_else(|e| e.into_inner());
        networks
            .get(network)
            .copied()
            .ok_or_else(|| format!("no such network: {network}").into())
    }
}

/// Host-side and container-side names for an endpoint (15-byte kernel limit).
fn veth_names(endpoint: &str) -> (String, String) {
    let short: String = endpoint.chars().take(8).collect();
    (format!("vh{short}"), format!("vc{short}"))
}

fn ip(args: &[&str]) -> Result<(), PluginError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| PluginError::from_error(&e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into())
    }
}

#[async_trait]
impl NetworkDriver for VethNetworks {
    async fn get_capabilities(&self) -> Result<NetworkCapabilities, PluginError> {
        println!("call NetworkDriver.GetCapabilities");
        Ok(NetworkCapabilities::default())
    }

    async fn create_network(&self, req: CreateNetworkRequest) -> Result<(), PluginError> {
        println!(
            "call NetworkDriver.CreateNetwork network={} ipv4={:?}",
            req.network_id,
            req.ipv4_data
                .iter()
                .map(|d| d.pool.to_string())
                .collect::<Vec<_>>()
        );
        let gateway = req
            .ipv4_data
            .first()
            .and_then(|d| d.gateway)
            .map(|g| g.addr());
        let mut networks = self.networks.lock().unwrap_or_else(|e| e.into_inner());
        networks.insert(req.network_id, gateway);
        Ok(())
    }

    async fn delete_network(&self, req: DeleteNetworkRequest) -> Result<(), PluginError> {
        println!(
            "call NetworkDriver.DeleteNetwork network={}",
            req.network_id
        );
        let mut networks = self.networks.lock().unwrap_or_else(|e| e.into_inner());
        networks.remove(&req.network_id);
        Ok(())
    }

    async fn create_endpoint(
        &self,
        req: CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse, PluginError> {
        println!(
            "call NetworkDriver.CreateEndpoint network={} endpoint={}",
            req.network_id, req.endpoint_id
        );
        self.gateway(&req.network_id)?;
        // Accept the engine's addresses as they are.
        Ok(CreateEndpointResponse::default())
    }

    async fn delete_endpoint(&self, req: DeleteEndpointRequest) -> Result<(), PluginError> {
        println!(
            "call NetworkDriver.DeleteEndpoint network={} endpoint={}",
            req.network_id, req.endpoint_id
        );
        Ok(())
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinResponse, PluginError> {
        println!(
            "call NetworkDriver.Join network={} endpoint={} sandbox={}",
            req.network_id, req.endpoint_id, req.sandbox_key
        );
        let gateway = self.gateway(&req.network_id)?;
        let (host, mut peer) = veth_names(&req.endpoint_id);
        match &self.name_in_join {
            Some(other) => peer = other.clone(),
            None => {
                ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
                if let Err(e) = ip(&["link", "set", &host, "up"]) {
                    let _ = ip(&["link", "del", &host]);
                    return Err(e);
                }
            }
        }
        Ok(JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: peer,
                dst_prefix: "eth".into(),
                ..InterfaceName::default()
            }),
            gateway,
            // Without a gateway, tell the engine not to add its own gateway network.
            disable_gateway_service: gateway.is_none(),
            ..JoinResponse::default()
        })
    }

    async fn leave(&self, req: LeaveRequest) -> Result<(), PluginError> {
        println!(
            "call NetworkDriver.Leave network={} endpoint={}",
            req.network_id, req.endpoint_id
        );
        let (host, _) = veth_names(&req.endpoint_id);
        // The engine may already have removed the pair with the sandbox.
        let _ = ip(&["link", "del", &host]);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let registration = Registration::SocketIn(args.socket_dir);
    plugin_api::serve_until_signal(
        &args.name,
        &registration,
        Plugin::new()
            .network(VethNetworks {
                name_in_join: args.name_in_join,
                ..VethNetworks::default()
            })
            .router(),
    )
    .await?;
    Ok(())
}
