//! Instances (`kind: Lxc`): one container per manifest in a Sector subnet,
//! found again by its marker (`orbitlab:lxc/<name>` in the description,
//! tag `orbitlab`), never made twice.
//!
//! - create: placed ([`placement`]), addressed from the subnet's IPAM pool
//!   (owner `lxc/<name>`) or at its declared address, `net0` on the
//!   Sector's VNet with the subnet's gateway and the Backplane MTU, the
//!   Sector DNS as nameserver, `<sector>.orbitlab.internal` as search
//!   domain, SSH keys and root password by reference, unprivileged;
//! - change: the owned keys ([`OWNED_KEYS`]) are compared with the
//!   manifest every pass and set again when they differ (a changed
//!   manifest or a hand edit: both reported); the disk only grows; a change
//!   of Sector, subnet, address or template is refused with what to do;
//! - power: `state` is kept, unless Proxmox HA manages the container;
//! - delete: HA resource, container (stopped, destroyed with purge), IPAM
//!   address, status — never while its node is offline (it is still there).
//!
//! [`OWNED_KEYS`]: crate::reconcile::observed::OWNED_KEYS

mod config;
mod deliver;
mod placement;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use orbitlab_manifests::{ApplianceRole, Kind, LxcSpec, Name, PowerState};

use super::sector::subnet_pool;
use super::{Controller, held_by};
use crate::ipam::role_address;
use crate::reconcile::ObjectRef;
use crate::reconcile::action::{
    Action, AddressChoice, AddressRef, ContainerPlan, GuestPlan, NicPlan,
};
use crate::reconcile::ids::{self, Marker};
use crate::reconcile::observed::Observed;
use crate::reconcile::plan::{Desired, Planner};

/// The DNS domain of a Sector's names.
pub(crate) fn search_domain(sector: &Name) -> String {
    format!("{sector}.orbitlab.internal")
}

/// The controller of `kind: Lxc`.
#[derive(Debug)]
pub(crate) struct InstanceController;

impl Controller for InstanceController {
    fn kind(&self) -> Kind {
        Kind::Lxc
    }

    fn declared(&self, desired: &Desired) -> BTreeSet<Name> {
        desired.instances.keys().cloned().collect()
    }

    /// Instances that a container marker, an IPAM address or a status file
    /// names.
    fn observed(&self, observed: &Observed) -> BTreeSet<Name> {
        let from_containers = observed
            .containers
            .values()
            .filter_map(|c| c.marker.as_ref())
            .filter(|m| m.kind == Kind::Lxc)
            .map(|m| m.name.clone());
        let from_addresses = observed
            .addresses
            .keys()
            .filter_map(|owner| owner.as_str().strip_prefix("lxc/")?.parse().ok());
        let from_statuses = observed
            .statuses
            .iter()
            .filter(|o| o.kind == Kind::Lxc)
            .map(|o| o.name.clone());
        from_containers
            .chain(from_addresses)
            .chain(from_statuses)
            .collect()
    }

    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String> {
        let Some(spec) = planner.desired.instances.get(name) else {
            return Err("the manifest is gone".into());
        };
        planner.instance_steps(name, spec)
    }

    fn teardown(&self, name: &Name, planner: &mut Planner<'_>) -> Vec<Action> {
        planner.instance_teardown(name)
    }

    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String> {
        let object = ObjectRef::new(Kind::Lxc, name);
        let mut out = BTreeMap::new();
        if let Some((vmid, c)) = observed.container(&Marker::object(Kind::Lxc, name)) {
            out.insert("vmid".into(), vmid.to_string());
            out.insert("node".into(), c.node.to_string());
            out.insert(
                "power".into(),
                if c.running { "running" } else { "stopped" }.into(),
            );
            if let Some(domain) = c.config.get("searchdomain") {
                out.insert("fqdn".into(), format!("{name}.{domain}"));
            }
            if let Some(ha) = observed.ha.as_ref().and_then(|ha| ha.get(&vmid)) {
                out.insert(
                    "ha".into(),
                    ha.state.clone().unwrap_or_else(|| "managed".into()),
                );
            }
        } else if let Some((vmid, node)) = observed.homes.get(&Marker::object(Kind::Lxc, name)) {
            // Its node is offline (or it was destroyed by hand): what was
            // last seen stays on record.
            out.insert("vmid".into(), vmid.to_string());
            out.insert("node".into(), node.to_string());
        }
        for (owner, by_pool) in &observed.addresses {
            if held_by(owner, &object) {
                for addr in by_pool.values() {
                    out.insert("address".into(), addr.to_string());
                }
            }
        }
        // What its container holds, as last delivered (versions, serials,
        // fingerprints; never values).
        if let Some((vmid, _)) = observed.container(&Marker::object(Kind::Lxc, name))
            && let Some(delivered) = observed.identities.delivered.get(&vmid)
        {
            for (item, version) in &delivered.holds {
                out.insert(format!("holds/{item}"), version.clone());
            }
        }
        out
    }
}

