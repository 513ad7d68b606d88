//! The vault: encrypted, versioned secrets kept in the cluster filesystem.
//!
//! **Envelope encryption.** Every version of every secret gets its own
//! random 256-bit data key; the value is sealed with AES-256-GCM under it
//! (random 96-bit nonce), with the secret path, version and creation time as
//! associated data. The data key is wrapped (AES-256-GCM again) by the
//! active key-encryption key (KEK), with the KEK id, path and version as
//! associated data. A key per *version* (rather than per secret) means a key
//! never encrypts two values, so nonce reuse is impossible however many
//! versions a secret collects, and dropping a version destroys the only
//! thing its key ever protected; the cost is one 60-byte wrap per version.
//!
//! **Files** (root-only area, 0600, see [`crate::store`]):
//! - `priv/orbitlab/vault/keyring.json`: the KEKs ([`keyring`]);
//! - `priv/orbitlab/vault/secrets/<xx>/<hash>.json`: one record per secret
//!   holding all its versions ([`record`]), capped at
//!   [`MAX_SECRET_FILE_BYTES`]; values are capped at [`MAX_VALUE_BYTES`];
//! - `priv/orbitlab/vault/heads/<xx>/<hash>.json`: one head per secret, the
//!   authenticated summary of its version history ([`history`]).
//!
//! **Reads** authenticate the whole record: every version's wrapped key and
//! sealed value must verify, so one changed byte anywhere makes the secret
//! refuse to open (other secrets are untouched). The history as a whole is
//! authenticated too: the record's MAC covers its version list, and its
//! head, a second file MAC'd the same way with a generation every write
//! bumps, catches a record cut short, stripped of its newest versions or
//! replaced by an older copy, and a removed head ([`VaultError::Tampered`];
//! the rules, and why a crash between the two writes is not mistaken for
//! tampering, are in [`history`]). **Writes** (set, rollback, delete, prune,
//! KEK rotation) run under the cluster lock [`Lock::Vault`],
//! re-reading both files inside the lock, so two writers on two nodes never
//! lose a version; each writes the record, then the head. Rollback appends
//! a new version equal to an old one; nothing but `prune` and `delete`
//! removes versions, and nothing else can without being noticed.
//!
//! **Migration.** Records of format 1 (from pre-release builds: no
//! incarnation, generation, MAC or head) are refused with a
//! [`VaultError::Damaged`] that says so; there is no automatic upgrade. An
//! upgrade that trusted such a file would also trust an older copy of it put
//! back after the upgrade, which is exactly the rollback the heads exist to
//! catch, and no OrbitLab release ever wrote format 1: read values with the
//! build that wrote them, then delete and set them again.
//!
//! Plaintext and keys live in zeroizing buffers; `Debug` of every type that
//! carries them is redacted; errors never include them.

mod crypto;
mod error;
mod history;
mod ids;
mod keyring;
mod record;
mod rotate;
pub mod seal;
mod value;

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::Serialize;

pub use error::VaultError;
pub use ids::{InvalidName, MAX_PATH_DEPTH, MAX_PATH_LEN, SecretPath, Timestamp, Version};
pub use keyring::{KekId, KekInfo};
pub use rotate::{RotationFailure, RotationReport};
pub use value::{MAX_VALUE_BYTES, SecretValue, ValueError};

use crate::store::layout::{self, Lock};
use crate::store::{LockGuard, Store, StorePath};
use history::{Files, State};
use keyring::{Keyring, KeyringProblem};
use record::{Head, HeadMac, Header, Sealed, SecretRecord, VersionEntry};

/// Largest secret file the vault writes (768 KiB): a quarter below the
/// 1 MiB pmxcfs limit. With values at their 64 KiB cap that is 8 versions;
/// with typical values of a few hundred bytes, thousands.
pub const MAX_SECRET_FILE_BYTES: usize = 768 * 1024;

/// A decrypted version of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// Which secret.
    pub path: SecretPath,
    /// Which version.
    pub version: Version,
    /// When that version was written.
    pub created: Timestamp,
    /// The plaintext (redacted in `Debug`).
    pub value: SecretValue,
}

/// Public facts about one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// The version number.
    pub version: Version,
    /// When it was written.
    pub created: Timestamp,
    /// Id of the KEK its data key is wrapped with.
    pub kek: String,
}

/// One line of `orbitlab secret list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretListing {
    /// The secret.
    pub path: SecretPath,
    /// Its newest version.
    pub latest: Version,
    /// How many versions are kept.
    pub versions: usize,
    /// When the newest version was written.
    pub updated: Timestamp,
}

