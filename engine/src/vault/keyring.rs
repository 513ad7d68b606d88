//! The vault keyring: key-encryption keys (KEKs) and which one is active.
//!
//! On disk: `priv/orbitlab/vault/keyring.json` (root-only, 0600), written
//! only under the vault lock:
//! `{"format":1,"active":ID,"keys":[{"id":ID,"created":SECS,"key":B64}]}`.
//! A KEK's id is derived from the key ([`crypto::kek_fingerprint`]), so a
//! damaged key or a keyring from another cluster is recognised as such.
//! Older KEKs stay until no version of any secret is wrapped by them and
//! no secret's history is MAC'd with them. Each KEK has two uses: an
//! AES-256 key (wrapping data keys) and, through a derived key, an
//! HMAC-SHA-256 key (authenticating version histories, see `history`).
//!
//! Sealed ([`super::seal`]): the file also records `"seal": {argon2id
//! parameters and salt}`, and each entry holds `"wrapped"` (the KEK
//! wrapped by the unseal key) instead of `"key"`. Loading it needs the
//! unseal key; without it the keyring is [`KeyringProblem::Sealed`].

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::crypto::{self, KEY_LEN, Key};
use super::ids::Timestamp;
use super::record::json_error;
use super::seal::{self, SealParams};

/// On-disk format number of the keyring file.
const FORMAT: u32 = 1;

/// Identifier of a key-encryption key (16 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KekId(String);

