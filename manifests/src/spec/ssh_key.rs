//! `kind: SshKey` — an SSH key pair OrbitLab generates, keeps in the vault,
//! injects into instances and rotates.
//!
//! With `rotate_every`, a new key replaces the current one once the current
//! one is that old; the previous key stays valid (in instances'
//! `authorized_keys`) for `overlap` (default: one day, at most half the
//! rotation period), then it is removed. Pure: no I/O.

use serde::{Deserialize, Serialize};

use crate::error::Problems;
use crate::names::Name;
use crate::period::Period;
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
    /// Replace the key once it is this old (none: never rotated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub rotate_every: Option<Period>,
    /// How long the previous key stays valid after a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub overlap: Option<Period>,
}

impl SshKeySpec {
    /// The overlap in seconds: as declared, else one day capped at half
    /// the rotation period (`None` without rotation).
    pub fn overlap_secs(&self) -> Option<u64> {
        let every = self.rotate_every?.as_secs();
        Some(
            self.overlap
                .map_or_else(|| 86_400u64.min(every / 2), Period::as_secs),
        )
    }

    pub(crate) fn check(&self, p: &mut Problems) {
        match (self.rotate_every, self.overlap) {
            (None, Some(_)) => p.push(
                "overlap",
                "applies only to keys that rotate; set rotate_every too, or remove overlap",
            ),
            (Some(every), Some(overlap)) if overlap >= every => p.push(
                "overlap",
                format!(
                    "{overlap} is not shorter than rotate_every ({every}); two rotations would overlap"
                ),
            ),
            _ => {}
        }
    }
}
