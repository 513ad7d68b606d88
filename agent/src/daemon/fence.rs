//! The agent's fence around everything that changes the cluster from
//! outside pmxcfs: Proxmox API writes and `pct push`/`pct exec`.
//!
//! For Proxmox the fence is the client's [`Gate`]: the daemon hands it to
//! [`orbitlab_engine::pve::PveClient::with_gate`], so every request passes it at the
//! one point all requests go through. Before each write the fence reads `<root>/.members`: without quorum
//! the call is not made (pmxcfs is read-only then, and Proxmox itself would
//! refuse most changes; the agent must change nothing and keep reading).
//! Once the fence is closed (a stop that the reconcile in flight did not
//! finish in time), no new change starts either: the step in flight
//! finishes, the following steps fail fast, the reconcile returns and its
//! locks are released. Reads always pass.
//!
//! The fence also keeps the agent's pulse for the systemd watchdog (every
//! call and every loop counts as activity), counts calls for the metrics,
//! and measures how long a reconcile took to reach its first Proxmox call
//! (mostly waiting for the cluster lock). No I/O besides reading
//! `.members`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orbitlab_engine::host::{ContainerHost, ExecOutput, HostError};
use orbitlab_engine::pve::{Access, Gate};

use orbitlab_engine::liveness::Members;

/// Whether changes may be made now; shared by the loop, the signal thread
/// and the watchdog.
#[derive(Debug)]
pub struct Fence {
    root: PathBuf,
    local: String,
    stop_requested: AtomicBool,
    closed: AtomicBool,
    born: Instant,
    /// Milliseconds after `born` of the last sign of life.
    pulse: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    refused: AtomicU64,
    run: Mutex<RunClock>,
}

#[derive(Debug, Default)]
struct RunClock {
    started: Option<Instant>,
    first_call: Option<Duration>,
}

/// Calls counted by the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallCounts {
    pub reads: u64,
    pub writes: u64,
    pub refused: u64,
}

impl Fence {
    /// A fence for the store rooted at `root`, on node `local`.
    pub fn new(root: &Path, local: &str) -> Self {
        Fence {
            root: root.to_owned(),
            local: local.to_owned(),
            stop_requested: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            born: Instant::now(),
            pulse: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            run: Mutex::new(RunClock::default()),
        }
    }

