//! pmxcfs policies, as pure functions: which paths are private or locks, the
//! modes pmxcfs reports, which chmod/chown calls it accepts, the 1 MiB file
//! limit, the quorum gate, lock expiry on `utime(dir, 0, 0)`, and guest
//! config paths (`nodes/<node>/{qemu-server,lxc}/<vmid>.conf`) whose VMIDs
//! must be unique cluster-wide.
//!
//! Every rule mirrors what pmxcfs itself does (Proxmox's `pmxcfs.c`,
//! `memdb.c`, `cfs-utils.c`) as summarised in DESIGN.md ("On the cluster").
//! No I/O, no side effects.

use std::ffi::{OsStr, OsString};
use std::time::Duration;

use crate::fs::FsError;

/// Largest file pmxcfs holds: 1 MiB.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;
/// Block size pmxcfs reports in `statfs`.
pub const BLOCK_SIZE: u32 = 4096;
/// Capacity pmxcfs reports in `statfs` (128 MiB; not enforced by pmxcfs either).
pub const MAX_FS_BYTES: u64 = 128 * 1024 * 1024;
/// Inode capacity pmxcfs reports in `statfs`.
pub const MAX_INODES: u64 = 256 * 1024;
/// Longest name pmxcfs reports in `statfs`.
pub const NAME_MAX: u32 = 256;
/// pmxcfs's lock timeout (`CFS_LOCK_TIMEOUT`).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(120);
/// Group of every file on pmxcfs when `www-data` is not in `/etc/group`
/// (Debian's fixed gid for it).
pub const DEFAULT_WWW_DATA_GID: u32 = 33;

/// What pmxcfs treats specially about a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathClass {
    /// Under `priv/` or `nodes/<node>/priv/`: root-only modes (0600/0700).
    pub private: bool,
    /// Strictly under `priv/lock/`: `utime(dir, 0, 0)` is an unlock request.
    pub in_lock_area: bool,
    /// Directly in `priv/lock/`: a lock directory whose mtime may only grow.
    pub lock_level: bool,
}

/// Classifies a path given as components from the mount root.
pub fn classify<S: AsRef<OsStr>>(components: &[S]) -> PathClass {
    let c = |i: usize| components.get(i).map(AsRef::as_ref);
    let priv_ = Some(OsStr::new("priv"));
    let private = c(0) == priv_ || (c(0) == Some(OsStr::new("nodes")) && c(2) == priv_);
    let in_lock_area = c(0) == priv_ && c(1) == Some(OsStr::new("lock")) && components.len() > 2;
    PathClass {
        private,
        in_lock_area,
        lock_level: in_lock_area && components.len() == 3,
    }
}

/// Permission bits pmxcfs reports: files 0640 (0600 private), directories
/// 0755 (0700 private); without quorum the write bits are gone.
pub fn perm(is_dir: bool, private: bool, quorate: bool) -> u16 {
    let base: u16 = match (is_dir, quorate) {
        (true, true) => 0o777,
        (true, false) => 0o555,
        (false, true) => 0o666,
        (false, false) => 0o444,
    };
    let mask = match (private, is_dir) {
        (true, _) => 0o700,
        (false, true) => 0o755,
        (false, false) => 0o750,
    };
    base & mask
}

/// Every change needs quorum: `EACCES` without it.
pub fn require_quorum(quorate: bool) -> Result<(), FsError> {
    if quorate {
        Ok(())
    } else {
        Err(FsError::Access)
    }
}

/// chmod succeeds only for the mode pmxcfs already uses (0640, 0600 when
/// private), for files and directories alike, and changes nothing.
pub fn check_chmod(mode: u32, private: bool) -> Result<(), FsError> {
    let allowed = if private { 0o600 } else { 0o640 };
    if mode & 0o7777 == allowed {
        Ok(())
    } else {
        Err(FsError::Perm)
    }
}

/// chown succeeds only towards root:www-data (either side may be left
/// unchanged), and changes nothing.
pub fn check_chown(uid: Option<u32>, gid: Option<u32>, www_data_gid: u32) -> Result<(), FsError> {
    let uid_ok = uid.is_none_or(|u| u == 0);
    let gid_ok = gid.is_none_or(|g| g == www_data_gid);
    if uid_ok && gid_ok {
        Ok(())
    } else {
        Err(FsError::Perm)
    }
}

