//! The vault's cryptography, pure and small: random 256-bit keys,
//! AES-256-GCM with random 96-bit nonces (sealing values and wrapping data
//! keys), the associated data that binds a ciphertext to its secret path,
//! version, creation time and key-encryption key, and the HMAC-SHA-256 that
//! authenticates a secret's version history as a whole ([`head_mac`]).
//!
//! Every buffer that holds a key or plaintext is a [`Zeroizing`] one, sized
//! up front so that no reallocation leaves a copy in freed memory. The AES
//! key schedule (the expanded round keys of a KEK or data key) lives inside
//! the cipher value, which is built per operation and dropped right after:
//! the `aes` crate is built with its `zeroize` feature, so those round keys
//! are wiped when it drops. Two limits remain, both in the dependencies: a
//! move of the cipher value may leave a stack copy that nothing wipes, and
//! the GHASH subkey of AES-GCM (`H`, derived from the key) is not wiped on
//! x86-64 by `polyval` 0.6 (its auto-detecting backend has no `Drop`).

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use hmac::{Hmac, Mac};
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

/// Bytes of a version digest (SHA-256).
pub(crate) const DIGEST_LEN: usize = 32;
/// Bytes of a history MAC (HMAC-SHA-256).
pub(crate) const MAC_LEN: usize = 32;

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

/// Digest of one stored version, as a secret's head lists it:
/// SHA-256 over the version number, creation time, nonce and sealed value.
/// The wrapped data key is left out on purpose, so a KEK rotation (which
/// re-wraps keys and touches nothing else) leaves every digest unchanged;
/// the wrapped key is still authenticated, because only the right data key
/// opens the sealed value the digest pins.
pub(crate) fn version_digest(
    version: Version,
    created: Timestamp,
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
) -> [u8; DIGEST_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(b"orbitlab-vault/v2/version");
    hasher.update(version.get().to_be_bytes());
    hasher.update(created.0.to_be_bytes());
    hasher.update(nonce);
    hasher.update(
        u64::try_from(ciphertext.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes(),
    );
    hasher.update(ciphertext);
    hasher.finalize().into()
}

/// The bytes a history MAC covers: path, incarnation, generation, then
/// every version's number, creation time and digest, oldest first; all
/// fixed-size or length-prefixed, so no two histories encode alike.
pub(crate) fn head_message<'a>(
    path: &str,
    incarnation: &[u8],
    generation: u64,
    versions: impl ExactSizeIterator<Item = (Version, Timestamp, &'a [u8; DIGEST_LEN])>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + path.len() + versions.len() * (16 + DIGEST_LEN));
    put_field(&mut out, b"orbitlab-vault/v2/head");
    put_field(&mut out, path.as_bytes());
    put_field(&mut out, incarnation);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(
        &u64::try_from(versions.len())
            .unwrap_or(u64::MAX)
            .to_be_bytes(),
    );
    for (version, created, digest) in versions {
        out.extend_from_slice(&version.get().to_be_bytes());
        out.extend_from_slice(&created.0.to_be_bytes());
        out.extend_from_slice(digest);
    }
    out
}

/// HMAC-SHA-256 of `message` under the history key of `kek`.
pub(crate) fn head_mac(kek: &Key, message: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = history_mac(kek);
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Checks a history MAC (constant-time comparison).
pub(crate) fn head_mac_verify(
    kek: &Key,
    message: &[u8],
    tag: &[u8; MAC_LEN],
) -> Result<(), AeadFailure> {
    let mut mac = history_mac(kek);
    mac.update(message);
    mac.verify_slice(tag).map_err(|_| AeadFailure)
}

/// HMAC keyed with the history key derived from `kek`:
/// HMAC-SHA-256(kek, "orbitlab-vault/v2/history-mac-key"). Deriving it keeps
/// the KEK's two uses (AES key, MAC key) apart.
fn history_mac(kek: &Key) -> Hmac<Sha256> {
    let mut derive =
        <Hmac<Sha256> as Mac>::new_from_slice(&kek[..]).expect("HMAC takes keys of any length");
    derive.update(b"orbitlab-vault/v2/history-mac-key");
    let key = Zeroizing::new(<[u8; 32]>::from(derive.finalize().into_bytes()));
    <Hmac<Sha256> as Mac>::new_from_slice(&key[..]).expect("HMAC takes keys of any length")
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
    fn aes_round_keys_are_wiped_on_drop() {
        // Compiles only when `aes` is built with its `zeroize` feature:
        // then the cipher inside `Aes256Gcm` wipes its round keys on drop.
        fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wipes_on_drop::<aes::Aes256>();
        wipes_on_drop::<aes::Aes256Enc>();
    }

    #[test]
    fn history_macs_bind_every_field() {
        let kek = random_key();
        let d = [7u8; DIGEST_LEN];
        let v1 = Version::FIRST;
        let msg = |path: &str, inc: &[u8], generation: u64, list: &[(Version, Timestamp)]| {
            head_message(
                path,
                inc,
                generation,
                list.iter().map(|(v, t)| (*v, *t, &d)),
            )
        };
        let base = msg("a", &[1; 16], 2, &[(v1, Timestamp(5))]);
        let tag = head_mac(&kek, &base);
        assert_eq!(head_mac_verify(&kek, &base, &tag), Ok(()));
        for other in [
            msg("b", &[1; 16], 2, &[(v1, Timestamp(5))]),
            msg("a", &[2; 16], 2, &[(v1, Timestamp(5))]),
            msg("a", &[1; 16], 3, &[(v1, Timestamp(5))]),
            msg("a", &[1; 16], 2, &[(v1, Timestamp(6))]),
            msg("a", &[1; 16], 2, &[(v1.next(), Timestamp(5))]),
            msg("a", &[1; 16], 2, &[]),
        ] {
            assert_eq!(head_mac_verify(&kek, &other, &tag), Err(AeadFailure));
        }
        assert_eq!(
            head_mac_verify(&random_key(), &base, &tag),
            Err(AeadFailure)
        );
        // The MAC key is derived, not the KEK itself.
        let mut plain = <Hmac<Sha256> as Mac>::new_from_slice(&kek[..]).unwrap();
        plain.update(&base);
        assert_ne!(<[u8; 32]>::from(plain.finalize().into_bytes()), tag);
    }

    #[test]
    fn aad_fields_cannot_be_shifted() {
        // "ab" + "c" and "a" + "bc" must differ.
        let a = wrap_aad("ab", &path("c"), Version::FIRST);
        let b = wrap_aad("a", &path("bc"), Version::FIRST);
        assert_ne!(a, b);
    }
}
