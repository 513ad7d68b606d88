//! Executing a plan: each step through the Proxmox API, IPAM, the tag table
//! or the container host. A step that fails stops the rest of its object's
//! steps (other objects go on); a failed SDN apply stops everything after
//! it. SDN edits and their apply are one [`SdnTransaction`]: under
//! Proxmox's SDN lock on 9.x, under OrbitLab's `orbitlab-sdn` cluster lock
//! on 8.x.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use orbitlab_manifests::Kind;

use super::ReconcileError;
use super::action::{Action, AddressRef, ContainerPlan, FixedRole, NicPlan, ZoneConfig};
use super::ids::{self, GUEST_TAG};
use super::plan::{ObjectKey, Plan};
use super::{pushed, tags};
use crate::host::{ContainerHost, HostError};
use crate::ipam::{IpamSession, Owner, Pool, PoolId, Role};
use crate::pve::{self, ApiErrorKind, LxcCreate, Pve, SdnCollection, SdnLockToken, SdnTransaction};
use crate::store::{LockGuard, LockName, Store};

/// Everything a step may touch.
#[derive(Debug)]
pub struct Context<'a> {
    pub pve: &'a dyn Pve,
    pub store: &'a Store,
    pub host: &'a dyn ContainerHost,
    /// How long one Proxmox task may run.
    pub task_deadline: Duration,
}

/// What executing a plan did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Steps that ran to completion.
    pub done: usize,
    /// Objects whose step failed, with the error.
    pub failed: BTreeMap<ObjectKey, String>,
    /// Objects waiting for another node's agent, with the reason.
    pub deferred: BTreeMap<ObjectKey, String>,
    /// Status outputs to record, per object.
    pub outputs: BTreeMap<ObjectKey, BTreeMap<String, String>>,
}

/// The SDN transaction of a plan: Proxmox's lock on 9.x, OrbitLab's
/// `orbitlab-sdn` cluster lock on 8.x.
type Sdn<'a> = SdnTransaction<'a, LockGuard>;

/// Runs `plan` in order. `allow_pending` says whether Proxmox may hold
/// pending SDN changes when the SDN lock is taken (only OrbitLab's own, as
/// observed).
pub fn execute<'a>(plan: &Plan, ctx: &Context<'a>, allow_pending: bool) -> Outcome {
    let mut outcome = Outcome::default();
    let mut stopped: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut sdn: Option<Sdn<'a>> = None;
    let mut all_stopped: Option<String> = None;
    for action in &plan.actions {
        let object = action.object();
        if let Some(reason) = &all_stopped {
            if let Some(o) = object {
                outcome.failed.entry(o).or_insert_with(|| reason.clone());
            }
            continue;
        }
        if object.as_ref().is_some_and(|o| stopped.contains(o)) {
            continue;
        }
        let result = match action {
            Action::ApplySdn => apply_sdn(ctx, &mut sdn, allow_pending),
            a if a.phase() == super::action::Phase::SdnCreate
                || a.phase() == super::action::Phase::SdnDelete =>
            {
                sdn_open(ctx, &mut sdn, allow_pending).and_then(|tx| sdn_edit(ctx, a, tx.token()))
            }
            other => step(ctx, other, &mut outcome),
        };
        match (result, object) {
            (Ok(()), _) => outcome.done += 1,
            (Err(ReconcileError::Host(HostError::NotLocal { node, .. })), Some(o)) => {
                outcome.deferred.insert(
                    o.clone(),
                    format!("waiting for the agent on node {node} to configure its container"),
                );
                stopped.insert(o);
            }
            (Err(e), Some(o)) => {
                tracing::warn!(object = %format!("{}/{}", o.0.dir_name(), o.1), error = %e, "step failed: {action}");
                outcome.failed.insert(o.clone(), format!("{action}: {e}"));
                stopped.insert(o);
            }
            (Err(e), None) => {
                tracing::warn!(error = %e, "step failed: {action}");
                all_stopped = Some(format!("{action}: {e}"));
            }
        }
    }
    // Edits made but never applied (the apply was skipped) stay pending;
    // dropping the transaction releases its lock.
    drop(sdn);
    outcome
}

