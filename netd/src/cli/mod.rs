//! The command line: `netd daemon` runs the server; every other command is a
//! client of its native API.

mod docker_view;
mod table;

pub mod oci_hook;
use crate::client::{Client, ClientError, DEFAULT_SOCKET};
use crate::controller::{Attach, EndpointCreate, NetworkCreate, SandboxCreate, SubnetRequest};
use crate::model::{short_id, EndpointRecord, NetworkRecord, SandboxRecord};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// netd: container networks on Linux bridges, for dockerd and any runtime.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "NETD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Daemon(DaemonArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Manage sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// Remove what dockerd made on netd and no longer has (networks, endpoints,
    /// pools, addresses), read from dockerd's own API: after dockerd could not
    /// reach netd, nothing stays behind.
    DockerSync(DockerSyncArgs),
    /// The address allocator's pools and the addresses handed out of each.
    Pools(FormatArg),
    /// The ports an endpoint, or every endpoint of a sandbox, publishes (dockerd
    /// cannot show ports a plugin published: `docker port` stays empty).
    Port {
        /// An endpoint or a sandbox (id, id prefix or name); all endpoints if none.
        target: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Publish ports for a joined endpoint, replacing what it published (no -p:
    /// unpublish).
    Publish {
        /// The endpoint.
        endpoint: String,
        /// -p [HOST_IP:][HOST_PORT[-END]:]PORT[-END][/tcp|udp|sctp] (repeatable).
        #[arg(long = "publish", short = 'p', value_parser = parse_publish)]
        publish: Vec<Vec<firewall::PortRequest>>,
    },
    /// netd's firewall.
    #[command(subcommand)]
    Firewall(FirewallCmd),
    /// The cluster (overlay networks across hosts).
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Remove what netd made in the kernel of this network namespace: its nftables
    /// table, its DOCKER-USER accepts and every link with its mark. netd must be
    /// stopped; its store is kept (a later start makes everything again).
    Cleanup {
        /// The state dir of the netd whose links go [default: /var/lib/netd].
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// An OCI runtime hook (runc, crun): attach the container to the networks
    /// its annotation `org.netd.networks` names, publishing `org.netd.ports`
    /// (create), or take it out again (poststop). Reads the OCI state on stdin.
    OciHook {
        /// create (as a createRuntime, createContainer or prestart hook) or poststop.
        #[arg(value_enum)]
        stage: oci_hook::Stage,
    },
}

/// `netd cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// The member hosts, and for each overlay network its blocks, its peers and
    /// whether this host's kernel matches them.
    Status {
        #[command(flatten)]
        format: FormatArg,
    },
}

/// `netd firewall ...`.
#[derive(Debug, Subcommand)]
pub enum FirewallCmd {
    /// Print what netd programs (the nft script of its table) and whether the
    /// kernel has it.
    Show,
}

/// Docker's `-p` syntax: `[HOST_IP:][HOST_PORT[-END]:]PORT[-END][/PROTO]`. A
/// container range with a host range of the same length publishes each pair; a
/// host range with one container port picks one free host port of the range.
pub fn parse_publish(text: &str) -> Result<Vec<firewall::PortRequest>, String> {
    let bad = |why: &str| format!("{text:?}: {why} (expected [HOST_IP:][HOST_PORT:]PORT[/PROTO])");
    let (spec, proto) = match text.rsplit_once('/') {
        Some((spec, proto)) => (
            spec,
            firewall::Proto::parse(proto).map_err(|e| bad(&e.to_string()))?,
        ),
        None => (text, firewall::Proto::Tcp),
    };
    // An IPv6 host address is in brackets.
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(after) => {
            let (ip, rest) = after.split_once("]:").ok_or_else(|| bad("unclosed ["))?;
            (Some(ip), rest)
        }
        None => {
            let parts: Vec<&str> = spec.split(':').collect();
            match parts.len() {
                1 | 2 => (None, spec),
                3 => (Some(parts[0]), &spec[parts[0].len() + 1..]),
                _ => return Err(bad("too many ':'")),
            }
        }
    };
    let host_ip = match host_ip {
        Some("") | None => None,
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?,
        ),
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest),
    };
    let range = |t: &str, what: &str| -> Result<(u16, u16), String> {
        let num = |n: &str| {
            n.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("{what} {n:?} is not a port from 1 to 65535")))
        };
        match t.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(bad(&format!("{what} range {t} ends before it starts")));
                }
                Ok((a, b))
            }
            None => num(t).map(|p| (p, p)),
        }
    };
    let (c_start, c_end) = range(container, "container port")?;
    let host = if host.is_empty() {
        None
    } else {
        Some(range(host, "host port")?)
    };
    let count = c_end - c_start;
    let request =
        |host_port: u16, host_port_end: Option<u16>, container_port: u16| firewall::PortRequest {
            proto,
            host_ip,
            host_port,
            host_port_end,
            container_port,
            held_by_caller: false,
        };
    match host {
        None => Ok((c_start..=c_end).map(|c| request(0, None, c)).collect()),
        Some((h_start, h_end)) if count == 0 => Ok(vec![request(
            h_start,
            (h_end > h_start).then_some(h_end),
            c_start,
        )]),
        Some((h_start, h_end)) if h_end - h_start == count => Ok((0..=count)
            .map(|i| request(h_start + i, None, c_start + i))
            .collect()),
        Some(_) => Err(bad(
            "a container port range needs a host range of the same length",
        )),
    }
}

