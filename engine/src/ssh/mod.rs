//! SSH keys OrbitLab generates, keeps and rotates.
//!
//! Ed25519 by default, RSA 4096 on request. The private key (OpenSSH
//! format, encrypted with a passphrase when one is given) is the vault
//! secret `ssh/<name>`; each generation or rotation is a new vault version.
//! The public record `orbitlab/ssh/<name>.json` (config area, 0640) names
//! the current key and, after a rotation, the previous one, with their
//! vault versions, `SHA256:` fingerprints and `authorized_keys` lines. The
//! previous key stays (and stays in [`SshKeys::authorized_keys`]) until
//! [`SshKeys::drop_previous`]; a second rotation is refused until then.
//! Changes run under the cluster lock [`Lock::Ssh`]; paths come from
//! [`layout`].

mod error;
mod keygen;

use serde::{Deserialize, Serialize};

pub use error::SshError;
pub use keygen::SshAlgorithm;

use crate::pki::names::object_name;
use crate::store::layout::{self, Lock};
use crate::store::{LockGuard, Store};
use crate::vault::{SecretPath, SecretValue, Timestamp, Vault, VaultError, Version};

object_name!(
    /// Name of an SSH key (`deploy`, `backup-node1`).
    KeyName,
    "SSH key name"
);

/// How to make a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    /// Ed25519 (default) or RSA 4096.
    pub algorithm: SshAlgorithm,
    /// Comment at the end of the public key; default `orbitlab:<name>`.
    pub comment: Option<String>,
    /// Encrypts the stored private key (OpenSSH format) when set.
    pub passphrase: Option<SecretValue>,
}

/// Public facts about one key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyInfo {
    /// Algorithm.
    pub algorithm: SshAlgorithm,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The `authorized_keys` line.
    pub public_key: String,
    /// When it was generated.
    pub created: Timestamp,
    /// True when the stored private key is passphrase-encrypted.
    pub encrypted: bool,
    /// Vault version of `ssh/<name>` holding the private key.
    pub vault_version: Version,
}

/// What `orbitlab ssh-key show` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKeyInfo {
    /// The key's name.
    pub name: KeyName,
    /// The key in use.
    pub current: PublicKeyInfo,
    /// The key it replaced, kept until dropped.
    pub previous: Option<PublicKeyInfo>,
}

/// Handle on the SSH keys of one store (cheap to clone).
#[derive(Debug, Clone)]
pub struct SshKeys {
    vault: Vault,
}

impl SshKeys {
    /// The SSH keys whose private parts live in `vault`.
    pub fn new(vault: Vault) -> SshKeys {
        SshKeys { vault }
    }

    /// Generates key `name` (refused when it exists).
    pub fn generate(&self, name: &KeyName, spec: &KeySpec) -> Result<SshKeyInfo, SshError> {
        let _guard = self.lock()?;
        if self.read(name)?.is_some() {
            return Err(SshError::Exists {
                name: name.to_string(),
            });
        }
        let current = self.new_key(name, spec)?;
        let info = SshKeyInfo {
            name: name.clone(),
            current,
            previous: None,
        };
        self.write(&info)?;
        tracing::info!(key = %name, fingerprint = %info.current.fingerprint, "SSH key generated");
        Ok(info)
    }

    /// Replaces the current key with a new one (same algorithm and comment
    /// unless `spec` says otherwise); the old one becomes `previous`.
    /// Refused while a previous key is still kept.
    pub fn rotate(&self, name: &KeyName, spec: &KeySpec) -> Result<SshKeyInfo, SshError> {
        let _guard = self.lock()?;
        let mut info = self.load(name)?;
        if let Some(previous) = &info.previous {
            return Err(SshError::PreviousKept {
                name: name.to_string(),
                fingerprint: previous.fingerprint.clone(),
            });
        }
        let current = self.new_key(name, spec)?;
        info.previous = Some(std::mem::replace(&mut info.current, current));
        self.write(&info)?;
        tracing::info!(key = %name, fingerprint = %info.current.fingerprint, "SSH key rotated");
        Ok(info)
    }

    /// Forgets the previous key (it leaves `authorized_keys`; its vault
    /// version stays in the secret's history).
    pub fn drop_previous(&self, name: &KeyName) -> Result<SshKeyInfo, SshError> {
        let _guard = self.lock()?;
        let mut info = self.load(name)?;
        if info.previous.take().is_none() {
            return Err(SshError::NoPrevious {
                name: name.to_string(),
            });
        }
        self.write(&info)?;
        tracing::info!(key = %name, "previous SSH key dropped");
        Ok(info)
    }

