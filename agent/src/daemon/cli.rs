//! The command line of `orbitlab-agent` (flags, and the same settings from
//! the environment for systemd units), logging setup, and `main`. The
//! binary's `main.rs` only calls [`main`]; test suites build the same
//! program from it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;

use super::notify::Notifier;
use super::{BackoffPolicy, Config, Daemon, signals};
use crate::server::UiOrigin;
use orbitlab_engine::store::{LockOptions, PMXCFS_LOCK_EXPIRY};

/// The OrbitLab node agent: keeps Proxmox matching the manifests in
/// /etc/pve/orbitlab, together with the agents on the other nodes.
#[derive(Debug, Parser)]
#[command(name = "orbitlab-agent", version, about, long_about = None)]
pub struct Args {
    /// The directory playing /etc/pve (the Proxmox cluster filesystem).
    #[arg(
        long,
        env = "ORBITLAB_ROOT",
        default_value = "/etc/pve",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// This node's name (default: the host name, as Proxmox names nodes).
    #[arg(long, env = "ORBITLAB_NODE", value_name = "NAME")]
    pub node: Option<String>,
    /// How often to look for changes (e.g. 2s, 500ms).
    #[arg(long, env = "ORBITLAB_POLL_INTERVAL", default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub poll_interval: Duration,
    /// How often to reconcile everything even when nothing seems to change.
    #[arg(long, env = "ORBITLAB_RESYNC_INTERVAL", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub resync_interval: Duration,
    /// Where to serve Prometheus metrics (ADDRESS:PORT); 0 turns them off.
    #[arg(long, env = "ORBITLAB_METRICS_LISTEN", default_value = "127.0.0.1:9728", value_parser = parse_listen, value_name = "ADDRESS:PORT")]
    pub metrics_listen: Listen,
    /// Where to serve the local HTTPS API (ADDRESS:PORT) once a Proxmox
    /// connection is stored; 0 turns it off.
    #[arg(long, env = "ORBITLAB_API_LISTEN", default_value = "0.0.0.0:8206", value_parser = parse_listen, value_name = "ADDRESS:PORT")]
    pub api_listen: Listen,
    /// A further browser origin allowed to call the local API with the
    /// user's Proxmox login (CORS), such as the web UI behind a reverse
    /// proxy: https://HOST or https://HOST:PORT, no path, no wildcard.
    /// This node's own web UI origins are always allowed: https://NAME:8006
    /// for the node name, its cluster address (.members) and the DNS names
    /// and IP addresses of the certificate the API serves (loopback names
    /// left out). Repeatable; the environment variable takes a
    /// comma-separated list.
    #[arg(long = "ui-origin", env = "ORBITLAB_UI_ORIGINS", value_delimiter = ',', value_parser = parse_ui_origin, value_name = "ORIGIN")]
    pub ui_origins: Vec<UiOrigin>,
    /// How often a held cluster lock is renewed; must stay well under the
    /// lock expiry of pmxcfs (120 s).
    #[arg(long, env = "ORBITLAB_LOCK_RENEW", default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub lock_renew: Duration,
    /// How long to wait for a cluster lock before giving up (and retrying
    /// later).
    #[arg(long, env = "ORBITLAB_LOCK_WAIT", default_value = "150s", value_parser = parse_duration, value_name = "DURATION")]
    pub lock_wait: Duration,
    /// How long one Proxmox task may run.
    #[arg(long, env = "ORBITLAB_TASK_DEADLINE", default_value = "300s", value_parser = parse_duration, value_name = "DURATION")]
    pub task_deadline: Duration,
    /// Longest pause between retries after errors.
    #[arg(long, env = "ORBITLAB_BACKOFF_MAX", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub backoff_max: Duration,
    /// How long a stop (SIGTERM) may take before the agent exits anyway.
    #[arg(long, env = "ORBITLAB_STOP_GRACE", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub stop_grace: Duration,
    /// How often the agent rewrites its heartbeat
    /// (/etc/pve/orbitlab/agents/NODE.json); the other agents count it dead
    /// after three missed ones and take over its cluster-scoped work.
    #[arg(long, env = "ORBITLAB_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub heartbeat_interval: Duration,
    /// How often the agent runs the health probe of the appliance
    /// containers on its node (`orbitlab-appliance health`, through `pct
    /// exec`) besides right after it configured something; the answers go
    /// into its heartbeat and the Sector statuses.
    #[arg(long, env = "ORBITLAB_PROBE_INTERVAL", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub probe_interval: Duration,
    /// How often the agent owning cluster-scoped work looks at the Pools
    /// again without a change (auto-scaling windows, replacement backoff,
    /// members' health), while any Pool exists. Members' health checks
    /// run at each Pool's own `health.interval`.
    #[arg(long, env = "ORBITLAB_POOL_INTERVAL", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub pool_interval: Duration,
    /// The host whose prerequisites the agent checks and reports (FRR,
    /// the interfaces.d include, Proxmox's SDN package, time sync): / on
    /// a node; the sandbox gives each simulated node a directory.
    #[arg(
        long,
        env = "ORBITLAB_HOST_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub host_root: PathBuf,
    /// Log filter (error, warn, info, debug, trace, or tracing directives).
    #[arg(
        long,
        env = "ORBITLAB_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,
    /// Stop (as on SIGTERM) when the thread that started this process
    /// ends: for test harnesses and the sandbox, never under systemd.
    #[arg(long, hide = true)]
    pub exit_with_parent: bool,
}

