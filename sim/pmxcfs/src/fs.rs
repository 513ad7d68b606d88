//! The in-memory inode tree behind the simulated pmxcfs.
//!
//! Owns: directories, regular files and their bytes, modification times (whole
//! seconds, as pmxcfs stores them), a global change version, and the open
//! counts that keep an unlinked-but-open file readable until its last close.
//! No policy lives here (sizes, modes, quorum and locks are in
//! [`crate::rules`]), with one pmxcfs quirk kept where it is mechanical: like
//! pmxcfs's memdb, only an empty directory can be renamed.
//!
//! Nothing here touches the host: no paths, no permissions, no side effects
//! outside the value itself.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::Instant;

/// An inode number as the kernel sees it. Numbers are never reused.
pub(crate) type Ino = u64;

/// The root directory's inode number (fixed by the FUSE protocol).
pub(crate) const ROOT_INO: Ino = 1;

/// First inode number handed to a created file or directory; the numbers in
/// between are reserved for the virtual files (`.members`, `.vmlist`).
const FIRST_FREE_INO: Ino = 16;

/// Why a filesystem operation failed; each maps to one errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// `ENOENT`
    #[error("no such file or directory")]
    NotFound,
    /// `EEXIST`
    #[error("already exists")]
    Exists,
    /// `ENOTEMPTY`
    #[error("directory not empty")]
    NotEmpty,
    /// `ENOTDIR`
    #[error("not a directory")]
    NotDir,
    /// `EISDIR`
    #[error("is a directory")]
    IsDir,
    /// `EACCES`: refused by pmxcfs (no quorum, lock still valid, read-only file)
    #[error("permission denied")]
    Access,
    /// `EPERM`: chmod/chown to anything but what pmxcfs allows
    #[error("operation not permitted")]
    Perm,
    /// `EFBIG`: past the 1 MiB file size limit
    #[error("file too large")]
    TooBig,
    /// `ENOSYS`: not implemented by pmxcfs (symlinks, hard links)
    #[error("function not implemented")]
    NoSys,
    /// `EINVAL`
    #[error("invalid argument")]
    Invalid,
}

impl FsError {
    /// The errno this error is reported as.
    pub fn errno(self) -> i32 {
        match self {
            Self::NotFound => libc::ENOENT,
            Self::Exists => libc::EEXIST,
            Self::NotEmpty => libc::ENOTEMPTY,
            Self::NotDir => libc::ENOTDIR,
            Self::IsDir => libc::EISDIR,
            Self::Access => libc::EACCES,
            Self::Perm => libc::EPERM,
            Self::TooBig => libc::EFBIG,
            Self::NoSys => libc::ENOSYS,
            Self::Invalid => libc::EINVAL,
        }
    }
}

/// Result of a tree operation.
pub(crate) type FsResult<T> = Result<T, FsError>;

/// What a node holds.
#[derive(Debug)]
pub(crate) enum Content {
    /// A directory: children by name (sorted, so listings are stable).
    Dir(BTreeMap<OsString, Ino>),
    /// A regular file's bytes.
    File(Vec<u8>),
}

/// A lock directory's holder and age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockState {
    /// When the lock was taken or last renewed.
    pub since: Instant,
    /// Who took it: the process id standing for a pmxcfs node.
    pub writer: u32,
}

/// One file or directory.
#[derive(Debug)]
pub(crate) struct Node {
    /// Parent directory (the root is its own parent).
    pub parent: Ino,
    /// Name inside the parent (empty for the root).
    pub name: OsString,
    /// Directory entries or file bytes.
    pub content: Content,
    /// Modification time in whole seconds since the epoch.
    pub mtime: u32,
    /// Global change version at this node's last change.
    pub version: u64,
    /// For lock directories: who holds it and since when.
    pub lock: Option<LockState>,
    /// Open file handles on this node.
    open: u32,
    /// False once unlinked or replaced; the node then lives only while open.
    linked: bool,
}

