//! The vault in the API tree. The `orbitlab secret`/`vault` commands and
//! the HTTPS server both run a [`VaultCall`] through [`Api::vault`]:
//!
//! ```text
//! GET    /vault                              keyring status (key ids, ages)   metadata
//! GET    /vault/secrets[?prefix=P]           secrets (paths, version counts)  metadata
//! GET    /vault/secrets/{path}               a secret's versions              metadata
//! DELETE /vault/secrets/{path}               delete every version             change
//! GET    /vault/values/{path}[?version=N]    the value                        value
//! PUT    /vault/values/{path}                a new version; body = the value  change
//! POST   /vault/rollback/{path}?to=N         copy version N as a new one      change
//! POST   /vault/prune/{path}?keep=N          drop all but the newest N        change
//! POST   /vault/rotate-key                   new key-encryption key           change
//! GET    /vault/readers/{path}               who may read it, who holds it    metadata
//! POST   /vault/seal[?memory-mib=N]          seal (or re-seal); body = passphrase   change
//! POST   /vault/unseal                       unseal this process; body = passphrase change
//! ```
//!
//! `seal` and `unseal` act on the process that serves the call: run
//! through an agent (`orbitlab --host`), they give that agent the key;
//! run in the command's own process, the key lives only as long as it.
//!
//! `readers` answers from the manifests: each Secret whose vault path is
//! `{path}`, the instances its `readers` grant (and by which entry),
//! whether each declares it, and the version each holds (its status).
//!
//! A value travels only in a request or answer body, never in a path,
//! query, log line or error. Which privileges each [`VaultAccess`] needs
//! is the server's `permissions` table.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use base64::Engine;
use serde_json::{Value, json};

use super::{Api, PathError};
use crate::audit::{Action, Audited, Detail};
use crate::vault::{Secret, SecretPath, SecretValue, Vault, VaultError, Version};

/// A path below `/vault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultPath {
    /// `/vault`: the keyring's status.
    Status,
    /// `/vault/secrets`: every secret's metadata.
    Secrets,
    /// `/vault/secrets/{path}`: one secret's metadata.
    Secret(SecretPath),
    /// `/vault/values/{path}`: one secret's value.
    Value(SecretPath),
    /// `/vault/rollback/{path}`.
    Rollback(SecretPath),
    /// `/vault/prune/{path}`.
    Prune(SecretPath),
    /// `/vault/readers/{path}`.
    Readers(SecretPath),
    /// `/vault/seal`.
    Seal,
    /// `/vault/unseal`.
    Unseal,
    /// `/vault/rotate-key`.
    RotateKey,
}

impl VaultPath {
    /// Parses `path` when it is `/vault` or below; `Ok(None)` for any
    /// other path.
    pub fn parse(path: &str) -> Result<Option<VaultPath>, PathError> {
        let Some(rest) = super::path::below(path, "/vault") else {
            return Ok(None);
        };
        let error = |reason: String| PathError::at(path, reason);
        let rest = rest.trim_start_matches('/');
        let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let secret = || {
            tail.parse::<SecretPath>()
                .map_err(|e| error(format!("secret path: {e}")))
        };
        Ok(Some(match (head, tail.is_empty()) {
            ("", _) => VaultPath::Status,
            ("secrets", true) => VaultPath::Secrets,
            ("secrets", false) => VaultPath::Secret(secret()?),
            ("values", false) => VaultPath::Value(secret()?),
            ("rollback", false) => VaultPath::Rollback(secret()?),
            ("prune", false) => VaultPath::Prune(secret()?),
            ("readers", false) => VaultPath::Readers(secret()?),
            ("rotate-key", true) => VaultPath::RotateKey,
            ("seal", true) => VaultPath::Seal,
            ("unseal", true) => VaultPath::Unseal,
            _ => {
                return Err(error(
                    "below /vault: secrets[/{path}], values/{path}, rollback/{path}, prune/{path}, readers/{path}, rotate-key, seal, unseal"
                        .into(),
                ));
            }
        }))
    }
}

