//! The agent's fence around everything that changes the cluster from
//! outside pmxcfs: Proxmox API writes and `pct push`/`pct exec`.
//!
//! Before each such call the fence reads `<root>/.members`: without quorum
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

use crate::host::{ContainerHost, HostError};
use crate::pve::{
    ApplianceTemplate, ClusterStatusEntry, ControllerConfig, DownloadUrl, HaResource,
    HaResourceSpec, LxcConfig, LxcCreate, LxcStatus, LxcUpdate, NetworkInterface, NodeSummary, Pve,
    PveError, Release, Result, SdnItem, SdnKind, SdnLockToken, StorageVolume, SubnetConfig,
    TaskStatus, Upid, VersionInfo, VnetConfig, ZoneConfig,
};

use super::ownership::Members;

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
    fn write(&self, what: &str) -> Result<()> {
        self.called();
        match self.may_change() {
            Ok(()) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(reason) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(PveError::Config(format!(
                    "{what} not sent to Proxmox: {reason}"
                )))
            }
        }
    }

    /// A cleanup that must run even while stopping (releasing a lock),
    /// but never without quorum.
    fn cleanup(&self, what: &str) -> Result<()> {
        self.called();
        if Members::read(&self.root, &self.local).quorate {
            self.writes.fetch_add(1, Ordering::Relaxed);
            Ok(())
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            Err(PveError::Config(format!(
                "{what} not sent to Proxmox: the cluster has no quorum"
            )))
        }
    }
}

/// A [`Pve`] whose writes pass the [`Fence`] first.
#[derive(Debug)]
pub struct FencedPve<'a> {
    inner: &'a dyn Pve,
    fence: &'a Fence,
}

impl<'a> FencedPve<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a dyn Pve, fence: &'a Fence) -> Self {
        FencedPve { inner, fence }
    }

    fn get<T>(&self, call: impl FnOnce(&dyn Pve) -> Result<T>) -> Result<T> {
        self.fence.read();
        call(self.inner)
    }

    fn put<T>(&self, what: &str, call: impl FnOnce(&dyn Pve) -> Result<T>) -> Result<T> {
        self.fence.write(what)?;
        call(self.inner)
    }
}

type Lock<'l> = Option<&'l SdnLockToken>;

