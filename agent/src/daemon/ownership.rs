//! Who does what, decided afresh on every loop, and this agent's own
//! heartbeat (see [`orbitlab_engine::liveness`] for the rules).
//!
//! Every loop the agent reads `<root>/.members` (quorum, members, who is
//! online) and every heartbeat under `<root>/orbitlab/agents/`, and works
//! out whether it owns the cluster-scoped work or must stand down (a newer
//! agent is alive: a rolling upgrade is under way). A thread of its own
//! (`heartbeat`) rewrites this agent's heartbeat
//! `<root>/orbitlab/agents/<node>.json` every heartbeat interval, and at
//! once when the role changes: version, status format, sequence number,
//! role, last reconcile, its node's prerequisites
//! ([`orbitlab_engine::host::checks`], re-read under `host_root` at every
//! resync), and the last health probe of each appliance container on its
//! node ([`Presence::publish_probes`]: written at once when an answer
//! changes, so the owner of cluster-scoped work learns it promptly; an
//! agent that starts again carries its previous probes over until it
//! probes anew). Reading the others' heartbeats, it notices when their
//! probes' answers change ([`Presence::take_probes_moved`]). The thread beats while the loop shows signs of life (as the
//! systemd watchdog judges them, see [`super::watchdog::alive`]), so a long
//! reconcile keeps the agent alive and a hung loop lets it die; a clean
//! stop writes a last heartbeat marked `stopped`, so that the others take
//! over at once.
//!
//! Side effects: that one file (replace-by-rename, only with quorum), and
//! `timedatectl` when the host root is `/`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use std::collections::BTreeMap;

use orbitlab_engine::host::checks::{self, HostReport};
use orbitlab_engine::host::health::{ApplianceProbe, same_answers};
use orbitlab_engine::liveness::{
    AgentRecord, AgentVersion, Eligible, LastPass, Members, Tracker, read_all, unix_ms,
};
use orbitlab_engine::status::STATUS_FORMAT;
use orbitlab_engine::store::{Store, StoreError};

/// This agent's role, as of the last look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// It owns cluster-scoped work.
    pub owner: bool,
    /// The owner, as this agent sees it.
    pub owner_node: Option<String>,
    /// Why it changes nothing at all, when it stands down.
    pub standing_down: Option<String>,
}

/// This agent's presence: its view of the others, and its heartbeat.
#[derive(Debug)]
pub struct Presence {
    node: String,
    version: AgentVersion,
    interval: Duration,
    host_root: PathBuf,
    tracker: Tracker,
    seq: u64,
    started_ms: u64,
    next_beat: Option<Instant>,
    host: HostReport,
    last_pass: Option<LastPass>,
    role: Role,
    quorate: bool,
    stopped: bool,
    /// Heartbeats that could not be read, last reported (logged on change).
    unreadable: Vec<String>,
    /// This node's appliance probes, by VMID.
    probes: BTreeMap<u32, ApplianceProbe>,
    /// The other agents' probes as last read, their times left out.
    seen_probes: BTreeMap<String, BTreeMap<u32, ApplianceProbe>>,
    /// Whether an answer in them changed since [`Presence::take_probes_moved`].
    probes_moved: bool,
}

impl Presence {
    /// The presence of `node`'s agent, beating every `interval`.
    pub fn new(node: &str, interval: Duration, host_root: PathBuf) -> Presence {
        let host = checks::inspect(&host_root);
        Presence {
            node: node.to_owned(),
            version: AgentVersion::this_build(),
            interval,
            host_root,
            // Members not seen yet count as alive for as long as a silent
            // agent counts as alive: agents starting together agree.
            tracker: Tracker::new(
                std::time::Instant::now(),
                interval * orbitlab_engine::liveness::MISSED_BEATS,
            ),
            seq: 0,
            started_ms: unix_ms(SystemTime::now()),
            next_beat: None,
            host,
            last_pass: None,
            role: Role {
                owner: false,
                owner_node: None,
                standing_down: None,
            },
            quorate: false,
            stopped: false,
            unreadable: Vec::new(),
            probes: BTreeMap::new(),
            seen_probes: BTreeMap::new(),
            probes_moved: false,
        }
    }

    /// Takes over the probes this node's previous agent published (they
    /// hold until this agent probes anew).
    pub fn resume_probes(&mut self, store: &Store) {
        if let Ok(Ok(record)) = read_all(store).map(|mut all| {
            all.remove(&self.node)
                .unwrap_or_else(|| Err("no record".into()))
        }) {
            self.probes = record.appliances;
        }
    }

    /// Replaces this node's appliance probes by `probes`; when an answer
    /// changed (not merely the time it was taken), writes the heartbeat at
    /// once (with quorum) and returns true.
    pub fn publish_probes(&mut self, store: &Store, probes: BTreeMap<u32, ApplianceProbe>) -> bool {
        let changed = !same_answers(&self.probes, &probes);
        self.probes = probes;
        if changed {
            self.next_beat = None;
            self.beat_if_due(store, Instant::now());
        }
        changed
    }

    /// Whether another agent's probes changed their answer since the last
    /// call.
    pub fn take_probes_moved(&mut self) -> bool {
        std::mem::take(&mut self.probes_moved)
    }

