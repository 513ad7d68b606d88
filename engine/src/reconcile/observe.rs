//! Gathering an [`Observed`] snapshot: Proxmox through the [`Pve`] API,
//! OrbitLab's records through the store. Reads only.
//!
//! What costs requests is kept small three ways, none of which hides a
//! change made by hand:
//! - within one run, a later observation reuses from the earlier one the
//!   release, each online node's uplink and the markers of containers
//!   still on the same node under the same name;
//! - across runs, the SDN listings are reused while pmxcfs's change
//!   counters (`<root>/.version`) for `sdn/controllers.cfg`,
//!   `sdn/zones.cfg`, `sdn/vnets.cfg`, `sdn/subnets.cfg` and
//!   `sdn/.running-config` — every file those listings and their pending
//!   state are computed from — are what they were when they were read, and
//!   a container's marker while `<root>/.vmlist` gives its config the same
//!   node and version (pmxcfs bumps both on every write of those files,
//!   whoever makes it); see [`remembered`];
//! - a node's uplink (address, network and MTU of its bridge, which no
//!   pmxcfs file records) is reused across runs for at most
//!   [`remembered::REUSE_FOR`] too: a changed uplink is seen within that
//!   time, at the latest by the periodic resync;
//! - nothing is reused for longer than [`remembered::REUSE_FOR`], so the
//!   periodic resync reads everything afresh even if a counter could not
//!   be trusted (the API answering from a node whose pmxcfs lags the local
//!   one).
//!
//! Without those files (no pmxcfs, an older simulator) everything is read.
//!
//! An instance's container config (the keys OrbitLab owns, compared with
//! its manifest every pass) is never taken from an earlier observation,
//! only kept while `.vmlist` gives it the same version; an appliance
//! container's memory comes from the node's container listing (`maxmem`). What only instances
//! need — each node's memory, the templates on its storage, the HA
//! resources, the public halves of SSH keys and which Secrets hold a value
//! — is read by [`instance_inputs`] in cluster-scoped passes, and only
//! while instances need it. What Appliances need — each node's storages and
//! the appliance templates on them — is read by [`appliance_inputs`], in
//! every scope while an Appliance manifest is declared (and for Sector
//! containers still to be made). The name servers of the nodes Sector DNS
//! containers run on are read by [`dns_inputs`], in every scope, only while
//! the Cluster manifest names no upstream resolvers for them to forward
//! to. Offline members' uplinks come from OrbitLab's
//! record ([`super::uplinks`]), and where each container was last seen from
//! its object's status.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use orbitlab_manifests::{Kind, NodeName};

use super::ObjectRef;
use super::ReconcileError;
use super::ids::{GUEST_TAG, Marker};
use super::observed::{
    ApplianceDecl, ApplianceObs, ContainerObs, ControllerObs, HaObs, NodeLoad, NodeObs, OWNED_KEYS,
    Observed, Pending, StorageObs, SubnetObs, UnrecognizedSdn, Uplink, VnetObs, ZoneObs,
};
use super::tags;
use crate::ipam::{Owner, PoolId};
use crate::pve::{GuestState, PendingState, Pve, SdnItem, SubnetId, Vmid, VnetId, ZoneId};
use crate::store::Store;

/// Takes a snapshot. `uplink` is the bridge whose address and MTU count
/// (the cluster default, `vmbr0`).
pub fn observe(pve: &dyn Pve, store: &Store, uplink: &str) -> Result<Observed, ReconcileError> {
    observe_since(pve, store, &|_: &str| uplink.to_owned(), None)
}

