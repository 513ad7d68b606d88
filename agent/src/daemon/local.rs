//! The inotify fast path: changes made through this node's mount wake the
//! loop at once instead of at the next poll.
//!
//! Watched (non-recursively, with the `inotify` crate's blocking API on a
//! thread of its own, `local-changes`):
//! - `<root>/orbitlab/`: the change counter `generation` being replaced
//!   (renamed into place) — another agent on this node, or the CLI, changed
//!   something;
//! - `<root>/orbitlab/manifests/` and every `<kind>/` under it: a
//!   `*.yaml` manifest written, renamed or removed.
//!
//! The names come from [`crate::store::layout`].
//!
//! Directories that do not exist yet are watched once their parent reports
//! them (and `<root>` is watched until `orbitlab/` exists). inotify sees
//! nothing written on other nodes (see `DESIGN.md`, "On the cluster"): this
//! is only a shortcut, and the loop keeps polling the counter and resyncing.
//! Reads only; the thread ends when the loop's channel is gone.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use super::signals::Wake;
use orbitlab_engine::store::layout;
use orbitlab_engine::store::{Area, StorePath};

/// What a local change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalChange {
    /// The change counter was replaced: read it now.
    Counter,
    /// A manifest was written or removed.
    Manifests,
}

/// The role of a watched directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Root,
    Config,
    Manifests,
    Kind,
}

/// The inotify instance and what each watch is for.
struct Watcher {
    inotify: Inotify,
    root: PathBuf,
    dirs: HashMap<WatchDescriptor, Dir>,
}

/// What is watched for in every directory.
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CLOSE_WRITE
        | WatchMask::DELETE
        | WatchMask::ONLYDIR
}

impl Watcher {
    fn config_dir(&self) -> PathBuf {
        StorePath::area_root(Area::Config).under(&self.root)
    }

    fn manifests_dir(&self) -> PathBuf {
        layout::manifests_root().under(&self.root)
    }

    /// Watches `path` as `dir`; a directory that is missing (or cannot be
    /// watched) is simply left out, the poll still covers it.
    fn add(&mut self, path: &Path, dir: Dir) -> bool {
        match self.inotify.watches().add(path, mask()) {
            Ok(wd) => {
                self.dirs.insert(wd, dir);
                true
            }
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::debug!(path = %path.display(), error = %e, "cannot watch a directory; polling covers it");
                }
                false
            }
        }
    }

    /// Watches `orbitlab/manifests/` and its kind directories.
    fn add_manifests(&mut self) {
        let manifests = self.manifests_dir();
        if !self.add(&manifests, Dir::Manifests) {
            return;
        }
        if let Ok(entries) = std::fs::read_dir(&manifests) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    self.add(&entry.path(), Dir::Kind);
                }
            }
        }
    }

    /// Watches `orbitlab/` and below, or `<root>` until `orbitlab/` exists.
    fn add_config(&mut self) -> bool {
        if !self.add(&self.config_dir(), Dir::Config) {
            return false;
        }
        self.add_manifests();
        true
    }

    /// What one event means, adding watches for new directories.
    fn interpret(
        &mut self,
        dir: Dir,
        mask: EventMask,
        name: Option<&OsStr>,
    ) -> Option<LocalChange> {
        let name = name?.to_str()?;
        let is_dir = mask.contains(EventMask::ISDIR);
        let appeared = mask.intersects(EventMask::CREATE | EventMask::MOVED_TO);
        match dir {
            Dir::Root if is_dir && appeared && name == Area::Config.dir() => {
                self.add_config();
                Some(LocalChange::Manifests)
            }
            Dir::Config if is_dir && appeared && name == layout::manifests_root().file_name() => {
                self.add_manifests();
                Some(LocalChange::Manifests)
            }
            Dir::Config if !is_dir && name == layout::generation().file_name() => {
                // Replaced by rename (MOVED_TO) or written in place.
                mask.intersects(EventMask::MOVED_TO | EventMask::CLOSE_WRITE)
                    .then_some(LocalChange::Counter)
            }
            Dir::Manifests if is_dir && appeared => {
                self.add(&self.manifests_dir().join(name), Dir::Kind);
                Some(LocalChange::Manifests)
            }
            Dir::Kind if !is_dir && layout::manifest_file_name(name).is_some() => mask
                .intersects(
                    EventMask::MOVED_TO
                        | EventMask::MOVED_FROM
                        | EventMask::CLOSE_WRITE
                        | EventMask::DELETE,
                )
                .then_some(LocalChange::Manifests),
            _ => None,
        }
    }
}