    /// Reads the others' heartbeats and works out this agent's role.
    pub fn look(&mut self, store: &Store, members: &Members, now: Instant) -> &Role {
        match read_all(store) {
            Ok(records) => {
                let mut unreadable = Vec::new();
                let readable: Vec<AgentRecord> = records
                    .into_values()
                    .filter_map(|r| r.map_err(|e| unreadable.push(e)).ok())
                    .filter(|r| r.node != self.node)
                    .collect();
                if unreadable != self.unreadable {
                    for problem in &unreadable {
                        tracing::warn!(%problem, "ignoring an agent heartbeat");
                    }
                    self.unreadable = unreadable;
                }
                self.tracker
                    .observe(readable.iter(), now, SystemTime::now());
                let probes: BTreeMap<String, BTreeMap<u32, ApplianceProbe>> = readable
                    .iter()
                    .map(|r| (r.node.clone(), r.appliances.clone()))
                    .filter(|(_, p)| !p.is_empty())
                    .collect();
                let moved = probes.len() != self.seen_probes.len()
                    || probes.iter().any(|(node, p)| {
                        self.seen_probes
                            .get(node)
                            .is_none_or(|seen| !same_answers(seen, p))
                    });
                if moved {
                    self.probes_moved = true;
                    self.seen_probes = probes;
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the agents' heartbeats"),
        }
        self.quorate = members.quorate;
        let eligible = Eligible::compute(members, &self.tracker, &self.node, &self.version, now);
        let standing_down = eligible.stand_down().then(|| {
            format!(
                "node(s) {} run orbitlab-agent {}, newer than this one ({}): this agent changes nothing until it is upgraded",
                eligible.newer_than_local.join(", "),
                eligible.newest,
                self.version
            )
        });
        let role = Role {
            owner: standing_down.is_none() && eligible.owns(&self.node),
            owner_node: eligible.owner().map(str::to_owned),
            standing_down,
        };
        if role != self.role {
            // Tell the others at once.
            self.next_beat = None;
            self.role = role;
        }
        &self.role
    }

    /// The role of the last [`Presence::look`].
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Re-reads this node's prerequisites (at a resync).
    pub fn recheck_host(&mut self) {
        let host = checks::inspect(&self.host_root);
        if host != self.host {
            for check in host.failed() {
                tracing::warn!(check = check.id.as_str(), detail = %check.detail, fix = %check.fix, "node prerequisite not met");
            }
            self.host = host;
            self.next_beat = None;
        }
    }

    /// Records how the last reconcile went (reported with the next beat).
    pub fn passed(&mut self, pass: LastPass) {
        self.last_pass = Some(pass);
    }

    /// Writes the heartbeat when it is due (only with quorum: pmxcfs is
    /// read-only without).
    fn beat_if_due(&mut self, store: &Store, now: Instant) {
        if !self.quorate || self.next_beat.is_some_and(|due| now < due) {
            return;
        }
        self.seq += 1;
        let record = AgentRecord {
            node: self.node.clone(),
            version: self.version.clone(),
            status_format: STATUS_FORMAT,
            written_ms: unix_ms(SystemTime::now()),
            seq: self.seq,
            interval_ms: u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            started_ms: self.started_ms,
            owner: self.role.owner,
            standing_down: self.role.standing_down.clone(),
            last_pass: self.last_pass.clone(),
            host: self.host.clone(),
            stopped: self.stopped,
            appliances: self.probes.clone(),
            vault: orbitlab_engine::vault::Vault::new(store.clone())
                .seal_state()
                .ok(),
        };
        match record.write(store) {
            Ok(()) => self.next_beat = Some(now + self.interval),
            Err(e) => {
                log_beat_failure(&e);
                // Try again at the next loop, but not in a tight spin.
                self.next_beat = Some(now + self.interval.min(Duration::from_secs(1)));
            }
        }
    }
}

/// The presence shared by the loop and the heartbeat thread.
#[derive(Debug, Clone)]
pub struct SharedPresence(Arc<Mutex<Presence>>);

/// How often the heartbeat thread looks whether a beat is due.
const HEARTBEAT_TICK: Duration = Duration::from_millis(100);

impl SharedPresence {
    /// Shares `presence`.
    pub fn new(presence: Presence) -> Self {
        SharedPresence(Arc::new(Mutex::new(presence)))
    }

    /// The presence, locked.
    pub fn lock(&self) -> MutexGuard<'_, Presence> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the heartbeat thread: it beats while `alive()` says the
    /// agent shows signs of life, until `stop` is set, then writes a last
    /// heartbeat marked `stopped`.
    pub fn spawn_heartbeat(
        &self,
        store: Store,
        stop: Arc<AtomicBool>,
        alive: impl Fn() -> bool + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let shared = self.clone();
        std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let mut silent = false;
                while !stop.load(Ordering::SeqCst) {
                    if alive() {
                        silent = false;
                        shared.lock().beat_if_due(&store, Instant::now());
                    } else if !silent {
                        tracing::error!("the agent loop shows no sign of life: heartbeats stop, and other agents will take over its work");
                        silent = true;
                    }
                    std::thread::sleep(HEARTBEAT_TICK);
                }
                let mut presence = shared.lock();
                presence.stopped = true;
                presence.next_beat = None;
                presence.beat_if_due(&store, Instant::now());
            })
    }
}

fn log_beat_failure(e: &StoreError) {
    if e.is_read_only() {
        tracing::debug!(error = %e, "heartbeat not written: read-only");
    } else {
        tracing::warn!(error = %e, "cannot write this agent's heartbeat; other agents will count it dead");
    }
}
