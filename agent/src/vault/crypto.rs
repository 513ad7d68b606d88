//! The vault's cryptography, pure and small: random 256-bit keys,
//! AES-256-GCM with random 96-bit nonces (sealing values and wrapping data
//! keys), and the associated data that binds a ciphertext to its secret
//! path, version, creation time and key-encryption key.
//!
//! Every buffer that holds a key or plaintext is a [`Zeroizing`] one, sized
//! up front so that no reallocation leaves a copy in freed memory.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::ids::{SecretPath, Timestamp, Version};

/// Bytes of an AES-256 key.
pub(crate) const KEY_LEN: usize = 32;
/// Bytes of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;

/// A 256-bit key, wiped on drop.
pub(crate) type Key = Zeroizing<[u8; KEY_LEN]>;

/// Authentication failed: wrong key, or the ciphertext, nonce or associated
/// data differ from what was sealed. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadFailure;

/// A fresh random key from the operating system.
pub(crate) fn random_key() -> Key {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(&mut key[..]);
    key
}

/// Encrypts `plaintext` under `key` with a fresh random nonce; returns the
/// nonce and `ciphertext || tag`.
pub(crate) fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buf.extend_from_slice(plaintext);
    cipher(key)
        .encrypt_in_place(Nonce::from_slice(&nonce), aad, &mut *buf)
        .expect("AES-GCM encryption of at most 64 KiB cannot fail");
    // `buf` now holds only ciphertext and tag: nothing secret to wipe, but
    // the copy out keeps the zeroizing wrapper's guarantee simple.
    (nonce, buf.to_vec())
}

/// Decrypts and authenticates `ciphertext || tag`.
pub(crate) fn open(
    key: &Key,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AeadFailure> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    cipher(key)
        .decrypt_in_place(Nonce::from_slice(nonce), aad, &mut *buf)
        .map_err(|_| AeadFailure)?;
    Ok(buf)
}

/// Opens a wrapped data key (must decrypt to exactly [`KEY_LEN`] bytes).
pub(crate) fn unwrap_key(
    kek: &Key,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    wrapped: &[u8],
) -> Result<Key, AeadFailure> {
    let raw = open(kek, nonce, aad, wrapped)?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if raw.len() != KEY_LEN {
        return Err(AeadFailure);
    }
    key.copy_from_slice(&raw);
    Ok(key)
}

fn cipher(key: &Key) -> Aes256Gcm {
    Aes256Gcm::new_from_slice(&key[..]).expect("a 32-byte key is a valid AES-256 key")
}

/// Identifier of a key-encryption key: the first 8 bytes of
/// SHA-256("orbitlab-vault/v1/kek-id" || key). Derived from the key itself,
/// so a keyring holding a different key under a familiar name is caught.
pub(crate) fn kek_fingerprint(key: &Key) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(b"orbitlab-vault/v1/kek-id")
        .chain_update(&key[..])
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

/// Associated data of a sealed value: secret path, version and creation
/// time. Copying a ciphertext to another path or version, or editing its
/// time, makes it fail to open.
pub(crate) fn data_aad(path: &SecretPath, version: Version, created: Timestamp) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + path.as_str().len());
    put_field(&mut aad, b"orbitlab-vault/v1/data");
    put_field(&mut aad, path.as_str().as_bytes());
    aad.extend_from_slice(&version.get().to_be_bytes());
    aad.extend_from_slice(&created.0.to_be_bytes());
    aad
}

/// Associated data of a wrapped data key: the wrapping KEK's id, the secret
/// path and the version the data key belongs to.
pub(crate) fn wrap_aad(kek_id: &str, path: &SecretPath, version: Version) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64 + path.as_str().len());
    put_field(&mut aad, b"orbitlab-vault/v1/wrap");
    put_field(&mut aad, kek_id.as_bytes());
    put_field(&mut aad, path.as_str().as_bytes());
    aad.extend_from_slice(&version.get().to_be_bytes());
    aad
}

/// Length-prefixed field, so that no two different field lists encode to
/// the same bytes.
fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    let len = u32::try_from(field.len()).expect("associated-data fields are short");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> SecretPath {
        s.parse().unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = random_key();
        let v1 = Version::FIRST;
        let aad = data_aad(&path("a/b"), v1, Timestamp(5));
        let (nonce, ct) = seal(&key, &aad, b"plain");
        assert_eq!(ct.len(), 5 + TAG_LEN);
        assert_eq!(&open(&key, &nonce, &aad, &ct).unwrap()[..], b"plain");
        // Another path, version, time or key: refused.
        for other in [
            data_aad(&path("a/c"), v1, Timestamp(5)),
            data_aad(&path("a/b"), v1.next(), Timestamp(5)),
            data_aad(&path("a/b"), v1, Timestamp(6)),
        ] {
            assert_eq!(open(&key, &nonce, &other, &ct), Err(AeadFailure));
        }
        assert_eq!(open(&random_key(), &nonce, &aad, &ct), Err(AeadFailure));
        let mut flipped = ct.clone();
        flipped[0] ^= 1;
        assert_eq!(open(&key, &nonce, &aad, &flipped), Err(AeadFailure));
    }

    #[test]
    fn nonces_and_keys_are_fresh() {
        let key = random_key();
        let (n1, c1) = seal(&key, b"", b"same");
        let (n2, c2) = seal(&key, b"", b"same");
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
        assert_ne!(*random_key(), *random_key());
    }

    #[test]
    fn key_wrap_binds_kek_id_path_and_version() {
        let kek = random_key();
        let dk = random_key();
        let aad = wrap_aad("00aa", &path("x"), Version::FIRST);
        let (nonce, wrapped) = seal(&kek, &aad, &dk[..]);
        assert_eq!(*unwrap_key(&kek, &nonce, &aad, &wrapped).unwrap(), *dk);
        let elsewhere = wrap_aad("00ab", &path("x"), Version::FIRST);
        assert!(unwrap_key(&kek, &nonce, &elsewhere, &wrapped).is_err());
    }

    #[test]
    fn aad_fields_cannot_be_shifted() {
        // "ab" + "c" and "a" + "bc" must differ.
        let a = wrap_aad("ab", &path("c"), Version::FIRST);
        let b = wrap_aad("a", &path("bc"), Version::FIRST);
        assert_ne!(a, b);
    }
}
