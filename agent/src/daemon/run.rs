//! The loop itself (see the module documentation of [`super`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::changes::{ChangeWatch, Wakeup};
use super::connection::ConnectionSlot;
use super::fence::{Fence, FencedHost};
use super::local::LocalChange;
use super::metrics::{LoopView, Metrics, scope_label};
use super::notify::Notifier;
use super::ownership::{Presence, Role, SharedPresence};
use super::signals::Wake;
use super::{Config, DaemonError, watchdog};
use orbitlab_engine::host::{Pct, health};
use orbitlab_engine::liveness::{LastPass, Members, unix_ms};
use orbitlab_engine::reconcile::{
    Options, ReconcileError, Reconciler, Report, Scope, local_appliances,
};
use orbitlab_engine::store::{ObjectError, Store, StoreError};

/// Index of the node scope in [`Daemon::scopes`] (the cluster scope is 0
/// and runs first).
const NODE_SCOPE: usize = 1;

/// Work and backoff of one scope.
#[derive(Debug)]
struct ScopeState {
    scope: Scope,
    dirty: bool,
    backoff: Backoff,
}

/// What the loop last reported, to log and notify only on change.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shown {
    quorate: Option<bool>,
    owner: Option<bool>,
    standing_down: Option<String>,
    members_problem: Option<String>,
    connection_problem: Option<String>,
    poll_problem: Option<String>,
    probe_problem: Option<String>,
    status: String,
}

/// What woke the loop since it last looked.
#[derive(Debug, Default)]
struct Woken {
    stop: bool,
    resync: bool,
    /// A manifest changed through this node's mount.
    manifests: bool,
}

impl Woken {
    fn absorb(&mut self, wake: Wake) {
        match wake {
            Wake::Stop => self.stop = true,
            Wake::Resync => self.resync = true,
            Wake::Local(LocalChange::Manifests) => self.manifests = true,
            // The loop reads the counter on every turn anyway.
            Wake::Local(LocalChange::Counter) => {}
        }
    }
}

/// A running agent.
#[derive(Debug)]
pub struct Daemon {
    config: Config,
    store: Store,
    host: Pct,
    fence: Arc<Fence>,
    metrics: Arc<Metrics>,
    metrics_addr: Option<SocketAddr>,
    notifier: Arc<Notifier>,
    busy: Arc<AtomicBool>,
    connection: ConnectionSlot,
    changes: ChangeWatch,
    scopes: [ScopeState; 2],
    owner: bool,
    /// Why this agent changes nothing, while a newer one is alive.
    standing_down: Option<String>,
    presence: SharedPresence,
    heartbeat_stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
    shown: Shown,
    /// The local HTTPS API, once a connection allowed starting it.
    api: Option<super::api::LocalApi>,
    /// When this node's appliances are probed next (`None`: at once).
    next_probe: Option<Instant>,
    /// The appliance containers probed last.
    probed: Vec<u32>,
    /// When Pool members are checked next (`None`: at once).
    next_health: Option<Instant>,
    /// When the owner looks at the Pools again (`None`: at once).
    next_pools: Option<Instant>,
}

