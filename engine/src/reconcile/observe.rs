//! Gathering an [`Observed`] snapshot: Proxmox through the [`Pve`] API,
//! OrbitLab's records through the store. Reads only.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::{Kind, NodeName};

use super::ObjectRef;
use super::ReconcileError;
use super::ids::{GUEST_TAG, Marker};
use super::observed::{
    ContainerObs, ControllerObs, NodeObs, Observed, Pending, SubnetObs, Uplink, VnetObs, ZoneObs,
};
use super::tags;
use crate::ipam::{Owner, PoolId};
use crate::pve::{GuestState, PendingState, Pve, SdnItem, SubnetId, Vmid, VnetId, ZoneId};
use crate::store::Store;

/// Takes a snapshot. `uplink` is the bridge whose address and MTU count
/// (the cluster default, `vmbr0`).
pub fn observe(pve: &dyn Pve, store: &Store, uplink: &str) -> Result<Observed, ReconcileError> {
    observe_since(pve, store, uplink, None)
}

/// [`observe`], reusing from `earlier` — a snapshot taken earlier in the
/// same reconcile run, under the same lock — what that run cannot have
/// changed: the Proxmox release, and the marker of a container still on
/// the same node under the same name (markers are written at creation,
/// and only this run creates or destroys containers meanwhile).
pub(super) fn observe_since(
    pve: &dyn Pve,
    store: &Store,
    uplink: &str,
    earlier: Option<&Observed>,
) -> Result<Observed, ReconcileError> {
    let pve_major = match earlier {
        Some(earlier) => earlier.pve_major,
        None => pve.release()?.major.try_into().unwrap_or(u8::MAX),
    };
    let mut observed = Observed {
        pve_major,
        ..Observed::default()
    };
    for node in pve.nodes()? {
        let Some(name) = valid::<NodeName>("node", &node.node) else {
            continue;
        };
        let online = node.status == "online";
        let uplink = if online {
            node_uplink(pve, &node.node, uplink)?
        } else {
            None
        };
        observed.nodes.insert(name, NodeObs { online, uplink });
    }
    for item in pve.sdn_controllers()? {
        if let (Some(c), pending) = settled(&item)? {
            observed.controllers.insert(
                item.id.clone(),
                ControllerObs {
                    kind: c.kind.unwrap_or_default(),
                    asn: c.asn,
                    peers: addresses(c.peers.as_deref()),
                    pending,
                },
            );
        }
    }
    for item in pve.sdn_zones()? {
        if let (Some(z), pending) = settled(&item)?
            && let Some(id) = valid::<ZoneId>("SDN zone", &item.id)
        {
            observed.zones.insert(
                id,
                ZoneObs {
                    kind: z.kind.unwrap_or_default(),
                    controller: z.controller,
                    vrf_vxlan: z.vrf_vxlan,
                    peers: addresses(z.peers.as_deref()),
                    exitnodes: list(z.exitnodes.as_deref())
                        .iter()
                        .filter_map(|n| valid("exit node", n))
                        .collect(),
                    advertise_subnets: z.advertise_subnets.unwrap_or(false),
                    mtu: z.mtu,
                    pending,
                },
            );
        }
    }
    for item in pve.sdn_vnets()? {
        if let (Some(v), pending) = settled(&item)?
            && let Some(id) = valid::<VnetId>("SDN VNet", &item.id)
        {
            observed.vnets.insert(
                id,
                VnetObs {
                    zone: v.zone.as_deref().and_then(|z| valid("SDN zone", z)),
                    tag: v.tag,
                    alias: v.alias,
                    pending,
                },
            );
        }
    }
    let vnets: Vec<VnetId> = observed.vnets.keys().cloned().collect();
    for vnet in vnets {
        for item in pve.sdn_subnets(vnet.as_str())? {
            let (Some(s), pending) = settled(&item)? else {
                continue;
            };
            let Some(id) = valid::<SubnetId>("SDN subnet", &item.id) else {
                continue;
            };
            let cidr = s
                .cidr
                .as_deref()
                .and_then(|c| c.parse::<Ipv4Net>().ok())
                .unwrap_or(id.cidr);
            observed.subnets.insert(
                id,
                SubnetObs {
                    vnet: vnet.clone(),
                    cidr,
                    gateway: s.gateway.as_deref().and_then(|g| g.parse().ok()),
                    snat: s.snat.unwrap_or(false),
                    pending,
                },
            );
        }
    }
    let online: Vec<NodeName> = observed
        .nodes
        .iter()
        .filter(|(_, n)| n.online)
        .map(|(n, _)| n.clone())
        .collect();
    for node in online {
        for guest in pve.lxc_list(node.as_str())? {
            let Ok(vmid) = Vmid::try_from(guest.vmid) else {
                tracing::warn!(
                    vmid = guest.vmid,
                    "Proxmox listed a guest with an invalid id; ignored"
                );
                continue;
            };
            let tagged = carries_tag(guest.tags.as_deref());
            let known = earlier
                .and_then(|e| e.containers.get(&vmid))
                .filter(|c| c.node == node && c.hostname == guest.name && c.marker.is_some());
            let marker = if let Some(known) = known {
                known.marker.clone()
            } else if tagged {
                pve.lxc_config(node.as_str(), guest.vmid)?
                    .description()
                    .as_deref()
                    .and_then(Marker::find_in)
            } else {
                None
            };
            observed.containers.insert(
                vmid,
                ContainerObs {
                    node: node.clone(),
                    hostname: guest.name.clone(),
                    running: guest.status == GuestState::Running,
                    marker,
                },
            );
        }
    }
    observed.tags = tags::read(store)?;
    observed.addresses = addresses_by_owner(store)?;
    observed.pushed = super::pushed::read_all(store)?
        .into_iter()
        .filter_map(|(vmid, digest)| Some((Vmid::try_from(vmid).ok()?, digest)))
        .collect();
    for kind in [Kind::Cluster, Kind::Sector] {
        for name in store.read_statuses(kind)?.into_keys() {
            if let Some(name) = valid("status file name", &name) {
                observed.statuses.insert(ObjectRef { kind, name });
            }
        }
    }
    Ok(observed)
}

