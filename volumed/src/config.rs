//! volumed's config file (TOML); every key is optional and flags override it:
//!
//! ```toml
//! state_dir = "/var/lib/volumed"
//! data_root = "/var/lib/volumed"
//! run_dir = "/run/volumed"
//! socket = "/run/volumed/volumed.sock"
//! plugin_dir = "/run/docker/plugins"
//! plugin_name = "volumed"
//! docker = true                 # serve the Docker plugin socket
//! deny_bind = ["/srv/secrets"]  # bind sources refused besides the defaults
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file's contents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the store lives.
    pub state_dir: Option<PathBuf>,
    /// Where volumes' data lives.
    pub data_root: Option<PathBuf>,
    /// Runtime directory.
    pub run_dir: Option<PathBuf>,
    /// The native API socket.
    pub socket: Option<PathBuf>,
    /// Where dockerd looks for plugin sockets.
    pub plugin_dir: Option<PathBuf>,
    /// The plugin's name.
    pub plugin_name: Option<String>,
    /// Serve the Docker plugin socket.
    pub docker: Option<bool>,
    /// More bind sources to refuse.
    #[serde(default)]
    pub deny_bind: Vec<PathBuf>,
}

impl FileConfig {
    /// Read `path`; an unknown key or a wrong type is an error naming it.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}