/// How many of `len` bytes written at `offset` fit below 1 MiB: all of them,
/// or the part up to the limit (a short write), or `EFBIG` when nothing fits.
pub fn writable_len(offset: u64, len: usize) -> Result<usize, FsError> {
    if len == 0 {
        return Ok(0);
    }
    let room = MAX_FILE_SIZE.saturating_sub(offset);
    if room == 0 {
        return Err(FsError::TooBig);
    }
    Ok(usize::try_from(room).map_or(len, |room| room.min(len)))
}

/// A file may not be extended past 1 MiB by truncate either.
pub fn check_truncate(size: u64) -> Result<(), FsError> {
    if size > MAX_FILE_SIZE {
        Err(FsError::TooBig)
    } else {
        Ok(())
    }
}

/// The state a `utime`/`utimensat` request meets.
#[derive(Debug, Clone, Copy)]
pub struct UtimeRequest {
    /// Target is a directory.
    pub is_dir: bool,
    /// Target's path class.
    pub class: PathClass,
    /// Target's current mtime (seconds).
    pub current_mtime: u32,
    /// Requested mtime (seconds), `None` when only atime is set (pmxcfs
    /// ignores atime).
    pub new_mtime: Option<u32>,
    /// For a lock directory: time since it was taken or last renewed.
    pub lock_age: Option<Duration>,
    /// The request comes from the lock's holder (pmxcfs: the same node;
    /// true for anything that is not a lock).
    pub from_holder: bool,
    /// Target is an empty directory.
    pub empty_dir: bool,
}

/// What to do with a `utime` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtimePlan {
    /// Nothing to change (atime only).
    Keep,
    /// Set the mtime; `renew_lock` restarts the lock's expiry clock.
    SetMtime {
        /// New mtime (seconds).
        secs: u32,
        /// The target is a lock directory being renewed by its holder.
        renew_lock: bool,
    },
    /// The lock has expired: remove the directory and answer `ENOENT`.
    ExpireLock,
}

/// Decides a `utime` request the way pmxcfs does:
/// - `utime(dir, _, 0)` on a directory under `priv/lock/` is an unlock
///   request: if the lock is older than `timeout` and empty, it is removed
///   (the caller answers `ENOENT`); a lock holding a file never expires;
/// - a lock directory's mtime may only move forward, and only its holder may
///   move it (`utime(dir, 0, now)` renews it); an older mtime, including
///   the 0 of a refused unlock request, or another writer is `EACCES`;
/// - anything else just gets the new mtime.
pub fn plan_utime(req: UtimeRequest, timeout: Duration) -> Result<UtimePlan, FsError> {
    let Some(secs) = req.new_mtime else {
        return Ok(UtimePlan::Keep);
    };
    let unlock_request = secs == 0 && req.is_dir && req.class.in_lock_area;
    if unlock_request && req.empty_dir && req.lock_age.is_some_and(|age| age > timeout) {
        return Ok(UtimePlan::ExpireLock);
    }
    if req.class.lock_level && req.is_dir {
        if secs < req.current_mtime || !req.from_holder {
            return Err(FsError::Access);
        }
        return Ok(UtimePlan::SetMtime {
            secs,
            renew_lock: true,
        });
    }
    Ok(UtimePlan::SetMtime {
        secs,
        renew_lock: false,
    })
}

/// Kind of guest a config file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GuestType {
    /// `nodes/<node>/qemu-server/<vmid>.conf`
    Qemu,
    /// `nodes/<node>/lxc/<vmid>.conf`
    Lxc,
}

impl GuestType {
    /// All guest types, in `.vmlist` order.
    pub const ALL: [GuestType; 2] = [GuestType::Qemu, GuestType::Lxc];

    /// Directory name under `nodes/<node>/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu-server",
            Self::Lxc => "lxc",
        }
    }

    /// Name used in `.vmlist`.
    pub fn vmlist_name(self) -> &'static str {
        match self {
            Self::Qemu => "qemu",
            Self::Lxc => "lxc",
        }
    }
}

/// A guest config path: which node, which type, which VMID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestConfig {
    /// Node directory name.
    pub node: OsString,
    /// Guest type.
    pub kind: GuestType,
    /// Guest id.
    pub vmid: u32,
}

/// Node names pmxcfs accepts in `nodes/`: letters, digits and inner hyphens.
pub fn valid_node_name(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    !b.is_empty()
        && b.iter()
            .enumerate()
            .all(|(i, &c)| c.is_ascii_alphanumeric() || (c == b'-' && i != 0 && i != b.len() - 1))
}

