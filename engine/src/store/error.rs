//! The store's error type: every variant names the path or lock it concerns
//! and says what the operator can do about it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Largest file pmxcfs accepts (a larger write fails with `EFBIG`).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// What can go wrong reading or writing the cluster filesystem.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// pmxcfs refuses every write without quorum (EACCES).
    #[error(
        "cannot {op} {path}: the cluster is read-only (no quorum); nothing was changed — retry once the cluster is quorate again (check `pvecm status`)"
    )]
    ReadOnly { op: &'static str, path: PathBuf },

    /// Refused before writing anything: pmxcfs files are capped at 1 MiB.
    #[error(
        "refusing to write {path}: {size} bytes is over the 1 MiB (1048576 bytes) limit of a pmxcfs file; nothing was written"
    )]
    TooLarge { path: PathBuf, size: usize },

    /// A relative store path that could escape its area or clash with
    /// temporary files.
    #[error("invalid store path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// A lock name outside `[a-z0-9-]{1,64}`.
    #[error("invalid lock name {name:?}: {reason}")]
    InvalidLockName { name: String, reason: &'static str },

    /// Another holder kept the lock for the whole wait.
    #[error(
        "timed out after {waited:?} waiting for cluster lock {path} ({holder}); another OrbitLab operation is running — retry later. A lock whose holder died expires {expiry:?} after its last renewal"
    )]
    LockTimeout {
        path: PathBuf,
        waited: Duration,
        holder: String,
        expiry: Duration,
    },

    /// A file that should hold data OrbitLab wrote could not be understood.
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },

    /// Any other I/O failure, with the operation and the path.
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// Wraps an I/O error, turning EACCES into [`StoreError::ReadOnly`] for
    /// write-type operations (that is how pmxcfs reports lost quorum).
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if source.kind() == io::ErrorKind::PermissionDenied && is_write_op(op) {
            StoreError::ReadOnly { op, path }
        } else {
            StoreError::Io { op, path, source }
        }
    }

    /// True when the cluster refused a write for lack of quorum.
    pub fn is_read_only(&self) -> bool {
        matches!(self, StoreError::ReadOnly { .. })
    }
}

fn is_write_op(op: &str) -> bool {
    matches!(
        op,
        "write" | "create" | "rename" | "remove" | "create directory" | "renew lock" | "take lock"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eacces_on_a_write_means_no_quorum() {
        let denied = || io::Error::from_raw_os_error(libc::EACCES);
        let err = StoreError::io("write", "/etc/pve/orbitlab/x.yaml", denied());
        assert!(err.is_read_only());
        let message = err.to_string();
        assert!(message.contains("read-only (no quorum)"), "{message}");
        assert!(message.contains("/etc/pve/orbitlab/x.yaml"), "{message}");
        // A read refused is not a quorum problem.
        assert!(!StoreError::io("read", "/x", denied()).is_read_only());
    }
}
