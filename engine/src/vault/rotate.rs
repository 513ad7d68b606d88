//! KEK rotation: add a fresh key-encryption key, re-wrap every data key of
//! every version with it, re-MAC every secret's history with it, then drop
//! the KEKs nothing uses any more.
//!
//! Runs under the vault lock. Values are never decrypted: only the 32-byte
//! data keys are unwrapped and wrapped again, so every ciphertext and nonce
//! stays byte-for-byte the same (and so does every version digest). Order
//! of writes: keyring with the new KEK first, then each secret's record and
//! head (next generation, MAC'd under the new KEK), then the keyring
//! without retired KEKs — a crash at any point leaves every version
//! readable, since no KEK goes before every file using it is rewritten. A
//! secret that cannot be rotated (undecodable, failing its history check,
//! a wrap that fails its check) is reported and left as it was, and the
//! KEKs it may need are kept: a rotation never launders a tampered history
//! into one that passes. Leftovers of an unfinished creation or deletion
//! are removed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::crypto;
use super::history::{self, State};
use super::ids::{SecretPath, Timestamp};
use super::keyring::{KekId, Keyring};
use super::record::{Head, Sealed, SecretRecord};
use super::{
    SecretFiles, Vault, VaultError, file_path, heads_dir, keks_of, keyring_path, secrets_dir,
};
use crate::store::{LockGuard, StorePath};

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// The new active KEK.
    pub new_kek: KekId,
    /// Secret files rewritten.
    pub secrets_rewrapped: usize,
    /// Data keys re-wrapped (one per version).
    pub versions_rewrapped: usize,
    /// KEKs removed from the keyring because nothing uses them now.
    pub retired: Vec<KekId>,
    /// Files left untouched because they could not be re-wrapped.
    pub failed: Vec<RotationFailure>,
}

/// A secret file the rotation could not re-wrap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotationFailure {
    /// The file.
    pub file: PathBuf,
    /// Why (never contains secret data).
    pub reason: String,
}

pub(super) fn rotate(vault: &Vault, guard: &LockGuard) -> Result<RotationReport, VaultError> {
    let mut keyring = match vault.load_keyring()? {
        Some(keyring) => keyring,
        None if vault.any_secret_file()? => return Err(vault.keyring_missing()),
        None => Keyring::generate(Timestamp::now()),
    };
    let new_kek = keyring.add_active(Timestamp::now());
    vault.write(guard, &keyring_path(), &keyring.to_bytes())?;
    tracing::info!(kek = %new_kek, "vault KEK rotation started");

    let mut report = RotationReport {
        new_kek: new_kek.clone(),
        secrets_rewrapped: 0,
        versions_rewrapped: 0,
        retired: Vec::new(),
        failed: Vec::new(),
    };
    let mut in_use: BTreeSet<String> = BTreeSet::new();
    let mut keep_all = false;
    // Shard/name of every record file, decodable or not.
    let mut with_record = BTreeSet::new();
    for (file, bytes) in vault.files_in(&secrets_dir())? {
        with_record.insert(shard_and_name(&file, &secrets_dir()).to_owned());
        let abs = vault.store.absolute(&file);
        let record = match SecretRecord::decode(&bytes) {
            Ok(record) => record,
            Err(reason) => {
                // Unknown KEKs: keep them all.
                keep_all = true;
                report.failed.push(RotationFailure { file: abs, reason });
                continue;
            }
        };
        // Until this secret is rewritten, everything it names stays.
        let mut needs = keks_of(&record);
        needs.insert(record.mac.kek.clone());
        let path = match record.path.parse::<SecretPath>() {
            Ok(path) if file_path(&path) == file => path,
            _ => {
                in_use.extend(needs);
                report.failed.push(RotationFailure {
                    file: abs,
                    reason:
                        "it is not where the secret it names belongs (misplaced or invalid path)"
                            .into(),
                });
                continue;
            }
        };
        let files = SecretFiles::of(&path);
        match rotate_one(vault, guard, &path, &files, record, &keyring) {
            Ok(Some(n)) => {
                if n > 0 {
                    report.secrets_rewrapped += 1;
                    report.versions_rewrapped += n;
                }
                in_use.insert(new_kek.as_str().to_owned());
            }
            Ok(None) => {}
            Err(reason) => {
                in_use.extend(needs);
                if let Ok(Some(head)) = vault.load_head(&path, &files) {
                    in_use.insert(head.mac.kek);
                }
                report.failed.push(RotationFailure { file: abs, reason });
            }
        }
    }
    // Heads without a record: leftovers of an unfinished creation or
    // deletion are removed; a head that lists versions is reported.
    for (file, bytes) in vault.files_in(&heads_dir())? {
        if with_record.contains(shard_and_name(&file, &heads_dir())) {
            continue;
        }
        let abs = vault.store.absolute(&file);
        let head = match Head::decode(&bytes) {
            Ok(head) => head,
            Err(reason) => {
                keep_all = true;
                report.failed.push(RotationFailure { file: abs, reason });
                continue;
            }
        };
        let kek = head.mac.kek.clone();
        let outcome = match head.path.parse::<SecretPath>() {
            Ok(path) if SecretFiles::of(&path).head == file => {
                let files = SecretFiles::of(&path);
                history::resolve(&path, &files.names(vault), Some(head), None, &keyring)
                    .map_err(|e| e.to_string())
            }
            _ => Err(
                "it is not where the secret it names belongs (misplaced or invalid path)".into(),
            ),
        };
        match outcome {
            Ok(_) => {
                vault.store.remove(&file)?;
            }
            Err(reason) => {
                in_use.insert(kek);
                report.failed.push(RotationFailure { file: abs, reason });
            }
        }
    }

    report.retired = keyring.retire_unused(|id| keep_all || in_use.contains(id.as_str()));
    if !report.retired.is_empty() {
        vault.write(guard, &keyring_path(), &keyring.to_bytes())?;
    }
    tracing::info!(
        kek = %new_kek,
        secrets = report.secrets_rewrapped,
        retired = report.retired.len(),
        failed = report.failed.len(),
        "vault KEK rotation finished"
    );
    Ok(report)
}

