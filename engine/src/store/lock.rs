//! Cluster-wide locks on pmxcfs.
//!
//! Protocol (see `DESIGN.md`, "On the cluster"): `mkdir
//! <root>/priv/lock/orbitlab-NAME` acquires, atomically across the cluster.
//! While the directory exists, a waiter asks pmxcfs to expire it with
//! `utime(dir, 0, 0)`: pmxcfs answers EACCES while the lock is younger than
//! 120 s, and removes it (answering ENOENT) once it is older, after which a
//! fresh `mkdir` wins. The holder renews with `utime(dir, 0, now)` from a
//! background thread and releases with `rmdir` when the [`LockGuard`] drops.
//! The directory stays empty; the last holder's identity is recorded in
//! `<root>/priv/orbitlab/locks/NAME.owner`, only to explain waits. Both
//! names come from [`layout`]; OrbitLab's locks are [`layout::Lock`].
//!
//! A holder can lose its lock: renewal fails (no quorum), or the holder
//! stalled past the expiry and a waiter expired the lock and took it.
//! [`LockGuard::is_held`] tells, by checking that the directory still
//! carries the modification time of the holder's own last renewal (a lock
//! taken by someone else is a new directory with another time); long
//! operations ask it before each write and stop once it says no. The
//! renewer never renews a lock that is no longer its own. Dropping the
//! guard still removes the directory: a holder that lost its lock removing
//! the next holder's is a double fault (the lock expired while its holder
//! stalled), while leaving its own behind would hold up every node for
//! pmxcfs's 120 s.
//!
//! Without quorum pmxcfs answers every `utime` with EACCES too, so a held
//! lock looks forever young: when an expiry request is refused, the waiter
//! reads `<root>/.members`, and if the cluster is not quorate it gives up at
//! once with [`StoreError::ReadOnly`] instead of waiting out its deadline.

use std::borrow::Cow;
use std::fmt;
use std::fs::{self, File, FileTimes};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::StoreError;
use super::files;
use super::layout;
use super::path::Area;

/// How long pmxcfs lets a lock live without renewal before a waiter may
/// expire it.
pub const PMXCFS_LOCK_EXPIRY: Duration = Duration::from_secs(120);

/// Name of a cluster lock: `[a-z0-9-]`, 1 to 64 characters. The directory
/// is `priv/lock/orbitlab-NAME`.
///
/// OrbitLab's own locks are the compile-time constants of
/// [`Lock`](super::layout::Lock); parsing (`FromStr`) remains for names
/// that come from elsewhere (tests, tools).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockName(Cow<'static, str>);

/// Why `name` is not a lock name, if it is not one.
const fn lock_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 64 {
        return Some("must be 1 to 64 characters long");
    }
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Some("only lowercase letters, digits and `-` are allowed");
        }
        i += 1;
    }
    None
}

impl LockName {
    /// A lock name fixed in the source. Evaluated in a constant context, an
    /// invalid name stops the build.
    pub(crate) const fn constant(name: &'static str) -> LockName {
        assert!(
            lock_name_problem(name).is_none(),
            "invalid cluster lock name"
        );
        LockName(Cow::Borrowed(name))
    }

    /// The name, as in `priv/lock/orbitlab-NAME`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LockName {
    type Err = StoreError;

    fn from_str(name: &str) -> Result<Self, StoreError> {
        match lock_name_problem(name) {
            Some(reason) => Err(StoreError::InvalidLockName {
                name: name.to_owned(),
                reason,
            }),
            None => Ok(LockName(Cow::Owned(name.to_owned()))),
        }
    }
}

impl fmt::Display for LockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Timing of acquisition and renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// Give up (with [`StoreError::LockTimeout`]) after this long.
    pub wait: Duration,
    /// Longest pause between attempts; pauses start short and double.
    pub max_poll: Duration,
    /// How often the holder renews; well under [`PMXCFS_LOCK_EXPIRY`].
    pub renew_every: Duration,
    /// Told once, after this much waiting, that the lock is busy (a
    /// command says so on standard error instead of hanging silently);
    /// `None`: nobody is told.
    pub notice: Option<(Duration, TellBusy)>,
}

