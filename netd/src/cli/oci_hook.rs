//! `netd oci-hook create|poststop`: networking for a plain OCI runtime (runc,
//! crun) with no engine. The runtime runs the hook with the container's state
//! on stdin; the annotations name what it joins:
//!
//! - `org.netd.networks`: netd networks, comma-separated; the container's
//!   namespace gets `eth0`, `eth1`, ... on them, in that order;
//! - `org.netd.ports`: ports to publish on the first network, comma-separated,
//!   each as `-p` takes it (`8080:80`, `127.0.0.1:5353:53/udp`);
//! - `org.netd.aliases`: more names the container answers to in its networks'
//!   DNS, comma-separated (it answers to its id, and to the `hostname` of its
//!   bundle's config.json, anyway).
//!
//! At `create` (a createRuntime, createContainer or prestart hook: the state has
//! the container's pid) the container's network namespace is adopted as sandbox
//! `oci-<id>` and attached; at `poststop` the sandbox is deleted, taking its
//! endpoints and ports with it. A failed create leaves nothing behind.

use crate::client::{Client, ClientError};
use crate::controller::{Attach, SandboxCreate};
use anyhow::{bail, Context, Result};
use native_api::oci::OciState as State;
use serde::Deserialize;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

/// The annotation naming the networks.
pub const NETWORKS: &str = "org.netd.networks";
/// The annotation naming the ports to publish on the first network.
pub const PORTS: &str = "org.netd.ports";
/// The annotation naming more DNS names.
pub const ALIASES: &str = "org.netd.aliases";

/// The names the container answers to: its id and its config's host name when
/// they make DNS names, and the annotation's (checked by netd).
fn aliases(state: &State) -> Vec<String> {
    let plausible =
        |n: &str| !n.contains('.') && crate::controller::check_aliases(&[n.to_string()]).is_ok();
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        hostname: Option<String>,
    }
    let hostname = std::fs::read(std::path::Path::new(&state.bundle).join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Config>(&b).ok())
        .and_then(|c| c.hostname);
    let mut out: Vec<String> = Vec::new();
    for name in [Some(state.id.clone()), hostname].into_iter().flatten() {
        if plausible(&name) && !out.contains(&name) {
            out.push(name);
        }
    }
    if let Some(list) = state.annotations.get(ALIASES) {
        for a in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            if !out.iter().any(|o| o == a) {
                out.push(a.to_string());
            }
        }
    }
    out
}

/// The label naming the bundle of the container a sandbox stands for: OCI
/// ids are unique per runtime root only, bundles per host.
pub const LABEL_BUNDLE: &str = "org.netd.oci.bundle";

/// When the hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// createRuntime or prestart (run in the runtime's namespaces): attach.
    /// Not createContainer: it runs inside the container, where the pid in
    /// the state is not the host's.
    #[value(alias = "createRuntime", alias = "prestart")]
    Create,
    /// poststop: detach and forget.
    Poststop,
}

/// The sandbox that stands for container `id`.
pub fn sandbox_name(id: &str) -> String {
    format!("oci-{}", &id[..id.len().min(60)])
}

/// Run the hook: the state from `input`.
pub async fn run(client: &Client, stage: Stage, input: impl Read) -> Result<()> {
    let state = native_api::oci::read_state(input, "netd oci-hook")?;
    crate::model::Name::parse("container", &state.id).map_err(anyhow::Error::msg)?;
    match stage {
        Stage::Create => create(client, &state).await,
        Stage::Poststop => poststop(client, &state).await,
    }
}

async fn create(client: &Client, state: &State) -> Result<()> {
    let networks: Vec<&str> = state
        .annotations
        .get(NETWORKS)
        .map(|n| {
            n.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if networks.is_empty() {
        // The hook is installed for every container; this one asks for nothing.
        return Ok(());
    }
    let ports = match state.annotations.get(PORTS) {
        Some(text) => text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(super::parse_publish)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("annotation {PORTS}: {e}"))?
            .into_iter()
            .flatten()
            .collect(),
        None => Vec::new(),
    };
    let Some(pid) = state.pid.filter(|p| *p > 0) else {
        bail!("the OCI state has no pid: run `netd oci-hook create` as a createRuntime or prestart hook");
    };
    let netns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    let theirs = std::fs::metadata(&netns)
        .with_context(|| format!("the container's network namespace {}", netns.display()))?
        .ino();
    let ours = std::fs::metadata("/proc/self/ns/net")
        .context("this process's network namespace")?
        .ino();
    if theirs == ours {
        bail!("container {} shares this host's network namespace: give it one of its own (a \"network\" entry without a path in linux.namespaces)", state.id);
    }
    let name = sandbox_name(&state.id);
    let sb = client
        .create_sandbox(&SandboxCreate {
            name: Some(name.clone()),
            netns: Some(netns),
            labels: [(LABEL_BUNDLE.to_string(), state.bundle.clone())].into(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("adopting container {}'s network namespace", state.id))?;
    if sb.netns_inode != Some(theirs) {
        // The pid went, and another process took it, between the two looks.
        let _ = client.delete_sandbox(&sb.name).await;
        bail!("container {}'s process (pid {pid}) is gone", state.id);
    }
    for (i, network) in networks.iter().enumerate() {
        let req = Attach {
            network: network.to_string(),
            name: Some(format!("{}-{i}", &state.id[..state.id.len().min(50)])),
            ports: if i == 0 { ports.clone() } else { Vec::new() },
            aliases: aliases(state),
            ..Default::default()
        };
        if let Err(e) = client.attach(&sb.name, &req).await {
            // Nothing half-made: what was attached goes with the sandbox.
            if let Err(undo) = client.delete_sandbox(&sb.name).await {
                eprintln!("netd oci-hook: removing sandbox {} again: {undo}", sb.name);
            }
            return Err(anyhow::Error::new(e).context(format!(
                "attaching container {} to network {network}",
                state.id
            )));
        }
    }
    Ok(())
}

async fn poststop(client: &Client, state: &State) -> Result<()> {
    let name = sandbox_name(&state.id);
    match client.sandbox(&name).await {
        // Another container's (the same id under another runtime root): its
        // own poststop removes it.
        Ok(sb) if sb.labels.get(LABEL_BUNDLE) != Some(&state.bundle) => return Ok(()),
        Ok(_) => {}
        Err(ClientError::Api { status, .. }) if status.as_u16() == 404 => return Ok(()),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("looking up container {}'s sandbox", state.id)))
        }
    }
    match client.delete_sandbox(&name).await {
        Ok(_) => Ok(()),
        Err(ClientError::Api { status, .. }) if status.as_u16() == 404 => Ok(()),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("removing container {}'s sandbox", state.id)))
        }
    }
}
