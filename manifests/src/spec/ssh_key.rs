//! `kind: SshKey` — an SSH key pair OrbitLab generates, keeps in the vault,
//! injects into instances and rotates. Pure: no I/O.

use serde::{Deserialize, Serialize};

use crate::names::Name;
use crate::text::Comment;

/// Key algorithm.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SshKeyAlgorithm {
    /// Ed25519 (the default).
    #[default]
    Ed25519,
    /// RSA with a 4096-bit modulus, for old clients.
    Rsa4096,
}

/// The desired state of an SSH key pair.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct SshKeySpec {
    /// `ed25519` (default) or `rsa4096`.
    #[serde(default)]
    #[garde(skip)]
    pub algorithm: SshKeyAlgorithm,
    /// Comment written after the public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub comment: Option<Comment>,
    /// Passphrase protecting the private key (name of a `Secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub passphrase: Option<Name>,
}
