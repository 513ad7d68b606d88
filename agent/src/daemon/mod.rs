//! The node daemon `orbitlab-agent`: the loop that keeps Proxmox matching
//! the manifests, on every node, with no leader and no state outside
//! pmxcfs (see `DESIGN.md`, "On the cluster" and "Coordination").
//!
//! Every loop (a poll interval apart, default 2 s) the agent:
//! 1. reads `<root>/.members` and the agents' heartbeats ([`ownership`]):
//!    quorum, and whether this node owns cluster-scoped work
//!    (`rendezvous("cluster", eligible nodes)`: online members whose agent
//!    is alive and runs the newest version) or stands down (a newer agent
//!    is alive); a thread of its own keeps this agent's heartbeat;
//! 2. reads the change counter `<root>/orbitlab/generation` ([`changes`]);
//!    a change, a resync (default every 60 s) or SIGHUP marks work to do;
//!    so does a manifest written through this node's mount, which, like a
//!    counter bump made through it, wakes the loop at once ([`local`],
//!    inotify) instead of at the next poll;
//! 3. if the cluster is quorate and a Proxmox connection is stored
//!    ([`connection`], `<root>/priv/orbitlab/pve-api.json`): the owner runs
//!    a cluster-scoped reconcile (under the `orbitlab-reconcile` lock) and
//!    every node a node-scoped one (configuring its own containers), one
//!    at a time, each scope with its own exponential backoff on errors
//!    ([`backoff`]); a reconcile that changed something probes this node's
//!    appliance containers (`orbitlab-appliance health`, also every probe
//!    interval, default 30 s) and publishes the answers in the heartbeat,
//!    then bumps the change counter so the other nodes look too; the owner
//!    reconciles again when an appliance's answer changes, so that the
//!    Sector statuses show it;
//! 4. sleeps until the next poll, a local change, a signal, or the end of
//!    a backoff.
//!
//! Without quorum the agent keeps reading and changes nothing: the
//! [`fence`] refuses every Proxmox write and `pct` call, and no reconcile
//! starts until `.members` says the cluster is quorate again. On SIGTERM or
//! SIGINT ([`signals`]) no new reconcile starts and the one in flight
//! finishes (cut short by the fence if it takes more than half the stop
//! grace period); locks are released as their guards drop, and the process
//! exits.
//!
//! Side effects: Proxmox API calls and `pct` (through the reconciler),
//! pmxcfs writes (statuses, IPAM, locks, the change counter, the
//! heartbeat `orbitlab/agents/<node>.json`), a metrics
//! port ([`metrics`], default `127.0.0.1:9728`), systemd notifications
//! ([`notify`], [`watchdog`]), logs on standard error.

mod api;
pub mod backoff;
pub mod changes;
pub mod cli;
pub mod connection;
pub mod fence;
pub mod local;
pub mod metrics;
pub mod notify;
pub mod ownership;
mod run;
pub mod signals;
pub mod watchdog;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use backoff::BackoffPolicy;
pub use run::Daemon;
pub use signals::Wake;

use orbitlab_engine::store::LockOptions;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory playing `/etc/pve`.
    pub root: PathBuf,
    /// This node's name.
    pub node: String,
    /// How often the change counter and `.members` are read.
    pub poll_interval: Duration,
    /// How often everything is reconciled even without a change.
    pub resync_interval: Duration,
    /// Where metrics are served; `None`: not at all.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the local HTTPS API is served; `None`: not at all.
    pub api_listen: Option<SocketAddr>,
    /// Browser origins allowed to call the local API besides this node's
    /// own web UI origins (`--ui-origin`), which the agent works out from
    /// its name, `.members` and its certificate.
    pub ui_origins: Vec<crate::server::UiOrigin>,
    /// Cluster lock timing (wait, renewal).
    pub lock: LockOptions,
    /// How long one Proxmox task may run.
    pub task_deadline: Duration,
    /// Most passes of one reconcile.
    pub max_passes: usize,
    /// Backoff after failed reconciles.
    pub backoff: BackoffPolicy,
    /// How long a stop may take before the process exits anyway.
    pub stop_grace: Duration,
    /// How often the agent rewrites its heartbeat; others count it dead
    /// after three missed ones.
    pub heartbeat_interval: Duration,
    /// The host whose prerequisites are checked (`/` on a node).
    pub host_root: PathBuf,
    /// How often the appliance containers on this node are probed
    /// (`orbitlab-appliance health`) besides right after a reconcile that
    /// changed something.
    pub probe_interval: Duration,
    /// How often the node owning cluster-scoped work looks at its Pools
    /// again without a change (auto-scaling windows, replacement backoff,
    /// members' health), while any Pool exists.
    pub pool_interval: Duration,
}

impl Config {
    /// The defaults for a node: `/etc/pve`, poll 2 s, resync 60 s, metrics
    /// on `127.0.0.1:9728`.
    pub fn new(root: impl Into<PathBuf>, node: impl Into<String>) -> Self {
        Config {
            root: root.into(),
            node: node.into(),
            poll_interval: Duration::from_secs(2),
            resync_interval: Duration::from_secs(60),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9728))),
            api_listen: Some(crate::server::DEFAULT_LISTEN),
            ui_origins: Vec::new(),
            lock: LockOptions::default(),
            task_deadline: Duration::from_secs(300),
            max_passes: 8,
            backoff: BackoffPolicy::default(),
            stop_grace: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            host_root: PathBuf::from("/"),
            probe_interval: Duration::from_secs(30),
            pool_interval: Duration::from_secs(10),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(String),
    #[error(
        "cannot serve metrics on {addr}: {source}; choose another address with --metrics-listen (0 turns metrics off)"
    )]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}: {source}")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}
