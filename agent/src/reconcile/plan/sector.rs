//! Sectors: a VXLAN zone and VNet with the reserved tag, one SDN subnet per
//! Sector subnet, IPAM addresses, and the Sector Gateway and Sector DNS
//! containers, started and configured (`DESIGN.md`, "Sector").

use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use orbitlab_manifests::{Kind, Name, SectorSpec};

use super::backplane::{Backplane, first_host, second_host};
use super::{ObjectKey, Planner};
use crate::placement::rendezvous;
use crate::reconcile::action::{
    Action, AddressRef, ContainerPlan, FixedRole, NicPlan, PoolRef, ZoneConfig,
};
use crate::reconcile::ids::{self, Marker, Role};

/// Tags a Sector VNet may use.
pub const SECTOR_TAGS: std::ops::RangeInclusive<u32> = 1001..=9999;

/// Root disk of the gateway and DNS containers, GiB.
pub(crate) const APPLIANCE_DISK_GIB: u32 = 1;

/// IPAM pool id of one Sector subnet.
pub(crate) fn subnet_pool(sector: &Name, cidr: Ipv4Net) -> PoolRef {
    PoolRef {
        id: format!("sector-{sector}-{}-{}", cidr.network(), cidr.prefix_len()),
        cidr,
    }
}