impl Pve for FencedPve<'_> {
    fn version(&self) -> Result<VersionInfo> {
        self.get(|p| p.version())
    }
    fn release(&self) -> Result<Release> {
        self.get(|p| p.release())
    }
    fn cluster_status(&self) -> Result<Vec<ClusterStatusEntry>> {
        self.get(|p| p.cluster_status())
    }
    fn nodes(&self) -> Result<Vec<NodeSummary>> {
        self.get(|p| p.nodes())
    }
    fn node_network(&self, node: &str) -> Result<Vec<NetworkInterface>> {
        self.get(|p| p.node_network(node))
    }
    fn next_vmid(&self, wanted: Option<u32>) -> Result<u32> {
        self.get(|p| p.next_vmid(wanted))
    }
    fn sdn_controllers(&self) -> Result<Vec<SdnItem<ControllerConfig>>> {
        self.get(|p| p.sdn_controllers())
    }
    fn sdn_zones(&self) -> Result<Vec<SdnItem<ZoneConfig>>> {
        self.get(|p| p.sdn_zones())
    }
    fn sdn_vnets(&self) -> Result<Vec<SdnItem<VnetConfig>>> {
        self.get(|p| p.sdn_vnets())
    }
    fn sdn_subnets(&self, vnet: &str) -> Result<Vec<SdnItem<SubnetConfig>>> {
        self.get(|p| p.sdn_subnets(vnet))
    }
    fn sdn_create_controller(
        &self,
        id: &str,
        cfg: &ControllerConfig,
        lock: Lock<'_>,
    ) -> Result<()> {
        self.put("create SDN controller", |p| {
            p.sdn_create_controller(id, cfg, lock)
        })
    }
    fn sdn_create_zone(&self, id: &str, cfg: &ZoneConfig, lock: Lock<'_>) -> Result<()> {
        self.put("create SDN zone", |p| p.sdn_create_zone(id, cfg, lock))
    }
    fn sdn_create_vnet(&self, id: &str, cfg: &VnetConfig, lock: Lock<'_>) -> Result<()> {
        self.put("create SDN vnet", |p| p.sdn_create_vnet(id, cfg, lock))
    }
    fn sdn_create_subnet(
        &self,
        vnet: &str,
        cidr: &str,
        cfg: &SubnetConfig,
        lock: Lock<'_>,
    ) -> Result<()> {
        self.put("create SDN subnet", |p| {
            p.sdn_create_subnet(vnet, cidr, cfg, lock)
        })
    }
    fn sdn_update_controller(
        &self,
        id: &str,
        cfg: &ControllerConfig,
        delete: &[&str],
        lock: Lock<'_>,
    ) -> Result<()> {
        self.put("update SDN controller", |p| {
            p.sdn_update_controller(id, cfg, delete, lock)
        })
    }
    fn sdn_update_zone(
        &self,
        id: &str,
        cfg: &ZoneConfig,
        delete: &[&str],
        lock: Lock<'_>,
    ) -> Result<()> {
        self.put("update SDN zone", |p| {
            p.sdn_update_zone(id, cfg, delete, lock)
        })
    }
    fn sdn_update_vnet(
        &self,
        id: &str,
        cfg: &VnetConfig,
        delete: &[&str],
        lock: Lock<'_>,
    ) -> Result<()> {
        self.put("update SDN vnet", |p| {
            p.sdn_update_vnet(id, cfg, delete, lock)
        })
    }
    fn sdn_update_subnet(
        &self,
        vnet: &str,
        id: &str,
        cfg: &SubnetConfig,
        delete: &[&str],
        lock: Lock<'_>,
    ) -> Result<()> {
        self.put("update SDN subnet", |p| {
            p.sdn_update_subnet(vnet, id, cfg, delete, lock)
        })
    }
    fn sdn_delete(
        &self,
        kind: SdnKind,
        vnet: Option<&str>,
        id: &str,
        lock: Lock<'_>,
    ) -> Result<()> {
        self.put("delete SDN object", |p| p.sdn_delete(kind, vnet, id, lock))
    }
    fn sdn_lock(&self, allow_pending: bool) -> Result<Option<SdnLockToken>> {
        self.put("take the SDN lock", |p| p.sdn_lock(allow_pending))
    }
    fn sdn_unlock(&self, lock: &SdnLockToken, force: bool) -> Result<()> {
        self.fence.cleanup("release the SDN lock")?;
        self.inner.sdn_unlock(lock, force)
    }
    fn sdn_apply(&self, lock: Lock<'_>, release_lock: bool) -> Result<Upid> {
        self.put("apply SDN", |p| p.sdn_apply(lock, release_lock))
    }
    fn sdn_rollback(&self, lock: Lock<'_>) -> Result<()> {
        self.put("roll back SDN", |p| p.sdn_rollback(lock))
    }
    fn lxc_list(&self, node: &str) -> Result<Vec<LxcStatus>> {
        self.get(|p| p.lxc_list(node))
    }
    fn lxc_create(&self, node: &str, req: &LxcCreate) -> Result<Upid> {
        self.put("create container", |p| p.lxc_create(node, req))
    }
    fn lxc_config(&self, node: &str, vmid: u32) -> Result<LxcConfig> {
        self.get(|p| p.lxc_config(node, vmid))
    }
    fn lxc_update(&self, node: &str, vmid: u32, req: &LxcUpdate) -> Result<()> {
        self.put("update container", |p| p.lxc_update(node, vmid, req))
    }
    fn lxc_status(&self, node: &str, vmid: u32) -> Result<LxcStatus> {
        self.get(|p| p.lxc_status(node, vmid))
    }
    fn lxc_start(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.put("start container", |p| p.lxc_start(node, vmid))
    }
    fn lxc_stop(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.put("stop container", |p| p.lxc_stop(node, vmid))
    }
    fn lxc_shutdown(
        &self,
        node: &str,
        vmid: u32,
        timeout: Option<Duration>,
        force_stop: bool,
    ) -> Result<Upid> {
        self.put("shut down container", |p| {
            p.lxc_shutdown(node, vmid, timeout, force_stop)
        })
    }
    fn lxc_delete(&self, node: &str, vmid: u32, purge: bool) -> Result<Upid> {
        self.put("destroy container", |p| p.lxc_delete(node, vmid, purge))
    }
    fn task_status(&self, upid: &Upid) -> Result<TaskStatus> {
        self.get(|p| p.task_status(upid))
    }
    fn ha_resources(&self) -> Result<Vec<HaResource>> {
        self.get(|p| p.ha_resources())
    }
    fn ha_add(&self, sid: &str, spec: &HaResourceSpec) -> Result<()> {
        self.put("add HA resource", |p| p.ha_add(sid, spec))
    }
    fn ha_update(&self, sid: &str, spec: &HaResourceSpec) -> Result<()> {
        self.put("update HA resource", |p| p.ha_update(sid, spec))
    }
    fn ha_remove(&self, sid: &str) -> Result<()> {
        self.put("remove HA resource", |p| p.ha_remove(sid))
    }
    fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageVolume>> {
        self.get(|p| p.storage_content(node, storage, content))
    }
    fn appliance_index(&self, node: &str) -> Result<Vec<ApplianceTemplate>> {
        self.get(|p| p.appliance_index(node))
    }
    fn appliance_download(&self, node: &str, storage: &str, template: &str) -> Result<Upid> {
        self.put("download appliance template", |p| {
            p.appliance_download(node, storage, template)
        })
    }
    fn download_url(&self, node: &str, storage: &str, req: &DownloadUrl) -> Result<Upid> {
        self.put("download to storage", |p| {
            p.download_url(node, storage, req)
        })
    }
    fn upload(
        &self,
        node: &str,
        storage: &str,
        content: &str,
        file: &Path,
        file_name: &str,
    ) -> Result<Upid> {
        self.put("upload to storage", |p| {
            p.upload(node, storage, content, file, file_name)
        })
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
                .write("create container")
                .unwrap_err()
                .to_string()
                .contains("create container not sent to Proxmox")
        );
        write_members(dir.path(), 1);
        assert!(fence.write("create container").is_ok());
        assert!(fence.cleanup("release").is_ok());
        fence.request_stop();
        assert!(
            fence.may_change().is_ok(),
            "the reconcile in flight may finish"
        );
        fence.close();
        assert!(fence.may_change().unwrap_err().contains("stopping"));
        assert!(
            fence.cleanup("release").is_ok(),
            "cleanups still run while stopping"
        );
        assert_eq!(
            fence.counts(),
            CallCounts {
                reads: 0,
                writes: 3,
                refused: 1
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
