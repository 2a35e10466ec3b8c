//! Finding binaries that cargo built beside the tests (the plugin-api examples).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// The path of example `name` (such as `volume_driver`) in the target directory the
/// running test was built into. `cargo test --workspace` builds examples too.
pub fn example_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test binary is not in a cargo target directory")?;
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --workspace --examples` \
             (or run the tests with `cargo test --workspace`, which builds examples)",
            path.display()
        );
    }
    Ok(path)
}
