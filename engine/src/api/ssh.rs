//! SSH keys in the API tree. The `orbitlab ssh-key` commands and the
//! HTTPS server both run an [`SshCall`] through [`Api::ssh`]:
//!
//! ```text
//! GET    /ssh/keys                          every key (public facts)         metadata
//! GET    /ssh/keys/{name}                   one key                          metadata
//! GET    /ssh/keys/{name}/public            its authorized_keys line         metadata
//! GET    /ssh/keys/{name}/private           its private key                  value
//! POST   /ssh/keys/{name}[?algorithm=&comment=]          generate            change
//! POST   /ssh/keys/{name}/rotate[?algorithm=&comment=]   rotate              change
//! POST   /ssh/keys/{name}/drop-previous     forget the replaced key          change
//! DELETE /ssh/keys/{name}                   delete                           change
//! ```
//!
//! A passphrase (generate, rotate) is the request body, never a query
//! parameter; a private key is answered base64-encoded in the body.
//! (`/ssh-keys` is the collection of `SshKey` manifests.)

use std::fmt;

use base64::Engine;
use serde_json::{Value, json};

use super::{Api, PathError, VaultAccess};
use crate::audit::{Action, Audited, Detail};
use crate::ssh::{KeyName, KeySpec, SshAlgorithm, SshError, SshKeys};
use crate::vault::{SecretValue, Vault};

/// A path below `/ssh/keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshPath {
    /// `/ssh/keys`.
    Keys,
    /// `/ssh/keys/{name}`.
    Key(KeyName),
    /// `/ssh/keys/{name}/public`.
    Public(KeyName),
    /// `/ssh/keys/{name}/private`.
    Private(KeyName),
    /// `/ssh/keys/{name}/rotate`.
    Rotate(KeyName),
    /// `/ssh/keys/{name}/drop-previous`.
    DropPrevious(KeyName),
}

impl SshPath {
    /// Parses `path` when it is `/ssh` or below; `Ok(None)` otherwise.
    pub fn parse(path: &str) -> Result<Option<SshPath>, PathError> {
        let Some(rest) = super::path::below(path, "/ssh") else {
            return Ok(None);
        };
        let error = |reason: String| PathError::at(path, reason);
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let name = |text: &str| {
            text.parse::<KeyName>()
                .map_err(|e| error(format!("key name: {e}")))
        };
        Ok(Some(match segments.as_slice() {
            ["keys"] => SshPath::Keys,
            ["keys", n] => SshPath::Key(name(n)?),
            ["keys", n, "public"] => SshPath::Public(name(n)?),
            ["keys", n, "private"] => SshPath::Private(name(n)?),
            ["keys", n, "rotate"] => SshPath::Rotate(name(n)?),
            ["keys", n, "drop-previous"] => SshPath::DropPrevious(name(n)?),
            _ => {
                return Err(error(
                    "below /ssh: keys[/{name}[/public|/private|/rotate|/drop-previous]]".into(),
                ));
            }
        }))
    }
}

impl fmt::Display for SshPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshPath::Keys => f.write_str("/ssh/keys"),
            SshPath::Key(n) => write!(f, "/ssh/keys/{n}"),
            SshPath::Public(n) => write!(f, "/ssh/keys/{n}/public"),
            SshPath::Private(n) => write!(f, "/ssh/keys/{n}/private"),
            SshPath::Rotate(n) => write!(f, "/ssh/keys/{n}/rotate"),
            SshPath::DropPrevious(n) => write!(f, "/ssh/keys/{n}/drop-previous"),
        }
    }
}

/// How a new key pair is made: unset fields keep the current key's
/// (rotate) or the defaults (generate).
#[derive(Debug, Default)]
pub struct KeyRequest {
    /// Ed25519 (default) or RSA.
    pub algorithm: Option<SshAlgorithm>,
    /// Comment of the public key.
    pub comment: Option<String>,
    /// Encrypts the stored private key (redacted in `Debug`).
    pub passphrase: Option<SecretValue>,
}

/// One SSH-key operation.
#[derive(Debug)]
pub enum SshCall {
    /// Every key's public facts.
    List,
    /// One key's public facts.
    Show(KeyName),
    /// Its `authorized_keys` line.
    Public(KeyName),
    /// Its private key.
    Private(KeyName),
    /// A new key pair.
    Generate(KeyName, KeyRequest),
    /// Replaces the key pair, keeping the old one as `previous`.
    Rotate(KeyName, KeyRequest),
    /// Forgets the previous key pair.
    DropPrevious(KeyName),
    /// Deletes the key.
    Delete(KeyName),
}

impl SshCall {
    /// What the call may see or change.
    pub fn access(&self) -> VaultAccess {
        match self {
            SshCall::List | SshCall::Show(_) | SshCall::Public(_) => VaultAccess::Metadata,
            SshCall::Private(_) => VaultAccess::Value,
            _ => VaultAccess::Change,
        }
    }