/// Result of [`Vault::list`]. Listing checks every secret's version history
/// (records and heads, their MACs) without decrypting values; `damaged`
/// names the files of secrets that cannot be listed: undecodable,
/// misplaced, or failing the history check (open them by path to see why).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// Secrets, sorted by path.
    pub secrets: Vec<SecretListing>,
    /// Files that could not be listed (open them by path to see why).
    pub damaged: Vec<PathBuf>,
}

/// Result of [`Vault::rollback`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollback {
    /// The secret.
    pub path: SecretPath,
    /// The old version whose value was copied.
    pub from: Version,
    /// The new version, equal in value to `from`.
    pub written: VersionInfo,
}

/// What `orbitlab vault status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultStatus {
    /// The keyring file.
    pub keyring_file: PathBuf,
    /// Its KEKs (ids, ages; never the keys). Empty before the first write.
    pub keys: Vec<KekInfo>,
    /// Number of secret files.
    pub secrets: usize,
    /// Whether the keyring is sealed, as this process sees it.
    pub seal: SealState,
}

/// What `orbitlab vault seal` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealReport {
    /// The vault afterwards.
    pub status: VaultStatus,
    /// The KEK rotation that followed (a file it could not re-wrap keeps
    /// its old KEK, which then stays in the keyring, wrapped).
    pub rotation: RotationReport,
}

/// Whether the vault is sealed, as one process sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealState {
    /// The keyring holds its keys in the clear (the default).
    Plain,
    /// Its keys are wrapped by a passphrase this process was not given.
    Sealed,
    /// Its keys are wrapped, and this process holds the unseal key.
    Unsealed,
}

impl SealState {
    /// `plain`, `sealed` or `unsealed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SealState::Plain => "plain",
            SealState::Sealed => "sealed",
            SealState::Unsealed => "unsealed",
        }
    }
}

/// Handle on the vault of one store (cheap to clone).
#[derive(Debug, Clone)]
pub struct Vault {
    store: Store,
}

impl Vault {
    /// The vault kept in `store`.
    pub fn new(store: Store) -> Vault {
        Vault { store }
    }

    /// The store this vault lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes `value` as the next version of `path` (version 1 for a new
    /// secret). Creates the keyring on the very first write of an empty
    /// vault; refuses to when secrets exist without one. Writes the record,
    /// then the head (a new secret: an empty head first, see [`history`]).
    pub fn set(&self, path: &SecretPath, value: &SecretValue) -> Result<VersionInfo, VaultError> {
        let guard = self.lock()?;
        let keyring = self.keyring_for_writing(&guard)?;
        let files = SecretFiles::of(path);
        let (state, _) = self.current(path, &files, &keyring, |_| None)?;
        let mut record = match state {
            State::Live(record) => record,
            State::Absent => self.begin_secret(&guard, path, &files, &keyring)?,
        };
        let info = self.append(&guard, path, &files, &mut record, &keyring, value)?;
        tracing::info!(secret = %path, version = %info.version, "secret version written");
        drop(guard);
        self.tell_agents();
        Ok(info)
    }

    /// Bumps the store's change counter after a new version, so that the
    /// agents delivering the secret into instances notice at their next
    /// poll rather than at their next full resync. The version is written
    /// either way: a failure here only delays delivery, and is logged.
    fn tell_agents(&self) {
        if let Err(e) = self.store.bump_generation() {
            tracing::warn!(error = %e, "cannot bump the change counter; agents deliver the new version at their next resync");
        }
    }

    /// The newest version of `path`.
    pub fn get(&self, path: &SecretPath) -> Result<Secret, VaultError> {
        self.read(path, None)
    }

    /// Version `version` of `path`.
    pub fn get_version(&self, path: &SecretPath, version: Version) -> Result<Secret, VaultError> {
        self.read(path, Some(version))
    }

    /// Every kept version of `path`, oldest first (all authenticated, and
    /// the list itself checked against the head).
    pub fn versions(&self, path: &SecretPath) -> Result<Vec<VersionInfo>, VaultError> {
        let (record, _) = self.open_unlocked(path, |_| None)?;
        Ok(record.versions.iter().map(info_of).collect())
    }

    /// True when `path` has a record file (not authenticated: a leftover of
    /// an unfinished deletion counts too; [`Vault::get`] decides).
    pub fn exists(&self, path: &SecretPath) -> Result<bool, VaultError> {
        Ok(self.store.read(&file_path(path))?.is_some())
    }

