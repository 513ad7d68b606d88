//! The Cluster's controller: the Backplane — the EVPN controller, zone,
//! VNet and subnet that every Sector Gateway's eth1 joins (`DESIGN.md`,
//! "Backplane"). It publishes what later kinds need to know as
//! [`Backplane`] (on the [`Planner`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::{ApplianceRole, ClusterSpec, Kind, Name, NodeName};

use super::{Controller, describe_parts, live};
use crate::ipam::{Owner, PoolId, role_address};
use crate::reconcile::ObjectRef;
use crate::reconcile::action::{Action, AddressChoice, PoolRef, ZoneConfig};
use crate::reconcile::ids::{self, Marker};
use crate::reconcile::observed::{Observed, Uplink};
use crate::reconcile::plan::{Desired, Planner};

/// EVPN's overhead on top of the uplink MTU.
const EVPN_OVERHEAD: u32 = 50;

/// What Sectors need to know about the Backplane.
#[derive(Debug, Clone)]
pub(crate) struct Backplane {
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    /// Every member's uplink address (EVPN and VXLAN peers).
    pub peers: Vec<Ipv4Addr>,
    /// Online nodes with a known uplink: where new containers may go.
    pub online: Vec<NodeName>,
    pub storage: String,
}

impl Backplane {
    pub(crate) fn pool(&self) -> PoolRef {
        PoolRef {
            id: PoolId::backplane(),
            cidr: self.cidr,
        }
    }
}

/// The controller of `kind: Cluster` (one object, written by `orbitlab init`).
#[derive(Debug)]
pub(crate) struct ClusterController;

impl Controller for ClusterController {
    fn kind(&self) -> Kind {
        Kind::Cluster
    }