/// [`observe`], reusing from `earlier` — a snapshot taken earlier in the
/// same reconcile run — what that run cannot have changed: the Proxmox
/// release, the uplink of a node still online, and the marker of a
/// container still on the same node under the same name (markers are
/// written at creation, and only this run creates or destroys containers
/// meanwhile).
pub(super) fn observe_since(
    pve: &dyn Pve,
    store: &Store,
    uplink: &dyn Fn(&str) -> String,
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
    let counters = remembered::Counters::read(store.root());
    for node in pve.nodes()? {
        let Some(name) = valid::<NodeName>("node", &node.node) else {
            continue;
        };
        let online = node.status == "online";
        let known = earlier
            .and_then(|e| e.nodes.get(&name))
            .filter(|n| n.online)
            .and_then(|n| n.uplink);
        let uplink = match (online, known) {
            (false, _) => None,
            (true, Some(known)) => Some(known),
            (true, None) => {
                let bridge = uplink(&node.node);
                match remembered::uplink(store.root(), &node.node, &bridge) {
                    Some(kept) => kept,
                    None => {
                        let read = node_uplink(pve, &node.node, &bridge)?;
                        remembered::keep_uplink(store.root(), &node.node, &bridge, read);
                        read
                    }
                }
            }
        };
        observed.nodes.insert(name, NodeObs { online, uplink });
    }
    let sdn = match remembered::sdn(store.root(), &counters) {
        Some(sdn) => sdn,
        None => {
            let sdn = read_sdn(pve)?;
            remembered::keep_sdn(store.root(), &counters, &sdn);
            sdn
        }
    };
    observed.controllers = sdn.controllers;
    observed.zones = sdn.zones;
    observed.vnets = sdn.vnets;
    observed.subnets = sdn.subnets;
    observed.unrecognized = sdn.unrecognized;
    let online = observed.online_nodes();
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
            // An instance's config is compared with its manifest every
            // pass, so it is never taken from the earlier observation
            // (a hand edit changes no name); `.vmlist`'s version of it is
            // what says it is unchanged.
            let known = earlier.and_then(|e| e.containers.get(&vmid)).filter(|c| {
                c.node == node
                    && c.hostname == guest.name
                    && c.marker.as_ref().is_some_and(|m| m.kind != Kind::Lxc)
            });
            let seen = if let Some(known) = known {
                remembered::Guest {
                    marker: known.marker.clone(),
                    config: known.config.clone(),
                    version: known.version.clone(),
                }
            } else if !tagged {
                remembered::Guest::default()
            } else if let Some(kept) =
                remembered::guest(store.root(), &counters, node.as_str(), &guest)
            {
                kept
            } else {
                let config = pve.lxc_config(node.as_str(), guest.vmid)?;
                let marker = config.description().as_deref().and_then(Marker::find_in);
                let owned = if marker.as_ref().is_some_and(|m| m.kind == Kind::Lxc) {
                    OWNED_KEYS
                        .iter()
                        .filter_map(|k| Some((k.to_string(), config.get(k)?)))
                        .collect()
                } else {
                    BTreeMap::new()
                };
                let version = appliance_version(marker.as_ref(), &config);
                let seen = remembered::Guest {
                    marker,
                    config: owned,
                    version,
                };
                remembered::keep_guest(store.root(), &counters, node.as_str(), &guest, &seen);
                seen
            };
            // An appliance's memory, the one key set on it after it is
            // made, comes from this listing: never from an earlier read.
            let config = if seen.marker.as_ref().is_some_and(|m| m.role.is_some()) {
                guest
                    .maxmem
                    .map(|bytes| ("memory".to_owned(), (bytes / (1024 * 1024)).to_string()))
                    .into_iter()
                    .collect()
            } else {
                seen.config
            };
            observed.containers.insert(
                vmid,
                ContainerObs {
                    node: node.clone(),
                    hostname: guest.name.clone(),
                    running: guest.status == GuestState::Running,
                    marker: seen.marker,
                    config,
                    version: seen.version,
                    booted: booted(guest.status == GuestState::Running, guest.uptime),
                    usage: usage(&guest),
                },
            );
        }
    }
    read_records(store, &mut observed)?;
    Ok(observed)
}

/// When a running container started, from its uptime (Unix seconds; the
/// same boot reads a second or two apart between observations).
fn booted(running: bool, uptime: Option<u64>) -> Option<u64> {
    let uptime = uptime.filter(|_| running)?;
    let now = crate::vault::Timestamp::now().0;
    Some(now.saturating_sub(uptime))
}

/// `observed` with OrbitLab's records read again and its Proxmox part
/// kept: for a run whose steps changed only those records (a node-scoped
/// run pushes configurations and records their digests, and changes
/// nothing in Proxmox).
pub(super) fn refresh_records(
    store: &Store,
    mut observed: Observed,
) -> Result<Observed, ReconcileError> {
    read_records(store, &mut observed)?;
    Ok(observed)
}

