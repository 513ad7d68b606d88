//! The agent's Proxmox connection as `orbitlab init` stores it:
//! `<root>/priv/orbitlab/pve-api.json`, root-only (0600 under `priv/`).
//! It holds the API token secret, so it is never logged, printed or passed
//! on a command line; `Debug` of every type here redacts the secret.

use serde::{Deserialize, Serialize};

use super::auth::{Credentials, Secret};
use super::client::ClientConfig;
use super::error::PveError;
use super::http::ClientOptions;
use super::tls::Trust;
use crate::store::{Store, StoreError, StorePath};

/// What to trust, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StoredTrust {
    /// A CA certificate file (on a node: `/etc/pve/pve-root-ca.pem`).
    CaFile(String),
    /// Exactly this certificate (SHA-256, `AA:BB:...`).
    Fingerprint(String),
    /// Plain HTTP to a loopback address (the simulator only).
    LoopbackHttp,
}

impl StoredTrust {
    /// What the client trusts; an error for a malformed fingerprint.
    pub fn trust(&self) -> Result<Trust, PveError> {
        Ok(match self {
            StoredTrust::CaFile(file) => Trust::CaFile(file.into()),
            StoredTrust::Fingerprint(fp) => Trust::Fingerprint(fp.parse()?),
            StoredTrust::LoopbackHttp => Trust::LoopbackHttp,
        })
    }
}

/// How to reach Proxmox.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredConnection {
    /// `https://HOST:8006`.
    pub url: String,
    /// `USER@REALM!TOKENNAME`.
    pub token: String,
    /// The token's secret.
    pub secret: String,
    pub trust: StoredTrust,
}

impl std::fmt::Debug for StoredConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredConnection")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("secret", &"<redacted>")
            .field("trust", &self.trust)
            .finish()
    }
}

/// Problems with the stored connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: no Proxmox connection is stored; run `orbitlab init` on a node first")]
    Missing { path: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

fn path() -> StorePath {
    crate::store::layout::connection()
}

impl StoredConnection {
    /// Reads the stored connection.
    pub fn load(store: &Store) -> Result<Self, ConnectionError> {
        let shown = store.absolute(&path()).display().to_string();
        let bytes = store
            .read(&path())?
            .ok_or_else(|| ConnectionError::Missing {
                path: shown.clone(),
            })?;
        // serde_json's message names the field, never the values.
        serde_json::from_slice(&bytes).map_err(|e| ConnectionError::Invalid {
            path: shown,
            reason: format!("not a valid connection file ({e}); run `orbitlab init` again"),
        })
    }

    /// Stores this connection (root-only).
    pub fn save(&self, store: &Store) -> Result<(), ConnectionError> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("the connection encodes");
        bytes.push(b'\n');
        store.write(&path(), &bytes)?;
        Ok(())
    }

    /// The client configuration for this connection.
    pub fn client_config(&self, store: &Store) -> Result<ClientConfig, ConnectionError> {
        let invalid = |reason: String| ConnectionError::Invalid {
            path: store.absolute(&path()).display().to_string(),
            reason,
        };
        let (user, name) = self.token.split_once('!').ok_or_else(|| {
            invalid(format!(
                "token {:?} is not USER@REALM!TOKENNAME",
                self.token
            ))
        })?;
        let credentials = Credentials::token(user, name, Secret::new(self.secret.clone()))
            .map_err(|e| invalid(format!("token: {e}")))?;
        let trust = self
            .trust
            .trust()
            .map_err(|e| invalid(format!("fingerprint: {e}")))?;
        Ok(ClientConfig {
            base_url: self.url.clone(),
            trust,
            credentials,
            options: ClientOptions::default(),
        })
    }
}
