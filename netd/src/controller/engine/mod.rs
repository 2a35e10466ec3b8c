//! What the container engine owns: networks and endpoints dockerd made through the
//! NetworkDriver protocol (`Origin::Docker`), and the pools and addresses it holds
//! through netd's IpamDriver (engine records). Only the plugin face changes them,
//! and the plugin face changes nothing else: each call checks whose object it names.

mod ipam;
mod network;
mod sync;

pub use ipam::EnginePoolRequest;
pub use network::{EngineJoin, EnginePool};
pub use sync::{EngineView, SyncReport};

use super::ControllerError;
use crate::model::is_full_id;

fn check_id(what: &str, id: &str) -> Result<(), ControllerError> {
    if is_full_id(id) {
        Ok(())
    } else {
        Err(ControllerError::Invalid(format!(
            "invalid {what} id {id:?}: expected 64 lower-case hex digits"
        )))
    }
}