/// OrbitLab's own records: VNet tags, IPAM allocations, digests pushed,
/// which objects have a status.
fn read_records(store: &Store, observed: &mut Observed) -> Result<(), ReconcileError> {
    observed.tags = tags::read(store)?;
    observed.addresses = addresses_by_owner(store)?;
    observed.pushed = super::pushed::read_all(store)?
        .into_iter()
        .filter_map(|(vmid, digest)| Some((Vmid::try_from(vmid).ok()?, digest)))
        .collect();
    observed.recorded_uplinks = super::uplinks::read(store)?;
    observed.probes = probes(store)?;
    observed.upgrades = super::upgrades::read_all(store)?;
    observed.statuses.clear();
    observed.homes.clear();
    observed.pools = super::observed::PoolsObs {
        records: crate::pool::read_records(store)?,
        health: crate::pool::read_health(store)?,
        now: crate::pool::unix(std::time::SystemTime::now()),
        ..Default::default()
    };
    for pool in observed.pools.records.keys() {
        let control = crate::pool::read_control(store, pool)?;
        observed.pools.controls.insert(pool.clone(), control);
    }
    for kind in super::controllers::reported() {
        for (name, status) in store.read_statuses(kind)? {
            let Some(name) = valid::<orbitlab_manifests::Name>("status file name", &name) else {
                continue;
            };
            if kind == Kind::Lxc
                && let Some(failed) = status
                    .condition(crate::status::ConditionType::Failed)
                    .filter(|c| c.status)
            {
                observed
                    .pools
                    .failures
                    .insert(name.clone(), failed.message.clone());
            }
            observed.homes.extend(homes(kind, &name, &status.outputs));
            observed.statuses.insert(ObjectRef { kind, name });
        }
    }
    Ok(())
}

/// Where an object's status says its containers are: `vmid`/`node` for
/// its only container, `<role>/vmid`/`<role>/node` for its parts.
fn homes<'a>(
    kind: Kind,
    name: &'a orbitlab_manifests::Name,
    outputs: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = (Marker, (Vmid, NodeName))> + 'a {
    outputs.iter().filter_map(move |(key, vmid)| {
        let prefix = key.strip_suffix("vmid")?;
        let marker = match prefix.strip_suffix('/') {
            None if prefix.is_empty() => Marker::object(kind, name),
            Some(role) => Marker::part(kind, name, role.parse().ok()?),
            None => return None,
        };
        let node = outputs.get(&format!("{prefix}node"))?.parse().ok()?;
        Some((marker, (vmid.parse().ok()?, node)))
    })
}

/// The appliance probes the agents published in their heartbeats, by node
/// and VMID (entries with an invalid node name or VMID are left out; a
/// stale one counts as a probe that could not run, see
/// [`crate::host::health::ApplianceProbe::aged`]).
fn probes(
    store: &Store,
) -> Result<BTreeMap<NodeName, BTreeMap<Vmid, crate::host::health::ApplianceProbe>>, ReconcileError>
{
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Ok(crate::liveness::probes_by_node(store)?
        .into_iter()
        .filter_map(|(node, probes)| {
            let node = valid::<NodeName>("heartbeat node", &node)?;
            let probes = probes
                .into_iter()
                .filter_map(|(vmid, p)| {
                    Some((Vmid::try_from(vmid).ok()?, p.aged(now_ms, node.as_str())))
                })
                .collect();
            Some((node, probes))
        })
        .collect())
}

