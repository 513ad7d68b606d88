//! Attack and bad-input cases of the vault (issue 5): flipped bytes, swapped
//! files and versions, copied ciphertexts, a missing, foreign or damaged
//! keyring, empty and huge values, hostile paths. Each must fail with a
//! clear error, show no plaintext and change nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orbitlab_engine::store::Store;
use orbitlab_engine::vault::{SecretPath, SecretValue, Vault, VaultError, Version};
use serde_json::Value;

const PLAIN_A: &str = "PLAINTEXT-alpha-7f3c9e";
const PLAIN_A2: &str = "PLAINTEXT-alpha-second-41d2";
const PLAIN_B: &str = "PLAINTEXT-bravo-0a8b51";

fn p(s: &str) -> SecretPath {
    s.parse().unwrap()
}

fn v(s: &str) -> SecretValue {
    SecretValue::new(s.as_bytes().to_vec()).unwrap()
}

/// A vault with `app/a` (two versions) and `app/b` (one).
fn setup() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(Store::open(dir.path()));
    vault.set(&p("app/a"), &v(PLAIN_A)).unwrap();
    vault.set(&p("app/a"), &v(PLAIN_A2)).unwrap();
    vault.set(&p("app/b"), &v(PLAIN_B)).unwrap();
    (dir, vault)
}

fn file_of(root: &Path, secret: &str) -> PathBuf {
    let dir = root.join("priv/orbitlab/vault/secrets");
    for shard in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            let doc: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            if doc["path"] == secret {
                return f;
            }
        }
    }
    panic!("no file for {secret}");
}

