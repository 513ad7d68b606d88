//! The vault's sealed mode in one process (the agent's view): sealing
//! wraps the keyring's keys by the passphrase and leaves no key in the
//! clear on disk; a process that forgot the key (a restarted agent) is
//! sealed and says so; a wrong passphrase is refused and changes nothing;
//! after unsealing, get, set, rollback and key rotation work and every old
//! version reads back; neither passphrase nor values reach any file.
//!
//! One test function: the unseal key is process-wide, so no other test
//! may share this binary's process.

mod files_support;

use orbitlab_engine::store::Store;
use orbitlab_engine::vault::{
    SealState, SecretPath, SecretValue, Vault, VaultError, Version, seal,
};

const PASSPHRASE: &str = "correct horse battery staple 42";

fn value(text: &str) -> SecretValue {
    SecretValue::new(text.as_bytes().to_vec()).unwrap()
}

fn path(text: &str) -> SecretPath {
    text.parse().unwrap()
}

fn read(vault: &Vault, p: &str) -> Result<String, VaultError> {
    vault
        .get(&path(p))
        .map(|s| String::from_utf8(s.value.expose().to_vec()).unwrap())
}

/// The first string value of `key` in a JSON text.
fn json_text(text: &str, key: &str) -> String {
    let start = format!("\"{key}\":\"");
    text.split(&start)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_sealed_vault_opens_only_with_its_passphrase_and_forgets_it_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    let vault = Vault::new(store.clone());
    vault.set(&path("app/db"), &value("db-one")).unwrap();
    vault.set(&path("app/db"), &value("db-two")).unwrap();
    vault.set(&path("api/token"), &value("token-one")).unwrap();
    assert_eq!(vault.seal_state().unwrap(), SealState::Plain);
    let keyring = dir.path().join("priv/orbitlab/vault/keyring.json");
    let plain = std::fs::read_to_string(&keyring).unwrap();
    let plain_key = json_text(&plain, "key");

    let plain_id = json_text(&plain, "active");

    // Sealing: the keys are wrapped, none is left in the clear, and the
    // KEK is replaced: the plain keyring (a backup) opens nothing now.
    let report = vault
        .seal(&value(PASSPHRASE), seal::MIN_MEMORY_MIB)
        .unwrap();
    assert_eq!(
        report.status.seal,
        SealState::Unsealed,
        "the sealing process keeps the key"
    );
    assert_eq!(report.rotation.versions_rewrapped, 3);
    assert!(report.rotation.failed.is_empty());
    assert_eq!(
        report
            .rotation
            .retired
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>(),
        [plain_id.as_str()]
    );
    let sealed = std::fs::read_to_string(&keyring).unwrap();
    assert!(
        sealed.contains("\"seal\"") && sealed.contains("\"wrapped\""),
        "{sealed}"
    );
    assert!(
        !sealed.contains("\"key\"") && !sealed.contains(&plain_key),
        "{sealed}"
    );
    assert_eq!(read(&vault, "app/db").unwrap(), "db-two");

    // A restarted process holds no key: sealed, and it says so.
    seal::forget();
    assert_eq!(vault.seal_state().unwrap(), SealState::Sealed);
    assert_eq!(vault.status().unwrap().seal, SealState::Sealed);
    let e = read(&vault, "app/db").unwrap_err();
    assert!(matches!(e, VaultError::Sealed { .. }), "{e}");
    assert!(e.to_string().contains("vault unseal"), "{e}");
    assert!(matches!(
        vault.set(&path("app/db"), &value("nope")),
        Err(VaultError::Sealed { .. })
    ));

    // A wrong passphrase is refused and changes nothing.
    let e = vault
        .unseal(&value("correct horse battery staple 43"))
        .unwrap_err();
    assert!(matches!(e, VaultError::WrongPassphrase), "{e}");
    assert_eq!(vault.seal_state().unwrap(), SealState::Sealed);
    assert_eq!(
        std::fs::read_to_string(&keyring).unwrap(),
        sealed,
        "nothing written"
    );

    // Unsealed: get, set, rollback and key rotation work.
    assert_eq!(
        vault.unseal(&value(PASSPHRASE)).unwrap().seal,
        SealState::Unsealed
    );
    assert_eq!(
        std::fs::read_to_string(&keyring).unwrap(),
        sealed,
        "unsealing writes nothing"
    );
    assert_eq!(read(&vault, "api/token").unwrap(), "token-one");
    vault.set(&path("app/db"), &value("db-three")).unwrap();
    vault
        .rollback(&path("app/db"), Version::new(1).unwrap())
        .unwrap();
    assert_eq!(read(&vault, "app/db").unwrap(), "db-one");
    let report = vault.rotate_kek().unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let rotated = std::fs::read_to_string(&keyring).unwrap();
    assert!(
        rotated.contains("\"seal\"") && !rotated.contains("\"key\""),
        "still sealed: {rotated}"
    );

    // Restart again: sealed; unsealed: every version still reads back.
    seal::forget();
    assert!(matches!(
        read(&vault, "app/db"),
        Err(VaultError::Sealed { .. })
    ));
    vault.unseal(&value(PASSPHRASE)).unwrap();
    let versions: Vec<String> = (1..=4)
        .map(|v| {
            let s = vault
                .get_version(&path("app/db"), Version::new(v).unwrap())
                .unwrap();
            String::from_utf8(s.value.expose().to_vec()).unwrap()
        })
        .collect();
    assert_eq!(versions, ["db-one", "db-two", "db-three", "db-one"]);

    // Re-sealing with a new passphrase: the old one no longer opens it.
    vault
        .seal(&value("another passphrase"), seal::MIN_MEMORY_MIB)
        .unwrap();
    seal::forget();
    assert!(matches!(
        vault.unseal(&value(PASSPHRASE)),
        Err(VaultError::WrongPassphrase)
    ));
    vault.unseal(&value("another passphrase")).unwrap();
    assert_eq!(read(&vault, "app/db").unwrap(), "db-one");

    // Neither passphrase nor value in any file of the store, nor the old
    // plain key, nor (in the clear) any key of the keyring.
    for (file, bytes) in files_support::all_files(dir.path()) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&plain_key), "the old plain KEK in {file}");
        for needle in [
            PASSPHRASE,
            "another passphrase",
            "db-one",
            "db-two",
            "db-three",
            "token-one",
        ] {
            assert!(!text.contains(needle), "{needle:?} in {file}");
        }
    }
    seal::forget();
}
