//! dockerd's own view of what it made on netd, read from dockerd's API: its
//! networks on netd's driver with their endpoints, and the subnets and addresses
//! it uses through netd's IPAM.

use crate::client::{Client, ClientError};
use crate::controller::EngineView;
use anyhow::Context;
use hyper::Method;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug, Deserialize)]
struct Network {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Driver", default)]
    driver: String,
    #[serde(rename = "IPAM", default)]
    ipam: Ipam,
    #[serde(rename = "Containers", default)]
    containers: Option<std::collections::BTreeMap<String, Container>>,
}

#[derive(Debug, Default, Deserialize)]
struct Ipam {
    #[serde(rename = "Driver", default)]
    driver: String,
    #[serde(rename = "Config", default)]
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Deserialize)]
struct IpamConfig {
    #[serde(rename = "Subnet", default)]
    subnet: String,
    #[serde(rename = "Gateway", default)]
    gateway: String,
    #[serde(rename = "AuxiliaryAddresses", default)]
    aux_addresses: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct Container {
    #[serde(rename = "EndpointID", default)]
    endpoint_id: String,
    #[serde(rename = "IPv4Address", default)]
    ipv4: String,
    #[serde(rename = "IPv6Address", default)]
    ipv6: String,
}

async fn get<T: serde::de::DeserializeOwned>(docker: &Client, path: &str) -> anyhow::Result<T> {
    let (status, body) = match docker.raw(Method::GET, path, None).await {
        Ok(answer) => answer,
        Err(ClientError::Connect { socket, source, .. }) => anyhow::bail!(
            "cannot reach dockerd at {}: {source}; give its API socket with --docker-socket",
            socket.display()
        ),
        Err(e) => return Err(anyhow::Error::from(e).context(format!("asking dockerd for {path}"))),
    };
    anyhow::ensure!(
        status.is_success(),
        "dockerd answered {status} to {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).with_context(|| format!("reading dockerd's answer to {path}"))
}

/// Read dockerd's view through its API socket.
pub async fn read(socket: &Path, plugin: &str) -> anyhow::Result<EngineView> {
    let docker = Client::new(socket);
    let list: Vec<Network> = get(&docker, "/networks").await?;
    let mut view = EngineView::default();
    for summary in list {
        if summary.driver != plugin && summary.ipam.driver != plugin {
            continue;
        }
        // The list leaves out the containers: inspect each network.
        let net: Network = get(&docker, &format!("/networks/{}", summary.id)).await?;
        let containers: Vec<Container> = net.containers.unwrap_or_default().into_values().collect();
        if net.driver == plugin {
            view.networks.insert(
                net.id.clone(),
                containers.iter().map(|c| c.endpoint_id.clone()).collect(),
            );
        }
        if net.ipam.driver == plugin {
            for config in net.ipam.config.unwrap_or_default() {
                let subnet: IpNet = config
                    .subnet
                    .parse()
                    .with_context(|| format!("network {}: subnet {:?}", net.id, config.subnet))?;
                let mut used: Vec<IpAddr> = std::iter::once(&config.gateway)
                    .chain(config.aux_addresses.iter().flatten().map(|(_, a)| a))
                    .filter_map(|a| a.parse().ok())
                    .collect();
                for c in &containers {
                    for cidr in [&c.ipv4, &c.ipv6] {
                        if let Ok(a) = cidr.parse::<IpNet>() {
                            if subnet.contains(&a.addr()) {
                                used.push(a.addr());
                            }
                        }
                    }
                }
                view.ipam.entry(subnet).or_default().extend(used);
            }
        }
    }
    Ok(view)
}
