//! What the planner sees: a snapshot of Proxmox (nodes, SDN objects with
//! their pending state, containers) and of OrbitLab's own records (VNet tag
//! reservations, IPAM allocations, configurations pushed). Plain data,
//! gathered by [`super::observe`]; tests build it by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::NodeName;

use super::ObjectRef;
use super::ids::Marker;
use crate::ipam::{Owner, PoolId};
use crate::pve::{SubnetId, Vmid, VnetId, ZoneId};

/// Proxmox VE major version (8 or 9): 9 has the SDN lock API.
pub type PveMajor = u8;

/// A change Proxmox holds pending until `PUT /cluster/sdn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    New,
    Changed,
    Deleted,
}

/// A node and its `vmbr0` (uplink) interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeObs {
    pub online: bool,
    pub uplink: Option<Uplink>,
}

/// Address, network and MTU of a node's uplink bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Uplink {
    pub address: Ipv4Addr,
    pub network: Ipv4Net,
    pub mtu: u32,
}

/// An SDN controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerObs {
    pub kind: String,
    pub asn: Option<u32>,
    pub peers: Vec<Ipv4Addr>,
    pub pending: Option<Pending>,
}

/// An SDN zone (as it will be once pending changes are applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneObs {
    pub kind: String,
    pub controller: Option<String>,
    pub vrf_vxlan: Option<u32>,
    pub peers: Vec<Ipv4Addr>,
    pub exitnodes: Vec<NodeName>,
    pub exitnodes_primary: Option<NodeName>,
    pub advertise_subnets: bool,
    pub mtu: Option<u32>,
    pub pending: Option<Pending>,
}

/// An SDN VNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnetObs {
    pub zone: Option<ZoneId>,
    pub tag: Option<u32>,
    pub alias: Option<String>,
    pub pending: Option<Pending>,
}

/// An SDN subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetObs {
    pub vnet: VnetId,
    pub cidr: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub snat: bool,
    pub pending: Option<Pending>,
}

/// A container, with OrbitLab's marker when it carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerObs {
    pub node: NodeName,
    pub hostname: Option<String>,
    pub running: bool,
    pub marker: Option<Marker>,
    /// For an instance's container: the config keys OrbitLab owns
    /// ([`OWNED_KEYS`]) as Proxmox stores them; for an appliance's
    /// container: `memory` (MiB), as the node's container listing gives
    /// it; empty for others.
    pub config: BTreeMap<String, String>,
    /// For an appliance's container: the appliance version its description
    /// records (`None`: none recorded, as for one made before versions
    /// were; or not an appliance).
    pub version: Option<String>,
    /// When it last started, Unix seconds (from Proxmox's `uptime`; `None`
    /// when stopped or unknown): a later start than a delivery recorded
    /// means what was delivered into its tmpfs is gone.
    pub booted: Option<u64>,
    /// CPU and memory use while running (from the node's container
    /// listing, no extra request), for Pools' auto-scaling.
    pub usage: Option<Usage>,
}

/// A running container's use of what it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU, thousandths of its cores.
    pub cpu_permille: u32,
    /// Memory in use, thousandths of its limit.
    pub mem_permille: u32,
}

/// The keys of an instance container's config that OrbitLab owns: it
/// compares them with the manifest every pass and restores them. Every
/// other key is left as it is.
pub const OWNED_KEYS: &[&str] = &[
    "cores",
    "memory",
    "swap",
    "rootfs",
    "net0",
    "nameserver",
    "searchdomain",
    "onboot",
    "hostname",
    "description",
];

/// Memory and CPUs of an online node (`GET /nodes/{node}/status`), for
/// placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLoad {
    /// Free memory, MiB.
    pub free_mib: u64,
    /// Total memory, MiB.
    pub total_mib: u64,
    /// CPU threads.
    pub cpus: u32,
}

/// A Proxmox HA resource of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaObs {
    /// `started`, `stopped`, ... as Proxmox reports it.
    pub state: Option<String>,
    pub group: Option<String>,
}

