//! SSH keys checked by OpenSSH's own `ssh-keygen`: the fingerprint it
//! prints is the one OrbitLab shows, and it derives the exported public key
//! from the exported private key (with and without a passphrase, ed25519
//! and RSA 4096). Plus rotation, dropping the previous key, and refusals.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use orbitlab_engine::ssh::{KeyName, KeySpec, SshAlgorithm, SshError, SshKeys, secret_path};
use orbitlab_engine::store::Store;
use orbitlab_engine::vault::{SecretValue, Vault};

fn keys(dir: &Path) -> SshKeys {
    SshKeys::new(Vault::new(Store::open(dir)))
}

fn name(s: &str) -> KeyName {
    s.parse().unwrap()
}

/// Writes `bytes` to `dir/file` with mode 0600 (ssh-keygen insists).
fn private_file(dir: &Path, file: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(file);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

fn ssh_keygen(args: &[&str]) -> (bool, String) {
    let out = Command::new("ssh-keygen").args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `ssh-keygen -l -f file`: (bits, fingerprint, type).
fn listed(file: &Path) -> (String, String, String) {
    let (ok, text) = ssh_keygen(&["-l", "-f", file.to_str().unwrap()]);
    assert!(ok, "{text}");
    let fields: Vec<&str> = text.split_whitespace().collect();
    (
        fields[0].into(),
        fields[1].into(),
        fields.last().unwrap().to_string(),
    )
}

/// The first two fields (type and base64) of a public key line.
fn key_part(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks fingerprint and public-key derivation with ssh-keygen.
fn check_with_ssh_keygen(
    keys: &SshKeys,
    key: &KeyName,
    out: &Path,
    passphrase: Option<&str>,
    bits: &str,
    kind: &str,
) {
    let info = keys.show(key).unwrap();
    let public = out.join(format!("{key}.pub"));
    std::fs::write(&public, format!("{}\n", keys.public_key(key).unwrap())).unwrap();
    assert_eq!(
        listed(&public),
        (
            bits.to_owned(),
            info.current.fingerprint.clone(),
            kind.to_owned()
        )
    );

    let private = keys.private_key(key).unwrap();
    let file = private_file(out, key.as_str(), private.expose());
    // The public half of an OpenSSH private key is readable without the passphrase.
    assert_eq!(listed(&file).1, info.current.fingerprint);
    let path = file.to_str().unwrap();
    let (ok, derived) = match passphrase {
        None => ssh_keygen(&["-y", "-f", path]),
        Some(p) => ssh_keygen(&["-y", "-P", p, "-f", path]),
    };
    assert!(ok, "{derived}");
    assert_eq!(key_part(&derived), key_part(&info.current.public_key));
    if passphrase.is_some() {
        let (ok, text) = ssh_keygen(&["-y", "-P", "wrong passphrase", "-f", path]);
        assert!(!ok, "a wrong passphrase was accepted: {text}");
        let (ok, _) = ssh_keygen(&["-y", "-P", "", "-f", path]);
        assert!(!ok, "the key is not stored in clear");
    }
}

#[test]
fn ed25519_keys_agree_with_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let info = keys.generate(&name("deploy"), &KeySpec::default()).unwrap();
    assert_eq!(info.current.algorithm, SshAlgorithm::Ed25519);
    assert!(info.current.fingerprint.starts_with("SHA256:"));
    assert!(info.current.public_key.ends_with(" orbitlab:deploy"));
    assert!(!info.current.encrypted);
    check_with_ssh_keygen(&keys, &name("deploy"), out.path(), None, "256", "(ED25519)");
}

#[test]
fn passphrase_protected_keys_agree_with_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let spec = KeySpec {
        comment: Some("ops@orbitlab".into()),
        passphrase: Some(SecretValue::new(b"s3cret pass phrase".to_vec()).unwrap()),
        ..KeySpec::default()
    };
    let info = keys.generate(&name("ops"), &spec).unwrap();
    assert!(info.current.encrypted);
    assert!(info.current.public_key.ends_with(" ops@orbitlab"));
    check_with_ssh_keygen(
        &keys,
        &name("ops"),
        out.path(),
        Some("s3cret pass phrase"),
        "256",
        "(ED25519)",
    );
}

#[test]
fn rsa_4096_keys_agree_with_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let spec = KeySpec {
        algorithm: SshAlgorithm::Rsa4096,
        passphrase: Some(SecretValue::new(b"rsa-pass".to_vec()).unwrap()),
        ..KeySpec::default()
    };
    let info = keys.generate(&name("legacy"), &spec).unwrap();
    assert!(info.current.public_key.starts_with("ssh-rsa "));
    check_with_ssh_keygen(
        &keys,
        &name("legacy"),
        out.path(),
        Some("rsa-pass"),
        "4096",
        "(RSA)",
    );
}

