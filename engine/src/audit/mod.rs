//! The audit log: who changed what, and who read which secret, when and
//! from which node — never a value.
//!
//! # Files
//!
//! In `<root>/orbitlab/audit/` (config area: 0750/0640, readable by the
//! `www-data` group like the manifests, since it holds no secret):
//! - `YYYY-MM-DD.jsonl`: the records written on that UTC day, one compact
//!   JSON [`Record`] a line, oldest first; a day's shard stops growing at
//!   [`SHARD_LIMIT_BYTES`] (far below pmxcfs' 1 MiB per file, and every
//!   append rewrites and replicates the whole shard) and continues in
//!   `YYYY-MM-DD.1.jsonl`, `YYYY-MM-DD.2.jsonl`...;
//! - `head.json`: the newest record's `seq`, `hash` and shard, written
//!   right after the shard in the same lock, so that cutting records off
//!   the end (or removing the newest shard) is seen too.
//!
//! # Chain
//!
//! Records are numbered 1, 2, 3... across every shard; each carries the
//! SHA-256 of its canonical encoding (see [`Record`]) and the hash of the
//! record before it (the first of a day chains to the last of the day
//! before). [`AuditLog::verify`] walks every shard in order and names the
//! first record (shard, line, seq) that was edited, removed, moved, or is
//! missing at the end. The chain has no secret key: whoever can write
//! `/etc/pve` can also rewrite the whole chain consistently. Keep the head
//! hash `verify` prints elsewhere to detect that.
//!
//! # Appending
//!
//! [`AuditLog::append`] takes the cluster lock `orbitlab-audit` (always the
//! innermost lock: it is taken while a change holds its own lock, and
//! takes no other), reads the newest shard and the head, continues the
//! chain from whichever of them is further along (so a record cut off the
//! end stays a visible gap, and an append interrupted between shard and
//! head is completed), and replaces the shard, then the head, by rename.
//!
//! # Crash story
//!
//! A change is recorded *before* it is made (outcome [`Outcome::Begun`]),
//! and an audit write that fails makes the change fail with nothing
//! changed: there is no change without its record. If the change then
//! fails, a [`Outcome::Failed`] record follows (best effort: a crash at
//! that moment leaves a `begun` record for a change that did not happen —
//! the safe side). A read of a value (secret, private key) is recorded
//! after the read succeeded and before the value is handed out
//! ([`Outcome::Done`]); if the record cannot be written, the value is not
//! handed out.
//!
//! The hooks live where every caller passes: the API's change commit (the
//! command in-process and the agent's HTTPS API alike) and
//! [`crate::api::Api`]'s vault, SSH key and PKI calls.

mod record;
mod verify;

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use record::{Action, Actor, Day, Detail, Entry, GENESIS, Outcome, Record, ShardName, Via};
pub use verify::{Break, Problem, Summary, Verification};

use crate::store::layout::{self, Lock};
use crate::store::{LockGuard, MAX_FILE_BYTES, Store, StoreError};

/// Size at which a day's shard is continued in the next part.
pub const SHARD_LIMIT_BYTES: usize = 256 * 1024;

/// What `head.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Head {
    pub(crate) seq: u64,
    pub(crate) hash: String,
    pub(crate) shard: String,
}

/// Where the clock comes from (tests move it across days).
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The audit log of one store (cheap to clone).
#[derive(Clone)]
pub struct AuditLog {
    store: Store,
    node: String,
    clock: Clock,
    shard_limit: usize,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("root", &self.store.root())
            .field("node", &self.node)
            .finish()
    }
}

impl AuditLog {
    /// The log in `store`, written as this node ([`crate::store::node_name`]).
    pub fn new(store: Store) -> Self {
        AuditLog {
            store,
            node: crate::store::node_name(),
            clock: Arc::new(SystemTime::now),
            shard_limit: SHARD_LIMIT_BYTES,
        }
    }

    /// The same log with another clock (tests and benchmarks).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The same log with another shard size limit (at most 1 MiB; tests).
    pub fn with_shard_limit(mut self, bytes: usize) -> Self {
        self.shard_limit = bytes.min(MAX_FILE_BYTES);
        self
    }

