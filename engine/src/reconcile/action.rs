//! The steps a plan is made of. Each is idempotent when executed again
//! after an interruption, belongs to one object (for status and error
//! policy), and prints as one line of `orbitlab plan`.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::{ApplianceRole, HaResourceState, Name, NodeName};

use super::ObjectRef;
use super::ids::{Marker, SectorTag};
use crate::ipam::{Owner, PoolId};
use crate::pve::{SubnetId, Vmid, VnetId, ZoneId};

/// Settings of an SDN zone OrbitLab manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneConfig {
    /// The Backplane, under OrbitLab's EVPN controller
    /// ([`super::ids::CONTROLLER`]).
    Evpn {
        vrf_vxlan: u32,
        exitnodes: Vec<NodeName>,
        /// `exitnodes-primary`: one of `exitnodes`.
        primary: NodeName,
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
    Allocated { pool: PoolId, owner: Owner },
}

/// One network interface of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPlan {
    /// `eth0`, `eth1`, ...: the index is the position in
    /// [`ContainerPlan::nics`].
    pub bridge: VnetId,
    pub address: AddressRef,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// MTU of the interface (instances: the Backplane MTU).
    pub mtu: Option<u32>,
}

/// Which address of a pool an allocation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressChoice {
    /// The next free ordinary address.
    Next,
    /// The role's fixed address (`.1`, `.2`).
    Role(ApplianceRole),
    /// This ordinary address (an instance's declared `address`).
    Fixed(Ipv4Addr),
}

/// The settings of an instance's container beyond an appliance's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPlan {
    /// The Sector DNS.
    pub nameserver: Ipv4Addr,
    /// `<sector>.orbitlab.internal`.
    pub searchdomain: String,
    pub onboot: bool,
    /// Start it once created.
    pub start: bool,
    /// `authorized_keys` lines for root (public halves only).
    pub ssh_public_keys: Option<String>,
    /// The Secret holding root's password, and its vault path: its value
    /// is read from the vault when the step runs and sent only in the
    /// request body.
    pub password: Option<(Name, crate::vault::SecretPath)>,
    /// `key: value` lines for the description recording what the
    /// container is made with (template, SSH key and Secret names), so
    /// that a later change of them is recognised.
    pub creation_notes: Vec<String>,
}

/// One owned config key that differs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub key: String,
    pub want: String,
    /// `None`: the key is missing.
    pub have: Option<String>,
}

/// Owned config keys to set on a container (`PUT .../config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePlan {
    pub marker: Marker,
    pub vmid: Vmid,
    pub node: NodeName,
    pub differences: Vec<Difference>,
}

/// A container to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub marker: Marker,
    pub node: NodeName,
    pub hostname: String,
    pub template: String,
    pub storage: String,
    pub disk_gib: u32,
    pub memory_mib: u32,
    pub cores: u32,
    pub nics: Vec<NicPlan>,
    /// For an instance: DNS, boot, access and start settings; `None` for
    /// an appliance (started, on boot, no access).
    pub guest: Option<GuestPlan>,
    /// For an appliance: the version it is made at, and the container it
    /// replaces if any; `None` for an instance.
    pub appliance: Option<ApplianceBuild>,
}

/// What an appliance container is made at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceBuild {
    /// The appliance version, recorded in the container's description.
    pub version: String,
    /// The container of another version it is made to replace: then it is
    /// created stopped and not started on boot (the old one still holds
    /// its addresses), with the old one's MAC addresses, and a failed
    /// create is recorded as a failed upgrade.
    pub replaces: Option<Replaced>,
}

/// The appliance container an upgrade replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub vmid: Vmid,
    pub node: NodeName,
    /// Its recorded version (`None`: made before versions were recorded).
    pub version: Option<String>,
}

