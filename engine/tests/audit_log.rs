//! The audit log: a hash chain across day shards whose every edit,
//! deletion and truncation `verify` finds and places; concurrent appenders
//! keep one chain; the API records changes and secret reads with who and
//! where, never a value, and refuses a change it cannot record.

mod files_support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use orbitlab_engine::api::{Api, ApiPath, VaultCall};
use orbitlab_engine::audit::{
    Action, Actor, AuditLog, Break, Detail, Entry, Outcome, Problem, Verification, Via,
};
use orbitlab_engine::store::Store;
use orbitlab_engine::vault::SecretValue;
use orbitlab_manifests::codec;

/// 2026-12-06T00:00:00Z.
const DAY0: u64 = 1_796_515_200;

/// A log whose clock is `day` days after [`DAY0`] (plus a few seconds),
/// moved by the returned handle.
fn log_on(root: &Path) -> (AuditLog, Arc<AtomicU64>) {
    let day = Arc::new(AtomicU64::new(0));
    let clock = Arc::clone(&day);
    let log = AuditLog::new(Store::open(root)).with_clock(move || {
        UNIX_EPOCH + Duration::from_secs(DAY0 + clock.load(Ordering::Relaxed) * 86_400 + 5)
    });
    (log, day)
}

fn entry(n: usize) -> Entry {
    Entry {
        actor: Actor::local_as("root@pam"),
        action: Action::Apply,
        outcome: Outcome::Begun,
        object: format!("/sectors/s{n}"),
        detail: Detail::from([("change".to_owned(), "created".to_owned())]),
    }
}

/// Three days of records: 3 on 2026-12-06, 4 on 12-07, 2 on 12-08.
fn three_days(root: &Path) -> AuditLog {
    let (log, day) = log_on(root);
    let mut n = 0;
    for (d, count) in [(0, 3), (1, 4), (2, 2)] {
        day.store(d, Ordering::Relaxed);
        for _ in 0..count {
            n += 1;
            log.append(&[entry(n)]).unwrap();
        }
    }
    log
}

fn shard(root: &Path, name: &str) -> std::path::PathBuf {
    root.join("orbitlab/audit").join(name)
}

fn broken(log: &AuditLog) -> Break {
    match log.verify().unwrap() {
        Verification::Broken(b) => b,
        Verification::Intact(s) => panic!("expected a break, the log is intact: {s:?}"),
    }
}

/// Rewrites line `line` (1-based) of a shard with `edit`.
fn edit_line(path: &Path, line: usize, edit: impl FnOnce(&str) -> Option<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match edit(&lines[line - 1]) {
        Some(new) => lines[line - 1] = new,
        None => {
            lines.remove(line - 1);
        }
    }
    let mut out = lines.join("\n");
    if !lines.is_empty() {
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_chain_across_days_round_trips_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    let names: Vec<String> = Store::open(dir.path())
        .list(&orbitlab_engine::store::layout::audit_dir())
        .unwrap();
    assert_eq!(
        names,
        [
            "2026-12-06.jsonl",
            "2026-12-07.jsonl",
            "2026-12-08.jsonl",
            "head.json"
        ]
    );
    let Verification::Intact(summary) = log.verify().unwrap() else {
        panic!("{:?}", log.verify());
    };
    assert_eq!((summary.records, summary.shards), (9, 3));
    let records = log.records(None).unwrap();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    assert_eq!(summary.head_hash.as_deref(), Some(records[8].hash.as_str()));
    // Each record chains to the one before, across days too.
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev, pair[0].hash);
    }
    assert_eq!(records[3].at, "2026-12-07T00:00:05Z");
    assert_eq!(records[0].node, orbitlab_engine::store::node_name());
    let since = log.records(Some(&"2026-12-07".parse().unwrap())).unwrap();
    assert_eq!(since.first().map(|r| r.seq), Some(4));
    assert_eq!(since.len(), 6);
}

