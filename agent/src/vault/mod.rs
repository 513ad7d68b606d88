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
//! - `priv/orbitlab/vault/secrets/<xx>/<hash>.json`: one file per secret
//!   holding all its versions ([`record`]), capped at
//!   [`MAX_SECRET_FILE_BYTES`]; values are capped at [`MAX_VALUE_BYTES`].
//!
//! **Reads** authenticate the whole file: every version's wrapped key and
//! sealed value must verify, so one changed byte anywhere makes the secret
//! refuse to open (other secrets are untouched). **Writes** (set, rollback,
//! delete, prune, KEK rotation) run under the cluster lock
//! `priv/lock/orbitlab-vault`, re-reading the file inside the lock, so two
//! writers on two nodes never lose a version. Rollback appends a new version
//! equal to an old one; nothing but `prune` and `delete` removes versions.
//!
//! Plaintext and keys live in zeroizing buffers; `Debug` of every type that
//! carries them is redacted; errors never include them.

mod crypto;
mod error;
mod ids;
mod keyring;
mod record;
mod rotate;
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

use crate::store::{LockGuard, LockName, Store, StorePath};
use keyring::Keyring;
use record::{Header, Sealed, SecretRecord, VersionEntry};

/// Largest secret file the vault writes (768 KiB): a quarter below the
/// 1 MiB pmxcfs limit. With values at their 64 KiB cap that is 8 versions;
/// with typical values of a few hundred bytes, thousands.
pub const MAX_SECRET_FILE_BYTES: usize = 768 * 1024;

/// Keyring file, relative to the private area.
const KEYRING_FILE: &str = "vault/keyring.json";

/// Name of the cluster lock every vault write holds.
const LOCK_NAME: &str = "vault";

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

/// Result of [`Vault::list`]. Listing reads file headers without
/// decrypting; `damaged` names files whose header cannot be read.
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
}

/// Handle on the vault of one store (cheap to clone).
#[derive(Debug, Clone)]
pub struct Vault {
    store: Store,
    lock: LockName,
}

impl Vault {
    /// The vault kept in `store`.
    pub fn new(store: Store) -> Vault {
        Vault {
            store,
            lock: LOCK_NAME.parse().expect("a valid lock name"),
        }
    }

    /// The store this vault lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes `value` as the next version of `path` (version 1 for a new
    /// secret). Creates the keyring on the very first write of an empty
    /// vault; refuses to when secrets exist without one.
    pub fn set(&self, path: &SecretPath, value: &SecretValue) -> Result<VersionInfo, VaultError> {
        let guard = self.lock()?;
        let keyring = self.keyring_for_writing(&guard)?;
        let file = file_path(path);
        let mut record = match self.load(path, &file)? {
            Some(record) => {
                self.verify(path, &file, &record, &keyring, None)?;
                record
            }
            None => SecretRecord {
                path: path.as_str().to_owned(),
                versions: Vec::new(),
            },
        };
        let info = self.append(&guard, path, &file, &mut record, &keyring, value)?;
        tracing::info!(secret = %path, version = %info.version, "secret version written");
        Ok(info)
    }

    /// The newest version of `path`.
    pub fn get(&self, path: &SecretPath) -> Result<Secret, VaultError> {
        self.read(path, None)
    }

    /// Version `version` of `path`.
    pub fn get_version(&self, path: &SecretPath, version: Version) -> Result<Secret, VaultError> {
        self.read(path, Some(version))
    }

    /// Every kept version of `path`, oldest first (all authenticated).
    pub fn versions(&self, path: &SecretPath) -> Result<Vec<VersionInfo>, VaultError> {
        let (record, _) = self.open_unlocked(path, |_| None)?;
        Ok(record.versions.iter().map(info_of).collect())
    }

    /// True when `path` has a file (not authenticated).
    pub fn exists(&self, path: &SecretPath) -> Result<bool, VaultError> {
        Ok(self.store.read(&file_path(path))?.is_some())
    }