/// `netd docker-sync`.
#[derive(Debug, Args)]
pub struct DockerSyncArgs {
    /// dockerd's API socket.
    #[arg(long, default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// netd's plugin name in dockerd (`-d` and `--ipam-driver`).
    #[arg(long, default_value = "netd")]
    pub plugin_name: String,
    /// Leave alone what was made less than this many seconds ago.
    #[arg(long, default_value_t = 60)]
    pub grace: u64,
    /// Print what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go on even when dockerd has none of the networks it made on netd (it lost
    /// them all); otherwise that is refused as a sign of a wrong plugin name.
    #[arg(long)]
    pub allow_empty: bool,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `netd daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// TOML config file; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the store lives [default: /var/lib/netd].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Runtime directory for namespaces and sandbox files [default: /run/netd].
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Where dockerd looks for plugin sockets [default: /run/docker/plugins].
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Do not serve the Docker plugin protocol.
    #[arg(long)]
    pub no_docker: bool,
    /// The host's resolver configuration: where sandboxes' name servers, and the
    /// DNS responders' upstream resolvers, come from [default: /etc/resolv.conf].
    #[arg(long, value_name = "FILE")]
    pub resolv_conf: Option<PathBuf>,
    /// The plugin's name, as given to `docker network create -d` [default: netd].
    #[arg(long)]
    pub plugin_name: Option<String>,
    /// Close a connection that sends no request for this many seconds, and answer
    /// 408 to a request whose body takes longer [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: Option<u64>,
    /// Run netd's nftables firewall (NAT, isolation, published ports) [default: on].
    /// Off: netd programs no rules and publishes no ports.
    #[arg(long, value_enum)]
    pub firewall: Option<OnOff>,
    /// Join a cluster for overlay networks: its etcd endpoints
    /// (etcd://HOST:PORT[,HOST:PORT...]). Without it netd is single-host.
    #[arg(long, value_name = "etcd://HOST:PORT[,...]")]
    pub cluster_store: Option<String>,
    /// This host's underlay address: other hosts send VXLAN to it (needed with
    /// --cluster-store).
    #[arg(long, value_name = "IP")]
    pub advertise_addr: Option<std::net::IpAddr>,
    /// The VXLAN UDP port, the same on every host [default: 4789].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub vxlan_port: Option<u16>,
    /// Seconds a host may be silent before the others drop its endpoints
    /// [default: 15].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub cluster_lease_ttl: Option<u64>,
    /// The CA of etcd's certificate (TLS to etcd).
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// This host's client certificate for etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// The key of --etcd-cert.
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
}

/// A switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON, for scripts.
    Json,
}

#[derive(Debug, Args)]
pub struct FormatArg {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `netd network ...`.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network; prints its id.
    Create {
        /// Its name.
        name: String,
        /// bridge, host or none.
        #[arg(long, short, default_value = "bridge")]
        driver: String,
        /// Subnet in CIDR form (repeat for IPv4 and IPv6).
        #[arg(long)]
        subnet: Vec<IpNet>,
        /// Gateway; belongs to the subnet containing it.
        #[arg(long)]
        gateway: Vec<IpAddr>,
        /// Allocate addresses only from this range of a subnet.
        #[arg(long)]
        ip_range: Vec<IpNet>,
        /// Keep NAME=IP out of allocation.
        #[arg(long, value_parser = parse_kv)]
        aux_address: Vec<(String, String)>,
        /// Also take an IPv6 subnet from the default pools.
        #[arg(long)]
        ipv6: bool,
        /// Driver option KEY=VALUE (Docker's names).
        #[arg(long = "opt", short = 'o', value_parser = parse_kv)]
        opt: Vec<(String, String)>,
        /// Label KEY=VALUE.
        #[arg(long, value_parser = parse_kv)]
        label: Vec<(String, String)>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls(FormatArg),
    /// Show a network and its endpoints as JSON.
    Inspect {
        /// Id, id prefix or name.
        network: String,
    },
    /// Delete networks.
    #[command(alias = "remove")]
    Rm {
        /// Ids, id prefixes or names.
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

/// `netd endpoint ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Create an endpoint on a network; prints its id.
    Create {
        /// The network.
        network: String,
        #[command(flatten)]
        spec: EndpointArgs,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List endpoints.
    #[command(alias = "list")]
    Ls(FormatArg),
    /// Show an endpoint as JSON.
    Inspect {
        /// Id, id prefix or name.
        endpoint: String,
    },
    /// Delete endpoints.
    #[command(alias = "remove")]
    Rm {
        /// Ids, id prefixes or names.
        #[arg(required = true)]
        endpoints: Vec<String>,
    },
}

/// Options of a new endpoint.
#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// Its name.
    #[arg(long)]
    pub name: Option<String>,
    /// Fixed IPv4 address.
    #[arg(long)]
    pub ip: Option<IpAddr>,
    /// Fixed IPv6 address.
    #[arg(long)]
    pub ipv6: Option<IpAddr>,
    /// Fixed MAC address.
    #[arg(long)]
    pub mac: Option<String>,
    /// Another name it answers to in the network's DNS (repeatable).
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
}