/// Where an instance's NIC is: its Sector's VNet and subnet.
struct Network {
    vnet: crate::pve::VnetId,
    pool: crate::reconcile::action::PoolRef,
    gateway: Ipv4Addr,
    nameserver: Ipv4Addr,
    mtu: u32,
    storage: String,
}

impl Planner<'_> {
    /// The Sector network `spec` asks for, once it exists; `Ok(None)` (and
    /// the instance waiting) while it is still being made.
    fn instance_network(
        &mut self,
        object: &ObjectRef,
        spec: &LxcSpec,
    ) -> Result<Option<Network>, String> {
        let sector = self.desired.sectors.get(&spec.sector).ok_or_else(|| {
            format!(
                "Sector {} is not declared; create it or correct spec.sector",
                spec.sector
            )
        })?;
        // Not refused while the Sector is blocked: a Sector may be blocked
        // by this very instance (an ingress rule waiting for its address).
        // What the instance needs is the Sector's network, checked below.
        let subnets = sector.effective_subnets();
        let subnet = match &spec.subnet {
            Some(want) => subnets
                .iter()
                .find(|s| &s.name == want)
                .ok_or_else(|| format!("Sector {} has no subnet {want}", spec.sector))?,
            None => subnets.first().ok_or("the Sector has no subnet")?,
        };
        let first = subnets.first().ok_or("the Sector has no subnet")?.cidr;
        let (Some(bp), Some(tag)) = (
            self.backplane.clone(),
            self.observed.tag_of(spec.sector.as_ref()),
        ) else {
            self.wait(
                object.clone(),
                format!("waiting for Sector {}'s network", spec.sector),
            );
            return Ok(None);
        };
        let vnet = ids::sector_vnet(tag);
        let ready = self
            .observed
            .vnets
            .get(&vnet)
            .is_some_and(|v| v.pending.is_none())
            && self
                .observed
                .subnets
                .values()
                .any(|s| s.vnet == vnet && s.cidr == subnet.cidr && s.pending.is_none());
        if !ready {
            self.wait(
                object.clone(),
                format!(
                    "waiting for Sector {}'s VNet {vnet} and subnet {} to be applied",
                    spec.sector, subnet.cidr
                ),
            );
            return Ok(None);
        }
        Ok(Some(Network {
            vnet,
            pool: subnet_pool(&spec.sector, subnet.cidr)?,
            gateway: role_address(subnet.cidr, ApplianceRole::Gateway),
            nameserver: role_address(first, ApplianceRole::Dns),
            mtu: bp.mtu,
            storage: bp.storage,
        }))
    }

    fn instance_steps(&mut self, name: &Name, spec: &LxcSpec) -> Result<Vec<Action>, String> {
        let object = ObjectRef::new(Kind::Lxc, name);
        let marker = Marker::object(Kind::Lxc, name);
        let Some(net) = self.instance_network(&object, spec)? else {
            return Ok(Vec::new());
        };
        let found = self.containers_with(&marker);
        let Some(&(vmid, container)) = found.first() else {
            return self.instance_create(name, spec, &net);
        };
        // A crash between a create and its record may have left two.
        let mut steps: Vec<Action> = found[1..]
            .iter()
            .map(|(extra, c)| Action::DestroyContainer {
                owner: object.clone(),
                vmid: *extra,
                node: c.node.clone(),
                running: c.running,
            })
            .collect();
        // Placement happens once; a node that no longer matches the
        // declared node_selector is said, not ignored.
        if let Some(selector) = &spec.node_selector
            && !selector.matches(&self.desired.node_labels(container.node.as_str()))
        {
            return Err(format!(
                "spec.node_selector: container {vmid} runs on node {}, whose labels do not match {selector}; an instance stays where it was made: delete it and apply it again to move it, or change the selector",
                container.node
            ));
        }
        let have = config::Have::read(&container.config);
        // SSH keys are recorded too, but their change is delivered into the
        // container's authorized_keys (see `deliver.rs`), not refused.
        let changed: Vec<String> = creation_notes(spec)
            .into_iter()
            .filter(|(key, _)| *key != "ssh_keys")
            .filter_map(|(key, want)| {
                let had = have.creation_note(key);
                (had != Some(want.as_str())).then(|| {
                    format!(
                        "spec.{key} is {want}, the container was made with {}",
                        had.unwrap_or("no record of it")
                    )
                })
            })
            .collect();
        if !changed.is_empty() {
            return Err(format!(
                "{}; these are set only when a container is made: delete the instance and apply it again",
                changed.join("; ")
            ));
        }
        let holder = marker.owner();
        let address = match self.observed.address(&holder, &net.pool.id) {
            Some(addr) => addr,
            None => {
                // The container keeps its address; IPAM is told again.
                let current = have
                    .address()
                    .filter(|a| net.pool.cidr.contains(a))
                    .ok_or_else(|| {
                        format!(
                            "container {vmid} is not on subnet {} of Sector {} (net0 is {}); a container cannot move between Sectors or subnets: delete the instance and apply it again",
                            net.pool.cidr,
                            spec.sector,
                            have.net0_text().unwrap_or("missing")
                        )
                    })?;
                self.allocate(
                    &mut steps,
                    &object,
                    &net.pool,
                    &holder,
                    AddressChoice::Fixed(current),
                );
                current
            }
        };
        if let Some(wanted) = spec.address
            && wanted != address
        {
            return Err(format!(
                "the address changed ({address} is in use); an instance keeps its address: delete the instance and apply it again"
            ));
        }
        if have.bridge() != Some(net.vnet.as_str()) {
            return Err(format!(
                "container {vmid} is on {} instead of Sector {}'s VNet {}; a container cannot move between Sectors: delete the instance and apply it again",
                have.bridge().unwrap_or("no bridge"),
                spec.sector,
                net.vnet
            ));
        }
        let nic = NicPlan {
            bridge: net.vnet.clone(),
            address: AddressRef::Known(address),
            prefix: net.pool.cidr.prefix_len(),
            gateway: Some(net.gateway),
            mtu: Some(net.mtu),
        };
        let want = have.wanted(name, spec, &nic, net.nameserver);
        steps.extend(super::config_update(&marker, vmid, container, want));
        match have.disk_gib() {
            Some(gib) if gib < spec.disk => steps.push(Action::ResizeDisk {
                marker: marker.clone(),
                vmid,
                node: container.node.clone(),
                gib: spec.disk,
            }),
            Some(gib) if gib > spec.disk => self.block(
                object.clone(),
                format!(
                    "spec.disk: the root disk is {gib} GiB and cannot shrink to {} GiB; set disk to at least {gib}, or delete the instance and apply it again",
                    spec.disk
                ),
            ),
            _ => {}
        }
        let managed = self.ha_steps(&object, &marker, vmid, spec.ha.as_ref(), &mut steps);
        // While HA manages the container, HA keeps its power state.
        if !managed {
            let step = match (spec.state, container.running) {
                (PowerState::Running, false) => Some(Action::StartContainer {
                    marker: marker.clone(),
                    vmid,
                    node: container.node.clone(),
                }),
                (PowerState::Stopped, true) => Some(Action::StopContainer {
                    marker: marker.clone(),
                    vmid,
                    node: container.node.clone(),
                }),
                _ => None,
            };
            steps.extend(step);
        }
        match self.delivery(name, spec, vmid, container) {
            Ok(step) => steps.extend(step),
            Err(reason) => self.block(object, reason),
        }
        Ok(steps)
    }

    /// The steps that make a missing instance: its address, then its
    /// container on the node placement picks.
    fn instance_create(
        &mut self,
        name: &Name,
        spec: &LxcSpec,
        net: &Network,
    ) -> Result<Vec<Action>, String> {
        let object = ObjectRef::new(Kind::Lxc, name);
        let marker = Marker::object(Kind::Lxc, name);
        if let Some((vmid, node)) = self.observed.homes.get(&marker)
            && !self.observed.online(node)
        {
            self.unavailable(
                object,
                format!(
                    "its container {vmid} is on node {node}, which is offline; {}",
                    super::after_node_loss(spec.ha.is_some())
                ),
            );
            return Ok(Vec::new());
        }
        let public_keys = spec
            .ssh_keys
            .iter()
            .map(|key| {
                self.observed.ssh_public.get(key).cloned().ok_or_else(|| {
                    format!(
                        "spec.ssh_keys: SSH key {key} has no key in the vault; make it with `orbitlab ssh-key create {key}`"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(secret) = &spec.password
            && !self.observed.secrets.contains(secret)
        {
            return Err(format!(
                "spec.password: Secret {secret} has no value in the vault; set one with `orbitlab secret set {secret}`"
            ));
        }
        let holder = marker.owner();
        let mut steps = Vec::new();
        let address = match self.observed.address(&holder, &net.pool.id) {
            Some(addr) => AddressRef::Known(addr),
            None => {
                let choice = match spec.address {
                    Some(addr) => {
                        if let Some((other, _)) = self
                            .observed
                            .addresses
                            .iter()
                            .find(|(_, by_pool)| by_pool.get(&net.pool.id) == Some(&addr))
                        {
                            return Err(format!(
                                "spec.address: {addr} is already held by {other}; choose another address or leave address out"
                            ));
                        }
                        AddressChoice::Fixed(addr)
                    }
                    None => {
                        self.reserve_ordinary_address(&net.pool, &marker)?;
                        AddressChoice::Next
                    }
                };
                self.allocate(&mut steps, &object, &net.pool, &holder, choice);
                AddressRef::Allocated {
                    pool: net.pool.id.clone(),
                    owner: holder,
                }
            }
        };
        let node = self.place(&object, spec)?;
        let Some(node) = node else {
            return Ok(steps);
        };
        steps.push(Action::CreateContainer(Box::new(ContainerPlan {
            marker,
            node,
            hostname: name.to_string(),
            template: spec.template.to_string(),
            storage: net.storage.clone(),
            disk_gib: spec.disk,
            memory_mib: spec.memory,
            cores: u32::from(spec.cores),
            nics: vec![NicPlan {
                bridge: net.vnet.clone(),
                address,
                prefix: net.pool.cidr.prefix_len(),
                gateway: Some(net.gateway),
                mtu: Some(net.mtu),
            }],
            guest: Some(GuestPlan {
                nameserver: net.nameserver,
                searchdomain: search_domain(&spec.sector),
                onboot: spec.onboot,
                start: spec.state == PowerState::Running,
                ssh_public_keys: (!public_keys.is_empty()).then(|| public_keys.join("\n")),
                password: spec.password.as_ref().and_then(|secret| {
                    let s = self.observed.identities.secrets.get(secret)?;
                    Some((secret.clone(), s.path.clone()))
                }),
                creation_notes: creation_notes(spec)
                    .into_iter()
                    .map(|(key, value)| format!("{key}: {value}"))
                    .collect(),
            }),
            appliance: None,
        })));
        Ok(steps)
    }

    /// Removes what is left of an instance no longer declared: its HA
    /// resource, its containers, its address and its status; nothing while
    /// its container's node is offline (the container is still there).
    fn instance_teardown(&mut self, name: &Name) -> Vec<Action> {
        let object = ObjectRef::new(Kind::Lxc, name);
        if let Some(reason) = self.stranded(&object) {
            self.unavailable(object, reason);
            return Vec::new();
        }
        let containers: Vec<_> = self.observed.containers_of(&object).collect();
        let mut steps = Vec::new();
        for (vmid, c, _) in containers {
            if self
                .observed
                .ha
                .as_ref()
                .is_some_and(|ha| ha.contains_key(&vmid))
            {
                steps.push(Action::RemoveHa {
                    owner: object.clone(),
                    vmid,
                });
            }
            steps.push(Action::DestroyContainer {
                owner: object.clone(),
                vmid,
                node: c.node.clone(),
                running: c.running,
            });
        }
        if super::holds_addresses(&object, self.observed) {
            steps.push(Action::ReleaseAddresses {
                owner: object.clone(),
            });
        }
        if self.observed.statuses.contains(&object) {
            steps.push(Action::ForgetStatus(object));
        }
        steps
    }
}

/// What is set only when a container is made (Proxmox keeps no trace of
/// the template, and takes SSH keys and the password only at creation),
/// recorded as `key: value` lines of its description so that a change is
/// recognised and refused instead of silently ignored.
fn creation_notes(spec: &LxcSpec) -> Vec<(&'static str, String)> {
    let names = |names: &[Name]| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    vec![
        ("template", spec.template.to_string()),
        ("ssh_keys", names(&spec.ssh_keys)),
        ("password", names(spec.password.as_slice())),
    ]
}
