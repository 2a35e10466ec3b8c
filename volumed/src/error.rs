//! volumed's errors, each saying what was being done to which volume.

pub use native_api::ErrorKind;

/// Why an operation failed. Nothing it made is left behind.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// No such volume.
    #[error("no such volume: {0}")]
    NotFound(String),
    /// Clashes with current state.
    #[error("{0}")]
    Conflict(String),
    /// A system call failed.
    #[error("{doing}: {source}")]
    Io {
        /// What was being done.
        doing: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed; the operation was not acknowledged.
    #[error("saving state: {0}")]
    Store(String),
}

impl VolumeError {
    /// How to read it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::Invalid(_) => ErrorKind::Invalid,
            VolumeError::NotFound(_) => ErrorKind::NotFound,
            VolumeError::Conflict(_) => ErrorKind::Conflict,
            VolumeError::Io { .. } | VolumeError::Store(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let doing = doing.into();
        move |source| VolumeError::Io { doing, source }
    }

    pub(crate) fn errno(doing: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Self {
        let doing = doing.into();
        move |e| VolumeError::Io {
            doing,
            source: std::io::Error::from(e),
        }
    }
}
