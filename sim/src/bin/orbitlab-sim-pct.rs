//! `orbitlab-sim-pct`: a stand-in for Proxmox's `pct` (see
//! [`orbitlab_sim::pct_cli`]).

fn main() -> std::process::ExitCode {
    orbitlab_sim::pct_cli::main()
}