/// The switch of an appliance upgrade: the old container stopped, the new
/// one (same addresses, created stopped) started and configured, then
/// started on boot. Runs on the new container's node (the configuration
/// goes in through `pct` there), under the `orbitlab-reconcile` lock.
/// Records when the old one stopped and, once the new one is configured,
/// the interruption; on failure records it, stops the new one and starts
/// the old one again ([`super::upgrades`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchPlan {
    pub marker: Marker,
    pub old: Replaced,
    pub old_running: bool,
    pub new: Vmid,
    pub node: NodeName,
    pub new_running: bool,
    /// The version and template it upgrades to.
    pub to: String,
    pub template: String,
    /// The new container's configuration, unless it already runs it.
    pub configure: Option<ConfigurePlan>,
}

impl ContainerPlan {
    /// Whether the create task starts it: an instance as declared, an
    /// appliance unless it replaces another.
    pub fn starts(&self) -> bool {
        match (&self.guest, &self.appliance) {
            (Some(guest), _) => guest.start,
            (None, Some(build)) => build.replaces.is_none(),
            (None, None) => true,
        }
    }

    /// Whether it starts when its node boots.
    pub fn onboot(&self) -> bool {
        match (&self.guest, &self.appliance) {
            (Some(guest), _) => guest.onboot,
            (None, Some(build)) => build.replaces.is_none(),
            (None, None) => true,
        }
    }
}

/// A file to place in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileToPush {
    pub path: String,
    pub mode: u32,
    pub content: String,
}

impl crate::host::bundle::BundleFile for FileToPush {
    fn path(&self) -> &str {
        &self.path
    }
    fn mode(&self) -> u32 {
        self.mode
    }
    fn content(&self) -> &[u8] {
        self.content.as_bytes()
    }
}

/// An appliance's whole configuration, pushed into its running container
/// as one bundle that the helper inside checks, switches to and loads
/// ([`crate::host::bundle`]). Runs on the container's node (see
/// [`Action::runs_on`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurePlan {
    pub marker: Marker,
    pub vmid: Vmid,
    pub node: NodeName,
    pub files: Vec<FileToPush>,
    /// Identifies this exact configuration; recorded once pushed.
    pub digest: String,
}

/// An appliance template to copy from one node's storage to another's
/// through Proxmox's storage upload. Runs on `source` (see
/// [`Action::runs_on`]): only the agent there can read the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateCopy {
    /// The Appliance it is for.
    pub appliance: Name,
    /// `storage:vztmpl/file`.
    pub volid: String,
    /// The storage, on both nodes (not shared between them).
    pub storage: String,
    /// `file`: the name it keeps.
    pub file_name: String,
    /// A node whose storage holds it.
    pub source: NodeName,
    /// The node whose storage lacks it.
    pub target: NodeName,
}