    /// The HTTP method, path and query of the call; a passphrase goes in
    /// the body.
    pub fn http(&self) -> (&'static str, SshPath, Vec<(&'static str, String)>) {
        let spec = |r: &KeyRequest| {
            let mut q = Vec::new();
            if let Some(a) = r.algorithm {
                q.push(("algorithm", a.to_string()));
            }
            if let Some(c) = &r.comment {
                q.push(("comment", c.clone()));
            }
            q
        };
        match self {
            SshCall::List => ("GET", SshPath::Keys, Vec::new()),
            SshCall::Show(n) => ("GET", SshPath::Key(n.clone()), Vec::new()),
            SshCall::Public(n) => ("GET", SshPath::Public(n.clone()), Vec::new()),
            SshCall::Private(n) => ("GET", SshPath::Private(n.clone()), Vec::new()),
            SshCall::Generate(n, r) => ("POST", SshPath::Key(n.clone()), spec(r)),
            SshCall::Rotate(n, r) => ("POST", SshPath::Rotate(n.clone()), spec(r)),
            SshCall::DropPrevious(n) => ("POST", SshPath::DropPrevious(n.clone()), Vec::new()),
            SshCall::Delete(n) => ("DELETE", SshPath::Key(n.clone()), Vec::new()),
        }
    }

    /// The passphrase the call sends, if any.
    pub fn passphrase(&self) -> Option<&SecretValue> {
        match self {
            SshCall::Generate(_, r) | SshCall::Rotate(_, r) => r.passphrase.as_ref(),
            _ => None,
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            SshCall::List => "list SSH keys".to_owned(),
            SshCall::Show(n) | SshCall::Public(n) => format!("read SSH key {n}"),
            SshCall::Private(n) => format!("read the private key of SSH key {n}"),
            SshCall::Generate(n, _) => format!("generate SSH key {n}"),
            SshCall::Rotate(n, _) => format!("rotate SSH key {n}"),
            SshCall::DropPrevious(n) => format!("drop the previous key of SSH key {n}"),
            SshCall::Delete(n) => format!("delete SSH key {n}"),
        }
    }
}

impl SshCall {
    /// How the audit log records the call: a private key read and every
    /// change, with the call's path and query (never a passphrase).
    pub(crate) fn audited(&self) -> Option<(Audited, Action, String, Detail)> {
        let action = match self {
            SshCall::List | SshCall::Show(_) | SshCall::Public(_) => return None,
            SshCall::Private(_) => Action::SshKeyExport,
            SshCall::Generate(..) => Action::SshKeyCreate,
            SshCall::Rotate(..) => Action::SshKeyRotate,
            SshCall::DropPrevious(_) => Action::SshKeyDropPrevious,
            SshCall::Delete(_) => Action::SshKeyDelete,
        };
        let (_, path, query) = self.http();
        Some(super::audit_of(self.access(), action, path, query))
    }
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Api {
    /// Runs an SSH-key call on this API's store (blocking; changes take
    /// the vault's lock). Privileges are the caller's business.
    pub fn ssh(&self, call: SshCall) -> Result<Value, SshError> {
        self.audited(call.audited(), || self.ssh_unrecorded(call))
    }

    fn ssh_unrecorded(&self, call: SshCall) -> Result<Value, SshError> {
        let keys = SshKeys::new(Vault::new(self.store().clone()));
        Ok(match call {
            SshCall::List => json(&keys.list()?),
            SshCall::Show(n) => json(&keys.show(&n)?),
            SshCall::Public(n) => {
                let info = keys.show(&n)?;
                json!({
                    "name": info.name,
                    "fingerprint": info.current.fingerprint,
                    "public_key": info.current.public_key,
                })
            }
            SshCall::Private(n) => {
                let key = keys.private_key(&n)?;
                let info = keys.show(&n)?;
                json!({
                    "name": n,
                    "fingerprint": info.current.fingerprint,
                    "encrypted": info.current.encrypted,
                    "encoding": "base64",
                    "private_key": base64::engine::general_purpose::STANDARD.encode(key.expose()),
                })
            }
            SshCall::Generate(n, r) => {
                let spec = KeySpec {
                    algorithm: r.algorithm.unwrap_or_default(),
                    comment: r.comment,
                    passphrase: r.passphrase,
                };
                json(&keys.generate(&n, &spec)?)
            }
            SshCall::Rotate(n, r) => {
                let current = keys.show(&n)?;
                let comment = r.comment.or_else(|| {
                    current
                        .current
                        .public_key
                        .splitn(3, ' ')
                        .nth(2)
                        .map(str::to_owned)
                });
                let spec = KeySpec {
                    algorithm: r.algorithm.unwrap_or(current.current.algorithm),
                    comment,
                    passphrase: r.passphrase,
                };
                json(&keys.rotate(&n, &spec)?)
            }
            SshCall::DropPrevious(n) => json(&keys.drop_previous(&n)?),
            SshCall::Delete(n) => {
                keys.delete(&n)?;
                json!({ "name": n, "deleted": true })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for text in [
            "/ssh/keys",
            "/ssh/keys/deploy",
            "/ssh/keys/deploy/public",
            "/ssh/keys/deploy/private",
            "/ssh/keys/deploy/rotate",
            "/ssh/keys/deploy/drop-previous",
        ] {
            let path = SshPath::parse(text).unwrap().unwrap();
            assert_eq!(path.to_string(), text);
        }
        assert_eq!(SshPath::parse("/sshx").unwrap(), None);
        assert!(SshPath::parse("/ssh/keys/deploy/other").is_err());
        assert!(SshPath::parse("/ssh/keys/../x").is_err());
        let private = SshCall::Private("deploy".parse().unwrap());
        assert_eq!(private.access(), VaultAccess::Value);
        assert_eq!(SshCall::List.access(), VaultAccess::Metadata);
    }
}
