//! Whole-process benchmark of the vault commands with 10,000 secrets
//! stored: `orbitlab secret get PATH`, `orbitlab secret set PATH < value`
//! and `orbitlab secret list --output-format json`, each run as a fresh
//! process (wall time min/median/p90/max, and CPU time per run). The
//! secrets are written through the engine first, which also gives the
//! in-process rate of `Vault::set` and `Vault::get`.
//!
//! Run: `cargo bench -p orbitlab-pvecli --bench secret_commands`.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use orbitlab_engine::store::Store;
use orbitlab_engine::vault::{SecretPath, SecretValue, Vault};
use support::measure;

const SECRETS: usize = 10_000;
const RUNS: usize = 40;
const LIST_RUNS: usize = 10;

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let vault = Vault::new(Store::open(dir.path()));
    let started = Instant::now();
    for i in 0..SECRETS {
        vault
            .set(&path(i), &value(i, 0))
            .expect("set a secret in-process");
    }
    let elapsed = started.elapsed();
    println!(
        "in-process Vault::set of {SECRETS} new secrets: {:.0} per second ({:.0} µs each)",
        SECRETS as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / SECRETS as f64
    );
    let started = Instant::now();
    for i in (0..SECRETS).step_by(10) {
        let secret = vault.get(&path(i)).expect("get in-process");
        assert_eq!(secret.value, value(i, 0));
    }
    let elapsed = started.elapsed();
    let gets = SECRETS / 10;
    println!(
        "in-process Vault::get with {SECRETS} stored: {:.0} per second ({:.0} µs each)",
        gets as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / gets as f64
    );

    let target = SECRETS / 2;
    measure(
        &format!("orbitlab secret get PATH, {SECRETS} secrets stored"),
        RUNS,
        |_| {
            let output = orbitlab(dir.path(), &["secret", "get", path(target).as_str()], None);
            assert_eq!(
                output.stdout,
                value(target, 0).expose(),
                "the value printed"
            );
        },
    );
    measure(
        &format!(
            "orbitlab secret set PATH < value (new version of a 1-version secret), {SECRETS} secrets stored"
        ),
        RUNS,
        |run| {
            let new = value(run, 1);
            orbitlab(
                dir.path(),
                &["secret", "set", path(run).as_str()],
                Some(new.expose()),
            );
        },
    );
    for run in 0..=RUNS {
        assert_eq!(vault.get(&path(run)).expect("get").value, value(run, 1));
    }
    measure(
        &format!("orbitlab secret list --output-format json, {SECRETS} secrets stored"),
        LIST_RUNS,
        |_| {
            let output = orbitlab(
                dir.path(),
                &["secret", "list", "--output-format", "json"],
                None,
            );
            let listing: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("JSON output");
            assert_eq!(listing["secrets"].as_array().map(Vec::len), Some(SECRETS));
        },
    );
}

fn path(i: usize) -> SecretPath {
    format!("bench/app-{:02}/secret-{i:05}", i % 100)
        .parse()
        .expect("a valid secret path")
}

fn value(i: usize, generation: usize) -> SecretValue {
    SecretValue::new(
        format!("value-{i}-{generation}-0123456789abcdef0123456789abcdef").into_bytes(),
    )
    .expect("a valid value")
}

/// Runs `orbitlab --root ROOT ARGS`, feeding `stdin` when given; panics
/// on failure.
fn orbitlab(root: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orbitlab"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ORBITLAB_ROOT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run orbitlab");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(bytes).expect("write the value");
    }
    let output = child.wait_with_output().expect("wait for orbitlab");
    assert!(
        output.status.success(),
        "orbitlab {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
