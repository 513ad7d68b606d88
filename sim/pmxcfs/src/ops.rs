//! The simulated pmxcfs's operations: each applies the pmxcfs
//! [`rules`](crate::rules) to the inode [`Tree`] and returns attributes or
//! an [`FsError`]. The kernel-facing side is in `kernel.rs`.
//!
//! One mutex guards the tree (pmxcfs also serialises on one memdb mutex), so
//! every operation is atomic for all processes sharing the mount. Every file
//! is owned by root:www-data. Lock holders are identified by process id
//! (read from `/proc/<tid>/status`), standing for pmxcfs nodes.
//!
//! The quorum flag and the `.members`/`.vmlist` feeds are read from the
//! [`Control`] directory on every request that needs them.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo, OpenAccMode, OpenFlags, RenameFlags};

use crate::control::Control;
use crate::fs::{FsError, FsResult, Ino, ROOT_INO, Tree};
use crate::rules::{self, UtimePlan, UtimeRequest, VirtualFile};
use crate::vmlist;

fn virtual_ino(file: VirtualFile) -> Ino {
    match file {
        VirtualFile::Members => 2,
        VirtualFile::Vmlist => 3,
    }
}

pub(crate) fn virtual_of_ino(ino: Ino) -> Option<VirtualFile> {
    VirtualFile::ALL
        .into_iter()
        .find(|&v| virtual_ino(v) == ino)
}

fn virtual_at(parent: Ino, name: &OsStr) -> Option<VirtualFile> {
    (parent == ROOT_INO)
        .then(|| VirtualFile::from_name(name))
        .flatten()
}

pub(crate) fn now_secs() -> u32 {
    secs_of(SystemTime::now())
}

