//! Manifest and status files: where each object's spec and status live,
//! and how they are decoded.
//!
//! - spec:   [`layout::manifest`], `<root>/orbitlab/manifests/<kind>/<name>.yaml`
//!   (people, the command, GitOps);
//! - status: [`layout::status`], `<root>/orbitlab/status/<kind>/<name>.json`
//!   (agents only; JSON because every `orbitlab get` reads all of them and
//!   JSON parses an order of magnitude faster than YAML).
//!
//! A stored manifest that no longer decodes is reported with its file and
//! line, never silently skipped.

use std::collections::{BTreeMap, HashMap};

use orbitlab_manifests::{Kind, Manifest, ManifestErrors, Name, Sourced, codec};

use super::decoded::{self, DecodedCache};
use super::layout::{self, manifest_label};
use super::{Store, StoreError, StorePath};
use crate::status::{ObjectStatus, STATUS_FORMAT};

/// Reading stored objects failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored manifest does not decode or validate.
    #[error(transparent)]
    Manifest(#[from] ManifestErrors),
    /// A status file written by an agent does not decode.
    #[error("{path}: not a valid status file ({reason}); agents rewrite it on their next pass")]
    Status { path: String, reason: String },
    /// A status file in a format newer than this build writes: a newer
    /// agent wrote it, and this one must not overwrite it.
    #[error(
        "{path} is in status format {found}, newer than this agent's format {ours} (orbitlab {version}): it was written by a newer agent; this one leaves it alone and changes nothing: upgrade this node"
    )]
    NewerStatusFormat {
        path: String,
        found: u32,
        ours: u32,
        version: &'static str,
    },
}

impl Store {
    /// The stored manifest `kind/name`, if any.
    pub fn read_manifest(
        &self,
        kind: Kind,
        name: &Name,
    ) -> Result<Option<Sourced<Manifest>>, ObjectError> {
        let Some(bytes) = self.read(&layout::manifest(kind, name))? else {
            return Ok(None);
        };
        decode_one(kind, name.as_ref(), &bytes).map(Some)
    }

    /// Every stored manifest of `kind`, in name order, for reading only:
    /// files seen before come from the node-local cache of decoded
    /// manifests (see `decoded`), without line numbers; the others are
    /// decoded. Validation uses [`Store::read_manifests`].
    pub fn read_manifests_for_display(
        &self,
        kind: Kind,
    ) -> Result<Vec<Sourced<Manifest>>, ObjectError> {
        let files = self.manifest_files(kind)?;
        let cache = DecodedCache::load(self.cache_dir(), kind);
        let mut out = Vec::with_capacity(files.len());
        let mut current = HashMap::with_capacity(files.len());
        let mut misses = Vec::new();
        for (file, bytes) in files {
            let key = decoded::digest(&bytes);
            let name = layout::manifest_file_name(&file).unwrap_or(&file);
            match cache.get(&key) {
                Some(m) if m.kind() == kind && m.name().as_ref() == name => {
                    current.insert(key, m.clone());
                    out.push(Sourced::new(manifest_label(kind, name), m.clone()));
                }
                _ => misses.push((file, bytes, key)),
            }
        }
        if misses.is_empty() {
            return Ok(out);
        }
        let (decoded, keys): (Vec<_>, Vec<_>) = misses
            .into_iter()
            .map(|(file, bytes, key)| ((file, bytes), key))
            .unzip();
        let fresh = decode_files(kind, &decoded)?;
        for (manifest, key) in fresh.iter().zip(keys) {
            current.insert(key, manifest.value.clone());
        }
        out.extend(fresh);
        out.sort_by(|a, b| a.value.name().cmp(b.value.name()));
        cache.save(current);
        Ok(out)
    }

    /// Every stored manifest of `kind`, in name order, with line numbers
    /// for messages. Decoding (the costly part with thousands of objects)
    /// runs on every core.
    pub fn read_manifests(&self, kind: Kind) -> Result<Vec<Sourced<Manifest>>, ObjectError> {
        decode_files(kind, &self.manifest_files(kind)?)
    }

