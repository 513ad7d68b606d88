//! The control directory: how any process steers a running simulator.
//!
//! The directory lives outside the mount and holds plain files, read by the
//! filesystem on every request that needs them, so a change is in force as
//! soon as the write that made it returns:
//!
//! | file | meaning |
//! | --- | --- |
//! | `quorate` | `1` (quorate) or `0` (no quorum: every change fails with `EACCES`); missing or anything else counts as no quorum |
//! | `members.json` | served as `.members` at the mount root, its `cluster.quorate` set to follow `quorate`; without it `.members` does not exist |
//! | `vmlist.json` | served verbatim as `.vmlist`; without it `.vmlist` is computed from `nodes/*/{qemu-server,lxc}/*.conf` like pmxcfs does |
//!
//! From a shell: `echo 0 > CONTROL/quorate`. From Rust: [`Control`]. Writes
//! by [`Control`] are atomic (`NAME.tmp.PID` then `rename`). The directory is
//! created `0700`, root-only like `/etc/pve/priv`.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::rules::VirtualFile;

/// A control file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error(
    "pmxcfs simulator control file {path}: {source}; check that the control directory exists and is writable by this user"
)]
pub struct ControlError {
    /// The file concerned.
    pub path: PathBuf,
    /// What the OS said.
    #[source]
    pub source: io::Error,
}

/// Handle on a simulator's control directory (cheap to clone; holds only the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    dir: PathBuf,
}

impl Control {
    /// File holding `1` or `0`.
    pub const QUORATE: &'static str = "quorate";
    /// File served as `.members`.
    pub const MEMBERS: &'static str = "members.json";
    /// File served as `.vmlist`.
    pub const VMLIST: &'static str = "vmlist.json";

    /// Refers to an existing control directory (no I/O).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Creates the directory (mode 0700) if needed and sets the quorum flag.
    pub fn init(dir: impl Into<PathBuf>, quorate: bool) -> Result<Self, ControlError> {
        let control = Self::new(dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&control.dir)
            .map_err(|source| ControlError {
                path: control.dir.clone(),
                source,
            })?;
        control.set_quorate(quorate)?;
        Ok(control)
    }

    /// The control directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Replaces control file `name` atomically.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), ControlError> {
        let path = self.file(name);
        let tmp = self.dir.join(format!("{name}.tmp.{}", std::process::id()));
        let err = |source| ControlError {
            path: path.clone(),
            source,
        };
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(err)
    }

    /// Switches quorum on or off for every process using the mount.
    pub fn set_quorate(&self, quorate: bool) -> Result<(), ControlError> {
        self.replace(Self::QUORATE, if quorate { b"1\n" } else { b"0\n" })
    }

    /// Whether the simulated cluster is quorate now.
    pub fn quorate(&self) -> bool {
        match fs::read(self.file(Self::QUORATE)) {
            Ok(bytes) => match bytes.trim_ascii() {
                b"1" => true,
                b"0" => false,
                other => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        content = %String::from_utf8_lossy(other),
                        "control file `quorate` holds neither 1 nor 0: treating the cluster as not quorate"
                    );
                    false
                }
            },
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e,
                    "control file `quorate` unreadable: treating the cluster as not quorate");
                false
            }
        }
    }

    /// Sets what `.members` shows (JSON as pmxcfs writes it: `nodename`,
    /// `version`, `cluster`, `nodelist` with `id`/`online`/`ip` per node).
    pub fn set_members(&self, json: &[u8]) -> Result<(), ControlError> {
        self.replace(Self::MEMBERS, json)
    }

    /// Sets what `.vmlist` shows, overriding the value computed from guest
    /// configs in the mount.
    pub fn set_vmlist(&self, json: &[u8]) -> Result<(), ControlError> {
        self.replace(Self::VMLIST, json)
    }

    /// Goes back to computing `.vmlist` from guest configs in the mount.
    pub fn clear_vmlist(&self) -> Result<(), ControlError> {
        match fs::remove_file(self.file(Self::VMLIST)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ControlError {
                path: self.file(Self::VMLIST),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// The fed content of a virtual file and its modification time, if fed.
    pub(crate) fn feed(&self, file: VirtualFile) -> Option<(Vec<u8>, SystemTime)> {
        let name = match file {
            VirtualFile::Members => Self::MEMBERS,
            VirtualFile::Vmlist => Self::VMLIST,
        };
        let path = self.file(name);
        let bytes = fs::read(&path).ok()?;
        let mtime = fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        Some((bytes, mtime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_flag_round_trips_and_fails_safe() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Control::init(tmp.path().join("ctl"), true).unwrap();
        assert!(c.quorate());
        c.set_quorate(false).unwrap();
        assert!(!c.quorate());
        fs::write(c.dir().join(Control::QUORATE), "maybe").unwrap();
        assert!(!c.quorate());
        fs::remove_file(c.dir().join(Control::QUORATE)).unwrap();
        assert!(!c.quorate());
    }

    #[test]
    fn feeds_virtual_files() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Control::init(tmp.path(), true).unwrap();
        assert!(c.feed(VirtualFile::Members).is_none());
        c.set_members(b"{}").unwrap();
        assert_eq!(c.feed(VirtualFile::Members).unwrap().0, b"{}");
        c.set_vmlist(b"[]").unwrap();
        c.clear_vmlist().unwrap();
        c.clear_vmlist().unwrap();
        assert!(c.feed(VirtualFile::Vmlist).is_none());
    }

    #[test]
    fn write_errors_name_the_file() {
        let c = Control::new("/nonexistent/orbitlab-control");
        let e = c.set_quorate(true).unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent/orbitlab-control/quorate"),
            "{e}"
        );
    }
}