impl fmt::Display for VaultPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultPath::Status => f.write_str("/vault"),
            VaultPath::Secrets => f.write_str("/vault/secrets"),
            VaultPath::Secret(p) => write!(f, "/vault/secrets/{p}"),
            VaultPath::Value(p) => write!(f, "/vault/values/{p}"),
            VaultPath::Rollback(p) => write!(f, "/vault/rollback/{p}"),
            VaultPath::Prune(p) => write!(f, "/vault/prune/{p}"),
            VaultPath::Readers(p) => write!(f, "/vault/readers/{p}"),
            VaultPath::RotateKey => f.write_str("/vault/rotate-key"),
            VaultPath::Seal => f.write_str("/vault/seal"),
            VaultPath::Unseal => f.write_str("/vault/unseal"),
        }
    }
}

impl FromStr for VaultPath {
    type Err = PathError;

    fn from_str(path: &str) -> Result<Self, PathError> {
        VaultPath::parse(path)?.ok_or_else(|| PathError {
            path: path.to_owned(),
            reason: "vault paths start with /vault".into(),
        })
    }
}

/// What a vault call may see or change; the server maps each to
/// Proxmox privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultAccess {
    /// Paths, versions, times, key ids: never a value.
    Metadata,
    /// Writes a value or changes the vault; returns no value.
    Change,
    /// Returns a secret value.
    Value,
}

/// One vault operation.
#[derive(Debug)]
pub enum VaultCall {
    /// The keyring's status.
    Status,
    /// Secrets at or below `prefix` (all without one).
    List {
        /// Segment-wise prefix.
        prefix: Option<SecretPath>,
    },
    /// A secret's versions.
    Versions(SecretPath),
    /// A secret's value (the newest, or `version`).
    Value {
        /// The secret.
        path: SecretPath,
        /// An older version.
        version: Option<Version>,
    },
    /// Stores a new version.
    Set {
        /// The secret.
        path: SecretPath,
        /// Its new value (redacted in `Debug`).
        value: SecretValue,
    },
    /// Writes a new version equal to `to`.
    Rollback {
        /// The secret.
        path: SecretPath,
        /// The version to copy.
        to: Version,
    },
    /// Drops all but the newest `keep` versions.
    Prune {
        /// The secret.
        path: SecretPath,
        /// How many to keep.
        keep: NonZeroUsize,
    },
    /// Deletes a secret with every version.
    Delete(SecretPath),
    /// Who may read a secret and who holds which version.
    Readers(SecretPath),
    /// Seals the vault with a passphrase (redacted in `Debug`).
    Seal {
        /// The passphrase.
        passphrase: SecretValue,
        /// Argon2id memory cost, MiB.
        memory_mib: u32,
    },
    /// Unseals the vault in the process serving the call.
    Unseal {
        /// The passphrase.
        passphrase: SecretValue,
    },
    /// Makes a new key-encryption key and re-wraps every data key.
    RotateKey,
}

impl VaultCall {
    /// What the call may see or change.
    pub fn access(&self) -> VaultAccess {
        match self {
            VaultCall::Status
            | VaultCall::List { .. }
            | VaultCall::Versions(_)
            | VaultCall::Readers(_) => VaultAccess::Metadata,
            VaultCall::Value { .. } => VaultAccess::Value,
            VaultCall::Set { .. }
            | VaultCall::Rollback { .. }
            | VaultCall::Prune { .. }
            | VaultCall::Delete(_)
            | VaultCall::RotateKey
            | VaultCall::Seal { .. }
            | VaultCall::Unseal { .. } => VaultAccess::Change,
        }
    }