impl Daemon {
    /// Sets the agent up: metrics server, watchdog. Nothing is reconciled
    /// before [`Daemon::run`].
    pub fn start(config: Config, notifier: Notifier) -> Result<Daemon, DaemonError> {
        if config.poll_interval.is_zero() || config.resync_interval.is_zero() {
            return Err(DaemonError::Config(
                "the poll and resync intervals must be longer than 0".into(),
            ));
        }
        let store = Store::open(&config.root).with_lock_options(config.lock);
        let fence = Arc::new(Fence::new(&config.root, &config.node));
        let metrics = Arc::new(Metrics::new(&config.node));
        let metrics_addr = match config.metrics_listen {
            None => None,
            Some(addr) => {
                let shared = Arc::clone(&metrics);
                let (bound, _thread) = super::metrics::serve(addr, move || shared.render())
                    .map_err(|source| DaemonError::Metrics { addr, source })?;
                Some(bound)
            }
        };
        let notifier = Arc::new(notifier);
        let busy = Arc::new(AtomicBool::new(false));
        watchdog::spawn(
            Arc::clone(&notifier),
            Arc::clone(&fence),
            Arc::clone(&busy),
            config.lock.wait,
        )
        .map_err(|source| DaemonError::Setup {
            what: "start the watchdog thread",
            source,
        })?;
        let presence = SharedPresence::new(Presence::new(
            &config.node,
            config.heartbeat_interval,
            config.host_root.clone(),
        ));
        presence.lock().resume_probes(&store);
        let heartbeat_stop = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let fence = Arc::clone(&fence);
            let busy = Arc::clone(&busy);
            // The loop beats the fence every poll: silence for several
            // heartbeats (or, during a reconcile, past the lock wait) means
            // it hangs.
            let idle = (config.heartbeat_interval * 3).max(config.poll_interval * 3);
            let lock_wait = config.lock.wait;
            presence
                .spawn_heartbeat(store.clone(), Arc::clone(&heartbeat_stop), move || {
                    watchdog::alive(
                        fence.since_beat(),
                        busy.load(Ordering::Relaxed),
                        idle,
                        lock_wait,
                    )
                })
                .map_err(|source| DaemonError::Setup {
                    what: "start the heartbeat thread",
                    source,
                })?
        };
        let scope = |scope| ScopeState {
            scope,
            dirty: true,
            backoff: Backoff::new(config.backoff),
        };
        Ok(Daemon {
            host: Pct::new(config.node.clone()),
            changes: ChangeWatch::new(config.resync_interval),
            scopes: [scope(Scope::Cluster), scope(Scope::Node)],
            store,
            fence,
            metrics,
            metrics_addr,
            notifier,
            busy,
            connection: ConnectionSlot::default(),
            owner: false,
            standing_down: None,
            presence,
            heartbeat_stop,
            heartbeat: Some(heartbeat),
            shown: Shown::default(),
            api: None,
            next_probe: None,
            probed: Vec::new(),
            next_health: None,
            next_pools: None,
            config,
        })
    }

    /// The fence (to stop the agent from another thread:
    /// [`Fence::request_stop`], then send [`Wake::Stop`]).
    pub fn fence(&self) -> Arc<Fence> {
        Arc::clone(&self.fence)
    }

    /// Where metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Runs until stopped ([`Wake::Stop`] or [`Fence::request_stop`]).
    pub fn run(mut self, wake: Receiver<Wake>) {
        tracing::info!(
            node = %self.config.node,
            root = %self.config.root.display(),
            poll_ms = self.config.poll_interval.as_millis() as u64,
            resync_s = self.config.resync_interval.as_secs_f64(),
            metrics = %self.metrics_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            "orbitlab-agent {} started", env!("CARGO_PKG_VERSION")
        );
        self.notifier
            .ready(&format!("node {}: started", self.config.node));
        let mut woke = Woken::default();
        while !self.fence.stop_requested() {
            let now = Instant::now();
            self.fence.beat();
            let members = Members::read(&self.config.root, &self.config.node);
            let role = self
                .presence
                .lock()
                .look(&self.store, &members, now)
                .clone();
            self.follow_members(&members, &role);
            if let Some(api) = &mut self.api {
                api.follow(&self.config, &members, now);
            }
            if self.presence.lock().take_probes_moved() && self.owner {
                // Another node's appliance answered differently: the
                // Sector statuses say so.
                self.scopes[0].dirty = true;
            }
            self.poll_changes(now, std::mem::take(&mut woke.resync));
            if std::mem::take(&mut woke.manifests) {
                tracing::debug!("a manifest changed on this node");
                self.scopes.iter_mut().for_each(|s| {
                    s.dirty = true;
                    s.backoff.reset();
                });
            }
            let ready = members.quorate && self.standing_down.is_none() && self.client_ready();
            if ready {
                for index in 0..self.scopes.len() {
                    if self.fence.stop_requested() {
                        break;
                    }
                    if self.runnable(index, Instant::now()) {
                        self.reconcile(index);
                    }
                }
                if !self.fence.stop_requested()
                    && self.next_probe.is_none_or(|at| Instant::now() >= at)
                    && self.probe_appliances(true)
                    && self.owner
                {
                    self.scopes[0].dirty = true;
                }
                if !self.fence.stop_requested()
                    && self.next_health.is_none_or(|at| Instant::now() >= at)
                {
                    self.check_members();
                }
                if self.owner && self.next_pools.is_none_or(|at| Instant::now() >= at) {
                    self.next_pools = Some(Instant::now() + self.config.pool_interval);
                    if self.any_pool() {
                        self.scopes[0].dirty = true;
                    }
                }
            }
            self.report_loop(ready);
            let pause = self.pause(ready, Instant::now());
            match wake.recv_timeout(pause) {
                Ok(first) => {
                    // Take everything already queued: one loop for a burst.
                    woke.absorb(first);
                    while let Ok(next) = wake.try_recv() {
                        woke.absorb(next);
                    }
                    if woke.stop {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(pause),
            }
        }
        self.heartbeat_stop.store(true, Ordering::SeqCst);
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.join();
        }
        tracing::info!(node = %self.config.node, "orbitlab-agent stopped");
        self.notifier.stopping();
    }

    /// Tracks quorum, ownership and standing down; logs their changes.
    fn follow_members(&mut self, members: &Members, role: &Role) {
        if self.shown.members_problem != members.problem {
            if let Some(problem) = &members.problem {
                tracing::error!(%problem, "cannot read the cluster membership: treating the cluster as read-only");
            }
            self.shown.members_problem = members.problem.clone();
        }
        if self.shown.quorate != Some(members.quorate) {
            if members.quorate {
                if self.shown.quorate.is_some() {
                    tracing::info!("the cluster is quorate again: resuming");
                }
                // Catch up on whatever was held back.
                self.scopes.iter_mut().for_each(|s| {
                    s.dirty = true;
                    s.backoff.reset();
                });
            } else {
                tracing::warn!(
                    "the cluster has no quorum: read-only, changing nothing until it is quorate again"
                );
            }
            self.shown.quorate = Some(members.quorate);
        }
        if role.standing_down != self.standing_down {
            match &role.standing_down {
                Some(why) => tracing::warn!("standing down: {why}"),
                None => {
                    tracing::info!("no newer agent is alive any more: resuming");
                    self.scopes.iter_mut().for_each(|s| {
                        s.dirty = true;
                        s.backoff.reset();
                    });
                }
            }
            self.standing_down = role.standing_down.clone();
        }
        let owner = role.owner;
        if owner != self.owner || self.shown.owner.is_none() {
            let online: Vec<&str> = members.online().collect();
            if owner {
                tracing::info!(?online, "this node owns cluster-scoped work");
                self.scopes[0].dirty = true;
            } else {
                tracing::info!(owner = ?role.owner_node, ?online, "cluster-scoped work belongs to another node");
            }
            self.owner = owner;
            self.shown.owner = Some(owner);
        }
    }

    /// Reads the change counter; marks work on a change or a resync.
    fn poll_changes(&mut self, now: Instant, force_resync: bool) {
        let wakeup = match self.changes.poll(&self.store, now) {
            Ok(wakeup) => {
                self.shown.poll_problem = None;
                wakeup
            }
            Err(e) => {
                let problem = e.to_string();
                if self.shown.poll_problem.as_deref() != Some(&problem) {
                    tracing::warn!(error = %problem, "cannot read the change counter; relying on the resync");
                    self.shown.poll_problem = Some(problem);
                }
                None
            }
        };
        let resync = force_resync || wakeup == Some(Wakeup::Resync);
        if force_resync {
            self.changes.resynced(now);
        }
        if resync {
            // Read everything from the files again, whatever the caches say.
            self.store.forget_cached();
            self.refresh_connection();
            self.presence.lock().recheck_host();
            tracing::debug!("full resync");
        }
        if let Some(Wakeup::Changed(generation)) = wakeup {
            tracing::debug!(%generation, "change counter moved");
            // New input: earlier failures say nothing about it.
            self.scopes.iter_mut().for_each(|s| s.backoff.reset());
        }
        if wakeup.is_some() || force_resync {
            self.scopes.iter_mut().for_each(|s| s.dirty = true);
        }
    }

    /// Whether a Proxmox client is ready, loading it the first time.
    fn client_ready(&mut self) -> bool {
        if self.connection.client().is_none() {
            self.refresh_connection();
        }
        self.connection.client().is_some()
    }

    fn refresh_connection(&mut self) {
        match self.connection.refresh(&self.store) {
            Ok(changed) => {
                if changed {
                    tracing::info!("Proxmox connection loaded");
                    // The API checks credentials through this connection.
                    if let Some(old) = self.api.take() {
                        old.shutdown();
                    }
                    self.api = super::api::start(&self.config, &self.store);
                }
                self.shown.connection_problem = None;
            }
            Err(e) => {
                let problem = e.to_string();
                if self.shown.connection_problem.as_deref() != Some(&problem) {
                    tracing::warn!(error = %problem, "no usable Proxmox connection; waiting");
                    self.shown.connection_problem = Some(problem);
                }
            }
        }
    }

    fn runnable(&self, index: usize, now: Instant) -> bool {
        let state = &self.scopes[index];
        state.dirty
            && (state.scope == Scope::Node || self.owner)
            && state.backoff.wait_until(now).is_none()
    }

    /// One reconcile of scope `index`.
    fn reconcile(&mut self, index: usize) {
        let Some(client) = self.connection.client() else {
            return;
        };
        let scope = self.scopes[index].scope;
        let label = scope_label(scope);
        let pve = client.with_gate(self.fence.clone());
        let host = FencedHost::new(&self.host, &self.fence);
        let reconciler = Reconciler {
            pve: &pve,
            store: &self.store,
            host: &host,
            options: Options {
                task_deadline: self.config.task_deadline,
                max_passes: self.config.max_passes,
                scope,
            },
        };
        self.fence.start_run();
        self.busy.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let result = reconciler.run();
        let took = started.elapsed();
        self.busy.store(false, Ordering::Relaxed);
        self.fence.beat();
        self.presence.lock().passed(LastPass {
            scope: label.to_owned(),
            finished_ms: unix_ms(std::time::SystemTime::now()),
            took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            steps: result.as_ref().map_or(0, |r| r.steps),
            failed: result.as_ref().map_or(0, |r| r.failed.len()),
            error: result.as_ref().err().map(ToString::to_string),
        });
        if self.fence.is_closed()
            && let Err(error) = &result
        {
            tracing::info!(scope = label, took_ms = took.as_millis() as u64, %error, "reconcile cut short: stopping");
            return;
        }
        match result {
            Ok(report) => {
                // A configuration pushed here is probed before the other
                // nodes are told (by the change counter) to look.
                let moved = self.probe_appliances(report.steps > 0);
                self.reconciled(index, took, &report);
                if moved && self.owner {
                    self.scopes[0].dirty = true;
                }
            }
            Err(error) => {
                let reason = self.reason(&error);
                self.metrics.errored(scope, took, reason);
                let pause = self.scopes[index].backoff.failed(Instant::now());
                if reason == "read_only" {
                    tracing::warn!(scope = label, %error, "reconcile stopped: the cluster is read-only");
                } else {
                    tracing::error!(scope = label, reason, %error, retry_in_s = pause.as_secs_f64(), "reconcile could not run");
                }
            }
        }
    }

    fn reconciled(&mut self, index: usize, took: Duration, report: &Report) {
        let scope = self.scopes[index].scope;
        let label = scope_label(scope);
        self.metrics
            .reconciled(scope, took, self.fence.first_call_delay(), report);
        if report.steps > 0 {
            tracing::info!(
                scope = label,
                steps = report.steps,
                passes = report.passes,
                ready = report.ready.len(),
                progressing = report.progressing.len(),
                failed = report.failed.len(),
                took_ms = took.as_millis() as u64,
                "reconciled"
            );
            // Let the other nodes know: their part may be next.
            match self.store.bump_generation() {
                Ok(generation) => self.changes.bumped_by_us(generation),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot bump the change counter; other nodes notice at their resync")
                }
            }
        } else {
            tracing::debug!(
                scope = label,
                ready = report.ready.len(),
                took_ms = took.as_millis() as u64,
                "nothing to do"
            );
        }
        let max_passes = self.config.max_passes;
        if scope == Scope::Cluster && report.failed.is_empty() {
            // A cluster-scoped run configures this node's containers too.
            self.scopes[NODE_SCOPE].dirty = false;
        }
        let state = &mut self.scopes[index];
        if report.failed.is_empty() {
            state.backoff.reset();
            // A run repeats passes until nothing progresses; only one cut
            // short by the pass limit has more to do right away. Otherwise
            // wait for news: another node's bump, a change, the resync.
            state.dirty = report.steps > 0 && report.passes >= max_passes;
        } else {
            let pause = state.backoff.failed(Instant::now());
            for (object, error) in &report.failed {
                tracing::warn!(scope = label, %object, %error, retry_in_s = pause.as_secs_f64(), "object failed");
            }
        }
    }

    /// Probes the appliance containers running on this node
    /// ([`local_appliances`], [`health::probe`]) and publishes the answers
    /// in the heartbeat; true when an answer changed. Unless `always`,
    /// only when they are not those probed last (one was made, moved here
    /// or left). The next periodic probe is due a probe interval later.
    fn probe_appliances(&mut self, always: bool) -> bool {
        if always {
            self.next_probe = Some(Instant::now() + self.config.probe_interval);
        }
        let Some(client) = self.connection.client() else {
            return false;
        };
        let pve = client.with_gate(self.fence.clone());
        let vmids = match local_appliances(&pve, &self.store, &self.config.node) {
            Ok(vmids) => {
                self.shown.probe_problem = None;
                vmids
            }
            Err(e) => {
                let problem = e.to_string();
                if self.shown.probe_problem.as_deref() != Some(&problem) {
                    tracing::warn!(error = %problem, "cannot list this node's appliance containers; their last probes stand");
                    self.shown.probe_problem = Some(problem);
                }
                return false;
            }
        };
        let vmids: Vec<u32> = vmids.into_iter().map(|v| v.get()).collect();
        if !always && vmids == self.probed {
            return false;
        }
        self.next_probe = Some(Instant::now() + self.config.probe_interval);
        let host = FencedHost::new(&self.host, &self.fence);
        let mut probes = std::collections::BTreeMap::new();
        self.busy.store(true, Ordering::Relaxed);
        for &vmid in &vmids {
            if self.fence.stop_requested() {
                // A partial set would drop the others' answers.
                self.busy.store(false, Ordering::Relaxed);
                return false;
            }
            let probe = health::probe(&host, &self.config.node, vmid, std::time::SystemTime::now());
            self.fence.beat();
            probes.insert(vmid, probe);
        }
        self.busy.store(false, Ordering::Relaxed);
        self.probed = vmids;
        let changed = self
            .presence
            .lock()
            .publish_probes(&self.store, probes.clone());
        if changed {
            for (vmid, probe) in &probes {
                match probe.state() {
                    health::ProbeState::Healthy => {
                        tracing::info!(vmid, bundle = ?probe.bundle, "appliance healthy");
                    }
                    health::ProbeState::Unhealthy(problems) => {
                        tracing::warn!(vmid, bundle = ?probe.bundle, problems = %problems.join("; "), "appliance unhealthy");
                    }
                    health::ProbeState::Failed(error) => {
                        tracing::warn!(vmid, %error, "appliance could not be probed");
                    }
                }
            }
        }
        changed
    }

    /// Runs the health checks of Pool members due on this node
    /// ([`orbitlab_engine::pool::probe`]); when a member's health changed,
    /// tells every node (the change counter) and, as the owner, looks at
    /// the Pools at once.
    fn check_members(&mut self) {
        let Ok(node) = self.config.node.parse() else {
            self.next_health = Some(Instant::now() + self.config.pool_interval);
            return;
        };
        let host = FencedHost::new(&self.host, &self.fence);
        let now = orbitlab_engine::pool::unix(std::time::SystemTime::now());
        self.busy.store(true, Ordering::Relaxed);
        let round = orbitlab_engine::pool::probe::run(&self.store, &host, &node, now);
        self.busy.store(false, Ordering::Relaxed);
        self.fence.beat();
        match round {
            Ok(round) => {
                let wait = round
                    .next_in
                    .map_or(self.config.pool_interval, |s| Duration::from_secs(s.max(1)));
                self.next_health = Some(Instant::now() + wait);
                if !round.flipped.is_empty() {
                    let names: Vec<String> =
                        round.flipped.iter().map(ToString::to_string).collect();
                    tracing::info!(members = %names.join(", "), checked = round.checked, "Pool members' health changed");
                    match self.store.bump_generation() {
                        Ok(generation) => self.changes.bumped_by_us(generation),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot bump the change counter; the owner notices at its next look at the Pools")
                        }
                    }
                    if self.owner {
                        self.scopes[0].dirty = true;
                    }
                }
            }
            Err(e) => {
                self.next_health = Some(Instant::now() + self.config.pool_interval);
                tracing::warn!(error = %e, "cannot run the health checks of Pool members");
            }
        }
    }

    /// Whether any Pool has a record (the owner then looks again every
    /// pool interval).
    fn any_pool(&self) -> bool {
        self.store
            .list(&orbitlab_engine::store::layout::pools_dir())
            .is_ok_and(|files| !files.is_empty())
    }

    /// A short label of why a reconcile could not run, for the metrics.
    fn reason(&self, error: &ReconcileError) -> &'static str {
        if let ReconcileError::Objects(ObjectError::NewerStatusFormat { .. }) = error {
            return "newer_format";
        }
        if let ReconcileError::LockLost { .. } = error {
            return "lock_lost";
        }
        let store = match error {
            ReconcileError::Store(e) | ReconcileError::Objects(ObjectError::Store(e)) => Some(e),
            ReconcileError::Tag(orbitlab_engine::reconcile::tags::TagError::Store(e)) => Some(e),
            _ => None,
        };
        let quorate = Members::read(&self.config.root, &self.config.node).quorate;
        match (store, error) {
            (Some(e), _) if e.is_read_only() => "read_only",
            _ if !quorate => "read_only",
            (Some(StoreError::LockTimeout { .. }), _) => "lock_timeout",
            (Some(_), _) => "store",
            (None, ReconcileError::Pve(_)) => "proxmox",
            (None, ReconcileError::Manifests(_) | ReconcileError::Objects(_)) => "manifests",
            (None, ReconcileError::Ipam(_)) => "ipam",
            (None, ReconcileError::Host(_)) => "host",
            _ => "other",
        }
    }

    /// Metrics and `systemctl status` after a loop.
    fn report_loop(&mut self, ready: bool) {
        let generation = self.changes.seen().map_or(0, |g| g.0);
        self.metrics.loop_seen(LoopView {
            owner: self.owner,
            quorate: self.shown.quorate.unwrap_or(false),
            generation,
            calls: self.fence.counts(),
        });
        let role = if self.owner {
            "owns cluster-scoped work"
        } else {
            "node-scoped work"
        };
        let state = if self.shown.quorate == Some(false) {
            "read-only (no quorum)".to_owned()
        } else if self.standing_down.is_some() {
            "standing down (a newer agent is alive)".to_owned()
        } else if !ready {
            "waiting for a Proxmox connection (orbitlab init)".to_owned()
        } else {
            match self
                .scopes
                .iter()
                .map(|s| s.backoff.failures())
                .max()
                .unwrap_or(0)
            {
                0 => "idle".to_owned(),
                n => format!("retrying after {n} failure(s)"),
            }
        };
        let status = format!(
            "node {}: {role}; generation {generation}; {state}",
            self.config.node
        );
        if status != self.shown.status {
            self.notifier.status(&status);
            self.shown.status = status;
        }
    }

    /// How long to sleep: at once if work is runnable, else until the next
    /// poll or the end of a backoff, whichever comes first.
    fn pause(&self, ready: bool, now: Instant) -> Duration {
        let mut pause = self.config.poll_interval;
        if !ready {
            return pause;
        }
        for at in [self.next_probe, self.next_health].into_iter().flatten() {
            pause = pause.min(at.saturating_duration_since(now));
        }
        if self.owner
            && let Some(at) = self.next_pools
        {
            pause = pause.min(at.saturating_duration_since(now));
        }
        for (index, state) in self.scopes.iter().enumerate() {
            if !state.dirty || (state.scope == Scope::Cluster && !self.owner) {
                continue;
            }
            match state.backoff.wait_until(now) {
                None if self.runnable(index, now) => return Duration::ZERO,
                Some(until) => pause = pause.min(until - now),
                None => {}
            }
        }
        pause
    }
}
