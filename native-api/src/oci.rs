//! The OCI runtime state a runtime gives a hook on stdin, as `netd oci-hook`
//! and `volumed oci-hook` read it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;

/// More than any OCI state needs.
pub const MAX_STATE: u64 = 1 << 20;

/// What the hooks use of the state.
#[derive(Debug, Clone, Deserialize)]
pub struct OciState {
    /// The container's id (unique per runtime root).
    pub id: String,
    /// Its bundle's directory (unique per host).
    #[serde(default)]
    pub bundle: String,
    /// Its process, from create on.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The config's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Why the state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed.
    #[error("reading the OCI state from stdin: {0}")]
    Read(#[from] std::io::Error),
    /// Too long.
    #[error("the OCI state on stdin is over {MAX_STATE} bytes")]
    TooLong,
    /// Not a state.
    #[error("the OCI state on stdin is not valid ({hook} is run by an OCI runtime, with the container's state): {source}")]
    Invalid {
        /// Which hook reads it.
        hook: &'static str,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// The state from `input`, for `hook` (named in errors).
pub fn read_state(input: impl Read, hook: &'static str) -> Result<OciState, StateError> {
    let mut text = String::new();
    input.take(MAX_STATE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_STATE {
        return Err(StateError::TooLong);
    }
    serde_json::from_str(&text).map_err(|source| StateError::Invalid { hook, source })
}
