//! Shared helpers: mounting in a temporary directory (unmounted on drop,
//! even when a test fails), errno checks, utime.

use std::fmt::Debug;
use std::fs::{File, FileTimes};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use orbitlab_pmxcfs_sim::{Handle, PmxcfsSim, SimOptions};

/// Lock timeout used by the tests (pmxcfs: 120 s).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// A simulator mounted in a temporary directory. Field order matters: the
/// handle (unmount) drops before the directory is removed.
pub struct Mounted {
    pub handle: Handle,
    _dir: tempfile::TempDir,
}

impl Mounted {
    /// Absolute path of `rel` inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.handle.mountpoint().join(rel)
    }
}

/// Mounts a fresh simulator with the test lock timeout, quorate.
pub fn mount() -> Mounted {
    mount_with(SimOptions {
        lock_timeout: LOCK_TIMEOUT,
        ..SimOptions::default()
    })
}

/// Mounts a fresh simulator with `options`; fails the test with the
/// simulator's own explanation if FUSE is not usable.
pub fn mount_with(options: SimOptions) -> Mounted {
    let dir = tempfile::Builder::new()
        .prefix("pmxcfs-sim-test-")
        .tempdir()
        .expect("temporary directory");
    let mnt = dir.path().join("pve");
    std::fs::create_dir(&mnt).expect("mount point");
    let handle = match PmxcfsSim::mount(&mnt, options) {
        Ok(h) => h,
        Err(e) => panic!("the pmxcfs simulator needs a working FUSE (root, /dev/fuse): {e}"),
    };
    Mounted { handle, _dir: dir }
}

/// The errno of an I/O error (0 if it has none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Asserts that `res` failed with `expected` errno.
#[track_caller]
pub fn assert_errno<T: Debug>(res: io::Result<T>, expected: i32, what: &str) {
    match res {
        Ok(v) => panic!("{what}: expected errno {expected}, got success {v:?}"),
        Err(e) => assert_eq!(errno(&e), expected, "{what}: got {e}"),
    }
}

/// `utime(path, atime, mtime)` the way std allows it (open + futimens).
pub fn utime(path: &Path, atime: SystemTime, mtime: SystemTime) -> io::Result<()> {
    File::open(path)?.set_times(FileTimes::new().set_accessed(atime).set_modified(mtime))
}

/// Whether `path` is a mount point in this mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let wanted = path.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(wanted.as_str()))
}
