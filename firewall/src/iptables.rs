//! Living beside a dockerd that runs iptables (its default): dockerd sets the
//! FORWARD policy to drop, and a drop in any table is final, so an accept in
//! netd's own table does not let netd's traffic through. dockerd jumps to its
//! DOCKER-USER chain first and never flushes it: netd keeps one accept in each
//! direction per bridge at its top, marked with the comment `netd`, and touches no
//! other rule. netd's own table has already dropped what its policy forbids (and
//! isolates netd's bridges from dockerd's), so these accepts open nothing more.

use crate::FirewallError;
use std::process::Stdio;
use tokio::process::Command;

const CHAIN: &str = "DOCKER-USER";
const COMMENT: &str = "netd";

/// netd's accepts in DOCKER-USER, for IPv4 (`iptables`) and IPv6 (`ip6tables`).
#[derive(Debug, Default)]
pub struct DockerUser {
    /// Whether a missing tool was already reported (said once, not every check).
    missing_reported: bool,
}

async fn run(tool: &str, args: &[&str]) -> Result<std::process::Output, std::io::Error> {
    Command::new(tool)
        .args(["-w", "5"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
}

fn rule(direction: &str, bridge: &str) -> Vec<String> {
    [
        direction,
        bridge,
        "-m",
        "comment",
        "--comment",
        COMMENT,
        "-j",
        "ACCEPT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl DockerUser {
    /// Make netd's accepts in DOCKER-USER be those for `bridges` (in each family
    /// whose DOCKER-USER exists; nothing where dockerd made none).
    pub async fn sync(&mut self, bridges: &[String]) -> Result<(), FirewallError> {
        for tool in ["iptables", "ip6tables"] {
            let listed = match run(tool, &["-t", "filter", "-S", CHAIN]).await {
                Ok(out) if out.status.success() => out.stdout,
                // No such chain (dockerd runs without iptables, or not at all).
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !self.missing_reported {
                        tracing::info!("{tool} is not installed: DOCKER-USER is not looked at");
                        self.missing_reported = true;
                    }
                    continue;
                }
                Err(source) => {
                    return Err(FirewallError::Io {
                        doing: format!("running {tool}"),
                        source,
                    })
                }
            };
            let text = String::from_utf8_lossy(&listed);
            // Only netd's own rules (its comment) are read back.
            let ours: Vec<Vec<String>> = text
                .lines()
                .filter(|l| l.contains(&format!("--comment {COMMENT} ")))
                .filter_map(|l| l.strip_prefix(&format!("-A {CHAIN} ")))
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .collect();
            let wanted: Vec<Vec<String>> = bridges
                .iter()
                .flat_map(|b| [rule("-i", b), rule("-o", b)])
                .collect();
            for r in ours.iter().filter(|r| !wanted.contains(r)) {
                let mut args = vec!["-t", "filter", "-D", CHAIN];
                args.extend(r.iter().map(String::as_str));
                self.change(tool, &args).await?;
            }
            for r in wanted.iter().filter(|r| !ours.contains(r)) {
                let mut args = vec!["-t", "filter", "-I", CHAIN, "1"];
                args.extend(r.iter().map(String::as_str));
                self.change(tool, &args).await?;
            }
        }
        Ok(())
    }

    async fn change(&self, tool: &str, args: &[&str]) -> Result<(), FirewallError> {
        let out = run(tool, args).await.map_err(|source| FirewallError::Io {
            doing: format!("running {tool}"),
            source,
        })?;
        if out.status.success() {
            return Ok(());
        }
        Err(FirewallError::Iptables {
            doing: format!("{tool} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