/// An IPAM pool as the planner names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRef {
    pub id: PoolId,
    pub cidr: Ipv4Net,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    ReserveTag {
        sector: Name,
        tag: SectorTag,
    },
    DestroyContainer {
        owner: ObjectRef,
        vmid: Vmid,
        node: NodeName,
        running: bool,
    },
    /// Creates OrbitLab's EVPN controller ([`super::ids::CONTROLLER`]).
    CreateController {
        asn: u32,
        peers: Vec<Ipv4Addr>,
    },
    UpdateController {
        peers: Vec<Ipv4Addr>,
    },
    CreateZone {
        owner: ObjectRef,
        id: ZoneId,
        config: ZoneConfig,
    },
    UpdateZone {
        owner: ObjectRef,
        id: ZoneId,
        config: ZoneConfig,
    },
    CreateVnet {
        owner: ObjectRef,
        id: VnetId,
        zone: ZoneId,
        tag: u32,
        alias: Marker,
    },
    CreateSubnet {
        owner: ObjectRef,
        vnet: VnetId,
        id: SubnetId,
        gateway: Ipv4Addr,
        snat: bool,
    },
    DeleteSubnet {
        owner: ObjectRef,
        vnet: VnetId,
        id: SubnetId,
    },
    DeleteVnet {
        owner: ObjectRef,
        id: VnetId,
    },
    DeleteZone {
        owner: ObjectRef,
        id: ZoneId,
    },
    ApplySdn,
    /// Replaces the record of member nodes' uplinks
    /// ([`super::uplinks`]).
    RecordUplinks(std::collections::BTreeMap<NodeName, super::observed::Uplink>),
    /// Releases every IPAM address held by a part of `owner`
    /// (`<kind>/<name>/...`).
    ReleaseAddresses {
        owner: ObjectRef,
    },
    ReleaseTag {
        sector: Name,
        tag: u32,
    },
    ForgetStatus(ObjectRef),
    /// Replaces a Pool's record ([`crate::pool::PoolRecord`]): members
    /// recorded here are made by the next pass, members left out are
    /// removed; new events (scaling, replacements, pauses) are audited.
    RecordPool {
        pool: Name,
        record: Box<crate::pool::PoolRecord>,
    },
    Allocate {
        owner: ObjectRef,
        pool: PoolRef,
        holder: Owner,
        choice: AddressChoice,
    },
    CreateContainer(Box<ContainerPlan>),
    StartContainer {
        marker: Marker,
        vmid: Vmid,
        node: NodeName,
    },
    StopContainer {
        marker: Marker,
        vmid: Vmid,
        node: NodeName,
    },
    /// Sets the owned keys that differ (a changed manifest, or a change
    /// made outside OrbitLab).
    UpdateContainer(Box<UpdatePlan>),
    /// Grows the root disk to `gib` (never shrinks).
    ResizeDisk {
        marker: Marker,
        vmid: Vmid,
        node: NodeName,
        gib: u32,
    },
    /// Registers the container as a Proxmox HA resource (`ct:<vmid>`).
    AddHa {
        marker: Marker,
        vmid: Vmid,
        state: HaResourceState,
        group: Option<Name>,
    },
    /// Removes the container's HA resource.
    RemoveHa {
        owner: ObjectRef,
        vmid: Vmid,
    },
    Configure(Box<ConfigurePlan>),
    /// Switches a Sector role from its old appliance container to the new
    /// one (see [`SwitchPlan`]).
    SwitchAppliance(Box<SwitchPlan>),
    /// Uploads an appliance template to a node that lacks it, and waits
    /// for Proxmox's task storing it.
    UploadTemplate(Box<TemplateCopy>),
    /// A step of an SSH key's, CA's or certificate's life (vault and PKI
    /// only, under their own locks).
    Identity {
        owner: ObjectRef,
        step: super::identity_steps::IdentityStep,
    },
    /// Delivers an instance's secrets, certificates and SSH keys into its
    /// running container (see [`super::identity_steps::DeliveryPlan`]).
    Deliver(Box<super::identity_steps::DeliveryPlan>),
}

/// Execution order: every step of an earlier phase runs before any of a
/// later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Reserve,
    /// Keys and certificates, before the containers that may use them.
    Identity,
    Destroy,
    SdnDelete,
    SdnCreate,
    SdnApply,
    Release,
    Allocate,
    Upload,
    Create,
    Change,
    Start,
    Ha,
    Configure,
}