/// Begins an SDN transaction (takes its lock).
fn begin_sdn<'a>(ctx: &Context<'a>, allow_pending: bool) -> Result<Sdn<'a>, ReconcileError> {
    SdnTransaction::begin(ctx.pve, allow_pending, || {
        Ok::<_, ReconcileError>(ctx.store.lock(&"sdn".parse::<LockName>()?)?)
    })
}

/// The plan's SDN transaction, begun on its first edit.
fn sdn_open<'s, 'a>(
    ctx: &Context<'a>,
    sdn: &'s mut Option<Sdn<'a>>,
    allow_pending: bool,
) -> Result<&'s Sdn<'a>, ReconcileError> {
    let tx = match sdn.take() {
        Some(tx) => tx,
        None => begin_sdn(ctx, allow_pending)?,
    };
    Ok(sdn.insert(tx))
}

/// Applies the plan's SDN edits, ending its transaction.
fn apply_sdn<'a>(
    ctx: &Context<'a>,
    sdn: &mut Option<Sdn<'a>>,
    allow_pending: bool,
) -> Result<(), ReconcileError> {
    let tx = match sdn.take() {
        Some(tx) => tx,
        None => begin_sdn(ctx, allow_pending)?,
    };
    tx.apply(ctx.task_deadline)?;
    Ok(())
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn zone_config(config: &ZoneConfig, creating: bool) -> pve::ZoneConfig {
    let mut zone = pve::ZoneConfig::default();
    match config {
        ZoneConfig::Evpn {
            controller,
            vrf_vxlan,
            exitnodes,
            mtu,
        } => {
            zone.kind = creating.then(|| "evpn".to_owned());
            zone.controller = Some(controller.clone());
            zone.vrf_vxlan = Some(*vrf_vxlan);
            zone.exitnodes = Some(exitnodes.join(","));
            zone.mtu = Some(*mtu);
            zone.advertise_subnets = Some(true);
        }
        ZoneConfig::Vxlan { peers, mtu } => {
            zone.kind = creating.then(|| "vxlan".to_owned());
            zone.peers = Some(join(peers));
            zone.mtu = Some(*mtu);
        }
    }
    zone
}

fn sdn_edit(
    ctx: &Context<'_>,
    action: &Action,
    lock: Option<&SdnLockToken>,
) -> Result<(), ReconcileError> {
    let pve = ctx.pve;
    match action {
        Action::CreateController { id, asn, peers } => pve.sdn_create_controller(
            id,
            &pve::ControllerConfig {
                kind: Some("evpn".into()),
                asn: Some(*asn),
                peers: Some(join(peers)),
                ..Default::default()
            },
            lock,
        )?,
        Action::UpdateController { id, peers } => pve.sdn_update_controller(
            id,
            &pve::ControllerConfig {
                peers: Some(join(peers)),
                ..Default::default()
            },
            lock,
        )?,
        Action::CreateZone { id, config, .. } => {
            pve.sdn_create_zone(id, &zone_config(config, true), lock)?
        }
        Action::UpdateZone { id, config, .. } => {
            pve.sdn_update_zone(id, &zone_config(config, false), lock)?
        }
        Action::CreateVnet {
            id,
            zone,
            tag,
            alias,
            ..
        } => pve.sdn_create_vnet(
            id,
            &pve::VnetConfig {
                zone: Some(zone.clone()),
                tag: Some(*tag),
                alias: Some(alias.clone()),
                ..Default::default()
            },
            lock,
        )?,
        Action::CreateSubnet {
            vnet,
            cidr,
            gateway,
            snat,
            ..
        } => pve.sdn_create_subnet(
            vnet,
            &cidr.to_string(),
            &pve::SubnetConfig {
                kind: Some("subnet".into()),
                gateway: Some(gateway.to_string()),
                snat: snat.then_some(true),
                ..Default::default()
            },
            lock,
        )?,
        Action::DeleteSubnet { vnet, id, .. } => {
            pve.sdn_delete(SdnCollection::Subnets(vnet), id, lock)?
        }
        Action::DeleteVnet { id, .. } => pve.sdn_delete(SdnCollection::Vnets, id, lock)?,
        Action::DeleteZone { id, .. } => pve.sdn_delete(SdnCollection::Zones, id, lock)?,
        other => unreachable!("not an SDN edit: {other}"),
    }
    Ok(())
}

fn pool(id: &str, cidr: ipnet::Ipv4Net) -> Result<Pool, ReconcileError> {
    Ok(Pool::new(id.parse::<PoolId>()?, cidr)?)
}

fn step(ctx: &Context<'_>, action: &Action, outcome: &mut Outcome) -> Result<(), ReconcileError> {
    let pve = ctx.pve;
    match action {
        Action::ReserveTag { sector, tag } => tags::reserve(ctx.store, sector.as_ref(), *tag)?,
        Action::ReleaseTag { sector, tag } => tags::release(ctx.store, sector, *tag)?,
        Action::DestroyContainer {
            vmid,
            node,
            running,
            ..
        } => {
            if *running {
                let upid = pve.lxc_stop(node, *vmid)?;
                pve.wait_task(&upid, ctx.task_deadline)?;
            }
            let upid = pve.lxc_delete(node, *vmid, true)?;
            pve.wait_task(&upid, ctx.task_deadline)?;
            pushed::forget(ctx.store, *vmid)?;
        }
        Action::Allocate {
            pool: p,
            holder,
            fixed,
            ..
        } => {
            let pool = pool(&p.id, p.cidr)?;
            let owner: Owner = holder.parse()?;
            let mut session = IpamSession::begin(ctx.store)?;
            match fixed {
                Some(FixedRole::Gateway) => session.allocate_role(&pool, Role::Gateway, &owner)?,
                Some(FixedRole::Dns) => session.allocate_role(&pool, Role::Dns, &owner)?,
                None => session.allocate_next(&pool, &owner)?,
            };
        }
        Action::ReleaseAddresses { prefix, .. } => {
            let mut session = IpamSession::begin(ctx.store)?;
            for id in session.pools()? {
                let Some(pool) = session.recorded_pool(&id)? else {
                    continue;
                };
                let owners: BTreeSet<Owner> = session
                    .list(&pool)?
                    .into_values()
                    .filter(|o| o.as_str().starts_with(prefix.as_str()))
                    .collect();
                for owner in owners {
                    session.release_owner(&pool, &owner)?;
                }
            }
        }
        Action::ForgetStatus { kind, name } => {
            ctx.store.remove_status(
                *kind,
                &name
                    .parse()
                    .map_err(|_| ReconcileError::Internal(format!("bad name {name}")))?,
            )?;
        }
        Action::CreateContainer(plan) => {
            let vmid = create_container(ctx, plan)?;
            let role = plan
                .marker
                .role
                .map(|r| format!("{r:?}").to_lowercase())
                .unwrap_or_else(|| "container".into());
            let outputs = outcome
                .outputs
                .entry((plan.marker.kind, plan.marker.name.to_string()))
                .or_default();
            outputs.insert(format!("{role}/vmid"), vmid.to_string());
            outputs.insert(format!("{role}/node"), plan.node.clone());
        }
        Action::StartContainer { vmid, node, .. } => {
            let upid = pve.lxc_start(node, *vmid)?;
            pve.wait_task(&upid, ctx.task_deadline)?;
        }
        Action::Configure(plan) => {
            for file in &plan.files {
                ctx.host.push(
                    &plan.node,
                    plan.vmid,
                    &file.path,
                    file.mode,
                    file.content.as_bytes(),
                )?;
            }
            for command in &plan.reload {
                ctx.host.exec(&plan.node, plan.vmid, command)?;
            }
            pushed::record(ctx.store, plan.vmid, &plan.node, &plan.digest)?;
        }
        other => {
            return Err(ReconcileError::Internal(format!(
                "step {other} is handled elsewhere"
            )));
        }
    }
    Ok(())
}

/// Creates the container under the `orbitlab-vmid` lock, choosing the VMID
/// there (`/cluster/nextid` reserves nothing); on a VMID conflict with
/// someone outside OrbitLab, asks again.
fn create_container(ctx: &Context<'_>, plan: &ContainerPlan) -> Result<u32, ReconcileError> {
    let nets = plan
        .nics
        .iter()
        .enumerate()
        .map(|(i, nic)| Ok((i as u8, net_value(ctx, nic)?)))
        .collect::<Result<BTreeMap<u8, String>, ReconcileError>>()?;
    let _lock = ctx.store.lock(&"vmid".parse::<LockName>()?)?;
    let mut last_error = None;
    for _ in 0..3 {
        let vmid = ctx.pve.next_vmid(None)?;
        let request = LxcCreate {
            vmid,
            ostemplate: plan.template.clone(),
            hostname: Some(plan.hostname.clone()),
            memory: Some(plan.memory_mib),
            swap: Some(0),
            cores: Some(plan.cores),
            rootfs: Some(format!("{}:{}", plan.storage, plan.disk_gib)),
            nets: nets.clone(),
            tags: Some(GUEST_TAG.into()),
            description: Some(format!(
                "{}\nManaged by OrbitLab: changes here are overwritten.",
                plan.marker
            )),
            unprivileged: Some(true),
            onboot: Some(true),
            ..LxcCreate::default()
        };
        match ctx.pve.lxc_create(&plan.node, &request) {
            Ok(upid) => {
                ctx.pve.wait_task(&upid, ctx.task_deadline)?;
                return Ok(vmid);
            }
            Err(e) if e.kind() == Some(&ApiErrorKind::AlreadyExists) => last_error = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_error.map_or_else(|| ReconcileError::Internal("no VMID".into()), Into::into))
}

/// `name=eth0,bridge=olvn1001,ip=172.16.0.1/24[,gw=...]`.
fn net_value(ctx: &Context<'_>, nic: &NicPlan) -> Result<String, ReconcileError> {
    let address: Ipv4Addr = match &nic.address {
        AddressRef::Known(addr) => *addr,
        AddressRef::Allocated {
            pool: pool_id,
            owner,
        } => {
            let mut session = IpamSession::begin(ctx.store)?;
            let id: PoolId = pool_id.parse()?;
            let pool = session.recorded_pool(&id)?.ok_or_else(|| {
                ReconcileError::Internal(format!("IPAM pool {pool_id} does not exist yet"))
            })?;
            session.lookup(&pool, &owner.parse()?)?.ok_or_else(|| {
                ReconcileError::Internal(format!("{owner} holds no address in {pool_id} yet"))
            })?
        }
    };
    let mut value = format!(
        "name={},bridge={},ip={address}/{}",
        nic.name, nic.bridge, nic.prefix
    );
    if let Some(gw) = nic.gateway {
        value.push_str(&format!(",gw={gw}"));
    }
    Ok(value)
}

/// Prefix of status outputs showing a container's configuration digest.
const PUSHED_PREFIX: &str = "config/";

/// Status outputs describing an object as observed.
pub(crate) fn describe(
    kind: Kind,
    name: &str,
    observed: &super::Observed,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if kind == Kind::Sector
        && let Some((tag, _)) = observed.tags.iter().find(|(_, s)| s.as_str() == name)
    {
        out.insert("vnet/tag".into(), tag.to_string());
        out.insert("vnet/id".into(), ids::sector_vnet(*tag));
        out.insert("zone/id".into(), ids::sector_zone(*tag));
    }
    for (vmid, c) in &observed.containers {
        if let Some(m) = &c.marker
            && m.kind == kind
            && m.name.as_ref() == name
        {
            let role = m
                .role
                .map(|r| format!("{r:?}").to_lowercase())
                .unwrap_or_else(|| "container".into());
            out.insert(format!("{role}/vmid"), vmid.to_string());
            out.insert(format!("{role}/node"), c.node.clone());
            if let Some(digest) = observed.pushed.get(vmid) {
                out.insert(format!("{PUSHED_PREFIX}{vmid}"), digest.clone());
            }
        }
    }
    let prefix = format!("{}/{name}/", kind.dir_name());
    for (owner, by_pool) in &observed.addresses {
        if let Some(role) = owner.strip_prefix(&prefix) {
            for (pool, addr) in by_pool {
                out.insert(format!("{role}/address/{pool}"), addr.to_string());
            }
        }
    }
    out
}
