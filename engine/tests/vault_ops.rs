//! Vault operations end to end on a temporary store: versions, rollback,
//! listing, deletion, pruning, size caps, KEK rotation, file permissions.

use std::num::NonZeroUsize;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use orbitlab_engine::store::Store;
use orbitlab_engine::vault::{
    MAX_SECRET_FILE_BYTES, MAX_VALUE_BYTES, SecretPath, SecretValue, Vault, VaultError, Version,
};
use serde_json::Value;

fn vault(dir: &Path) -> Vault {
    Vault::new(Store::open(dir))
}

fn p(s: &str) -> SecretPath {
    s.parse().unwrap()
}

fn v(s: &str) -> SecretValue {
    SecretValue::new(s.as_bytes().to_vec()).unwrap()
}

fn secret_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let dir = root.join("priv/orbitlab/vault/secrets");
    for shard in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

#[test]
fn versions_rollback_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let db = p("app/db/password");
    assert_eq!(vault.set(&db, &v("one")).unwrap().version.get(), 1);
    assert_eq!(vault.set(&db, &v("two")).unwrap().version.get(), 2);
    assert_eq!(vault.set(&db, &v("three")).unwrap().version.get(), 3);
    vault.set(&p("app/api-token"), &v("tok")).unwrap();
    vault.set(&p("other"), &v("x")).unwrap();

    let latest = vault.get(&db).unwrap();
    assert_eq!(latest.version.get(), 3);
    assert_eq!(latest.value.expose(), b"three");
    let first = vault.get_version(&db, Version::FIRST).unwrap();
    assert_eq!(first.value.expose(), b"one");

    // Rollback appends a copy of version 1; every version stays.
    let rb = vault.rollback(&db, Version::FIRST).unwrap();
    assert_eq!(rb.from.get(), 1);
    assert_eq!(rb.written.version.get(), 4);
    assert_eq!(vault.get(&db).unwrap().value.expose(), b"one");
    let versions = vault.versions(&db).unwrap();
    assert_eq!(
        versions.iter().map(|i| i.version.get()).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(versions.windows(2).all(|w| w[0].created <= w[1].created));
    for (n, want) in [(2, "two"), (3, "three"), (4, "one")] {
        let got = vault.get_version(&db, Version::new(n).unwrap()).unwrap();
        assert_eq!(got.value.expose(), want.as_bytes());
    }

    let missing = vault.rollback(&db, Version::new(9).unwrap()).unwrap_err();
    assert!(
        matches!(missing, VaultError::VersionNotFound { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("1, 2, 3, 4"), "{missing}");
    assert_eq!(
        vault.versions(&db).unwrap().len(),
        4,
        "a failed rollback wrote nothing"
    );

    let all = vault.list(None).unwrap();
    assert!(all.damaged.is_empty());
    let names: Vec<&str> = all.secrets.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(names, ["app/api-token", "app/db/password", "other"]);
    assert_eq!(all.secrets[1].versions, 4);
    assert_eq!(all.secrets[1].latest.get(), 4);
    let app = vault.list(Some(&p("app"))).unwrap();
    assert_eq!(app.secrets.len(), 2);
    assert!(vault.list(Some(&p("ap"))).unwrap().secrets.is_empty());

    assert_eq!(vault.delete(&p("other")).unwrap(), 1);
    let gone = vault.get(&p("other")).unwrap_err();
    assert!(matches!(gone, VaultError::NotFound { .. }), "{gone}");
    assert!(
        gone.to_string().contains("secret other does not exist"),
        "{gone}"
    );
    assert!(matches!(
        vault.delete(&p("other")),
        Err(VaultError::NotFound { .. })
    ));
    assert_eq!(vault.status().unwrap().secrets, 2);
}

#[test]
fn files_are_private_and_one_per_secret() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    for i in 0..5 {
        vault.set(&p("a/b"), &v(&format!("value {i}"))).unwrap();
    }
    vault.set(&p("c"), &v("c")).unwrap();
    let files = secret_files(dir.path());
    assert_eq!(files.len(), 2, "one file per secret, all versions inside");
    let keyring = dir.path().join("priv/orbitlab/vault/keyring.json");
    for f in files.iter().chain([&keyring]) {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    assert!(
        !dir.path().join("priv/lock/orbitlab-vault").exists(),
        "lock released"
    );
    let status = vault.status().unwrap();
    assert_eq!(status.keys.len(), 1);
    assert!(status.keys[0].active);
    assert_eq!(status.keyring_file, keyring);
}

#[test]
fn caps_on_values_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let big = p("big");
    let mut written = 0;
    let err = loop {
        let value = SecretValue::new(vec![b'a' + (written % 26) as u8; MAX_VALUE_BYTES]).unwrap();
        match vault.set(&big, &value) {
            Ok(_) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 100, "the file cap never hit");
    };
    assert!(matches!(err, VaultError::FileTooLarge { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&MAX_SECRET_FILE_BYTES.to_string()) && text.contains("prune"),
        "{text}"
    );
    assert!(
        written >= 8,
        "at least 8 full-size versions fit, got {written}"
    );
    let file = &secret_files(dir.path())[0];
    let size = std::fs::metadata(file).unwrap().len() as usize;
    assert!(size <= MAX_SECRET_FILE_BYTES, "{size}");
    assert_eq!(
        vault.versions(&big).unwrap().len(),
        written,
        "the refused version left no trace"
    );

    // Pruning makes room again and keeps the newest.
    let dropped = vault.prune(&big, NonZeroUsize::new(2).unwrap()).unwrap();
    assert_eq!(dropped.len(), written - 2);
    assert_eq!(dropped[0].get(), 1);
    let next = vault.set(&big, &v("small")).unwrap();
    assert_eq!(
        next.version.get(),
        written as u64 + 1,
        "version numbers are never reused"
    );
    assert_eq!(vault.versions(&big).unwrap().len(), 3);
}

#[test]
fn kek_rotation_rewraps_without_touching_ciphertexts() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let mut expected = Vec::new();
    for s in 0..6 {
        for n in 0..3 {
            let path = p(&format!("svc{s}/key"));
            let value = format!("secret {s} version {n}");
            vault.set(&path, &v(&value)).unwrap();
            expected.push((path, n + 1, value));
        }
    }
    let first_kek = vault.status().unwrap().keys[0].id.clone();
    let data_fields = |root: &Path| -> Vec<(String, String, String)> {
        secret_files(root)
            .iter()
            .flat_map(|f| {
                let doc: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
                doc["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|ver| {
                        (
                            ver["data"].as_str().unwrap().to_owned(),
                            ver["key"].as_str().unwrap().to_owned(),
                            ver["kek"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let before = data_fields(dir.path());

    let report = vault.rotate_kek().unwrap();
    assert_eq!(report.secrets_rewrapped, 6);
    assert_eq!(report.versions_rewrapped, 18);
    assert_eq!(report.retired, vec![first_kek.clone()]);
    assert!(report.failed.is_empty());
    let after = data_fields(dir.path());
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.0, a.0, "sealed values are untouched");
        assert_ne!(b.1, a.1, "data keys are re-wrapped");
        assert_eq!(a.2, report.new_kek.as_str());
    }
    let keyring =
        std::fs::read_to_string(dir.path().join("priv/orbitlab/vault/keyring.json")).unwrap();
    assert!(
        !keyring.contains(first_kek.as_str()),
        "the retired KEK is gone"
    );
    for (path, n, value) in &expected {
        let got = vault.get_version(path, Version::new(*n).unwrap()).unwrap();
        assert_eq!(got.value.expose(), value.as_bytes());
    }
    // Rotating again, and writing after rotation, keeps everything readable.
    let second = vault.rotate_kek().unwrap();
    assert_ne!(second.new_kek, report.new_kek);
    vault.set(&p("svc0/key"), &v("after rotation")).unwrap();
    assert_eq!(
        vault.get(&p("svc0/key")).unwrap().value.expose(),
        b"after rotation"
    );
    assert_eq!(vault.status().unwrap().keys.len(), 1);
}

#[test]
fn rotation_keeps_keks_that_damaged_files_may_need() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    vault.set(&p("good"), &v("g")).unwrap();
    vault.set(&p("bad"), &v("b")).unwrap();
    let bad_file = secret_files(dir.path())
        .into_iter()
        .find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("\"path\":\"bad\"")
        })
        .unwrap();
    std::fs::write(&bad_file, b"{ not json").unwrap();
    let report = vault.rotate_kek().unwrap();
    assert_eq!(report.secrets_rewrapped, 1);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].file, bad_file);
    assert!(
        report.retired.is_empty(),
        "an unreadable file may need the old KEK"
    );
    assert_eq!(vault.status().unwrap().keys.len(), 2);
    assert_eq!(vault.get(&p("good")).unwrap().value.expose(), b"g");
}