/// The VMID of a file named `<vmid>.conf` (no leading zero), if it is one.
pub fn vmid_of_config_name(name: &OsStr) -> Option<u32> {
    let digits = name.to_str()?.strip_suffix(".conf")?;
    if digits.starts_with('0') || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Recognises `nodes/<node>/{qemu-server,lxc}/<vmid>.conf`.
pub fn guest_config<S: AsRef<OsStr>>(components: &[S]) -> Option<GuestConfig> {
    let [nodes, node, dir, file] = components else {
        return None;
    };
    if nodes.as_ref() != "nodes" || !valid_node_name(node.as_ref()) {
        return None;
    }
    let kind = GuestType::ALL
        .into_iter()
        .find(|k| dir.as_ref() == k.dir_name())?;
    Some(GuestConfig {
        node: node.as_ref().to_os_string(),
        kind,
        vmid: vmid_of_config_name(file.as_ref())?,
    })
}

/// `.members` as pmxcfs would show it now: its `cluster.quorate` follows
/// the simulator's quorum flag. A document that already agrees, or that is
/// not JSON with that field, is served unchanged.
pub fn members_with_quorum(fed: Vec<u8>, quorate: bool) -> Vec<u8> {
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&fed) else {
        return fed;
    };
    let want = serde_json::Value::from(u8::from(quorate));
    match doc.pointer_mut("/cluster/quorate") {
        Some(q) if *q != want => *q = want,
        _ => return fed,
    }
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or(fed);
    out.push(b'\n');
    out
}

/// The files pmxcfs generates at its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualFile {
    /// `.members`: cluster members (JSON).
    Members,
    /// `.vmlist`: every guest id → node and type (JSON).
    Vmlist,
}

impl VirtualFile {
    /// Both virtual files.
    pub const ALL: [VirtualFile; 2] = [VirtualFile::Members, VirtualFile::Vmlist];

