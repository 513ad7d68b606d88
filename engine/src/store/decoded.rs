//! A node-local cache of decoded manifests, so that reading thousands of
//! them (`orbitlab get /sectors`) does not parse thousands of YAML files.
//!
//! Entries are keyed by the SHA-256 of a file's exact bytes, so an entry can
//! never describe a file that changed: a changed file simply misses and is
//! decoded. The cache lives outside pmxcfs (it is local and disposable):
//! `$ORBITLAB_CACHE_DIR` if set (empty disables it), `/var/cache/orbitlab`
//! for the store at `/etc/pve`, and none for any other root (tests and the
//! sandbox leave nothing behind). One file per kind,
//! `manifests-<kind>.json`, 0600 in a 0700 directory, replaced by rename;
//! any problem with it only costs speed.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use orbitlab_manifests::{Kind, Manifest};
use sha2::{Digest, Sha256};

/// Where the cache of the store rooted at `root` lives, if anywhere.
pub(crate) fn cache_dir(root: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ORBITLAB_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    (root == Path::new(super::DEFAULT_ROOT)).then(|| PathBuf::from("/var/cache/orbitlab"))
}

/// The content key of a file.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decoded manifests of one kind, by content digest.
#[derive(Debug, Default)]
pub(crate) struct DecodedCache {
    file: Option<PathBuf>,
    entries: HashMap<String, Manifest>,
}

impl DecodedCache {
    /// The cache of `kind`; empty when absent or unreadable.
    pub(crate) fn load(dir: Option<&Path>, kind: Kind) -> Self {
        let file = dir.map(|d| d.join(format!("manifests-{}.json", kind.dir_name())));
        let entries = file
            .as_ref()
            .and_then(|f| fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        DecodedCache { file, entries }
    }

    pub(crate) fn get(&self, digest: &str) -> Option<&Manifest> {
        self.entries.get(digest)
    }

    /// Replaces the cache with exactly `current` (best effort).
    pub(crate) fn save(&self, current: HashMap<String, Manifest>) {
        let Some(file) = &self.file else { return };
        let Some(dir) = file.parent() else { return };
        let write = || -> std::io::Result<()> {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
            let mut out = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            out.write_all(&serde_json::to_vec(&current).map_err(std::io::Error::other)?)?;
            fs::rename(&tmp, file)
        };
        if let Err(e) = write() {
            tracing::debug!(cache = %file.display(), error = %e, "cannot write the manifest cache");
        }
    }
}
