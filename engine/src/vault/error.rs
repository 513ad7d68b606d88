//! [`VaultError`]: every way a vault operation can fail. Each message names
//! the secret and file concerned and says what to do; none ever contains a
//! secret value or key material.

use std::path::PathBuf;

use super::ids::{InvalidName, SecretPath, Version};
use super::value::ValueError;
use crate::store::StoreError;

/// What went wrong in the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A secret path or version that does not parse.
    #[error(transparent)]
    Name(#[from] InvalidName),

    /// An empty or oversized value.
    #[error(transparent)]
    Value(#[from] ValueError),

    /// No such secret.
    #[error("secret {path} does not exist; `orbitlab secret list` shows the secrets there are")]
    NotFound {
        /// The secret asked for.
        path: SecretPath,
    },

    /// The secret exists, the version does not.
    #[error("secret {path} has no version {version}; it has versions {available}")]
    VersionNotFound {
        /// The secret.
        path: SecretPath,
        /// The version asked for.
        version: Version,
        /// The versions it has, e.g. `1, 2, 5`.
        available: String,
    },

    /// The file cannot be decoded at all.
    #[error(
        "secret file {file} (secret {path}) is damaged: {reason}; nothing was read or changed — restore the file from a backup, or delete the secret and set it again"
    )]
    Damaged {
        /// The secret asked for.
        path: SecretPath,
        /// Its file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The file at this secret's place holds another secret.
    #[error(
        "secret file {file} should hold secret {path} but says it holds {found:?}: files were swapped or copied; it is refused — restore the file from a backup"
    )]
    Misplaced {
        /// The secret asked for.
        path: SecretPath,
        /// Its file.
        file: PathBuf,
        /// What the file claims to hold.
        found: String,
    },

    /// An authentication tag did not verify.
    #[error(
        "secret {path} version {version} failed its integrity check in {file}: the file was modified, or versions or files were swapped; no data was returned and nothing was changed — restore the file from a backup; an old damaged version can be dropped with `orbitlab secret prune`, otherwise delete the secret and set it again"
    )]
    Integrity {
        /// The secret.
        path: SecretPath,
        /// The version that failed.
        version: Version,
        /// Its file.
        file: PathBuf,
    },

    /// The version history does not match its authenticated head: a file
    /// was replaced by an older copy, cut short, edited or removed.
    #[error(
        "secret {path} failed its version-history check: {reason} (file {file}, head {head}); a file was replaced by an older copy, versions were removed, or a file was edited or deleted — no data was returned and nothing was changed; restore both files from the same backup, or delete the secret (`orbitlab secret delete {path}`) and set it again"
    )]
    Tampered {
        /// The secret.
        path: SecretPath,
        /// Its record file (all versions).
        file: PathBuf,
        /// Its head file.
        head: PathBuf,
        /// What does not match (version numbers and generations only).
        reason: String,
    },

    /// A history MAC names a KEK the keyring does not hold.
    #[error(
        "the version history of secret {path} is authenticated with key-encryption key {kek}, which is not in the vault keyring {file}: the keyring was replaced, rolled back or comes from another cluster — restore the keyring that holds {kek}"
    )]
    HistoryKekMissing {
        /// The secret.
        path: SecretPath,
        /// The KEK id the MAC needs.
        kek: String,
        /// The keyring file.
        file: PathBuf,
    },

    /// No keyring, but secrets exist.
    #[error(
        "the vault keyring {file} is missing, but secret files exist under {dir}: they cannot be opened without it; restore the keyring from a backup (OrbitLab will not create a new keyring over existing secrets)"
    )]
    KeyringMissing {
        /// Where the keyring should be.
        file: PathBuf,
        /// Where the secrets are.
        dir: PathBuf,
    },

    /// The keyring is sealed and this process does not hold its key.
    #[error(
        "the vault is sealed: the keys in {file} are wrapped by a passphrase and this process does not hold it; unseal the agent of this node (`orbitlab --host https://NODE:8206 vault unseal`, passphrase on standard input) and use the vault through it (`orbitlab --host ...`)"
    )]
    Sealed {
        /// The keyring file.
        file: PathBuf,
    },

    /// `vault unseal` with a passphrase that opens nothing.
    #[error("the passphrase does not unseal the vault; nothing changed")]
    WrongPassphrase,

    /// `vault unseal` of a vault that is not sealed.
    #[error(
        "the vault is not sealed ({file} holds its keys in the clear); seal it first with `orbitlab vault seal`"
    )]
    NotSealed {
        /// The keyring file.
        file: PathBuf,
    },

    /// The keyring file cannot be used.
    #[error("the vault keyring {file} is damaged: {reason}; restore it from a backup")]
    KeyringDamaged {
        /// The keyring file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A version is wrapped by a KEK the keyring does not hold.
    #[error(
        "secret {path} version {version} is sealed with key-encryption key {kek}, which is not in the vault keyring {file}: the keyring was replaced, rolled back or comes from another cluster — restore the keyring that holds {kek}"
    )]
    KekMissing {
        /// The secret.
        path: SecretPath,
        /// The version.
        version: Version,
        /// The KEK id it needs.
        kek: String,
        /// The keyring file.
        file: PathBuf,
    },

    /// The secret's file would exceed its cap.
    #[error(
        "secret {path} would grow to {size} bytes with another version, over the {max}-byte cap of one secret file (a pmxcfs file holds at most 1 MiB); nothing was written — drop old versions first (`orbitlab secret prune {path} --keep N`)"
    )]
    FileTooLarge {
        /// The secret.
        path: SecretPath,
        /// Size the file would have had.
        size: usize,
        /// The cap.
        max: usize,
    },

    /// The cluster lock was lost (renewal failed) before a write.
    #[error(
        "the vault lock {lock} was lost before writing {file} (quorum lost?); that file was not written — check `pvecm status` and retry"
    )]
    LockLost {
        /// The lock directory.
        lock: PathBuf,
        /// The file that was about to be written.
        file: PathBuf,
    },

    /// The cluster filesystem failed (already names the file).
    #[error(transparent)]
    Store(#[from] StoreError),
}