/// `netd sandbox ...`.
#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// Create a sandbox (or adopt a namespace with --netns); prints its id.
    Create {
        /// Its name.
        #[arg(long)]
        name: Option<String>,
        /// Adopt this namespace (/proc/PID/ns/net or a netns file).
        #[arg(long)]
        netns: Option<PathBuf>,
        /// Host name for its hosts file.
        #[arg(long)]
        hostname: Option<String>,
        /// Name server (repeatable).
        #[arg(long)]
        dns: Vec<IpAddr>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List sandboxes.
    #[command(alias = "list")]
    Ls(FormatArg),
    /// Show a sandbox as JSON.
    Inspect {
        /// Id, id prefix or name.
        sandbox: String,
    },
    /// Delete sandboxes (their endpoints leave first).
    #[command(alias = "remove")]
    Rm {
        /// Ids, id prefixes or names.
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
    /// Join an endpoint to a sandbox.
    Join {
        /// The sandbox.
        sandbox: String,
        /// The endpoint.
        endpoint: String,
    },
    /// Take an endpoint out of a sandbox.
    Leave {
        /// The sandbox.
        sandbox: String,
        /// The endpoint.
        endpoint: String,
    },
    /// Create an endpoint on a network and join it; prints the endpoint's id.
    Attach {
        /// The sandbox.
        sandbox: String,
        /// The network.
        network: String,
        #[command(flatten)]
        spec: EndpointArgs,
        /// -p [HOST_IP:][HOST_PORT[-END]:]PORT[-END][/tcp|udp|sctp] (repeatable).
        #[arg(long = "publish", short = 'p', value_parser = parse_publish)]
        publish: Vec<Vec<firewall::PortRequest>>,
        /// The interface's name in the sandbox (the lowest free ethN by default).
        #[arg(long)]
        interface: Option<String>,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Leave and delete an endpoint.
    Detach {
        /// The sandbox.
        sandbox: String,
        /// The endpoint.
        endpoint: String,
    },
}

fn parse_kv(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?}: expected KEY=VALUE")),
    }
}