/// The running containers on `node` that play an appliance role (a
/// Sector's gateway or DNS, by their marker): what that node's agent
/// probes. One listing of the node's containers, plus the config of each
/// tagged one whose marker is not remembered (see [`remembered`]).
pub fn local_appliances(
    pve: &dyn Pve,
    store: &Store,
    node: &str,
) -> Result<Vec<Vmid>, ReconcileError> {
    let counters = remembered::Counters::read(store.root());
    let mut found = Vec::new();
    for guest in pve.lxc_list(node)? {
        if guest.status != GuestState::Running || !carries_tag(guest.tags.as_deref()) {
            continue;
        }
        let Ok(vmid) = Vmid::try_from(guest.vmid) else {
            continue;
        };
        let marker = match remembered::guest(store.root(), &counters, node, &guest) {
            Some(kept) => kept.marker,
            None => {
                let config = pve.lxc_config(node, guest.vmid)?;
                let marker = config.description().as_deref().and_then(Marker::find_in);
                // Only what an observation would keep: an instance's
                // entry also holds its config, which is not read here.
                if marker.as_ref().is_some_and(|m| m.kind != Kind::Lxc) {
                    let seen = remembered::Guest {
                        version: appliance_version(marker.as_ref(), &config),
                        marker: marker.clone(),
                        config: BTreeMap::new(),
                    };
                    remembered::keep_guest(store.root(), &counters, node, &guest, &seen);
                }
                marker
            }
        };
        if marker.is_some_and(|m| m.role.is_some()) {
            found.push(vmid);
        }
    }
    Ok(found)
}

/// A running container's CPU and memory use, as its node lists them.
fn usage(guest: &crate::pve::LxcStatus) -> Option<super::observed::Usage> {
    if guest.status != GuestState::Running {
        return None;
    }
    let mem_permille = match (guest.mem, guest.maxmem) {
        (Some(used), Some(max)) if max > 0 => {
            u32::try_from(used.saturating_mul(1000) / max).unwrap_or(u32::MAX)
        }
        _ => 0,
    };
    Some(super::observed::Usage {
        cpu_permille: guest.cpu?,
        mem_permille,
    })
}

/// What instances and HA need, read only in cluster-scoped passes: the HA
/// resources (always: instances and Sectors may declare `ha`); each online
/// node's memory and CPUs while an instance waits to be placed; the public
/// halves of SSH keys and the presence of password secrets for instances
/// still to be created (values are read from the vault only when the
/// create step runs).
pub(super) fn instance_inputs(
    pve: &dyn Pve,
    store: &Store,
    desired: &super::Desired,
    observed: &mut Observed,
) -> Result<(), ReconcileError> {
    // Which containers Proxmox HA manages: instances and Sector appliances
    // may declare `ha`, and one that no longer does is taken out again.
    let mut ha = BTreeMap::new();
    for resource in pve.ha_resources()? {
        if let Some(vmid) = resource.vmid().and_then(|v| Vmid::try_from(v).ok()) {
            ha.insert(
                vmid,
                HaObs {
                    state: resource.state,
                    group: resource.group,
                },
            );
        }
    }
    observed.ha = Some(ha);
    if desired.instances.is_empty() {
        return Ok(());
    }
    let made: std::collections::BTreeSet<&Marker> = observed
        .containers
        .values()
        .filter_map(|c| c.marker.as_ref())
        .collect();
    let unplaced: Vec<_> = desired
        .instances
        .iter()
        .filter(|(name, _)| !made.contains(&Marker::object(Kind::Lxc, name)))
        .collect();
    if !unplaced.is_empty() {
        let online = observed.online_nodes();
        let storages: std::collections::BTreeSet<&str> = unplaced
            .iter()
            .filter_map(|(_, spec)| spec.template.as_ref().split_once(':'))
            .map(|(storage, _)| storage)
            .collect();
        for node in online {
            // One node's storage or status that cannot be read keeps that
            // node out of placement this pass; it does not stop the
            // observation of everything else.
            for storage in &storages {
                let volids = match pve.storage_content(node.as_str(), storage, Some("vztmpl")) {
                    Ok(volumes) => volumes.into_iter().map(|v| v.volid).collect(),
                    Err(e) => {
                        tracing::warn!(%node, storage, error = %e, "cannot list the templates of a node's storage; no instance is placed on it this pass");
                        Default::default()
                    }
                };
                observed
                    .templates
                    .insert((node.clone(), (*storage).to_owned()), volids);
            }
            let status = match pve.node_status(node.as_str()) {
                Ok(status) => status,
                Err(e) => {
                    tracing::warn!(%node, error = %e, "cannot read a node's memory; no instance is placed on it this pass");
                    continue;
                }
            };
            observed.loads.insert(
                node,
                NodeLoad {
                    free_mib: status.free_mib(),
                    total_mib: status.memory_total / (1024 * 1024),
                    cpus: status.cpus,
                },
            );
        }
        let vault = crate::vault::Vault::new(store.clone());
        let keys = crate::ssh::SshKeys::new(vault.clone());
        for (_, spec) in &unplaced {
            for key in &spec.ssh_keys {
                let Ok(id) = key.as_ref().parse() else {
                    continue;
                };
                // A missing key is told by its absence (the planner names it).
                if let Ok(public) = keys.public_key(&id) {
                    observed.ssh_public.insert(key.clone(), public);
                }
            }
            if let Some(secret) = &spec.password
                && let Some(path) = desired
                    .secrets
                    .get(secret)
                    .and_then(|s| super::identities::secret_path(secret, s))
                && vault.exists(&path).unwrap_or(false)
            {
                observed.secrets.insert(secret.clone());
            }
        }
    }
    Ok(())
}