    /// Appends `entries` in order, under the audit lock, in one write of
    /// each shard touched and one of the head; returns the records
    /// written. Nothing is written when it fails.
    pub fn append(&self, entries: &[Entry]) -> Result<Vec<Record>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let guard = self.store.lock(Lock::Audit.name())?;
        let shards = self.shards()?;
        let newest = match shards.last() {
            Some(name) => Some((name.clone(), self.read_shard(name)?)),
            None => None,
        };
        let tail = newest
            .as_ref()
            .and_then(|(_, bytes)| last_record(bytes))
            .map(|r| (r.seq, r.hash));
        let (mut seq, mut prev) = match (self.head()?.map(|h| (h.seq, h.hash)), tail) {
            (None, None) => (0, GENESIS.to_owned()),
            (Some(at), None) | (None, Some(at)) => at,
            // An interrupted append left the shard ahead: continue from it.
            // Records cut off the end left the head ahead: continue from
            // it, so that the gap stays visible to `verify`.
            (Some(head), Some(tail)) => {
                if tail.0 >= head.0 {
                    tail
                } else {
                    head
                }
            }
        };
        let at = crate::status::rfc3339((self.clock)());
        let today = Day::of(&at).ok_or_else(|| StoreError::Corrupt {
            path: self.store.absolute(&layout::audit_dir()),
            reason: format!("the clock gives {at}, not a date"),
        })?;
        // A clock behind the newest shard's day (another node's) keeps
        // writing to that shard: records stay in shard order.
        let (mut shard, mut bytes) = match newest {
            Some((name, bytes)) if *name.day() >= today => (name, bytes),
            _ => (ShardName::first(today), Vec::new()),
        };
        if bytes.last().is_some_and(|b| *b != b'\n') {
            bytes.push(b'\n');
        }
        let mut written = Vec::with_capacity(entries.len());
        for entry in entries {
            seq += 1;
            let record = Record::seal(entry, seq, at.clone(), &self.node, &prev);
            let line = record.line();
            if !bytes.is_empty() && bytes.len() + line.len() + 1 > self.shard_limit {
                self.write(&guard, &layout::audit_shard(&shard), &bytes)?;
                shard = shard.next();
                bytes = Vec::new();
            }
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            prev.clone_from(&record.hash);
            written.push(record);
        }
        self.write(&guard, &layout::audit_shard(&shard), &bytes)?;
        let head = Head {
            seq,
            hash: prev,
            shard: shard.to_string(),
        };
        let head = serde_json::to_vec(&head).unwrap_or_default();
        self.write(&guard, &layout::audit_head(), &head)?;
        Ok(written)
    }

    /// Every record from `since` (a UTC day) on, oldest first. A line that
    /// is not a record is an error naming it (`verify` says more).
    pub fn records(&self, since: Option<&Day>) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for name in self.shards()? {
            if since.is_some_and(|since| name.day() < since) {
                continue;
            }
            let bytes = self.read_shard(&name)?;
            for (i, line) in lines(&bytes) {
                let record = serde_json::from_slice::<Record>(line).map_err(|e| {
                    StoreError::Corrupt {
                        path: self.store.absolute(&layout::audit_shard(&name)),
                        reason: format!(
                            "line {i} is not an audit record ({e}); `orbitlab audit verify` checks the log"
                        ),
                    }
                })?;
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Checks the whole chain (see [`Verification`]). Reads only; takes no
    /// lock (a concurrent append may make the head look one record
    /// ahead: check again).
    pub fn verify(&self) -> Result<Verification, StoreError> {
        let mut walk = verify::Walk::default();
        for name in self.shards()? {
            let bytes = self.read_shard(&name)?;
            if let Some(broken) = walk.shard(&name, &bytes) {
                return Ok(Verification::Broken(broken));
            }
        }
        let head = match self.store.read(&layout::audit_head())? {
            None => None,
            Some(bytes) => match serde_json::from_slice::<Head>(&bytes) {
                Ok(head) => Some(head),
                Err(e) => return Ok(walk.unreadable_head(e.to_string())),
            },
        };
        Ok(walk.finish(head))
    }

    /// The shards present, in chain order.
    fn shards(&self) -> Result<Vec<ShardName>, StoreError> {
        let mut names: Vec<ShardName> = self
            .store
            .list(&layout::audit_dir())?
            .iter()
            .filter_map(|f| ShardName::parse(f))
            .collect();
        names.sort();
        Ok(names)
    }

    fn read_shard(&self, name: &ShardName) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .store
            .read(&layout::audit_shard(name))?
            .unwrap_or_default())
    }

    fn head(&self) -> Result<Option<Head>, StoreError> {
        let path = layout::audit_head();
        match self.store.read(&path)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                StoreError::Corrupt {
                    path: self.store.absolute(&path),
                    reason: format!(
                        "not an audit head ({e}); `orbitlab audit verify` checks the log, and removing the file lets appends continue from the newest shard"
                    ),
                }
            }),
        }
    }

    fn write(
        &self,
        guard: &LockGuard,
        path: &crate::store::StorePath,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        if !guard.is_held() {
            return Err(StoreError::io(
                "write",
                self.store.absolute(path),
                std::io::Error::other(format!(
                    "the cluster lock {} was lost (expired or taken over); nothing more was written",
                    guard.path().display()
                )),
            ));
        }
        self.store.write(path, bytes)
    }
}

/// Non-empty lines with their 1-based numbers.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty())
}