/// Longest pause between two tries of a busy cluster lock.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// A metrics address, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

/// `250ms`, `2s`, `5m`, `1h`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write it like 250ms, 2s, 5m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

/// `ADDRESS:PORT`, or `0`/`off` for no metrics.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    match text.trim() {
        "0" | "off" | "" => Ok(Listen(None)),
        addr => addr.parse().map(|a| Listen(Some(a))).map_err(|_| {
            format!(
                "{addr:?} is not ADDRESS:PORT (such as 127.0.0.1:9728); use 0 to turn metrics off"
            )
        }),
    }
}

/// `https://HOST[:PORT]`, as browsers send it in `Origin` (see
/// [`UiOrigin`]).
pub fn parse_ui_origin(text: &str) -> Result<UiOrigin, String> {
    text.parse::<UiOrigin>().map_err(|e| e.to_string())
}

impl Args {
    /// The daemon's configuration; refuses settings that cannot work.
    pub fn config(&self) -> Result<Config, String> {
        if self.lock_renew.is_zero() || self.lock_renew >= PMXCFS_LOCK_EXPIRY / 2 {
            return Err(format!(
                "--lock-renew {:?} must be above 0 and well under the {:?} pmxcfs lock expiry",
                self.lock_renew, PMXCFS_LOCK_EXPIRY
            ));
        }
        for (flag, value) in [
            ("--poll-interval", self.poll_interval),
            ("--resync-interval", self.resync_interval),
            ("--heartbeat-interval", self.heartbeat_interval),
            ("--probe-interval", self.probe_interval),
            ("--pool-interval", self.pool_interval),
        ] {
            if value.is_zero() {
                return Err(format!("{flag} must be longer than 0"));
            }
        }
        let node = self
            .node
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(orbitlab_engine::store::node_name);
        let mut config = Config::new(&self.root, node);
        config.poll_interval = self.poll_interval;
        config.resync_interval = self.resync_interval;
        config.metrics_listen = self.metrics_listen.0;
        config.api_listen = self.api_listen.0;
        config.ui_origins = self.ui_origins.clone();
        // A waiter probes a busy lock at least every 50 ms (one local mkdir and
        // utime on pmxcfs): agents hand the locks around often.
        config.lock = LockOptions {
            wait: self.lock_wait,
            renew_every: self.lock_renew,
            max_poll: LOCK_POLL,
            notice: None,
        };
        config.task_deadline = self.task_deadline;
        config.backoff = BackoffPolicy {
            max: self.backoff_max,
            ..BackoffPolicy::default()
        };
        config.stop_grace = self.stop_grace;
        config.heartbeat_interval = self.heartbeat_interval;
        config.probe_interval = self.probe_interval;
        config.pool_interval = self.pool_interval;
        config.host_root = self.host_root.clone();
        Ok(config)
    }
}

