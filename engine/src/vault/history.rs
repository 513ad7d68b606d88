//! Which version history of a secret to trust: the rules that join a
//! secret's record (all its versions) and its head (their authenticated
//! summary), see [`super::record`] for both files.
//!
//! **What is authenticated.** A head is MAC'd (HMAC-SHA-256 under a key
//! derived from a KEK, [`crypto::head_mac`]) over the secret path, an
//! incarnation id (random, chosen when the secret is created), a
//! generation (bumped by every write) and every kept version's number,
//! creation time and digest. A record carries the same MAC over the head
//! computed from its own versions, so a record cannot lose, gain or reorder
//! a version without failing its MAC, and cannot be mistaken for a newer
//! one.
//!
//! **Write order** (always under the vault lock, each file replaced by
//! rename): record first, then head, both at the new generation. A new
//! secret first gets an empty head (its *intent*, generation 1), then its
//! record and head (generation 2). A deletion writes an empty head (a
//! *tombstone*, next generation), removes the record, then the head.
//!
//! **Read rule** ([`resolve`], head read before record, so a racing writer
//! can only make the record look newer, never older):
//! - both MACs must verify under KEKs of the keyring;
//! - record newer than the head (same incarnation): the record is the
//!   history. A write that crashed between its record and its head leaves
//!   exactly this; it is neither refused nor lost, and the next write
//!   brings the head up to date. (A head put back from an older copy looks
//!   the same and is harmless: the newer, authenticated record still wins.)
//! - same generation: record and head must list the same versions;
//! - record older than the head, of another incarnation, missing while the
//!   head lists versions, or present while the head is missing: refused
//!   as [`VaultError::Tampered`] — an older copy, a removed file or head;
//! - an empty head (intent or tombstone) with no record, an older record or
//!   another incarnation's record: the secret does not exist (what a crash
//!   in the middle of a creation or deletion leaves; the next write or
//!   rotation overwrites or removes the leftovers).
//!
//! What this cannot see: the record *and* its head put back together from
//! one older backup, which is indistinguishable from restoring that backup.

use std::path::PathBuf;

use rand::RngCore;
use rand::rngs::OsRng;

use super::VaultError;
use super::crypto;
use super::ids::SecretPath;
use super::keyring::Keyring;
use super::record::{Head, HeadMac, INCARNATION_LEN, SecretRecord};

/// A secret as its files say, once they have been checked.
#[derive(Debug)]
pub(crate) enum State {
    /// No secret (possibly leftovers of an unfinished creation or deletion).
    Absent,
    /// The secret: its authoritative record.
    Live(SecretRecord),
}

/// Where a secret's two files are, and the keyring (for messages).
pub(crate) struct Files {
    pub(crate) record: PathBuf,
    pub(crate) head: PathBuf,
    pub(crate) keyring: PathBuf,
}

/// A fresh incarnation id.
pub(crate) fn new_incarnation() -> [u8; INCARNATION_LEN] {
    let mut id = [0u8; INCARNATION_LEN];
    OsRng.fill_bytes(&mut id);
    id
}

/// The MAC of `head`'s contents under the active KEK.
pub(crate) fn seal(keyring: &Keyring, head: &Head) -> HeadMac {
    let (id, kek) = keyring.active();
    HeadMac {
        kek: id.as_str().to_owned(),
        tag: crypto::head_mac(kek, &head.message()),
    }
}

/// Sets `record`'s MAC (under the active KEK) to cover its versions.
pub(crate) fn seal_record(keyring: &Keyring, record: &mut SecretRecord) {
    record.mac = seal(keyring, &record.head());
}

/// Decides what to trust (see the module documentation); checks both MACs.
pub(crate) fn resolve(
    path: &SecretPath,
    files: &Files,
    head: Option<Head>,
    record: Option<SecretRecord>,
    keyring: &Keyring,
) -> Result<State, VaultError> {
    let tampered = |reason: String| VaultError::Tampered {
        path: path.clone(),
        file: files.record.clone(),
        head: files.head.clone(),
        reason,
    };
    let check = |h: &Head, what: &str| -> Result<(), VaultError> {
        let kek = keyring
            .get(&h.mac.kek)
            .ok_or_else(|| VaultError::HistoryKekMissing {
                path: path.clone(),
                kek: h.mac.kek.clone(),
                file: files.keyring.clone(),
            })?;
        crypto::head_mac_verify(kek, &h.message(), &h.mac.tag).map_err(|_| {
            tampered(format!(
                "the {what}'s MAC does not verify, so its version list was changed"
            ))
        })
    };
    let claimed = record.as_ref().map(SecretRecord::head);
    if let Some(claimed) = &claimed {
        check(claimed, "file")?;
    }
    if let Some(head) = &head {
        check(head, "head")?;
    }
    let (head, record, claimed) = match (head, record, claimed) {
        (None, None, _) => return Ok(State::Absent),
        (None, Some(_), Some(claimed)) => {
            return Err(tampered(format!(
                "the file holds versions {} but the head is missing (it was removed)",
                claimed.version_list()
            )));
        }
        (Some(head), None, _) if head.versions.is_empty() => return Ok(State::Absent),
        (Some(head), None, _) => {
            return Err(tampered(format!(
                "the head lists versions {} but the file is missing (it was removed)",
                head.version_list()
            )));
        }
        (Some(head), Some(record), Some(claimed)) => (head, record, claimed),
        (_, Some(_), None) => unreachable!("a record always has a claimed head"),
    };
    let describe = |h: &Head| {
        format!(
            "generation {} with versions {}",
            h.generation,
            h.version_list()
        )
    };
    if record.incarnation != head.incarnation {
        return if head.versions.is_empty() {
            Ok(State::Absent)
        } else {
            Err(tampered(
                "the file belongs to an earlier incarnation of this secret (one deleted since): it was put back from an older copy".into(),
            ))
        };
    }
    if record.generation > head.generation {
        return Ok(State::Live(record));
    }
    if record.generation == head.generation {
        return if claimed.versions == head.versions {
            Ok(State::Live(record))
        } else {
            Err(tampered(format!(
                "the file ({}) and the head ({}) disagree",
                describe(&claimed),
                describe(&head)
            )))
        };
    }
    if head.versions.is_empty() {
        // A deletion's tombstone over the record it was removing.
        return Ok(State::Absent);
    }
    Err(tampered(format!(
        "the file is at {}, the head at {}: the file is an older copy",
        describe(&claimed),
        describe(&head)
    )))
}