/// Subnets with their gateways, ranges and aux addresses placed by containment.
fn subnets(
    subnet: Vec<IpNet>,
    gateway: Vec<IpAddr>,
    ip_range: Vec<IpNet>,
    aux: Vec<(String, String)>,
) -> Result<Vec<SubnetRequest>, String> {
    let mut out: Vec<SubnetRequest> = subnet
        .into_iter()
        .map(|s| SubnetRequest {
            subnet: Some(s),
            ipv6: matches!(s, IpNet::V6(_)),
            ..Default::default()
        })
        .collect();
    let home = |out: &mut Vec<SubnetRequest>, what: &str, addr: IpAddr| -> Result<usize, String> {
        out.iter()
            .position(|s| s.subnet.is_some_and(|n| n.contains(&addr)))
            .ok_or_else(|| format!("{what} {addr} is in none of the given subnets"))
    };
    for gw in gateway {
        let i = home(&mut out, "gateway", gw)?;
        if out[i].gateway.replace(gw).is_some() {
            return Err(format!(
                "two gateways for subnet {}",
                out[i].subnet.map(|s| s.to_string()).unwrap_or_default()
            ));
        }
    }
    for r in ip_range {
        let i = home(&mut out, "ip range", r.network())?;
        out[i].ip_range = Some(r);
    }
    for (name, addr) in aux {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("aux address {name}={addr}: not an IP address"))?;
        let i = home(&mut out, "aux address", addr)?;
        out[i].aux_addresses.insert(name, addr);
    }
    Ok(out)
}

fn print_cluster(s: &crate::overlay::ClusterStatus) {
    println!(
        "host {} ({}:{}), {} to {}",
        s.host,
        s.advertise,
        s.vxlan_port,
        if s.joined { "joined" } else { "not joined" },
        s.store.join(",")
    );
    if let Some(e) = &s.error {
        println!("error: {e}");
    }
    println!("\nHOST              NAME                 VTEP");
    for h in &s.hosts {
        println!("{:<17} {:<20} {}:{}", h.host, h.name, h.vtep, h.vxlan_port);
    }
    println!("\nNETWORK          VNI       SUBNET            BLOCKS  PEERS  THIS HOST'S KERNEL");
    for n in &s.networks {
        let kernel = match n.kernel {
            Some(k) if k.missing == 0 && k.extra == 0 => "matches".to_string(),
            Some(k) => format!("{} missing, {} extra", k.missing, k.extra),
            None => "-".to_string(),
        };
        println!(
            "{:<16} {:<9} {:<17} {:<7} {:<6} {}",
            n.name,
            n.vni,
            n.subnet.to_string(),
            n.blocks.len(),
            n.peers.len(),
            kernel
        );
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn created<T: Serialize>(format: Format, id: &str, value: &T) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            println!("{id}");
            Ok(())
        }
        Format::Json => print_json(value),
    }
}

