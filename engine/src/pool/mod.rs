//! Pools' records on pmxcfs, and the health checks of their members.
//!
//! - `orbitlab/pools/<pool>.json` ([`PoolRecord`]): which members exist
//!   (`<pool>-<n>`) and from which revision of the template each was made,
//!   the spec of every revision still in use, the member count auto-scaling
//!   chose, a rollout paused by a failure, and the last events (scaling
//!   decisions with their figures, replacements). Written only by the
//!   cluster-scoped reconciler, under the cluster lock, replace-by-rename;
//!   a member is recorded before its container is made, so a crash never
//!   makes one twice.
//! - `orbitlab/pools/<pool>.control` ([`Control`]): what an operator asked
//!   (`orbitlab pool rollout pause|resume`), written by the API.
//! - `orbitlab/status/health/<node>.json` ([`HealthReport`]): the checks
//!   `node`'s agent ran ([`probe`]), written by that agent only.
//!
//! Secrets never appear here: members' specs name Secrets and keys only.

pub mod probe;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::SystemTime;

use orbitlab_manifests::{LxcSpec, Name, NodeName};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError, layout};

/// Events kept in a record (the newest).
pub const EVENTS_KEPT: usize = 20;

/// A Pool's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    /// Members by number (`<pool>-<n>`).
    pub members: BTreeMap<u32, Member>,
    /// The member count wanted now: `replicas`, or what auto-scaling chose.
    pub replicas: u16,
    /// The template's spec of every revision a member was made from.
    pub revisions: BTreeMap<String, LxcSpec>,
    /// The revision of the manifest's template the last pass saw, and the
    /// one before it (what `rollout undo` goes back to).
    #[serde(default)]
    pub current: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Why the rollout stopped (a member of the new revision failed);
    /// cleared by a resume after it, or by a new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Pause>,
    /// Why replacing stopped (members failed again and again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Pause>,
    /// The Sector Gateway container that checks members over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
    /// Since when the members' use is above (or below) target.
    #[serde(default)]
    pub scaling: Scaling,
    /// The newest events, oldest first.
    #[serde(default)]
    pub events: Vec<Event>,
    /// When members were replaced (Unix seconds, the newest
    /// [`EVENTS_KEPT`]): the backoff and the flapping limit count these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced_at: Vec<u64>,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The revision it is made from.
    pub revision: String,
    /// When it was recorded, Unix seconds.
    pub since: u64,
    /// The container it had when last seen (a different one later means
    /// the container was made again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// The node of that container and the member's address: where the
    /// agents find it to check its health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// Why it is on its way out (replaced, scaled down, rolled over); it
    /// is removed once that is safe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<String>,
    /// The member that replaces it, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<u32>,
}

impl Member {
    /// A member of `revision` recorded at `now` (Unix seconds), its
    /// container still to be made.
    pub fn new(revision: String, now: u64) -> Member {
        Member {
            revision,
            since: now,
            vmid: None,
            node: None,
            address: None,
            retiring: None,
            replaced_by: None,
        }
    }
}

/// Where a Pool's Sector Gateway runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    pub vmid: u32,
    pub node: NodeName,
}

/// A stop, with its reason and time (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub reason: String,
    pub at: u64,
}

/// Auto-scaling's memory between passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    /// Since when use is above target (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above_since: Option<u64>,
    /// Since when use is below what one member fewer would need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below_since: Option<u64>,
}

/// Something the pool did, for its status and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds.
    pub at: u64,
    /// `scale`, `replace`, `remade`, `rollout`, `pause`, `fail`.
    pub what: String,
    /// The figures and names that explain it.
    pub detail: String,
}

impl PoolRecord {
    /// Appends an event, keeping the newest [`EVENTS_KEPT`].
    pub fn push_event(&mut self, at: u64, what: &str, detail: String) {
        self.events.push(Event {
            at,
            what: what.to_owned(),
            detail,
        });
        let extra = self.events.len().saturating_sub(EVENTS_KEPT);
        self.events.drain(..extra);
    }

    /// The lowest member number neither in use nor in `avoid` (numbers
    /// whose container may still exist, or freed in the same decision: a
    /// new member never takes over an old container).
    pub fn free_number(&self, avoid: &std::collections::BTreeSet<u32>) -> u32 {
        (1..)
            .find(|n| !self.members.contains_key(n) && !avoid.contains(n))
            .unwrap_or(1)
    }

    /// Records a replacement at `at`.
    pub fn replaced(&mut self, at: u64) {
        self.replaced_at.push(at);
        let extra = self.replaced_at.len().saturating_sub(EVENTS_KEPT);
        self.replaced_at.drain(..extra);
    }

    /// Replacements made since `since` (Unix seconds).
    pub fn replacements_since(&self, since: u64) -> usize {
        self.replaced_at.iter().filter(|at| **at >= since).count()
    }
}

/// The name of member `n` of `pool`.
pub fn member_name(pool: &Name, n: u32) -> Name {
    format!("{pool}-{n}")
        .parse()
        .expect("a pool's name leaves room for its members' numbers")
}

