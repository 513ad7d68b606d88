//! The [`Pve`] trait: the Proxmox calls the engine makes, typed, and
//! nothing else (calls only tools and tests need are inherent methods of
//! [`super::PveClient`]). The real implementation is the client; the
//! planner and controller tests use the in-memory fake (`fake.rs`).

use std::time::{Duration, Instant};

use super::error::{PveError, Result};
use super::lxc::{LxcConfig, LxcCreate, LxcStatus, LxcUpdate};
use serde_json::Value;

use super::sdn::{
    ControllerConfig, SdnCollection, SdnConfig, SdnItem, SdnLock, SdnLockToken, SdnSpec,
    SubnetConfig, VnetConfig, ZoneConfig,
};
use super::types::{
    ClusterStatusEntry, HaResource, HaResourceAdd, NetworkInterface, NodeDns, NodeStatus,
    NodeStorage, NodeSummary, Release, StorageUpload, StorageVolume, TaskState, TaskStatus, Upid,
    VolumeAttributes,
};

/// Typed access to the Proxmox VE API, as far as the engine needs it.
pub trait Pve: Send + Sync + std::fmt::Debug {
    /// The release, asked once and remembered.
    fn release(&self) -> Result<Release>;
    /// `GET /cluster/status`.
    fn cluster_status(&self) -> Result<Vec<ClusterStatusEntry>>;
    /// `GET /nodes`.
    fn nodes(&self) -> Result<Vec<NodeSummary>>;
    /// `GET /nodes/{node}/status`: memory and CPU of a node (placement).
    fn node_status(&self, node: &str) -> Result<NodeStatus>;
    /// `GET /nodes/{node}/storage/{storage}/content`: the volumes on a
    /// node's storage (`content`: `vztmpl`, `iso`...).
    fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageVolume>>;
    /// `GET /nodes/{node}/storage`: the storages `node` can use, each
    /// with its content types and whether it is shared between nodes.
    fn node_storages(&self, node: &str) -> Result<Vec<NodeStorage>>;
    /// `GET /nodes/{node}/storage/{storage}/content/{volume}`: one
    /// volume's attributes, among them its path on `node` (only that
    /// node can read the file there).
    fn storage_volume(&self, node: &str, storage: &str, volume: &str) -> Result<VolumeAttributes>;
    /// `POST /nodes/{node}/storage/{storage}/upload`: sends a local file
    /// to a node's storage (multipart, with its SHA-256 for Proxmox to
    /// check); returns the task that stores it. Never retried.
    fn storage_upload(&self, node: &str, storage: &str, upload: &StorageUpload<'_>)
    -> Result<Upid>;
    /// `GET /nodes/{node}/network`.
    fn node_network(&self, node: &str) -> Result<Vec<NetworkInterface>>;
    /// `GET /nodes/{node}/dns`: the node's name servers and search domain
    /// (where a Sector DNS on that node forwards when the Cluster
    /// manifest names no upstream resolvers).
    fn node_dns(&self, node: &str) -> Result<NodeDns>;
    /// `GET /cluster/nextid`: the lowest free VMID, or whether `wanted` is
    /// free (an error if not). Reserves nothing.
    fn next_vmid(&self, wanted: Option<u32>) -> Result<u32>;

    /// The SDN objects of a collection as Proxmox lists
    /// them with `pending=1&running=1`; the typed views are
    /// [`Pve::sdn_controllers`] and its siblings.
    fn sdn_list(&self, at: SdnCollection<'_>) -> Result<Vec<Value>>;
    /// Create an SDN object (pending until applied); for a subnet `id` is
    /// its CIDR.
    fn sdn_create(&self, id: &str, spec: SdnSpec<'_>, lock: Option<&SdnLockToken>) -> Result<()>;
    /// Update an SDN object: set what `spec` holds (keys it leaves unset
    /// stay as they are).
    fn sdn_update(&self, id: &str, spec: SdnSpec<'_>, lock: SdnLock<'_>) -> Result<()>;

    /// SDN controllers, with pending state.
    fn sdn_controllers(&self) -> Result<Vec<SdnItem<ControllerConfig>>> {
        items(self.sdn_list(SdnCollection::Controllers)?)
    }
    /// SDN zones, with pending state.
    fn sdn_zones(&self) -> Result<Vec<SdnItem<ZoneConfig>>> {
        items(self.sdn_list(SdnCollection::Zones)?)
    }
    /// SDN vnets, with pending state.
    fn sdn_vnets(&self) -> Result<Vec<SdnItem<VnetConfig>>> {
        items(self.sdn_list(SdnCollection::Vnets)?)
    }
    /// The subnets of a vnet, with pending state.
    fn sdn_subnets(&self, vnet: &str) -> Result<Vec<SdnItem<SubnetConfig>>> {
        items(self.sdn_list(SdnCollection::Subnets(vnet))?)
    }
    /// Delete the SDN object `id` of a collection (pending until applied).
    fn sdn_delete(&self, at: SdnCollection<'_>, id: &str, lock: SdnLock<'_>) -> Result<()>;
    /// 9.x: take the global SDN lock; `None` on 8.x (serialize through an
    /// OrbitLab lock there).
    fn sdn_lock(&self, allow_pending: bool) -> Result<Option<SdnLockToken>>;
    /// 9.x: release the SDN lock.
    fn sdn_unlock(&self, lock: &SdnLockToken, force: bool) -> Result<()>;
    /// `PUT /cluster/sdn`: apply everything pending, cluster-wide.
    fn sdn_apply(&self, lock: Option<&SdnLockToken>, release_lock: bool) -> Result<Upid>;

    /// `GET /nodes/{node}/lxc`.
    fn lxc_list(&self, node: &str) -> Result<Vec<LxcStatus>>;
    /// Create a container.
    fn lxc_create(&self, node: &str, req: &LxcCreate) -> Result<Upid>;
    /// A container's config.
    fn lxc_config(&self, node: &str, vmid: u32) -> Result<LxcConfig>;
    /// Start a container.
    fn lxc_start(&self, node: &str, vmid: u32) -> Result<Upid>;
    /// Stop a container (hard).
    fn lxc_stop(&self, node: &str, vmid: u32) -> Result<Upid>;
    /// Destroy a stopped container (`purge`: also from HA, backups...).
    fn lxc_delete(&self, node: &str, vmid: u32, purge: bool) -> Result<Upid>;
    /// `PUT /nodes/{node}/lxc/{vmid}/config`: set and delete keys (no
    /// task; synchronous in Proxmox for containers). With a digest, a
    /// config changed since is refused ("file changed by other user").
    fn lxc_update(&self, node: &str, vmid: u32, update: &LxcUpdate) -> Result<()>;
    /// `PUT /nodes/{node}/lxc/{vmid}/resize`: grow `disk` (`rootfs`,
    /// `mp0`...) to `size_gib` GiB (absolute, sent as `<n>G`); returns
    /// the task. Proxmox refuses before starting a task both a shrink
    /// ("unable to shrink disk size") and the size the disk already has
    /// ("disk is already at specified size"): compare first.
    fn lxc_resize(&self, node: &str, vmid: u32, disk: &str, size_gib: u32) -> Result<Upid>;

    /// `GET /cluster/ha/resources`: every HA resource.
    fn ha_resources(&self) -> Result<Vec<HaResource>>;
    /// `POST /cluster/ha/resources`: put container `ct:<vmid>` under HA.
    fn ha_add(&self, resource: &HaResourceAdd) -> Result<()>;
    /// `DELETE /cluster/ha/resources/{sid}`: take a resource out of HA
    /// (the guest itself stays).
    fn ha_remove(&self, sid: &str) -> Result<()>;

    /// A task's status.
    fn task_status(&self, upid: &Upid) -> Result<TaskStatus>;

    /// Poll a task until it stops or `deadline` passes. A stopped task
    /// whose exit status is not `OK` is [`PveError::TaskFailed`] with
    /// Proxmox's message; running past the deadline is
    /// [`PveError::TaskDeadline`]. The first poll comes 20 ms after the
    /// start (a task is never done at once: asking then only costs a
    /// request), then the pause doubles from 50 ms up to 1 s.
    fn wait_task(&self, upid: &Upid, deadline: Duration) -> Result<TaskStatus> {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(20).min(deadline));
        let mut pause = Duration::from_millis(50);
        loop {
            let st = self.task_status(upid)?;
            if st.status == TaskState::Stopped {
                return match st.exitstatus.as_deref() {
                    Some("OK") => Ok(st),
                    other => Err(PveError::TaskFailed {
                        upid: upid.to_string(),
                        exitstatus: other.unwrap_or("no exit status").to_string(),
                    }),
                };
            }
            let waited = start.elapsed();
            if waited >= deadline {
                return Err(PveError::TaskDeadline {
                    upid: upid.to_string(),
                    waited,
                });
            }
            std::thread::sleep(pause.min(deadline - waited));
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// Proxmox's SDN listing, typed.
fn items<C: SdnConfig>(listed: Vec<Value>) -> Result<Vec<SdnItem<C>>> {
    listed
        .into_iter()
        .map(|v| {
            SdnItem::from_value(v).map_err(|message| PveError::Decode {
                method: "GET".into(),
                path: format!("/cluster/sdn/{}s", C::KIND),
                message,
            })
        })
        .collect()
}