    /// Secrets at or below `prefix` (all when `None`), sorted by path.
    /// Checks every listed secret's history (both MACs, generations), so
    /// it needs the keyring once any secret exists; values are not
    /// decrypted.
    pub fn list(&self, prefix: Option<&SecretPath>) -> Result<Listing, VaultError> {
        let mut listing = Listing::default();
        let mut keyring = None;
        let mut shards: BTreeSet<String> = self.store.list(&secrets_dir())?.into_iter().collect();
        shards.extend(self.store.list(&heads_dir())?);
        for shard in shards {
            let dir = secrets_dir().join(&shard)?;
            let records = self.store.read_dir(&dir)?;
            let mut seen = BTreeSet::new();
            for (name, bytes) in records {
                let file = dir.join(&name)?;
                seen.insert(name);
                let decoded = SecretRecord::decode(&bytes).ok().and_then(|r| {
                    let path: SecretPath = r.path.parse().ok()?;
                    (file_path(&path) == file).then_some((path, r))
                });
                let Some((path, record)) = decoded else {
                    listing.damaged.push(self.store.absolute(&file));
                    continue;
                };
                if prefix.is_some_and(|p| !path.starts_with(p)) {
                    continue;
                }
                let ring = match &keyring {
                    Some(k) => k,
                    None => keyring.insert(self.keyring_for_reading()?),
                };
                let files = SecretFiles::of(&path);
                let mut reread = None;
                let head = self.load_head(&path, &files);
                let state = head.and_then(|head| {
                    history::resolve(&path, &files.names(self), head, Some(record), ring)
                });
                let state = match state {
                    // Maybe a writer raced the two reads, or a KEK rotation
                    // began meanwhile: again, head first, with the keyring
                    // read anew (it is kept for the rest of the listing).
                    Err(_) => {
                        let fresh = self.keyring_for_reading()?;
                        let state = self.load(&path, &files).and_then(|(head, record)| {
                            history::resolve(&path, &files.names(self), head, record, &fresh)
                        });
                        reread = Some(fresh);
                        state
                    }
                    ok => ok,
                };
                if let Some(fresh) = reread.take() {
                    keyring = Some(fresh);
                }
                match state {
                    Ok(State::Live(record)) => listing.secrets.push(listing_of(path, &record)),
                    Ok(State::Absent) => {}
                    Err(_) => listing.damaged.push(self.store.absolute(&file)),
                }
            }
            // Heads whose record is gone: an unfinished creation or
            // deletion (not listed), or a removed record (damaged).
            let head_dir = heads_dir().join(&shard)?;
            for name in self.store.list(&head_dir)? {
                if seen.contains(&name) {
                    continue;
                }
                let file = head_dir.join(&name)?;
                let Some(bytes) = self.store.read(&file)? else {
                    continue;
                };
                let decoded = Head::decode(&bytes).ok().and_then(|h| {
                    let path: SecretPath = h.path.parse().ok()?;
                    (SecretFiles::of(&path).head == file).then_some((path, h))
                });
                let Some((path, head)) = decoded else {
                    listing.damaged.push(self.store.absolute(&file));
                    continue;
                };
                if prefix.is_some_and(|p| !path.starts_with(p)) || head.versions.is_empty() {
                    continue;
                }
                // Maybe its record was created after the directory was read.
                let keyring = match &keyring {
                    Some(k) => k,
                    None => keyring.insert(self.keyring_for_reading()?),
                };
                let files = SecretFiles::of(&path);
                let state = self.load(&path, &files).and_then(|(head, record)| {
                    history::resolve(&path, &files.names(self), head, record, keyring)
                });
                match state {
                    Ok(State::Live(record)) => listing.secrets.push(listing_of(path, &record)),
                    Ok(State::Absent) => {}
                    Err(_) => listing.damaged.push(self.store.absolute(&file)),
                }
            }
        }
        listing.secrets.sort_by(|a, b| a.path.cmp(&b.path));
        listing.damaged.sort();
        Ok(listing)
    }

    /// Writes a new version whose value equals version `to`; every existing
    /// version stays.
    pub fn rollback(&self, path: &SecretPath, to: Version) -> Result<Rollback, VaultError> {
        let guard = self.lock()?;
        let keyring = self.keyring_for_writing(&guard)?;
        let files = SecretFiles::of(path);
        let (state, old) = self.current(path, &files, &keyring, |_| Some(to))?;
        let State::Live(mut record) = state else {
            return Err(not_found(path));
        };
        let old = old.ok_or_else(|| version_not_found(path, to, &record))?;
        let written = self.append(&guard, path, &files, &mut record, &keyring, &old)?;
        tracing::info!(secret = %path, from = %to, version = %written.version, "secret rolled back");
        drop(guard);
        self.tell_agents();
        Ok(Rollback {
            path: path.clone(),
            from: to,
            written,
        })
    }

