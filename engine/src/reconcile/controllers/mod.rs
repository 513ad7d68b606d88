//! One controller per kind, behind one small interface ([`Controller`]):
//! what it wants (the declared objects), what it observes (objects of its
//! kind that something in Proxmox or OrbitLab's records still belongs to),
//! the steps it plans for each, and the status outputs it reports.
//!
//! Controllers are pure: they read the [`Desired`] state and the pass's one
//! shared [`Observed`] snapshot and return [`Action`]s; the executor runs
//! the steps, the reconciler writes statuses. Adding a kind means adding a
//! module here and one line to [`ALL`]; the API then acts on it and
//! `apply --wait` waits for it ([`acted_on`]).
//!
//! Kinds with a controller: Cluster (`cluster.rs`), Appliance
//! (`appliance/`: its template on every node), Secret, SshKey and
//! Certificate (`identity.rs`), Sector (`sector/`) and Lxc (`instance/`,
//! which also delivers the secrets, certificates and keys an instance
//! declares), Pool (`pool/`: which members a pool has; the members are
//! instances).
//!
//! Shared building blocks (SDN zone/subnet steps, container lifecycle,
//! IPAM allocations) are methods of the [`Planner`], so every kind creates,
//! repairs and removes Proxmox objects the same way.

mod appliance;
mod cluster;
mod identity;
mod instance;
mod pool;
mod sector;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::{ApplianceRole, HaSpec, Kind, Name};

pub(crate) use cluster::Backplane;

use super::ObjectRef;
use super::action::{
    Action, AddressChoice, ContainerPlan, Difference, PoolRef, UpdatePlan, ZoneConfig,
};
use super::ids::Marker;
use super::observed::{ContainerObs, Observed, Pending};
use super::plan::{Desired, Planner};
use crate::ipam::Owner;
use crate::pve::{SubnetId, Vmid, VnetId, ZoneId};

/// A kind's part of the engine. Pure: no I/O.
pub(crate) trait Controller: Sync {
    /// The kind whose objects it reconciles.
    fn kind(&self) -> Kind;

    /// What it wants: the objects the manifests declare.
    fn declared(&self, desired: &Desired) -> BTreeSet<Name>;

    /// What it observes: objects of its kind that something in Proxmox or
    /// OrbitLab's records (tags, IPAM, statuses) still belongs to. Those no
    /// longer declared are torn down.
    fn observed(&self, observed: &Observed) -> BTreeSet<Name>;

    /// The steps that make a declared object match; `Err` blocks it with
    /// the reason (the planner may also [`Planner::block`] it while still
    /// planning what can run).
    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String>;

    /// The steps that remove what is left of an object no longer declared,
    /// in reverse order of creation, ending with its status.
    fn teardown(&self, name: &Name, planner: &mut Planner<'_>) -> Vec<Action>;

    /// Status outputs describing an object as observed (VMIDs, nodes,
    /// addresses, ids); empty once nothing of it is left.
    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String>;
}

/// Every controller, in planning order.
pub(crate) const ALL: &[&dyn Controller] = &[
    &cluster::ClusterController,
    &appliance::ApplianceController,
    &identity::SecretController,
    &identity::SshKeyController,
    &identity::CertificateController,
    &sector::SectorController,
    &pool::PoolController,
    &instance::InstanceController,
];

/// The controller of `kind`, if it has one.
pub(crate) fn of(kind: Kind) -> Option<&'static dyn Controller> {
    ALL.iter().copied().find(|c| c.kind() == kind)
}

/// Kinds whose objects a controller reconciles and reports a status for.
pub fn reported() -> impl Iterator<Item = Kind> {
    ALL.iter().map(|c| c.kind())
}

/// Kinds that change what agents do: every controller's kind (Appliances
/// among them: their template is put on every node, they choose the
/// template of the Sector containers made from then on, a changed memory
/// is set on the Sector containers of their role (`sector/memory.rs`),
/// and a changed version replaces them (`sector/upgrade.rs`); and Nodes,
/// which cordon a node or cap its instances for the instance controller's
/// placement.
pub fn acted_on() -> impl Iterator<Item = Kind> {
    reported().chain([Kind::Node])
}