/// A storage of an online node, as far as container templates go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageObs {
    /// Shared between nodes: one copy serves every node.
    pub shared: bool,
    /// It takes container templates (content `vztmpl`).
    pub templates: bool,
}

/// A declared Appliance manifest, as its status describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceDecl {
    /// Template volume (`storage:vztmpl/file`).
    pub template: String,
    /// Appliance version.
    pub version: String,
}

/// Appliance templates on the nodes' storages (see
/// `observe::appliance_inputs`): read while an Appliance manifest is
/// declared, and, for the template a Sector container is still to be
/// made from, while it is not made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplianceObs {
    /// Declared Appliance manifests, by name.
    pub declared: BTreeMap<orbitlab_manifests::Name, ApplianceDecl>,
    /// Each online node's storages (`GET /nodes/{node}/storage`), by id;
    /// a node is missing when it was not read (no Appliance manifest) or
    /// its listing failed.
    pub storages: BTreeMap<NodeName, BTreeMap<String, StorageObs>>,
    /// The container templates on each online node's storage, by node
    /// and storage; a pair is missing when it was not read or its listing
    /// failed.
    pub templates: BTreeMap<(NodeName, String), BTreeSet<String>>,
}

impl ApplianceObs {
    /// Whether the template `volid` (`storage:vztmpl/file`) is on `node`'s
    /// storage: `None` when that storage was not read.
    pub fn has(&self, node: &NodeName, volid: &str) -> Option<bool> {
        let (storage, _) = volid.split_once(':')?;
        self.templates
            .get(&(node.clone(), storage.to_owned()))
            .map(|volids| volids.contains(volid))
    }
}

/// An SDN object Proxmox reported whose id breaks the rules OrbitLab knows
/// (another Proxmox release may allow more). Never OrbitLab's; still
/// counted: its pending change blocks OrbitLab's SDN edits, and its tag
/// or VNI is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnrecognizedSdn {
    /// `zone`, `vnet`, `subnet`.
    pub what: &'static str,
    pub id: String,
    pub pending: Option<Pending>,
    /// Its VNet tag or zone VRF VNI.
    pub tag: Option<u32>,
}