    /// Secrets at or below `prefix` (all when `None`), sorted by path.
    pub fn list(&self, prefix: Option<&SecretPath>) -> Result<Listing, VaultError> {
        let mut listing = Listing::default();
        for shard in self.store.list(&secrets_dir())? {
            let dir = secrets_dir().join(&shard)?;
            for (name, bytes) in self.store.read_dir(&dir)? {
                let file = dir.join(&name)?;
                let parsed = Header::decode(&bytes).and_then(|h| {
                    let path: SecretPath = h.path.parse().ok()?;
                    (file_path(&path) == file).then_some((path, h))
                });
                let Some((path, header)) = parsed else {
                    listing.damaged.push(self.store.absolute(&file));
                    continue;
                };
                if prefix.is_some_and(|p| !path.starts_with(p)) {
                    continue;
                }
                let last = header.versions.last().expect("headers are never empty");
                listing.secrets.push(SecretListing {
                    latest: Version::new(last.version).unwrap_or(Version::FIRST),
                    updated: Timestamp(last.created),
                    versions: header.versions.len(),
                    path,
                });
            }
        }
        listing.secrets.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(listing)
    }

    /// Writes a new version whose value equals version `to`; every existing
    /// version stays.
    pub fn rollback(&self, path: &SecretPath, to: Version) -> Result<Rollback, VaultError> {
        let guard = self.lock()?;
        let keyring = self.keyring_for_writing(&guard)?;
        let file = file_path(path);
        let mut record = self.load(path, &file)?.ok_or_else(|| not_found(path))?;
        let old = self
            .verify(path, &file, &record, &keyring, Some(to))?
            .expect("verify returns the wanted version");
        let written = self.append(&guard, path, &file, &mut record, &keyring, &old)?;
        tracing::info!(secret = %path, from = %to, version = %written.version, "secret rolled back");
        Ok(Rollback {
            path: path.clone(),
            from: to,
            written,
        })
    }

    /// Removes `path` and all its versions. Works on damaged files too (so
    /// they can be cleared), but refuses a file that holds another secret.
    pub fn delete(&self, path: &SecretPath) -> Result<usize, VaultError> {
        let _guard = self.lock()?;
        let file = file_path(path);
        let bytes = self.store.read(&file)?.ok_or_else(|| not_found(path))?;
        let header = Header::decode(&bytes);
        if let Some(h) = &header
            && h.path != path.as_str()
        {
            return Err(VaultError::Misplaced {
                path: path.clone(),
                file: self.store.absolute(&file),
                found: h.path.clone(),
            });
        }
        self.store.remove(&file)?;
        tracing::info!(secret = %path, "secret deleted");
        Ok(header.map_or(0, |h| h.versions.len()))
    }

    /// Drops all but the newest `keep` versions of `path` (the only way,
    /// besides `delete`, that versions are destroyed). Returns the versions
    /// dropped, oldest first.
    pub fn prune(&self, path: &SecretPath, keep: NonZeroUsize) -> Result<Vec<Version>, VaultError> {
        let guard = self.lock()?;
        let file = file_path(path);
        let mut record = self.load(path, &file)?.ok_or_else(|| not_found(path))?;
        let excess = record.versions.len().saturating_sub(keep.get());
        let dropped: Vec<Version> = record.versions.drain(..excess).map(|v| v.version).collect();
        if !dropped.is_empty() {
            self.write(&guard, &file, &record.encode())?;
            tracing::info!(secret = %path, dropped = dropped.len(), "old secret versions pruned");
        }
        Ok(dropped)
    }

    /// Adds a fresh KEK, re-wraps every data key with it (ciphertexts and
    /// plaintext untouched), and drops the KEKs nothing uses any more.
    pub fn rotate_kek(&self) -> Result<RotationReport, VaultError> {
        let guard = self.lock()?;
        rotate::rotate(self, &guard)
    }

    /// The keyring's KEKs (never the keys) and the number of secrets.
    pub fn status(&self) -> Result<VaultStatus, VaultError> {
        let keys = self.load_keyring()?.map(|k| k.info()).unwrap_or_default();
        let mut secrets = 0;
        for shard in self.store.list(&secrets_dir())? {
            secrets += self.store.list(&secrets_dir().join(&shard)?)?.len();
        }
        Ok(VaultStatus {
            keyring_file: self.store.absolute(&keyring_path()),
            keys,
            secrets,
        })
    }

    // ---- internals ------------------------------------------------------