    /// Removes `path` and all its versions. Works on damaged or tampered
    /// files too (so they can be cleared), but refuses a file that holds
    /// another secret. When the head can be read, it is first replaced by a
    /// tombstone (an empty head), then the record and the head are removed,
    /// so a crash part-way leaves a secret that does not exist rather than
    /// one that fails its check.
    pub fn delete(&self, path: &SecretPath) -> Result<usize, VaultError> {
        let guard = self.lock()?;
        let files = SecretFiles::of(path);
        let head_bytes = self.store.read(&files.head)?;
        let record_bytes = self.store.read(&files.record)?;
        if head_bytes.is_none() && record_bytes.is_none() {
            return Err(not_found(path));
        }
        let header = record_bytes.as_deref().and_then(Header::decode);
        let head = head_bytes.as_deref().and_then(|b| Head::decode(b).ok());
        for (found, file) in [
            (header.as_ref().map(|h| &h.path), &files.record),
            (head.as_ref().map(|h| &h.path), &files.head),
        ] {
            if let Some(found) = found
                && found != path.as_str()
            {
                return Err(VaultError::Misplaced {
                    path: path.clone(),
                    file: self.store.absolute(file),
                    found: found.clone(),
                });
            }
        }
        let count = match (&header, &head) {
            (Some(h), _) => h.versions.len(),
            (None, Some(h)) => h.versions.len(),
            (None, None) => 0,
        };
        if let (Some(head), Some(keyring)) = (&head, self.load_keyring().ok().flatten())
            && let Some(bytes) = &record_bytes
        {
            let record_generation = SecretRecord::decode(bytes).map_or(0, |r| r.generation);
            self.write_tombstone(&guard, &files, head, record_generation, &keyring)?;
        }
        self.store.remove(&files.record)?;
        self.store.remove(&files.head)?;
        tracing::info!(secret = %path, "secret deleted");
        Ok(count)
    }

    /// Drops all but the newest `keep` versions of `path` (the only way,
    /// besides `delete`, that versions are destroyed). Returns the versions
    /// dropped, oldest first. Only the kept versions need to decrypt, so an
    /// old version whose wrapped key is damaged or needs a lost KEK can be
    /// dropped; the history itself must pass its check.
    pub fn prune(&self, path: &SecretPath, keep: NonZeroUsize) -> Result<Vec<Version>, VaultError> {
        let guard = self.lock()?;
        let files = SecretFiles::of(path);
        let (head, record) = self.load(path, &files)?;
        if head.is_none() && record.is_none() {
            return Err(not_found(path));
        }
        let keyring = self.keyring_for_reading()?;
        let excess = record
            .as_ref()
            .map_or(0, |r| r.versions.len().saturating_sub(keep.get()));
        if let Some(record) = &record {
            self.verify(path, &files.record, record, &keyring, excess, None)?;
        }
        let state = history::resolve(path, &files.names(self), head, record, &keyring)?;
        let State::Live(mut record) = state else {
            return Err(not_found(path));
        };
        let dropped: Vec<Version> = record.versions.drain(..excess).map(|v| v.version).collect();
        if !dropped.is_empty() {
            self.commit(&guard, path, &files, &mut record, &keyring)?;
            tracing::info!(secret = %path, dropped = dropped.len(), "old secret versions pruned");
        }
        Ok(dropped)
    }

    /// Adds a fresh KEK, re-wraps every data key with it (ciphertexts and
    /// plaintext untouched), re-MACs every history with it, and drops the
    /// KEKs nothing uses any more.
    pub fn rotate_kek(&self) -> Result<RotationReport, VaultError> {
        let guard = self.lock()?;
        rotate::rotate(self, &guard)
    }

    /// The keyring's KEKs (never the keys) and the number of secrets.
    pub fn status(&self) -> Result<VaultStatus, VaultError> {
        let (keys, seal) = match self.load_keyring() {
            Ok(Some(k)) if k.is_sealed() => (k.info(), SealState::Unsealed),
            Ok(Some(k)) => (k.info(), SealState::Plain),
            Ok(None) => (Vec::new(), SealState::Plain),
            Err(VaultError::Sealed { .. }) => (Vec::new(), SealState::Sealed),
            Err(e) => return Err(e),
        };
        let mut secrets = 0;
        for shard in self.store.list(&secrets_dir())? {
            secrets += self.store.list(&secrets_dir().join(&shard)?)?.len();
        }
        Ok(VaultStatus {
            keyring_file: self.store.absolute(&keyring_path()),
            keys,
            secrets,
            seal,
        })
    }

    // ---- internals ------------------------------------------------------

    fn lock(&self) -> Result<LockGuard, VaultError> {
        Ok(self.store.lock(Lock::Vault.name())?)
    }

