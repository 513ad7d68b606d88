//! Vault throughput in-process, on a temporary-directory store holding
//! 10,000 secrets: creating them, reading random ones, writing new
//! versions, listing, and a KEK rotation across all of them.
//!
//! Run: `cargo bench -p orbitlab-engine --bench vault` (optionally
//! `ORBITLAB_BENCH_SECRETS=N`, `ORBITLAB_BENCH_DIR=/path` to choose the
//! filesystem; default the system temporary directory).

use std::time::{Duration, Instant};

use orbitlab_engine::store::Store;
use orbitlab_engine::vault::{SecretPath, SecretValue, Vault};
use rand::Rng;

fn path(i: usize) -> SecretPath {
    format!("bench/app{}/secret-{i}", i % 100)
        .parse()
        .expect("valid path")
}

fn value(i: usize, round: usize) -> SecretValue {
    // A typical secret: a 40-byte token.
    SecretValue::new(format!("token-{i:08}-{round:04}-abcdefghijklmnopqrstu").into_bytes())
        .expect("valid value")
}

fn report(what: &str, n: usize, took: Duration) {
    println!(
        "{what:<36} {n:>6} ops in {:>8.3} s  {:>9.0} ops/s  {:>8.1} µs/op",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let secrets: usize = std::env::var("ORBITLAB_BENCH_SECRETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let dir = match std::env::var_os("ORBITLAB_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    let vault = Vault::new(Store::open(dir.path()));
    println!(
        "vault benchmark: {secrets} secrets in {}",
        dir.path().display()
    );

    let started = Instant::now();
    for i in 0..secrets {
        vault.set(&path(i), &value(i, 0)).expect("set");
    }
    report("set (new secret)", secrets, started.elapsed());

    let mut rng = rand::thread_rng();
    let gets = 5_000.min(secrets * 5);
    let started = Instant::now();
    for _ in 0..gets {
        let i = rng.gen_range(0..secrets);
        let got = vault.get(&path(i)).expect("get");
        assert_eq!(got.value.len(), value(i, 0).len());
    }
    report("get (random secret, 1 version)", gets, started.elapsed());

    let sets = 2_000.min(secrets);
    let started = Instant::now();
    for round in 1..=sets {
        let i = rng.gen_range(0..secrets);
        vault.set(&path(i), &value(i, round)).expect("set");
    }
    report(
        "set (new version of existing secret)",
        sets,
        started.elapsed(),
    );

    // A secret with many versions: reads authenticate every version.
    let hot = path(0);
    for round in 0..49 {
        vault.set(&hot, &value(0, 10_000 + round)).expect("set");
    }
    let versions = vault.versions(&hot).expect("versions").len();
    let started = Instant::now();
    for _ in 0..1_000 {
        vault.get(&hot).expect("get");
    }
    report(
        &format!("get (secret with {versions} versions)"),
        1_000,
        started.elapsed(),
    );

    let started = Instant::now();
    let listing = vault.list(None).expect("list");
    assert_eq!(listing.secrets.len(), secrets);
    report("list (all secrets)", 1, started.elapsed());

    let started = Instant::now();
    let rotation = vault.rotate_kek().expect("rotate");
    report("rotate KEK (whole vault)", 1, started.elapsed());
    println!(
        "  rotation re-wrapped {} data keys in {} secrets; retired {:?}",
        rotation.versions_rewrapped, rotation.secrets_rewrapped, rotation.retired
    );
}