    fn lock(&self) -> Result<LockGuard, VaultError> {
        Ok(self.store.lock(&self.lock)?)
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
        let value = value.expect("verify returns the wanted version");
        let version = want.unwrap_or(record.latest().version);
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

    /// Reads, decodes and authenticates `path` without the lock; returns
    /// the record and the plaintext of the version `want` picks. A read
    /// races KEK rotations on other nodes (keyring and file are two
    /// reads), so a missing KEK is retried (a few times) with both read
    /// afresh.
    fn open_unlocked(
        &self,
        path: &SecretPath,
        want: impl Fn(&SecretRecord) -> Option<Version>,
    ) -> Result<(SecretRecord, Option<SecretValue>), VaultError> {
        let file = file_path(path);
        let mut retries = 3;
        loop {
            let record = self.load(path, &file)?.ok_or_else(|| not_found(path))?;
            let keyring = self.keyring_for_reading()?;
            match self.verify(path, &file, &record, &keyring, want(&record)) {
                Err(VaultError::KekMissing { .. }) if retries > 0 => retries -= 1,
                Err(e) => return Err(e),
                Ok(value) => return Ok((record, value)),
            }
        }
    }

    /// Reads and decodes the file of `path`; `None` when absent.
    fn load(
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

    /// Authenticates every version of `record`; returns the plaintext of
    /// `want` (an error when it is not there).
    fn verify(
        &self,
        path: &SecretPath,
        file: &StorePath,
        record: &SecretRecord,
        keyring: &Keyring,
        want: Option<Version>,
    ) -> Result<Option<SecretValue>, VaultError> {
        let mut wanted = None;
        for entry in &record.versions {
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
        match (want, wanted) {
            (Some(version), None) => Err(VaultError::VersionNotFound {
                path: path.clone(),
                version,
                available: record
                    .versions
                    .iter()
                    .map(|v| v.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            (_, wanted) => Ok(wanted),
        }
    }

    /// Seals `value` as the next version, checks the size cap, writes.
    fn append(
        &self,
        guard: &LockGuard,
        path: &SecretPath,
        file: &StorePath,
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
        let bytes = record.encode();
        if bytes.len() > MAX_SECRET_FILE_BYTES {
            return Err(VaultError::FileTooLarge {
                path: path.clone(),
                size: bytes.len(),
                max: MAX_SECRET_FILE_BYTES,
            });
        }
        self.write(guard, file, &bytes)?;
        Ok(info_of(record.latest()))
    }

    /// The keyring, or `None` when its file does not exist.
    fn load_keyring(&self) -> Result<Option<Keyring>, VaultError> {
        let Some(bytes) = self.store.read(&keyring_path())? else {
            return Ok(None);
        };
        let bytes = zeroize::Zeroizing::new(bytes);
        Keyring::parse(&bytes)
            .map(Some)
            .map_err(|reason| VaultError::KeyringDamaged {
                file: self.store.absolute(&keyring_path()),
                reason,
            })
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
        for shard in self.store.list(&secrets_dir())? {
            if !self.store.list(&secrets_dir().join(&shard)?)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every secret file: (file, bytes), shard by shard.
    fn secret_files(&self) -> Result<Vec<(StorePath, Vec<u8>)>, VaultError> {
        let mut out = Vec::new();
        for shard in self.store.list(&secrets_dir())? {
            let dir = secrets_dir().join(&shard)?;
            for (name, bytes) in self.store.read_dir(&dir)? {
                out.push((dir.join(&name)?, bytes));
            }
        }
        Ok(out)
    }
}

fn info_of(entry: &VersionEntry) -> VersionInfo {
    VersionInfo {
        version: entry.version,
        created: entry.created,
        kek: entry.kek.clone(),
    }
}

fn not_found(path: &SecretPath) -> VaultError {
    VaultError::NotFound { path: path.clone() }
}

fn file_path(path: &SecretPath) -> StorePath {
    StorePath::private(&record::file_for(path)).expect("hashed file names are valid store paths")
}

fn keyring_path() -> StorePath {
    StorePath::private(KEYRING_FILE).expect("a valid store path")
}

fn secrets_dir() -> StorePath {
    StorePath::private(record::SECRETS_DIR).expect("a valid store path")
}

/// KEK ids used by the versions of `record`.
fn keks_of(record: &SecretRecord) -> BTreeSet<String> {
    record.versions.iter().map(|v| v.kek.clone()).collect()
}