    /// Name at the mount root.
    pub fn name(self) -> &'static str {
        match self {
            Self::Members => ".members",
            Self::Vmlist => ".vmlist",
        }
    }

    /// The virtual file called `name` at the root, if any.
    pub fn from_name(name: &OsStr) -> Option<Self> {
        Self::ALL.into_iter().find(|v| name == v.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(p: &str) -> PathClass {
        classify(&p.split('/').collect::<Vec<_>>())
    }

    #[test]
    fn classifies_private_and_lock_paths() {
        assert_eq!(class("orbitlab/x"), PathClass::default());
        assert!(class("priv").private);
        assert!(class("priv/orbitlab/key").private);
        assert!(class("nodes/pve1/priv/x").private);
        assert!(!class("nodes/pve1/lxc").private);
        assert!(!class("private/x").private);
        let lock = class("priv/lock/orbitlab-ipam");
        assert!(lock.private && lock.in_lock_area && lock.lock_level);
        let deep = class("priv/lock/a/b");
        assert!(deep.in_lock_area && !deep.lock_level);
        assert!(!class("priv/lock").in_lock_area);
    }

    #[test]
    fn modes_follow_pmxcfs() {
        assert_eq!(perm(false, false, true), 0o640);
        assert_eq!(perm(false, true, true), 0o600);
        assert_eq!(perm(true, false, true), 0o755);
        assert_eq!(perm(true, true, true), 0o700);
        assert_eq!(perm(false, false, false), 0o440);
        assert_eq!(perm(true, true, false), 0o500);
    }

    #[test]
    fn chmod_and_chown_are_refused_but_for_the_current_values() {
        assert_eq!(check_chmod(0o100640, false), Ok(()));
        assert_eq!(check_chmod(0o644, false), Err(FsError::Perm));
        assert_eq!(check_chmod(0o600, true), Ok(()));
        assert_eq!(check_chmod(0o640, true), Err(FsError::Perm));
        assert_eq!(check_chown(Some(0), Some(33), 33), Ok(()));
        assert_eq!(check_chown(None, Some(33), 33), Ok(()));
        assert_eq!(check_chown(Some(0), None, 33), Ok(()));
        assert_eq!(check_chown(Some(1000), None, 33), Err(FsError::Perm));
        assert_eq!(check_chown(None, Some(0), 33), Err(FsError::Perm));
    }

    #[test]
    fn writes_stop_at_one_mebibyte() {
        assert_eq!(writable_len(0, 10), Ok(10));
        assert_eq!(writable_len(MAX_FILE_SIZE - 4, 10), Ok(4));
        assert_eq!(writable_len(MAX_FILE_SIZE, 1), Err(FsError::TooBig));
        assert_eq!(writable_len(MAX_FILE_SIZE, 0), Ok(0));
        assert_eq!(check_truncate(MAX_FILE_SIZE), Ok(()));
        assert_eq!(check_truncate(MAX_FILE_SIZE + 1), Err(FsError::TooBig));
    }

    fn lock_req(new_mtime: u32, age: u64, empty_dir: bool) -> UtimeRequest {
        UtimeRequest {
            is_dir: true,
            class: class("priv/lock/x"),
            current_mtime: 1000,
            new_mtime: Some(new_mtime),
            lock_age: Some(Duration::from_secs(age)),
            from_holder: true,
            empty_dir,
        }
    }

    #[test]
    fn locks_expire_only_when_old_and_empty() {
        let t = Duration::from_secs(120);
        assert_eq!(plan_utime(lock_req(0, 10, true), t), Err(FsError::Access));
        assert_eq!(plan_utime(lock_req(0, 120, true), t), Err(FsError::Access));
        assert_eq!(
            plan_utime(lock_req(0, 121, true), t),
            Ok(UtimePlan::ExpireLock)
        );
        assert_eq!(plan_utime(lock_req(0, 500, false), t), Err(FsError::Access));
        assert_eq!(
            plan_utime(lock_req(2000, 500, true), t),
            Ok(UtimePlan::SetMtime {
                secs: 2000,
                renew_lock: true
            })
        );
        assert_eq!(plan_utime(lock_req(999, 1, true), t), Err(FsError::Access));
        let stranger = UtimeRequest {
            from_holder: false,
            ..lock_req(2000, 1, true)
        };
        assert_eq!(plan_utime(stranger, t), Err(FsError::Access));
        let stranger_expiring = UtimeRequest {
            from_holder: false,
            ..lock_req(0, 500, true)
        };
        assert_eq!(plan_utime(stranger_expiring, t), Ok(UtimePlan::ExpireLock));
        let file = UtimeRequest {
            is_dir: false,
            class: class("orbitlab/x"),
            ..lock_req(0, 0, false)
        };
        assert_eq!(
            plan_utime(file, t),
            Ok(UtimePlan::SetMtime {
                secs: 0,
                renew_lock: false
            })
        );
        let atime_only = UtimeRequest {
            new_mtime: None,
            ..lock_req(0, 0, true)
        };
        assert_eq!(plan_utime(atime_only, t), Ok(UtimePlan::Keep));
    }

    #[test]
    fn members_quorate_follows_the_flag() {
        let fed = br#"{"cluster": {"name": "lab", "quorate": 1}, "nodelist": {}}"#.to_vec();
        assert_eq!(members_with_quorum(fed.clone(), true), fed);
        let off: serde_json::Value =
            serde_json::from_slice(&members_with_quorum(fed, false)).unwrap();
        assert_eq!(off["cluster"]["quorate"], 0);
        assert_eq!(off["cluster"]["name"], "lab");
        assert_eq!(
            members_with_quorum(b"not json".to_vec(), false),
            b"not json"
        );
        assert_eq!(members_with_quorum(b"{}".to_vec(), false), b"{}");
    }

    #[test]
    fn recognises_guest_configs() {
        let g = |p: &str| guest_config(&p.split('/').collect::<Vec<_>>());
        assert_eq!(
            g("nodes/pve1/lxc/101.conf"),
            Some(GuestConfig {
                node: "pve1".into(),
                kind: GuestType::Lxc,
                vmid: 101
            })
        );
        assert_eq!(
            g("nodes/pve1/qemu-server/100.conf").map(|c| c.kind),
            Some(GuestType::Qemu)
        );
        assert_eq!(g("nodes/pve1/lxc/0101.conf"), None);
        assert_eq!(g("nodes/pve1/lxc/101.conf.tmp"), None);
        assert_eq!(g("nodes/-pve/lxc/101.conf"), None);
        assert_eq!(g("nodes/pve1/openvz/101.conf"), None);
        assert_eq!(g("nodes/pve1/lxc/99999999999.conf"), None);
        assert!(valid_node_name(OsStr::new("pve-1")));
        assert!(!valid_node_name(OsStr::new("pve_1")));
    }
}