/// Everything the planner reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub pve_major: PveMajor,
    pub nodes: BTreeMap<NodeName, NodeObs>,
    pub controllers: BTreeMap<String, ControllerObs>,
    pub zones: BTreeMap<ZoneId, ZoneObs>,
    pub vnets: BTreeMap<VnetId, VnetObs>,
    pub subnets: BTreeMap<SubnetId, SubnetObs>,
    /// SDN objects whose id OrbitLab cannot read (see [`UnrecognizedSdn`]).
    pub unrecognized: Vec<UnrecognizedSdn>,
    /// Every guest by VMID (only OrbitLab's carry a marker).
    pub containers: BTreeMap<Vmid, ContainerObs>,
    /// OrbitLab's VNet tag reservations: tag → Sector name (as recorded;
    /// the planner uses only entries with a valid tag and name).
    pub tags: BTreeMap<u32, String>,
    /// IPAM allocations: owner (`sector/web/gateway`) → pool → address.
    pub addresses: BTreeMap<Owner, BTreeMap<PoolId, Ipv4Addr>>,
    /// Digest of the configuration last pushed, by container VMID.
    pub pushed: BTreeMap<Vmid, String>,
    /// Objects that have a status file.
    pub statuses: BTreeSet<ObjectRef>,
    /// Where each container was last seen (its object's status), by
    /// marker: VMID and node. A container whose node is offline is waited
    /// for there, never made again elsewhere.
    pub homes: BTreeMap<Marker, (Vmid, NodeName)>,
    /// Each member node's uplink when it was last online
    /// ([`super::uplinks`]).
    pub recorded_uplinks: BTreeMap<NodeName, Uplink>,
    /// Each online node's memory and CPUs; read only while an instance
    /// waits to be placed.
    pub loads: BTreeMap<NodeName, NodeLoad>,
    /// HA resources of containers, by VMID; `None` when not read (no
    /// instance is declared).
    pub ha: Option<BTreeMap<Vmid, HaObs>>,
    /// Public halves of the SSH keys that instances still to be created
    /// reference, by key name (absent: no such key in the vault).
    pub ssh_public: BTreeMap<orbitlab_manifests::Name, String>,
    /// Secrets that instances still to be created reference and that the
    /// vault holds (names only; values are read when the step runs).
    pub secrets: BTreeSet<orbitlab_manifests::Name>,
    /// The container templates on each online node's storages, by node
    /// and storage; read only for the storages of instances still to be
    /// created.
    pub templates: BTreeMap<(NodeName, String), BTreeSet<String>>,
    /// Appliance templates on the nodes' storages.
    pub appliance: ApplianceObs,
    /// The last health probe of each appliance container, by the node
    /// whose agent took it (from the agents' heartbeats,
    /// [`crate::liveness::probes_by_node`]) and VMID. A container's health
    /// is what the agent of the node it runs on says.
    pub probes: BTreeMap<NodeName, BTreeMap<Vmid, crate::host::health::ApplianceProbe>>,
    /// Appliance upgrades on record, by Sector and role
    /// ([`super::upgrades`]).
    pub upgrades: BTreeMap<orbitlab_manifests::Name, super::upgrades::Record>,
    /// SSH keys, certificates, Secrets and deliveries
    /// ([`super::identities`]).
    pub identities: super::identities::Identities,
    /// The name servers of the nodes Sector DNS containers run on, as
    /// each node's DNS settings list them (`dns1`..`dns3`, text as
    /// Proxmox gives it), by node: read only while a Sector is declared
    /// and the Cluster manifest names no upstream resolvers (see
    /// `observe::dns_inputs`); a node is missing when it was not read or
    /// its read failed.
    pub node_resolvers: BTreeMap<NodeName, Vec<String>>,
    /// Pools' records, controls and members' health ([`crate::pool`]).
    pub pools: PoolsObs,
}

/// What the Pool controller reads besides containers and addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolsObs {
    /// Each Pool's record.
    pub records: BTreeMap<orbitlab_manifests::Name, crate::pool::PoolRecord>,
    /// What operators asked of each Pool's rollout.
    pub controls: BTreeMap<orbitlab_manifests::Name, crate::pool::Control>,
    /// Each member's last health check (from every node's report).
    pub health: BTreeMap<orbitlab_manifests::Name, crate::pool::MemberHealth>,
    /// Why each instance whose status says Failed failed.
    pub failures: BTreeMap<orbitlab_manifests::Name, String>,
    /// The time of the observation, Unix seconds.
    pub now: u64,
}

impl Observed {
    /// Every member node's uplink: as read now for online nodes, as last
    /// recorded for offline ones (those never seen online have none).
    pub fn member_uplinks(&self) -> BTreeMap<&NodeName, Uplink> {
        self.nodes
            .iter()
            .filter_map(|(name, n)| {
                let uplink = if n.online {
                    n.uplink
                } else {
                    self.recorded_uplinks.get(name).copied()
                };
                Some((name, uplink?))
            })
            .collect()
    }

