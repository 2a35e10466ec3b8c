//! netd: the network daemon. Only the command line exists yet; the controller,
//! drivers and APIs come with issue 4 (see ARCHITECTURE.md).

use clap::Parser;

/// The netd network daemon (not built yet).
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    Cli::parse();
    anyhow::bail!("netd is not built yet: see ARCHITECTURE.md for what exists")
}
