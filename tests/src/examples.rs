//! Finding binaries that cargo built beside the tests: the plugin-api examples
//! and the workspace's daemons (for a test that runs one package's daemon beside
//! another's).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// target/<profile>, the directory the running test was built into.
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    // target/<profile>/deps/<test>
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .context("the test binary is not in a cargo target directory")
}

fn built(path: PathBuf, what: &str) -> Result<PathBuf> {
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --workspace {what}` \
             (or run the tests with `cargo test --workspace`, which builds it)",
            path.display()
        );
    }
    Ok(path)
}

/// The path of example `name` (such as `volume_driver`).
pub fn example_binary(name: &str) -> Result<PathBuf> {
    built(profile_dir()?.join("examples").join(name), "--examples")
}

/// The path of the workspace binary `name` (such as `netd`).
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    built(profile_dir()?.join(name), "--bins")
}
