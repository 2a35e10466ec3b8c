//! Where a plugin listens, and finding it the way the engine does.

use super::error::ClientError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Directories the engine reads `.spec` and `.json` files from.
pub const DEFAULT_SPEC_DIRS: &[&str] = &["/etc/docker/plugins", "/usr/lib/docker/plugins"];

/// A plugin's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginAddr {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl FromStr for PluginAddr {
    type Err = ClientError;

    /// `unix:///path`, `tcp://host:port`, or an absolute socket path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = |why: &str| ClientError::Address(format!("{s:?}: {why}"));
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad("a unix socket path must be absolute"));
            }
            Ok(PluginAddr::Unix(path.into()))
        } else if let Some(hostport) = s.strip_prefix("tcp://").or(s.strip_prefix("http://")) {
            let hostport = hostport.trim_end_matches('/');
            match hostport.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(PluginAddr::Tcp(hostport.to_string()))
                }
                _ => Err(bad("expected tcp://host:port")),
            }
        } else if s.starts_with('/') {
            Ok(PluginAddr::Unix(s.into()))
        } else {
            Err(bad("expected unix:///path/to.sock or tcp://host:port"))
        }
    }
}

impl fmt::Display for PluginAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginAddr::Unix(path) => write!(f, "unix://{}", path.display()),
            PluginAddr::Tcp(hostport) => write!(f, "tcp://{hostport}"),
        }
    }
}

/// Find plugin `name` as the engine does: a socket `<dir>/<name>.sock` or
/// `<dir>/<name>/<name>.sock` in `socket_dir` first, then `<name>.spec` or
/// `<name>.json` (optionally in a `<name>/` subdirectory) in each of `spec_dirs`.
pub fn discover(
    name: &str,
    socket_dir: &Path,
    spec_dirs: &[&Path],
) -> Result<PluginAddr, ClientError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(ClientError::Address(format!(
            "invalid plugin name {name:?}"
        )));
    }
    for sock in [
        socket_dir.join(format!("{name}.sock")),
        socket_dir.join(name).join(format!("{name}.sock")),
    ] {
        if sock.exists() {
            return Ok(PluginAddr::Unix(sock));
        }
    }
    for dir in spec_dirs {
        for base in [dir.to_path_buf(), dir.join(name)] {
            let spec = base.join(format!("{name}.spec"));
            if let Ok(text) = std::fs::read_to_string(&spec) {
                return text.parse();
            }
            let json = base.join(format!("{name}.json"));
            if let Ok(text) = std::fs::read_to_string(&json) {
                #[derive(serde::Deserialize)]
                struct Spec {
                    #[serde(rename = "Addr")]
                    addr: String,
                }
                let spec: Spec = serde_json::from_str(&text)
                    .map_err(|e| ClientError::Address(format!("{}: {e}", json.display())))?;
                return spec.addr.parse();
            }
        }
    }
    Err(ClientError::Address(format!(
        "plugin {name:?} not found in {} or {}",
        socket_dir.display(),
        spec_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            "unix:///run/x.sock".parse::<PluginAddr>().unwrap(),
            PluginAddr::Unix("/run/x.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:8080".parse::<PluginAddr>().unwrap(),
            PluginAddr::Tcp("127.0.0.1:8080".into())
        );
        for bad in [
            "unix://rel.sock",
            "tcp://host",
            "ftp://x",
            "x.sock",
            "tcp://:80",
        ] {
            assert!(bad.parse::<PluginAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn discovers_sockets_and_specs() {
        let dir = tempfile::tempdir().unwrap();
        let socks = dir.path().join("run");
        let specs = dir.path().join("etc");
        std::fs::create_dir_all(&socks).unwrap();
        std::fs::create_dir_all(specs.join("nested")).unwrap();
        std::fs::write(socks.join("a.sock"), "").unwrap();
        std::fs::write(specs.join("b.spec"), "unix:///x/b.sock\n").unwrap();
        std::fs::write(specs.join("nested/nested.json"), r#"{"Addr":"tcp://h:1"}"#).unwrap();
        let find = |n| discover(n, &socks, &[specs.as_path()]);
        assert_eq!(find("a").unwrap(), PluginAddr::Unix(socks.join("a.sock")));
        assert_eq!(find("b").unwrap(), PluginAddr::Unix("/x/b.sock".into()));
        assert_eq!(find("nested").unwrap(), PluginAddr::Tcp("h:1".into()));
        assert!(find("missing")
            .unwrap_err()
            .to_string()
            .contains("not found"));
    }
}