#[cfg(test)]
mod tests {
    use super::super::{SecretFiles, SecretValue, Vault};
    use super::*;
    use crate::store::Store;

    fn p(s: &str) -> SecretPath {
        s.parse().unwrap()
    }

    fn v(s: &str) -> SecretValue {
        SecretValue::new(s.as_bytes().to_vec()).unwrap()
    }

    /// The steps of a creation or a deletion cut short at each point leave
    /// a secret that is absent or complete, never one refused, and the
    /// next write (or rotation) finishes the job.
    #[test]
    fn unfinished_creations_and_deletions_converge() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::new(Store::open(dir.path()));
        vault.set(&p("other"), &v("o")).unwrap();
        let keyring = vault.keyring_for_reading().unwrap();
        let (new, files) = (p("app/new"), SecretFiles::of(&p("app/new")));
        let read = |f: &crate::store::StorePath| vault.store.read(f).unwrap();
        let clean = |vault: &Vault| {
            let listing = vault.list(None).unwrap();
            assert!(listing.damaged.is_empty(), "{listing:?}");
            listing.secrets.len()
        };

        // Crash after the intent head: no secret yet.
        let guard = vault.lock().unwrap();
        let mut record = vault.begin_secret(&guard, &new, &files, &keyring).unwrap();
        let intent = read(&files.head).unwrap();
        assert!(matches!(vault.get(&new), Err(VaultError::NotFound { .. })));
        assert_eq!(clean(&vault), 1);

        // Crash after the record, before its head: the record counts.
        vault
            .append(&guard, &new, &files, &mut record, &keyring, &v("one"))
            .unwrap();
        drop(guard);
        vault.store.write(&files.head, &intent).unwrap();
        assert_eq!(vault.get(&new).unwrap().value.expose(), b"one");
        assert_eq!(clean(&vault), 2);
        // The next write brings the head up to date.
        vault.set(&new, &v("two")).unwrap();
        let head = Head::decode(&read(&files.head).unwrap()).unwrap();
        assert_eq!(head.version_list(), "1, 2");

        // Crash after a deletion's tombstone: gone, and a new secret of
        // the same path starts afresh (another incarnation).
        let guard = vault.lock().unwrap();
        let generation = SecretRecord::decode(&read(&files.record).unwrap())
            .unwrap()
            .generation;
        vault
            .write_tombstone(&guard, &files, &head, generation, &keyring)
            .unwrap();
        drop(guard);
        assert!(matches!(vault.get(&new), Err(VaultError::NotFound { .. })));
        assert!(matches!(
            vault.versions(&new),
            Err(VaultError::NotFound { .. })
        ));
        assert_eq!(clean(&vault), 1);
        let tombstone = read(&files.head).unwrap();
        let old_record = read(&files.record).unwrap();
        assert_eq!(vault.set(&new, &v("again")).unwrap().version.get(), 1);
        let again = Head::decode(&read(&files.head).unwrap()).unwrap();
        assert_ne!(again.incarnation, head.incarnation);
        // ...whose files are never taken for the deleted one's.
        vault.store.write(&files.record, &old_record).unwrap();
        assert!(matches!(vault.get(&new), Err(VaultError::Tampered { .. })));
        assert!(vault.delete(&new).is_ok());

        // A rotation clears such leftovers and keeps the rest readable.
        vault.store.write(&files.head, &tombstone).unwrap();
        vault.store.write(&files.record, &old_record).unwrap();
        let report = vault.rotate_kek().unwrap();
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(read(&files.head), None);
        assert_eq!(read(&files.record), None);
        assert_eq!(vault.get(&p("other")).unwrap().value.expose(), b"o");
        assert_eq!(report.retired.len(), 1, "nothing needs the old KEK now");
    }
}
