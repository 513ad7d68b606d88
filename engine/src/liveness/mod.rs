//! Who is there: cluster membership from pmxcfs ([`Members`]), each
//! agent's heartbeat ([`AgentRecord`]), and from both, which node owns the
//! cluster-scoped work (see `DESIGN.md`, "Coordination").
//!
//! Cluster-scoped work belongs to `rendezvous("cluster", eligible)`, where
//! eligible nodes are members, online, whose agent is alive, and whose
//! agent runs the newest version among those ([`Eligible`]). An agent is
//! alive while its heartbeat's `seq` keeps moving, as seen by the reader's
//! own monotonic clock ([`Tracker`]): clocks that disagree between nodes
//! change nothing. An agent that sees a newer agent alive stands down
//! (changes nothing at all), so agents of two versions never both write
//! during a rolling upgrade. Every agent computes the same owner from the
//! same files, with no election; two agents that briefly disagree are
//! still safe, because cluster-scoped passes run under the
//! `orbitlab-reconcile` lock.

mod members;
mod record;
mod version;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

pub use members::{Member, Members};
pub use record::{
    AgentRecord, LastPass, MISSED_BEATS, probes_by_node, read_all, record_probes, unix_ms,
};
pub use version::{AgentVersion, VersionError};

use crate::placement::rendezvous;

/// The rendezvous key of cluster-scoped work.
pub const CLUSTER_KEY: &str = "cluster";

/// What an agent remembers of another's heartbeats.
#[derive(Debug, Clone)]
struct Seen {
    seq: u64,
    written_ms: u64,
    /// When this reader saw `seq` first (backdated on the first sighting
    /// by the record's age, see [`Tracker::observe`]).
    since: Instant,
    timeout: Duration,
    version: AgentVersion,
    stopped: bool,
}

/// Liveness of the other agents, as one agent observes their heartbeats.
///
/// For a while after it starts (`grace`: as long as an agent may go
/// without a heartbeat before it counts as dead), an agent presumes alive
/// the members it has not seen a heartbeat of yet: agents that start
/// together agree on the owner from membership alone instead of each
/// claiming the work until it sees the others.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: BTreeMap<String, Seen>,
    /// Until when members never seen count as alive.
    presume_until: Option<Instant>,
}

impl Tracker {
    /// A tracker started at `now` that presumes unseen members alive for
    /// `grace`.
    pub fn new(now: Instant, grace: Duration) -> Tracker {
        Tracker {
            seen: BTreeMap::new(),
            presume_until: Some(now + grace),
        }
    }

    /// Takes in the records read at `now` (`wall` is the wall clock at the
    /// same moment). A record seen for the first time counts from when it
    /// was written, by the wall clock, so an agent that just started does
    /// not take a long-dead agent for alive; after that, only a moving
    /// `seq` counts.
    pub fn observe<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a AgentRecord>,
        now: Instant,
        wall: SystemTime,
    ) {
        for record in records {
            let moved = self
                .seen
                .get(&record.node)
                .is_none_or(|s| s.seq != record.seq || s.written_ms != record.written_ms);
            if !moved {
                continue;
            }
            let since = if self.seen.contains_key(&record.node) {
                now
            } else {
                let age = record.age(wall).min(record.timeout() * 2);
                now.checked_sub(age).unwrap_or(now)
            };
            self.seen.insert(
                record.node.clone(),
                Seen {
                    seq: record.seq,
                    written_ms: record.written_ms,
                    since,
                    timeout: record.timeout(),
                    version: record.version.clone(),
                    stopped: record.stopped,
                },
            );
        }
    }

    /// Whether `node`'s agent was seen alive within its timeout (or, never
    /// seen, is still presumed alive).
    pub fn alive(&self, node: &str, now: Instant) -> bool {
        match self.seen.get(node) {
            Some(s) => !s.stopped && now.saturating_duration_since(s.since) <= s.timeout,
            None => self.presume_until.is_some_and(|until| now < until),
        }
    }

    /// The version `node`'s agent last reported.
    pub fn version(&self, node: &str) -> Option<&AgentVersion> {
        self.seen.get(node).map(|s| &s.version)
    }
}

/// Who may own cluster-scoped work, as `local` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligible {
    /// Online members whose agent is alive and runs the newest version,
    /// sorted.
    pub nodes: Vec<String>,
    /// The newest version among alive agents on online members.
    pub newest: AgentVersion,
    /// The nodes running [`Eligible::newest`] when `local` runs an older
    /// version: `local` stands down.
    pub newer_than_local: Vec<String>,
}

impl Eligible {
    /// Computes eligibility for `local` (running `version`, always counted
    /// alive by itself) at `now`.
    pub fn compute(
        members: &Members,
        tracker: &Tracker,
        local: &str,
        version: &AgentVersion,
        now: Instant,
    ) -> Eligible {
        let alive: Vec<(&str, &AgentVersion)> = members
            .online()
            .filter_map(|node| {
                if node == local {
                    Some((node, version))
                } else if tracker.alive(node, now) {
                    // Presumed alive, not seen yet: presumed this version.
                    Some((node, tracker.version(node).unwrap_or(version)))
                } else {
                    None
                }
            })
            .collect();
        let newest = alive
            .iter()
            .map(|(_, v)| *v)
            .chain([version])
            .max()
            .cloned()
            .unwrap_or_else(|| version.clone());
        let nodes: Vec<String> = alive
            .iter()
            .filter(|(_, v)| **v == newest)
            .map(|(n, _)| (*n).to_owned())
            .collect();
        let newer_than_local = if *version < newest {
            nodes.clone()
        } else {
            Vec::new()
        };
        Eligible {
            nodes,
            newest,
            newer_than_local,
        }
    }

