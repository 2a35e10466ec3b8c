//! Running `nft`: a script as one transaction, and a listing of netd's own table
//! (never anyone else's: nft's JSON cannot describe every rule others may have).

use crate::render::{Counts, TABLE};
use crate::FirewallError;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Apply `script` with `nft -f -`: all of it or none of it.
pub async fn apply(script: &str, doing: &str) -> Result<(), FirewallError> {
    if script.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(FirewallError::NftMissing)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|source| FirewallError::Io {
                doing: format!("writing to nft ({doing})"),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|source| FirewallError::Io {
            doing: format!("waiting for nft ({doing})"),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    tracing::debug!(%stderr, script, "nft refused a script");
    Err(FirewallError::Nft {
        doing: doing.to_string(),
        stderr: stderr.lines().take(6).collect::<Vec<_>>().join("; "),
    })
}

/// The ruleset's generation: the kernel counts every committed nftables
/// transaction, anyone's. Unchanged since netd's own last change, nothing changed.
pub async fn generation() -> Result<u32, FirewallError> {
    tokio::task::spawn_blocking(generation_now)
        .await
        .map_err(|e| FirewallError::Io {
            doing: "reading nftables' generation".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

fn generation_now() -> Result<u32, FirewallError> {
    use netlink_packet_core::NLM_F_REQUEST;
    use netlink_packet_netfilter::nftables::{GenAttribute, GenMessage, NfTablesMessage};
    use netlink_packet_netfilter::{
        NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
    };
    let socket = crate::netfilter::open()?;
    let ask = NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0),
        NfTablesMessage::GetGen(GenMessage {
            attributes: Vec::new(),
        }),
    );
    crate::netfilter::send(&socket, ask, NLM_F_REQUEST, 1)
        .map_err(crate::netfilter::io("asking nftables' generation"))?;
    let mut id = None;
    crate::netfilter::receive(&socket, 1, |inner| {
        if let NetfilterMessageInner::NfTables(NfTablesMessage::NewGen(GenMessage { attributes })) =
            inner
        {
            for a in attributes {
                if let GenAttribute::Id(n) = a {
                    id = Some(n);
                }
            }
        }
    })
    .map_err(crate::netfilter::io("reading nftables' generation"))?;
    id.ok_or_else(|| FirewallError::Io {
        doing: "reading nftables' generation".into(),
        source: std::io::Error::other("the kernel answered no generation"),
    })
}

/// netd's table as nft prints it (`nft list table inet netd`), or `None` if absent.
pub async fn show() -> Result<Option<String>, FirewallError> {
    list(&["list", "table", "inet", "netd"]).await
}

async fn list(args: &[&str]) -> Result<Option<String>, FirewallError> {
    let out = Command::new("nft")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(FirewallError::NftMissing)?;
    if out.status.success() {
        return Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No such file or directory") {
        return Ok(None);
    }
    Err(FirewallError::Nft {
        doing: format!("listing table {TABLE}"),
        stderr: stderr.trim().to_string(),
    })
}

/// The sets whose elements are published ports: they are counted, and left out
/// of the fingerprint (they grow with ports; the rest grows with networks).
const PORT_SETS: [&str; 8] = [
    "ports4_any",
    "ports4_ip",
    "ports6_any",
    "ports6_ip",
    "local_only4",
    "local_only6",
    "open4",
    "open6",
];

/// What the kernel has of netd's table (`None` if it is gone): rules per chain
/// and elements per set, and a fingerprint of everything but the published
/// ports' elements: chains, rules, policies, sets' definitions, and the
/// elements of the dispatch maps and bridge sets (a jump replaced by an accept
/// keeps every count).
pub async fn inspect() -> Result<Option<(Counts, u64)>, FirewallError> {
    let Some(text) = list(&["-j", "list", "table", "inet", "netd"]).await? else {
        return Ok(None);
    };
    let mut doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| FirewallError::Nft {
            doing: format!("reading the listing of table {TABLE}"),
            stderr: e.to_string(),
        })?;
    let mut counts = Counts::default();
    let mut chains = 0;
    for item in doc["nftables"].as_array().into_iter().flatten() {
        if let Some(rule) = item.get("rule") {
            if let Some(chain) = rule["chain"].as_str() {
                *counts.rules.entry(chain.to_string()).or_default() += 1;
            }
        } else if item.get("chain").is_some() {
            chains += 1;
        } else if let Some(set) = item.get("set").or_else(|| item.get("map")) {
            let n = set["elem"].as_array().map_or(0, Vec::len);
            if let (Some(name), true) = (set["name"].as_str(), n > 0) {
                counts.elements.insert(name.to_string(), n);
            }
        }
    }
    // Base chains are part of the skeleton: none means a wiped table.
    if chains == 0 {
        return Ok(None);
    }
    strip(&mut doc);
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    doc.to_string().hash(&mut hasher);
    Ok(Some((counts, hasher.finish())))
}

/// Drop what changes without a change of meaning (handles, nft's own version),
/// and the published ports' elements.
fn strip(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.remove("handle");
            map.remove("metainfo");
            let port_set = map
                .get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| PORT_SETS.contains(&n));
            if port_set {
                map.remove("elem");
            }
            for (_, x) in map.iter_mut() {
                strip(x);
            }
        }
        serde_json::Value::Array(items) => {
            items.retain(|x| x.get("metainfo").is_none());
            for x in items {
                strip(x);
            }
        }
        _ => {}
    }
}
