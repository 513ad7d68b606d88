//! File operations with pmxcfs semantics: replace-by-rename writes, reads
//! that ride out the brief ENOENT a concurrent rename causes, listings that
//! hide temporary files.
//!
//! Side effects: `write` creates missing parent directories (0750 or 0700
//! by area) and a `NAME.tmp.PID` file next to the target, renamed over it.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use super::StoreError;
use super::error::MAX_FILE_BYTES;
use super::path::{Area, TMP_MARKER};

/// How often and how long a read retries a file that vanished during a
/// concurrent replace (FUSE hides the old file while a rename is under way).
const VANISHED_RETRIES: [Duration; 4] = [
    Duration::from_millis(2),
    Duration::from_millis(10),
    Duration::from_millis(30),
    Duration::from_millis(80),
];

/// Replaces `path` with `bytes`: writes `NAME.tmp.PID`, flushes it, renames
/// it over `NAME`. Readers see the old or the new content, never a mix. On
/// any failure the temporary file is removed (when the cluster still lets us)
/// and the old content stays.
pub(crate) fn replace(area: Area, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(StoreError::TooLarge {
            path: path.to_owned(),
            size: bytes.len(),
        });
    }
    if let Some(parent) = path.parent() {
        create_dirs(area, parent)?;
    }
    let tmp = temporary_name(path);
    let result = write_new(area, &tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e)));
    if result.is_err() {
        // Best effort: without quorum this fails too; `list` hides the file
        // and `sweep_temporaries` removes it later.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_new(area: Area, tmp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(area.file_mode())
        .open(tmp)
        .map_err(|e| StoreError::io("create", tmp, e))?;
    // `write_all` checks every count: pmxcfs answers a write past its limit
    // with a short count, then EFBIG.
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io("write", tmp, e))
}

/// `NAME.tmp.PID`, the name pmxcfs' own tools use for replace-by-rename.
pub(crate) fn temporary_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{TMP_MARKER}{}", std::process::id()));
    path.with_file_name(name)
}

pub(crate) fn create_dirs(area: Area, dir: &Path) -> Result<(), StoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(area.dir_mode())
        .create(dir)
        .map_err(|e| StoreError::io("create directory", dir, e))
}

/// Reads a whole file; `None` when it does not exist. A file that is missing
/// while a rename over it is visibly in progress is retried briefly.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    read_retrying(path, || replace_in_progress(path))
}

/// Reads a file that a directory listing just showed; if it vanished, it is
/// retried for a moment before being believed deleted.
pub(crate) fn read_listed(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    read_retrying(path, || true)
}

fn read_retrying(
    path: &Path,
    mut worth_retrying: impl FnMut() -> bool,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut pauses = VANISHED_RETRIES.iter();
    loop {
        match fs::read(path) {
            Ok(bytes) => return Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => match pauses.next() {
                Some(pause) if worth_retrying() => thread::sleep(*pause),
                _ => return Ok(None),
            },
            Err(e) => return Err(StoreError::io("read", path, e)),
        }
    }
}

/// True when the parent directory shows `NAME` or a `NAME.tmp.*` sibling,
/// i.e. the ENOENT we just saw may be a replace racing our open.
fn replace_in_progress(path: &Path) -> bool {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    let name = name.to_string_lossy();
    let prefix = format!("{name}{TMP_MARKER}");
    fs::read_dir(parent)
        .map(|entries| {
            entries.flatten().any(|e| {
                let entry = e.file_name();
                let entry = entry.to_string_lossy();
                entry == name || entry.starts_with(&prefix)
            })
        })
        .unwrap_or(false)
}

/// Sorted names in a directory, temporary files left out; empty when the
/// directory does not exist.
pub(crate) fn list(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.contains(TMP_MARKER) && !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Removes a file; `false` when it was already gone.
pub(crate) fn remove(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// Removes temporary files older than `min_age` below `dir` (left behind
/// when a writer died or quorum was lost between create and rename).
/// Returns how many were removed.
pub(crate) fn sweep_temporaries(dir: &Path, min_age: Duration) -> Result<usize, StoreError> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            removed += sweep_temporaries(&path, min_age)?;
        } else if entry.file_name().to_string_lossy().contains(TMP_MARKER)
            && meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= min_age)
        {
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove", &path, e)),
            }
        }
    }
    Ok(removed)
}
