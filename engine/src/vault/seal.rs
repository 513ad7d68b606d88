//! The sealed mode of the vault: its key-encryption keys (KEKs) stored
//! wrapped by a key derived from a passphrase, and that key held in this
//! process's memory only once someone unseals it.
//!
//! By default the keyring holds the KEKs in the clear (root on a node can
//! read `priv/` anyway). Sealed, each KEK in `keyring.json` is AES-256-GCM
//! wrapped (associated data: its id) by the *unseal key*, derived from the
//! passphrase with Argon2id and the salt and cost the keyring records
//! ([`SealParams`]). The unseal key lives in this process's memory only
//! ([`remember`]), in a zeroizing buffer: never on disk, never in a log or
//! an error; a restarted process is sealed again until `orbitlab vault
//! unseal` gives it the passphrase. The agent locks its memory
//! (`mlockall`) and is not dumpable from its start (`orbitlab-agent`'s
//! `protect_memory`), so the key is neither swapped out nor in a core
//! dump.
//!
//! A wrong passphrase derives a key that opens no wrapped KEK: refused
//! without saying more. Pure computation and process memory; no I/O.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::crypto::{self, KEY_LEN, Key, NONCE_LEN};

/// How the unseal key is derived: Argon2id with this cost and salt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealParams {
    /// Always `argon2id`.
    pub kdf: String,
    /// Memory cost, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// Random salt, base64.
    pub salt: String,
}

/// Least memory cost accepted (8 MiB).
pub const MIN_MEMORY_MIB: u32 = 8;
/// Most memory cost accepted (1 GiB): every agent pays it at each unseal.
pub const MAX_MEMORY_MIB: u32 = 1024;
/// Default memory cost (64 MiB, OWASP's Argon2id minimum is 19 MiB).
pub const DEFAULT_MEMORY_MIB: u32 = 64;

impl SealParams {
    /// Fresh parameters: a new random salt, `memory_mib` MiB (at least
    /// [`MIN_MEMORY_MIB`]), 3 passes, 1 lane.
    pub fn new(memory_mib: u32) -> SealParams {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        SealParams {
            kdf: "argon2id".into(),
            m_kib: memory_mib.clamp(MIN_MEMORY_MIB, MAX_MEMORY_MIB) * 1024,
            t: 3,
            p: 1,
            salt: B64.encode(salt),
        }
    }

    /// Checks the recorded parameters (they come from a file).
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.kdf != "argon2id" {
            return Err(format!("its key derivation {:?} is not argon2id", self.kdf));
        }
        if self.m_kib < MIN_MEMORY_MIB * 1024 || self.m_kib > MAX_MEMORY_MIB * 1024 {
            return Err(format!(
                "its Argon2id memory cost {} KiB is out of range",
                self.m_kib
            ));
        }
        if !(1..=16).contains(&self.t) || !(1..=8).contains(&self.p) {
            return Err("its Argon2id passes or lanes are out of range".into());
        }
        match B64.decode(&self.salt) {
            Ok(s) if (16..=64).contains(&s.len()) => Ok(()),
            _ => Err("its salt is not 16 to 64 bytes of base64".into()),
        }
    }

    /// The unseal key `passphrase` derives.
    pub(crate) fn derive(&self, passphrase: &[u8]) -> Result<Key, String> {
        self.check()?;
        let salt = B64.decode(&self.salt).map_err(|_| "bad salt".to_owned())?;
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(KEY_LEN))
            .map_err(|e| format!("its Argon2id parameters are refused: {e}"))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(passphrase, &salt, &mut key[..])
            .map_err(|e| format!("Argon2id failed: {e}"))?;
        Ok(key)
    }
}

/// The associated data a KEK is wrapped with.
fn aad(kek_id: &str) -> Vec<u8> {
    format!("orbitlab-vault/v1/sealed-kek/{kek_id}").into_bytes()
}

/// `base64(nonce || ciphertext || tag)` of `kek` wrapped by `unseal`.
pub(crate) fn wrap(unseal: &Key, kek_id: &str, kek: &Key) -> String {
    let (nonce, sealed) = crypto::seal(unseal, &aad(kek_id), &kek[..]);
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    B64.encode(out)
}

/// Opens a KEK [`wrap`] made; `None` for a wrong key or damaged text.
pub(crate) fn unwrap(unseal: &Key, kek_id: &str, text: &str) -> Option<Key> {
    let bytes = Zeroizing::new(B64.decode(text).ok()?);
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let nonce: [u8; NONCE_LEN] = bytes[..NONCE_LEN].try_into().ok()?;
    crypto::unwrap_key(unseal, &nonce, &aad(kek_id), &bytes[NONCE_LEN..]).ok()
}

/// The unseal key this process holds, by the salt it was derived with.
static UNSEALED: Mutex<Option<(String, Key)>> = Mutex::new(None);

/// Keeps `key` (derived with `params`) in this process's memory.
pub(crate) fn remember(params: &SealParams, key: &Key) {
    let mut held = UNSEALED.lock().unwrap_or_else(|e| e.into_inner());
    *held = Some((params.salt.clone(), key.clone()));
}

/// The unseal key for a keyring sealed with `params`, if this process
/// holds it.
pub(crate) fn held(params: &SealParams) -> Option<Key> {
    let held = UNSEALED.lock().unwrap_or_else(|e| e.into_inner());
    held.as_ref()
        .filter(|(salt, _)| *salt == params.salt)
        .map(|(_, key)| key.clone())
}

/// Wipes the unseal key from this process (`orbitlab vault seal` of a
/// running agent, and tests standing in for a restart).
pub fn forget() {
    let mut held = UNSEALED.lock().unwrap_or_else(|e| e.into_inner());
    *held = None;
}

/// True when this process holds an unseal key.
pub fn holds_key() -> bool {
    UNSEALED.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_kek_opens_with_the_passphrases_key_only() {
        let params = SealParams::new(MIN_MEMORY_MIB);
        let right = params.derive(b"correct horse").unwrap();
        let wrong = params.derive(b"correct hors").unwrap();
        let kek = crypto::random_key();
        let text = wrap(&right, "abc", &kek);
        assert_eq!(*unwrap(&right, "abc", &text).unwrap(), *kek);
        assert!(unwrap(&wrong, "abc", &text).is_none());
        assert!(unwrap(&right, "abd", &text).is_none(), "bound to its id");
        // Another salt derives another key from the same passphrase.
        let other = SealParams::new(MIN_MEMORY_MIB)
            .derive(b"correct horse")
            .unwrap();
        assert_ne!(*other, *right);
    }

    #[test]
    fn recorded_parameters_are_checked() {
        let mut p = SealParams::new(MIN_MEMORY_MIB);
        assert!(p.check().is_ok());
        p.kdf = "pbkdf2".into();
        assert!(p.check().unwrap_err().contains("argon2id"));
        let mut p = SealParams::new(MIN_MEMORY_MIB);
        p.m_kib = 1024;
        assert!(p.check().unwrap_err().contains("memory cost"));
        let mut p = SealParams::new(MIN_MEMORY_MIB);
        p.salt = "AA==".into();
        assert!(p.check().unwrap_err().contains("salt"));
    }
}
