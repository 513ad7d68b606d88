//! `kind: Secret` — the metadata of a secret. The value never appears in a
//! manifest: it lives encrypted in the vault under `priv/orbitlab/`, and
//! manifests refer to it by name. Pure: no I/O.

use serde::{Deserialize, Serialize};

/// What a secret holds; it decides how a value is generated and shown.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SecretType {
    /// A password (generated if none is set).
    Password,
    /// An API token.
    Token,
    /// Anything else.
    #[default]
    Opaque,
}

/// The metadata of a secret (its description lives in `metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// What the secret holds.
    #[serde(default, rename = "type")]
    #[garde(skip)]
    pub secret_type: SecretType,
}
