//! The on-disk forms of one secret: its record (every version) and its
//! head (the authenticated summary of that history). Pure: encoding and
//! decoding only; [`super::history`] decides what to trust.
//!
//! **Record** `priv/orbitlab/vault/secrets/<h0h1>/<h2..h31>.json`, where `h`
//! is the hex SHA-256 of the secret path (so names of any shape map to
//! short, uniform file names). Content (compact JSON, root-only, 0600):
//! `{"format":2,"path":P,"incarnation":HEX,"generation":G,"versions":[
//! {"version":N,"created":SECS,"kek":ID,"key":B64(nonce||wrapped data key),
//! "data":B64(nonce||ciphertext)}],"mac_kek":ID,"mac":HEX}`.
//!
//! **Head** `priv/orbitlab/vault/heads/<h0h1>/<h2..h31>.json` (same name):
//! `{"format":2,"path":P,"incarnation":HEX,"generation":G,"versions":[
//! {"version":N,"created":SECS,"digest":HEX}],"mac_kek":ID,"mac":HEX}`.
//!
//! Both carry the same [`Head`]: a record's is computed from its versions
//! (one [`crypto::version_digest`] each), so the record's MAC covers its
//! whole version list. Every field is either checked here, bound into an
//! AEAD tag, or covered by a MAC, so no single changed byte goes unnoticed.
//! Format 1 (records without incarnation, generation or MAC, written by
//! pre-release builds) is refused: see [`super`] ("Migration").

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::crypto::{self, DIGEST_LEN, KEY_LEN, MAC_LEN, NONCE_LEN, TAG_LEN};
use super::ids::{SecretPath, Timestamp, Version};
use crate::store::StorePath;
use crate::store::layout;

/// On-disk format number of record and head files.
const FORMAT: u32 = 2;

/// Bytes of an incarnation id.
pub(crate) const INCARNATION_LEN: usize = 16;

/// The file id of `path`: the first 16 bytes of a domain-separated
/// SHA-256, so file names reveal nothing of secret paths. Part of the
/// on-disk format; [`layout`] turns it into `<h0h1>/<h2..h31>.json`.
fn file_id(path: &SecretPath) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"orbitlab-vault/v1/path")
        .chain_update(path.as_str().as_bytes())
        .finalize();
    let mut id = [0; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// Record file of `path` (`vault/secrets/...`, private area).
pub(crate) fn file_for(path: &SecretPath) -> StorePath {
    layout::vault_secret(&file_id(path))
}

/// Head file of `path` (`vault/heads/...`, private area).
pub(crate) fn head_for(path: &SecretPath) -> StorePath {
    layout::vault_head(&file_id(path))
}

/// A nonce and the AES-GCM output it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) ciphertext: Vec<u8>,
}

/// One stored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionEntry {
    pub(crate) version: Version,
    pub(crate) created: Timestamp,
    /// Id of the KEK that wrapped `key`.
    pub(crate) kek: String,
    /// The data key, wrapped by the KEK.
    pub(crate) key: Sealed,
    /// The value, sealed by the data key.
    pub(crate) data: Sealed,
}

impl VersionEntry {
    /// This version as a head lists it.
    pub(crate) fn listed(&self) -> Listed {
        Listed {
            version: self.version,
            created: self.created,
            digest: crypto::version_digest(
                self.version,
                self.created,
                &self.data.nonce,
                &self.data.ciphertext,
            ),
        }
    }
}

/// A MAC over a [`Head`] and the KEK whose derived key made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeadMac {
    pub(crate) kek: String,
    pub(crate) tag: [u8; MAC_LEN],
}

/// A version as a head lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) version: Version,
    pub(crate) created: Timestamp,
    pub(crate) digest: [u8; DIGEST_LEN],
}

/// The authenticated summary of a secret's history: which incarnation of
/// the secret (a random id chosen when it is created, so files of a deleted
/// secret never pass for a re-created one), which generation (bumped by
/// every write), and every version kept. Empty `versions`: no secret (a
/// creation or deletion in progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) path: String,
    pub(crate) incarnation: [u8; INCARNATION_LEN],
    pub(crate) generation: u64,
    pub(crate) versions: Vec<Listed>,
    pub(crate) mac: HeadMac,
}

impl Head {
    /// The bytes the MAC covers.
    pub(crate) fn message(&self) -> Vec<u8> {
        crypto::head_message(
            &self.path,
            &self.incarnation,
            self.generation,
            self.versions
                .iter()
                .map(|l| (l.version, l.created, &l.digest)),
        )
    }

