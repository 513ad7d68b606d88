//! `orbitlab-agent`: the node daemon.

use clap::Parser;

/// The OrbitLab node agent.
#[derive(Debug, Parser)]
#[command(name = "orbitlab-agent", version, about)]
struct Args {}

fn main() -> anyhow::Result<()> {
    let _args = Args::parse();
    anyhow::bail!("the daemon loop is not built yet; use `orbitlab reconcile --once`")
}