impl Node {
    /// Whether this node is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir(_))
    }

    /// File size in bytes (0 for directories).
    pub fn size(&self) -> u64 {
        match &self.content {
            Content::File(data) => data.len() as u64,
            Content::Dir(_) => 0,
        }
    }

    /// Whether this is a directory without entries (false for files).
    pub fn is_empty_dir(&self) -> bool {
        matches!(&self.content, Content::Dir(children) if children.is_empty())
    }
}

/// The whole tree, guarded by one mutex in the FUSE layer (like pmxcfs's
/// single memdb mutex).
#[derive(Debug)]
pub(crate) struct Tree {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    version: u64,
}

impl Tree {
    /// An empty tree: the root directory only, with the given mtime.
    pub fn new(mtime: u32) -> Self {
        let root = Node {
            parent: ROOT_INO,
            name: OsString::new(),
            content: Content::Dir(BTreeMap::new()),
            mtime,
            version: 0,
            lock: None,
            open: 0,
            linked: true,
        };
        Self {
            nodes: HashMap::from([(ROOT_INO, root)]),
            next_ino: FIRST_FREE_INO,
            version: 0,
        }
    }

    /// The node with this inode number.
    pub fn get(&self, ino: Ino) -> FsResult<&Node> {
        self.nodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn get_mut(&mut self, ino: Ino) -> FsResult<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn children(&self, dir: Ino) -> FsResult<&BTreeMap<OsString, Ino>> {
        match &self.get(dir)?.content {
            Content::Dir(children) => Ok(children),
            Content::File(_) => Err(FsError::NotDir),
        }
    }

    fn children_mut(&mut self, dir: Ino) -> FsResult<&mut BTreeMap<OsString, Ino>> {
        match &mut self.get_mut(dir)?.content {
            Content::Dir(children) => Ok(children),
            Content::File(_) => Err(FsError::NotDir),
        }
    }

    /// The entry `name` in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> FsResult<Ino> {
        self.children(parent)?
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// Path components from the root to `ino` (empty for the root). An
    /// unlinked node keeps the path it had.
    pub fn components(&self, ino: Ino) -> FsResult<Vec<OsString>> {
        let mut out = Vec::new();
        let mut cur = ino;
        while cur != ROOT_INO {
            let node = self.get(cur)?;
            out.push(node.name.clone());
            cur = node.parent;
        }
        out.reverse();
        Ok(out)
    }

    /// Path components of the (possibly not yet existing) entry `name` in `parent`.
    pub fn child_components(&self, parent: Ino, name: &OsStr) -> FsResult<Vec<OsString>> {
        let mut out = self.components(parent)?;
        out.push(name.to_os_string());
        Ok(out)
    }

    /// Directory entries of `dir`, sorted by name.
    pub fn entries(&self, dir: Ino) -> FsResult<Vec<(OsString, Ino, bool)>> {
        self.children(dir)?
            .iter()
            .map(|(name, &ino)| Ok((name.clone(), ino, self.get(ino)?.is_dir())))
            .collect()
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    fn insert(&mut self, parent: Ino, name: &OsStr, content: Content, mtime: u32) -> FsResult<Ino> {
        if self.children(parent)?.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let version = self.bump();
        self.nodes.insert(
            ino,
            Node {
                parent,
                name: name.to_os_string(),
                content,
                mtime,
                version,
                lock: None,
                open: 0,
                linked: true,
            },
        );
        self.children_mut(parent)?.insert(name.to_os_string(), ino);
        Ok(ino)
    }

    /// Creates the directory `name` in `parent` (`EEXIST` if the name is taken).
    pub fn mkdir(&mut self, parent: Ino, name: &OsStr, mtime: u32) -> FsResult<Ino> {
        self.insert(parent, name, Content::Dir(BTreeMap::new()), mtime)
    }

    /// Creates the empty file `name` in `parent` (`EEXIST` if the name is
    /// taken, whatever the open flags: pmxcfs's create never opens an
    /// existing file).
    pub fn create(&mut self, parent: Ino, name: &OsStr, mtime: u32) -> FsResult<Ino> {
        self.insert(parent, name, Content::File(Vec::new()), mtime)
    }

    /// Takes `name` out of `parent`; the node stays alive while open.
    fn detach(&mut self, parent: Ino, name: &OsStr) -> FsResult<Ino> {
        let ino = self
            .children_mut(parent)?
            .remove(name)
            .ok_or(FsError::NotFound)?;
        self.bump();
        let node = self.get_mut(ino)?;
        node.linked = false;
        if node.open == 0 {
            self.nodes.remove(&ino);
        }
        Ok(ino)
    }

    /// Removes the file `name` from `parent`.
    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> FsResult<()> {
        let ino = self.lookup(parent, name)?;
        if self.get(ino)?.is_dir() {
            return Err(FsError::IsDir);
        }
        self.detach(parent, name).map(drop)
    }

    /// Removes the empty directory `name` from `parent`.
    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> FsResult<()> {
        let ino = self.lookup(parent, name)?;
        let node = self.get(ino)?;
        if !node.is_dir() {
            return Err(FsError::NotDir);
        }
        if !node.is_empty_dir() {
            return Err(FsError::NotEmpty);
        }
        self.detach(parent, name).map(drop)
    }

    /// Removes the empty directory with inode `ino` (used when a lock expires).
    pub fn remove_dir(&mut self, ino: Ino) -> FsResult<()> {
        let node = self.get(ino)?;
        let (parent, name) = (node.parent, node.name.clone());
        self.rmdir(parent, &name)
    }

    /// Moves `name` in `parent` to `new_name` in `new_parent`, replacing the
    /// target atomically. As in pmxcfs, a directory can only be moved while
    /// empty; a file cannot replace a directory nor the other way round.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        mtime: u32,
    ) -> FsResult<()> {
        let ino = self.lookup(parent, name)?;
        let source = self.get(ino)?;
        let source_is_dir = source.is_dir();
        if source_is_dir && !source.is_empty_dir() {
            return Err(FsError::NotEmpty);
        }
        self.children(new_parent)?;
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            let target = self.get(target)?;
            match (source_is_dir, target.is_dir()) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !target.is_empty_dir() => return Err(FsError::NotEmpty),
                _ => {}
            }
            self.detach(new_parent, new_name)?;
        }
        self.children_mut(parent)?.remove(name);
        self.children_mut(new_parent)?
            .insert(new_name.to_os_string(), ino);
        let version = self.bump();
        let node = self.get_mut(ino)?;
        node.parent = new_parent;
        node.name = new_name.to_os_string();
        node.mtime = mtime;
        node.version = version;
        Ok(())
    }

    fn file_mut(&mut self, ino: Ino) -> FsResult<&mut Vec<u8>> {
        match &mut self.get_mut(ino)?.content {
            Content::File(data) => Ok(data),
            Content::Dir(_) => Err(FsError::IsDir),
        }
    }

    /// Up to `size` bytes of file `ino` from `offset`.
    pub fn read(&self, ino: Ino, offset: u64, size: usize) -> FsResult<&[u8]> {
        match &self.get(ino)?.content {
            Content::File(data) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = start.saturating_add(size).min(data.len());
                Ok(&data[start..end])
            }
            Content::Dir(_) => Err(FsError::IsDir),
        }
    }

    fn touch(&mut self, ino: Ino, mtime: u32) -> FsResult<()> {
        let version = self.bump();
        let node = self.get_mut(ino)?;
        node.mtime = mtime;
        node.version = version;
        Ok(())
    }

    /// Writes `data` at `offset` into file `ino`, zero-filling any gap. Size
    /// limits are the caller's business.
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8], mtime: u32) -> FsResult<()> {
        let start = usize::try_from(offset).map_err(|_| FsError::TooBig)?;
        let end = start.checked_add(data.len()).ok_or(FsError::TooBig)?;
        let file = self.file_mut(ino)?;
        if file.len() < end {
            file.resize(end, 0);
        }
        file[start..end].copy_from_slice(data);
        self.touch(ino, mtime)
    }

    /// Sets the size of file `ino`, cutting or zero-filling.
    pub fn truncate(&mut self, ino: Ino, size: u64, mtime: u32) -> FsResult<()> {
        let size = usize::try_from(size).map_err(|_| FsError::TooBig)?;
        self.file_mut(ino)?.resize(size, 0);
        self.touch(ino, mtime)
    }

    /// Sets the modification time of `ino`.
    pub fn set_mtime(&mut self, ino: Ino, mtime: u32) -> FsResult<()> {
        self.touch(ino, mtime)
    }

    /// Marks `ino` as a lock taken or renewed by `writer` at `since`.
    pub fn mark_lock(&mut self, ino: Ino, since: Instant, writer: u32) -> FsResult<()> {
        self.get_mut(ino)?.lock = Some(LockState { since, writer });
        Ok(())
    }

    /// Counts one more open handle on `ino`.
    pub fn open(&mut self, ino: Ino) -> FsResult<()> {
        self.get_mut(ino)?.open += 1;
        Ok(())
    }

    /// Counts one handle fewer on `ino`, dropping it if it was unlinked.
    pub fn release(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open = node.open.saturating_sub(1);
            if node.open == 0 && !node.linked {
                self.nodes.remove(&ino);
            }
        }
    }

    /// Bytes held in files and number of nodes, for `statfs`.
    pub fn usage(&self) -> (u64, u64) {
        let bytes = self.nodes.values().map(Node::size).sum();
        (bytes, self.nodes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn mkdir_create_and_lookup() {
        let mut t = Tree::new(1);
        let d = t.mkdir(ROOT_INO, os("priv"), 2).unwrap();
        assert_eq!(t.mkdir(ROOT_INO, os("priv"), 2), Err(FsError::Exists));
        let f = t.create(d, os("a"), 3).unwrap();
        assert_eq!(t.create(d, os("a"), 3), Err(FsError::Exists));
        assert_eq!(t.lookup(d, os("a")), Ok(f));
        assert_eq!(
            t.components(f).unwrap(),
            vec![OsString::from("priv"), "a".into()]
        );
        assert_eq!(t.create(f, os("x"), 3), Err(FsError::NotDir));
    }

    #[test]
    fn write_read_truncate() {
        let mut t = Tree::new(1);
        let f = t.create(ROOT_INO, os("f"), 1).unwrap();
        t.write(f, 2, b"ab", 5).unwrap();
        assert_eq!(t.read(f, 0, 10).unwrap(), b"\0\0ab");
        assert_eq!(t.get(f).unwrap().mtime, 5);
        t.truncate(f, 1, 6).unwrap();
        assert_eq!(t.read(f, 0, 10).unwrap(), b"\0");
        assert_eq!(t.read(f, 7, 10).unwrap(), b"");
    }

    #[test]
    fn rename_replaces_and_keeps_open_victim_readable() {
        let mut t = Tree::new(1);
        let old = t.create(ROOT_INO, os("x"), 1).unwrap();
        t.write(old, 0, b"old", 1).unwrap();
        t.open(old).unwrap();
        let new = t.create(ROOT_INO, os("x.tmp"), 1).unwrap();
        t.write(new, 0, b"new", 1).unwrap();
        t.rename(ROOT_INO, os("x.tmp"), ROOT_INO, os("x"), 2)
            .unwrap();
        assert_eq!(t.lookup(ROOT_INO, os("x")), Ok(new));
        assert_eq!(t.lookup(ROOT_INO, os("x.tmp")), Err(FsError::NotFound));
        assert_eq!(t.read(old, 0, 9).unwrap(), b"old");
        t.release(old);
        assert_eq!(t.get(old).err(), Some(FsError::NotFound));
    }

    #[test]
    fn only_empty_directories_move() {
        let mut t = Tree::new(1);
        let d = t.mkdir(ROOT_INO, os("d"), 1).unwrap();
        t.create(d, os("f"), 1).unwrap();
        assert_eq!(
            t.rename(ROOT_INO, os("d"), ROOT_INO, os("e"), 1),
            Err(FsError::NotEmpty)
        );
        assert_eq!(t.rmdir(ROOT_INO, os("d")), Err(FsError::NotEmpty));
        t.unlink(d, os("f")).unwrap();
        t.rename(ROOT_INO, os("d"), ROOT_INO, os("e"), 1).unwrap();
        assert_eq!(t.unlink(ROOT_INO, os("e")), Err(FsError::IsDir));
        t.rmdir(ROOT_INO, os("e")).unwrap();
        assert_eq!(t.usage(), (0, 1));
    }
}