    /// Version numbers, e.g. `1, 2, 5` (`none` when empty).
    pub(crate) fn version_list(&self) -> String {
        if self.versions.is_empty() {
            return "none".into();
        }
        self.versions
            .iter()
            .map(|l| l.version.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The head file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let form = HeadForm {
            format: FORMAT,
            path: self.path.clone(),
            incarnation: hex::encode(self.incarnation),
            generation: self.generation,
            versions: self
                .versions
                .iter()
                .map(|l| ListedForm {
                    version: l.version.get(),
                    created: l.created.0,
                    digest: hex::encode(l.digest),
                })
                .collect(),
            mac_kek: self.mac.kek.clone(),
            mac: hex::encode(self.mac.tag),
        };
        serde_json::to_vec(&form).expect("a head always serializes")
    }

    /// Decodes a head file and checks its structure. The error is the
    /// reason only; the caller names the file and the secret.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Head, String> {
        let form: HeadForm = serde_json::from_slice(bytes)
            .map_err(|e| format!("it is not a valid secret head ({})", json_error(&e)))?;
        check_format(form.format)?;
        let mut versions: Vec<Listed> = Vec::with_capacity(form.versions.len());
        for l in form.versions {
            let version = checked_version(versions.last().map(|p| p.version), l.version)?;
            let digest = decode_hex::<DIGEST_LEN>(&l.digest)
                .ok_or_else(|| format!("version {version} has a malformed digest"))?;
            versions.push(Listed {
                version,
                created: Timestamp(l.created),
                digest,
            });
        }
        Ok(Head {
            path: form.path,
            incarnation: decode_incarnation(&form.incarnation)?,
            generation: form.generation,
            versions,
            mac: decode_mac(form.mac_kek, &form.mac)?,
        })
    }
}

/// A decoded record (structure checked, nothing decrypted or trusted yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretRecord {
    /// The path the file says it holds.
    pub(crate) path: String,
    /// Which incarnation of the secret.
    pub(crate) incarnation: [u8; INCARNATION_LEN],
    /// Generation of the write that produced this record.
    pub(crate) generation: u64,
    /// Versions, strictly increasing, never empty.
    pub(crate) versions: Vec<VersionEntry>,
    /// MAC over [`SecretRecord::head`].
    pub(crate) mac: HeadMac,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    format: u32,
    path: String,
    incarnation: String,
    generation: u64,
    versions: Vec<VersionForm>,
    mac_kek: String,
    mac: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionForm {
    version: u64,
    created: u64,
    kek: String,
    key: String,
    data: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadForm {
    format: u32,
    path: String,
    incarnation: String,
    generation: u64,
    versions: Vec<ListedForm>,
    mac_kek: String,
    mac: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedForm {
    version: u64,
    created: u64,
    digest: String,
}

/// Just enough of a record to name and count it, without decoding the
/// rest (so that `delete` can clear a damaged file).
#[derive(Deserialize)]
pub(crate) struct Header {
    pub(crate) path: String,
    pub(crate) versions: Vec<serde::de::IgnoredAny>,
}

impl SecretRecord {
    /// The newest version.
    pub(crate) fn latest(&self) -> &VersionEntry {
        self.versions.last().expect("records are never empty")
    }

    /// The head this record claims (what its MAC covers).
    pub(crate) fn head(&self) -> Head {
        Head {
            path: self.path.clone(),
            incarnation: self.incarnation,
            generation: self.generation,
            versions: self.versions.iter().map(VersionEntry::listed).collect(),
            mac: self.mac.clone(),
        }
    }

    /// The file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let form = FileForm {
            format: FORMAT,
            path: self.path.clone(),
            incarnation: hex::encode(self.incarnation),
            generation: self.generation,
            versions: self
                .versions
                .iter()
                .map(|v| VersionForm {
                    version: v.version.get(),
                    created: v.created.0,
                    kek: v.kek.clone(),
                    key: encode_sealed(&v.key),
                    data: encode_sealed(&v.data),
                })
                .collect(),
            mac_kek: self.mac.kek.clone(),
            mac: hex::encode(self.mac.tag),
        };
        serde_json::to_vec(&form).expect("a secret record always serializes")
    }

    /// Decodes a file and checks its structure. The error is the reason
    /// only; the caller names the file and the secret.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SecretRecord, String> {
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        if let Ok(Format { format: 1 }) = serde_json::from_slice::<Format>(bytes) {
            return Err(
                "it has format 1: a pre-release OrbitLab wrote it before version histories were authenticated, and this OrbitLab will not trust a history it cannot check (read the value with the build that wrote it, then delete the secret and set it again)"
                    .into(),
            );
        }
        let form: FileForm = serde_json::from_slice(bytes)
            .map_err(|e| format!("it is not a valid secret file ({})", json_error(&e)))?;
        check_format(form.format)?;
        if form.versions.is_empty() {
            return Err("it holds no version".into());
        }
        let mut versions: Vec<VersionEntry> = Vec::with_capacity(form.versions.len());
        for v in form.versions {
            let version = checked_version(versions.last().map(|p| p.version), v.version)?;
            if !is_kek_id(&v.kek) {
                return Err(format!(
                    "version {version} names a malformed key-encryption key id"
                ));
            }
            let key = decode_sealed(&v.key)
                .filter(|s| s.ciphertext.len() == KEY_LEN + TAG_LEN)
                .ok_or_else(|| format!("version {version} has a malformed wrapped key"))?;
            let data = decode_sealed(&v.data)
                .filter(|s| s.ciphertext.len() > TAG_LEN)
                .ok_or_else(|| format!("version {version} has malformed data"))?;
            versions.push(VersionEntry {
                version,
                created: Timestamp(v.created),
                kek: v.kek,
                key,
                data,
            });
        }
        Ok(SecretRecord {
            path: form.path,
            incarnation: decode_incarnation(&form.incarnation)?,
            generation: form.generation,
            versions,
            mac: decode_mac(form.mac_kek, &form.mac)?,
        })
    }
}