impl Action {
    /// The object this step works for; `None` for shared steps (SDN apply).
    pub fn object(&self) -> Option<ObjectRef> {
        use Action::*;
        let part = |m: &Marker| ObjectRef::new(m.kind, &m.name);
        match self {
            ReserveTag { sector, .. } | ReleaseTag { sector, .. } => {
                Some(ObjectRef::new(orbitlab_manifests::Kind::Sector, sector))
            }
            CreateController { .. } | UpdateController { .. } => None,
            ForgetStatus(object) => Some(object.clone()),
            RecordPool { pool, .. } => Some(ObjectRef::new(orbitlab_manifests::Kind::Pool, pool)),
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
            ApplySdn | RecordUplinks(_) => None,
            CreateContainer(plan) => Some(part(&plan.marker)),
            StartContainer { marker, .. }
            | StopContainer { marker, .. }
            | ResizeDisk { marker, .. }
            | AddHa { marker, .. } => Some(part(marker)),
            UpdateContainer(plan) => Some(part(&plan.marker)),
            RemoveHa { owner, .. } => Some(owner.clone()),
            Configure(plan) => Some(part(&plan.marker)),
            SwitchAppliance(plan) => Some(part(&plan.marker)),
            Identity { owner, .. } => Some(owner.clone()),
            Deliver(plan) => Some(part(&plan.marker)),
            UploadTemplate(copy) => Some(ObjectRef::new(
                orbitlab_manifests::Kind::Appliance,
                &copy.appliance,
            )),
        }
    }

    /// The node whose agent must take this step, decided by the plan:
    /// pushing a configuration bundle into a container and applying it go
    /// through `pct` on the container's own node. `None`: any node, through
    /// the Proxmox API or the store.
    /// Uploading a template reads its file on the node that holds it.
    pub fn runs_on(&self) -> Option<&NodeName> {
        match self {
            Action::Configure(plan) => Some(&plan.node),
            Action::SwitchAppliance(plan) => Some(&plan.node),
            Action::UploadTemplate(copy) => Some(&copy.source),
            Action::Deliver(plan) => Some(&plan.node),
            _ => None,
        }
    }

    /// What the object of a step that [`Action::runs_on`] another node
    /// waits for.
    pub(crate) fn waits_for(&self) -> String {
        match self {
            Action::UploadTemplate(copy) => format!(
                "uploading: waiting for the agent on node {} (it holds {}) to upload it to node {}",
                copy.source, copy.volid, copy.target
            ),
            Action::SwitchAppliance(plan) => format!(
                "upgrading: waiting for the agent on node {} to switch the {} to its new container {}",
                plan.node,
                plan.marker.role.map_or("appliance", ApplianceRole::as_str),
                plan.new
            ),
            Action::Deliver(plan) => format!(
                "delivering: waiting for the agent on node {} to deliver its secrets, certificates and keys into container {}",
                plan.node, plan.vmid
            ),
            other => format!(
                "waiting for the agent on node {} to configure its container",
                other.runs_on().map_or("?", |n| n.as_str())
            ),
        }
    }

    /// True for steps that change something in Proxmox (SDN, containers);
    /// false for those that change only OrbitLab's records or what is
    /// inside a container.
    pub(crate) fn changes_proxmox(&self) -> bool {
        use Action::*;
        match self {
            ReserveTag { .. }
            | RecordUplinks(_)
            | ReleaseTag { .. }
            | ReleaseAddresses { .. }
            | ForgetStatus(_)
            | RecordPool { .. }
            | Allocate { .. }
            | Configure(_)
            | Identity { .. }
            | Deliver(_) => false,
            DestroyContainer { .. }
            | CreateController { .. }
            | UpdateController { .. }
            | CreateZone { .. }
            | UpdateZone { .. }
            | CreateVnet { .. }
            | CreateSubnet { .. }
            | DeleteSubnet { .. }
            | DeleteVnet { .. }
            | DeleteZone { .. }
            | ApplySdn
            | CreateContainer(_)
            | StartContainer { .. }
            | StopContainer { .. }
            | UpdateContainer(_)
            | ResizeDisk { .. }
            | AddHa { .. }
            | RemoveHa { .. }
            | SwitchAppliance(_)
            | UploadTemplate(_) => true,
        }
    }

    /// True for SDN edits (made inside the plan's SDN transaction).
    pub(crate) fn is_sdn_edit(&self) -> bool {
        matches!(self.phase(), Phase::SdnCreate | Phase::SdnDelete)
    }

