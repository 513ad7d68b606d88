//! The on-disk form of one secret: every version of it in one file.
//!
//! `priv/orbitlab/vault/secrets/<h0h1>/<h2..h31>.json`, where `h` is the hex
//! SHA-256 of the secret path (so names of any shape map to short, uniform
//! file names). Content (compact JSON, root-only, 0600):
//! `{"format":1,"path":P,"versions":[{"version":N,"created":SECS,
//! "kek":ID,"key":B64(nonce||wrapped data key),"data":B64(nonce||ciphertext)}]}`.
//! Every field is either checked here or bound into an AEAD tag, so no
//! single changed byte goes unnoticed. Pure: encoding and decoding only.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::crypto::{KEY_LEN, NONCE_LEN, TAG_LEN};
use super::ids::{SecretPath, Timestamp, Version};

/// On-disk format number of secret files.
const FORMAT: u32 = 1;

/// Directory (in the private area) holding the secret files.
pub(crate) const SECRETS_DIR: &str = "vault/secrets";

/// File (relative to the private area) that holds `path`.
pub(crate) fn file_for(path: &SecretPath) -> String {
    let digest = Sha256::new()
        .chain_update(b"orbitlab-vault/v1/path")
        .chain_update(path.as_str().as_bytes())
        .finalize();
    let h = hex::encode(&digest[..16]);
    format!("{SECRETS_DIR}/{}/{}.json", &h[..2], &h[2..])
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

/// A decoded secret file (structure checked, nothing decrypted yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretRecord {
    /// The path the file says it holds.
    pub(crate) path: String,
    /// Versions, strictly increasing, never empty.
    pub(crate) versions: Vec<VersionEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    format: u32,
    path: String,
    versions: Vec<VersionForm>,
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

/// Just enough of a file to list it, without decoding ciphertexts.
#[derive(Deserialize)]
pub(crate) struct Header {
    pub(crate) path: String,
    pub(crate) versions: Vec<HeaderVersion>,
}

/// A version's public facts, as listed.
#[derive(Deserialize)]
pub(crate) struct HeaderVersion {
    pub(crate) version: u64,
    pub(crate) created: u64,
}

impl SecretRecord {
    /// The newest version.
    pub(crate) fn latest(&self) -> &VersionEntry {
        self.versions.last().expect("records are never empty")
    }

    /// The file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let form = FileForm {
            format: FORMAT,
            path: self.path.clone(),
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
        };
        serde_json::to_vec(&form).expect("a secret record always serializes")
    }

    /// Decodes a file and checks its structure. The error is the reason
    /// only; the caller names the file and the secret.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SecretRecord, String> {
        let form: FileForm = serde_json::from_slice(bytes)
            .map_err(|e| format!("it is not a valid secret file ({})", json_error(&e)))?;
        if form.format != FORMAT {
            return Err(format!(
                "it has format {}, this OrbitLab reads format {FORMAT}",
                form.format
            ));
        }
        if form.versions.is_empty() {
            return Err("it holds no version".into());
        }
        let mut versions: Vec<VersionEntry> = Vec::with_capacity(form.versions.len());
        for v in form.versions {
            let version = Version::new(v.version).ok_or("it holds a version 0")?;
            if let Some(prev) = versions.last()
                && prev.version >= version
            {
                return Err(format!(
                    "its versions are out of order ({} before {version})",
                    prev.version
                ));
            }
            if v.kek.len() != 16
                || !v
                    .kek
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
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
            versions,
        })
    }
}

impl Header {
    /// Parses the listing facts of a file.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Header> {
        serde_json::from_slice::<Header>(bytes)
            .ok()
            .filter(|h| !h.versions.is_empty())
    }
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
            versions: vec![entry(1), entry(3)],
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
    }

    #[test]
    fn structural_damage_is_refused() {
        let good = String::from_utf8(sample().encode()).unwrap();
        for (bad, needle) in [
            (good.replace("\"format\":1", "\"format\":7"), "format 7"),
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
        let rest = f.strip_prefix("vault/secrets/").unwrap();
        let (shard, name) = rest.split_once('/').unwrap();
        assert_eq!(shard.len(), 2);
        assert_eq!(name.len(), 30 + ".json".len());
        assert_ne!(f, file_for(&"app/db/passwore".parse().unwrap()));
    }
}
