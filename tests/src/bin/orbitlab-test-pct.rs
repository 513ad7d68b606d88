//! The simulated `pct` (`orbitlab-sim-pct`), built inside this package so
//! that agents started by the multi-node tests can run it.

fn main() -> std::process::ExitCode {
    orbitlab_sim::pct_cli::main()
}
