//! The `orbitlab-agent` program, built inside this package so that the
//! multi-node tests can start it (`CARGO_BIN_EXE_orbitlab-test-agent`): the
//! same `main` as the real binary.

fn main() -> std::process::ExitCode {
    orbitlab_agent::daemon::cli::main()
}