    /// Writes a file under `guard`, refusing if the lock was lost.
    fn write(&self, guard: &LockGuard, file: &StorePath, bytes: &[u8]) -> Result<(), VaultError> {
        if !guard.is_held() {
            return Err(VaultError::LockLost {
                lock: guard.path().to_owned(),
                file: self.store.absolute(file),
            });
        }
        Ok(self.store.write(file, bytes)?)
    }

    fn read(&self, path: &SecretPath, want: Option<Version>) -> Result<Secret, VaultError> {
        let (record, value) =
            self.open_unlocked(path, |r| Some(want.unwrap_or(r.latest().version)))?;
        let version = want.unwrap_or(record.latest().version);
        let value = value.ok_or_else(|| version_not_found(path, version, &record))?;
        let entry = record
            .versions
            .iter()
            .find(|v| v.version == version)
            .expect("verify found it");
        Ok(Secret {
            path: path.clone(),
            version,
            created: entry.created,
            value,
        })
    }

    /// Reads, decodes and checks `path` without the lock; returns the
    /// authoritative record and the plaintext of the version `want` picks
    /// (`None` when the record has no such version). A read races writers
    /// on other nodes (head, record and keyring are three reads), so a
    /// missing KEK or a failed history check is retried (a few times) with
    /// everything read afresh; real damage fails every time.
    fn open_unlocked(
        &self,
        path: &SecretPath,
        want: impl Fn(&SecretRecord) -> Option<Version>,
    ) -> Result<(SecretRecord, Option<SecretValue>), VaultError> {
        let files = SecretFiles::of(path);
        let mut retries = 3;
        loop {
            let (head, record) = self.load(path, &files)?;
            if head.is_none() && record.is_none() {
                return Err(not_found(path));
            }
            let keyring = self.keyring_for_reading()?;
            match self.check(path, &files, head, record, &keyring, &want) {
                Err(
                    VaultError::KekMissing { .. }
                    | VaultError::HistoryKekMissing { .. }
                    | VaultError::Tampered { .. },
                ) if retries > 0 => retries -= 1,
                Err(e) => return Err(e),
                Ok((State::Absent, _)) => return Err(not_found(path)),
                Ok((State::Live(record), value)) => return Ok((record, value)),
            }
        }
    }

    /// [`Vault::load`] and [`Vault::check`] in one, for writers (under the
    /// lock, so no retry).
    fn current(
        &self,
        path: &SecretPath,
        files: &SecretFiles,
        keyring: &Keyring,
        want: impl Fn(&SecretRecord) -> Option<Version>,
    ) -> Result<(State, Option<SecretValue>), VaultError> {
        let (head, record) = self.load(path, files)?;
        self.check(path, files, head, record, keyring, want)
    }

    /// Authenticates every version of the record (AEAD), then its history
    /// ([`history::resolve`]); returns what to trust and the plaintext of
    /// the version `want` picks. Nothing is returned unless every check
    /// passed.
    fn check(
        &self,
        path: &SecretPath,
        files: &SecretFiles,
        head: Option<Head>,
        record: Option<SecretRecord>,
        keyring: &Keyring,
        want: impl Fn(&SecretRecord) -> Option<Version>,
    ) -> Result<(State, Option<SecretValue>), VaultError> {
        let value = match &record {
            Some(record) => self.verify(path, &files.record, record, keyring, 0, want(record))?,
            None => None,
        };
        let state = history::resolve(path, &files.names(self), head, record, keyring)?;
        Ok((state, value))
    }

    /// Reads and decodes both files of `path`, head first (see
    /// [`history`]); `None` for a file that is absent.
    fn load(
        &self,
        path: &SecretPath,
        files: &SecretFiles,
    ) -> Result<(Option<Head>, Option<SecretRecord>), VaultError> {
        let head = self.load_head(path, files)?;
        Ok((head, self.load_record(path, &files.record)?))
    }

    /// Reads and decodes the head of `path`; `None` when absent.
    fn load_head(
        &self,
        path: &SecretPath,
        files: &SecretFiles,
    ) -> Result<Option<Head>, VaultError> {
        let Some(bytes) = self.store.read(&files.head)? else {
            return Ok(None);
        };
        let head = Head::decode(&bytes).map_err(|reason| VaultError::Damaged {
            path: path.clone(),
            file: self.store.absolute(&files.head),
            reason,
        })?;
        if head.path != path.as_str() {
            return Err(VaultError::Misplaced {
                path: path.clone(),
                file: self.store.absolute(&files.head),
                found: head.path,
            });
        }
        Ok(Some(head))
    }

