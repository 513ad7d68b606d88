//! Everything OrbitLab keeps in the Proxmox cluster filesystem.
//!
//! The store is rooted at `/etc/pve` on a node; tests and the sandbox point
//! it elsewhere (`--root` or `ORBITLAB_ROOT`). It owns:
//! - `<root>/orbitlab/` ([`Area::Config`]): manifests, status, IPAM, the
//!   change counter — 0640;
//! - `<root>/priv/orbitlab/` ([`Area::Private`]): vault, keys, credentials —
//!   root-only, 0600;
//! - `<root>/priv/lock/orbitlab-*`: cluster-wide locks ([`Store::lock`]).
//!
//! [`layout`] names every one of those files, directories and locks; no
//! other module builds their paths.
//!
//! Every write replaces a whole file by rename, refuses more than 1 MiB
//! before writing anything, and reports pmxcfs' EACCES as "read-only (no
//! quorum)". See `DESIGN.md` ("On the cluster") for the facts relied on.

mod decoded;
mod error;
mod files;
mod generation;
pub mod layout;
mod lock;
mod objects;
mod path;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use error::{MAX_FILE_BYTES, StoreError};
pub use generation::Generation;
pub use layout::{Lock, manifest_label};
pub use lock::{BusyLock, LockGuard, LockName, LockOptions, PMXCFS_LOCK_EXPIRY};
pub use objects::ObjectError;
pub use path::{Area, StorePath};

/// Where the cluster filesystem is mounted on a Proxmox node.
pub const DEFAULT_ROOT: &str = "/etc/pve";

/// Environment variable that overrides [`DEFAULT_ROOT`].
pub const ROOT_ENV: &str = "ORBITLAB_ROOT";

/// Handle on the cluster filesystem (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    lock_options: LockOptions,
    cache_dir: Option<PathBuf>,
    /// The last IPAM listing read through this handle and its clones
    /// ([`crate::ipam::listing`]).
    ipam_listing: Arc<Mutex<Option<Arc<crate::ipam::Listing>>>>,
}

impl Store {
    /// A store rooted at `root` (the directory that plays `/etc/pve`).
    pub fn open(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Store {
            cache_dir: decoded::cache_dir(&root),
            root,
            lock_options: LockOptions::default(),
            ipam_listing: Arc::default(),
        }
    }

    /// A store at `$ORBITLAB_ROOT`, or `/etc/pve`.
    pub fn from_env() -> Self {
        Self::open(
            std::env::var_os(ROOT_ENV).map_or_else(|| PathBuf::from(DEFAULT_ROOT), PathBuf::from),
        )
    }

    /// The same store with other lock timings (tests use short ones).
    pub fn with_lock_options(mut self, options: LockOptions) -> Self {
        self.lock_options = options;
        self
    }

    /// The same store with its node-local cache of decoded manifests in
    /// `dir` (`None`: no cache).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// The node-local cache directory, if any.
    pub(crate) fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// The directory playing `/etc/pve`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute location of `path` (for messages and external tools).
    pub fn absolute(&self, path: &StorePath) -> PathBuf {
        path.under(&self.root)
    }

    /// Reads a whole file; `Ok(None)` when it does not exist.
    pub fn read(&self, path: &StorePath) -> Result<Option<Vec<u8>>, StoreError> {
        files::read(&self.absolute(path))
    }

    /// Reads every file of a directory, in name order, skipping ones deleted
    /// while we read. Cheaper than `list` + `read` for a missing entry.
    pub fn read_dir(&self, dir: &StorePath) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let abs = self.absolute(dir);
        let mut out = Vec::new();
        for name in files::list(&abs)? {
            if let Some(bytes) = files::read_listed(&abs.join(&name))? {
                out.push((name, bytes));
            }
        }
        Ok(out)
    }

    /// Replaces a file atomically (temporary file + rename), creating parent
    /// directories. Refuses more than [`MAX_FILE_BYTES`] before writing.
    pub fn write(&self, path: &StorePath, bytes: &[u8]) -> Result<(), StoreError> {
        files::replace(path.area(), &self.absolute(path), bytes)
    }

    /// Removes a file; `Ok(false)` when it did not exist.
    pub fn remove(&self, path: &StorePath) -> Result<bool, StoreError> {
        files::remove(&self.absolute(path))
    }

    /// Sorted entry names of a directory (temporary files hidden); empty
    /// when the directory does not exist.
    pub fn list(&self, dir: &StorePath) -> Result<Vec<String>, StoreError> {
        files::list(&self.absolute(dir))
    }

    /// Takes the cluster-wide lock `name`, waiting as the store's
    /// [`LockOptions`] say. Released when the guard drops.
    pub fn lock(&self, name: &LockName) -> Result<LockGuard, StoreError> {
        lock::acquire(&self.root, name, self.lock_options)
    }

    /// Removes temporary files older than `min_age` from both areas (left
    /// behind by a writer that died between create and rename).
    pub fn sweep_temporaries(&self, min_age: Duration) -> Result<usize, StoreError> {
        let mut removed = 0;
        for area in [Area::Config, Area::Private] {
            removed +=
                files::sweep_temporaries(&self.absolute(&StorePath::area_root(area)), min_age)?;
        }
        Ok(removed)
    }

    /// Drops what this handle (and its clones) cached from the store, so
    /// the next read goes to the files (the daemon's periodic resync).
    pub fn forget_cached(&self) {
        self.cache_ipam(None);
    }

    /// The IPAM listing cached by [`crate::ipam::listing`].
    pub(crate) fn cached_ipam(&self) -> Option<Arc<crate::ipam::Listing>> {
        self.ipam_listing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the cached IPAM listing.
    pub(crate) fn cache_ipam(&self, listing: Option<Arc<crate::ipam::Listing>>) {
        *self
            .ipam_listing
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = listing;
    }

    /// The change counter other nodes poll to notice changes.
    pub fn generation(&self) -> Result<Generation, StoreError> {
        generation::read(self)
    }

    /// Bumps the change counter (under its own lock) after a change that
    /// agents on other nodes must notice; returns the new value.
    pub fn bump_generation(&self) -> Result<Generation, StoreError> {
        generation::bump(self)
    }
}

/// This node's name: `$ORBITLAB_NODE` (simulated nodes), else the kernel's
/// host name, which is the Proxmox node name.
pub fn node_name() -> String {
    std::env::var("ORBITLAB_NODE")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}