/// `<xx>/<name>.json` of a file under `dir`.
fn shard_and_name<'a>(file: &'a StorePath, dir: &StorePath) -> &'a str {
    let rel = file.relative();
    rel.strip_prefix(dir.relative())
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(rel)
}

/// Rotates one secret whose record decoded: checks its history, re-wraps
/// its data keys, and commits record and head at the next generation under
/// the new KEK. `Some(n)`: `n` data keys re-wrapped; `None`: the files were
/// leftovers of an unfinished creation or deletion, now removed. The error
/// is the reason only (no secret data).
fn rotate_one(
    vault: &Vault,
    guard: &LockGuard,
    path: &SecretPath,
    files: &SecretFiles,
    record: SecretRecord,
    keyring: &Keyring,
) -> Result<Option<usize>, String> {
    let head = vault.load_head(path, files).map_err(|e| e.to_string())?;
    let state = history::resolve(path, &files.names(vault), head, Some(record), keyring)
        .map_err(|e| e.to_string())?;
    let mut record = match state {
        State::Live(record) => record,
        State::Absent => {
            vault
                .store
                .remove(&files.record)
                .map_err(|e| e.to_string())?;
            vault.store.remove(&files.head).map_err(|e| e.to_string())?;
            return Ok(None);
        }
    };
    let n = rewrap(&mut record, keyring)?;
    vault
        .commit(guard, path, files, &mut record, keyring)
        .map_err(|e| e.to_string())?;
    Ok(Some(n))
}

/// Re-wraps every data key of `record` not already under the active KEK.
/// All or nothing: on error `record` is unchanged. Returns how many.
fn rewrap(record: &mut SecretRecord, keyring: &Keyring) -> Result<usize, String> {
    let path: SecretPath = record
        .path
        .parse()
        .map_err(|e| format!("it names an invalid secret path ({e})"))?;
    let (active_id, active) = keyring.active();
    let mut updated = record.versions.clone();
    let mut count = 0;
    for entry in updated.iter_mut().filter(|e| e.kek != active_id.as_str()) {
        let old = keyring.get(&entry.kek).ok_or_else(|| {
            format!(
                "version {} of {path} needs key-encryption key {}, which the keyring does not hold",
                entry.version, entry.kek
            )
        })?;
        let data_key = crypto::unwrap_key(
            old,
            &entry.key.nonce,
            &crypto::wrap_aad(&entry.kek, &path, entry.version),
            &entry.key.ciphertext,
        )
        .map_err(|_| {
            format!(
                "version {} of {path} failed its integrity check",
                entry.version
            )
        })?;
        let (nonce, ciphertext) = crypto::seal(
            active,
            &crypto::wrap_aad(active_id.as_str(), &path, entry.version),
            &data_key[..],
        );
        entry.kek = active_id.as_str().to_owned();
        entry.key = Sealed { nonce, ciphertext };
        count += 1;
    }
    record.versions = updated;
    Ok(count)
}