    /// The HTTP method, path (below the tree prefix) and query of the
    /// call; a [`VaultCall::Set`]'s value goes in the body.
    pub fn http(&self) -> (&'static str, VaultPath, Vec<(&'static str, String)>) {
        match self {
            VaultCall::Status => ("GET", VaultPath::Status, Vec::new()),
            VaultCall::List { prefix } => (
                "GET",
                VaultPath::Secrets,
                prefix.iter().map(|p| ("prefix", p.to_string())).collect(),
            ),
            VaultCall::Versions(p) => ("GET", VaultPath::Secret(p.clone()), Vec::new()),
            VaultCall::Value { path, version } => (
                "GET",
                VaultPath::Value(path.clone()),
                version.iter().map(|v| ("version", v.to_string())).collect(),
            ),
            VaultCall::Set { path, .. } => ("PUT", VaultPath::Value(path.clone()), Vec::new()),
            VaultCall::Rollback { path, to } => (
                "POST",
                VaultPath::Rollback(path.clone()),
                vec![("to", to.to_string())],
            ),
            VaultCall::Prune { path, keep } => (
                "POST",
                VaultPath::Prune(path.clone()),
                vec![("keep", keep.to_string())],
            ),
            VaultCall::Delete(p) => ("DELETE", VaultPath::Secret(p.clone()), Vec::new()),
            VaultCall::RotateKey => ("POST", VaultPath::RotateKey, Vec::new()),
            VaultCall::Readers(p) => ("GET", VaultPath::Readers(p.clone()), Vec::new()),
            VaultCall::Seal { memory_mib, .. } => (
                "POST",
                VaultPath::Seal,
                vec![("memory-mib", memory_mib.to_string())],
            ),
            VaultCall::Unseal { .. } => ("POST", VaultPath::Unseal, Vec::new()),
        }
    }

    /// For messages: `read the value of secret app/db`.
    pub fn describe(&self) -> String {
        match self {
            VaultCall::Status => "read the vault's status".to_owned(),
            VaultCall::List { .. } => "list secrets".to_owned(),
            VaultCall::Versions(p) => format!("read the versions of secret {p}"),
            VaultCall::Value { path, .. } => format!("read the value of secret {path}"),
            VaultCall::Set { path, .. } => format!("set secret {path}"),
            VaultCall::Rollback { path, .. } => format!("roll back secret {path}"),
            VaultCall::Prune { path, .. } => format!("prune secret {path}"),
            VaultCall::Delete(p) => format!("delete secret {p}"),
            VaultCall::RotateKey => "rotate the vault's key".to_owned(),
            VaultCall::Readers(p) => format!("read who may read secret {p}"),
            VaultCall::Seal { .. } => "seal the vault".to_owned(),
            VaultCall::Unseal { .. } => "unseal the vault".to_owned(),
        }
    }
}

impl VaultCall {
    /// How the audit log records the call: a value read and every change,
    /// with the call's path and query (never its body: no value).
    pub(crate) fn audited(&self) -> Option<(Audited, Action, String, Detail)> {
        let action = match self {
            VaultCall::Status
            | VaultCall::List { .. }
            | VaultCall::Versions(_)
            | VaultCall::Readers(_) => return None,
            VaultCall::Value { .. } => Action::SecretRead,
            VaultCall::Set { .. } => Action::SecretSet,
            VaultCall::Rollback { .. } => Action::SecretRollback,
            VaultCall::Prune { .. } => Action::SecretPrune,
            VaultCall::Delete(_) => Action::SecretDelete,
            VaultCall::RotateKey => Action::VaultRotateKey,
            VaultCall::Seal { .. } => Action::VaultSeal,
            VaultCall::Unseal { .. } => Action::VaultUnseal,
        };
        let (_, path, query) = self.http();
        Some(super::audit_of(self.access(), action, path, query))
    }
}

/// The answer of a vault call, as JSON. A value read answers
/// `{path, version, created, encoding: "base64", value}`.
pub fn secret_json(secret: &Secret) -> Value {
    json!({
        "path": secret.path,
        "version": secret.version,
        "created": secret.created,
        "encoding": "base64",
        "value": base64::engine::general_purpose::STANDARD.encode(secret.value.expose()),
    })
}

impl Api {
    /// Runs a vault call on this API's store (blocking; writes take the
    /// vault's cluster lock). Privileges are the caller's business: the
    /// server checks them first, the command runs as root.
    pub fn vault(&self, call: VaultCall) -> Result<Value, VaultError> {
        self.audited(call.audited(), || self.vault_unrecorded(call))
    }

    fn vault_unrecorded(&self, call: VaultCall) -> Result<Value, VaultError> {
        let vault = Vault::new(self.store().clone());
        Ok(match call {
            VaultCall::Status => json(&vault.status()?),
            VaultCall::List { prefix } => json(&vault.list(prefix.as_ref())?),
            VaultCall::Versions(path) => json(&vault.versions(&path)?),
            VaultCall::Value { path, version } => {
                let secret = match version {
                    Some(v) => vault.get_version(&path, v)?,
                    None => vault.get(&path)?,
                };
                secret_json(&secret)
            }
            VaultCall::Set { path, value } => {
                let written = vault.set(&path, &value)?;
                json!({
                    "path": path,
                    "version": written.version,
                    "created": written.created,
                    "kek": written.kek,
                })
            }
            VaultCall::Rollback { path, to } => json(&vault.rollback(&path, to)?),
            VaultCall::Prune { path, keep } => {
                let dropped = vault.prune(&path, keep)?;
                json!({ "path": path, "kept": keep, "dropped": dropped })
            }
            VaultCall::Delete(path) => {
                let versions = vault.delete(&path)?;
                json!({ "path": path, "deleted_versions": versions })
            }
            VaultCall::RotateKey => json(&vault.rotate_kek()?),
            VaultCall::Readers(path) => self.readers(&path)?,
            VaultCall::Seal {
                passphrase,
                memory_mib,
            } => json(&vault.seal(&passphrase, memory_mib)?),
            VaultCall::Unseal { passphrase } => json(&vault.unseal(&passphrase)?),
        })
    }