/// The revision of a template: the first 12 hex digits of the SHA-256 of
/// its canonical JSON (fields in declaration order, defaults spelled out).
pub fn revision(spec: &LxcSpec) -> String {
    let json = serde_json::to_vec(spec).expect("a spec encodes");
    let digest = Sha256::digest(&json);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// What an operator asked of a Pool's rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Paused by `orbitlab pool rollout pause`: no member is made or
    /// removed for an update until it is resumed.
    #[serde(default)]
    pub paused: bool,
    /// When it was last resumed (Unix seconds): a rollout paused by a
    /// failure before that goes on.
    #[serde(default)]
    pub resumed: u64,
}

/// One member's health, as the agent that checks it last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberHealth {
    /// The container checked, and when its member was recorded: a member
    /// made again, or a new member given a reused VMID, starts over.
    pub vmid: u32,
    #[serde(default)]
    pub member_since: u64,
    /// Healthy: passed `healthy_after` checks in a row since it last
    /// failed `unhealthy_after` in a row (a new member starts unhealthy).
    pub healthy: bool,
    /// Whether this container ever passed `healthy_after` checks in a row
    /// (until then, failing checks count only after the start grace).
    #[serde(default)]
    pub ever_healthy: bool,
    /// Checks passed (or failed) in a row.
    pub passes: u32,
    pub failures: u32,
    /// When it was last checked, Unix seconds.
    pub checked: u64,
    /// What the last failed check said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl MemberHealth {
    /// Whether this is the health of `member`'s current container.
    pub fn is_of(&self, member: &Member) -> bool {
        Some(self.vmid) == member.vmid && self.member_since == member.since
    }
}

/// The checks one node's agent ran, by member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub members: BTreeMap<Name, MemberHealth>,
}

/// Unix seconds of `time`.
pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    path: &crate::store::StorePath,
    what: &str,
) -> Result<Option<T>, StoreError> {
    Ok(store.read(path)?.and_then(|bytes| {
        serde_json::from_slice(&bytes)
            .map_err(|e| tracing::warn!(%what, error = %e, "an unreadable record is ignored"))
            .ok()
    }))
}

fn write_json<T: Serialize>(
    store: &Store,
    path: &crate::store::StorePath,
    value: &T,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec_pretty(value).expect("a record encodes");
    store.write(path, &body)
}

/// Every Pool's record, by name.
pub fn read_records(store: &Store) -> Result<BTreeMap<Name, PoolRecord>, StoreError> {
    let mut out = BTreeMap::new();
    for file in store.list(&layout::pools_dir())? {
        let Some(name) = layout::record_file_name(&file).and_then(|n| n.parse::<Name>().ok())
        else {
            continue;
        };
        if let Some(record) = read_json(store, &layout::pool(&name), "pool record")? {
            out.insert(name, record);
        }
    }
    Ok(out)
}

/// Replaces `pool`'s record. The caller holds the cluster lock.
pub fn write_record(store: &Store, pool: &Name, record: &PoolRecord) -> Result<(), StoreError> {
    write_json(store, &layout::pool(pool), record)
}

/// Replaces `pool`'s record with `record` and records each of its events
/// that the old record did not hold in the audit log (actor
/// `orbitlab-reconciler`, object `/pools/<pool>`, the event's figures as
/// its detail), before the record is written. The caller holds the
/// cluster lock.
pub fn record(store: &Store, pool: &Name, record: &PoolRecord) -> Result<(), StoreError> {
    let old =
        read_json::<PoolRecord>(store, &layout::pool(pool), "pool record")?.unwrap_or_default();
    for event in record.events.iter().filter(|e| !old.events.contains(e)) {
        crate::audit::pool_event(store, pool, &event.what, &event.detail)?;
    }
    write_record(store, pool, record)
}

/// Removes `pool`'s record and control file (the Pool is gone).
pub fn forget(store: &Store, pool: &Name) -> Result<(), StoreError> {
    store.remove(&layout::pool(pool))?;
    store.remove(&layout::pool_control(pool)).map(drop)
}

/// What was asked of `pool`'s rollout (nothing: the default).
pub fn read_control(store: &Store, pool: &Name) -> Result<Control, StoreError> {
    Ok(read_json(store, &layout::pool_control(pool), "pool control")?.unwrap_or_default())
}

/// Records what an operator asked of `pool`'s rollout.
pub fn write_control(store: &Store, pool: &Name, control: &Control) -> Result<(), StoreError> {
    write_json(store, &layout::pool_control(pool), control)
}

/// Every node's health report, merged: for each member the newest check
/// of its current container.
pub fn read_health(store: &Store) -> Result<BTreeMap<Name, MemberHealth>, StoreError> {
    let mut out: BTreeMap<Name, MemberHealth> = BTreeMap::new();
    for (_file, bytes) in store.read_dir(&layout::health_dir())? {
        let Ok(report) = serde_json::from_slice::<HealthReport>(&bytes) else {
            continue;
        };
        for (member, health) in report.members {
            match out.get(&member) {
                Some(seen) if seen.checked >= health.checked => {}
                _ => {
                    out.insert(member, health);
                }
            }
        }
    }
    Ok(out)
}

/// `node`'s own health report, as it last wrote it.
pub fn read_own_health(store: &Store, node: &NodeName) -> Result<HealthReport, StoreError> {
    Ok(read_json(store, &layout::health(node), "health report")?.unwrap_or_default())
}

/// Replaces `node`'s health report (only `node`'s agent writes it).
pub fn write_health(
    store: &Store,
    node: &NodeName,
    report: &HealthReport,
) -> Result<(), StoreError> {
    write_json(store, &layout::health(node), report)
}