impl Header {
    /// Parses the path and version count of a record.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Header> {
        serde_json::from_slice::<Header>(bytes).ok()
    }
}

fn check_format(format: u32) -> Result<(), String> {
    if format == FORMAT {
        Ok(())
    } else {
        Err(format!(
            "it has format {format}, this OrbitLab reads format {FORMAT}"
        ))
    }
}

/// `n` as the version after `prev`: never 0, strictly increasing.
fn checked_version(prev: Option<Version>, n: u64) -> Result<Version, String> {
    let version = Version::new(n).ok_or("it holds a version 0")?;
    match prev {
        Some(prev) if prev >= version => Err(format!(
            "its versions are out of order ({prev} before {version})"
        )),
        _ => Ok(version),
    }
}

fn is_kek_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex only: one value, one spelling (an upper-cased digit is a
/// changed byte that must not decode to the same value).
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn decode_incarnation(text: &str) -> Result<[u8; INCARNATION_LEN], String> {
    decode_hex(text).ok_or_else(|| "its incarnation id is malformed".into())
}

fn decode_mac(kek: String, tag: &str) -> Result<HeadMac, String> {
    if !is_kek_id(&kek) {
        return Err("its MAC names a malformed key-encryption key id".into());
    }
    let tag = decode_hex(tag).ok_or("its MAC is malformed")?;
    Ok(HeadMac { kek, tag })
}

/// A JSON decoding error without any value from the input (serde_json
/// quotes offending strings, which could be key material or ciphertext).
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    let at = format!("line {}, column {}", e.line(), e.column());
    let text = e.to_string();
    match e.classify() {
        serde_json::error::Category::Data
            if ["missing field", "unknown field", "duplicate field"]
                .iter()
                .any(|p| text.starts_with(p)) =>
        {
            // Field names only, e.g. "unknown field `pathx`, expected ...".
            let name_only = text.split(", expected").next().unwrap_or(&text);
            let name_only = name_only.split(" at line").next().unwrap_or(name_only);
            format!("{name_only} at {at}")
        }
        serde_json::error::Category::Data => format!("a field has the wrong type or value at {at}"),
        serde_json::error::Category::Eof => format!("it ends early at {at}"),
        _ => format!("it is not valid JSON at {at}"),
    }
}

fn encode_sealed(s: &Sealed) -> String {
    let mut raw = Vec::with_capacity(NONCE_LEN + s.ciphertext.len());
    raw.extend_from_slice(&s.nonce);
    raw.extend_from_slice(&s.ciphertext);
    B64.encode(raw)
}