/// What an agent does with manifests of a kind it acts on without giving
/// them a status of their own (`None` for kinds with a status or none).
pub fn used_for(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Node => Some(
            "applies to instances placed from now on; instances already on the node stay there",
        ),
        _ => None,
    }
}

/// Status outputs every kind shares: each container of the object (VMID,
/// node, appliance version, digest of the configuration pushed into it) and each IPAM address
/// held by one of its parts.
fn describe_parts(object: &ObjectRef, observed: &Observed) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (vmid, c, marker) in observed.containers_of(object) {
        let role = marker.role.map_or("container", ApplianceRole::as_str);
        out.insert(format!("{role}/vmid"), vmid.to_string());
        out.insert(format!("{role}/node"), c.node.to_string());
        if let Some(version) = &c.version {
            out.insert(format!("{role}/version"), version.clone());
        }
        if let Some(digest) = observed.pushed.get(&vmid) {
            out.insert(format!("config/{vmid}"), digest.clone());
        }
    }
    // A container on an offline node is not listed by Proxmox: where it
    // was last seen stays on record until its node is back.
    for (marker, (vmid, node)) in &observed.homes {
        if marker.kind == object.kind && marker.name == object.name && !observed.online(node) {
            let role = marker.role.map_or("container", ApplianceRole::as_str);
            out.entry(format!("{role}/vmid"))
                .or_insert_with(|| vmid.to_string());
            out.entry(format!("{role}/node"))
                .or_insert_with(|| node.to_string());
        }
    }
    let prefix = format!("{object}/");
    for (owner, by_pool) in &observed.addresses {
        if let Some(part) = owner.as_str().strip_prefix(&prefix) {
            for (pool, addr) in by_pool {
                out.insert(format!("{part}/address/{pool}"), addr.to_string());
            }
        }
    }
    out
}