    pub(crate) fn phase(&self) -> Phase {
        use Action::*;
        match self {
            ReserveTag { .. } | RecordUplinks(_) | RecordPool { .. } => Phase::Reserve,
            Identity { .. } => Phase::Identity,
            RemoveHa { .. } | DestroyContainer { .. } => Phase::Destroy,
            DeleteSubnet { .. } | DeleteVnet { .. } | DeleteZone { .. } => Phase::SdnDelete,
            CreateController { .. }
            | UpdateController { .. }
            | CreateZone { .. }
            | UpdateZone { .. }
            | CreateVnet { .. }
            | CreateSubnet { .. } => Phase::SdnCreate,
            ApplySdn => Phase::SdnApply,
            ReleaseAddresses { .. } | ReleaseTag { .. } | ForgetStatus(_) => Phase::Release,
            Allocate { .. } => Phase::Allocate,
            UploadTemplate(_) => Phase::Upload,
            CreateContainer(_) => Phase::Create,
            UpdateContainer(_) | ResizeDisk { .. } => Phase::Change,
            StartContainer { .. } | StopContainer { .. } => Phase::Start,
            AddHa { .. } => Phase::Ha,
            Configure(_) | SwitchAppliance(_) | Deliver(_) => Phase::Configure,
        }
    }

