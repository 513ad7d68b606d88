//! [`SshError`]: every way an SSH key operation can fail, naming the key or
//! file and saying what to do. Never contains key material or passphrases.

use std::path::PathBuf;

use crate::pki::InvalidInput;
use crate::store::StoreError;
use crate::vault::VaultError;

/// What went wrong with an SSH key.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// A name, algorithm or comment that does not parse.
    #[error(transparent)]
    Input(#[from] InvalidInput),

    /// The vault refused (private keys live there).
    #[error(transparent)]
    Vault(#[from] VaultError),

    /// The cluster filesystem failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// No such key.
    #[error("SSH key {name} does not exist; `orbitlab ssh-key list` shows the keys there are")]
    NotFound {
        /// The key asked for.
        name: String,
    },

    /// A key of that name exists.
    #[error(
        "SSH key {name} already exists; rotate it, or choose another name (nothing was changed)"
    )]
    Exists {
        /// The key.
        name: String,
    },

    /// Rotation while the previous key is still kept.
    #[error(
        "SSH key {name} still keeps its previous key {fingerprint}; once it is removed everywhere, drop it (`orbitlab ssh-key drop-previous {name}`) and rotate again (nothing was changed)"
    )]
    PreviousKept {
        /// The key.
        name: String,
        /// Fingerprint of the previous key.
        fingerprint: String,
    },

    /// Nothing to drop.
    #[error("SSH key {name} keeps no previous key; nothing to drop")]
    NoPrevious {
        /// The key.
        name: String,
    },

    /// The record cannot be read.
    #[error("SSH key record {file} is damaged: {reason}; restore it from a backup")]
    Damaged {
        /// The record file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The vault holds another key than the record names.
    #[error(
        "vault secret {secret} version {version} holds key {found}, but SSH key {name} names {expected}; restore the matching vault version or the record"
    )]
    Mismatch {
        /// The key.
        name: String,
        /// Its vault path.
        secret: String,
        /// The vault version.
        version: u64,
        /// Fingerprint in the record.
        expected: String,
        /// Fingerprint found in the vault.
        found: String,
    },

    /// The ssh-key crate refused.
    #[error("cannot {doing}: {reason}")]
    Key {
        /// What was being done.
        doing: String,
        /// Why.
        reason: String,
    },
}