/// The last record of a shard, if its last line is one.
fn last_record(bytes: &[u8]) -> Option<Record> {
    let (_, line) = lines(bytes).last()?;
    serde_json::from_slice(line).ok()
}

/// Records an API caller's actions (the hooks in [`crate::api`]).
#[derive(Debug, Clone)]
pub(crate) struct Witness {
    log: AuditLog,
    actor: Actor,
}

impl Witness {
    pub(crate) fn new(store: &Store, actor: &Actor) -> Self {
        Witness {
            log: AuditLog::new(store.clone()),
            actor: actor.clone(),
        }
    }

    fn entry(&self, action: Action, outcome: Outcome, object: String, detail: Detail) -> Entry {
        Entry {
            actor: self.actor.clone(),
            action,
            outcome,
            object,
            detail,
        }
    }

    /// Records changes about to be made: `(action, object, detail)` each.
    pub(crate) fn begin(&self, items: &[(Action, String, Detail)]) -> Result<(), StoreError> {
        self.write(items, Outcome::Begun)
    }

    /// Records that changes recorded as begun failed. Best effort: the
    /// change's own error is what the caller needs to see.
    pub(crate) fn failed(&self, items: &[(Action, String, Detail)]) {
        if let Err(e) = self.write(items, Outcome::Failed) {
            tracing::warn!(error = %e, "could not record a failed change in the audit log");
        }
    }

    /// Records a completed read.
    pub(crate) fn done(
        &self,
        action: Action,
        object: String,
        detail: Detail,
    ) -> Result<(), StoreError> {
        self.write(&[(action, object, detail)], Outcome::Done)
    }

    fn write(
        &self,
        items: &[(Action, String, Detail)],
        outcome: Outcome,
    ) -> Result<(), StoreError> {
        let entries: Vec<Entry> = items
            .iter()
            .map(|(a, o, d)| self.entry(*a, outcome, o.clone(), d.clone()))
            .collect();
        self.log.append(&entries).map(drop)
    }

    /// Runs `call` as an audited action: a change is recorded before it
    /// runs (and its failure after), a read of a value after it succeeded
    /// and before its answer is returned.
    pub(crate) fn around<T, E: From<StoreError>>(
        &self,
        kind: Audited,
        action: Action,
        object: String,
        detail: Detail,
        call: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        match kind {
            Audited::Read => {
                let answer = call()?;
                self.done(action, object, detail)?;
                Ok(answer)
            }
            Audited::Change => {
                let items = [(action, object, detail)];
                self.begin(&items)?;
                call().inspect_err(|_| self.failed(&items))
            }
        }
    }
}

/// Records that the reconciler read secret `path` to hand it to `into`
/// (Proxmox for an instance's root password, or a file in an instance's
/// container, with `more` saying which file and version), before it
/// leaves: if the record cannot be written, the value is not sent.
pub(crate) fn delivered(
    store: &Store,
    path: &crate::vault::SecretPath,
    into: &str,
    more: &[(&str, String)],
) -> Result<(), StoreError> {
    let mut detail = Detail::from([("into".to_owned(), into.to_owned())]);
    detail.extend(more.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Witness::new(store, &Actor::local_as(RECONCILER)).done(
        Action::SecretDeliver,
        format!("/vault/values/{path}"),
        detail,
    )
}

/// A Pool's decision (`what`: `scale`, `replace`, `remade`, `fail`,
/// `rollout`, `pause`), recorded as done by the reconciler with its
/// figures.
pub(crate) fn pool_event(
    store: &Store,
    pool: &orbitlab_manifests::Name,
    what: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let action = match what {
        "scale" => Action::PoolScale,
        "replace" | "remade" | "fail" => Action::PoolReplace,
        _ => Action::PoolRollout,
    };
    let detail = Detail::from([
        ("event".to_owned(), what.to_owned()),
        ("decision".to_owned(), detail.to_owned()),
    ]);
    Witness::new(store, &Actor::local_as(RECONCILER)).done(action, format!("/pools/{pool}"), detail)
}

/// Runs `call`, a change the reconciler makes on its own (an SSH key
/// rotated, a certificate renewed), recorded in the audit log before it
/// runs and, if it fails, after.
pub(crate) fn reconciler_change<T, E: From<StoreError>>(
    store: &Store,
    action: Action,
    object: String,
    call: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    Witness::new(store, &Actor::local_as(RECONCILER)).around(
        Audited::Change,
        action,
        object,
        Detail::new(),
        call,
    )
}

/// The actor of what the reconciler does on its own (an agent, or
/// `orbitlab reconcile --once`).
pub const RECONCILER: &str = "orbitlab-reconciler";

/// Which audited kind an API call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audited {
    /// Hands out a value: recorded once read.
    Read,
    /// Changes state: recorded before.
    Change,
}