/// What a waiter is told about a busy lock with (see [`LockOptions::notice`]).
pub type TellBusy = fn(&BusyLock);

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            wait: Duration::from_secs(150),
            max_poll: Duration::from_millis(250),
            renew_every: Duration::from_secs(20),
            notice: None,
        }
    }
}

/// A lock someone else holds, as a waiter sees it.
#[derive(Debug, Clone)]
pub struct BusyLock {
    /// The lock directory.
    pub path: PathBuf,
    /// Who took it, from its owner record (`node=pve1 pid=123 since=...`).
    pub holder: String,
    /// Time since its holder last renewed it (its directory's mtime).
    pub renewed_ago: Option<Duration>,
    /// When pmxcfs frees it if its holder is gone: [`PMXCFS_LOCK_EXPIRY`]
    /// after the last renewal.
    pub frees_in: Option<Duration>,
    /// How long the waiter gives up after.
    pub waiting_up_to: Duration,
}

impl fmt::Display for BusyLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "waiting for cluster lock {} ({}",
            self.path.display(),
            self.holder
        )?;
        match (self.renewed_ago, self.frees_in) {
            (Some(ago), Some(left)) if !left.is_zero() => write!(
                f,
                ", last renewed {}s ago); if its holder died, pmxcfs frees it in {}s",
                ago.as_secs(),
                left.as_secs()
            )?,
            (Some(_), Some(_)) => write!(
                f,
                "); it was last renewed over {}s ago, so pmxcfs frees it now",
                PMXCFS_LOCK_EXPIRY.as_secs()
            )?,
            _ => write!(f, ")")?,
        }
        write!(f, "; giving up after {}s", self.waiting_up_to.as_secs())
    }
}

/// A held cluster lock. Renewed in the background; released on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    dir: PathBuf,
    lost: Arc<AtomicBool>,
    mark: Arc<Mark>,
    stop: Option<Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").field("dir", &self.dir).finish()
    }
}

impl LockGuard {
    /// The lock directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// False once the lock is no longer this holder's: a renewal failed
    /// (for instance when quorum was lost), the last renewal is older than
    /// [`PMXCFS_LOCK_EXPIRY`] (any waiter may have expired it), or the
    /// directory is gone or is another holder's. Long operations check
    /// this before each write and stop. Costs one `stat`.
    pub fn is_held(&self) -> bool {
        !self.lost.load(Ordering::Relaxed) && self.mark.still_ours(&self.dir)
    }
}

/// What identifies the holder's own lock directory: the modification time
/// (whole seconds, as pmxcfs keeps it) its last renewal left, and when
/// that renewal happened.
#[derive(Debug)]
struct Mark {
    born: Instant,
    /// The directory's mtime after the last renewal, in Unix seconds.
    mtime: AtomicU64,
    /// The mtime a renewal in progress is setting (so that a check racing
    /// the renewal does not take the lock for lost).
    renewing: AtomicU64,
    /// Milliseconds after `born` of the last renewal.
    renewed: AtomicU64,
}

impl Mark {
    /// Reads the mark of `dir` just taken or renewed.
    fn take(dir: &Path) -> std::io::Result<Mark> {
        let mark = Mark {
            born: Instant::now(),
            mtime: AtomicU64::new(0),
            renewing: AtomicU64::new(0),
            renewed: AtomicU64::new(0),
        };
        mark.record(dir)?;
        Ok(mark)
    }

    fn record(&self, dir: &Path) -> std::io::Result<()> {
        let mtime = unix_seconds(fs::metadata(dir)?.modified()?);
        self.mtime.store(mtime, Ordering::Relaxed);
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.renewed.store(ms, Ordering::Relaxed);
        Ok(())
    }

