//! Noticing that something may need doing.
//!
//! inotify on pmxcfs reports only changes made through this node's mount,
//! so the agent polls the change counter `<root>/orbitlab/generation` (one
//! small read every poll interval; every manifest writer and every agent
//! that changed something bumps it) and does a full resync at a fixed
//! interval even when the counter stands still. Local changes take a fast
//! path on top of this: [`super::local`] watches the counter and the
//! manifests with inotify and wakes the loop at once, so a manifest applied
//! on this node, or a hand-over between agents sharing this node's mount
//! (owner → node agent → owner), does not wait for the next poll. Changes
//! made on other nodes are still seen at the next poll.
//!
//! When this agent bumps the counter itself, it does not wake itself up
//! again unless someone else bumped it in between. Reads only.

use std::time::{Duration, Instant};

use orbitlab_engine::store::{Generation, Store, StoreError};

/// Why work may be needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// The change counter moved (or was read for the first time).
    Changed(Generation),
    /// The resync interval passed.
    Resync,
}

/// Watches the change counter and the resync clock.
#[derive(Debug)]
pub struct ChangeWatch {
    seen: Option<Generation>,
    resync_every: Duration,
    last_resync: Instant,
}

impl ChangeWatch {
    /// Nothing seen yet: the first poll reports a change.
    pub fn new(resync_every: Duration) -> Self {
        ChangeWatch {
            seen: None,
            resync_every,
            last_resync: Instant::now(),
        }
    }

    /// The counter value last seen.
    pub fn seen(&self) -> Option<Generation> {
        self.seen
    }

    /// Reads the counter; says whether to work and why.
    pub fn poll(&mut self, store: &Store, now: Instant) -> Result<Option<Wakeup>, StoreError> {
        let current = store.generation()?;
        if self.seen != Some(current) {
            self.seen = Some(current);
            return Ok(Some(Wakeup::Changed(current)));
        }
        if now.duration_since(self.last_resync) >= self.resync_every {
            self.last_resync = now;
            return Ok(Some(Wakeup::Resync));
        }
        Ok(None)
    }

    /// Starts the resync clock again (a resync was just asked for).
    pub fn resynced(&mut self, now: Instant) {
        self.last_resync = now;
    }

    /// This agent bumped the counter to `bumped`: if nobody else moved it
    /// since the last poll, that change is already known here.
    pub fn bumped_by_us(&mut self, bumped: Generation) {
        if self
            .seen
            .is_some_and(|seen| seen.0.wrapping_add(1) == bumped.0)
        {
            self.seen = Some(bumped);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_changes_resyncs_and_ignores_its_own_bump() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let start = Instant::now();
        let mut watch = ChangeWatch::new(Duration::from_secs(60));
        assert_eq!(
            watch.poll(&store, start).unwrap(),
            Some(Wakeup::Changed(Generation(0)))
        );
        assert_eq!(watch.poll(&store, start).unwrap(), None);
        let other = store.bump_generation().unwrap();
        assert_eq!(
            watch.poll(&store, start).unwrap(),
            Some(Wakeup::Changed(other))
        );
        // Our own bump right after: nothing new.
        watch.bumped_by_us(store.bump_generation().unwrap());
        assert_eq!(watch.poll(&store, start).unwrap(), None);
        // Someone else and then we: the other change is still noticed.
        store.bump_generation().unwrap();
        watch.bumped_by_us(store.bump_generation().unwrap());
        assert!(matches!(
            watch.poll(&store, start).unwrap(),
            Some(Wakeup::Changed(Generation(4)))
        ));
        let later = start + Duration::from_secs(61);
        assert_eq!(watch.poll(&store, later).unwrap(), Some(Wakeup::Resync));
        assert_eq!(watch.poll(&store, later).unwrap(), None);
    }
}