/// True when `owner` is `object` itself (`lxc/web1`) or one of its parts
/// (`sector/web/gateway`).
pub(crate) fn held_by(owner: &Owner, object: &ObjectRef) -> bool {
    let object = object.to_string();
    owner
        .as_str()
        .strip_prefix(object.as_str())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// True while any IPAM address is held by `object` or a part of it.
fn holds_addresses(object: &ObjectRef, observed: &Observed) -> bool {
    observed.addresses.keys().any(|o| held_by(o, object))
}

fn live(pending: Option<Pending>) -> bool {
    pending != Some(Pending::Deleted)
}

/// The step that sets the config keys of container `vmid` whose observed
/// value (`container.config`) differs from `want` — a changed manifest or
/// a hand edit — through `PUT /nodes/{node}/lxc/{vmid}/config`, each key
/// then reported under `set/` in its object's status; `None` when every
/// key matches. Proxmox leaves a key out when it has its default value
/// (`onboot` 0).
fn config_update(
    marker: &Marker,
    vmid: Vmid,
    container: &ContainerObs,
    want: Vec<(&str, String)>,
) -> Option<Action> {
    let differences: Vec<Difference> = want
        .into_iter()
        .filter_map(|(key, want)| {
            let have = container.config.get(key);
            let same = match have {
                Some(have) => *have == want,
                None => key == "onboot" && want == "0",
            };
            (!same).then(|| Difference {
                key: key.to_owned(),
                want,
                have: have.cloned(),
            })
        })
        .collect();
    (!differences.is_empty()).then(|| {
        Action::UpdateContainer(Box::new(UpdatePlan {
            marker: marker.clone(),
            vmid,
            node: container.node.clone(),
            differences,
        }))
    })
}

impl Planner<'_> {
    /// Create or update a zone so it matches `config`.
    fn zone_steps(&self, owner: &ObjectRef, id: &ZoneId, config: ZoneConfig) -> Vec<Action> {
        let Some(zone) = self.observed.zones.get(id).filter(|z| live(z.pending)) else {
            return vec![Action::CreateZone {
                owner: owner.clone(),
                id: id.clone(),
                config,
            }];
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let names = |v: &[orbitlab_manifests::NodeName]| {
            sorted(v.iter().map(ToString::to_string).collect())
        };
        let matches = match &config {
            ZoneConfig::Evpn {
                vrf_vxlan,
                exitnodes,
                primary,
                mtu,
            } => {
                zone.kind == "evpn"
                    && zone.controller.as_deref() == Some(super::ids::CONTROLLER)
                    && zone.vrf_vxlan == Some(*vrf_vxlan)
                    && names(&zone.exitnodes) == names(exitnodes)
                    && zone.exitnodes_primary.as_ref() == Some(primary)
                    && zone.mtu == Some(*mtu)
                    && zone.advertise_subnets
            }
            ZoneConfig::Vxlan { peers, mtu } => {
                let mut want = peers.clone();
                want.sort();
                let mut have = zone.peers.clone();
                have.sort();
                zone.kind == "vxlan" && have == want && zone.mtu == Some(*mtu)
            }
        };
        if matches {
            Vec::new()
        } else {
            vec![Action::UpdateZone {
                owner: owner.clone(),
                id: id.clone(),
                config,
            }]
        }
    }

    /// Create the VNet `id` in `zone` with `tag`, its alias marking it as
    /// `owner`'s, unless it exists; `Err` when it exists with another zone
    /// or tag (changed by hand: OrbitLab does not guess which is right).
    fn vnet_steps(
        &self,
        owner: &ObjectRef,
        zone: &ZoneId,
        id: &VnetId,
        tag: u32,
    ) -> Result<Vec<Action>, String> {
        match self.observed.vnets.get(id) {
            Some(v) if live(v.pending) => {
                if v.zone.as_ref() != Some(zone) || v.tag != Some(tag) {
                    let shown = |v: Option<String>| v.unwrap_or_else(|| "none".into());
                    return Err(format!(
                        "vnet {id} exists with zone {} and tag {}, not zone {zone} and tag {tag}; it was changed outside OrbitLab — restore it",
                        shown(v.zone.as_ref().map(ToString::to_string)),
                        shown(v.tag.map(|t| t.to_string())),
                    ));
                }
                Ok(Vec::new())
            }
            _ => Ok(vec![Action::CreateVnet {
                owner: owner.clone(),
                id: id.clone(),
                zone: zone.clone(),
                tag,
                alias: Marker::object(owner.kind, &owner.name),
            }]),
        }
    }

    /// Create the subnet `cidr` of `zone` in `vnet` unless it exists.
    fn subnet_steps(
        &self,
        owner: &ObjectRef,
        (zone, vnet): (&ZoneId, &VnetId),
        cidr: Ipv4Net,
        gateway: Ipv4Addr,
        snat: bool,
    ) -> Vec<Action> {
        let exists = self
            .observed
            .subnets
            .values()
            .any(|s| s.vnet == *vnet && s.cidr == cidr && live(s.pending));
        if exists {
            Vec::new()
        } else {
            vec![Action::CreateSubnet {
                owner: owner.clone(),
                vnet: vnet.clone(),
                id: SubnetId {
                    zone: zone.clone(),
                    cidr,
                },
                gateway,
                snat,
            }]
        }
    }

    /// Allocates `holder` the address `choice` names in `pool` unless it
    /// holds one.
    fn allocate(
        &self,
        steps: &mut Vec<Action>,
        owner: &ObjectRef,
        pool: &PoolRef,
        holder: &Owner,
        choice: AddressChoice,
    ) {
        if self.observed.address(holder, &pool.id).is_none() {
            steps.push(Action::Allocate {
                owner: owner.clone(),
                pool: pool.clone(),
                holder: holder.clone(),
                choice,
            });
        }
    }

    /// Create the container if no container carries its marker (unless
    /// its object's status places it on a node that is offline: then the
    /// object is unavailable, and nothing is made twice), destroy
    /// duplicates a crash may have left, start it if stopped.
    fn container_steps(
        &mut self,
        owner: &ObjectRef,
        plan: ContainerPlan,
        ha: Option<&HaSpec>,
    ) -> Vec<Action> {
        let found = self.containers_with(&plan.marker);
        let Some(&(vmid, keep)) = found.first() else {
            if let Some((vmid, node)) = self.observed.homes.get(&plan.marker)
                && !self.observed.online(node)
            {
                self.unavailable(
                    owner.clone(),
                    format!(
                        "its {} container {vmid} is on node {node}, which is offline; {}",
                        plan.marker.role.map_or("", |r| r.as_str()),
                        after_node_loss(ha.is_some()),
                    ),
                );
                return Vec::new();
            }
            return vec![Action::CreateContainer(Box::new(plan))];
        };
        let mut steps: Vec<Action> = found[1..]
            .iter()
            .map(|(extra, c)| Action::DestroyContainer {
                owner: owner.clone(),
                vmid: *extra,
                node: c.node.clone(),
                running: c.running,
            })
            .collect();
        let managed = self.ha_steps(owner, &plan.marker, vmid, ha, &mut steps);
        // While HA manages the container, HA keeps its power state.
        if !keep.running && !managed {
            steps.push(Action::StartContainer {
                marker: plan.marker,
                vmid,
                node: keep.node.clone(),
            });
        }
        steps
    }

    /// Steps that make Proxmox HA manage container `vmid` as `want` says
    /// (registered with the declared state and group, or not at all); a
    /// changed state or group is registered again. Whether HA manages the
    /// container, now or once the steps ran.
    fn ha_steps(
        &self,
        owner: &ObjectRef,
        marker: &Marker,
        vmid: Vmid,
        want: Option<&HaSpec>,
        steps: &mut Vec<Action>,
    ) -> bool {
        let have = self.observed.ha.as_ref().and_then(|ha| ha.get(&vmid));
        match (want, have) {
            (Some(ha), have) => {
                // Proxmox may leave out the default state, `started`.
                let differs = have.is_some_and(|h| {
                    h.state.as_deref().unwrap_or("started") != ha.state.as_str()
                        || h.group.as_deref() != ha.group.as_ref().map(|g| g.as_ref())
                });
                if differs {
                    steps.push(Action::RemoveHa {
                        owner: owner.clone(),
                        vmid,
                    });
                }
                if have.is_none() || differs {
                    steps.push(Action::AddHa {
                        marker: marker.clone(),
                        vmid,
                        state: ha.state,
                        group: ha.group.clone(),
                    });
                }
                true
            }
            (None, Some(_)) => {
                steps.push(Action::RemoveHa {
                    owner: owner.clone(),
                    vmid,
                });
                false
            }
            (None, None) => false,
        }
    }

    /// Why `object` cannot be torn down yet: a container of it that its
    /// status places on a node now offline (Proxmox does not list it).
    /// Releasing its addresses or network now would let another object
    /// take them while it still exists; it is removed when the node
    /// returns.
    fn stranded(&self, object: &ObjectRef) -> Option<String> {
        self.observed
            .homes
            .iter()
            .filter(|(m, _)| m.kind == object.kind && m.name == object.name)
            .find(|(m, (_, node))| !self.observed.online(node) && self.containers_with(m).is_empty())
            .map(|(_, (vmid, node))| {
                format!(
                    "its container {vmid} is on node {node}, which is offline; it is removed when the node returns"
                )
            })
    }

    /// Steps destroying every container of `object`.
    fn destroy_containers(&self, object: &ObjectRef) -> Vec<Action> {
        self.observed
            .containers_of(object)
            .map(|(vmid, c, _)| Action::DestroyContainer {
                owner: object.clone(),
                vmid,
                node: c.node.clone(),
                running: c.running,
            })
            .collect()
    }
}

/// What happens to a container on a node that went offline.
fn after_node_loss(ha: bool) -> &'static str {
    if ha {
        "Proxmox HA recovers it on another node; OrbitLab does not make it again"
    } else {
        "it is not made again elsewhere (declare ha for that)"
    }
}

/// The marker of the container playing `role` for `object`.
fn part(object: &ObjectRef, role: ApplianceRole) -> Marker {
    Marker::part(object.kind, &object.name, role)
}