/// `value` as a `T`; `None` (logged) when it breaks the rules, which
/// Proxmox's and OrbitLab's own validation make impossible short of a
/// hand edit.
fn valid<T: std::str::FromStr>(what: &str, value: &str) -> Option<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| tracing::warn!(what, error = %e, "ignored an invalid id in what Proxmox or the store reported"))
        .ok()
}

/// Whether a guest's tag list holds OrbitLab's tag.
fn carries_tag(tags: Option<&str>) -> bool {
    tags.is_some_and(|t| t.split([';', ',', ' ']).any(|t| t == GUEST_TAG))
}

/// Whether `node` runs any container tagged by OrbitLab (one request).
/// Node-scoped work only configures such containers: without one there is
/// nothing to observe.
pub(super) fn node_has_guests(pve: &dyn Pve, node: &str) -> Result<bool, ReconcileError> {
    Ok(pve
        .lxc_list(node)?
        .iter()
        .any(|g| carries_tag(g.tags.as_deref())))
}

/// The configuration an SDN object will have once pending changes are
/// applied (`None` when pending deletion is all that is left is handled by
/// the caller), with its pending state.
fn settled<C: crate::pve::SdnConfig>(
    item: &SdnItem<C>,
) -> Result<(Option<C>, Option<Pending>), ReconcileError> {
    let pending = item.state.map(|s| match s {
        PendingState::New => Pending::New,
        PendingState::Changed => Pending::Changed,
        PendingState::Deleted => Pending::Deleted,
    });
    if pending == Some(Pending::Deleted) {
        // Still listed until applied: keep its last running config.
        return Ok((item.running.clone(), pending));
    }
    Ok((item.desired()?, pending))
}

fn node_uplink(pve: &dyn Pve, node: &str, bridge: &str) -> Result<Option<Uplink>, ReconcileError> {
    let Some(iface) = pve
        .node_network(node)?
        .into_iter()
        .find(|i| i.iface == bridge)
    else {
        return Ok(None);
    };
    let network = iface
        .cidr
        .as_deref()
        .and_then(|c| c.parse::<Ipv4Net>().ok())
        .or_else(|| {
            let addr: Ipv4Addr = iface.address.as_deref()?.parse().ok()?;
            let mask: Ipv4Addr = iface.netmask.as_deref()?.parse().ok()?;
            Ipv4Net::with_netmask(addr, mask).ok()
        });
    Ok(network.map(|net| Uplink {
        address: net.addr(),
        network: net.trunc(),
        mtu: iface.mtu.unwrap_or(1500),
    }))
}

fn list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .split([',', ';', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn addresses(text: Option<&str>) -> Vec<Ipv4Addr> {
    list(text).iter().filter_map(|a| a.parse().ok()).collect()
}

/// Every IPAM allocation, by owner and pool (through the listing cache:
/// re-read only when IPAM's change token moved).
fn addresses_by_owner(
    store: &Store,
) -> Result<BTreeMap<Owner, BTreeMap<PoolId, Ipv4Addr>>, ReconcileError> {
    let listing = crate::ipam::listing(store)?;
    let mut out: BTreeMap<Owner, BTreeMap<PoolId, Ipv4Addr>> = BTreeMap::new();
    for (id, addresses) in &listing.pools {
        for (addr, owner) in addresses {
            out.entry(owner.clone())
                .or_default()
                .insert(id.clone(), *addr);
        }
    }
    Ok(out)
}