impl Planner<'_> {
    pub(super) fn sectors(&mut self, backplane: Option<&Result<Backplane, String>>) {
        for (name, spec) in &self.desired.sectors {
            let key: ObjectKey = (Kind::Sector, name.to_string());
            self.plan.declared.insert(key.clone());
            match backplane {
                None => self.block(
                    key,
                    "the cluster is not initialised; run `orbitlab init` first",
                ),
                Some(Err(reason)) => self.block(key, reason.clone()),
                Some(Ok(bp)) => match self.sector_steps(name, spec, bp) {
                    Ok(steps) => self.add(key, steps),
                    Err(reason) => self.block(key, reason),
                },
            }
        }
    }

    fn sector_tag(&mut self, name: &Name) -> Result<(u32, Option<Action>), String> {
        if let Some((tag, _)) = self
            .observed
            .tags
            .iter()
            .find(|(_, s)| s.as_str() == name.as_ref())
        {
            return Ok((*tag, None));
        }
        let used: BTreeSet<u32> = self.observed.used_tags();
        let tag = SECTOR_TAGS
            .clone()
            .find(|t| !used.contains(t) && !self.reserved_tags.contains(t))
            .ok_or_else(|| {
                format!(
                    "all {} VNet tags {}–{} are in use; delete a Sector first",
                    SECTOR_TAGS.end() - SECTOR_TAGS.start() + 1,
                    SECTOR_TAGS.start(),
                    SECTOR_TAGS.end()
                )
            })?;
        self.reserved_tags.insert(tag);
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
        let owner: ObjectKey = (Kind::Sector, name.to_string());
        let gateway = Marker::part(Kind::Sector, name, Role::Gateway);
        if !self.has_address(&gateway.owner(), &bp.pool().id) {
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
        match self.observed.vnets.get(&vnet) {
            Some(v) if v.pending != Some(crate::reconcile::observed::Pending::Deleted) => {
                if v.zone != zone || v.tag != Some(tag) {
                    return Err(format!(
                        "vnet {vnet} exists with zone {} and tag {:?}, not zone {zone} and tag {tag}; it was changed outside OrbitLab — restore it",
                        v.zone, v.tag
                    ));
                }
            }
            _ => steps.push(Action::CreateVnet {
                owner: owner.clone(),
                id: vnet.clone(),
                zone: zone.clone(),
                tag,
                alias: Marker::object(Kind::Sector, name).to_string(),
            }),
        }
        let subnets = spec.effective_subnets();
        for subnet in subnets.iter() {
            steps.extend(self.subnet_steps(
                &owner,
                &vnet,
                subnet.cidr,
                first_host(subnet.cidr),
                false,
            ));
        }
        // Subnets removed from the manifest.
        for (id, s) in &self.observed.subnets {
            if s.vnet == vnet
                && s.pending != Some(crate::reconcile::observed::Pending::Deleted)
                && !subnets.iter().any(|want| want.cidr == s.cidr)
            {
                steps.push(Action::DeleteSubnet {
                    owner: owner.clone(),
                    vnet: vnet.clone(),
                    id: id.clone(),
                });
            }
        }

        let dns = Marker::part(Kind::Sector, name, Role::Dns);
        let first = subnets
            .first()
            .ok_or("a Sector needs at least one subnet")?
            .cidr;
        for (i, subnet) in subnets.iter().enumerate() {
            let pool = subnet_pool(name, subnet.cidr);
            self.allocate(
                &mut steps,
                &owner,
                &pool,
                &gateway,
                Some(FixedRole::Gateway),
            );
            if i == 0 {
                self.allocate(&mut steps, &owner, &pool, &dns, Some(FixedRole::Dns));
            }
        }
        self.allocate(&mut steps, &owner, &bp.pool(), &gateway, None);

        let backplane_address = match self.address(&gateway.owner(), &bp.pool().id) {
            Some(addr) => AddressRef::Known(addr),
            None => AddressRef::Allocated {
                pool: bp.pool().id,
                owner: gateway.owner(),
            },
        };
        let nodes: Vec<&str> = bp.nodes.iter().map(String::as_str).collect();
        let appliance =
            |marker: &Marker, role: Role, template: &str, memory_mib: u32, nics: Vec<NicPlan>| {
                ContainerPlan {
                    marker: marker.clone(),
                    node: rendezvous(&marker.owner(), nodes.iter().copied())
                        .unwrap_or_default()
                        .to_owned(),
                    hostname: role.hostname(tag),
                    template: template.to_owned(),
                    storage: bp.storage.clone(),
                    disk_gib: APPLIANCE_DISK_GIB,
                    memory_mib,
                    cores: 1,
                    nics,
                }
            };
        let gateway_plan = appliance(
            &gateway,
            Role::Gateway,
            &self.desired.gateway_template,
            self.desired.gateway_memory_mib,
            vec![
                NicPlan {
                    name: "eth0".into(),
                    bridge: vnet.clone(),
                    address: AddressRef::Known(first_host(first)),
                    prefix: first.prefix_len(),
                    gateway: None,
                },
                NicPlan {
                    name: "eth1".into(),
                    bridge: ids::BACKPLANE_VNET.into(),
                    address: backplane_address,
                    prefix: bp.cidr.prefix_len(),
                    gateway: Some(bp.gateway),
                },
            ],
        );
        let dns_plan = appliance(
            &dns,
            Role::Dns,
            &self.desired.dns_template,
            self.desired.dns_memory_mib,
            vec![NicPlan {
                name: "eth0".into(),
                bridge: vnet.clone(),
                address: AddressRef::Known(second_host(first)),
                prefix: first.prefix_len(),
                gateway: Some(first_host(first)),
            }],
        );
        for plan in [gateway_plan, dns_plan] {
            steps.extend(self.container_steps(&owner, plan));
        }
        if let Some(configure) = self.configure_sector(name, spec, tag, bp) {
            steps.extend(configure);
        }
        // A declared ingress that forwards nowhere keeps the Sector from
        // being Ready; the rules that do have a target are still pushed.
        if let Some(reason) = self.ingress_without_target(name, spec) {
            self.block(owner.clone(), reason);
        }
        Ok(steps)
    }

    /// Counts one more ordinary address taken from `pool`, refusing when
    /// the pool has none left (so nothing is created for an object that
    /// could not be given its address).
    fn reserve_ordinary_address(&mut self, pool: &PoolRef, holder: &Marker) -> Result<(), String> {
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

    fn allocate(
        &self,
        steps: &mut Vec<Action>,
        owner: &ObjectKey,
        pool: &PoolRef,
        holder: &Marker,
        fixed: Option<FixedRole>,
    ) {
        if !self.has_address(&holder.owner(), &pool.id) {
            steps.push(Action::Allocate {
                owner: owner.clone(),
                pool: pool.clone(),
                holder: holder.owner(),
                fixed,
            });
        }
    }

    /// Create the container if no container carries its marker, destroy
    /// duplicates a crash may have left, start it if stopped.
    fn container_steps(&self, owner: &ObjectKey, plan: ContainerPlan) -> Vec<Action> {
        let mut found = self
            .observed
            .containers
            .iter()
            .filter(|(_, c)| c.marker.as_ref() == Some(&plan.marker));
        let Some((vmid, keep)) = found.next() else {
            return vec![Action::CreateContainer(Box::new(plan))];
        };
        let mut steps: Vec<Action> = found
            .map(|(extra, c)| Action::DestroyContainer {
                owner: owner.clone(),
                vmid: *extra,
                node: c.node.clone(),
                running: c.running,
            })
            .collect();
        if !keep.running {
            steps.push(Action::StartContainer {
                marker: plan.marker,
                vmid: *vmid,
                node: keep.node.clone(),
            });
        }
        steps
    }
}