    /// Reads and decodes the record of `path`; `None` when absent.
    fn load_record(
        &self,
        path: &SecretPath,
        file: &StorePath,
    ) -> Result<Option<SecretRecord>, VaultError> {
        let Some(bytes) = self.store.read(file)? else {
            return Ok(None);
        };
        let record = SecretRecord::decode(&bytes).map_err(|reason| VaultError::Damaged {
            path: path.clone(),
            file: self.store.absolute(file),
            reason,
        })?;
        if record.path != path.as_str() {
            return Err(VaultError::Misplaced {
                path: path.clone(),
                file: self.store.absolute(file),
                found: record.path,
            });
        }
        Ok(Some(record))
    }

    /// Authenticates every version of `record` from index `from` on;
    /// returns the plaintext of `want` (`None` when it is not there).
    fn verify(
        &self,
        path: &SecretPath,
        file: &StorePath,
        record: &SecretRecord,
        keyring: &Keyring,
        from: usize,
        want: Option<Version>,
    ) -> Result<Option<SecretValue>, VaultError> {
        let mut wanted = None;
        for entry in record.versions.iter().skip(from) {
            let kek = keyring
                .get(&entry.kek)
                .ok_or_else(|| VaultError::KekMissing {
                    path: path.clone(),
                    version: entry.version,
                    kek: entry.kek.clone(),
                    file: self.store.absolute(&keyring_path()),
                })?;
            let integrity = || VaultError::Integrity {
                path: path.clone(),
                version: entry.version,
                file: self.store.absolute(file),
            };
            let wrap_aad = crypto::wrap_aad(&entry.kek, path, entry.version);
            let data_key =
                crypto::unwrap_key(kek, &entry.key.nonce, &wrap_aad, &entry.key.ciphertext)
                    .map_err(|_| integrity())?;
            let data_aad = crypto::data_aad(path, entry.version, entry.created);
            let plain = crypto::open(
                &data_key,
                &entry.data.nonce,
                &data_aad,
                &entry.data.ciphertext,
            )
            .map_err(|_| integrity())?;
            if Some(entry.version) == want {
                wanted = Some(SecretValue::from_decrypted(plain));
            }
        }
        Ok(wanted)
    }

    /// Starts a new secret: a fresh incarnation, announced by an empty head
    /// (generation 1) before any record exists; returns the empty record
    /// the first version is appended to.
    fn begin_secret(
        &self,
        guard: &LockGuard,
        path: &SecretPath,
        files: &SecretFiles,
        keyring: &Keyring,
    ) -> Result<SecretRecord, VaultError> {
        let incarnation = history::new_incarnation();
        let mut intent = Head {
            path: path.as_str().to_owned(),
            incarnation,
            generation: 1,
            versions: Vec::new(),
            mac: unsealed(),
        };
        intent.mac = history::seal(keyring, &intent);
        self.write(guard, &files.head, &intent.encode())?;
        Ok(SecretRecord {
            path: path.as_str().to_owned(),
            incarnation,
            generation: 1,
            versions: Vec::new(),
            mac: unsealed(),
        })
    }

    /// Replaces the head of a secret being deleted by an empty one at a
    /// generation above both files' (see [`history`]).
    fn write_tombstone(
        &self,
        guard: &LockGuard,
        files: &SecretFiles,
        head: &Head,
        record_generation: u64,
        keyring: &Keyring,
    ) -> Result<(), VaultError> {
        let mut tombstone = Head {
            versions: Vec::new(),
            generation: head.generation.max(record_generation) + 1,
            ..head.clone()
        };
        tombstone.mac = history::seal(keyring, &tombstone);
        self.write(guard, &files.head, &tombstone.encode())
    }

    /// Seals `value` as the next version and commits the record.
    fn append(
        &self,
        guard: &LockGuard,
        path: &SecretPath,
        files: &SecretFiles,
        record: &mut SecretRecord,
        keyring: &Keyring,
        value: &SecretValue,
    ) -> Result<VersionInfo, VaultError> {
        let version = record
            .versions
            .last()
            .map_or(Version::FIRST, |v| v.version.next());
        let created = Timestamp::now();
        let data_key = crypto::random_key();
        let (nonce, ciphertext) = crypto::seal(
            &data_key,
            &crypto::data_aad(path, version, created),
            value.expose(),
        );
        let (kek_id, kek) = keyring.active();
        let (key_nonce, wrapped) = crypto::seal(
            kek,
            &crypto::wrap_aad(kek_id.as_str(), path, version),
            &data_key[..],
        );
        record.versions.push(VersionEntry {
            version,
            created,
            kek: kek_id.as_str().to_owned(),
            key: Sealed {
                nonce: key_nonce,
                ciphertext: wrapped,
            },
            data: Sealed { nonce, ciphertext },
        });
        self.commit(guard, path, files, record, keyring)?;
        Ok(info_of(record.latest()))
    }