    /// A rank inside a phase, so deletes go subnet → vnet → zone and
    /// creates zone → vnet → subnet.
    pub(crate) fn rank(&self) -> u8 {
        use Action::*;
        match self {
            DeleteSubnet { .. } | CreateController { .. } | UpdateController { .. } => 0,
            // An HA resource goes before its container (HA would start it again).
            RemoveHa { .. } => 0,
            DestroyContainer { .. } => 1,
            DeleteVnet { .. } | CreateZone { .. } | UpdateZone { .. } => 1,
            DeleteZone { .. } | CreateVnet { .. } => 2,
            CreateSubnet { .. } => 3,
            Identity { step, .. } => step.rank(),
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
                vrf_vxlan,
                exitnodes,
                primary,
                mtu,
            } => write!(
                f,
                "evpn controller={} vrf-vxlan={vrf_vxlan} exitnodes={} exitnodes-primary={primary} mtu={mtu} advertise-subnets=1",
                super::ids::CONTROLLER,
                join(exitnodes)
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
            CreateController { asn, peers } => {
                write!(
                    f,
                    "create EVPN controller {} asn={asn} peers={}",
                    super::ids::CONTROLLER,
                    join(peers)
                )
            }
            UpdateController { peers } => {
                write!(
                    f,
                    "update controller {} peers={}",
                    super::ids::CONTROLLER,
                    join(peers)
                )
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
                id,
                gateway,
                snat,
                ..
            } => write!(
                f,
                "create subnet {} in vnet {vnet} gateway={gateway} snat={}",
                id.cidr,
                u8::from(*snat)
            ),
            DeleteSubnet { vnet, id, .. } => write!(f, "delete subnet {id} of vnet {vnet}"),
            DeleteVnet { id, .. } => write!(f, "delete vnet {id}"),
            DeleteZone { id, .. } => write!(f, "delete zone {id}"),
            ApplySdn => write!(f, "apply pending SDN changes (PUT /cluster/sdn)"),
            RecordUplinks(uplinks) => write!(
                f,
                "record the member nodes' uplinks: {}",
                uplinks
                    .iter()
                    .map(|(n, u)| format!(
                        "{n}={}/{} mtu {}",
                        u.address,
                        u.network.prefix_len(),
                        u.mtu
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ReleaseAddresses { owner } => write!(f, "release IPAM addresses of {owner}"),
            RecordPool { pool, record } => {
                let members: Vec<String> = record
                    .members
                    .iter()
                    .map(|(n, m)| {
                        let mut text =
                            format!("{}@{}", crate::pool::member_name(pool, *n), m.revision);
                        if m.retiring.is_some() {
                            text.push_str(" (retiring)");
                        }
                        text
                    })
                    .collect();
                write!(
                    f,
                    "record Pool {pool}: {} wanted, members {}",
                    record.replicas,
                    if members.is_empty() {
                        "none".to_owned()
                    } else {
                        members.join(", ")
                    }
                )
            }
            ForgetStatus(object) => {
                write!(
                    f,
                    "remove status of deleted {} {}",
                    object.kind.dir_name(),
                    object.name
                )
            }
            Allocate {
                pool,
                holder,
                choice,
                ..
            } => match choice {
                AddressChoice::Fixed(addr) => write!(
                    f,
                    "allocate {addr} of {} ({}) to {holder}",
                    pool.id, pool.cidr
                ),
                AddressChoice::Role(ApplianceRole::Gateway) => write!(
                    f,
                    "allocate the gateway address (.1) of {} ({}) to {holder}",
                    pool.id, pool.cidr
                ),
                AddressChoice::Role(ApplianceRole::Dns) => write!(
                    f,
                    "allocate the DNS address (.2) of {} ({}) to {holder}",
                    pool.id, pool.cidr
                ),
                AddressChoice::Next => write!(
                    f,
                    "allocate next free address of {} ({}) to {holder}",
                    pool.id, pool.cidr
                ),
            },
            CreateContainer(plan) => write!(
                f,
                "create {}container {} on {} ({} MiB, {}) for {}: {}",
                if plan.starts() { "and start " } else { "" },
                plan.hostname,
                plan.node,
                plan.memory_mib,
                plan.template,
                plan.marker,
                plan.nics
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("eth{i}@{}={}/{}", n.bridge, n.address, n.prefix))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            StartContainer { vmid, node, .. } => write!(f, "start container {vmid} on {node}"),
            StopContainer { vmid, node, .. } => write!(f, "stop container {vmid} on {node}"),
            UpdateContainer(plan) => write!(
                f,
                "set {} of container {} on {}",
                plan.differences
                    .iter()
                    .map(|d| format!(
                        "{} (want {}, have {})",
                        d.key,
                        d.want,
                        d.have.as_deref().unwrap_or("none")
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                plan.vmid,
                plan.node
            ),
            ResizeDisk {
                vmid, node, gib, ..
            } => write!(
                f,
                "grow the root disk of container {vmid} on {node} to {gib} GiB"
            ),
            AddHa {
                vmid, state, group, ..
            } => write!(
                f,
                "register container {vmid} as HA resource ct:{vmid} state={}{}",
                state.as_str(),
                group
                    .as_ref()
                    .map(|g| format!(" group={g}"))
                    .unwrap_or_default()
            ),
            RemoveHa { vmid, .. } => write!(f, "remove HA resource ct:{vmid}"),
            Configure(plan) => write!(
                f,
                "apply a bundle of {} in container {} on {} ({})",
                plan.files
                    .iter()
                    .map(|x| x.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                plan.vmid,
                plan.node,
                &plan.digest[..plan.digest.len().min(12)]
            ),
            SwitchAppliance(plan) => write!(
                f,
                "switch the {} from container {} on {} ({}, {}) to container {} on {} ({}): {}start the new one, {}",
                plan.marker.role.map_or("appliance", ApplianceRole::as_str),
                plan.old.vmid,
                plan.old.node,
                plan.old.version.as_deref().unwrap_or("unknown version"),
                if plan.old_running {
                    "running"
                } else {
                    "stopped"
                },
                plan.new,
                plan.node,
                plan.to,
                if plan.old_running {
                    "stop the old one, "
                } else {
                    ""
                },
                if plan.configure.is_some() {
                    "configure it"
                } else {
                    "its configuration is in place"
                },
            ),
            UploadTemplate(copy) => write!(
                f,
                "upload template {} from node {} to node {} (storage upload, sha256 checked)",
                copy.volid, copy.source, copy.target
            ),
            Identity { step, .. } => write!(f, "{step}"),
            Deliver(plan) => write!(f, "{plan}"),
        }
    }
}
