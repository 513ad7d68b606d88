//! Sectors: a VXLAN zone and VNet with the reserved tag, one SDN subnet per
//! Sector subnet, IPAM addresses, and the Sector Gateway and Sector DNS
//! containers, started, configured and answering their health probe as
//! healthy (`DESIGN.md`, "Sector"; [`health`]).

mod configure;
mod health;
mod memory;
mod teardown;
mod upgrade;

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use orbitlab_manifests::{ApplianceRole, Kind, Name, SectorSpec};

use super::cluster::Backplane;
use super::{Controller, describe_parts, live, part};
use crate::ipam::role_address;
use crate::ipam::{MAX_POOL_ID_LEN, PoolId};
use crate::placement::rendezvous;
use crate::reconcile::ObjectRef;
use crate::reconcile::action::{
    Action, AddressChoice, AddressRef, ApplianceBuild, ContainerPlan, NicPlan, PoolRef, ZoneConfig,
};
use crate::reconcile::ids::{self, Marker, SectorTag};
use crate::reconcile::observed::Observed;
use crate::reconcile::plan::{Desired, Planner};

/// Root disk of the gateway and DNS containers, GiB.
pub(crate) const APPLIANCE_DISK_GIB: u32 = 1;

/// IPAM pool of one Sector subnet: `sector-<name>-<network>-<prefix>`.
/// `Err` (the Sector is blocked) when a long name makes the id longer than
/// IPAM allows.
pub(crate) fn subnet_pool(sector: &Name, cidr: Ipv4Net) -> Result<PoolRef, String> {
    let id = format!("sector-{sector}-{}-{}", cidr.network(), cidr.prefix_len());
    let id = id.parse::<PoolId>().map_err(|_| {
        format!(
            "the IPAM pool id {id:?} of subnet {cidr} is longer than the {MAX_POOL_ID_LEN} characters IPAM allows; give the Sector a name of at most {} characters",
            MAX_POOL_ID_LEN.saturating_sub(id.len() - sector.as_ref().len())
        )
    })?;
    Ok(PoolRef { id, cidr })
}

/// The controller of `kind: Sector`.
#[derive(Debug)]
pub(crate) struct SectorController;

impl Controller for SectorController {
    fn kind(&self) -> Kind {
        Kind::Sector
    }

    fn declared(&self, desired: &Desired) -> BTreeSet<Name> {
        desired.sectors.keys().cloned().collect()
    }

    /// Sectors that OrbitLab's tag table, container markers, IPAM owners or
    /// status files mention.
    fn observed(&self, observed: &Observed) -> BTreeSet<Name> {
        let from_tags = observed.tags.iter().filter_map(|(tag, n)| {
            n.parse()
                .map_err(|e| {
                    tracing::warn!(tag, error = %e, "the VNet tag table names no valid Sector; the reservation is kept until the table is repaired by hand")
                })
                .ok()
        });
        let from_containers = observed
            .containers
            .values()
            .filter_map(|c| c.marker.as_ref())
            .filter(|m| m.kind == Kind::Sector)
            .map(|m| m.name.clone());
        let from_addresses = observed.addresses.keys().filter_map(|owner| {
            owner
                .as_str()
                .strip_prefix("sector/")?
                .split('/')
                .next()?
                .parse()
                .ok()
        });
        let from_statuses = observed
            .statuses
            .iter()
            .filter(|o| o.kind == Kind::Sector)
            .map(|o| o.name.clone());
        from_tags
            .chain(from_containers)
            .chain(from_addresses)
            .chain(from_statuses)
            .collect()
    }

    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String> {
        let Some(spec) = planner.desired.sectors.get(name) else {
            return Err("the manifest is gone".into());
        };
        let Some((cluster, _)) = &planner.desired.cluster else {
            return Err("the cluster is not initialised; run `orbitlab init` first".into());
        };
        if let Some(reason) = planner.blocked(&ObjectRef::new(Kind::Cluster, cluster)) {
            return Err(format!("the Backplane is blocked: {reason}"));
        }
        let Some(bp) = planner.backplane.clone() else {
            return Err("the Backplane is not planned yet".into());
        };
        planner.sector_steps(name, spec, &bp)
    }

    fn teardown(&self, name: &Name, planner: &mut Planner<'_>) -> Vec<Action> {
        planner.sector_teardown(name)
    }

    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String> {
        let mut out = describe_parts(&ObjectRef::new(Kind::Sector, name), observed);
        out.extend(upgrade::describe(name, observed));
        if let Some(tag) = observed.tag_of(name.as_ref()) {
            out.insert("vnet/tag".into(), tag.to_string());
            out.insert("vnet/id".into(), ids::sector_vnet(tag).to_string());
            out.insert("zone/id".into(), ids::sector_zone(tag).to_string());
        }
        out.extend(health::outputs(
            &ObjectRef::new(Kind::Sector, name),
            observed,
        ));
        out
    }
}