/// What Appliances and the Sector containers made from them need, read in
/// every scope while an Appliance manifest is declared (a node-scoped agent
/// may be the one to upload a template): each online node's storages (one
/// `GET /nodes/{node}/storage` per node) and, per node, the container
/// templates on the storages of every declared Appliance's template. In
/// cluster-scoped passes (`for_sectors`) also the storage of the template a
/// Sector container is still to be made from, while it is not made.
///
/// Within one run, `earlier` (the run's previous observation) is reused
/// for what it already found in place: a node's storage list, and a
/// storage's templates when every template wanted there was on it; only
/// what was missing (what this run's uploads change) is read again. A
/// listing that fails leaves that node unknown for this pass (logged); it
/// stops nothing else.
pub(super) fn appliance_inputs(
    pve: &dyn Pve,
    desired: &super::Desired,
    observed: &mut Observed,
    earlier: Option<&ApplianceObs>,
    for_sectors: bool,
) {
    let mut obs = ApplianceObs::default();
    let mut wanted: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for choice in desired.appliances.values() {
        if let Some(manifest) = &choice.manifest {
            obs.declared.insert(
                manifest.name.clone(),
                ApplianceDecl {
                    template: choice.template.clone(),
                    version: manifest.version.to_string(),
                },
            );
            wanted.insert(choice.template.clone());
        }
    }
    if for_sectors {
        let made: std::collections::BTreeSet<&Marker> = observed
            .containers
            .values()
            .filter_map(|c| c.marker.as_ref())
            .collect();
        for sector in desired.sectors.keys() {
            for role in orbitlab_manifests::ApplianceRole::ALL {
                let marker = Marker::part(Kind::Sector, sector, role);
                if !made.contains(&marker)
                    || observed.outdated(&marker, desired.appliance(role).version())
                {
                    wanted.insert(desired.appliance(role).template);
                }
            }
        }
    }
    let online = observed.online_nodes();
    for node in online {
        if !obs.declared.is_empty() {
            let kept = earlier.and_then(|e| e.storages.get(&node)).cloned();
            let read = kept.or_else(|| match pve.node_storages(node.as_str()) {
                Ok(list) => Some(
                    list.into_iter()
                        .map(|s| {
                            let obs = StorageObs {
                                shared: s.is_shared(),
                                templates: s.takes("vztmpl"),
                            };
                            (s.storage, obs)
                        })
                        .collect(),
                ),
                Err(e) => {
                    tracing::warn!(%node, error = %e, "cannot list a node's storages; its appliance templates are checked again on the next pass");
                    None
                }
            });
            if let Some(storages) = read {
                obs.storages.insert(node.clone(), storages);
            }
        }
        let mut by_storage: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for volid in &wanted {
            if let Some((storage, _)) = volid.split_once(':') {
                by_storage.entry(storage).or_default().push(volid);
            }
        }
        for (storage, volids) in by_storage {
            let key = (node.clone(), storage.to_owned());
            let kept = earlier
                .and_then(|e| e.templates.get(&key))
                .filter(|have| volids.iter().all(|v| have.contains(*v)));
            if let Some(kept) = kept {
                obs.templates.insert(key, kept.clone());
                continue;
            }
            match pve.storage_content(node.as_str(), storage, Some("vztmpl")) {
                Ok(volumes) => {
                    obs.templates
                        .insert(key, volumes.into_iter().map(|v| v.volid).collect());
                }
                Err(e) => {
                    tracing::warn!(%node, storage, error = %e, "cannot list the templates of a node's storage; checked again on the next pass");
                }
            }
        }
    }
    observed.appliance = obs;
}