/// Starts watching `root` (the directory playing `/etc/pve`); every local
/// change is sent as [`Wake::Local`]. Fails only when inotify itself is
/// unavailable (the caller then relies on polling).
pub fn spawn(root: &Path, wake: Sender<Wake>) -> std::io::Result<()> {
    let mut watcher = Watcher {
        inotify: Inotify::init()?,
        root: root.to_owned(),
        dirs: HashMap::new(),
    };
    if !watcher.add_config() {
        watcher.add(root, Dir::Root);
    }
    std::thread::Builder::new()
        .name("local-changes".into())
        .spawn(move || run(watcher, wake))?;
    Ok(())
}

fn run(mut watcher: Watcher, wake: Sender<Wake>) {
    // Events are read in place, without allocating, to keep this idle
    // thread's footprint to its stack.
    let mut buffer = [0u8; 4096];
    loop {
        let events = match watcher.inotify.read_events_blocking(&mut buffer) {
            Ok(events) => events,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read inotify events: local changes are noticed at the next poll");
                return;
            }
        };
        // One wake per kind of change in a burst, in order.
        let mut changes: [Option<LocalChange>; 2] = [None, None];
        let mut note = |change: LocalChange| {
            if !changes.contains(&Some(change))
                && let Some(slot) = changes.iter_mut().find(|c| c.is_none())
            {
                *slot = Some(change);
            }
        };
        for event in events {
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                // Events were lost: assume everything changed.
                note(LocalChange::Manifests);
                continue;
            }
            if event.mask.contains(EventMask::IGNORED) {
                watcher.dirs.remove(&event.wd);
                continue;
            }
            let Some(&dir) = watcher.dirs.get(&event.wd) else {
                continue;
            };
            if let Some(change) = watcher.interpret(dir, event.mask, event.name) {
                note(change);
            }
        }
        for change in changes.into_iter().flatten() {
            if wake.send(Wake::Local(change)).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use orbitlab_engine::store::Store;

    /// Receives until `wanted` arrives; false if it never does.
    fn wait_for(woken: &mpsc::Receiver<Wake>, wanted: LocalChange) -> bool {
        while let Ok(wake) = woken.recv_timeout(Duration::from_secs(10)) {
            if wake == Wake::Local(wanted) {
                return true;
            }
        }
        false
    }

    #[test]
    fn the_config_dir_appearing_wakes_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let (wake, woken) = mpsc::channel();
        // Nothing exists yet: watching starts at the root.
        spawn(dir.path(), wake).unwrap();
        Store::open(dir.path()).bump_generation().unwrap();
        assert!(
            wait_for(&woken, LocalChange::Manifests),
            "orbitlab/ appeared"
        );
    }

    #[test]
    fn counter_bumps_and_manifest_writes_wake_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        store.bump_generation().unwrap();
        let (wake, woken) = mpsc::channel();
        spawn(dir.path(), wake).unwrap();
        store.bump_generation().unwrap();
        assert_eq!(
            woken.recv_timeout(Duration::from_secs(10)).ok(),
            Some(Wake::Local(LocalChange::Counter))
        );

        let kind = dir.path().join("orbitlab/manifests/sector");
        std::fs::create_dir_all(&kind).unwrap();
        std::fs::write(kind.join("web.yaml.tmp.1"), "x").unwrap();
        std::fs::rename(kind.join("web.yaml.tmp.1"), kind.join("web.yaml")).unwrap();
        // Events arrive in order: a bump after the write is a barrier.
        store.bump_generation().unwrap();
        let mut seen = Vec::new();
        while let Ok(Wake::Local(change)) = woken.recv_timeout(Duration::from_secs(10)) {
            seen.push(change);
            if change == LocalChange::Counter {
                break;
            }
        }
        assert_eq!(seen.last(), Some(&LocalChange::Counter));
        assert!(seen.contains(&LocalChange::Manifests), "{seen:?}");
        std::fs::remove_file(kind.join("web.yaml")).unwrap();
        assert!(
            wait_for(&woken, LocalChange::Manifests),
            "a removal wakes too"
        );
        store.bump_generation().unwrap();
        assert!(wait_for(&woken, LocalChange::Counter));

        // Statuses and other files are not watched: the next wake after
        // writing them is the bump that follows.
        let status = dir.path().join("orbitlab/status/sector");
        std::fs::create_dir_all(&status).unwrap();
        std::fs::write(status.join("web.json"), "x").unwrap();
        std::fs::write(dir.path().join("orbitlab/other"), "x").unwrap();
        std::fs::write(kind.join("notes.txt"), "x").unwrap();
        store.bump_generation().unwrap();
        assert_eq!(
            woken.recv_timeout(Duration::from_secs(10)).ok(),
            Some(Wake::Local(LocalChange::Counter))
        );
    }
}
