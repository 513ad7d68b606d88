//! The storage boundary of IPAM: the [`IpamStore`] trait, an in-memory
//! implementation ([`MemoryStore`], for tests and the simulator) and a
//! directory-backed one ([`DirStore`], for benchmarks and tools).
//!
//! In production the agent's `store::Store` (pmxcfs under
//! `/etc/pve/orbitlab`, lock `/etc/pve/priv/lock/orbitlab-ipam`) implements
//! this trait with a trivial adapter. Paths are relative, `/`-separated,
//! built by IPAM only from validated names.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The error type of a store operation (the session wraps it with the
/// operation and the path).
pub type StoreError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What IPAM needs from a store. Contract:
/// - `read` returns `Ok(None)` for a missing file;
/// - `write` replaces the file atomically (a reader sees the old or the new
///   content, never a mix), creating parent directories as needed;
/// - `remove` of a missing file succeeds;
/// - `list` returns the names directly inside `dir` (files and
///   directories), empty when `dir` does not exist;
/// - `lock` takes the cluster-wide IPAM lock; dropping the guard releases it.
pub trait IpamStore {
    /// Held while the IPAM lock is held.
    type Guard;
    /// Takes the IPAM lock (may wait for it up to a deadline).
    fn lock(&self) -> Result<Self::Guard, StoreError>;
    /// Reads a whole file.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces a whole file atomically.
    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Removes a file.
    fn remove(&self, path: &str) -> Result<(), StoreError>;
    /// Lists a directory.
    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError>;
}

#[derive(Debug, Default)]
struct MemoryInner {
    files: Mutex<BTreeMap<String, Vec<u8>>>,
    locked: Mutex<bool>,
}

/// An in-memory store. Clones share the same files; a second `lock` while
/// one guard is alive fails (IPAM sessions must not nest).
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<MemoryInner>,
}

/// The lock guard of a [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryLock {
    inner: Arc<MemoryInner>,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        *self
            .inner
            .locked
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = false;
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.inner
            .files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every file with its size in bytes.
    pub fn sizes(&self) -> BTreeMap<String, usize> {
        self.files()
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect()
    }
}

impl IpamStore for MemoryStore {
    type Guard = MemoryLock;

    fn lock(&self) -> Result<MemoryLock, StoreError> {
        let mut locked = self
            .inner
            .locked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *locked {
            return Err("the IPAM lock is already held".into());
        }
        *locked = true;
        Ok(MemoryLock {
            inner: Arc::clone(&self.inner),
        })
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.files().get(path).cloned())
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.files().insert(path.to_owned(), bytes.to_vec());
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        self.files().remove(path);
        Ok(())
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{dir}/");
        let mut names: Vec<String> = self
            .files()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
            .collect();
        names.dedup();
        Ok(names)
    }
}

/// A store in a local directory: writes go to `NAME.tmp.PID` and are renamed
/// over `NAME` (atomic, like OrbitLab's pmxcfs writes; no fsync, so not
/// crash-durable). The lock is the directory `ROOT/.ipam.lock` (taken with
/// `mkdir`, released with `rmdir`; a second holder fails at once).
#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
}

/// The lock guard of a [`DirStore`].
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Nothing useful can be done if the directory vanished already.
        let _ = std::fs::remove_dir(&self.path);
    }
}

impl DirStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn with_path(path: &Path, e: io::Error) -> StoreError {
    Box::new(PathError {
        path: path.to_owned(),
        source: e,
    })
}

/// An I/O error and the file it happened on.
#[derive(Debug)]
struct PathError {
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl IpamStore for DirStore {
    type Guard = DirLock;

    fn lock(&self) -> Result<DirLock, StoreError> {
        std::fs::create_dir_all(&self.root).map_err(|e| with_path(&self.root, e))?;
        let path = self.root.join(".ipam.lock");
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(DirLock { path }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(format!(
                "the IPAM lock {} is held by another session; wait for it, or remove it if no OrbitLab process is running",
                path.display()
            )
            .into()),
            Err(e) => Err(with_path(&path, e)),
        }
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(rel);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_path(&path, e)),
        }
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| with_path(parent, e))?;
        }
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let result = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            with_path(&path, e)
        })
    }

    fn remove(&self, rel: &str) -> Result<(), StoreError> {
        let path = self.path(rel);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(&path, e)),
            _ => Ok(()),
        }
    }

    fn list(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        let path = self.path(rel);
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(with_path(&path, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| with_path(&path, e))?;
            let name = entry.file_name();
            match name.to_str() {
                Some(name) if !name.starts_with('.') && !name.contains(".tmp.") => {
                    names.push(name.to_owned());
                }
                _ => {}
            }
        }
        names.sort();
        Ok(names)
    }
}