pub(crate) fn secs_of(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// The directories every pmxcfs has from the start: `nodes/`, `priv/`
/// and `priv/lock/`.
fn fresh_tree() -> Tree {
    let now = now_secs();
    let mut tree = Tree::new(now);
    let made = tree
        .mkdir(ROOT_INO, OsStr::new("nodes"), now)
        .and_then(|_| tree.mkdir(ROOT_INO, OsStr::new("priv"), now))
        .and_then(|private| tree.mkdir(private, OsStr::new("lock"), now));
    debug_assert!(made.is_ok(), "an empty tree takes any name");
    tree
}

/// A directory listing entry taken at `opendir`, served by `readdir`.
#[derive(Debug)]
pub(crate) struct DirEntry {
    pub ino: Ino,
    pub kind: FileType,
    pub name: OsString,
}

#[derive(Debug)]
struct State {
    tree: Tree,
    listings: HashMap<u64, Vec<DirEntry>>,
    next_fh: u64,
    /// Bumped whenever a guest config appears, changes or goes (`.vmlist` version).
    guests_version: u64,
}

/// The simulated pmxcfs (served to the kernel by `kernel.rs`).
#[derive(Debug)]
pub(crate) struct PmxcfsFs {
    state: Mutex<State>,
    control: Control,
    lock_timeout: Duration,
    www_data_gid: u32,
}

impl PmxcfsFs {
    pub fn new(control: Control, lock_timeout: Duration, www_data_gid: u32) -> Self {
        Self {
            state: Mutex::new(State {
                tree: fresh_tree(),
                listings: HashMap::new(),
                next_fh: 1,
                guests_version: 0,
            }),
            control,
            lock_timeout,
            www_data_gid,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn attr(&self, ino: Ino, kind: FileType, size: u64, mtime: SystemTime, perm: u16) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: 0,
            gid: self.www_data_gid,
            rdev: 0,
            blksize: rules::BLOCK_SIZE,
            flags: 0,
        }
    }

    fn node_attr(&self, tree: &Tree, ino: Ino, quorate: bool) -> FsResult<FileAttr> {
        let node = tree.get(ino)?;
        let class = rules::classify(&tree.components(ino)?);
        let kind = if node.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        };
        let mtime = UNIX_EPOCH + Duration::from_secs(node.mtime.into());
        let perm = rules::perm(node.is_dir(), class.private, quorate);
        Ok(self.attr(ino, kind, node.size(), mtime, perm))
    }

    /// Content of a virtual file: fed through the control directory (with
    /// `.members`' quorum following the flag), or (for `.vmlist` only)
    /// computed from the tree.
    fn virtual_content(&self, file: VirtualFile) -> FsResult<(Vec<u8>, SystemTime)> {
        if let Some((bytes, mtime)) = self.control.feed(file) {
            let bytes = match file {
                VirtualFile::Members => rules::members_with_quorum(bytes, self.control.quorate()),
                VirtualFile::Vmlist => bytes,
            };
            return Ok((bytes, mtime));
        }
        match file {
            VirtualFile::Members => Err(FsError::NotFound),
            VirtualFile::Vmlist => {
                let st = self.state();
                Ok((
                    vmlist::render(&st.tree, st.guests_version),
                    SystemTime::now(),
                ))
            }
        }
    }

    fn virtual_attr(&self, file: VirtualFile) -> FsResult<FileAttr> {
        let (bytes, mtime) = self.virtual_content(file)?;
        Ok(self.attr(
            virtual_ino(file),
            FileType::RegularFile,
            bytes.len() as u64,
            mtime,
            0o440,
        ))
    }

    pub(crate) fn do_lookup(&self, parent: Ino, name: &OsStr) -> FsResult<FileAttr> {
        if let Some(file) = virtual_at(parent, name) {
            return self.virtual_attr(file);
        }
        let quorate = self.control.quorate();
        let st = self.state();
        let ino = st.tree.lookup(parent, name)?;
        self.node_attr(&st.tree, ino, quorate)
    }

    pub(crate) fn do_getattr(&self, ino: Ino) -> FsResult<FileAttr> {
        if let Some(file) = virtual_of_ino(ino) {
            return self.virtual_attr(file);
        }
        let quorate = self.control.quorate();
        self.node_attr(&self.state().tree, ino, quorate)
    }

    /// chmod, chown, truncate and utime, in that order (as libfuse calls
    /// them for pmxcfs), stopping at the first refusal.
    pub(crate) fn do_setattr(&self, ino: Ino, change: &AttrChange) -> FsResult<FileAttr> {
        if let Some(file) = virtual_of_ino(ino) {
            if let Some(mode) = change.mode {
                rules::check_chmod(mode, false)?;
            }
            rules::check_chown(change.uid, change.gid, self.www_data_gid)?;
            if change.size.is_some() || change.times {
                return Err(FsError::Access);
            }
            return self.virtual_attr(file);
        }
        let quorate = self.control.quorate();
        let mut st = self.state();
        let tree = &mut st.tree;
        let path = tree.components(ino)?;
        let class = rules::classify(&path);
        if let Some(mode) = change.mode {
            rules::check_chmod(mode, class.private)?;
        }
        rules::check_chown(change.uid, change.gid, self.www_data_gid)?;
        if let Some(size) = change.size {
            rules::require_quorum(quorate)?;
            rules::check_truncate(size)?;
            tree.truncate(ino, size, now_secs())?;
        }
        if change.times {
            rules::require_quorum(quorate)?;
            let node = tree.get(ino)?;
            let request = UtimeRequest {
                is_dir: node.is_dir(),
                class,
                current_mtime: node.mtime,
                new_mtime: change.mtime,
                lock_age: node.lock.map(|l| l.since.elapsed()),
                from_holder: node
                    .lock
                    .is_none_or(|l| l.writer == process_of(change.caller)),
                empty_dir: node.is_empty_dir(),
            };
            match rules::plan_utime(request, self.lock_timeout)? {
                UtimePlan::Keep => {}
                UtimePlan::SetMtime { secs, renew_lock } => {
                    tree.set_mtime(ino, secs)?;
                    if renew_lock {
                        tree.mark_lock(ino, Instant::now(), process_of(change.caller))?;
                    }
                }
                UtimePlan::ExpireLock => {
                    tree.remove_dir(ino)?;
                    tracing::info!(path = %display_path(&path), "expired lock removed on request");
                    return Err(FsError::NotFound);
                }
            }
        }
        self.node_attr(tree, ino, quorate)
    }

    /// Common preamble of every change to entry `name` in `parent`: the
    /// virtual files are read-only and nothing changes without quorum.
    fn guard_change(&self, parent: Ino, name: &OsStr) -> FsResult<()> {
        if virtual_at(parent, name).is_some() {
            return Err(FsError::Access);
        }
        rules::require_quorum(self.control.quorate())
    }

    pub(crate) fn do_mkdir(&self, parent: Ino, name: &OsStr, caller: u32) -> FsResult<FileAttr> {
        self.guard_change(parent, name)?;
        let mut st = self.state();
        let class = rules::classify(&st.tree.child_components(parent, name)?);
        let ino = st.tree.mkdir(parent, name, now_secs())?;
        if class.in_lock_area {
            st.tree.mark_lock(ino, Instant::now(), process_of(caller))?;
        }
        self.node_attr(&st.tree, ino, true)
    }

    pub(crate) fn do_create(&self, parent: Ino, name: &OsStr, open: bool) -> FsResult<FileAttr> {
        self.guard_change(parent, name)?;
        let mut st = self.state();
        let guest = rules::guest_config(&st.tree.child_components(parent, name)?);
        if guest
            .as_ref()
            .is_some_and(|g| vmlist::conflicts(&st.tree, g, None))
        {
            return Err(FsError::Exists);
        }
        let ino = st.tree.create(parent, name, now_secs())?;
        if open {
            st.tree.open(ino)?;
        }
        if guest.is_some() {
            st.guests_version += 1;
        }
        self.node_attr(&st.tree, ino, true)
    }

    pub(crate) fn do_remove(&self, parent: Ino, name: &OsStr, dir: bool) -> FsResult<()> {
        self.guard_change(parent, name)?;
        let mut st = self.state();
        let guest = rules::guest_config(&st.tree.child_components(parent, name)?);
        if dir {
            st.tree.rmdir(parent, name)?;
        } else {
            st.tree.unlink(parent, name)?;
        }
        if guest.is_some() {
            st.guests_version += 1;
        }
        Ok(())
    }

    pub(crate) fn do_rename(
        &self,
        from: (Ino, &OsStr),
        to: (Ino, &OsStr),
        flags: RenameFlags,
    ) -> FsResult<()> {
        if !flags.is_empty() {
            // pmxcfs (libfuse 2 API) has no rename2: the kernel answers EINVAL.
            return Err(FsError::Invalid);
        }
        self.guard_change(from.0, from.1)?;
        self.guard_change(to.0, to.1)?;
        let mut st = self.state();
        let src = st.tree.lookup(from.0, from.1)?;
        let src_path = st.tree.child_components(from.0, from.1)?;
        let dst_path = st.tree.child_components(to.0, to.1)?;
        let src_is_dir = st.tree.get(src)?.is_dir();
        if src_is_dir && rules::classify(&src_path).in_lock_area {
            return Err(FsError::Access);
        }
        let src_guest = rules::guest_config(&src_path);
        let dst_guest = rules::guest_config(&dst_path);
        let taken = |g: &rules::GuestConfig| vmlist::conflicts(&st.tree, g, src_guest.as_ref());
        if !src_is_dir && dst_guest.as_ref().is_some_and(taken) {
            return Err(FsError::Exists);
        }
        st.tree.rename(from.0, from.1, to.0, to.1, now_secs())?;
        if src_guest.is_some() || dst_guest.is_some() {
            st.guests_version += 1;
        }
        Ok(())
    }

    pub(crate) fn do_open(&self, ino: Ino, flags: OpenFlags) -> FsResult<()> {
        if virtual_of_ino(ino).is_some() {
            return match flags.acc_mode() {
                OpenAccMode::O_RDONLY => Ok(()),
                _ => Err(FsError::Access),
            };
        }
        let mut st = self.state();
        if st.tree.get(ino)?.is_dir() {
            return Err(FsError::IsDir);
        }
        st.tree.open(ino)
    }

    pub(crate) fn do_read(&self, ino: Ino, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let size = size as usize;
        if let Some(file) = virtual_of_ino(ino) {
            let (bytes, _) = self.virtual_content(file)?;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = start.saturating_add(size).min(bytes.len());
            return Ok(bytes[start..end].to_vec());
        }
        Ok(self.state().tree.read(ino, offset, size)?.to_vec())
    }

    pub(crate) fn do_write(&self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<usize> {
        if virtual_of_ino(ino).is_some() {
            return Err(FsError::Access);
        }
        rules::require_quorum(self.control.quorate())?;
        let n = rules::writable_len(offset, data.len())?;
        let mut st = self.state();
        st.tree.write(ino, offset, &data[..n], now_secs())?;
        if rules::guest_config(&st.tree.components(ino)?).is_some() {
            st.guests_version += 1;
        }
        Ok(n)
    }

    /// Serves part of the listing `fh` from entry `offset` on: `add` gets
    /// each entry with the offset of the next one, and returns true when
    /// the reply is full.
    pub(crate) fn list(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(&DirEntry, u64) -> bool,
    ) -> FsResult<()> {
        let st = self.state();
        let listing = st.listings.get(&fh).ok_or(FsError::Invalid)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, entry) in listing.iter().enumerate().skip(start) {
            if add(entry, i as u64 + 1) {
                break;
            }
        }
        Ok(())
    }

    /// Drops the listing taken by `opendir`.
    pub(crate) fn close_listing(&self, fh: u64) {
        self.state().listings.remove(&fh);
    }

    /// One handle on `ino` fewer.
    pub(crate) fn release(&self, ino: Ino) {
        if virtual_of_ino(ino).is_none() {
            self.state().tree.release(ino);
        }
    }

    /// `statfs` figures: (blocks, free blocks, inodes, free inodes), against
    /// pmxcfs's reported capacity.
    pub(crate) fn usage(&self) -> (u64, u64, u64, u64) {
        let (bytes, nodes) = self.state().tree.usage();
        let block = u64::from(rules::BLOCK_SIZE);
        let blocks = rules::MAX_FS_BYTES / block;
        let free = blocks.saturating_sub(bytes.div_ceil(block));
        let free_inodes = rules::MAX_INODES.saturating_sub(nodes);
        (blocks, free, rules::MAX_INODES, free_inodes)
    }

    pub(crate) fn do_opendir(&self, ino: Ino) -> FsResult<u64> {
        let virtuals: Vec<VirtualFile> = if ino == ROOT_INO {
            VirtualFile::ALL
                .into_iter()
                .filter(|&v| self.virtual_content(v).is_ok())
                .collect()
        } else {
            Vec::new()
        };
        let mut st = self.state();
        let node = st.tree.get(ino)?;
        let mut listing = vec![
            DirEntry {
                ino,
                kind: FileType::Directory,
                name: ".".into(),
            },
            DirEntry {
                ino: node.parent,
                kind: FileType::Directory,
                name: "..".into(),
            },
        ];
        listing.extend(virtuals.into_iter().map(|v| DirEntry {
            ino: virtual_ino(v),
            kind: FileType::RegularFile,
            name: v.name().into(),
        }));
        for (name, child, is_dir) in st.tree.entries(ino)? {
            let kind = if is_dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            listing.push(DirEntry {
                ino: child,
                kind,
                name,
            });
        }
        let fh = st.next_fh;
        st.next_fh += 1;
        st.listings.insert(fh, listing);
        Ok(fh)
    }
}

