//! Several processes writing versions of one secret at once, each under the
//! vault's cluster lock: every version is kept and readable. The test binary
//! re-runs itself as the writer processes.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use orbitlab_engine::store::{LockOptions, Store};
use orbitlab_engine::vault::{SecretPath, SecretValue, Vault, Version};

const PROCESSES: usize = 4;
const WRITES_PER_PROCESS: usize = 25;
const CHILD_ENV: &str = "ORBITLAB_TEST_VAULT_WRITER";

fn vault(root: &str) -> Vault {
    Vault::new(Store::open(root).with_lock_options(LockOptions {
        wait: Duration::from_secs(120),
        max_poll: Duration::from_millis(5),
        renew_every: Duration::from_secs(20),
        notice: None,
    }))
}

fn path() -> SecretPath {
    "shared/counter".parse().unwrap()
}

fn write_versions(root: &str, who: &str) {
    let vault = vault(root);
    for i in 0..WRITES_PER_PROCESS {
        let value = SecretValue::new(format!("{who}-{i}").into_bytes()).unwrap();
        vault.set(&path(), &value).unwrap();
    }
}

#[test]
fn concurrent_writers_keep_every_version() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (root, who) = spec.split_once('|').unwrap();
        write_versions(root, who);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|n| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "concurrent_writers_keep_every_version",
                    "--nocapture",
                ])
                .env(CHILD_ENV, format!("{root}|w{n}"))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a writer process failed");
    }

    let vault = vault(root);
    let versions = vault.versions(&path()).unwrap();
    let total = PROCESSES * WRITES_PER_PROCESS;
    println!(
        "{PROCESSES} processes x {WRITES_PER_PROCESS} writes: {} versions kept",
        versions.len()
    );
    assert_eq!(versions.len(), total, "a version was lost");
    let numbers: Vec<u64> = versions.iter().map(|v| v.version.get()).collect();
    assert_eq!(numbers, (1..=total as u64).collect::<Vec<_>>());

    let mut seen = BTreeSet::new();
    let mut last_per_writer = [None::<usize>; PROCESSES];
    for n in 1..=total as u64 {
        let secret = vault
            .get_version(&path(), Version::new(n).unwrap())
            .unwrap();
        let text = secret.value.expose_str().unwrap().to_owned();
        let (who, i) = text.split_once('-').unwrap();
        let (w, i): (usize, usize) = (who[1..].parse().unwrap(), i.parse().unwrap());
        // Each writer's own versions appear in the order it wrote them.
        assert!(
            last_per_writer[w].is_none_or(|last| last < i),
            "{text} out of order"
        );
        last_per_writer[w] = Some(i);
        assert!(seen.insert(text), "a value appears twice");
    }
    assert_eq!(seen.len(), total);
    assert!(
        !dir.path().join("priv/lock/orbitlab-vault").exists(),
        "lock released"
    );
}

#[test]
fn reads_stay_consistent_during_kek_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let vault = vault(root);
    for i in 0..3 {
        vault
            .set(
                &path(),
                &SecretValue::new(format!("v{i}").into_bytes()).unwrap(),
            )
            .unwrap();
    }
    let done = AtomicBool::new(false);
    let (reads, rotations) = std::thread::scope(|s| {
        let rotator = s.spawn(|| {
            let vault = self::vault(root);
            for _ in 0..25 {
                vault.rotate_kek().unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            done.store(true, Ordering::SeqCst);
            25
        });
        let mut reads = 0;
        while !done.load(Ordering::SeqCst) {
            let got = vault.get(&path()).unwrap();
            assert_eq!(got.value.expose(), b"v2");
            reads += 1;
        }
        (reads, rotator.join().unwrap())
    });
    println!("{reads} reads during {rotations} KEK rotations, all consistent");
    assert!(reads > 0);
    assert_eq!(vault.status().unwrap().keys.len(), 1);
}

/// A reader racing a writer (sets, prunes, deletions, re-creations) reads
/// the head before the record, and retries a failed history check with
/// both read afresh: it never takes a write in progress for tampering.
#[test]
fn readers_never_take_a_write_in_progress_for_tampering() {
    use orbitlab_engine::vault::VaultError;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let vault = vault(root);
    let value = |i: usize| SecretValue::new(format!("v{i}").into_bytes()).unwrap();
    vault.set(&path(), &value(0)).unwrap();
    let done = AtomicBool::new(false);
    let (reads, absent) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let vault = self::vault(root);
            for i in 1..=60 {
                vault.set(&path(), &value(i)).unwrap();
                if i % 7 == 0 {
                    vault
                        .prune(&path(), std::num::NonZeroUsize::new(2).unwrap())
                        .unwrap();
                }
                if i % 13 == 0 {
                    vault.delete(&path()).unwrap();
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let (mut reads, mut absent) = (0, 0);
        while !done.load(Ordering::SeqCst) {
            for outcome in [
                vault.get(&path()).map(|_| ()),
                vault.versions(&path()).map(|_| ()),
            ] {
                match outcome {
                    Ok(()) => reads += 1,
                    Err(VaultError::NotFound { .. }) => absent += 1,
                    Err(e) => panic!("a read racing a write failed: {e}"),
                }
            }
            let listing = vault.list(None).unwrap();
            assert!(listing.damaged.is_empty(), "{listing:?}");
        }
        writer.join().unwrap();
        (reads, absent)
    });
    println!("{reads} reads ({absent} between a deletion and a re-creation), none refused");
    assert!(reads > 0);
}