impl KekId {
    fn of(key: &Key) -> KekId {
        KekId(hex::encode(crypto::kek_fingerprint(key)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `orbitlab vault status` shows about one KEK (never the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KekInfo {
    /// Its id.
    pub id: KekId,
    /// When it was made.
    pub created: Timestamp,
    /// True for the one new data keys are wrapped with.
    pub active: bool,
}

struct Kek {
    created: Timestamp,
    key: Key,
}

/// The loaded keyring. Keys are wiped from memory when it drops.
pub(crate) struct Keyring {
    active: KekId,
    keys: BTreeMap<KekId, Kek>,
    /// Sealed: how the unseal key is derived, and that key.
    seal: Option<(SealParams, Key)>,
}

/// Why a keyring file cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyringProblem {
    /// It is sealed and this process holds no key for it.
    Sealed,
    /// It is sealed and the key given opens none of its KEKs.
    WrongKey,
    /// It is damaged (the reason; never key material).
    Damaged(String),
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    format: u32,
    active: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seal: Option<SealParams>,
    keys: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: String,
    created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wrapped: Option<String>,
}

impl Keyring {
    /// A new keyring with one fresh, active KEK.
    pub(crate) fn generate(now: Timestamp) -> Keyring {
        let mut ring = Keyring {
            active: KekId(String::new()),
            keys: BTreeMap::new(),
            seal: None,
        };
        ring.add_active(now);
        ring
    }

    /// Adds a fresh KEK and makes it the active one; returns its id.
    pub(crate) fn add_active(&mut self, now: Timestamp) -> KekId {
        let key = crypto::random_key();
        let id = KekId::of(&key);
        self.keys.insert(id.clone(), Kek { created: now, key });
        self.active = id.clone();
        id
    }

    /// The active KEK.
    pub(crate) fn active(&self) -> (&KekId, &Key) {
        let kek = &self.keys[&self.active];
        (&self.active, &kek.key)
    }

    /// The KEK with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&Key> {
        self.keys.get(&KekId(id.to_owned())).map(|k| &k.key)
    }

    /// Drops every KEK except the active one for which `in_use` is false;
    /// returns the ids dropped.
    pub(crate) fn retire_unused(&mut self, in_use: impl Fn(&KekId) -> bool) -> Vec<KekId> {
        let active = self.active.clone();
        let dropped: Vec<KekId> = self
            .keys
            .keys()
            .filter(|id| **id != active && !in_use(id))
            .cloned()
            .collect();
        for id in &dropped {
            self.keys.remove(id);
        }
        dropped
    }

    /// Public facts about every KEK.
    pub(crate) fn info(&self) -> Vec<KekInfo> {
        self.keys
            .iter()
            .map(|(id, k)| KekInfo {
                id: id.clone(),
                created: k.created,
                active: *id == self.active,
            })
            .collect()
    }

    /// Seals the keyring from now on: its KEKs are written wrapped by
    /// `key` (derived with `params`).
    pub(crate) fn seal_with(&mut self, params: SealParams, key: Key) {
        self.seal = Some((params, key));
    }

    /// True when the keyring is sealed.
    pub(crate) fn is_sealed(&self) -> bool {
        self.seal.is_some()
    }

    /// The file's bytes (key material: zeroized buffer).
    pub(crate) fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let file = KeyringFile {
            format: FORMAT,
            active: self.active.0.clone(),
            seal: self.seal.as_ref().map(|(params, _)| params.clone()),
            keys: self
                .keys
                .iter()
                .map(|(id, k)| match &self.seal {
                    None => KeyEntry {
                        id: id.0.clone(),
                        created: k.created.0,
                        key: Some(Zeroizing::new(B64.encode(&k.key[..]))),
                        wrapped: None,
                    },
                    Some((_, unseal)) => KeyEntry {
                        id: id.0.clone(),
                        created: k.created.0,
                        key: None,
                        wrapped: Some(seal::wrap(unseal, &id.0, &k.key)),
                    },
                })
                .collect(),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(64 + 128 * self.keys.len()));
        serde_json::to_writer(&mut *out, &file).expect("a keyring always serializes");
        out
    }

    /// The sealing parameters a keyring file records (`None`: not sealed).
    pub(crate) fn seal_params(bytes: &[u8]) -> Result<Option<SealParams>, String> {
        let file: KeyringFile = serde_json::from_slice(bytes)
            .map_err(|e| format!("it is not a valid keyring ({})", json_error(&e)))?;
        Ok(file.seal)
    }

    /// Parses and checks a plain keyring file. The error is the reason
    /// only; the caller names the file.
    #[cfg(test)]
    pub(crate) fn parse(bytes: &[u8]) -> Result<Keyring, String> {
        Keyring::parse_with(bytes, |_| None).map_err(|p| match p {
            KeyringProblem::Damaged(why) => why,
            KeyringProblem::Sealed | KeyringProblem::WrongKey => "it is sealed".into(),
        })
    }

    /// Parses and checks a keyring file, opening a sealed one with the key
    /// `unseal` gives for its parameters.
    pub(crate) fn parse_with(
        bytes: &[u8],
        unseal: impl Fn(&SealParams) -> Option<Key>,
    ) -> Result<Keyring, KeyringProblem> {
        use KeyringProblem::Damaged;
        let file: KeyringFile = serde_json::from_slice(bytes)
            .map_err(|e| Damaged(format!("it is not a valid keyring ({})", json_error(&e))))?;
        if file.format != FORMAT {
            return Err(Damaged(format!(
                "it has format {}, this OrbitLab reads format {FORMAT}",
                file.format
            )));
        }
        let sealing = match &file.seal {
            None => None,
            Some(params) => {
                params.check().map_err(Damaged)?;
                let key = unseal(params).ok_or(KeyringProblem::Sealed)?;
                // The active KEK must open: else the key is not this
                // keyring's (a wrong passphrase).
                let active = file
                    .keys
                    .iter()
                    .find(|e| e.id == file.active)
                    .and_then(|e| e.wrapped.as_deref())
                    .ok_or_else(|| {
                        Damaged("its active key is not among its wrapped keys".into())
                    })?;
                if seal::unwrap(&key, &file.active, active).is_none() {
                    return Err(KeyringProblem::WrongKey);
                }
                Some((params.clone(), key))
            }
        };
        let mut keys = BTreeMap::new();
        for entry in &file.keys {
            let key = match (&sealing, &entry.key, &entry.wrapped) {
                (None, Some(text), None) => decode_key(text),
                (Some((_, unseal)), None, Some(text)) => seal::unwrap(unseal, &entry.id, text),
                _ => {
                    return Err(Damaged(format!(
                        "entry {:?} holds a {} key in a {} keyring",
                        entry.id,
                        if entry.key.is_some() {
                            "plain"
                        } else {
                            "wrapped"
                        },
                        if sealing.is_some() { "sealed" } else { "plain" },
                    )));
                }
            }
            .ok_or_else(|| {
                Damaged(format!(
                    "the key of entry {:?} is not 32 bytes of base64 or does not open",
                    entry.id
                ))
            })?;
            let id = KekId::of(&key);
            if id.0 != entry.id {
                return Err(Damaged(format!(
                    "the key of entry {:?} does not match its id (the file was edited or damaged)",
                    entry.id
                )));
            }
            let kek = Kek {
                created: Timestamp(entry.created),
                key,
            };
            if keys.insert(id, kek).is_some() {
                return Err(Damaged(format!("entry {:?} appears twice", entry.id)));
            }
        }
        let active = KekId(file.active.clone());
        if !keys.contains_key(&active) {
            return Err(Damaged(format!(
                "its active key {:?} is not among its keys",
                file.active
            )));
        }
        Ok(Keyring {
            active,
            keys,
            seal: sealing,
        })
    }
}

fn decode_key(text: &str) -> Option<Key> {
    let mut buf = Zeroizing::new([0u8; KEY_LEN + 16]);
    let n = B64.decode_slice(text.as_bytes(), &mut buf[..]).ok()?;
    if n != KEY_LEN {
        return None;
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&buf[..KEY_LEN]);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rotation() {
        let mut ring = Keyring::generate(Timestamp(1));
        let first = ring.active().0.clone();
        let second = ring.add_active(Timestamp(2));
        assert_ne!(first, second);
        let parsed = Keyring::parse(&ring.to_bytes()).unwrap();
        assert_eq!(parsed.active().0, &second);
        assert_eq!(
            *parsed.get(first.as_str()).unwrap(),
            *ring.get(first.as_str()).unwrap()
        );
        assert_eq!(parsed.info().len(), 2);
        let mut parsed = parsed;
        assert_eq!(parsed.retire_unused(|_| false), vec![first]);
        assert_eq!(parsed.info().len(), 1);
        assert!(parsed.info()[0].active);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let ring = Keyring::generate(Timestamp(1));
        let bytes = ring.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        let key_b64 = text
            .split("\"key\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(!format!("{ring:?}").contains(key_b64));
    }

    #[test]
    fn damaged_keyrings_are_refused_with_a_reason() {
        let ring = Keyring::generate(Timestamp(1));
        let good = String::from_utf8(ring.to_bytes().to_vec()).unwrap();
        let key_b64 = good
            .split("\"key\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut other = key_b64.as_bytes().to_vec();
        other[3] = if other[3] == b'A' { b'B' } else { b'A' };
        let edited = good.replace(key_b64, std::str::from_utf8(&other).unwrap());
        for (bad, needle) in [
            ("{}".to_owned(), "not a valid keyring"),
            (good.replace("\"format\":1", "\"format\":2"), "format 2"),
            (edited, "does not match its id"),
            (good.replace(key_b64, "AAAA"), "not 32 bytes"),
            (
                good.replace("\"created\":1", &format!("\"created\":\"{key_b64}\"")),
                "wrong type",
            ),
        ] {
            let err = Keyring::parse(bad.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{err}");
            assert!(!err.contains(key_b64), "key material in an error: {err}");
        }
    }
}
