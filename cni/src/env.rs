//! The CNI_* environment variables, checked for the command given.

use crate::error::CniError;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The operations of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

/// What the runtime told the plugin through its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    /// CNI_CONTAINERID (not for STATUS and VERSION).
    pub container_id: String,
    /// CNI_NETNS: absent on a DEL whose namespace is gone.
    pub netns: Option<PathBuf>,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS, `K=V;K=V`: `IP` and `MAC` are honoured; any other key is an
    /// error unless `IgnoreUnknown` is set, as the CNI convention has it.
    pub args: BTreeMap<String, String>,
}

impl Env {
    /// Read them through `get` (`std::env::var` in the binary).
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some("VERSION") => Command::Version,
            Some(other) => {
                return Err(CniError::env(format!(
                    "CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, STATUS, GC, VERSION"
                )))
            }
            None => {
                return Err(CniError::env(
                    "CNI_COMMAND is not set: netd-cni is a CNI plugin, run by a container runtime (see docs/cni.md)",
                ))
            }
        };
        let mut env = Env {
            command,
            container_id: String::new(),
            netns: None,
            ifname: String::new(),
            args: BTreeMap::new(),
        };
        if matches!(command, Command::Status | Command::Gc | Command::Version) {
            return Ok(env);
        }
        let need = |key: &str| -> Result<String, CniError> {
            get(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| CniError::env(format!("{key} is not set")))
        };
        env.container_id = need("CNI_CONTAINERID")?;
        if !valid_container_id(&env.container_id) {
            return Err(CniError::env(format!(
                "CNI_CONTAINERID {:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit",
                env.container_id
            )));
        }
        env.ifname = need("CNI_IFNAME")?;
        netd::controller::check_interface_name(&env.ifname)
            .map_err(|e| CniError::env(format!("CNI_IFNAME: {e}")))?;
        env.netns = match command {
            Command::Del => get("CNI_NETNS")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            _ => Some(PathBuf::from(need("CNI_NETNS")?)),
        };
        if let Some(args) = get("CNI_ARGS").filter(|a| !a.is_empty()) {
            // DEL needs none of them, and must not fail for them.
            if command != Command::Del {
                env.args = parse_args(&args)?;
            }
        }
        Ok(env)
    }
}

/// Letters, digits, '_', '.' and '-', starting with a letter or digit.
pub fn valid_container_id(id: &str) -> bool {
    id.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// `K=V;K=V`, keeping `IP`, `MAC` and `K8S_POD_NAME` (a DNS name for the
/// container); other keys refused unless `IgnoreUnknown` is `1` or `true`.
fn parse_args(text: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut all = BTreeMap::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(CniError::env(format!(
                "CNI_ARGS: {pair:?} is not KEY=VALUE"
            )));
        };
        all.insert(k.to_string(), v.to_string());
    }
    let ignore = all
        .get("IgnoreUnknown")
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let mut kept = BTreeMap::new();
    for (k, v) in all {
        match k.as_str() {
            "IP" | "MAC" | "K8S_POD_NAME" => {
                kept.insert(k, v);
            }
            "IgnoreUnknown" => {}
            _ if ignore => {}
            _ => {
                return Err(CniError::env(format!(
                    "CNI_ARGS: netd-cni does not know {k:?} (it takes IP, MAC and K8S_POD_NAME; add IgnoreUnknown=1 to pass others)"
                )))
            }
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod unit {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::read(|k| map.get(k).cloned())
    }

    #[test]
    fn missing_and_bad_variables_are_named() {
        let e = env(&[]).unwrap_err();
        assert!(e.msg.contains("CNI_COMMAND is not set"), "{e:?}");
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]).unwrap_err();
        assert!(e.msg.contains("CNI_CONTAINERID"), "{e:?}");
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert!(e.msg.contains("CNI_NETNS"), "{e:?}");
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "a/b"),
            ("CNI_NETNS", "/proc/1/ns/net"),
        ])
        .unwrap_err();
        assert!(e.msg.contains("CNI_IFNAME"), "{e:?}");
        let e = env(&[("CNI_COMMAND", "BOGUS")]).unwrap_err();
        assert!(e.msg.contains("BOGUS"), "{e:?}");
    }

    #[test]
    fn del_needs_no_namespace_and_args_are_read() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(e.netns, None);
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/proc/1/ns/net"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.9"),
        ])
        .unwrap();
        assert_eq!(e.args.get("IP").map(String::as_str), Some("10.1.0.9"));
        assert_eq!(e.args.get("K8S_POD_NAME").map(String::as_str), Some("x"));
        assert!(!e.args.contains_key("IgnoreUnknown"));
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/proc/1/ns/net"),
            ("CNI_ARGS", "K8S_POD_UID=x"),
        ])
        .unwrap_err();
        assert!(e.msg.contains("IgnoreUnknown"), "{e:?}");
        // DEL needs no argument and never fails for one.
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K8S_POD_NAME=x"),
        ])
        .unwrap();
        assert!(e.args.is_empty());
    }
}