    /// Writes `record` as the next generation: bumps it, MACs it under the
    /// active KEK, checks the size cap, writes the record, then the head.
    fn commit(
        &self,
        guard: &LockGuard,
        path: &SecretPath,
        files: &SecretFiles,
        record: &mut SecretRecord,
        keyring: &Keyring,
    ) -> Result<(), VaultError> {
        record.generation += 1;
        history::seal_record(keyring, record);
        let bytes = record.encode();
        if bytes.len() > MAX_SECRET_FILE_BYTES {
            return Err(VaultError::FileTooLarge {
                path: path.clone(),
                size: bytes.len(),
                max: MAX_SECRET_FILE_BYTES,
            });
        }
        self.write(guard, &files.record, &bytes)?;
        self.write(guard, &files.head, &record.head().encode())
    }

    /// The keyring, or `None` when its file does not exist.
    fn load_keyring(&self) -> Result<Option<Keyring>, VaultError> {
        let Some(bytes) = self.store.read(&keyring_path())? else {
            return Ok(None);
        };
        let bytes = zeroize::Zeroizing::new(bytes);
        let file = self.store.absolute(&keyring_path());
        Keyring::parse_with(&bytes, seal::held)
            .map(Some)
            .map_err(|problem| match problem {
                KeyringProblem::Sealed => VaultError::Sealed { file },
                // The key this process holds was derived for this salt yet
                // opens nothing: the file was changed under it.
                KeyringProblem::WrongKey => VaultError::KeyringDamaged {
                    file,
                    reason: "its keys do not open with the unseal key this process holds (the keyring was replaced?); unseal again".into(),
                },
                KeyringProblem::Damaged(reason) => VaultError::KeyringDamaged { file, reason },
            })
    }

    /// Whether the keyring is sealed and, if so, whether this process holds
    /// its key: one small read (the agents report it in their heartbeat).
    pub fn seal_state(&self) -> Result<SealState, VaultError> {
        let Some(bytes) = self.store.read(&keyring_path())? else {
            return Ok(SealState::Plain);
        };
        let bytes = zeroize::Zeroizing::new(bytes);
        let params = Keyring::seal_params(&bytes).map_err(|reason| VaultError::KeyringDamaged {
            file: self.store.absolute(&keyring_path()),
            reason,
        })?;
        Ok(match params {
            None => SealState::Plain,
            Some(p) if seal::held(&p).is_some() => SealState::Unsealed,
            Some(_) => SealState::Sealed,
        })
    }

    /// Seals the vault with `passphrase` (or changes its passphrase): the
    /// keyring's KEKs are written wrapped by a key Argon2id derives from it
    /// (`memory_mib` MiB of memory cost), and this process keeps that key.
    /// Then the KEK is rotated (a fresh one, wrapped; every data key
    /// re-wrapped; the old KEKs dropped), so a copy of the keyring from
    /// before (a backup) opens nothing any more. Needs the keyring open here
    /// (plain, or unsealed in this process). Every version stays readable.
    pub fn seal(
        &self,
        passphrase: &SecretValue,
        memory_mib: u32,
    ) -> Result<SealReport, VaultError> {
        let guard = self.lock()?;
        let mut keyring = self.keyring_for_writing(&guard)?;
        let params = seal::SealParams::new(memory_mib);
        let key =
            params
                .derive(passphrase.expose())
                .map_err(|reason| VaultError::KeyringDamaged {
                    file: self.store.absolute(&keyring_path()),
                    reason,
                })?;
        keyring.seal_with(params.clone(), key.clone());
        self.write(&guard, &keyring_path(), &keyring.to_bytes())?;
        seal::remember(&params, &key);
        tracing::info!("vault sealed: its keys are wrapped by the passphrase");
        let rotation = rotate::rotate(self, &guard)?;
        drop(guard);
        Ok(SealReport {
            status: self.status()?,
            rotation,
        })
    }