#[test]
fn an_edited_field_is_found_at_its_shard_line_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    edit_line(&shard(dir.path(), "2026-12-07.jsonl"), 2, |l| {
        Some(l.replace("root@pam", "someone@pam"))
    });
    let b = broken(&log);
    assert_eq!(
        (b.shard.as_str(), b.line, b.seq, &b.problem),
        ("2026-12-07.jsonl", 2, Some(5), &Problem::Edited)
    );
    assert_eq!(
        b.to_string(),
        "2026-12-07.jsonl line 2 (seq 5): edited: its content does not match its hash"
    );
}

#[test]
fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    let path = shard(dir.path(), "2026-12-06.jsonl");
    edit_line(&path, 2, |l| {
        let mut r: orbitlab_engine::audit::Record = serde_json::from_str(l).unwrap();
        r.object = "/sectors/other".into();
        r.hash = r.digest();
        Some(r.line())
    });
    let b = broken(&log);
    assert_eq!(
        (b.shard.as_str(), b.line, b.seq, &b.problem),
        ("2026-12-06.jsonl", 3, Some(3), &Problem::Relinked)
    );
}

#[test]
fn a_deleted_line_is_a_gap_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    edit_line(&shard(dir.path(), "2026-12-07.jsonl"), 2, |_| None);
    let b = broken(&log);
    assert_eq!(
        (b.shard.as_str(), b.line, b.seq, &b.problem),
        (
            "2026-12-07.jsonl",
            2,
            Some(6),
            &Problem::Missing {
                expected: 5,
                found: 6
            }
        )
    );
    assert!(b.to_string().contains("deleted: record 5 missing"), "{b}");
}

#[test]
fn a_deleted_middle_day_is_found_at_the_next_day() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    std::fs::remove_file(shard(dir.path(), "2026-12-07.jsonl")).unwrap();
    let b = broken(&log);
    assert_eq!(
        (b.shard.as_str(), b.line, b.seq, &b.problem),
        (
            "2026-12-08.jsonl",
            1,
            Some(8),
            &Problem::Missing {
                expected: 4,
                found: 8
            }
        )
    );
    assert!(b.to_string().contains("record 4..7 missing"), "{b}");
}

#[test]
fn a_truncated_end_or_a_removed_newest_day_is_a_head_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    edit_line(&shard(dir.path(), "2026-12-08.jsonl"), 2, |_| None);
    let b = broken(&log);
    assert_eq!(
        (b.shard.as_str(), b.line, b.seq, &b.problem),
        (
            "2026-12-08.jsonl",
            2,
            Some(9),
            &Problem::Truncated {
                head_seq: 9,
                last_seq: 8
            }
        )
    );

    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    std::fs::remove_file(shard(dir.path(), "2026-12-08.jsonl")).unwrap();
    let b = broken(&log);
    assert_eq!(
        (b.shard.as_str(), b.line, b.seq, &b.problem),
        (
            "2026-12-08.jsonl",
            1,
            Some(8),
            &Problem::Truncated {
                head_seq: 9,
                last_seq: 7
            }
        )
    );
    // Appending after the cut continues from the head: the gap stays.
    log.append(&[entry(10)]).unwrap();
    let b = broken(&log);
    assert_eq!(
        (b.seq, &b.problem),
        (
            Some(10),
            &Problem::Missing {
                expected: 8,
                found: 10
            }
        )
    );

    // Without its head, a log with records is broken too.
    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    std::fs::remove_file(dir.path().join("orbitlab/audit/head.json")).unwrap();
    assert_eq!(broken(&log).problem, Problem::HeadMissing);
}

#[test]
fn an_append_interrupted_before_the_head_is_completed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_days(dir.path());
    let head = dir.path().join("orbitlab/audit/head.json");
    let before = std::fs::read(&head).unwrap();
    log.append(&[entry(10)]).unwrap();
    // The crash: the shard has record 10, the head still names 9.
    std::fs::write(&head, before).unwrap();
    let Verification::Intact(summary) = log.verify().unwrap() else {
        panic!("{:?}", log.verify());
    };
    assert!(summary.note.unwrap().contains("interrupted"));
    log.append(&[entry(11)]).unwrap();
    let Verification::Intact(summary) = log.verify().unwrap() else {
        panic!("{:?}", log.verify());
    };
    assert_eq!((summary.records, summary.note), (11, None));
}