    /// Asks the loop to end after the reconcile in flight.
    pub fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
    }

    /// Whether the agent was asked to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::SeqCst)
    }

    /// From now on no new change starts (the agent is stopping and the
    /// reconcile in flight must end soon).
    pub fn close(&self) {
        self.request_stop();
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Whether the fence is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Records a sign of life.
    pub fn beat(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.pulse.store(ms, Ordering::Relaxed);
    }

    /// Time since the last sign of life.
    pub fn since_beat(&self) -> Duration {
        self.born
            .elapsed()
            .saturating_sub(Duration::from_millis(self.pulse.load(Ordering::Relaxed)))
    }

    /// Calls so far.
    pub fn counts(&self) -> CallCounts {
        CallCounts {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Starts timing a reconcile (see [`Fence::first_call_delay`]).
    pub fn start_run(&self) {
        *self.clock() = RunClock {
            started: Some(Instant::now()),
            first_call: None,
        };
    }

    /// How long the reconcile started last took to make its first
    /// Proxmox call, if it made one.
    pub fn first_call_delay(&self) -> Option<Duration> {
        self.clock().first_call
    }

    fn clock(&self) -> std::sync::MutexGuard<'_, RunClock> {
        self.run
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn called(&self) {
        self.beat();
        let mut clock = self.clock();
        if clock.first_call.is_none()
            && let Some(started) = clock.started
        {
            clock.first_call = Some(started.elapsed());
        }
    }

    fn read(&self) {
        self.called();
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// `Ok` when a change may be made now; otherwise why not.
    pub fn may_change(&self) -> std::result::Result<(), String> {
        if self.is_closed() {
            return Err(format!(
                "the agent on {} is stopping; the next reconcile continues from here",
                self.local
            ));
        }
        let members = Members::read(&self.root, &self.local);
        if !members.quorate {
            return Err(match members.problem {
                Some(problem) => format!("cannot tell whether the cluster is quorate ({problem}); changing nothing"),
                None => "the cluster has no quorum (pmxcfs is read-only); changes resume when it is quorate again".into(),
            });
        }
        Ok(())
    }

    /// Checks [`Fence::may_change`] for a write, counting it.
    fn write(&self) -> std::result::Result<(), String> {
        self.called();
        self.count(self.may_change())
    }

    /// A cleanup that must run even while stopping (releasing a lock),
    /// but never without quorum.
    fn cleanup(&self) -> std::result::Result<(), String> {
        self.called();
        let verdict = if Members::read(&self.root, &self.local).quorate {
            Ok(())
        } else {
            Err("the cluster has no quorum".to_owned())
        };
        self.count(verdict)
    }

    fn count(&self, verdict: std::result::Result<(), String>) -> std::result::Result<(), String> {
        let counter = if verdict.is_ok() {
            &self.writes
        } else {
            &self.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        verdict
    }
}

/// Reads always pass; writes pass [`Fence::may_change`]; cleanups pass
/// with quorum even while stopping. Every call counts for the metrics and
/// as a sign of life, when it starts and when it ends.
impl Gate for Fence {
    fn admit(&self, access: Access) -> std::result::Result<(), String> {
        match access {
            Access::Read => {
                self.read();
                Ok(())
            }
            Access::Write => self.write(),
            Access::Cleanup => self.cleanup(),
        }
    }

    fn finished(&self, _access: Access) {
        self.beat();
    }
}

/// A [`ContainerHost`] whose pushes and commands pass the [`Fence`] first.
#[derive(Debug)]
pub struct FencedHost<'a> {
    inner: &'a dyn ContainerHost,
    fence: &'a Fence,
}

impl<'a> FencedHost<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a dyn ContainerHost, fence: &'a Fence) -> Self {
        FencedHost { inner, fence }
    }

    fn check(&self, command: &str) -> std::result::Result<(), HostError> {
        self.fence.called();
        self.fence.may_change().map_err(|reason| {
            self.fence.refused.fetch_add(1, Ordering::Relaxed);
            HostError::Failed {
                command: command.to_owned(),
                status: "not run".into(),
                stderr: reason,
            }
        })
    }
}

impl ContainerHost for FencedHost<'_> {
    fn local_node(&self) -> &str {
        self.inner.local_node()
    }

    fn push(
        &self,
        node: &str,
        vmid: u32,
        path: &str,
        mode: u32,
        content: &[u8],
    ) -> std::result::Result<(), HostError> {
        // Another node's container is refused by the inner host as usual
        // (the executor defers it to that node's agent).
        if node == self.inner.local_node() {
            self.check(&format!("pct push {vmid} {path}"))?;
        }
        self.inner.push(node, vmid, path, mode, content)
    }

    fn exec(&self, node: &str, vmid: u32, argv: &[String]) -> std::result::Result<(), HostError> {
        if node == self.inner.local_node() {
            self.check(&format!("pct exec {vmid}"))?;
        }
        self.inner.exec(node, vmid, argv)
    }

    fn exec_output(
        &self,
        node: &str,
        vmid: u32,
        argv: &[String],
    ) -> std::result::Result<ExecOutput, HostError> {
        if node == self.inner.local_node() {
            self.check(&format!("pct exec {vmid}"))?;
        }
        self.inner.exec_output(node, vmid, argv)
    }

    fn install(
        &self,
        node: &str,
        vmid: u32,
        file: &orbitlab_engine::host::InstallFile<'_>,
    ) -> std::result::Result<(), HostError> {
        if node == self.inner.local_node() {
            self.check(&format!("pct exec {vmid} (install {})", file.path))?;
        }
        self.inner.install(node, vmid, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_members(root: &Path, quorate: u8) {
        let json = format!(
            r#"{{"nodename":"pve1","version":1,"cluster":{{"name":"c","version":1,"nodes":1,"quorate":{quorate}}},"nodelist":{{"pve1":{{"id":1,"online":1,"ip":"10.0.0.1"}}}}}}"#
        );
        std::fs::write(root.join(".members"), json).unwrap();
    }

    #[test]
    fn changes_pass_only_with_quorum_and_until_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let fence = Fence::new(dir.path(), "pve1");
        assert!(
            fence.may_change().is_ok(),
            "a standalone node (no .members) may change"
        );
        write_members(dir.path(), 0);
        assert!(fence.may_change().unwrap_err().contains("no quorum"));
        assert!(
            fence
                .admit(Access::Write)
                .unwrap_err()
                .contains("no quorum")
        );
        assert!(fence.admit(Access::Cleanup).is_err());
        assert!(fence.admit(Access::Read).is_ok(), "reads always pass");
        write_members(dir.path(), 1);
        assert!(fence.admit(Access::Write).is_ok());
        assert!(fence.admit(Access::Cleanup).is_ok());
        fence.request_stop();
        assert!(
            fence.may_change().is_ok(),
            "the reconcile in flight may finish"
        );
        fence.close();
        assert!(fence.may_change().unwrap_err().contains("stopping"));
        assert!(fence.admit(Access::Write).is_err());
        assert!(
            fence.admit(Access::Cleanup).is_ok(),
            "cleanups still run while stopping"
        );
        assert_eq!(
            fence.counts(),
            CallCounts {
                reads: 1,
                writes: 3,
                refused: 3
            }
        );
    }

    #[test]
    fn measures_the_first_call_of_a_run_and_keeps_a_pulse() {
        let dir = tempfile::tempdir().unwrap();
        let fence = Fence::new(dir.path(), "pve1");
        fence.start_run();
        assert_eq!(fence.first_call_delay(), None);
        std::thread::sleep(Duration::from_millis(20));
        fence.read();
        fence.read();
        let first = fence.first_call_delay().unwrap();
        assert!(first >= Duration::from_millis(20), "{first:?}");
        assert!(fence.since_beat() < Duration::from_millis(20));
        assert_eq!(fence.counts().reads, 2);
    }
}