    fn manifest_files(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>, ObjectError> {
        Ok(self
            .read_dir(&layout::manifests_dir(kind))?
            .into_iter()
            .filter(|(file, _)| layout::manifest_file_name(file).is_some())
            .collect())
    }
}

/// Decodes stored manifest files (on every core when there are many).
fn decode_files(
    kind: Kind,
    files: &[(String, Vec<u8>)],
) -> Result<Vec<Sourced<Manifest>>, ObjectError> {
    {
        let decode = |chunk: &[(String, Vec<u8>)]| -> Result<Vec<Sourced<Manifest>>, ObjectError> {
            chunk
                .iter()
                .map(|(file, bytes)| {
                    decode_one(
                        kind,
                        layout::manifest_file_name(file).unwrap_or(file),
                        bytes,
                    )
                })
                .collect()
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        if threads < 2 || files.len() < 64 {
            return decode(files);
        }
        let chunk = files.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = files
                .chunks(chunk)
                .map(|c| scope.spawn(move || decode(c)))
                .collect();
            let mut out = Vec::with_capacity(files.len());
            for worker in workers {
                out.extend(worker.join().expect("manifest decoding does not panic")?);
            }
            Ok(out)
        })
    }
}

impl Store {
    /// Every stored manifest of every kind.
    pub fn read_all_manifests(&self) -> Result<Vec<Sourced<Manifest>>, ObjectError> {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            out.extend(self.read_manifests(kind)?);
        }
        Ok(out)
    }

    /// Writes a manifest in its canonical form.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let path = layout::manifest(manifest.kind(), manifest.name());
        self.write(&path, codec::encode(manifest).as_bytes())
    }

    /// The status an agent reported for `kind/name`, if any.
    pub fn read_status(
        &self,
        kind: Kind,
        name: &Name,
    ) -> Result<Option<ObjectStatus>, ObjectError> {
        let path = layout::status(kind, name);
        match self.read(&path)? {
            Some(bytes) => decode_status(&path, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every status of `kind`, by object name.
    pub fn read_statuses(&self, kind: Kind) -> Result<BTreeMap<String, ObjectStatus>, ObjectError> {
        let dir = layout::statuses_dir(kind);
        let mut out = BTreeMap::new();
        for (file, bytes) in self.read_dir(&dir)? {
            let Some(name) = layout::status_file_name(&file) else {
                continue;
            };
            let path = dir.join(&file)?;
            out.insert(name.to_owned(), decode_status(&path, &bytes)?);
        }
        Ok(out)
    }

    /// Replaces the status of `kind/name`.
    pub fn write_status(
        &self,
        kind: Kind,
        name: &Name,
        status: &ObjectStatus,
    ) -> Result<(), StoreError> {
        let path = layout::status(kind, name);
        let mut text = serde_json::to_vec_pretty(status).map_err(|e| StoreError::Corrupt {
            path: self.absolute(&path),
            reason: format!("cannot encode status: {e}"),
        })?;
        text.push(b'\n');
        self.write(&path, &text)
    }

    /// Removes the status of `kind/name` (after teardown).
    pub fn remove_status(&self, kind: Kind, name: &Name) -> Result<bool, StoreError> {
        self.remove(&layout::status(kind, name))
    }
}

fn decode_one(kind: Kind, name: &str, bytes: &[u8]) -> Result<Sourced<Manifest>, ObjectError> {
    let label = manifest_label(kind, name);
    let text = std::str::from_utf8(bytes).map_err(|_| {
        ManifestErrors(vec![
            orbitlab_manifests::ManifestError::new("", "the file is not UTF-8 text")
                .at(label.clone(), None),
        ])
    })?;
    let mut docs = codec::decode(&label, text).map_err(|e| ManifestErrors(vec![e]))?;
    let wrong = |reason: String| {
        ObjectError::Manifest(ManifestErrors(vec![
            orbitlab_manifests::ManifestError::new("", reason).at(label.clone(), Some(1)),
        ]))
    };
    if docs.len() != 1 {
        return Err(wrong(format!(
            "holds {} documents; a stored manifest holds exactly one",
            docs.len()
        )));
    }
    let doc = docs.remove(0);
    if doc.value.kind() != kind || doc.value.name().as_ref() != name {
        return Err(wrong(format!(
            "declares {} {} but is stored as {} {name}; move it to {}",
            doc.value.kind(),
            doc.value.name(),
            kind,
            manifest_label(doc.value.kind(), doc.value.name().as_ref())
        )));
    }
    Ok(doc)
}

fn decode_status(path: &StorePath, bytes: &[u8]) -> Result<ObjectStatus, ObjectError> {
    // The format first, leniently: a newer format may add fields this
    // build does not know.
    #[derive(serde::Deserialize)]
    struct Format {
        #[serde(default)]
        format: Option<u32>,
    }
    if let Ok(Format {
        format: Some(found),
    }) = serde_json::from_slice(bytes)
        && found > STATUS_FORMAT
    {
        return Err(ObjectError::NewerStatusFormat {
            path: path.to_string(),
            found,
            ours: STATUS_FORMAT,
            version: env!("CARGO_PKG_VERSION"),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| ObjectError::Status {
        path: path.to_string(),
        reason: e.to_string(),
    })
}