/// Logs to standard error; under systemd (`$JOURNAL_STREAM`) without
/// timestamps, which journald adds.
fn init_logging(filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("--log {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// `orbitlab-agent`'s main.
pub fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("orbitlab-agent: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let config = args.config()?;
    init_logging(&args.log)?;
    if let Some(addr) = config.metrics_listen
        && !addr.ip().is_loopback()
    {
        tracing::warn!(%addr, "metrics are served beyond this host; they have no authentication (and hold no secrets)");
    }
    protect_memory();
    if args.exit_with_parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(|e| {
            format!("--exit-with-parent: cannot ask for SIGTERM on the parent's death: {e}")
        })?;
    }
    let notifier = Notifier::from_env()
        .map_err(|e| format!("cannot open systemd's notification socket: {e}"))?;
    let daemon = Daemon::start(config.clone(), notifier).map_err(|e| e.to_string())?;
    let (wake, woken) = mpsc::channel();
    signals::spawn(wake.clone(), daemon.fence(), config.stop_grace)
        .map_err(|e| format!("cannot catch SIGTERM/SIGINT/SIGHUP: {e}"))?;
    if let Err(e) = super::local::spawn(&config.root, wake) {
        tracing::warn!(error = %e, "cannot watch local changes with inotify: noticing them at the next poll");
    }
    daemon.run(woken);
    Ok(())
}

/// Keeps what the agent holds in memory there: the vault's unseal key
/// once unsealed, and every value it reads to deliver. Its pages are
/// locked as they are touched (never swapped out; `MCL_ONFAULT`, so
/// thread stacks are not filled in up front), and it is not dumpable (no
/// core dump, no ptrace by other processes of its user). Best effort: a
/// failure is logged and the agent runs on.
fn protect_memory() {
    use nix::sys::mman::{MlockAllFlags, mlockall};
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %e, "cannot make the agent undumpable: a core dump could hold secret values");
    }
    // MCL_ONFAULT (Linux 4.4), which nix does not name.
    const MCL_ONFAULT: i32 = 4;
    let flags = MlockAllFlags::MCL_CURRENT
        | MlockAllFlags::MCL_FUTURE
        | MlockAllFlags::from_bits_retain(MCL_ONFAULT);
    if let Err(e) = mlockall(flags) {
        tracing::warn!(error = %e, "cannot lock the agent's memory: the vault's unseal key and secret values could be swapped out");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{DEFAULT_LISTEN, PROXMOX_PORTS};

    #[test]
    fn the_default_api_port_is_no_proxmox_products_and_the_servers_own() {
        let args = Args::try_parse_from(["orbitlab-agent"]).unwrap();
        assert_eq!(args.api_listen.0, Some(DEFAULT_LISTEN));
        assert!(
            !PROXMOX_PORTS.contains(&DEFAULT_LISTEN.port()),
            "{DEFAULT_LISTEN} clashes with a Proxmox product"
        );
        let moved = Args::try_parse_from(["orbitlab-agent", "--api-listen", "127.0.0.1:9443"]);
        assert_eq!(
            moved.unwrap().api_listen.0,
            Some("127.0.0.1:9443".parse().unwrap())
        );
    }

    #[test]
    fn ui_origins_are_repeatable_and_checked() {
        let args = Args::try_parse_from([
            "orbitlab-agent",
            "--ui-origin",
            "https://PVE.Example.com:443/",
            "--ui-origin",
            "https://[2001:db8::1]:8006,https://pve1.lab:8443",
        ])
        .unwrap();
        let config = args.config().unwrap();
        let shown: Vec<&str> = config.ui_origins.iter().map(UiOrigin::as_str).collect();
        assert_eq!(
            shown,
            [
                "https://pve.example.com",
                "https://[2001:db8::1]:8006",
                "https://pve1.lab:8443"
            ]
        );
        assert!(
            Args::try_parse_from(["orbitlab-agent"])
                .unwrap()
                .ui_origins
                .is_empty()
        );
        for bad in [
            "*",
            "https://*.example.com",
            "http://pve1:8006",
            "https://pve1:8006/pve2",
            "pve1:8006",
            "https://pve1:8006,",
        ] {
            let err = Args::try_parse_from(["orbitlab-agent", "--ui-origin", bad])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("--ui-origin"), "{err}");
            assert!(err.contains("https://HOST[:PORT]"), "{bad}: {err}");
        }
    }
}