#[test]
fn a_full_shard_continues_in_the_next_part_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = log_on(dir.path());
    let log = log.with_shard_limit(1000);
    for n in 0..12 {
        log.append(&[entry(n), entry(n + 100)]).unwrap();
    }
    let names = Store::open(dir.path())
        .list(&orbitlab_engine::store::layout::audit_dir())
        .unwrap();
    assert!(
        names.contains(&"2026-12-06.1.jsonl".to_owned()),
        "{names:?}"
    );
    assert!(names.len() > 4, "{names:?}");
    for name in names.iter().filter(|n| n.ends_with(".jsonl")) {
        let size = std::fs::metadata(shard(dir.path(), name)).unwrap().len();
        assert!(size <= 1000, "{name}: {size}");
    }
    let Verification::Intact(summary) = log.verify().unwrap() else {
        panic!("{:?}", log.verify());
    };
    assert_eq!(summary.records, 24);
    assert_eq!(
        log.records(None)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        (1..=24).collect::<Vec<_>>()
    );
    // Removing a middle part is a gap at the next one.
    std::fs::remove_file(shard(dir.path(), "2026-12-06.1.jsonl")).unwrap();
    let b = broken(&log);
    assert_eq!(b.shard, "2026-12-06.2.jsonl");
    assert!(matches!(b.problem, Problem::Missing { .. }), "{b}");
}

