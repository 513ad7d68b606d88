//! The `orbitlab-agent` binary's command line as an operator meets it:
//! `--ui-origin` in the help, and `ORBITLAB_UI_ORIGINS` (comma-separated,
//! for systemd units) checked before anything starts.

use std::process::{Command, Output};

fn agent(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orbitlab-agent"));
    command.env_remove("ORBITLAB_UI_ORIGINS");
    command.envs(env.iter().copied()).args(args);
    command.output().expect("orbitlab-agent runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn ui_origins_are_documented_and_checked_from_the_environment() {
    let help = agent(&[], &["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--ui-origin <ORIGIN>") && text.contains("ORBITLAB_UI_ORIGINS"),
        "{text}"
    );

    // A bad origin stops the agent before it does anything, naming it.
    for bad in [
        "https://*.example.com",
        "https://pve1:8006/pve2/",
        "https://pve1:8006,http://pve2:8006",
    ] {
        let refused = agent(&[("ORBITLAB_UI_ORIGINS", bad)], &["--lock-renew", "0s"]);
        assert!(!refused.status.success());
        let err = stderr(&refused);
        assert!(
            err.contains("--ui-origin") && err.contains("https://HOST[:PORT]"),
            "{bad}: {err}"
        );
    }
    // Good ones pass on to the next check (here a deliberately bad
    // --lock-renew, so that nothing starts).
    let accepted = agent(
        &[(
            "ORBITLAB_UI_ORIGINS",
            "https://pve.example.com, https://[fd00::1]:8006",
        )],
        &["--lock-renew", "0s"],
    );
    assert!(!accepted.status.success());
    let err = stderr(&accepted);
    assert!(
        err.contains("--lock-renew") && !err.contains("--ui-origin"),
        "{err}"
    );
}