/// Where each Sector DNS forwards when the Cluster manifest names no
/// upstream resolvers (`spec.defaults.dns_upstreams`): the name servers
/// of the node it runs on. Read, one `GET /nodes/{node}/dns` per online
/// node that runs the DNS container of a declared Sector, only while a
/// Sector is declared and that list is empty; in a node-scoped pass
/// (`local`: this node) only this node's, since it configures only its own
/// containers. Within one run, `earlier` (the run's previous observation)
/// is reused; a node's settings change only by hand, and the next run
/// reads them again. A read that fails leaves that node out (logged): its
/// Sector DNS keeps the configuration it has until a later pass reads them.
pub(super) fn dns_inputs(
    pve: &dyn Pve,
    desired: &super::Desired,
    observed: &mut Observed,
    earlier: Option<&Observed>,
    local: Option<&str>,
) {
    let needed = desired
        .cluster
        .as_ref()
        .is_some_and(|(_, c)| c.defaults.dns_upstreams.is_empty());
    let mut read = BTreeMap::new();
    if needed {
        let nodes: std::collections::BTreeSet<NodeName> = desired
            .sectors
            .keys()
            .filter_map(|sector| {
                let marker =
                    Marker::part(Kind::Sector, sector, orbitlab_manifests::ApplianceRole::Dns);
                observed.container(&marker).map(|(_, c)| c.node.clone())
            })
            .filter(|node| observed.online(node))
            .filter(|node| local.is_none_or(|local| node.as_str() == local))
            .collect();
        for node in nodes {
            if let Some(kept) = earlier.and_then(|e| e.node_resolvers.get(&node)) {
                read.insert(node, kept.clone());
                continue;
            }
            match pve.node_dns(node.as_str()) {
                Ok(dns) => {
                    let servers = dns.servers().into_iter().map(str::to_owned).collect();
                    read.insert(node, servers);
                }
                Err(e) => {
                    tracing::warn!(%node, error = %e, "cannot read a node's DNS settings; its Sector DNS keeps its configuration until they are read");
                }
            }
        }
    }
    observed.node_resolvers = read;
}

/// The SDN part of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SdnObs {
    controllers: BTreeMap<String, ControllerObs>,
    zones: BTreeMap<ZoneId, ZoneObs>,
    vnets: BTreeMap<VnetId, VnetObs>,
    subnets: BTreeMap<SubnetId, SubnetObs>,
    unrecognized: Vec<UnrecognizedSdn>,
}