    /// The nodes online now, by name.
    pub fn online_nodes(&self) -> Vec<NodeName> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.online)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// True when `node` is a member and online.
    pub fn online(&self, node: &NodeName) -> bool {
        self.nodes.get(node).is_some_and(|n| n.online)
    }

    /// The online nodes whose uplink is known, by name.
    pub fn uplinks(&self) -> BTreeMap<&NodeName, Uplink> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.online)
            .filter_map(|(name, n)| Some((name, n.uplink?)))
            .collect()
    }

    /// Pending SDN changes on objects OrbitLab does not own: ids.
    pub fn foreign_pending(&self) -> Vec<String> {
        let ours = super::ids::is_ours;
        let mut ids: Vec<String> = Vec::new();
        ids.extend(
            self.controllers
                .iter()
                .filter(|(id, c)| c.pending.is_some() && !ours(id))
                .map(|(id, _)| format!("controller {id}")),
        );
        ids.extend(
            self.zones
                .iter()
                .filter(|(id, z)| z.pending.is_some() && !ours(id.as_str()))
                .map(|(id, _)| format!("zone {id}")),
        );
        ids.extend(
            self.vnets
                .iter()
                .filter(|(id, v)| v.pending.is_some() && !ours(id.as_str()))
                .map(|(id, _)| format!("vnet {id}")),
        );
        ids.extend(
            self.subnets
                .iter()
                .filter(|(_, s)| s.pending.is_some() && !ours(s.vnet.as_str()))
                .map(|(id, _)| format!("subnet {id}")),
        );
        ids.extend(
            self.unrecognized
                .iter()
                .filter(|u| u.pending.is_some())
                .map(|u| format!("{} {}", u.what, u.id)),
        );
        ids
    }

    /// True when any of OrbitLab's SDN objects has a pending change.
    pub fn own_pending(&self) -> bool {
        let ours = super::ids::is_ours;
        self.controllers
            .iter()
            .any(|(id, c)| c.pending.is_some() && ours(id))
            || self
                .zones
                .iter()
                .any(|(id, z)| z.pending.is_some() && ours(id.as_str()))
            || self
                .vnets
                .iter()
                .any(|(id, v)| v.pending.is_some() && ours(id.as_str()))
            || self
                .subnets
                .values()
                .any(|s| s.pending.is_some() && ours(s.vnet.as_str()))
    }

    /// Every VNI/tag in use in Proxmox (VNet tags, zone VRF VNIs) or
    /// reserved by OrbitLab.
    pub fn used_tags(&self) -> BTreeSet<u32> {
        self.vnets
            .values()
            .filter_map(|v| v.tag)
            .chain(self.zones.values().filter_map(|z| z.vrf_vxlan))
            .chain(self.tags.keys().copied())
            .chain(self.unrecognized.iter().filter_map(|u| u.tag))
            .collect()
    }

    /// The container carrying `marker`, if any (the lowest VMID when a
    /// crash left two).
    pub fn container(&self, marker: &Marker) -> Option<(Vmid, &ContainerObs)> {
        self.containers
            .iter()
            .find(|(_, c)| c.marker.as_ref() == Some(marker))
            .map(|(vmid, c)| (*vmid, c))
    }

    /// Every container carrying a marker of `object`.
    pub fn containers_of<'a>(
        &'a self,
        object: &'a ObjectRef,
    ) -> impl Iterator<Item = (Vmid, &'a ContainerObs, &'a Marker)> + 'a {
        self.containers.iter().filter_map(move |(vmid, c)| {
            let m = c.marker.as_ref()?;
            (m.kind == object.kind && m.name == object.name).then_some((*vmid, c, m))
        })
    }

    /// True when a container carries `marker` at another appliance
    /// version than `version` (or none recorded): an upgrade replaces it.
    pub fn outdated(&self, marker: &Marker, version: &str) -> bool {
        self.containers
            .values()
            .any(|c| c.marker.as_ref() == Some(marker) && c.version.as_deref() != Some(version))
    }

    /// The address `holder` holds in `pool`, if any.
    pub fn address(&self, holder: &Owner, pool: &PoolId) -> Option<Ipv4Addr> {
        self.addresses.get(holder)?.get(pool).copied()
    }

    /// The recorded VNet tag of a Sector, if its reservation is valid.
    pub fn tag_of(&self, sector: &str) -> Option<super::ids::SectorTag> {
        self.tags
            .iter()
            .filter(|(_, s)| s.as_str() == sector)
            .find_map(|(tag, _)| super::ids::SectorTag::try_from(*tag).ok())
    }
}
