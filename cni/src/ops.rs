//! ADD, DEL, CHECK and STATUS as calls to netd's native API. netd keeps every
//! bit of state: a container is the sandbox `cni-<container id>` adopting the
//! runtime's namespace, and each of its interfaces an endpoint attached to it.

use crate::env::Env;
use crate::error::CniError;
use crate::spec::{self, Code, Dns, Interface, IpConfig, NetConf, Outcome, Route};
use netd::client::{Client, ClientError};
use netd::controller::{Attach, Attachment, SandboxCreate};
use netd::model::{EndpointRecord, NetworkRecord, SandboxRecord};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The label that names the container a sandbox stands for (its full id).
pub const LABEL_CONTAINER: &str = "org.netd.cni.container";

/// 16 hex digits of FNV-1a over `bytes` (stable across builds, which std's
/// hasher is not). A cut id's hash is over the id's bytes alone, as it has
/// always been: a container attached by an older netd-cni keeps its name.
fn hash(bytes: impl Iterator<Item = u8>) -> String {
    let h = bytes.fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{h:016x}")
}

/// `text` cut to at most `len` bytes, at a character boundary.
fn cut(text: &str, len: usize) -> &str {
    let mut at = len.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

/// Whether `name` ends as a cut one does: '-' and 16 hex digits.
fn looks_cut(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 17
        && b[b.len() - 17] == b'-'
        && b[b.len() - 16..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// `id` as it fits in `room` bytes: whole when it fits and does not look like
/// a cut one, else cut with a hash of the whole appended. So no id's name is
/// another id's (an id spelled as another's cut name gets a hash too).
fn fitted(id: &str, room: usize) -> String {
    if id.len() <= room && !looks_cut(id) {
        return id.to_string();
    }
    format!("{}-{}", cut(id, room - 17), hash(id.bytes()))
}

/// The sandbox that stands for container `id`.
pub fn sandbox_name(id: &str) -> String {
    format!("cni-{}", fitted(id, 60))
}

/// The endpoint that stands for interface `ifname` of container `id`. An
/// interface name of letters, digits, '_' and '.' (the usual) is read back
/// after the name's last '-'; any other (with a '-', or characters a netd
/// name cannot hold) gets a hash of both instead, 16 hex digits, longer than
/// an interface name can be. So two containers' names never meet.
fn endpoint_name(id: &str, ifname: &str) -> String {
    if ifname
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
    {
        return format!("{}-{ifname}", fitted(id, 40));
    }
    let both = id.bytes().chain([0]).chain(ifname.bytes());
    format!("{}-{}", cut(id, 23), hash(both))
}

/// Held while one call works on a container: a runtime may run the calls of
/// a conflist's networks at once (containerd does), and each must see the
/// others' work whole. Released when dropped (the process ends); its file is
/// removed once the container has nothing left in netd, so the directory holds
/// files only for the containers attached now.
pub struct ContainerLock {
    _file: std::fs::File,
    path: std::path::PathBuf,
}

impl ContainerLock {
    /// The container has nothing left in netd: its lock file goes, still
    /// locked, so a call waiting on it finds the file unlinked and takes a
    /// fresh one instead.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Lock container `id` (waiting for another call's lock on it).
pub fn lock_container(id: &str) -> Result<ContainerLock, CniError> {
    let dir = Path::new("/run/netd-cni");
    let io = |e: std::io::Error| {
        CniError::new(
            Code::Io,
            format!("locking container {id} in {}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(format!("{}.lock", sandbox_name(id)));
    for _ in 0..100 {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        // The holder before may have removed the file meanwhile: then this
        // lock is on a file no one else will open, and a new one is needed.
        let held = file.metadata().map_err(io)?.ino();
        match std::fs::metadata(&path) {
            Ok(now) if now.ino() == held => return Ok(ContainerLock { _file: file, path }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    Err(CniError::new(
        Code::TryAgainLater,
        format!("the lock file {} kept being replaced", path.display()),
    ))
}

/// A client for the configuration's socket (or netd's default one).
pub fn client(conf: &NetConf) -> Client {
    Client::new(
        conf.socket
            .clone()
            .unwrap_or_else(|| netd::client::DEFAULT_SOCKET.into()),
    )
}

fn network_key(conf: &NetConf) -> &str {
    conf.network.as_deref().unwrap_or(&conf.name)
}

/// The configuration's network as netd has it, or None: by the `network` key
/// (a name, id or id prefix), else by the configuration's `name`, a name only
/// (netd also reads hex digits as an id prefix: that network is not this one).
async fn lookup_network(
    c: &Client,
    conf: &NetConf,
) -> Result<Option<netd::api::NetworkInspect>, ClientError> {
    let key = network_key(conf);
    let direct = c.network(key).await;
    if conf.network.is_some() {
        return match direct {
            Ok(n) => Ok(Some(n)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        };
    }
    match direct {
        // The usual case: netd found it by its name.
        Ok(n) if n.network.name == conf.name => return Ok(Some(n)),
        // netd read the name as an id or id prefix (of one network, or of
        // several: 400), or has none: the names decide.
        Ok(_) | Err(ClientError::Api { .. }) => {}
        Err(e) => return Err(e),
    }
    let named = c
        .networks()
        .await?
        .into_iter()
        .find(|n| n.name == conf.name);
    match named {
        Some(n) => match c.network(&n.id).await {
            Ok(n) => Ok(Some(n)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

fn not_found(e: &ClientError) -> bool {
    matches!(e, ClientError::Api { status, .. } if status.as_u16() == 404)
}

/// CNI_NETNS, which ADD and CHECK need, and its inode.
fn container_netns(env: &Env) -> Result<(&Path, u64), CniError> {
    let netns = env
        .netns
        .as_deref()
        .ok_or_else(|| CniError::env("CNI_NETNS is not set"))?;
    Ok((netns, netns_inode(netns)?))
}

/// The inode of namespace file `path` (`net:[N]`).
fn netns_inode(path: &Path) -> Result<u64, CniError> {
    std::fs::metadata(path).map(|m| m.ino()).map_err(|e| {
        CniError::env(format!(
            "CNI_NETNS {}: {e} (give the container's network namespace file)",
            path.display()
        ))
    })
}

/// ADD: attach the container's namespace to the network as `ifname`.
pub async fn add(env: &Env, conf: &NetConf) -> Result<Outcome, CniError> {
    if conf.ipam.is_some() {
        return Err(CniError::new(
            Code::UnsupportedField,
            "netd-cni takes no ipam section: netd allocates addresses from the network's own subnets (give runtimeConfig.ips or CNI_ARGS IP= for a fixed one)",
        ));
    }
    let (netns, inode) = container_netns(env)?;
    if let Some(prev) = &conf.prev_result {
        // Refused before anything is made, not after: a result with one of
        // everything goes through every part of `chained` on it.
        let probe = Outcome {
            cni_version: conf.cni_version.clone(),
            interfaces: vec![Interface {
                name: env.ifname.clone(),
                mac: String::new(),
                sandbox: String::new(),
            }],
            ips: vec![IpConfig {
                version: None,
                address: "0.0.0.0/0".into(),
                gateway: None,
                interface: Some(0),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".into(),
                gw: None,
            }],
            dns: Dns {
                nameservers: vec!["0.0.0.0".into()],
            },
        };
        chained(prev, &probe)?;
    }
    let c = client(conf);
    let key = network_key(conf);
    let req = attach_request(env, conf, key)?;
    // First the container's sandbox made and attached in one request (one
    // commit), whose answer has the network too: a runtime waits on every
    // round trip.
    let both = Attachment {
        sandbox: sandbox_request(env, netns),
        attach: req.clone(),
    };
    let no_network = || {
        CniError::config(format!(
            "netd has no network {key:?}: create it with `netd network create {key}`, or name another with the configuration's \"network\" key"
        ))
    };
    // The network's responder (which answers the names of every network the
    // container is on), else the host's name servers.
    let servers = |dns: Option<IpAddr>, sb: &SandboxRecord| match dns {
        Some(d) => vec![d],
        None => sb.dns.clone(),
    };
    match c.create_attached(&both).await {
        Ok(a) => {
            return Ok(outcome(
                conf,
                env,
                netns,
                &a.network,
                &servers(a.dns, &a.sandbox),
                &a.endpoint,
            ))
        }
        // The namespace was checked above: what is missing is the network.
        Err(e) if not_found(&e) => return Err(no_network()),
        // The sandbox may be there already (the container's ADD for another
        // network, or this one again): the steps one by one, below, tell. Any
        // other refusal is met there again and answered.
        Err(ClientError::Api { status, .. }) if status.as_u16() == 409 => {}
        Err(e) => return Err(CniError::netd(&format!("attaching to network {key}"), e)),
    }
    let (net, sandbox) = tokio::join!(lookup_network(&c, conf), sandbox_for(&c, env, netns, inode));
    let (sb, fresh) = sandbox?;
    let (net, dns) = match net {
        Ok(Some(n)) => (n.network, n.dns),
        missing => {
            if fresh {
                let _ = remove_if_empty(&c, &sb.name).await;
            }
            return Err(match missing {
                Err(e) => CniError::netd("looking up the network", e),
                _ => no_network(),
            });
        }
    };
    // The same ADD again (a runtime retrying): the attachment there already.
    let existing = match fresh {
        true => None,
        false => endpoint_at(&c, &sb, &env.ifname).await?,
    };
    if let Some(ep) = existing {
        // The specification: an interface of that name is an error.
        let on = if ep.network == net.id {
            "this network"
        } else {
            "another netd network"
        };
        return Err(CniError::new(
            Code::Refused,
            format!(
                "container {} has an interface {} on {on} already; DEL it first",
                env.container_id, env.ifname
            ),
        ));
    }
    match c.attach(&sb.name, &req).await {
        Ok(ep) => {
            let mut out = outcome(conf, env, netns, &net, &servers(dns, &sb), &ep);
            if !fresh {
                without_held_defaults(&c, &sb, &mut out).await;
            }
            Ok(out)
        }
        Err(e) => {
            // Nothing half-made: a sandbox left with no interface goes.
            if let Err(undo) = remove_if_empty(&c, &sb.name).await {
                eprintln!("netd-cni: {undo}");
            }
            Err(CniError::netd(
                &format!("attaching to network {}", net.name),
                e,
            ))
        }
    }
}

/// The container's sandbox as netd-cni asks for it: named for the container,
/// labelled with its id, adopting its namespace.
fn sandbox_request(env: &Env, netns: &Path) -> SandboxCreate {
    SandboxCreate {
        name: Some(sandbox_name(&env.container_id)),
        netns: Some(netns.to_path_buf()),
        labels: [(LABEL_CONTAINER.to_string(), env.container_id.clone())].into(),
        ..Default::default()
    }
}

/// The container's sandbox, and whether this call made it: adopted from
/// `netns`, or found (if it still has the same namespace).
async fn sandbox_for(
    c: &Client,
    env: &Env,
    netns: &Path,
    inode: u64,
) -> Result<(SandboxRecord, bool), CniError> {
    let name = sandbox_name(&env.container_id);
    for _ in 0..3 {
        let req = sandbox_request(env, netns);
        let refused = match c.create_sandbox(&req).await {
            Ok(sb) => return Ok((sb, true)),
            // There already (an ADD for another network, or this one again).
            Err(ClientError::Api { status, body }) if status.as_u16() == 409 => body.message,
            Err(e) => return Err(CniError::netd("adopting the container's namespace", e)),
        };
        match c.sandbox(&name).await {
            Ok(sb) if sb.labels.get(LABEL_CONTAINER) != Some(&env.container_id) => {
                return Err(CniError::new(
                    Code::Refused,
                    format!("netd has a sandbox named {name} that is not container {}'s; netd-cni leaves it alone", env.container_id),
                ))
            }
            Ok(sb) if sb.netns_inode == Some(inode) => return Ok((sb, false)),
            Ok(_) => {
                // A namespace of an earlier life of the container, never DELeted.
                match c.delete_sandbox(&name).await {
                    Ok(_) => {}
                    Err(e) if not_found(&e) => {}
                    Err(e) => {
                        return Err(CniError::netd(
                            "removing the container's sandbox of an earlier namespace",
                            e,
                        ))
                    }
                }
            }
            // Not ours by name: the namespace is another sandbox's.
            Err(e) if not_found(&e) => return Err(CniError::new(Code::Refused, refused)),
            Err(e) => return Err(CniError::netd("looking up the container's sandbox", e)),
        }
    }
    Err(CniError::new(
        Code::TryAgainLater,
        format!("the sandbox {name} kept changing while it was looked up"),
    ))
}

/// Drop the result's default routes of the address families for which one of
/// the container's other interfaces has a gateway: the sandbox's default route
/// is that one's (netd leaves an existing one alone), not this interface's.
/// Best effort: what cannot be read is taken as no gateway.
async fn without_held_defaults(c: &Client, sb: &SandboxRecord, out: &mut Outcome) {
    let mut held = (false, false);
    for id in &sb.endpoints {
        let Ok(ep) = c.endpoint(id).await else {
            continue;
        };
        if ep
            .join
            .as_ref()
            .and_then(|j| j.host_link.as_ref())
            .is_none()
        {
            continue;
        }
        let Ok(net) = c.network(&ep.network).await else {
            continue;
        };
        let routes_out = routes_out(&net.network);
        for a in &ep.addresses {
            let gateway = net
                .network
                .subnets
                .iter()
                .find(|s| s.subnet.contains(&a.addr()))
                .and_then(|s| s.gateway)
                .filter(|g| routes_out(*g));
            match gateway {
                Some(IpAddr::V4(_)) => held.0 = true,
                Some(IpAddr::V6(_)) => held.1 = true,
                None => {}
            }
        }
    }
    out.routes.retain(|r| match r.dst.as_str() {
        "0.0.0.0/0" => !held.0,
        "::/0" => !held.1,
        _ => true,
    });
}

/// The endpoint joined to `sb` as `ifname`, if there is one.
async fn endpoint_at(
    c: &Client,
    sb: &SandboxRecord,
    ifname: &str,
) -> Result<Option<EndpointRecord>, CniError> {
    for id in &sb.endpoints {
        match c.endpoint(id).await {
            Ok(ep) if ep.join.as_ref().is_some_and(|j| j.interface == ifname) => {
                return Ok(Some(ep))
            }
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(CniError::netd("looking up the container's endpoints", e)),
        }
    }
    Ok(None)
}

/// The attach an ADD asks for: the interface name, fixed addresses and MAC
/// (runtimeConfig first, then CNI_ARGS), and ports.
fn attach_request(env: &Env, conf: &NetConf, network: &str) -> Result<Attach, CniError> {
    let mut req = Attach {
        network: network.to_string(),
        // The configuration's name is a name, even when it looks like hex
        // digits (an id prefix of another network).
        by_name: conf.network.is_none(),
        name: Some(endpoint_name(&env.container_id, &env.ifname)),
        interface: Some(env.ifname.clone()),
        mac: conf
            .runtime_config
            .mac
            .clone()
            .or_else(|| env.args.get("MAC").cloned()),
        aliases: aliases(env, conf),
        ..Default::default()
    };
    let mut wanted: Vec<String> = conf.runtime_config.ips.clone();
    if wanted.is_empty() {
        wanted.extend(
            env.args
                .get("IP")
                .map(|ips| ips.split(',').map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
    }
    for text in wanted {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.as_str(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CniError::config(format!("ips: {text:?} is not an IP address")))?;
        // A prefix may be given (CNI's `ips` carry one) but must be one; the
        // interface gets the network's subnet's, which the result shows.
        let most = if addr.is_ipv4() { 32 } else { 128 };
        if prefix.is_some_and(|p| p.parse::<u8>().map_or(true, |p| p > most)) {
            return Err(CniError::config(format!(
                "ips: {text:?} has a prefix length that is not 0-{most}"
            )));
        }
        let slot = if addr.is_ipv4() {
            &mut req.ip
        } else {
            &mut req.ipv6
        };
        if slot.replace(addr).is_some() {
            return Err(CniError::config(format!(
                "ips: one IPv{} address per interface ({text} is a second)",
                if addr.is_ipv4() { 4 } else { 6 }
            )));
        }
    }
    for m in &conf.runtime_config.port_mappings {
        let proto = match m
            .protocol
            .as_deref()
            .unwrap_or("tcp")
            .to_ascii_lowercase()
            .as_str()
        {
            "tcp" => firewall::Proto::Tcp,
            "udp" => firewall::Proto::Udp,
            "sctp" => firewall::Proto::Sctp,
            other => {
                return Err(CniError::config(format!(
                    "portMappings: protocol {other:?} is not tcp, udp or sctp"
                )))
            }
        };
        let host_ip = match m.host_ip.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => Some(h.parse().map_err(|_| {
                CniError::config(format!("portMappings: hostIP {h:?} is not an IP address"))
            })?),
            None => None,
        };
        req.ports.push(firewall::PortRequest {
            proto,
            host_ip,
            host_port: m.host_port,
            host_port_end: None,
            container_port: m.container_port,
            // As with CNI's own portmap plugin: the runtime holds the host
            // port if it wants it held (podman does), not the plugin.
            held_by_caller: true,
        });
    }
    Ok(req)
}

/// The names the container answers to in the network's DNS: the runtime's
/// `aliases` for this network (podman: the short id) and `K8S_POD_NAME` from
/// CNI_ARGS (podman: the container's name; Kubernetes: the pod's), if it
/// makes a host name. An alias the runtime gives that does not is refused by
/// netd, with its message.
fn aliases(env: &Env, conf: &NetConf) -> Vec<String> {
    let mut out = conf
        .runtime_config
        .aliases
        .get(&conf.name)
        .cloned()
        .unwrap_or_default();
    let host_name = |n: &String| {
        !n.contains('.') && netd::controller::check_aliases(std::slice::from_ref(n)).is_ok()
    };
    if let Some(pod) = env.args.get("K8S_POD_NAME").filter(|n| host_name(n)) {
        if !out.contains(pod) {
            out.push(pod.clone());
        }
    }
    out
}

/// An ADD's result after a chain's earlier plugins: theirs (`prevResult`, kept
/// as given, with any field this plugin does not know) and this interface, its
/// addresses (their interface index moved past the earlier ones), routes and
/// name servers added.
pub fn chained(prev: &serde_json::Value, ours: &Outcome) -> Result<serde_json::Value, CniError> {
    use serde_json::Value;
    let bad = |why: &str| CniError::new(Code::Decode, format!("prevResult {why}"));
    let mut out = prev.clone();
    let obj = out
        .as_object_mut()
        .ok_or_else(|| bad("is not a JSON object"))?;
    /// `obj[key]` as a list, made empty if missing or null.
    fn list<'a>(
        obj: &'a mut serde_json::Map<String, serde_json::Value>,
        key: &str,
    ) -> Result<&'a mut Vec<serde_json::Value>, CniError> {
        let slot = obj
            .entry(key.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if slot.is_null() {
            *slot = serde_json::Value::Array(Vec::new());
        }
        match slot {
            serde_json::Value::Array(items) => Ok(items),
            _ => Err(CniError::new(
                Code::Decode,
                format!("prevResult has {key} that is not a list"),
            )),
        }
    }
    fn json(v: &impl serde::Serialize) -> Result<serde_json::Value, CniError> {
        serde_json::to_value(v)
            .map_err(|e| CniError::new(Code::Io, format!("writing the result: {e}")))
    }
    let earlier = list(obj, "interfaces")?.len();
    for i in &ours.interfaces {
        let v = json(i)?;
        list(obj, "interfaces")?.push(v);
    }
    for ip in &ours.ips {
        let mut ip = ip.clone();
        ip.interface = ip.interface.map(|n| n + earlier);
        let v = json(&ip)?;
        list(obj, "ips")?.push(v);
    }
    for r in &ours.routes {
        let v = json(r)?;
        list(obj, "routes")?.push(v);
    }
    if !ours.dns.nameservers.is_empty() {
        let dns = obj
            .entry("dns".to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if dns.is_null() {
            *dns = Value::Object(Default::default());
        }
        let dns = dns
            .as_object_mut()
            .ok_or_else(|| bad("has dns that is not an object"))?;
        let servers = list(dns, "nameservers")?;
        for n in &ours.dns.nameservers {
            if !servers.iter().any(|s| s.as_str() == Some(n)) {
                servers.push(Value::String(n.clone()));
            }
        }
    }
    obj.insert(
        "cniVersion".to_string(),
        Value::String(ours.cni_version.clone()),
    );
    Ok(out)
}

/// Whether `net`'s gateway in a family gives a default route: not on an
/// internal network, nor in a family whose gateway mode is isolated (netd
/// sets none there, as Docker does).
fn routes_out(net: &NetworkRecord) -> impl Fn(IpAddr) -> bool {
    let policy = firewall::Policy::from_options(&net.options).unwrap_or_default();
    move |gw| !policy.closed(gw)
}

/// The result of an attachment, in the configuration's version.
fn outcome(
    conf: &NetConf,
    env: &Env,
    netns: &Path,
    net: &NetworkRecord,
    name_servers: &[IpAddr],
    ep: &EndpointRecord,
) -> Outcome {
    let old = spec::before_1_0(&conf.cni_version);
    let mut ips = Vec::new();
    let mut routes = Vec::new();
    let routes_out = routes_out(net);
    for addr in &ep.addresses {
        let subnet = net.subnets.iter().find(|s| s.subnet.contains(&addr.addr()));
        let prefix = subnet
            .map(|s| s.subnet.prefix_len())
            .unwrap_or(addr.prefix_len());
        let gateway = subnet.and_then(|s| s.gateway);
        ips.push(IpConfig {
            version: old.then(|| if addr.addr().is_ipv4() { "4" } else { "6" }.to_string()),
            address: format!("{}/{prefix}", addr.addr()),
            gateway: gateway.map(|g| g.to_string()),
            interface: Some(0),
        });
        if let Some(g) = gateway.filter(|g| routes_out(*g)) {
            routes.push(Route {
                dst: if g.is_ipv4() { "0.0.0.0/0" } else { "::/0" }.to_string(),
                gw: Some(g.to_string()),
            });
        }
    }
    Outcome {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![Interface {
            name: env.ifname.clone(),
            mac: ep.mac.clone(),
            sandbox: netns.display().to_string(),
        }],
        ips,
        routes,
        dns: Dns {
            nameservers: name_servers.iter().map(|d| d.to_string()).collect(),
        },
    }
}

/// DEL: detach the container's interface; the sandbox goes with its last one.
/// Nothing to do (a second DEL, a container netd never saw) is success.
/// True when the container has nothing left in netd.
pub async fn del(env: &Env, conf: &NetConf) -> Result<bool, CniError> {
    let c = client(conf);
    let name = sandbox_name(&env.container_id);
    let sb = match c.sandbox(&name).await {
        Ok(sb) => sb,
        Err(e) if not_found(&e) => return Ok(true),
        Err(e) => return Err(CniError::netd("looking up the container's sandbox", e)),
    };
    if sb.labels.get(LABEL_CONTAINER) != Some(&env.container_id) {
        // A sandbox of that name someone else made: not this plugin's to
        // touch, nor the lock of whoever holds it.
        return Ok(false);
    }
    let network = match lookup_network(&c, conf).await {
        Ok(n) => n.map(|n| n.network.id),
        Err(e) => return Err(CniError::netd("looking up the network", e)),
    };
    let ep = endpoint_at(&c, &sb, &env.ifname)
        .await?
        .filter(|ep| Some(&ep.network) == network.as_ref());
    if let Some(ep) = ep {
        match c.detach(&sb.name, &ep.id).await {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(CniError::netd("detaching the container's interface", e)),
        }
    }
    remove_if_empty(&c, &name).await
}

/// Whether netd has nothing of container `id` (after a failed ADD or CHECK);
/// false when it cannot tell.
pub async fn nothing_of(conf: &NetConf, id: &str) -> bool {
    matches!(client(conf).sandbox(&sandbox_name(id)).await, Err(e) if not_found(&e))
}

/// Remove sandbox `name` if no endpoint is joined to it; true if it is gone.
/// The caller holds the container's lock, so no ADD of this plugin attaches
/// meanwhile.
async fn remove_if_empty(c: &Client, name: &str) -> Result<bool, CniError> {
    match c.sandbox(name).await {
        Ok(sb) if sb.endpoints.is_empty() => match c.delete_sandbox(name).await {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(true),
            Err(ClientError::Api { status, .. }) if status.as_u16() == 409 => Ok(false),
            Err(e) => Err(CniError::netd("removing the container's sandbox", e)),
        },
        Ok(_) => Ok(false),
        Err(e) if not_found(&e) => Ok(true),
        Err(e) => Err(CniError::netd("looking up the container's sandbox", e)),
    }
}

/// CHECK: the attachment is there, in netd and in the namespace, as the
/// previous result says.
pub async fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    if !spec::has_check(&conf.cni_version) {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "CHECK needs cniVersion 0.4.0 or later (the configuration has {})",
                conf.cni_version
            ),
        ));
    }
    let prev: Outcome = match &conf.prev_result {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            CniError::new(Code::Decode, format!("prevResult is not a CNI result: {e}"))
        })?,
        None => {
            return Err(CniError::config(
                "CHECK needs the prevResult of the ADD (the runtime passes it)",
            ))
        }
    };
    let (netns, inode) = container_netns(env)?;
    let c = client(conf);
    let unknown = |what: String| CniError::new(Code::UnknownContainer, what);
    let sb = match c.sandbox(&sandbox_name(&env.container_id)).await {
        Ok(sb) => sb,
        Err(e) if not_found(&e) => {
            return Err(unknown(format!(
                "netd has no attachment of container {}",
                env.container_id
            )))
        }
        Err(e) => return Err(CniError::netd("looking up the container's sandbox", e)),
    };
    if sb.labels.get(LABEL_CONTAINER) != Some(&env.container_id) {
        return Err(unknown(format!(
            "netd's sandbox {} is not container {}'s",
            sb.name, env.container_id
        )));
    }
    if sb.netns_inode != Some(inode) {
        return Err(unknown(format!(
            "container {}'s sandbox in netd has another network namespace than {}",
            env.container_id,
            netns.display()
        )));
    }
    let ep = endpoint_at(&c, &sb, &env.ifname).await?.ok_or_else(|| {
        unknown(format!(
            "container {} has no interface {} in netd",
            env.container_id, env.ifname
        ))
    })?;
    let net = lookup_network(&c, conf)
        .await
        .map_err(|e| CniError::netd("looking up the network", e))?
        .ok_or_else(|| {
            CniError::new(
                Code::Failed,
                format!("netd has no network {:?}", network_key(conf)),
            )
        })?
        .network;
    if ep.network != net.id {
        return Err(CniError::new(
            Code::Failed,
            format!("interface {} is on another netd network", env.ifname),
        ));
    }
    // Only this interface's addresses: a chained prevResult lists others too.
    // An address with no interface index is this interface's only when the
    // result names no other interface.
    let alone = prev.interfaces.iter().all(|f| f.name == env.ifname);
    let ours = |i: &IpConfig| match i.interface {
        Some(n) => prev.interfaces.get(n).is_some_and(|f| f.name == env.ifname),
        None => alone,
    };
    let want: Vec<String> = prev
        .ips
        .iter()
        .filter(|i| ours(i))
        .map(|i| i.address.clone())
        .collect();
    let held = outcome(conf, env, netns, &net, &sb.dns, &ep);
    let have: Vec<String> = held.ips.iter().map(|i| i.address.clone()).collect();
    if want != have {
        return Err(CniError::new(
            Code::Failed,
            format!("netd holds {have:?} for the interface, the previous result says {want:?}"),
        ));
    }
    // And the kernel: the interface is in the namespace with those addresses.
    let nl = drivers::netlink::Netlink::in_netns(netns)
        .await
        .map_err(|e| CniError::new(Code::Io, format!("entering {}: {e}", netns.display())))?;
    let link = nl
        .link(&env.ifname)
        .await
        .map_err(|e| CniError::new(Code::Io, format!("looking up {}: {e}", env.ifname)))?
        .ok_or_else(|| {
            CniError::new(
                Code::Failed,
                format!("the namespace has no interface {}", env.ifname),
            )
        })?;
    let on_link: Vec<String> = nl
        .addresses(link.index)
        .await
        .map_err(|e| CniError::new(Code::Io, format!("listing addresses: {e}")))?
        .iter()
        .map(|a| a.to_string())
        .collect();
    if let Some(missing) = have.iter().find(|a| !on_link.contains(a)) {
        return Err(CniError::new(
            Code::Failed,
            format!("interface {} lacks its address {missing}", env.ifname),
        ));
    }
    Ok(())
}

/// GC (1.1.0): take out of this network every attachment of netd-cni's whose
/// container and interface are not among the runtime's valid attachments, and
/// the sandboxes left with none.
pub async fn gc(conf: &NetConf) -> Result<(), CniError> {
    let valid: Vec<(String, String)> = conf
        .valid_attachments
        .iter()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let c = client(conf);
    let network = match lookup_network(&c, conf).await {
        Ok(Some(n)) => n.network.id,
        Ok(None) => return Ok(()),
        Err(e) => return Err(CniError::netd("looking up the network", e)),
    };
    let sandboxes = c
        .sandboxes()
        .await
        .map_err(|e| CniError::netd("listing sandboxes", e))?;
    for sb in sandboxes {
        // Only labels this plugin could have written (someone may label a
        // sandbox by hand through netd's API).
        let Some(container) = sb
            .labels
            .get(LABEL_CONTAINER)
            .filter(|id| crate::env::valid_container_id(id))
        else {
            continue;
        };
        let lock = lock_container(container)?;
        for id in &sb.endpoints {
            let Ok(ep) = c.endpoint(id).await else {
                continue;
            };
            let Some(ifname) = ep.join.as_ref().map(|j| j.interface.clone()) else {
                continue;
            };
            if ep.network == network && !valid.contains(&(container.clone(), ifname)) {
                match c.detach(&sb.name, &ep.id).await {
                    Ok(_) => {}
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(CniError::netd("detaching a stale interface", e)),
                }
            }
        }
        if remove_if_empty(&c, &sb.name).await? {
            lock.remove();
        }
    }
    Ok(())
}

/// STATUS: whether an ADD could work: netd answers and has the network.
pub async fn status(conf: &NetConf) -> Result<(), CniError> {
    let key = network_key(conf);
    match lookup_network(&client(conf), conf).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(CniError::new(
            Code::NotAvailable,
            format!("netd has no network {key:?}"),
        )),
        Err(e) => Err(CniError::new(
            Code::NotAvailable,
            format!("netd does not answer: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_container_gets_another_ones_names() {
        let long = "a".repeat(64);
        // A long id is cut with a hash; an id spelled as that cut name is not
        // kept whole (it would be the long one's), nor are they equal after.
        let cut_name = fitted(&long, 60);
        assert_eq!(cut_name.len(), 60);
        assert_ne!(fitted(&cut_name, 60), cut_name);
        assert_ne!(sandbox_name(&cut_name), sandbox_name(&long));
        // Short ids stay as they are, so names stay readable.
        assert_eq!(sandbox_name("web1"), "cni-web1");
        assert_eq!(endpoint_name("web1", "eth0"), "web1-eth0");
        // "hxe" + "x-eth0" and "hxe-x" + "eth0" once made the same endpoint.
        assert_ne!(
            endpoint_name("hxe", "x-eth0"),
            endpoint_name("hxe-x", "eth0")
        );
        assert_ne!(
            endpoint_name(&cut_name, "eth0"),
            endpoint_name(&long, "eth0")
        );
        // A 64-hex id (podman's, containerd's) keeps the name older builds
        // gave it.
        let id = "0123456789abcdef".repeat(4);
        let fnv = id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        assert_eq!(sandbox_name(&id), format!("cni-{}-{fnv:016x}", &id[..43]));
        // An interface name a netd name cannot hold gets the hashed form.
        assert!(netd::model::Name::parse("endpoint", &endpoint_name("web1", "eth@0")).is_ok());
        // Cuts fall on character boundaries (labels read back by GC may hold
        // any text).
        let wide = "é".repeat(40);
        assert!(fitted(&wide, 60).len() <= 60);
    }
}
