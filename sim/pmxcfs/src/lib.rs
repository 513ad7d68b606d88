//! A FUSE filesystem that behaves like Proxmox's cluster filesystem (pmxcfs,
//! mounted at `/etc/pve`) where OrbitLab depends on it. Tests and the
//! sandbox only; never packaged.
//!
//! A fresh mount holds what every pmxcfs has: `nodes/`, `priv/` and
//! `priv/lock/`.
//!
//! What it reproduces (each rule cites pmxcfs's own behaviour, see
//! [`rules`] and DESIGN.md "On the cluster"):
//! - files of at most 1 MiB: a `write()` crossing the limit is cut there and
//!   returns a short count, the next one fails with `EFBIG`; truncate past it
//!   is `EFBIG`;
//! - no symlinks and no hard links (`ENOSYS`), no device nodes;
//! - modes are fixed: files 0640 and directories 0755, or 0600/0700 under
//!   `priv/` (and `nodes/<node>/priv/`), whatever the creator asks; chmod
//!   succeeds only for 0640 (0600 under `priv/`), anything else is `EPERM`;
//!   chown only to root:www-data, anything else `EPERM`; everything is owned
//!   by root:www-data;
//! - `rename()` replaces atomically; only empty directories can be renamed;
//!   `renameat2` flags are `EINVAL`;
//! - lock directories `priv/lock/NAME`: `mkdir` is atomic (`EEXIST` when
//!   held); `utime(dir, 0, 0)` is an unlock request that fails with `EACCES`
//!   while the lock is younger than the lock timeout, and once it is older
//!   removes the directory and fails with `ENOENT`, after which a fresh
//!   `mkdir` wins; `utime(dir, 0, now)` by the holder renews (restarts the
//!   clock; the mtime may only grow; pmxcfs accepts it only from the node
//!   that took the lock, here only from the process that did); `rmdir`
//!   releases; a lock directory holding a file never
//!   expires; lock directories cannot be renamed (`EACCES`);
//! - without quorum every change (create, write, truncate, mkdir, rmdir,
//!   unlink, rename, utime) fails with `EACCES` and the write bits vanish
//!   from the modes; reads keep working; chmod/chown keep their answers
//!   since they never change anything, as on pmxcfs;
//! - `.members` and `.vmlist` at the root are read-only (`EACCES` to any
//!   change through the mount) and fed from the control directory, see
//!   [`Control`] (`.members`' `cluster.quorate` follows the quorum flag);
//!   without a feed `.vmlist` is computed from
//!   `nodes/<node>/{qemu-server,lxc}/<vmid>.conf` as pmxcfs does, and a guest
//!   config whose VMID another node or type already has is refused
//!   (`EEXIST`);
//! - `statfs` reports pmxcfs's capacity (128 MiB, 256 Ki inodes).
//!
//! Several processes share one mount as nodes share pmxcfs: every operation
//! is atomic under one lock and the kernel caches nothing (zero TTLs, direct
//! I/O), so each process sees the others' changes at once.
//!
//! Not reproduced (documented for test writers): replication delay between
//! nodes; inotify on real pmxcfs reports only changes made through the local
//! node's mount, never other nodes' (here every process shares one mount, so
//! inotify sees everything: do not let tests depend on it); a reader racing a
//! `rename()` may briefly get `ENOENT` on pmxcfs, never here; `flock`/`fcntl`
//! locks are node-local on pmxcfs but shared here (never use them as
//! cluster locks); the other pmxcfs generated files (`.version`, `.rrd`, `.clusterlog`,
//! `.debug`) and the node symlinks (`local`, `qemu-server`, `lxc`).

use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod control;
mod fs;
mod kernel;
mod ops;
pub mod rules;
mod vmlist;

pub use control::{Control, ControlError};
pub use fs::FsError;

/// Where FUSE is reached; without it nothing can be mounted.
const FUSE_DEVICE: &str = "/dev/fuse";

/// How long unmounting waits for the FUSE worker threads to finish.
const UNMOUNT_JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How a simulator is mounted.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Age after which a lock may be taken over with `utime(dir, 0, 0)`
    /// (pmxcfs: 120 s; tests use a few seconds).
    pub lock_timeout: Duration,
    /// Initial quorum state.
    pub quorate: bool,
    /// Control directory (created if missing). `None`: a fresh temporary
    /// directory, removed when the handle is dropped.
    pub control_dir: Option<PathBuf>,
    /// FUSE worker threads serving requests (at least 1).
    pub threads: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            lock_timeout: rules::DEFAULT_LOCK_TIMEOUT,
            quorate: true,
            control_dir: None,
            threads: 4,
        }
    }
}

/// Why mounting or unmounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// FUSE is not usable here.
    #[error(
        "FUSE is not usable: {FUSE_DEVICE} is missing; load the fuse kernel module (modprobe fuse) or give the container the device (--device /dev/fuse)"
    )]
    NoFuseDevice,
    /// The mount point is not an existing directory.
    #[error(
        "cannot mount the pmxcfs simulator on {path}: {reason}; create an empty directory there first"
    )]
    BadMountpoint {
        /// The mount point given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The control directory could not be set up.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The temporary control directory could not be created.
    #[error("cannot create a temporary control directory: {0}; check that TMPDIR is writable")]
    TempControl(#[source] io::Error),
    /// The kernel or fusermount3 refused the mount.
    #[error(
        "mounting the pmxcfs simulator on {path} failed: {source}; FUSE needs root or fusermount3 (package fuse3) and a usable {FUSE_DEVICE}"
    )]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The filesystem could not be unmounted.
    #[error(
        "unmounting the pmxcfs simulator from {path} failed: {source}; run `fusermount3 -u -z {path}`"
    )]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
}