    /// Deletes the key: its record and its vault secret with all versions.
    pub fn delete(&self, name: &KeyName) -> Result<(), SshError> {
        let _guard = self.lock()?;
        self.load(name)?;
        match self.vault.delete(&secret_path(name)) {
            Ok(_) | Err(VaultError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.store().remove(&layout::ssh_key(name))?;
        tracing::info!(key = %name, "SSH key deleted");
        Ok(())
    }

    /// One key.
    pub fn show(&self, name: &KeyName) -> Result<SshKeyInfo, SshError> {
        self.load(name)
    }

    /// Every key, by name.
    pub fn list(&self) -> Result<Vec<SshKeyInfo>, SshError> {
        let mut out = Vec::new();
        for file in self.store().list(&layout::ssh_keys_dir())? {
            let Some(Ok(name)) = layout::record_file_name(&file).map(str::parse::<KeyName>) else {
                continue;
            };
            out.push(self.load(&name)?);
        }
        Ok(out)
    }

    /// The current key's `authorized_keys` line.
    pub fn public_key(&self, name: &KeyName) -> Result<String, SshError> {
        Ok(self.load(name)?.current.public_key)
    }

    /// `authorized_keys` content for `names`: each current key, and each
    /// previous key still kept, one per line (what an instance installs).
    pub fn authorized_keys(&self, names: &[KeyName]) -> Result<String, SshError> {
        let mut out = String::new();
        for name in names {
            let info = self.load(name)?;
            for key in std::iter::once(&info.current).chain(info.previous.as_ref()) {
                out.push_str(&key.public_key);
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// The current private key (OpenSSH format; encrypted when it was
    /// generated with a passphrase), checked against the record.
    pub fn private_key(&self, name: &KeyName) -> Result<SecretValue, SshError> {
        let info = self.load(name)?;
        let path = secret_path(name);
        let secret = self.vault.get_version(&path, info.current.vault_version)?;
        let found = keygen::fingerprint_of(&secret.value)?;
        if found != info.current.fingerprint {
            return Err(SshError::Mismatch {
                name: name.to_string(),
                secret: path.to_string(),
                version: info.current.vault_version.get(),
                expected: info.current.fingerprint,
                found,
            });
        }
        Ok(secret.value)
    }

    // ---- internals ------------------------------------------------------

    fn store(&self) -> &Store {
        self.vault.store()
    }

    fn lock(&self) -> Result<LockGuard, SshError> {
        Ok(self.store().lock(Lock::Ssh.name())?)
    }

    fn new_key(&self, name: &KeyName, spec: &KeySpec) -> Result<PublicKeyInfo, SshError> {
        let comment = spec
            .comment
            .clone()
            .unwrap_or_else(|| format!("orbitlab:{name}"));
        keygen::check_comment(&comment)?;
        let generated = keygen::generate(spec.algorithm, &comment, spec.passphrase.as_ref())?;
        let written = self
            .vault
            .set(&secret_path(name), &generated.private_openssh)?;
        Ok(PublicKeyInfo {
            algorithm: spec.algorithm,
            fingerprint: generated.fingerprint.clone(),
            public_key: generated.public_line.clone(),
            created: written.created,
            encrypted: spec.passphrase.is_some(),
            vault_version: written.version,
        })
    }

    fn read(&self, name: &KeyName) -> Result<Option<SshKeyInfo>, SshError> {
        let path = layout::ssh_key(name);
        let Some(bytes) = self.store().read(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SshError::Damaged {
                file: self.store().absolute(&path),
                reason: e.to_string(),
            })
    }

    fn load(&self, name: &KeyName) -> Result<SshKeyInfo, SshError> {
        self.read(name)?.ok_or_else(|| SshError::NotFound {
            name: name.to_string(),
        })
    }

    fn write(&self, info: &SshKeyInfo) -> Result<(), SshError> {
        let bytes = serde_json::to_vec_pretty(info).expect("records always serialize");
        Ok(self.store().write(&layout::ssh_key(&info.name), &bytes)?)
    }
}

/// Vault path of a key's private part.
pub fn secret_path(name: &KeyName) -> SecretPath {
    format!("ssh/{name}")
        .parse()
        .expect("key names are valid path segments")
}