/// A path for log lines, from components below the mount root.
fn display_path(components: &[OsString]) -> String {
    let parts: Vec<String> = components
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    format!("/{}", parts.join("/"))
}

/// The process a FUSE request came from (the kernel reports the calling
/// thread): processes stand for pmxcfs nodes as lock writers.
fn process_of(tid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

/// The parts of a `setattr` request pmxcfs cares about.
#[derive(Debug)]
pub(crate) struct AttrChange {
    /// Thread id of the caller.
    pub caller: u32,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    /// Any of atime or mtime is being set (a `utimens` call).
    pub times: bool,
    pub mtime: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_inodes_round_trip() {
        for v in VirtualFile::ALL {
            assert_eq!(virtual_of_ino(virtual_ino(v)), Some(v));
            assert_eq!(virtual_at(ROOT_INO, OsStr::new(v.name())), Some(v));
            assert_eq!(virtual_at(99, OsStr::new(v.name())), None);
        }
        assert_eq!(virtual_of_ino(ROOT_INO), None);
    }

    #[test]
    fn a_fresh_tree_has_the_standard_directories() {
        let t = fresh_tree();
        let private = t.lookup(ROOT_INO, OsStr::new("priv")).unwrap();
        assert!(t.lookup(private, OsStr::new("lock")).is_ok());
        assert!(t.lookup(ROOT_INO, OsStr::new("nodes")).is_ok());
    }

    #[test]
    fn threads_map_to_their_process() {
        let me = std::process::id();
        assert_eq!(process_of(me), me);
        let (tid, process) = std::thread::spawn(|| {
            let tid: u32 = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name()?.to_str()?.parse().ok())
                .expect("thread id");
            (tid, process_of(tid))
        })
        .join()
        .unwrap();
        assert_ne!(tid, me);
        assert_eq!(process, me);
    }

    #[test]
    fn time_conversion_clamps() {
        assert_eq!(secs_of(UNIX_EPOCH), 0);
        assert_eq!(secs_of(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(secs_of(UNIX_EPOCH + Duration::from_secs(42)), 42);
    }
}