impl Planner<'_> {
    fn sector_tag(&mut self, name: &Name) -> Result<(SectorTag, Option<Action>), String> {
        if let Some(tag) = self.observed.tag_of(name.as_ref()) {
            return Ok((tag, None));
        }
        let used: BTreeSet<u32> = self.observed.used_tags();
        let range = SectorTag::RANGE;
        let tag = SectorTag::all()
            .find(|t| !used.contains(&t.get()) && !self.reserved_tags.contains(&t.get()))
            .ok_or_else(|| {
                format!(
                    "all {} VNet tags {}–{} are in use; delete a Sector first",
                    range.end() - range.start() + 1,
                    range.start(),
                    range.end()
                )
            })?;
        self.reserved_tags.insert(tag.get());
        Ok((
            tag,
            Some(Action::ReserveTag {
                sector: name.clone(),
                tag,
            }),
        ))
    }

    fn sector_steps(
        &mut self,
        name: &Name,
        spec: &SectorSpec,
        bp: &Backplane,
    ) -> Result<Vec<Action>, String> {
        let owner = ObjectRef::new(Kind::Sector, name);
        let gateway = part(&owner, ApplianceRole::Gateway);
        if self
            .observed
            .address(&gateway.owner(), &bp.pool().id)
            .is_none()
        {
            self.reserve_ordinary_address(&bp.pool(), &gateway)?;
        }
        let (tag, reserve) = self.sector_tag(name)?;
        let mut steps: Vec<Action> = reserve.into_iter().collect();
        let (zone, vnet) = (ids::sector_zone(tag), ids::sector_vnet(tag));
        steps.extend(self.zone_steps(
            &owner,
            &zone,
            ZoneConfig::Vxlan {
                peers: bp.peers.clone(),
                mtu: bp.mtu,
            },
        ));
        steps.extend(self.vnet_steps(&owner, &zone, &vnet, tag.get())?);
        let subnets = spec.effective_subnets();
        for subnet in subnets.iter() {
            steps.extend(self.subnet_steps(
                &owner,
                (&zone, &vnet),
                subnet.cidr,
                role_address(subnet.cidr, ApplianceRole::Gateway),
                false,
            ));
        }
        // Subnets removed from the manifest.
        for (id, s) in &self.observed.subnets {
            if s.vnet == vnet && live(s.pending) && !subnets.iter().any(|want| want.cidr == s.cidr)
            {
                steps.push(Action::DeleteSubnet {
                    owner: owner.clone(),
                    vnet: vnet.clone(),
                    id: id.clone(),
                });
            }
        }

        let dns = part(&owner, ApplianceRole::Dns);
        let first = subnets
            .first()
            .ok_or("a Sector needs at least one subnet")?
            .cidr;
        for (i, subnet) in subnets.iter().enumerate() {
            let pool = subnet_pool(name, subnet.cidr)?;
            self.allocate(
                &mut steps,
                &owner,
                &pool,
                &gateway.owner(),
                AddressChoice::Role(ApplianceRole::Gateway),
            );
            if i == 0 {
                self.allocate(
                    &mut steps,
                    &owner,
                    &pool,
                    &dns.owner(),
                    AddressChoice::Role(ApplianceRole::Dns),
                );
            }
        }
        self.allocate(
            &mut steps,
            &owner,
            &bp.pool(),
            &gateway.owner(),
            AddressChoice::Next,
        );

        let backplane_address = match self.observed.address(&gateway.owner(), &bp.pool().id) {
            Some(addr) => AddressRef::Known(addr),
            None => AddressRef::Allocated {
                pool: bp.pool().id,
                owner: gateway.owner(),
            },
        };
        // The container playing `role`, on the node rendezvous hashing
        // picks for it among the Backplane's nodes.
        let appliance =
            |role: ApplianceRole, nics: Vec<NicPlan>| -> Result<ContainerPlan, String> {
                let marker = part(&owner, role);
                let choice = self.desired.appliance(role);
                let node = rendezvous(
                    marker.owner().as_str(),
                    bp.online.iter().map(|n| n.as_str()),
                )
                .and_then(|chosen| bp.online.iter().find(|n| n.as_str() == chosen))
                .ok_or("no online node has a known uplink to place the container on")?;
                Ok(ContainerPlan {
                    marker,
                    node: node.clone(),
                    hostname: ids::appliance_hostname(role, tag),
                    template: choice.template.clone(),
                    storage: bp.storage.clone(),
                    disk_gib: APPLIANCE_DISK_GIB,
                    memory_mib: choice.memory_mib,
                    cores: 1,
                    nics,
                    guest: None,
                    appliance: Some(ApplianceBuild {
                        version: choice.version().to_owned(),
                        replaces: None,
                    }),
                })
            };
        let gateway_plan = appliance(
            ApplianceRole::Gateway,
            vec![
                NicPlan {
                    bridge: vnet.clone(),
                    address: AddressRef::Known(role_address(first, ApplianceRole::Gateway)),
                    prefix: first.prefix_len(),
                    gateway: None,
                    mtu: None,
                },
                NicPlan {
                    bridge: ids::backplane_vnet(),
                    address: backplane_address,
                    prefix: bp.cidr.prefix_len(),
                    gateway: Some(bp.gateway),
                    mtu: None,
                },
            ],
        )?;
        let dns_plan = appliance(
            ApplianceRole::Dns,
            vec![NicPlan {
                bridge: vnet.clone(),
                address: AddressRef::Known(role_address(first, ApplianceRole::Dns)),
                prefix: first.prefix_len(),
                gateway: Some(role_address(first, ApplianceRole::Gateway)),
                mtu: None,
            }],
        )?;
        // A container of another appliance version is replaced (upgrade.rs).
        let upgrade = self.sector_upgrade(name, spec, [&gateway_plan, &dns_plan], &bp.pool().id);
        for plan in [gateway_plan, dns_plan] {
            if upgrade.handles(plan.marker.role) {
                continue;
            }
            // A container is made only where its template is: on another
            // node it would fail, and placing it elsewhere would move it.
            if let Some(reason) = self.template_wait(&plan) {
                self.wait(owner.clone(), reason);
                continue;
            }
            // Its Appliance's memory, set in place (memory.rs).
            if let Some(&(vmid, c)) = self.containers_with(&plan.marker).first() {
                steps.extend(self.appliance_memory(&plan.marker, vmid, c));
            }
            steps.extend(self.container_steps(&owner, plan, spec.ha.as_ref()));
        }
        // Configuration that cannot be rendered blocks the Sector; its other
        // steps (a stopped container started, a duplicate removed) still run.
        let configure = match &upgrade.view {
            Some(view) => self.seeing(view, |p| p.configure_sector(name, spec, tag, bp)),
            None => self.configure_sector(name, spec, tag, bp),
        };
        match configure {
            Ok(configure) => {
                // Mid-upgrade the Sector has the upgrade's steps left; its
                // health is judged once the new containers serve.
                if upgrade.view.is_none() {
                    self.appliance_health(&owner, &configure);
                }
                steps.extend(upgrade.finish(Some(configure)));
            }
            Err(reason) => {
                steps.extend(upgrade.finish(None));
                self.block(owner.clone(), reason);
            }
        }
        // A declared ingress that forwards nowhere keeps the Sector from
        // being Ready; the rules that do have a target are still pushed.
        if let Some(reason) = self.ingress_without_target(name, spec) {
            self.block(owner.clone(), reason);
        } else if let Some(reason) = self.ingress_waiting(name, spec) {
            self.wait(owner.clone(), reason);
        }
        Ok(steps)
    }

    /// Why the appliance container of `plan` cannot be made yet: none
    /// carries its marker (and none is on an offline node), and the
    /// storage of its node was read and lacks its template. `None` when
    /// nothing holds it up (a storage not read is assumed to have it).
    fn template_wait(&self, plan: &ContainerPlan) -> Option<String> {
        let away = self
            .observed
            .homes
            .get(&plan.marker)
            .is_some_and(|(_, node)| !self.observed.online(node));
        if !self.containers_with(&plan.marker).is_empty()
            || away
            || self.observed.appliance.has(&plan.node, &plan.template) != Some(false)
        {
            return None;
        }
        let role = plan.marker.role?;
        let choice = self.desired.appliance(role);
        let fix = match &choice.manifest {
            Some(m) => format!(
                "Appliance {} puts it there (`orbitlab get /appliances/{}` shows its progress)",
                m.name, m.name
            ),
            None => {
                let (storage, path) = plan.template.split_once(':').unwrap_or_default();
                format!(
                    "download it there (`pveam download {storage} {}` on node {}), or declare an Appliance for the {} role",
                    path.rsplit('/').next().unwrap_or(path),
                    plan.node,
                    role.as_str()
                )
            }
        };
        Some(format!(
            "the {} container is made on node {}, whose storage lacks its template {}; {fix}",
            role.as_str(),
            plan.node,
            plan.template
        ))
    }

    /// Counts one more ordinary address taken from `pool`, refusing when
    /// the pool has none left (so nothing is created for an object that
    /// could not be given its address).
    pub(in crate::reconcile::controllers) fn reserve_ordinary_address(
        &mut self,
        pool: &PoolRef,
        holder: &Marker,
    ) -> Result<(), String> {
        let size = 1u32 << (32 - pool.cidr.prefix_len());
        // Network, broadcast, .1, .2 and the reserved .3-.9 are never handed out.
        let allocatable = size.saturating_sub(2 + 2 + crate::ipam::RESERVED_OFFSETS.count() as u32);
        let network = u32::from(pool.cidr.network());
        let in_use = self
            .observed
            .addresses
            .values()
            .filter_map(|by_pool| by_pool.get(&pool.id))
            .filter(|addr| u32::from(**addr) - network > 2)
            .count() as u32;
        let planned = self.planned_addresses.entry(pool.id.clone()).or_default();
        if in_use + *planned >= allocatable {
            return Err(format!(
                "IPAM pool {} ({}) is exhausted: {in_use} of its {allocatable} addresses are in use, none is left for {}; delete a Sector or re-create the cluster with a larger Backplane",
                pool.id,
                pool.cidr,
                holder.owner()
            ));
        }
        *planned += 1;
        Ok(())
    }
}