fn decode_sealed(text: &str) -> Option<Sealed> {
    let raw = B64.decode(text).ok()?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
    Some(Sealed {
        nonce: nonce.try_into().ok()?,
        ciphertext: ciphertext.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SecretRecord {
        let entry = |n: u64| VersionEntry {
            version: Version::new(n).unwrap(),
            created: Timestamp(1_700_000_000 + n),
            kek: "0123456789abcdef".into(),
            key: Sealed {
                nonce: [1; NONCE_LEN],
                ciphertext: vec![2; KEY_LEN + TAG_LEN],
            },
            data: Sealed {
                nonce: [3; NONCE_LEN],
                ciphertext: vec![4; 20],
            },
        };
        SecretRecord {
            path: "app/db".into(),
            incarnation: [0xab; INCARNATION_LEN],
            generation: 4,
            versions: vec![entry(1), entry(3)],
            mac: HeadMac {
                kek: "0123456789abcdef".into(),
                tag: [0xcd; MAC_LEN],
            },
        }
    }

    #[test]
    fn round_trip() {
        let rec = sample();
        let bytes = rec.encode();
        assert_eq!(SecretRecord::decode(&bytes).unwrap(), rec);
        let header = Header::decode(&bytes).unwrap();
        assert_eq!(header.path, "app/db");
        assert_eq!(header.versions.len(), 2);
        assert_eq!(rec.latest().version.get(), 3);
        let head = rec.head();
        assert_eq!(Head::decode(&head.encode()).unwrap(), head);
        assert_eq!(head.version_list(), "1, 3");
        assert_eq!(head.generation, 4);
        // Digests pin number, time and sealed value, not the wrapped key.
        let mut rewrapped = rec.clone();
        rewrapped.versions[0].key.ciphertext[0] ^= 1;
        rewrapped.versions[0].kek = "fedcba9876543210".into();
        assert_eq!(rewrapped.head().versions, head.versions);
        let mut changed = rec.clone();
        changed.versions[0].data.ciphertext[0] ^= 1;
        assert_ne!(changed.head().versions[0].digest, head.versions[0].digest);
        let mut empty = head.clone();
        empty.versions.clear();
        assert_eq!(
            Head::decode(&empty.encode()).unwrap().version_list(),
            "none"
        );
    }

    #[test]
    fn damaged_heads_are_refused() {
        let good = String::from_utf8(sample().head().encode()).unwrap();
        let tag = hex::encode([0xcd; MAC_LEN]);
        for (bad, needle) in [
            (good.replace("\"format\":2", "\"format\":1"), "format 1"),
            (good.replace(&tag, &tag.to_uppercase()), "MAC is malformed"),
            (good.replace(&tag, &tag[2..]), "MAC is malformed"),
            (good.replace("abab", "ABAB"), "incarnation id is malformed"),
            (
                good.replace("\"version\":3", "\"version\":1"),
                "out of order",
            ),
            (
                good.replace("\"digest\"", "\"digesx\""),
                "not a valid secret head",
            ),
        ] {
            let err = Head::decode(bad.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn structural_damage_is_refused() {
        let good = String::from_utf8(sample().encode()).unwrap();
        for (bad, needle) in [
            (good.replace("\"format\":2", "\"format\":7"), "format 7"),
            (
                good.replace("\"format\":2", "\"format\":1"),
                "pre-release OrbitLab",
            ),
            (
                good.replace("\"generation\":4", "\"generation\":-1"),
                "wrong type",
            ),
            (
                good.replace("\"version\":3", "\"version\":1"),
                "out of order",
            ),
            (good.replace("\"version\":1", "\"version\":0"), "version 0"),
            (
                good.replace("0123456789abcdef", "0123456789abcdeX"),
                "malformed key-encryption",
            ),
            (
                good.replace("\"path\"", "\"pathx\""),
                "not a valid secret file",
            ),
            (good[..good.len() - 1].to_owned(), "not a valid secret file"),
        ] {
            let err = SecretRecord::decode(bad.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains("SECRETISH") && !err.contains("BAQE"), "{err}");
        }
    }

    #[test]
    fn file_names_are_sharded_hashes() {
        let f = file_for(&"app/db/password".parse().unwrap());
        let rest = f.relative().strip_prefix("vault/secrets/").unwrap();
        let (shard, name) = rest.split_once('/').unwrap();
        assert_eq!(shard.len(), 2);
        assert_eq!(name.len(), 30 + ".json".len());
        assert_ne!(f, file_for(&"app/db/passwore".parse().unwrap()));
        let h = head_for(&"app/db/password".parse().unwrap());
        assert_eq!(h.relative().strip_prefix("vault/heads/"), Some(rest));
    }
}