    /// The node owning cluster-scoped work.
    pub fn owner(&self) -> Option<&str> {
        rendezvous(CLUSTER_KEY, self.nodes.iter().map(String::as_str))
    }

    /// Whether `node` owns cluster-scoped work.
    pub fn owns(&self, node: &str) -> bool {
        self.owner() == Some(node)
    }

    /// Whether the local agent must stand down (a newer one is alive).
    pub fn stand_down(&self) -> bool {
        !self.newer_than_local.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const THREE: &str = r#"{"nodename":"pve1","cluster":{"name":"lab","quorate":1},
        "nodelist":{"pve1":{"online":1},"pve2":{"online":1},"pve3":{"online":0}}}"#;

    fn record(node: &str, version: &str, seq: u64, written_ms: u64) -> AgentRecord {
        AgentRecord {
            node: node.into(),
            version: version.parse().unwrap(),
            status_format: 1,
            written_ms,
            seq,
            interval_ms: 1000,
            started_ms: 0,
            owner: false,
            standing_down: None,
            last_pass: None,
            host: Default::default(),
            stopped: false,
            appliances: Default::default(),
            vault: None,
        }
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn an_agent_is_alive_while_its_sequence_moves_by_the_readers_clock() {
        let mut tracker = Tracker::default();
        let t0 = Instant::now() + Duration::from_secs(100);
        // Written 500 ms before the first read: alive for 2.5 s more.
        tracker.observe([&record("pve2", "0.1.0", 7, 1_000)], t0, at(1_500));
        assert!(tracker.alive("pve2", t0 + Duration::from_millis(2_400)));
        assert!(!tracker.alive("pve2", t0 + Duration::from_millis(2_600)));
        // The same record read again much later (a skewed clock, a stalled
        // writer) does not revive it; a moved sequence does.
        let later = t0 + Duration::from_secs(10);
        tracker.observe([&record("pve2", "0.1.0", 7, 1_000)], later, at(0));
        assert!(!tracker.alive("pve2", later));
        tracker.observe([&record("pve2", "0.1.0", 8, 900)], later, at(99_999_999));
        assert!(tracker.alive("pve2", later + Duration::from_secs(3)));
        // A record long dead when first seen is dead.
        let mut fresh = Tracker::default();
        fresh.observe([&record("pve3", "0.1.0", 1, 1_000)], t0, at(60_000));
        assert!(!fresh.alive("pve3", t0));
        assert!(!fresh.alive("pve9", t0), "never seen: not alive");
        // Presumed alive while young, then only if seen.
        let young = Tracker::new(t0, Duration::from_secs(3));
        assert!(young.alive("pve9", t0 + Duration::from_secs(2)));
        assert!(!young.alive("pve9", t0 + Duration::from_secs(4)));
        // A clean stop is dead at once.
        let mut stopped = record("pve2", "0.1.0", 9, 1_000);
        stopped.stopped = true;
        tracker.observe([&stopped], later, at(1_000));
        assert!(!tracker.alive("pve2", later));
    }

    #[test]
    fn ownership_goes_to_online_alive_newest_agents_only() {
        let members = Members::parse(THREE.as_bytes()).unwrap();
        let now = Instant::now();
        let wall = at(10_000);
        let v1: AgentVersion = "0.1.0".parse().unwrap();

        // pve2 alive and same version: both eligible; pve3 is offline.
        let mut tracker = Tracker::default();
        tracker.observe(
            [
                &record("pve2", "0.1.0", 1, 10_000),
                &record("pve3", "0.1.0", 1, 10_000),
            ],
            now,
            wall,
        );
        let e = Eligible::compute(&members, &tracker, "pve1", &v1, now);
        assert_eq!(e.nodes, ["pve1", "pve2"]);
        assert!(!e.stand_down());
        let owner = e.owner().unwrap().to_owned();
        assert_eq!(
            Some(owner.as_str()),
            rendezvous(CLUSTER_KEY, ["pve1", "pve2"])
        );

        // pve2's agent dead: pve1 alone.
        let dead = now + Duration::from_secs(5);
        let e = Eligible::compute(&members, &tracker, "pve1", &v1, dead);
        assert_eq!(e.nodes, ["pve1"]);
        assert!(e.owns("pve1"));

        // pve2 runs a newer version: pve1 stands down, pve2 owns.
        let mut tracker = Tracker::default();
        tracker.observe([&record("pve2", "0.2.0", 1, 10_000)], now, wall);
        let e = Eligible::compute(&members, &tracker, "pve1", &v1, now);
        assert!(e.stand_down() && e.owns("pve2") && !e.owns("pve1"));
        assert_eq!(e.newer_than_local, ["pve2"]);
        // ...and from pve2's side, pve1 is simply not eligible.
        let v2: AgentVersion = "0.2.0".parse().unwrap();
        let mut tracker = Tracker::default();
        tracker.observe([&record("pve1", "0.1.0", 1, 10_000)], now, wall);
        let e = Eligible::compute(&members, &tracker, "pve2", &v2, now);
        assert_eq!(e.nodes, ["pve2"]);
        assert!(!e.stand_down());
    }
}