    fn still_ours(&self, dir: &Path) -> bool {
        let since_renewal = self
            .born
            .elapsed()
            .saturating_sub(Duration::from_millis(self.renewed.load(Ordering::Relaxed)));
        if since_renewal >= PMXCFS_LOCK_EXPIRY {
            return false;
        }
        match fs::metadata(dir).and_then(|m| m.modified()) {
            // A waiter's expiry request on a filesystem that simply takes
            // the times (not pmxcfs, which refuses it while the lock is
            // young) leaves mtime 0: still ours.
            Ok(modified) => {
                let seconds = unix_seconds(modified);
                seconds == 0
                    || seconds == self.mtime.load(Ordering::Relaxed)
                    || seconds == self.renewing.load(Ordering::Relaxed)
            }
            Err(_) => false,
        }
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
        if let Err(e) = fs::remove_dir(&self.dir)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(lock = %self.dir.display(), error = %e,
                "could not release cluster lock; pmxcfs lets it expire after 120 s");
        }
    }
}

/// Acquires `name` under `root` (see the module documentation).
pub(crate) fn acquire(
    root: &Path,
    name: &LockName,
    options: LockOptions,
) -> Result<LockGuard, StoreError> {
    let lock_root = root.join(layout::LOCK_AREA);
    let dir = layout::lock_dir(root, name);
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    let mut told = false;
    loop {
        match fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if request_expiry(&dir)? {
                    continue;
                }
                if !quorate(root) {
                    return Err(StoreError::ReadOnly {
                        op: "take lock",
                        path: dir,
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // First lock ever on this root (pmxcfs always has priv/lock).
                files::create_dirs(Area::Private, &lock_root)?;
                continue;
            }
            Err(e) => return Err(StoreError::io("create directory", &dir, e)),
        }
        let waited = started.elapsed();
        if let Some((after, tell)) = options.notice
            && waited >= after
            && !told
        {
            told = true;
            let renewed_ago = fs::metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok());
            tell(&BusyLock {
                path: dir.clone(),
                holder: describe_holder(root, name),
                renewed_ago,
                frees_in: renewed_ago.map(|ago| PMXCFS_LOCK_EXPIRY.saturating_sub(ago)),
                waiting_up_to: options.wait,
            });
        }
        if waited >= options.wait {
            return Err(StoreError::LockTimeout {
                holder: describe_holder(root, name),
                path: dir,
                waited,
                expiry: PMXCFS_LOCK_EXPIRY,
            });
        }
        thread::sleep(pause.min(options.wait - waited));
        pause = (pause * 2).min(options.max_poll);
    }
    let mark = Arc::new(Mark::take(&dir).map_err(|e| StoreError::io("read", &dir, e))?);
    record_holder(root, name);
    let lost = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = mpsc::channel::<()>();
    let renewer = {
        let renew_dir = dir.clone();
        let lost = Arc::clone(&lost);
        let mark = Arc::clone(&mark);
        thread::Builder::new()
            .name(format!("lock-{name}"))
            .spawn(move || loop {
                match stopped.recv_timeout(options.renew_every) {
                    Err(RecvTimeoutError::Timeout) => {
                        if !mark.still_ours(&renew_dir) {
                            tracing::warn!(lock = %renew_dir.display(), "cluster lock lost: it expired or another holder took it");
                            lost.store(true, Ordering::Relaxed);
                            return;
                        }
                        let now = SystemTime::now();
                        mark.renewing.store(unix_seconds(now), Ordering::Relaxed);
                        if let Err(e) = set_times(&renew_dir, now)
                            .and_then(|()| mark.record(&renew_dir))
                        {
                            tracing::warn!(lock = %renew_dir.display(), error = %e, "cannot renew cluster lock");
                            lost.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                    _ => return,
                }
            })
            .map_err(|e| StoreError::io("start lock renewer for", &dir, e))?
    };
    Ok(LockGuard {
        dir,
        lost,
        mark,
        stop: Some(stop),
        renewer: Some(renewer),
    })
}

/// Asks pmxcfs to expire a lock held by someone else. `true` when the lock
/// is gone and `mkdir` should be retried at once.
fn request_expiry(dir: &Path) -> Result<bool, StoreError> {
    match set_times(dir, UNIX_EPOCH) {
        // pmxcfs removed an expired lock, or the holder released it.
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
        // Still young (pmxcfs), or an ordinary filesystem that simply
        // accepted the times: keep waiting.
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(false),
        Ok(()) => Ok(false),
        Err(e) => Err(StoreError::io("request expiry of lock", dir, e)),
    }
}

/// Whether `<root>/.members` allows writes: false only when it says
/// `cluster.quorate` is 0 (no file or no cluster section: a single node).
fn quorate(root: &Path) -> bool {
    let Ok(bytes) = fs::read(root.join(".members")) else {
        return true;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|members| {
            members
                .pointer("/cluster/quorate")
                .and_then(serde_json::Value::as_u64)
        })
        .is_none_or(|quorate| quorate != 0)
}

/// `utime(dir, 0, mtime)`: atime 0 marks a lock request to pmxcfs.
fn set_times(dir: &Path, modified: SystemTime) -> std::io::Result<()> {
    File::open(dir)?.set_times(
        FileTimes::new()
            .set_accessed(UNIX_EPOCH)
            .set_modified(modified),
    )
}

fn record_holder(root: &Path, name: &LockName) {
    let path = layout::lock_owner(name);
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let line = format!(
        "node={} pid={} since={since}\n",
        super::node_name(),
        std::process::id()
    );
    // Purely informative: a failure here must not fail the operation.
    let _ = files::replace(Area::Private, &path.under(root), line.as_bytes());
}

fn describe_holder(root: &Path, name: &LockName) -> String {
    fs::read_to_string(layout::lock_owner(name).under(root))
        .ok()
        .map(|s| format!("last taken by {}", s.trim()))
        .unwrap_or_else(|| "holder unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(root: &Path, quorate: u8) {
        let json = format!(
            r#"{{"nodename":"pve1","cluster":{{"name":"c","quorate":{quorate}}},"nodelist":{{}}}}"#
        );
        fs::write(root.join(".members"), json).unwrap();
    }

    #[test]
    fn a_held_lock_without_quorum_fails_at_once_as_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let name: LockName = "test".parse().unwrap();
        let wait = LockOptions {
            wait: Duration::from_millis(300),
            ..LockOptions::default()
        };
        let _held = acquire(dir.path(), &name, wait).unwrap();
        members(dir.path(), 1);
        let quorate = acquire(dir.path(), &name, wait).unwrap_err();
        assert!(
            matches!(quorate, StoreError::LockTimeout { .. }),
            "{quorate}"
        );
        members(dir.path(), 0);
        let patient = LockOptions {
            wait: Duration::from_secs(3600),
            ..LockOptions::default()
        };
        let refused = acquire(dir.path(), &name, patient).unwrap_err();
        assert!(refused.is_read_only(), "{refused}");
        assert!(
            refused.to_string().contains("cannot take lock"),
            "{refused}"
        );
    }

    #[test]
    fn a_lock_taken_over_by_another_holder_is_no_longer_held() {
        let dir = tempfile::tempdir().unwrap();
        let name: LockName = "test".parse().unwrap();
        let quick = LockOptions {
            renew_every: Duration::from_millis(10),
            ..LockOptions::default()
        };
        let guard = acquire(dir.path(), &name, quick).unwrap();
        // Renewals do not make the holder doubt its own lock.
        for _ in 0..30 {
            assert!(guard.is_held());
            thread::sleep(Duration::from_millis(5));
        }
        drop(guard);
        let guard = acquire(dir.path(), &name, LockOptions::default()).unwrap();
        // pmxcfs expired it and another node took it: a new directory.
        let path = guard.path().to_owned();
        fs::remove_dir(&path).unwrap();
        fs::create_dir(&path).unwrap();
        set_times(&path, SystemTime::now() + Duration::from_secs(30)).unwrap();
        assert!(!guard.is_held());
    }
}