/// Every SDN controller, zone, VNet and subnet, as they will be once
/// pending changes are applied (3 requests and one per VNet).
fn read_sdn(pve: &dyn Pve) -> Result<SdnObs, ReconcileError> {
    let mut observed = SdnObs::default();
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
        let (Some(z), pending) = settled(&item)? else {
            continue;
        };
        let Some(id) = valid::<ZoneId>("SDN zone", &item.id) else {
            observed
                .unrecognized
                .push(unrecognized("zone", &item.id, pending, z.vrf_vxlan));
            continue;
        };
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
                exitnodes_primary: z
                    .exitnodes_primary
                    .as_deref()
                    .and_then(|n| valid("primary exit node", n)),
                advertise_subnets: z.advertise_subnets.unwrap_or(false),
                mtu: z.mtu,
                pending,
            },
        );
    }
    let mut unrecognized_vnets = Vec::new();
    for item in pve.sdn_vnets()? {
        let (Some(v), pending) = settled(&item)? else {
            continue;
        };
        let Some(id) = valid::<VnetId>("SDN VNet", &item.id) else {
            observed
                .unrecognized
                .push(unrecognized("vnet", &item.id, pending, v.tag));
            unrecognized_vnets.push(item.id.clone());
            continue;
        };
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
    // Subnets of VNets whose id is not readable count only for their
    // pending changes.
    for vnet in &unrecognized_vnets {
        for item in pve.sdn_subnets(vnet)? {
            let (_, pending) = settled(&item)?;
            observed
                .unrecognized
                .push(unrecognized("subnet", &item.id, pending, None));
        }
    }
    let vnets: Vec<VnetId> = observed.vnets.keys().cloned().collect();
    for vnet in vnets {
        for item in pve.sdn_subnets(vnet.as_str())? {
            let (Some(s), pending) = settled(&item)? else {
                continue;
            };
            let Some(id) = valid::<SubnetId>("SDN subnet", &item.id) else {
                observed
                    .unrecognized
                    .push(unrecognized("subnet", &item.id, pending, None));
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
    Ok(observed)
}

fn unrecognized(
    what: &'static str,
    id: &str,
    pending: Option<Pending>,
    tag: Option<u32>,
) -> UnrecognizedSdn {
    UnrecognizedSdn {
        what,
        id: id.chars().take(64).collect(),
        pending,
        tag,
    }
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

/// The appliance version an appliance container's description records.
fn appliance_version(marker: Option<&Marker>, config: &crate::pve::LxcConfig) -> Option<String> {
    marker?.role?;
    super::ids::appliance_version_in(&config.description()?)
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

/// Proxmox reads kept across runs in this process, by store root, and
/// reused only while pmxcfs's change counters say the files they come
/// from did not change (and for at most [`REUSE_FOR`]). Reads only the
/// store root's `.version` and `.vmlist`.
mod remembered {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::{SdnObs, Uplink};
    use crate::pve::LxcStatus;
    use crate::reconcile::ids::Marker;

    /// Longest a kept read is reused: well below the agents' periodic
    /// resync (60 s), which therefore always reads Proxmox afresh.
    pub(super) const REUSE_FOR: Duration = Duration::from_secs(30);

    /// The files the SDN listings (with their pending state) are made of,
    /// as `.version` names them.
    const SDN_FILES: [&str; 5] = [
        "sdn/controllers.cfg",
        "sdn/zones.cfg",
        "sdn/vnets.cfg",
        "sdn/subnets.cfg",
        "sdn/.running-config",
    ];

    /// pmxcfs's start time and the SDN files' change counters.
    type SdnVersion = (u64, [u64; SDN_FILES.len()]);

    /// The counters read at the start of one observation.
    #[derive(Debug, Default)]
    pub(in crate::reconcile) struct Counters {
        /// `None` when `.version` is missing or lacks a counter.
        sdn: Option<SdnVersion>,
        /// `.vmlist`: VMID → (node, config version); `None` when missing.
        guests: Option<BTreeMap<u32, (String, u64)>>,
    }

    impl Counters {
        /// Reads `<root>/.version` and `<root>/.vmlist` (a missing or
        /// unreadable file only means nothing is reused).
        pub(in crate::reconcile) fn read(root: &Path) -> Self {
            Counters {
                sdn: json(root, ".version").and_then(|v| sdn_version(&v)),
                guests: json(root, ".vmlist").and_then(|v| guests(&v)),
            }
        }
    }

    fn json(root: &Path, name: &str) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(root.join(name)).ok()?).ok()
    }

    fn sdn_version(version: &Value) -> Option<SdnVersion> {
        let mut files = [0; SDN_FILES.len()];
        for (counter, file) in files.iter_mut().zip(SDN_FILES) {
            *counter = version.get(file)?.as_u64()?;
        }
        Some((version.get("starttime")?.as_u64()?, files))
    }

    fn guests(vmlist: &Value) -> Option<BTreeMap<u32, (String, u64)>> {
        vmlist
            .get("ids")?
            .as_object()?
            .iter()
            .map(|(vmid, guest)| {
                Some((
                    vmid.parse().ok()?,
                    (
                        guest.get("node")?.as_str()?.to_owned(),
                        guest.get("version")?.as_u64()?,
                    ),
                ))
            })
            .collect()
    }

    #[derive(Debug, Default)]
    struct Kept {
        sdn: Option<(SdnVersion, Instant, SdnObs)>,
        markers: BTreeMap<u32, KeptMarker>,
        /// By `<node>/<bridge>`.
        uplinks: BTreeMap<String, (Instant, Option<Uplink>)>,
    }

    /// The uplink `bridge` of `node` read less than [`REUSE_FOR`] ago, if any.
    pub(super) fn uplink(root: &Path, node: &str, bridge: &str) -> Option<Option<Uplink>> {
        let kept = kept();
        let (at, uplink) = kept.get(root)?.uplinks.get(&format!("{node}/{bridge}"))?;
        (at.elapsed() < REUSE_FOR).then_some(*uplink)
    }

    /// Keeps the uplink `bridge` just read from `node`.
    pub(super) fn keep_uplink(root: &Path, node: &str, bridge: &str, uplink: Option<Uplink>) {
        kept()
            .entry(root.to_owned())
            .or_default()
            .uplinks
            .insert(format!("{node}/{bridge}"), (Instant::now(), uplink));
    }

    #[derive(Debug)]
    struct KeptMarker {
        node: String,
        hostname: Option<String>,
        version: u64,
        at: Instant,
        guest: Guest,
    }

    /// What a guest's config says about it: OrbitLab's marker, for an
    /// instance the keys OrbitLab owns, for an appliance its version.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub(in crate::reconcile) struct Guest {
        pub marker: Option<Marker>,
        pub config: BTreeMap<String, String>,
        /// An appliance's recorded version.
        pub version: Option<String>,
    }

    static KEPT: Mutex<BTreeMap<PathBuf, Kept>> = Mutex::new(BTreeMap::new());

    fn kept() -> MutexGuard<'static, BTreeMap<PathBuf, Kept>> {
        KEPT.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The SDN listings kept for `root`, if the counters still match.
    pub(super) fn sdn(root: &Path, counters: &Counters) -> Option<SdnObs> {
        let now = counters.sdn?;
        let kept = kept();
        let (version, at, sdn) = kept.get(root)?.sdn.as_ref()?;
        (*version == now && at.elapsed() < REUSE_FOR).then(|| sdn.clone())
    }

    /// Keeps SDN listings read after `counters` were (a change racing the
    /// read makes the counters differ next time: it is read again).
    pub(super) fn keep_sdn(root: &Path, counters: &Counters, sdn: &SdnObs) {
        let mut kept = kept();
        let entry = kept.entry(root.to_owned()).or_default();
        entry.sdn = counters
            .sdn
            .map(|version| (version, Instant::now(), sdn.clone()));
    }

    /// What was kept of `guest` on `node`, if `.vmlist` still gives its
    /// config that node and version and it still has the same name.
    pub(super) fn guest(
        root: &Path,
        counters: &Counters,
        node: &str,
        guest: &LxcStatus,
    ) -> Option<Guest> {
        let (listed_node, version) = counters.guests.as_ref()?.get(&guest.vmid)?;
        let kept = kept();
        let m = kept.get(root)?.markers.get(&guest.vmid)?;
        (m.node == node
            && listed_node == node
            && m.hostname == guest.name
            && m.version == *version
            && m.at.elapsed() < REUSE_FOR)
            .then(|| m.guest.clone())
    }

    /// Keeps what was read from `guest`'s config after `counters` were
    /// read; forgets guests `.vmlist` no longer lists.
    pub(super) fn keep_guest(
        root: &Path,
        counters: &Counters,
        node: &str,
        guest: &LxcStatus,
        seen: &Guest,
    ) {
        let vmid = guest.vmid;
        let Some(guests) = &counters.guests else {
            return;
        };
        let mut kept = kept();
        let entry = kept.entry(root.to_owned()).or_default();
        entry.markers.retain(|vmid, _| guests.contains_key(vmid));
        match guests.get(&vmid) {
            Some((listed_node, version)) if listed_node == node => {
                entry.markers.insert(
                    vmid,
                    KeptMarker {
                        node: node.to_owned(),
                        hostname: guest.name.clone(),
                        version: *version,
                        at: Instant::now(),
                        guest: seen.clone(),
                    },
                );
            }
            _ => {
                entry.markers.remove(&vmid);
            }
        }
    }
}