fn network_rows(nets: &[NetworkRecord]) -> String {
    let rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| {
            vec![
                short_id(&n.id).to_string(),
                n.name.clone(),
                n.driver.clone(),
                n.subnets
                    .iter()
                    .map(|s| s.subnet.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    table::render(&["NETWORK ID", "NAME", "DRIVER", "SUBNETS"], &rows)
}

fn endpoint_rows(eps: &[EndpointRecord], nets: &BTreeMap<String, String>) -> String {
    let rows: Vec<Vec<String>> = eps
        .iter()
        .map(|e| {
            vec![
                short_id(&e.id).to_string(),
                e.name.clone(),
                nets.get(&e.network)
                    .cloned()
                    .unwrap_or_else(|| short_id(&e.network).to_string()),
                e.addresses
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                e.mac.clone(),
                e.join
                    .as_ref()
                    .map(|j| {
                        let whom = j
                            .sandbox
                            .as_deref()
                            .or(j.sandbox_key.as_deref())
                            .unwrap_or("");
                        format!("{}:{}", short_id(whom), j.interface)
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table::render(
        &[
            "ENDPOINT ID",
            "NAME",
            "NETWORK",
            "ADDRESSES",
            "MAC",
            "JOINED",
        ],
        &rows,
    )
}

fn sandbox_rows(sbs: &[SandboxRecord]) -> String {
    let rows: Vec<Vec<String>> = sbs
        .iter()
        .map(|s| {
            vec![
                short_id(&s.id).to_string(),
                s.name.clone(),
                s.netns.display().to_string(),
                s.endpoints.len().to_string(),
            ]
        })
        .collect();
    table::render(&["SANDBOX ID", "NAME", "NETNS", "ENDPOINTS"], &rows)
}

/// Run one client command against the daemon.
pub async fn run_client(socket: Option<PathBuf>, command: Command) -> anyhow::Result<()> {
    let client = Client::new(socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)));
    match command {
        Command::Daemon(_) | Command::Cleanup { .. } => {
            anyhow::bail!("internal: not a client command")
        }
        Command::Network(cmd) => network(&client, cmd).await,
        Command::Endpoint(cmd) => endpoint(&client, cmd).await,
        Command::Sandbox(cmd) => sandbox(&client, cmd).await,
        Command::DockerSync(args) => docker_sync(&client, args).await,
        Command::OciHook { stage } => oci_hook::run(&client, stage, std::io::stdin()).await,
        Command::Port { target, format } => port(&client, target, format.format).await,
        Command::Publish { endpoint, publish } => {
            let ports: Vec<_> = publish.into_iter().flatten().collect();
            let ep = client.set_ports(&endpoint, &ports).await?;
            for p in &ep.ports {
                println!("{}", port_line(p));
            }
            Ok(())
        }
        Command::Cluster(ClusterCmd::Status { format }) => {
            let status = client.cluster_status().await?;
            match format.format {
                Format::Json => print_json(&status),
                Format::Table => {
                    print_cluster(&status);
                    Ok(())
                }
            }
        }
        Command::Firewall(FirewallCmd::Show) => {
            let shown = client.firewall().await?;
            anyhow::ensure!(shown.enabled, "netd runs with --firewall off");
            print!("{}", shown.script);
            match shown.kernel {
                Some(_) => {
                    eprintln!("# the kernel has table inet netd (`nft list table inet netd`)")
                }
                None => {
                    eprintln!("# the kernel has no table inet netd: it is put back within seconds")
                }
            }
            Ok(())
        }
        Command::Pools(format) => {
            let pools = client.pools().await?;
            match format.format {
                Format::Json => print_json(&pools),
                Format::Table => {
                    print!("{}", pool_rows(&pools));
                    Ok(())
                }
            }
        }
    }
}

/// `80/tcp -> 0.0.0.0:8080`, as `docker port` prints.
fn port_line(p: &firewall::PublishedPort) -> String {
    let host = match (p.host_ip, p.container_ip) {
        (Some(IpAddr::V6(ip)), _) => format!("[{ip}]"),
        (Some(ip), _) => ip.to_string(),
        (None, IpAddr::V4(_)) => "0.0.0.0".into(),
        (None, IpAddr::V6(_)) => "[::]".into(),
    };
    format!("{}/{} -> {host}:{}", p.container_port, p.proto, p.host_port)
}

async fn port(client: &Client, target: Option<String>, format: Format) -> anyhow::Result<()> {
    let endpoints = match target {
        None => client.endpoints().await?,
        Some(key) => match client.endpoint(&key).await {
            Ok(ep) => vec![ep],
            Err(ClientError::Api {
                status: hyper::StatusCode::NOT_FOUND,
                ..
            }) => {
                let sb = client.sandbox(&key).await.map_err(|e| match e {
                    ClientError::Api {
                        status: hyper::StatusCode::NOT_FOUND,
                        ..
                    } => {
                        anyhow::anyhow!("no endpoint or sandbox {key:?}")
                    }
                    other => other.into(),
                })?;
                let mut eps = Vec::new();
                for id in &sb.endpoints {
                    eps.push(client.endpoint(id).await?);
                }
                eps
            }
            Err(e) => return Err(e.into()),
        },
    };
    let with_ports: Vec<&EndpointRecord> =
        endpoints.iter().filter(|e| !e.ports.is_empty()).collect();
    match format {
        Format::Json => {
            let out: BTreeMap<&str, &Vec<firewall::PublishedPort>> = with_ports
                .iter()
                .map(|e| (e.id.as_str(), &e.ports))
                .collect();
            print_json(&out)
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = with_ports
                .iter()
                .flat_map(|e| {
                    e.ports.iter().map(|p| {
                        vec![
                            short_id(&e.id).to_string(),
                            e.name.clone(),
                            port_line(p),
                            p.container_ip.to_string(),
                        ]
                    })
                })
                .collect();
            print!(
                "{}",
                table::render(&["ENDPOINT ID", "NAME", "PORT", "CONTAINER ADDRESS"], &rows)
            );
            Ok(())
        }
    }
}

fn pool_rows(pools: &[ipam::PoolState]) -> String {
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|p| {
            let ranges: Vec<String> = p
                .allocated
                .iter()
                .map(|r| match r.last {
                    Some(last) => format!("{}-{last}", r.first),
                    None => r.first.to_string(),
                })
                .collect();
            vec![
                p.id.to_string(),
                p.owner.clone().unwrap_or_default(),
                ranges.join(","),
            ]
        })
        .collect();
    table::render(&["POOL", "OWNER", "ADDRESSES"], &rows)
}

async fn docker_sync(client: &Client, args: DockerSyncArgs) -> anyhow::Result<()> {
    let mut view = docker_view::read(&args.docker_socket, &args.plugin_name).await?;
    view.grace_seconds = Some(args.grace);
    view.dry_run = args.dry_run;
    view.allow_empty = args.allow_empty;
    let report = client.engine_sync(&view).await?;
    match args.format.format {
        Format::Json => print_json(&report)?,
        Format::Table => {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for (what, items) in [
                ("network", &report.networks),
                ("endpoint", &report.endpoints),
                ("pool", &report.pools),
                ("address", &report.addresses),
                ("released", &report.released),
            ] {
                for item in items.iter() {
                    println!("{verb} {what} {item}");
                }
            }
            for e in &report.errors {
                eprintln!("error: {e}");
            }
        }
    }
    anyhow::ensure!(
        report.errors.is_empty(),
        "{} object(s) could not be removed",
        report.errors.len()
    );
    Ok(())
}

/// Delete each of `keys`, printing each deleted one; fails if any failed.
async fn remove_each<F, Fut, T>(keys: Vec<String>, remove: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut failed = 0;
    for key in keys {
        match remove(key.clone()).await {
            Ok(_) => println!("{key}"),
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} could not be removed");
    }
    Ok(())
}

async fn network(client: &Client, cmd: NetworkCmd) -> anyhow::Result<()> {
    match cmd {
        NetworkCmd::Create {
            name,
            driver,
            subnet,
            gateway,
            ip_range,
            aux_address,
            ipv6,
            opt,
            label,
            format,
        } => {
            let req = NetworkCreate {
                name,
                driver: Some(driver),
                subnets: subnets(subnet, gateway, ip_range, aux_address)
                    .map_err(anyhow::Error::msg)?,
                ipv6,
                options: opt.into_iter().collect(),
                labels: label.into_iter().collect(),
            };
            let net = client.create_network(&req).await?;
            created(format.format, &net.id, &net)
        }
        NetworkCmd::Ls(f) => {
            let nets = client.networks().await?;
            match f.format {
                Format::Table => print!("{}", network_rows(&nets)),
                Format::Json => print_json(&nets)?,
            }
            Ok(())
        }
        NetworkCmd::Inspect { network } => print_json(&client.network(&network).await?),
        NetworkCmd::Rm { networks } => {
            remove_each(networks, |k| async move { client.delete_network(&k).await }).await
        }
    }
}

async fn endpoint(client: &Client, cmd: EndpointCmd) -> anyhow::Result<()> {
    match cmd {
        EndpointCmd::Create {
            network,
            spec,
            format,
        } => {
            let req = EndpointCreate {
                network,
                name: spec.name,
                ip: spec.ip,
                ipv6: spec.ipv6,
                mac: spec.mac,
                aliases: spec.aliases,
            };
            let ep = client.create_endpoint(&req).await?;
            created(format.format, &ep.id, &ep)
        }
        EndpointCmd::Ls(f) => {
            let eps = client.endpoints().await?;
            match f.format {
                Format::Table => {
                    let nets = client
                        .networks()
                        .await?
                        .into_iter()
                        .map(|n| (n.id, n.name))
                        .collect();
                    print!("{}", endpoint_rows(&eps, &nets));
                }
                Format::Json => print_json(&eps)?,
            }
            Ok(())
        }
        EndpointCmd::Inspect { endpoint } => print_json(&client.endpoint(&endpoint).await?),
        EndpointCmd::Rm { endpoints } => {
            remove_each(
                endpoints,
                |k| async move { client.delete_endpoint(&k).await },
            )
            .await
        }
    }
}

async fn sandbox(client: &Client, cmd: SandboxCmd) -> anyhow::Result<()> {
    match cmd {
        SandboxCmd::Create {
            name,
            netns,
            hostname,
            dns,
            format,
        } => {
            let req = SandboxCreate {
                name,
                netns,
                hostname,
                dns,
                ..Default::default()
            };
            let sb = client.create_sandbox(&req).await?;
            created(format.format, &sb.id, &sb)
        }
        SandboxCmd::Ls(f) => {
            let sbs = client.sandboxes().await?;
            match f.format {
                Format::Table => print!("{}", sandbox_rows(&sbs)),
                Format::Json => print_json(&sbs)?,
            }
            Ok(())
        }
        SandboxCmd::Inspect { sandbox } => print_json(&client.sandbox(&sandbox).await?),
        SandboxCmd::Rm { sandboxes } => {
            remove_each(
                sandboxes,
                |k| async move { client.delete_sandbox(&k).await },
            )
            .await
        }
        SandboxCmd::Join { sandbox, endpoint } => {
            let ep = client.join(&sandbox, &endpoint).await?;
            println!("{}", ep.join.map(|j| j.interface).unwrap_or_default());
            Ok(())
        }
        SandboxCmd::Leave { sandbox, endpoint } => {
            client.leave(&sandbox, &endpoint).await?;
            Ok(())
        }
        SandboxCmd::Attach {
            sandbox,
            network,
            spec,
            publish,
            interface,
            format,
        } => {
            let req = Attach {
                network,
                by_name: false,
                name: spec.name,
                ip: spec.ip,
                ipv6: spec.ipv6,
                mac: spec.mac,
                aliases: spec.aliases,
                ports: publish.into_iter().flatten().collect(),
                interface,
            };
            let ep = client.attach(&sandbox, &req).await?;
            created(format.format, &ep.id, &ep)
        }
        SandboxCmd::Detach { sandbox, endpoint } => {
            client.detach(&sandbox, &endpoint).await?;
            Ok(())
        }
    }
}
