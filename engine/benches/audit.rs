//! The audit log's growth and append cost: 1,000 typical change records
//! (an `apply` of one object by an API token, with the manifest's
//! SHA-256), appended one by one as changes append them, on one day's
//! shards; then the bytes they take, the shards they fill, the time per
//! append, and a full `verify`.
//!
//! Run: `cargo bench -p orbitlab-engine --bench audit` (optionally
//! `ORBITLAB_BENCH_CHANGES=N`, `ORBITLAB_BENCH_DIR=/path` to choose the
//! filesystem; default the system temporary directory).

use std::time::{Duration, Instant, UNIX_EPOCH};

use orbitlab_engine::audit::{Action, Actor, AuditLog, Detail, Entry, Outcome, Verification};
use orbitlab_engine::store::Store;
use sha2::Digest;

fn main() {
    let changes: usize = std::env::var("ORBITLAB_BENCH_CHANGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let dir = match std::env::var_os("ORBITLAB_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base),
        None => tempfile::tempdir(),
    }
    .expect("temporary directory");
    // One day: the worst case for append cost (the day's shard is rewritten).
    let log = AuditLog::new(Store::open(dir.path()))
        .with_clock(|| UNIX_EPOCH + Duration::from_secs(1_796_515_200 + 3_600));
    println!(
        "audit benchmark: {changes} changes in {}",
        dir.path().display()
    );
    let started = Instant::now();
    for i in 0..changes {
        let digest = sha2::Sha256::digest(format!("manifest {i}").as_bytes());
        let entry = Entry {
            actor: Actor::https("orbitlab@pve!agent"),
            action: Action::Apply,
            outcome: Outcome::Begun,
            object: format!("/instances/web-{i:04}"),
            detail: Detail::from([
                ("change".to_owned(), "configured".to_owned()),
                ("sha256".to_owned(), hex::encode(digest)),
            ]),
        };
        log.append(&[entry]).expect("append");
    }
    let took = started.elapsed();
    let audit = dir.path().join("orbitlab/audit");
    let mut bytes = 0;
    let mut shards = 0;
    for e in std::fs::read_dir(&audit).expect("audit directory") {
        let e = e.expect("entry");
        if e.file_name().to_string_lossy().ends_with(".jsonl") {
            shards += 1;
            bytes += e.metadata().expect("metadata").len();
        }
    }
    println!(
        "appended {changes} records in {:.3} s: {:.1} µs/append",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / changes as f64
    );
    println!(
        "log size: {bytes} bytes in {shards} shard(s): {:.0} bytes/record, {:.1} KiB per 1,000 changes",
        bytes as f64 / changes as f64,
        bytes as f64 * 1000.0 / changes as f64 / 1024.0
    );
    let started = Instant::now();
    let verified = log.verify().expect("verify");
    let Verification::Intact(summary) = verified else {
        panic!("the log does not verify: {verified:?}");
    };
    assert_eq!(summary.records as usize, changes);
    println!(
        "verify: {} records in {:.3} s",
        summary.records,
        started.elapsed().as_secs_f64()
    );
}
