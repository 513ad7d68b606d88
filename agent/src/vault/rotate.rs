//! KEK rotation: add a fresh key-encryption key, re-wrap every data key of
//! every version with it, then drop the KEKs no version uses any more.
//!
//! Runs under the vault lock. Values are never decrypted: only the 32-byte
//! data keys are unwrapped and wrapped again, so every ciphertext and nonce
//! stays byte-for-byte the same. Order of writes: keyring with the new KEK
//! first, then each secret file, then the keyring without retired KEKs — a
//! crash at any point leaves every version readable. A file that cannot be
//! re-wrapped (undecodable, or a wrap that fails its check) is reported and left as it was, and the
//! KEKs it may need are kept.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::crypto;
use super::ids::{SecretPath, Timestamp};
use super::keyring::{KekId, Keyring};
use super::record::{Sealed, SecretRecord};
use super::{Vault, VaultError, keks_of, keyring_path};
use crate::store::LockGuard;

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
    for (file, bytes) in vault.secret_files()? {
        let abs = vault.store.absolute(&file);
        let mut record = match SecretRecord::decode(&bytes) {
            Ok(record) => record,
            Err(reason) => {
                // Unknown KEKs: keep them all.
                keep_all = true;
                report.failed.push(RotationFailure { file: abs, reason });
                continue;
            }
        };
        match rewrap(&mut record, &keyring) {
            Ok(0) => {}
            Ok(n) => {
                vault.write(guard, &file, &record.encode())?;
                report.secrets_rewrapped += 1;
                report.versions_rewrapped += n;
            }
            Err(reason) => report.failed.push(RotationFailure { file: abs, reason }),
        }
        in_use.extend(keks_of(&record));
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