    /// Unseals the vault in this process: derives the key from
    /// `passphrase` and keeps it in memory if it opens the keyring. A wrong
    /// passphrase is refused ([`VaultError::WrongPassphrase`]); nothing is
    /// written.
    pub fn unseal(&self, passphrase: &SecretValue) -> Result<VaultStatus, VaultError> {
        let file = self.store.absolute(&keyring_path());
        let bytes = zeroize::Zeroizing::new(
            self.store
                .read(&keyring_path())?
                .ok_or_else(|| VaultError::NotSealed { file: file.clone() })?,
        );
        let damaged = |reason| VaultError::KeyringDamaged {
            file: file.clone(),
            reason,
        };
        let params = Keyring::seal_params(&bytes)
            .map_err(damaged)?
            .ok_or_else(|| VaultError::NotSealed { file: file.clone() })?;
        let key = params.derive(passphrase.expose()).map_err(damaged)?;
        match Keyring::parse_with(&bytes, |_| Some(key.clone())) {
            Ok(_) => {}
            Err(KeyringProblem::WrongKey) => return Err(VaultError::WrongPassphrase),
            Err(KeyringProblem::Sealed) => return Err(VaultError::WrongPassphrase),
            Err(KeyringProblem::Damaged(reason)) => return Err(damaged(reason)),
        }
        seal::remember(&params, &key);
        tracing::info!("vault unsealed in this process");
        self.status()
    }

    /// The keyring for reading: a missing one is an error.
    fn keyring_for_reading(&self) -> Result<Keyring, VaultError> {
        self.load_keyring()?.ok_or_else(|| self.keyring_missing())
    }

    /// The keyring for writing (under the lock): created when the vault is
    /// empty, an error when secrets exist without it.
    fn keyring_for_writing(&self, guard: &LockGuard) -> Result<Keyring, VaultError> {
        if let Some(keyring) = self.load_keyring()? {
            return Ok(keyring);
        }
        if self.any_secret_file()? {
            return Err(self.keyring_missing());
        }
        let keyring = Keyring::generate(Timestamp::now());
        self.write(guard, &keyring_path(), &keyring.to_bytes())?;
        tracing::info!(kek = %keyring.active().0, "vault keyring created");
        Ok(keyring)
    }

    fn keyring_missing(&self) -> VaultError {
        VaultError::KeyringMissing {
            file: self.store.absolute(&keyring_path()),
            dir: self.store.absolute(&secrets_dir()),
        }
    }

    fn any_secret_file(&self) -> Result<bool, VaultError> {
        for dir in [secrets_dir(), heads_dir()] {
            for shard in self.store.list(&dir)? {
                if !self.store.list(&dir.join(&shard)?)?.is_empty() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Every file under `dir` (records or heads): (file, bytes), shard by
    /// shard.
    fn files_in(&self, dir: &StorePath) -> Result<Vec<(StorePath, Vec<u8>)>, VaultError> {
        let mut out = Vec::new();
        for shard in self.store.list(dir)? {
            let shard = dir.join(&shard)?;
            for (name, bytes) in self.store.read_dir(&shard)? {
                out.push((shard.join(&name)?, bytes));
            }
        }
        Ok(out)
    }
}

/// The two files of one secret.
pub(crate) struct SecretFiles {
    pub(crate) record: StorePath,
    pub(crate) head: StorePath,
}

impl SecretFiles {
    pub(crate) fn of(path: &SecretPath) -> SecretFiles {
        SecretFiles {
            record: file_path(path),
            head: record::head_for(path),
        }
    }

    /// Their absolute names, and the keyring's, for messages.
    fn names(&self, vault: &Vault) -> Files {
        Files {
            record: vault.store.absolute(&self.record),
            head: vault.store.absolute(&self.head),
            keyring: vault.store.absolute(&keyring_path()),
        }
    }
}

fn info_of(entry: &VersionEntry) -> VersionInfo {
    VersionInfo {
        version: entry.version,
        created: entry.created,
        kek: entry.kek.clone(),
    }
}

fn listing_of(path: SecretPath, record: &SecretRecord) -> SecretListing {
    let last = record.latest();
    SecretListing {
        path,
        latest: last.version,
        versions: record.versions.len(),
        updated: last.created,
    }
}

/// A MAC field to be filled in by [`history::seal`] before anything is
/// written.
fn unsealed() -> HeadMac {
    HeadMac {
        kek: String::new(),
        tag: [0; crypto::MAC_LEN],
    }
}

fn version_not_found(path: &SecretPath, version: Version, record: &SecretRecord) -> VaultError {
    VaultError::VersionNotFound {
        path: path.clone(),
        version,
        available: record.head().version_list(),
    }
}

fn not_found(path: &SecretPath) -> VaultError {
    VaultError::NotFound { path: path.clone() }
}

fn file_path(path: &SecretPath) -> StorePath {
    record::file_for(path)
}

fn keyring_path() -> StorePath {
    layout::vault_keyring()
}

fn secrets_dir() -> StorePath {
    layout::vault_secrets_dir()
}

fn heads_dir() -> StorePath {
    layout::vault_heads_dir()
}

/// KEK ids used by the versions of `record`.
fn keks_of(record: &SecretRecord) -> BTreeSet<String> {
    record.versions.iter().map(|v| v.kek.clone()).collect()
}