/// Entry point: mounts simulated pmxcfs instances.
#[derive(Debug, Clone, Copy)]
pub struct PmxcfsSim;

impl PmxcfsSim {
    /// Mounts an empty simulated pmxcfs on the existing directory
    /// `mountpoint`. The filesystem is served by background threads until
    /// the returned [`Handle`] is dropped or [`Handle::unmount`]ed.
    ///
    /// # Errors
    /// [`MountError`] names what is missing (FUSE device, mount point,
    /// control directory) and what to do.
    pub fn mount(mountpoint: impl AsRef<Path>, options: SimOptions) -> Result<Handle, MountError> {
        let mountpoint = mountpoint.as_ref().to_path_buf();
        if !Path::new(FUSE_DEVICE).exists() {
            return Err(MountError::NoFuseDevice);
        }
        match std::fs::metadata(&mountpoint) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(MountError::BadMountpoint {
                    path: mountpoint,
                    reason: "not a directory".into(),
                });
            }
            Err(e) => {
                return Err(MountError::BadMountpoint {
                    path: mountpoint,
                    reason: e.to_string(),
                });
            }
        }
        let (control, control_tmp) = match &options.control_dir {
            Some(dir) => (Control::init(dir, options.quorate)?, None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("orbitlab-pmxcfs-control-")
                    .tempdir()
                    .map_err(MountError::TempControl)?;
                (Control::init(tmp.path(), options.quorate)?, Some(tmp))
            }
        };
        let filesystem = ops::PmxcfsFs::new(control.clone(), options.lock_timeout, www_data_gid());
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("pmxcfs-sim".into()),
            fuser::MountOption::Subtype("pmxcfs-sim".into()),
            // As pmxcfs: the kernel checks modes, other users may enter.
            fuser::MountOption::DefaultPermissions,
            fuser::MountOption::NoDev,
            fuser::MountOption::NoSuid,
        ];
        config.acl = fuser::SessionACL::All;
        config.n_threads = Some(options.threads.max(1));
        config.clone_fd = true;
        let mut session =
            fuser::Session::new(filesystem, &mountpoint, &config).map_err(|source| {
                MountError::Mount {
                    path: mountpoint.clone(),
                    source,
                }
            })?;
        let unmounter = session.unmount_callable();
        let thread = std::thread::Builder::new()
            .name("pmxcfs-sim".into())
            .spawn(move || session.run())
            .map_err(|source| MountError::Mount {
                path: mountpoint.clone(),
                source,
            })?;
        Ok(Handle {
            mountpoint,
            control,
            unmounter: Some(unmounter),
            thread: Some(thread),
            _control_tmp: control_tmp,
        })
    }
}

/// A mounted simulator. Dropping it unmounts (lazily if files are still
/// open) and, if the control directory was temporary, removes it.
#[derive(Debug)]
pub struct Handle {
    mountpoint: PathBuf,
    control: Control,
    unmounter: Option<fuser::SessionUnmounter>,
    thread: Option<JoinHandle<io::Result<()>>>,
    _control_tmp: Option<tempfile::TempDir>,
}

impl Handle {
    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The control directory, usable from any process.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Switches quorum on or off (same as writing `1`/`0` to
    /// `CONTROL/quorate`).
    ///
    /// # Errors
    /// The control file could not be written.
    pub fn set_quorate(&self, quorate: bool) -> Result<(), ControlError> {
        self.control.set_quorate(quorate)
    }

    /// Unmounts now and waits (a few seconds at most) for the FUSE threads.
    ///
    /// # Errors
    /// The kernel refused even a lazy unmount.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), MountError> {
        let Some(mut unmounter) = self.unmounter.take() else {
            return Ok(());
        };
        if let Err(busy) = unmounter.unmount() {
            tracing::debug!(error = %busy, "unmount refused, detaching lazily");
            nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH).map_err(
                |e| MountError::Unmount {
                    path: self.mountpoint.clone(),
                    source: e.into(),
                },
            )?;
        }
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + UNMOUNT_JOIN_TIMEOUT;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                if let Ok(Err(e)) = thread.join() {
                    tracing::warn!(error = %e, "FUSE session ended with an error");
                }
            } else {
                tracing::warn!(
                    mountpoint = %self.mountpoint.display(),
                    "files still open in the detached mount; FUSE threads left running"
                );
            }
        }
        Ok(())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "pmxcfs simulator not unmounted");
        }
    }
}

/// The gid of `www-data` from `/etc/group`, or Debian's fixed 33.
fn www_data_gid() -> u32 {
    std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|groups| {
            groups.lines().find_map(|line| {
                let mut fields = line.split(':');
                (fields.next() == Some("www-data"))
                    .then(|| fields.nth(1)?.parse().ok())
                    .flatten()
            })
        })
        .unwrap_or(rules::DEFAULT_WWW_DATA_GID)
}
