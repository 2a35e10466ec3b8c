//! A volume as volumed keeps it (also the native API's answer).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// Unique name.
    pub name: String,
    /// `local`.
    pub driver: String,
    /// User labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options, as given.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// RFC 3339.
    pub created: String,
    /// Made without a name (a generated one): what prune removes by default.
    #[serde(default)]
    pub anonymous: bool,
    /// Mount references by caller ID (a multiset: one ID may hold several).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refs: BTreeMap<String, u32>,
    /// Where its data is (`ROOT/volumes/NAME/_data`).
    pub mountpoint: String,
}

impl VolumeRecord {
    /// How many references it has.
    pub fn references(&self) -> u32 {
        self.refs.values().sum()
    }

    /// Who holds it, for an error: `id (n)`, at most ten.
    pub fn holders(&self) -> String {
        let mut names: Vec<String> = self
            .refs
            .iter()
            .take(10)
            .map(|(id, n)| {
                let id = if id.is_empty() {
                    "(no id)"
                } else {
                    id.as_str()
                };
                format!("{id} ({n})")
            })
            .collect();
        if self.refs.len() > 10 {
            names.push(format!("and {} more", self.refs.len() - 10));
        }
        names.join(", ")
    }
}
