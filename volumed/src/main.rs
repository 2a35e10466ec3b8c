//! volumed: the volume daemon. Only the command line exists yet (see ARCHITECTURE.md).

use clap::Parser;

/// The volumed volume daemon (not built yet).
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    anyhow::bail!("volumed is not built yet: see ARCHITECTURE.md for what exists")
}
