//! The Backplane: the EVPN controller, zone, VNet and subnet that every
//! Sector Gateway's eth1 joins (`DESIGN.md`, "Backplane").

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::{Kind, Name};

use super::{ObjectKey, Planner};
use crate::reconcile::action::{Action, FixedRole, PoolRef, ZoneConfig};
use crate::reconcile::ids::{self, Marker};
use crate::reconcile::observed::Pending;

/// EVPN's overhead on top of the uplink MTU.
const EVPN_OVERHEAD: u32 = 50;

/// IPAM pool id of the Backplane.
pub(crate) const BACKPLANE_POOL: &str = "backplane";

/// What Sectors need to know about the Backplane.
#[derive(Debug, Clone)]
pub(super) struct Backplane {
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    pub peers: Vec<Ipv4Addr>,
    pub nodes: Vec<String>,
    pub storage: String,
}

impl Backplane {
    pub(super) fn pool(&self) -> PoolRef {
        PoolRef {
            id: BACKPLANE_POOL.into(),
            cidr: self.cidr,
        }
    }
}

impl Planner<'_> {
    /// Plans the Backplane; `Err` says why Sectors must wait.
    pub(super) fn backplane(&mut self) -> Option<Result<Backplane, String>> {
        let (name, spec) = self.desired.cluster.as_ref()?;
        let key: ObjectKey = (Kind::Cluster, name.to_string());
        self.plan.declared.insert(key.clone());
        match self.backplane_steps(name, spec) {
            Ok((facts, steps)) => {
                self.add(key.clone(), steps);
                Some(match self.plan.blocked.get(&key) {
                    Some(reason) => Err(format!("the Backplane is blocked: {reason}")),
                    None => Ok(facts),
                })
            }
            Err(reason) => {
                self.block(key, reason.clone());
                Some(Err(format!("the Backplane is blocked: {reason}")))
            }
        }
    }

    fn backplane_steps(
        &self,
        name: &Name,
        spec: &orbitlab_manifests::ClusterSpec,
    ) -> Result<(Backplane, Vec<Action>), String> {
        let bp = &spec.backplane;
        let uplinks = self.observed.uplinks();
        let offline_or_unknown: Vec<&str> = self
            .observed
            .nodes
            .iter()
            .filter(|(n, node)| node.online && !uplinks.contains_key(n.as_str()))
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
        let peers: Vec<Ipv4Addr> = uplinks.values().map(|u| u.address).collect();
        let nodes: Vec<String> = uplinks.keys().map(|n| n.to_string()).collect();
        let mtu = uplinks.values().map(|u| u.mtu).min().unwrap_or(1500) - EVPN_OVERHEAD;
        let gateway = first_host(bp.cidr);
        let owner: ObjectKey = (Kind::Cluster, name.to_string());
        let mut steps = Vec::new();

        let mut sorted_peers = peers.clone();
        sorted_peers.sort();
        match self.observed.controllers.get(ids::CONTROLLER) {
            Some(c) if c.pending != Some(Pending::Deleted) => {
                let mut have = c.peers.clone();
                have.sort();
                if have != sorted_peers {
                    steps.push(Action::UpdateController {
                        id: ids::CONTROLLER.into(),
                        peers: peers.clone(),
                    });
                }
            }
            _ => steps.push(Action::CreateController {
                id: ids::CONTROLLER.into(),
                asn: bp.asn,
                peers: peers.clone(),
            }),
        }

        let zone = ZoneConfig::Evpn {
            controller: ids::CONTROLLER.into(),
            vrf_vxlan: bp.vrf_vxlan,
            exitnodes: nodes.clone(),
            mtu,
        };
        steps.extend(self.zone_steps(&owner, ids::BACKPLANE_ZONE, zone));

        let alias = Marker::object(Kind::Cluster, name).to_string();
        match self.observed.vnets.get(ids::BACKPLANE_VNET) {
            Some(v) if v.pending != Some(Pending::Deleted) => {
                if v.tag != Some(bp.vnet_tag) || v.zone != ids::BACKPLANE_ZONE {
                    return Err(format!(
                        "vnet {} exists with zone {} and tag {:?}, not zone {} and tag {}; it was changed outside OrbitLab — restore it",
                        ids::BACKPLANE_VNET,
                        v.zone,
                        v.tag,
                        ids::BACKPLANE_ZONE,
                        bp.vnet_tag
                    ));
                }
            }
            _ => steps.push(Action::CreateVnet {
                owner: owner.clone(),
                id: ids::BACKPLANE_VNET.into(),
                zone: ids::BACKPLANE_ZONE.into(),
                tag: bp.vnet_tag,
                alias,
            }),
        }
        if let Some((id, other)) = self.observed.subnets.iter().find(|(_, s)| {
            s.vnet == ids::BACKPLANE_VNET
                && s.cidr != bp.cidr
                && s.pending != Some(Pending::Deleted)
        }) {
            return Err(format!(
                "the Backplane VNet holds subnet {id} ({}), not {}; the Backplane CIDR cannot change after init",
                other.cidr, bp.cidr
            ));
        }
        steps.extend(self.subnet_steps(&owner, ids::BACKPLANE_VNET, bp.cidr, gateway, true));

        let holder = format!("cluster/{name}/gateway");
        if !self.has_address(&holder, BACKPLANE_POOL) {
            steps.push(Action::Allocate {
                owner: owner.clone(),
                pool: PoolRef {
                    id: BACKPLANE_POOL.into(),
                    cidr: bp.cidr,
                },
                holder,
                fixed: Some(FixedRole::Gateway),
            });
        }
        let facts = Backplane {
            cidr: bp.cidr,
            gateway,
            mtu,
            peers,
            nodes,
            storage: spec.defaults.storage.to_string(),
        };
        Ok((facts, steps))
    }

    /// Create or update a zone so it matches `config`.
    pub(super) fn zone_steps(
        &self,
        owner: &ObjectKey,
        id: &str,
        config: ZoneConfig,
    ) -> Vec<Action> {
        let Some(zone) = self
            .observed
            .zones
            .get(id)
            .filter(|z| z.pending != Some(Pending::Deleted))
        else {
            return vec![Action::CreateZone {
                owner: owner.clone(),
                id: id.into(),
                config,
            }];
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let matches = match &config {
            ZoneConfig::Evpn {
                controller,
                vrf_vxlan,
                exitnodes,
                mtu,
            } => {
                zone.kind == "evpn"
                    && zone.controller.as_deref() == Some(controller.as_str())
                    && zone.vrf_vxlan == Some(*vrf_vxlan)
                    && sorted(zone.exitnodes.clone()) == sorted(exitnodes.clone())
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
                id: id.into(),
                config,
            }]
        }
    }

    /// Create the subnet `cidr` in `vnet` unless it exists.
    pub(super) fn subnet_steps(
        &self,
        owner: &ObjectKey,
        vnet: &str,
        cidr: Ipv4Net,
        gateway: Ipv4Addr,
        snat: bool,
    ) -> Vec<Action> {
        let exists = self
            .observed
            .subnets
            .values()
            .any(|s| s.vnet == vnet && s.cidr == cidr && s.pending != Some(Pending::Deleted));
        if exists {
            Vec::new()
        } else {
            vec![Action::CreateSubnet {
                owner: owner.clone(),
                vnet: vnet.into(),
                cidr,
                gateway,
                snat,
            }]
        }
    }

    pub(super) fn has_address(&self, holder: &str, pool: &str) -> bool {
        self.observed
            .addresses
            .get(holder)
            .is_some_and(|by_pool| by_pool.contains_key(pool))
    }

    pub(super) fn address(&self, holder: &str, pool: &str) -> Option<Ipv4Addr> {
        self.observed
            .addresses
            .get(holder)
            .and_then(|by_pool| by_pool.get(pool))
            .copied()
    }
}

/// `.1` of a network: the gateway by OrbitLab's convention.
pub(crate) fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// `.2` of a network: the Sector DNS.
pub(crate) fn second_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 2)
}