    /// `{path, secrets: [{secret, readers: [{lxc, granted_by, declares,
    /// holds}]}]}` for `path`, from the stored manifests and statuses.
    fn readers(&self, path: &SecretPath) -> Result<Value, VaultError> {
        use orbitlab_manifests::{Kind, ManifestSet, Spec};
        let store = self.store();
        let damaged = |reason: String| VaultError::Damaged {
            path: path.clone(),
            file: store.absolute(&crate::store::layout::manifests_root()),
            reason,
        };
        let manifests = store
            .read_all_manifests()
            .map_err(|e| damaged(format!("the manifests cannot be read: {e}")))?;
        let set = ManifestSet::new(manifests)
            .map_err(|e| damaged(format!("the stored manifests are invalid: {e}")))?;
        let mut secrets = Vec::new();
        for m in set.of_kind(Kind::Secret) {
            let Spec::Secret(spec) = &m.spec else {
                continue;
            };
            if spec.vault_path(m.name()).as_str() != path.as_str() {
                continue;
            }
            let declaring = set.declaring(m.name().as_str());
            let readers: Vec<Value> = set
                .granted(m.name().as_str())
                .into_iter()
                .map(|(lxc, by)| {
                    let holds = store
                        .read_status(Kind::Lxc, lxc)
                        .ok()
                        .flatten()
                        .and_then(|s| {
                            s.outputs
                                .get(&format!("holds/secret/{}", m.name()))
                                .cloned()
                        });
                    json!({
                        "lxc": lxc,
                        "granted_by": by.to_string(),
                        "declares": declaring.contains(&lxc),
                        "holds": holds,
                    })
                })
                .collect();
            secrets.push(json!({ "secret": m.name(), "readers": readers }));
        }
        Ok(json!({ "path": path, "secrets": secrets }))
    }
}

/// Serializes one of the vault's answers (plain data: cannot fail).
fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_stay_apart() {
        for text in [
            "/vault",
            "/vault/secrets",
            "/vault/secrets/app/db/value",
            "/vault/values/app/db",
            "/vault/rollback/a",
            "/vault/prune/a/b",
            "/vault/rotate-key",
        ] {
            let path: VaultPath = text.parse().unwrap();
            assert_eq!(path.to_string(), text);
        }
        // A secret whose last segment is `value` is still a secret.
        assert_eq!(
            "/vault/secrets/app/value".parse::<VaultPath>().unwrap(),
            VaultPath::Secret("app/value".parse().unwrap())
        );
        assert_eq!(VaultPath::parse("/vaults").unwrap(), None);
        assert_eq!(VaultPath::parse("/sectors").unwrap(), None);
        for bad in ["/vault/values", "/vault/keys", "/vault/secrets/../x"] {
            assert!(VaultPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_value_read_reveals() {
        let p: SecretPath = "a/b".parse().unwrap();
        let value = VaultCall::Value {
            path: p.clone(),
            version: None,
        };
        assert_eq!(value.access(), VaultAccess::Value);
        assert_eq!(
            VaultCall::Versions(p.clone()).access(),
            VaultAccess::Metadata
        );
        let set = VaultCall::Set {
            path: p,
            value: SecretValue::new(b"hunter2".to_vec()).unwrap(),
        };
        assert_eq!(set.access(), VaultAccess::Change);
        assert!(!format!("{set:?}").contains("hunter2"));
        let (method, path, query) = set.http();
        assert_eq!(
            (method, path.to_string()),
            ("PUT", "/vault/values/a/b".into())
        );
        assert!(query.is_empty());
    }
}