#[test]
fn concurrent_appenders_keep_one_unbroken_chain() {
    let dir = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = AuditLog::new(Store::open(dir.path()));
            std::thread::spawn(move || {
                for n in 0..15 {
                    log.append(&[entry(t * 100 + n)]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = AuditLog::new(Store::open(dir.path()));
    let Verification::Intact(summary) = log.verify().unwrap() else {
        panic!("{:?}", log.verify());
    };
    assert_eq!(summary.records, 60);
    let mut objects: Vec<String> = log
        .records(None)
        .unwrap()
        .into_iter()
        .map(|r| r.object)
        .collect();
    objects.sort();
    objects.dedup();
    assert_eq!(objects.len(), 60, "every append is there once");
}

const SECTOR_WEB: &str = "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n";
const PLAINTEXT: &str = "AUDITCHECK-value-3f9e1c77";

#[test]
fn the_api_records_changes_and_reads_with_who_and_where_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(Store::open(dir.path())).acting_as(Actor::https("ops@pve!ci"));
    api.apply(codec::decode("web.yaml", SECTOR_WEB).unwrap())
        .unwrap();
    // Applying the same again changes nothing and records nothing.
    api.apply(codec::decode("web.yaml", SECTOR_WEB).unwrap())
        .unwrap();
    let secret: orbitlab_engine::vault::SecretPath = "app/db".parse().unwrap();
    api.vault(VaultCall::Set {
        path: secret.clone(),
        value: SecretValue::new(PLAINTEXT.as_bytes().to_vec()).unwrap(),
    })
    .unwrap();
    let read = api
        .vault(VaultCall::Value {
            path: secret.clone(),
            version: None,
        })
        .unwrap();
    assert!(read["value"].is_string());
    // Metadata reads are not recorded.
    api.vault(VaultCall::Versions(secret.clone())).unwrap();
    // A change that fails is recorded as begun, then failed.
    api.vault(VaultCall::Rollback {
        path: secret,
        to: "7".parse().unwrap(),
    })
    .unwrap_err();
    // The command in-process acts as the local user.
    let local = Api::new(Store::open(dir.path()));
    assert_eq!(local.actor().via(), Via::Local);
    assert!(local.actor().user().ends_with("@pam"));
    local
        .delete(&"/sectors/web".parse::<ApiPath>().unwrap(), false)
        .unwrap();

    let log = AuditLog::new(Store::open(dir.path()));
    let records = log.records(None).unwrap();
    let seen: Vec<(&str, Action, Outcome, &str)> = records
        .iter()
        .map(|r| (r.actor.as_str(), r.action, r.outcome, r.object.as_str()))
        .collect();
    let local_user = local.actor().user();
    assert_eq!(
        seen,
        [
            ("ops@pve!ci", Action::Apply, Outcome::Begun, "/sectors/web"),
            (
                "ops@pve!ci",
                Action::SecretSet,
                Outcome::Begun,
                "/vault/values/app/db"
            ),
            (
                "ops@pve!ci",
                Action::SecretRead,
                Outcome::Done,
                "/vault/values/app/db"
            ),
            (
                "ops@pve!ci",
                Action::SecretRollback,
                Outcome::Begun,
                "/vault/rollback/app/db"
            ),
            (
                "ops@pve!ci",
                Action::SecretRollback,
                Outcome::Failed,
                "/vault/rollback/app/db"
            ),
            (local_user, Action::Delete, Outcome::Begun, "/sectors/web"),
        ]
    );
    assert!(records[..5].iter().all(|r| r.via == Via::Https));
    assert_eq!(records[5].via, Via::Local);
    assert!(
        records
            .iter()
            .all(|r| r.node == orbitlab_engine::store::node_name())
    );
    assert_eq!(records[0].detail["change"], "created");
    assert_eq!(records[0].detail["sha256"].len(), 64);
    assert_eq!(records[3].detail["to"], "7");
    assert!(matches!(log.verify().unwrap(), Verification::Intact(_)));

    // The value is nowhere in the store: not in the audit log, not in
    // any other file, in any common encoding.
    use base64::Engine;
    let forms = [
        PLAINTEXT.as_bytes().to_vec(),
        hex::encode(PLAINTEXT).into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(PLAINTEXT)
            .into_bytes(),
    ];
    for (path, bytes) in files_support::all_files(dir.path()) {
        for form in &forms {
            assert!(
                !bytes.windows(form.len()).any(|w| w == form.as_slice()),
                "{path} holds the secret"
            );
        }
    }
}

#[test]
fn a_change_that_cannot_be_recorded_is_not_made() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(Store::open(dir.path()));
    // A file where the audit directory belongs: every append fails.
    std::fs::create_dir_all(dir.path().join("orbitlab")).unwrap();
    std::fs::write(dir.path().join("orbitlab/audit"), "not a directory").unwrap();
    api.apply(codec::decode("web.yaml", SECTOR_WEB).unwrap())
        .unwrap_err();
    assert!(
        !dir.path()
            .join("orbitlab/manifests/sector/web.yaml")
            .exists()
    );
    let secret: orbitlab_engine::vault::SecretPath = "app/db".parse().unwrap();
    api.vault(VaultCall::Set {
        path: secret.clone(),
        value: SecretValue::new(PLAINTEXT.as_bytes().to_vec()).unwrap(),
    })
    .unwrap_err();
    assert!(
        orbitlab_engine::vault::Vault::new(Store::open(dir.path()))
            .get(&secret)
            .is_err(),
        "the secret was not stored"
    );
}

#[test]
fn a_read_that_cannot_be_recorded_hands_out_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(Store::open(dir.path()));
    let secret: orbitlab_engine::vault::SecretPath = "app/db".parse().unwrap();
    api.vault(VaultCall::Set {
        path: secret.clone(),
        value: SecretValue::new(PLAINTEXT.as_bytes().to_vec()).unwrap(),
    })
    .unwrap();
    let audit = dir.path().join("orbitlab/audit");
    std::fs::remove_dir_all(&audit).unwrap();
    std::fs::write(&audit, "not a directory").unwrap();
    let refused = api
        .vault(VaultCall::Value {
            path: secret,
            version: None,
        })
        .unwrap_err();
    assert!(!refused.to_string().contains(PLAINTEXT));
}