    fn declared(&self, desired: &Desired) -> BTreeSet<Name> {
        desired
            .cluster
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The cluster is never torn down by OrbitLab: it is only declared.
    fn observed(&self, _: &Observed) -> BTreeSet<Name> {
        BTreeSet::new()
    }

    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String> {
        let Some((_, spec)) = planner.desired.cluster.as_ref() else {
            return Err("the cluster manifest is gone".into());
        };
        let (facts, steps) = planner.backplane_steps(name, spec)?;
        planner.backplane = Some(facts);
        Ok(steps)
    }

    fn teardown(&self, _: &Name, _: &mut Planner<'_>) -> Vec<Action> {
        Vec::new()
    }

    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String> {
        describe_parts(&ObjectRef::new(Kind::Cluster, name), observed)
    }
}

/// The IPAM owner of the Backplane's gateway address (Proxmox's EVPN
/// gateway, `.1`).
fn gateway_holder(cluster: &Name) -> Owner {
    Marker::part(Kind::Cluster, cluster, ApplianceRole::Gateway).owner()
}

impl Planner<'_> {
    fn backplane_steps(
        &self,
        name: &Name,
        spec: &ClusterSpec,
    ) -> Result<(Backplane, Vec<Action>), String> {
        let bp = &spec.backplane;
        let uplinks = self.observed.uplinks();
        let offline_or_unknown: Vec<&str> = self
            .observed
            .nodes
            .iter()
            .filter(|(n, node)| node.online && !uplinks.contains_key(n))
            .map(|(n, _)| n.as_str())
            .collect();
        if uplinks.is_empty() || !offline_or_unknown.is_empty() {
            return Err(format!(
                "the vmbr0 address and MTU of {} are not known; check that vmbr0 has an IPv4 address",
                if offline_or_unknown.is_empty() {
                    "any node".to_owned()
                } else {
                    offline_or_unknown.join(", ")
                }
            ));
        }
        if let Some((node, up)) = uplinks.iter().find(|(_, u)| {
            u.network.contains(&bp.cidr.network()) || bp.cidr.contains(&u.network.network())
        }) {
            return Err(format!(
                "the Backplane CIDR {} overlaps {node}'s network {} on vmbr0; choose another with `orbitlab init --backplane-cidr`",
                bp.cidr, up.network
            ));
        }
        if let Some((id, _)) = self
            .observed
            .controllers
            .iter()
            .find(|(id, c)| c.kind == "evpn" && id.as_str() != ids::CONTROLLER)
        {
            return Err(format!(
                "an EVPN controller {id:?} exists that OrbitLab did not create; OrbitLab needs the cluster's only EVPN controller — remove it or ask for help before `orbitlab init`"
            ));
        }
        // Peers and exit nodes follow membership: an offline member keeps
        // its place from its recorded uplink, so a reboot rewrites nothing.
        let members = self.observed.member_uplinks();
        let peers: Vec<Ipv4Addr> = members.values().map(|u| u.address).collect();
        let nodes: Vec<NodeName> = members.keys().map(|n| (*n).clone()).collect();
        let online: Vec<NodeName> = uplinks.keys().map(|n| (*n).clone()).collect();
        let mtu = members.values().map(|u| u.mtu).min().unwrap_or(1500) - EVPN_OVERHEAD;
        let mut steps = Vec::new();
        // The record follows what is seen: online nodes' uplinks as read,
        // offline members' as recorded, former members dropped.
        let record: BTreeMap<NodeName, Uplink> =
            members.iter().map(|(n, u)| ((*n).clone(), *u)).collect();
        if record != self.observed.recorded_uplinks {
            steps.push(Action::RecordUplinks(record));
        }
        let gateway = role_address(bp.cidr, ApplianceRole::Gateway);
        let owner = ObjectRef::new(Kind::Cluster, name);

        let mut sorted_peers = peers.clone();
        sorted_peers.sort();
        match self.observed.controllers.get(ids::CONTROLLER) {
            Some(c) if live(c.pending) => {
                let mut have = c.peers.clone();
                have.sort();
                if have != sorted_peers {
                    steps.push(Action::UpdateController {
                        peers: peers.clone(),
                    });
                }
            }
            _ => steps.push(Action::CreateController {
                asn: bp.asn,
                peers: peers.clone(),
            }),
        }

        let primary = match &bp.primary_exit_node {
            Some(chosen) if nodes.contains(chosen) => chosen.clone(),
            Some(chosen) => {
                return Err(format!(
                    "spec.backplane.primary_exit_node: {chosen} is not one of the Backplane's nodes ({})",
                    nodes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            // The first in name order: the same on every agent, and it
            // moves only when that node leaves the cluster.
            None => nodes
                .iter()
                .min()
                .cloned()
                .ok_or("the Backplane has no node")?,
        };
        let zone = ZoneConfig::Evpn {
            vrf_vxlan: bp.vrf_vxlan,
            exitnodes: nodes.clone(),
            primary,
            mtu,
        };
        let (zone_id, vnet_id) = (ids::backplane_zone(), ids::backplane_vnet());
        steps.extend(self.zone_steps(&owner, &zone_id, zone));
        steps.extend(self.vnet_steps(&owner, &zone_id, &vnet_id, bp.vnet_tag)?);
        if let Some((id, other)) = self
            .observed
            .subnets
            .iter()
            .find(|(_, s)| s.vnet == vnet_id && s.cidr != bp.cidr && live(s.pending))
        {
            return Err(format!(
                "the Backplane VNet holds subnet {id} ({}), not {}; the Backplane CIDR cannot change after init",
                other.cidr, bp.cidr
            ));
        }
        steps.extend(self.subnet_steps(&owner, (&zone_id, &vnet_id), bp.cidr, gateway, true));
        let pool = PoolRef {
            id: PoolId::backplane(),
            cidr: bp.cidr,
        };
        self.allocate(
            &mut steps,
            &owner,
            &pool,
            &gateway_holder(name),
            AddressChoice::Role(ApplianceRole::Gateway),
        );
        let facts = Backplane {
            cidr: bp.cidr,
            gateway,
            mtu,
            peers,
            online,
            storage: spec.defaults.storage.to_string(),
        };
        Ok((facts, steps))
    }
}
