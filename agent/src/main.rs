//! `orbitlab-agent`: the node daemon (see `orbitlab_agent::daemon`).

fn main() -> std::process::ExitCode {
    orbitlab_agent::daemon::cli::main()
}
