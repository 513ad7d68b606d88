//! The steps a plan is made of. Each is idempotent when executed again
//! after an interruption, belongs to one object (for status and error
//! policy), and prints as one line of `orbitlab plan`.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::{Kind, Name};

use super::ids::Marker;

/// Settings of an SDN zone OrbitLab manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneConfig {
    /// The Backplane.
    Evpn {
        controller: String,
        vrf_vxlan: u32,
        exitnodes: Vec<String>,
        mtu: u32,
    },
    /// A Sector.
    Vxlan { peers: Vec<Ipv4Addr>, mtu: u32 },
}

/// Where a NIC's address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressRef {
    /// Known when planning (a role address, or already allocated).
    Known(Ipv4Addr),
    /// Allocated by an earlier step of the same plan: looked up in IPAM by
    /// pool and owner when the step runs.
    Allocated { pool: String, owner: String },
}

/// One network interface of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPlan {
    pub name: String,
    pub bridge: String,
    pub address: AddressRef,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// A container to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub marker: Marker,
    pub node: String,
    pub hostname: String,
    pub template: String,
    pub storage: String,
    pub disk_gib: u32,
    pub memory_mib: u32,
    pub cores: u32,
    pub nics: Vec<NicPlan>,
}

/// A file to place in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileToPush {
    pub path: String,
    pub mode: u32,
    pub content: String,
}

/// Configuration to push into a running container, then the commands that
/// load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurePlan {
    pub marker: Marker,
    pub vmid: u32,
    pub node: String,
    pub files: Vec<FileToPush>,
    pub reload: Vec<Vec<String>>,
    /// Identifies this exact configuration; recorded once pushed.
    pub digest: String,
}

/// An IPAM pool as the planner names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRef {
    pub id: String,
    pub cidr: Ipv4Net,
}

/// Which fixed address of a pool an allocation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedRole {
    /// `.1`.
    Gateway,
    /// `.2`.
    Dns,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    ReserveTag {
        sector: Name,
        tag: u32,
    },
    DestroyContainer {
        owner: (Kind, String),
        vmid: u32,
        node: String,
        running: bool,
    },
    CreateController {
        id: String,
        asn: u32,
        peers: Vec<Ipv4Addr>,
    },
    UpdateController {
        id: String,
        peers: Vec<Ipv4Addr>,
    },
    CreateZone {
        owner: (Kind, String),
        id: String,
        config: ZoneConfig,
    },
    UpdateZone {
        owner: (Kind, String),
        id: String,
        config: ZoneConfig,
    },
    CreateVnet {
        owner: (Kind, String),
        id: String,
        zone: String,
        tag: u32,
        alias: String,
    },
    CreateSubnet {
        owner: (Kind, String),
        vnet: String,
        cidr: Ipv4Net,
        gateway: Ipv4Addr,
        snat: bool,
    },
    DeleteSubnet {
        owner: (Kind, String),
        vnet: String,
        id: String,
    },
    DeleteVnet {
        owner: (Kind, String),
        id: String,
    },
    DeleteZone {
        owner: (Kind, String),
        id: String,
    },
    ApplySdn,
    ReleaseAddresses {
        owner: (Kind, String),
        prefix: String,
    },
    ReleaseTag {
        sector: String,
        tag: u32,
    },
    ForgetStatus {
        kind: Kind,
        name: String,
    },
    Allocate {
        owner: (Kind, String),
        pool: PoolRef,
        holder: String,
        fixed: Option<FixedRole>,
    },
    CreateContainer(Box<ContainerPlan>),
    StartContainer {
        marker: Marker,
        vmid: u32,
        node: String,
    },
    Configure(Box<ConfigurePlan>),
}

/// Execution order: every step of an earlier phase runs before any of a
/// later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Reserve,
    Destroy,
    SdnDelete,
    SdnCreate,
    SdnApply,
    Release,
    Allocate,
    Create,
    Start,
    Configure,
}