/// Every file under the store root with its bytes.
/// Every vault file under `root` with its bytes. Lock bookkeeping
/// (`priv/orbitlab/locks/*.owner`, rewritten with a timestamp by every
/// acquisition, even one that then refuses) is not vault state and is left
/// out, or a refusal that crosses a second boundary would look like a write.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    let locks = root.join("priv/orbitlab/locks");
    while let Some(dir) = stack.pop() {
        if dir == locks {
            continue;
        }
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn assert_no_plaintext(text: &str) {
    for plain in [PLAIN_A, PLAIN_A2, PLAIN_B] {
        assert!(!text.contains(plain), "plaintext leaked: {text}");
    }
}

fn assert_b_intact(vault: &Vault) {
    assert_eq!(
        vault.get(&p("app/b")).unwrap().value.expose(),
        PLAIN_B.as_bytes()
    );
}

#[test]
fn every_single_byte_flip_is_caught() {
    let (dir, vault) = setup();
    let file = file_of(dir.path(), "app/a");
    let original = std::fs::read(&file).unwrap();
    let mut kinds = BTreeMap::<&str, usize>::new();
    for i in 0..original.len() {
        for mask in [0x01u8, 0x20, 0x80] {
            let mut bytes = original.clone();
            bytes[i] ^= mask;
            std::fs::write(&file, &bytes).unwrap();
            let err = vault
                .get(&p("app/a"))
                .expect_err(&format!("flip of byte {i} with {mask:#x} went unnoticed"));
            let kind = match &err {
                VaultError::Damaged { .. } => "damaged",
                VaultError::Integrity { .. } => "integrity",
                VaultError::Misplaced { .. } => "misplaced",
                VaultError::KekMissing { .. } => "kek-missing",
                VaultError::Tampered { .. } => "tampered",
                VaultError::HistoryKekMissing { .. } => "kek-missing",
                other => panic!("byte {i}: unexpected error {other}"),
            };
            *kinds.entry(kind).or_default() += 1;
            let text = format!("{err} {err:?}");
            assert!(text.contains("app/a"), "the error names the secret: {text}");
            assert!(
                text.contains(&file.display().to_string()) || kind == "kek-missing",
                "{text}"
            );
            assert_no_plaintext(&text);
            // Sampled (each takes the cluster lock): writes are refused too,
            // nothing is built on a damaged file, nothing else is affected.
            if i % 11 == 0 {
                assert!(vault.set(&p("app/a"), &v("new")).is_err());
                assert_eq!(
                    std::fs::read(&file).unwrap(),
                    bytes,
                    "a refused set changed the file"
                );
                assert_b_intact(&vault);
            }
        }
    }
    println!("{} bytes x 3 masks flipped: {kinds:?}", original.len());
    assert!(kinds["integrity"] > 0 && kinds["damaged"] > 0 && kinds["tampered"] > 0);
    std::fs::write(&file, &original).unwrap();
    assert_eq!(
        vault.get(&p("app/a")).unwrap().value.expose(),
        PLAIN_A2.as_bytes()
    );
    assert_b_intact(&vault);
}

#[test]
fn swapped_secret_files_are_refused() {
    let (dir, vault) = setup();
    let (fa, fb) = (file_of(dir.path(), "app/a"), file_of(dir.path(), "app/b"));
    let (a, b) = (std::fs::read(&fa).unwrap(), std::fs::read(&fb).unwrap());
    std::fs::write(&fa, &b).unwrap();
    std::fs::write(&fb, &a).unwrap();
    for (asked, holds) in [("app/a", "app/b"), ("app/b", "app/a")] {
        let err = vault.get(&p(asked)).unwrap_err();
        assert!(matches!(err, VaultError::Misplaced { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(asked) && text.contains(holds) && text.contains("swapped"),
            "{text}"
        );
        assert_no_plaintext(&text);
    }
    // Rewriting the path inside the copied file does not help: the path is
    // bound into every tag.
    let forged = String::from_utf8(b.clone())
        .unwrap()
        .replace("\"app/b\"", "\"app/a\"");
    std::fs::write(&fa, forged).unwrap();
    let err = vault.get(&p("app/a")).unwrap_err();
    assert!(matches!(err, VaultError::Integrity { .. }), "{err}");
    // The listing shows the misplaced files as damaged instead of lying.
    std::fs::write(&fa, &b).unwrap();
    assert_eq!(vault.list(None).unwrap().damaged.len(), 2);
}

/// Rewrites the versions array of `file` with `edit`.
fn edit_versions(file: &Path, edit: impl FnOnce(&mut Vec<Value>)) {
    let mut doc: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    edit(doc["versions"].as_array_mut().unwrap());
    std::fs::write(file, serde_json::to_vec(&doc).unwrap()).unwrap();
}

#[test]
fn swapped_or_copied_versions_are_refused() {
    let (dir, vault) = setup();
    let fa = file_of(dir.path(), "app/a");
    let original = std::fs::read(&fa).unwrap();

    // Swap the contents of versions 1 and 2, keeping their numbers.
    edit_versions(&fa, |vs| {
        let (one, two) = (vs[0].clone(), vs[1].clone());
        for field in ["key", "data", "created"] {
            vs[0][field] = two[field].clone();
            vs[1][field] = one[field].clone();
        }
    });
    let err = vault.get(&p("app/a")).unwrap_err();
    assert!(matches!(err, VaultError::Integrity { .. }), "{err}");
    assert_no_plaintext(&err.to_string());

    // Swap the entries' order.
    std::fs::write(&fa, &original).unwrap();
    edit_versions(&fa, |vs| vs.swap(0, 1));
    let err = vault.get(&p("app/a")).unwrap_err();
    assert!(matches!(err, VaultError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("out of order"), "{err}");

    // Renumber version 1 as 3 and drop the real one: version binding.
    std::fs::write(&fa, &original).unwrap();
    edit_versions(&fa, |vs| {
        let mut old = vs[0].clone();
        old["version"] = 3.into();
        vs.push(old);
    });
    let err = vault.get(&p("app/a")).unwrap_err();
    assert!(
        matches!(err, VaultError::Integrity { version, .. } if version.get() == 3),
        "{err}"
    );

    // Copy app/b's version 1 into app/a as version 3: path binding.
    std::fs::write(&fa, &original).unwrap();
    let b_doc: Value =
        serde_json::from_slice(&std::fs::read(file_of(dir.path(), "app/b")).unwrap()).unwrap();
    edit_versions(&fa, |vs| {
        let mut copied = b_doc["versions"][0].clone();
        copied["version"] = 3.into();
        vs.push(copied);
    });
    let err = vault.get_version(&p("app/a"), Version::FIRST).unwrap_err();
    assert!(
        matches!(err, VaultError::Integrity { version, .. } if version.get() == 3),
        "{err}"
    );

    std::fs::write(&fa, &original).unwrap();
    assert_eq!(vault.versions(&p("app/a")).unwrap().len(), 2);
    assert_b_intact(&vault);
}

#[test]
fn missing_keyring_is_named_and_never_recreated_over_secrets() {
    let (dir, vault) = setup();
    let keyring = dir.path().join("priv/orbitlab/vault/keyring.json");
    std::fs::remove_file(&keyring).unwrap();
    let before = snapshot(dir.path());
    for err in [
        vault.get(&p("app/a")).unwrap_err(),
        vault.set(&p("app/new"), &v("x")).unwrap_err(),
        vault.rotate_kek().unwrap_err(),
    ] {
        assert!(matches!(err, VaultError::KeyringMissing { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&keyring.display().to_string()), "{text}");
        assert!(text.contains("restore the keyring"), "{text}");
    }
    assert_eq!(snapshot(dir.path()), before, "nothing was written");
}

#[test]
fn a_foreign_or_damaged_keyring_is_named() {
    let (dir, vault) = setup();
    let keyring = dir.path().join("priv/orbitlab/vault/keyring.json");
    let own = std::fs::read(&keyring).unwrap();

    // A keyring from another vault (another cluster, or a stale backup).
    let other = tempfile::tempdir().unwrap();
    Vault::new(Store::open(other.path()))
        .set(&p("x"), &v("x"))
        .unwrap();
    std::fs::copy(
        other.path().join("priv/orbitlab/vault/keyring.json"),
        &keyring,
    )
    .unwrap();
    let err = vault.get(&p("app/b")).unwrap_err();
    assert!(matches!(err, VaultError::KekMissing { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&keyring.display().to_string()) && text.contains("app/b"),
        "{text}"
    );
    assert_no_plaintext(&text);

    // The right keyring with one changed key byte.
    let mut doc: Value = serde_json::from_slice(&own).unwrap();
    let key = doc["keys"][0]["key"].as_str().unwrap().to_owned();
    let mut changed = key.into_bytes();
    changed[5] = if changed[5] == b'Q' { b'R' } else { b'Q' };
    doc["keys"][0]["key"] = String::from_utf8(changed).unwrap().into();
    std::fs::write(&keyring, serde_json::to_vec(&doc).unwrap()).unwrap();
    let err = vault.get(&p("app/b")).unwrap_err();
    assert!(matches!(err, VaultError::KeyringDamaged { .. }), "{err}");
    assert!(
        err.to_string().contains(&keyring.display().to_string()),
        "{err}"
    );

    std::fs::write(&keyring, &own).unwrap();
    assert_b_intact(&vault);
}

#[test]
fn bad_values_and_paths_change_nothing() {
    let (dir, _vault) = setup();
    let before = snapshot(dir.path());
    let empty = SecretValue::read_from(&b""[..], "stdin").unwrap_err();
    assert!(empty.to_string().contains("empty"), "{empty}");
    let huge = vec![b'z'; 10_000_000];
    let big = SecretValue::read_from(&huge[..], "big.bin").unwrap_err();
    assert!(
        big.to_string().contains("big.bin") && big.to_string().contains("65536"),
        "{big}"
    );
    assert!(SecretValue::new(Vec::new()).is_err());
    for bad in [
        "../etc/passwd",
        "app/../b",
        "a\0b",
        "a\nb",
        "/abs",
        "a//b",
        "",
    ] {
        let err = bad.parse::<SecretPath>().unwrap_err();
        let err = VaultError::from(err).to_string();
        assert!(err.starts_with("invalid secret path"), "{err}");
    }
    assert_eq!(snapshot(dir.path()), before);
}

// ---- the version history as a whole (issue 16, finding 5) -----------------

const PLAIN_A3: &str = "PLAINTEXT-alpha-third-93be";

/// The head file of `secret`: same shard and name as its record, under
/// `vault/heads/`.
fn head_of(root: &Path, secret: &str) -> PathBuf {
    let record = file_of(root, secret);
    let rel = record
        .strip_prefix(root.join("priv/orbitlab/vault/secrets"))
        .unwrap();
    root.join("priv/orbitlab/vault/heads").join(rel)
}

/// `result` is a refusal of secret `secret` for a changed version history:
/// it names the secret and its file, and holds no plaintext.
#[track_caller]
fn assert_tampered<T: std::fmt::Debug>(result: Result<T, VaultError>, secret: &str, file: &Path) {
    let err = result.expect_err("a changed version history went unnoticed");
    let text = format!("{err} {err:?}");
    assert!(
        matches!(err, VaultError::Tampered { .. }),
        "not a tamper error: {text}"
    );
    assert!(text.contains(secret), "the error names the secret: {text}");
    assert!(
        text.contains(&file.display().to_string()),
        "the error names the file: {text}"
    );
    assert_no_plaintext(&text);
}

/// Every read of `app/a` is refused, and the listing does not show it.
#[track_caller]
fn assert_a_refused(vault: &Vault, file: &Path) {
    assert_tampered(vault.get(&p("app/a")), "app/a", file);
    for n in 1..=3 {
        assert_tampered(
            vault.get_version(&p("app/a"), Version::new(n).unwrap()),
            "app/a",
            file,
        );
    }
    assert_tampered(vault.versions(&p("app/a")), "app/a", file);
    let listing = vault.list(None).unwrap();
    assert!(
        listing.secrets.iter().all(|s| s.path.as_str() != "app/a"),
        "the listing shows a tampered secret: {listing:?}"
    );
    assert!(listing.damaged.contains(&file.to_owned()), "{listing:?}");
    assert_b_intact(vault);
}

#[test]
fn dropping_versions_from_a_file_is_refused() {
    let (dir, vault) = setup();
    vault.set(&p("app/a"), &v(PLAIN_A3)).unwrap();
    let fa = file_of(dir.path(), "app/a");
    let original = std::fs::read(&fa).unwrap();

    // The newest version removed: every remaining one still verifies.
    edit_versions(&fa, |vs| {
        vs.pop();
    });
    assert_a_refused(&vault, &fa);
    let before = snapshot(dir.path());
    assert!(vault.set(&p("app/a"), &v("new")).is_err());
    assert!(vault.rollback(&p("app/a"), Version::FIRST).is_err());
    assert_eq!(snapshot(dir.path()), before, "nothing is built on it");

    // The list cut down to its first version.
    std::fs::write(&fa, &original).unwrap();
    edit_versions(&fa, |vs| vs.truncate(1));
    assert_a_refused(&vault, &fa);

    // The file cut short (bytes): not even decodable.
    std::fs::write(&fa, &original[..original.len() / 2]).unwrap();
    let err = vault.get(&p("app/a")).unwrap_err();
    assert!(matches!(err, VaultError::Damaged { .. }), "{err}");

    std::fs::write(&fa, &original).unwrap();
    assert_eq!(
        vault.get(&p("app/a")).unwrap().value.expose(),
        PLAIN_A3.as_bytes()
    );
    assert_eq!(vault.versions(&p("app/a")).unwrap().len(), 3);
}

#[test]
fn an_older_copy_of_a_file_is_refused() {
    let (dir, vault) = setup();
    let fa = file_of(dir.path(), "app/a");
    let old = std::fs::read(&fa).unwrap();
    vault.set(&p("app/a"), &v(PLAIN_A3)).unwrap();
    let current = std::fs::read(&fa).unwrap();

    std::fs::write(&fa, &old).unwrap();
    assert_a_refused(&vault, &fa);
    let before = snapshot(dir.path());
    assert!(vault.set(&p("app/a"), &v("new")).is_err());
    assert!(
        vault
            .prune(&p("app/a"), std::num::NonZeroUsize::MIN)
            .is_err()
    );
    assert_eq!(snapshot(dir.path()), before, "nothing is built on it");

    // A KEK rotation does not launder it: it is reported and left alone.
    let report = vault.rotate_kek().unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].file, fa);
    assert_no_plaintext(&report.failed[0].reason);
    assert_a_refused(&vault, &fa);

    // The current copy back: readable again, after the rotation too.
    std::fs::write(&fa, &current).unwrap();
    assert_eq!(
        vault.get(&p("app/a")).unwrap().value.expose(),
        PLAIN_A3.as_bytes()
    );
    assert_eq!(vault.versions(&p("app/a")).unwrap().len(), 3);
}

#[test]
fn removing_the_head_is_refused() {
    let (dir, vault) = setup();
    vault.set(&p("app/a"), &v(PLAIN_A3)).unwrap();
    let fa = file_of(dir.path(), "app/a");
    let head = head_of(dir.path(), "app/a");
    let head_bytes = std::fs::read(&head).unwrap();
    let current = std::fs::read(&fa).unwrap();
    std::fs::remove_file(&head).unwrap();
    assert_a_refused(&vault, &fa);
    let before = snapshot(dir.path());
    assert!(vault.set(&p("app/a"), &v("new")).is_err(), "not recreated");
    assert_eq!(snapshot(dir.path()), before);

    // Head removed and an older file: still refused.
    edit_versions(&fa, |vs| vs.truncate(1));
    assert_a_refused(&vault, &fa);

    // The head of a removed file: refused too.
    std::fs::write(&head, &head_bytes).unwrap();
    std::fs::remove_file(&fa).unwrap();
    let err = vault.get(&p("app/a")).unwrap_err();
    assert!(matches!(err, VaultError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains("app/a"), "{err}");

    std::fs::write(&fa, &current).unwrap();
    assert_eq!(
        vault.get(&p("app/a")).unwrap().value.expose(),
        PLAIN_A3.as_bytes()
    );
    // Delete clears a secret whatever its state.
    std::fs::remove_file(&head).unwrap();
    assert_eq!(vault.delete(&p("app/a")).unwrap(), 3);
    assert!(matches!(
        vault.get(&p("app/a")),
        Err(VaultError::NotFound { .. })
    ));
    assert!(!head.exists() && !fa.exists());
    assert_b_intact(&vault);
}

#[test]
fn a_crash_between_file_and_head_is_completed_not_refused() {
    let (dir, vault) = setup();
    let head = head_of(dir.path(), "app/a");
    let head_before = std::fs::read(&head).unwrap();
    vault.set(&p("app/a"), &v(PLAIN_A3)).unwrap();
    // The file has version 3, the head still lists 1 and 2: what a crash
    // after the file's rename and before the head's leaves behind.
    std::fs::write(&head, &head_before).unwrap();

    let got = vault.get(&p("app/a")).unwrap();
    assert_eq!(
        (got.version.get(), got.value.expose()),
        (3, PLAIN_A3.as_bytes())
    );
    assert_eq!(vault.versions(&p("app/a")).unwrap().len(), 3);
    let listing = vault.list(None).unwrap();
    assert!(listing.damaged.is_empty(), "{listing:?}");
    assert_eq!(listing.secrets[0].latest.get(), 3);

    // The next write brings the head up to date.
    vault.set(&p("app/a"), &v("fourth")).unwrap();
    assert_ne!(std::fs::read(&head).unwrap(), head_before);
    let fa = file_of(dir.path(), "app/a");
    let four = std::fs::read(&fa).unwrap();
    // ...so an older file is now refused.
    edit_versions(&fa, |vs| {
        vs.pop();
    });
    assert_tampered(vault.get(&p("app/a")), "app/a", &fa);
    std::fs::write(&fa, &four).unwrap();
    assert_eq!(vault.get(&p("app/a")).unwrap().value.expose(), b"fourth");

    // The same after a prune: the dropped versions stay dropped.
    let head_before = std::fs::read(&head).unwrap();
    vault
        .prune(&p("app/a"), std::num::NonZeroUsize::new(2).unwrap())
        .unwrap();
    std::fs::write(&head, &head_before).unwrap();
    let kept: Vec<u64> = vault
        .versions(&p("app/a"))
        .unwrap()
        .iter()
        .map(|i| i.version.get())
        .collect();
    assert_eq!(kept, [3, 4]);
    assert!(vault.get_version(&p("app/a"), Version::FIRST).is_err());
    assert_b_intact(&vault);
}

#[test]
fn every_single_byte_flip_of_a_head_is_caught() {
    let (dir, vault) = setup();
    let head = head_of(dir.path(), "app/a");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&head).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "heads are private");
    let original = std::fs::read(&head).unwrap();
    let mut kinds = BTreeMap::<&str, usize>::new();
    for i in 0..original.len() {
        for mask in [0x01u8, 0x20, 0x80] {
            let mut bytes = original.clone();
            bytes[i] ^= mask;
            std::fs::write(&head, &bytes).unwrap();
            let err = vault.get(&p("app/a")).expect_err(&format!(
                "flip of head byte {i} with {mask:#x} went unnoticed"
            ));
            let kind = match &err {
                VaultError::Damaged { .. } => "damaged",
                VaultError::Tampered { .. } => "tampered",
                VaultError::Misplaced { .. } => "misplaced",
                VaultError::HistoryKekMissing { .. } => "kek-missing",
                other => panic!("head byte {i}: unexpected error {other}"),
            };
            *kinds.entry(kind).or_default() += 1;
            let text = format!("{err} {err:?}");
            assert!(text.contains("app/a"), "the error names the secret: {text}");
            assert_no_plaintext(&text);
        }
    }
    println!("{} head bytes x 3 masks flipped: {kinds:?}", original.len());
    assert!(kinds["tampered"] > 0 && kinds["damaged"] > 0);
    std::fs::write(&head, &original).unwrap();
    assert_eq!(
        vault.get(&p("app/a")).unwrap().value.expose(),
        PLAIN_A2.as_bytes()
    );
    assert_b_intact(&vault);
}