#[test]
fn rotation_keeps_the_previous_key_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let deploy = name("deploy");
    let first = keys.generate(&deploy, &KeySpec::default()).unwrap();
    let rotated = keys.rotate(&deploy, &KeySpec::default()).unwrap();
    assert_ne!(rotated.current.fingerprint, first.current.fingerprint);
    assert_eq!(rotated.previous.as_ref(), Some(&first.current));
    assert_eq!(rotated.current.vault_version.get(), 2);
    let authorized = keys.authorized_keys(std::slice::from_ref(&deploy)).unwrap();
    assert_eq!(
        authorized,
        format!(
            "{}\n{}\n",
            rotated.current.public_key, first.current.public_key
        )
    );
    // ssh-keygen reads the authorized_keys content we hand out.
    let file = out.path().join("authorized_keys");
    std::fs::write(&file, &authorized).unwrap();
    let (ok, text) = ssh_keygen(&["-l", "-f", file.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&first.current.fingerprint) && text.contains(&rotated.current.fingerprint)
    );
    // The exported private key is the new one.
    check_with_ssh_keygen(&keys, &deploy, out.path(), None, "256", "(ED25519)");

    let err = keys.rotate(&deploy, &KeySpec::default()).unwrap_err();
    assert!(matches!(err, SshError::PreviousKept { .. }), "{err}");
    assert!(
        err.to_string().contains(&first.current.fingerprint),
        "{err}"
    );
    assert_eq!(
        keys.show(&deploy).unwrap(),
        rotated,
        "a refused rotation changed nothing"
    );

    let dropped = keys.drop_previous(&deploy).unwrap();
    assert_eq!(dropped.previous, None);
    assert_eq!(
        keys.authorized_keys(std::slice::from_ref(&deploy)).unwrap(),
        format!("{}\n", rotated.current.public_key)
    );
    assert!(matches!(
        keys.drop_previous(&deploy),
        Err(SshError::NoPrevious { .. })
    ));
    // Rotation to RSA works once the previous key is gone... (ed25519 here to keep the test fast)
    let third = keys.rotate(&deploy, &KeySpec::default()).unwrap();
    assert_eq!(third.current.vault_version.get(), 3);

    keys.delete(&deploy).unwrap();
    assert!(matches!(keys.show(&deploy), Err(SshError::NotFound { .. })));
    let vault = Vault::new(Store::open(dir.path()));
    assert!(
        !vault.exists(&secret_path(&deploy)).unwrap(),
        "the private keys are gone"
    );
}

#[test]
fn refusals_name_the_key_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    let k = name("k");
    keys.generate(&k, &KeySpec::default()).unwrap();
    let err = keys.generate(&k, &KeySpec::default()).unwrap_err();
    assert!(matches!(err, SshError::Exists { .. }), "{err}");
    let bad_comment = KeySpec {
        comment: Some("evil\ncommand=\"rm -rf /\"".into()),
        ..KeySpec::default()
    };
    let err = keys.generate(&name("other"), &bad_comment).unwrap_err();
    assert!(err.to_string().contains("invalid SSH key comment"), "{err}");
    for bad in ["", "Upper", "../k", "a/b", "a\nb", "-x"] {
        assert!(bad.parse::<KeyName>().is_err(), "{bad:?}");
    }
    assert!(matches!(
        keys.show(&name("missing")),
        Err(SshError::NotFound { .. })
    ));
    assert_eq!(keys.list().unwrap().len(), 1);

    // The vault version the record names must hold the key it names.
    keys.rotate(&k, &KeySpec::default()).unwrap();
    let record = dir.path().join("orbitlab/ssh/k.json");
    let text = std::fs::read_to_string(&record).unwrap();
    let swapped = text.replacen("\"vault_version\": 2", "\"vault_version\": 1", 1);
    assert_ne!(text, swapped);
    std::fs::write(&record, swapped).unwrap();
    let err = keys.private_key(&k).unwrap_err();
    assert!(matches!(err, SshError::Mismatch { .. }), "{err}");
    std::fs::write(&record, b"{ broken").unwrap();
    let err = keys.show(&k).unwrap_err();
    assert!(matches!(err, SshError::Damaged { .. }), "{err}");
    assert!(
        err.to_string().contains(&record.display().to_string()),
        "{err}"
    );
}