impl Action {
    /// The object this step works for; `None` for shared steps (SDN apply).
    pub fn object(&self) -> Option<(Kind, String)> {
        use Action::*;
        match self {
            ReserveTag { sector, .. } => Some((Kind::Sector, sector.to_string())),
            ReleaseTag { sector, .. } => Some((Kind::Sector, sector.clone())),
            CreateController { .. } | UpdateController { .. } => None,
            ForgetStatus { kind, name } => Some((*kind, name.clone())),
            DestroyContainer { owner, .. }
            | CreateZone { owner, .. }
            | UpdateZone { owner, .. }
            | CreateVnet { owner, .. }
            | CreateSubnet { owner, .. }
            | DeleteSubnet { owner, .. }
            | DeleteVnet { owner, .. }
            | DeleteZone { owner, .. }
            | ReleaseAddresses { owner, .. }
            | Allocate { owner, .. } => Some(owner.clone()),
            ApplySdn => None,
            CreateContainer(plan) => Some((plan.marker.kind, plan.marker.name.to_string())),
            StartContainer { marker, .. } => Some((marker.kind, marker.name.to_string())),
            Configure(plan) => Some((plan.marker.kind, plan.marker.name.to_string())),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        use Action::*;
        match self {
            ReserveTag { .. } => Phase::Reserve,
            DestroyContainer { .. } => Phase::Destroy,
            DeleteSubnet { .. } | DeleteVnet { .. } | DeleteZone { .. } => Phase::SdnDelete,
            CreateController { .. }
            | UpdateController { .. }
            | CreateZone { .. }
            | UpdateZone { .. }
            | CreateVnet { .. }
            | CreateSubnet { .. } => Phase::SdnCreate,
            ApplySdn => Phase::SdnApply,
            ReleaseAddresses { .. } | ReleaseTag { .. } | ForgetStatus { .. } => Phase::Release,
            Allocate { .. } => Phase::Allocate,
            CreateContainer(_) => Phase::Create,
            StartContainer { .. } => Phase::Start,
            Configure(_) => Phase::Configure,
        }
    }

    /// A rank inside a phase, so deletes go subnet → vnet → zone and
    /// creates zone → vnet → subnet.
    pub(crate) fn rank(&self) -> u8 {
        use Action::*;
        match self {
            DeleteSubnet { .. } | CreateController { .. } | UpdateController { .. } => 0,
            DeleteVnet { .. } | CreateZone { .. } | UpdateZone { .. } => 1,
            DeleteZone { .. } | CreateVnet { .. } => 2,
            CreateSubnet { .. } => 3,
            _ => 0,
        }
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for ZoneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoneConfig::Evpn {
                controller,
                vrf_vxlan,
                exitnodes,
                mtu,
            } => write!(
                f,
                "evpn controller={controller} vrf-vxlan={vrf_vxlan} exitnodes={} mtu={mtu} advertise-subnets=1",
                exitnodes.join(",")
            ),
            ZoneConfig::Vxlan { peers, mtu } => write!(f, "vxlan peers={} mtu={mtu}", join(peers)),
        }
    }
}

impl fmt::Display for AddressRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressRef::Known(addr) => write!(f, "{addr}"),
            AddressRef::Allocated { pool, .. } => write!(f, "<next free in {pool}>"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Action::*;
        match self {
            ReserveTag { sector, tag } => write!(f, "reserve VNet tag {tag} for sector {sector}"),
            ReleaseTag { sector, tag } => {
                write!(f, "release VNet tag {tag} of deleted sector {sector}")
            }
            DestroyContainer {
                vmid,
                node,
                running,
                ..
            } => write!(
                f,
                "{}destroy container {vmid} on {node}",
                if *running { "stop and " } else { "" }
            ),
            CreateController { id, asn, peers } => {
                write!(
                    f,
                    "create EVPN controller {id} asn={asn} peers={}",
                    join(peers)
                )
            }
            UpdateController { id, peers } => {
                write!(f, "update controller {id} peers={}", join(peers))
            }
            CreateZone { id, config, .. } => write!(f, "create zone {id} ({config})"),
            UpdateZone { id, config, .. } => write!(f, "update zone {id} ({config})"),
            CreateVnet {
                id,
                zone,
                tag,
                alias,
                ..
            } => {
                write!(f, "create vnet {id} zone={zone} tag={tag} alias={alias}")
            }
            CreateSubnet {
                vnet,
                cidr,
                gateway,
                snat,
                ..
            } => write!(
                f,
                "create subnet {cidr} in vnet {vnet} gateway={gateway} snat={}",
                u8::from(*snat)
            ),
            DeleteSubnet { vnet, id, .. } => write!(f, "delete subnet {id} of vnet {vnet}"),
            DeleteVnet { id, .. } => write!(f, "delete vnet {id}"),
            DeleteZone { id, .. } => write!(f, "delete zone {id}"),
            ApplySdn => write!(f, "apply pending SDN changes (PUT /cluster/sdn)"),
            ReleaseAddresses { prefix, .. } => write!(f, "release IPAM addresses of {prefix}*"),
            ForgetStatus { kind, name } => {
                write!(f, "remove status of deleted {} {name}", kind.dir_name())
            }
            Allocate {
                pool,
                holder,
                fixed,
                ..
            } => match fixed {
                Some(FixedRole::Gateway) => write!(
                    f,
                    "allocate the gateway address (.1) of {} ({}) to {holder}",
                    pool.id, pool.cidr
                ),
                Some(FixedRole::Dns) => write!(
                    f,
                    "allocate the DNS address (.2) of {} ({}) to {holder}",
                    pool.id, pool.cidr
                ),
                None => write!(
                    f,
                    "allocate next free address of {} ({}) to {holder}",
                    pool.id, pool.cidr
                ),
            },
            CreateContainer(plan) => write!(
                f,
                "create container {} on {} ({} MiB, {}) for {}: {}",
                plan.hostname,
                plan.node,
                plan.memory_mib,
                plan.template,
                plan.marker,
                plan.nics
                    .iter()
                    .map(|n| format!("{}@{}={}/{}", n.name, n.bridge, n.address, n.prefix))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            StartContainer { vmid, node, .. } => write!(f, "start container {vmid} on {node}"),
            Configure(plan) => write!(
                f,
                "push {} into container {} on {} and reload ({})",
                plan.files
                    .iter()
                    .map(|x| x.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                plan.vmid,
                plan.node,
                &plan.digest[..plan.digest.len().min(12)]
            ),
        }
    }
}
