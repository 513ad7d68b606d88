//! Executing a plan: each step through the Proxmox API, IPAM, the tag table
//! or the container host. Steps the plan assigns to another node
//! ([`Action::runs_on`]) are not attempted: their object waits for that
//! node's agent. A step that fails stops the rest of its object's steps
//! (other objects go on); a failed SDN apply stops everything after it.
//! SDN edits and their apply are one [`SdnTransaction`]: under Proxmox's
//! SDN lock on 9.x, under OrbitLab's `orbitlab-sdn` cluster lock on 8.x.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use orbitlab_manifests::HaResourceState;

use super::action::{
    Action, AddressChoice, AddressRef, ContainerPlan, NicPlan, Replaced, SwitchPlan, TemplateCopy,
    ZoneConfig,
};
use super::controllers::held_by;
use super::ids::{self, GUEST_TAG};
use super::plan::Plan;
use super::upgrades::{self, RoleUpgrade};
use super::{ObjectRef, ReconcileError};
use super::{pushed, tags};
use crate::host::{ContainerHost, bundle};
use crate::ipam::{IpamSession, Owner, Pool, PoolId};
use crate::pve::SdnSpec;
use crate::pve::{
    self, ApiErrorKind, LxcCreate, LxcUpdate, Pve, SdnCollection, SdnLockToken, SdnTransaction,
    Vmid,
};
use crate::store::{Lock, LockGuard, Store};

/// Everything a step may touch.
#[derive(Debug)]
pub struct Context<'a> {
    pub pve: &'a dyn Pve,
    pub store: &'a Store,
    pub host: &'a dyn ContainerHost,
    /// How long one Proxmox task may run.
    pub task_deadline: Duration,
    /// The cluster lock the steps run under, if any: no step starts once
    /// it is no longer held.
    pub lock: Option<&'a LockGuard>,
}

/// What executing a plan did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Steps that ran to completion.
    pub done: usize,
    /// Objects whose step failed, with the error.
    pub failed: BTreeMap<ObjectRef, String>,
    /// Objects waiting for another node's agent, with the reason.
    pub deferred: BTreeMap<ObjectRef, String>,
    /// Status outputs to record, per object.
    pub outputs: BTreeMap<ObjectRef, BTreeMap<String, String>>,
    /// The lock of [`Context::lock`] was lost: the steps after that point
    /// were not started.
    pub lock_lost: bool,
}

/// The SDN transaction of a plan: Proxmox's lock on 9.x, OrbitLab's
/// `orbitlab-sdn` cluster lock on 8.x.
type Sdn<'a> = SdnTransaction<'a, LockGuard>;

/// Runs `plan` in order. `allow_pending` says whether Proxmox may hold
/// pending SDN changes when the SDN lock is taken (only OrbitLab's own, as
/// observed).
pub fn execute<'a>(plan: &Plan, ctx: &Context<'a>, allow_pending: bool) -> Outcome {
    let mut outcome = Outcome::default();
    let mut stopped: BTreeSet<ObjectRef> = BTreeSet::new();
    let local = ctx.host.local_node();
    let mut sdn: Option<Sdn<'a>> = None;
    let mut all_stopped: Option<String> = None;
    for action in &plan.actions {
        let object = action.object();
        if all_stopped.is_none()
            && let Some(guard) = ctx.lock
            && !guard.is_held()
        {
            tracing::warn!(lock = %guard.path().display(), "cluster lock lost mid-pass: no further step starts");
            outcome.lock_lost = true;
            all_stopped = Some(format!(
                "not started: the cluster lock {} was lost (it expired or another node took it)",
                guard.path().display()
            ));
        }
        if let Some(reason) = &all_stopped {
            if let Some(o) = object {
                outcome.failed.entry(o).or_insert_with(|| reason.clone());
            }
            continue;
        }
        if object.as_ref().is_some_and(|o| stopped.contains(o)) {
            continue;
        }
        if let (Some(node), Some(o)) = (action.runs_on(), &object)
            && node.as_str() != local
        {
            outcome.deferred.insert(o.clone(), action.waits_for());
            stopped.insert(o.clone());
            continue;
        }
        let result = match action {
            Action::ApplySdn => apply_sdn(ctx, &mut sdn, allow_pending),
            a if a.is_sdn_edit() => {
                sdn_open(ctx, &mut sdn, allow_pending).and_then(|tx| sdn_edit(ctx, a, tx.token()))
            }
            other => step(ctx, other, &mut outcome),
        };
        match (result, object) {
            (Ok(()), _) => outcome.done += 1,
            (Err(e), Some(o)) => {
                tracing::warn!(object = %o, error = %e, "step failed: {action}");
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
        Ok::<_, ReconcileError>(ctx.store.lock(Lock::Sdn.name())?)
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
            vrf_vxlan,
            exitnodes,
            primary,
            mtu,
        } => {
            zone.kind = creating.then(|| "evpn".to_owned());
            zone.controller = Some(ids::CONTROLLER.to_owned());
            zone.vrf_vxlan = Some(*vrf_vxlan);
            zone.exitnodes = Some(join(exitnodes));
            zone.exitnodes_primary = Some(primary.to_string());
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
        Action::CreateController { asn, peers } => pve.sdn_create(
            ids::CONTROLLER,
            SdnSpec::Controller(&pve::ControllerConfig {
                kind: Some("evpn".into()),
                asn: Some(*asn),
                peers: Some(join(peers)),
                ..Default::default()
            }),
            lock,
        )?,
        Action::UpdateController { peers } => pve.sdn_update(
            ids::CONTROLLER,
            SdnSpec::Controller(&pve::ControllerConfig {
                peers: Some(join(peers)),
                ..Default::default()
            }),
            lock,
        )?,
        Action::CreateZone { id, config, .. } => {
            pve.sdn_create(id.as_str(), SdnSpec::Zone(&zone_config(config, true)), lock)?
        }
        Action::UpdateZone { id, config, .. } => pve.sdn_update(
            id.as_str(),
            SdnSpec::Zone(&zone_config(config, false)),
            lock,
        )?,
        Action::CreateVnet {
            id,
            zone,
            tag,
            alias,
            ..
        } => pve.sdn_create(
            id.as_str(),
            SdnSpec::Vnet(&pve::VnetConfig {
                zone: Some(zone.to_string()),
                tag: Some(*tag),
                alias: Some(alias.to_string()),
                ..Default::default()
            }),
            lock,
        )?,
        Action::CreateSubnet {
            vnet,
            id,
            gateway,
            snat,
            ..
        } => pve.sdn_create(
            &id.cidr.to_string(),
            SdnSpec::Subnet {
                vnet: vnet.as_str(),
                config: &pve::SubnetConfig {
                    kind: Some("subnet".into()),
                    gateway: Some(gateway.to_string()),
                    snat: snat.then_some(true),
                    ..Default::default()
                },
            },
            lock,
        )?,
        Action::DeleteSubnet { vnet, id, .. } => {
            pve.sdn_delete(SdnCollection::Subnets(vnet.as_str()), &id.to_string(), lock)?
        }
        Action::DeleteVnet { id, .. } => pve.sdn_delete(SdnCollection::Vnets, id.as_str(), lock)?,
        Action::DeleteZone { id, .. } => pve.sdn_delete(SdnCollection::Zones, id.as_str(), lock)?,
        other => unreachable!("not an SDN edit: {other}"),
    }
    Ok(())
}

fn pool(id: &PoolId, cidr: ipnet::Ipv4Net) -> Result<Pool, ReconcileError> {
    Ok(Pool::new(id.clone(), cidr)?)
}

fn step(ctx: &Context<'_>, action: &Action, outcome: &mut Outcome) -> Result<(), ReconcileError> {
    let pve = ctx.pve;
    match action {
        Action::ReserveTag { sector, tag } => tags::reserve(ctx.store, sector.as_ref(), tag.get())?,
        Action::ReleaseTag { sector, tag } => tags::release(ctx.store, sector.as_ref(), *tag)?,
        Action::RecordUplinks(uplinks) => super::uplinks::write(ctx.store, uplinks)?,
        Action::DestroyContainer {
            vmid,
            node,
            running,
            ..
        } => {
            if *running {
                let upid = pve.lxc_stop(node.as_str(), vmid.get())?;
                pve.wait_task(&upid, ctx.task_deadline)?;
            }
            let upid = pve.lxc_delete(node.as_str(), vmid.get(), true)?;
            pve.wait_task(&upid, ctx.task_deadline)?;
            pushed::forget(ctx.store, vmid.get())?;
            super::identities::forget(ctx.store, vmid.get())?;
        }
        Action::Allocate {
            pool: p,
            holder,
            choice,
            ..
        } => {
            let pool = pool(&p.id, p.cidr)?;
            let mut session = IpamSession::begin(ctx.store)?;
            match choice {
                AddressChoice::Role(role) => session.allocate_role(&pool, *role, holder)?,
                AddressChoice::Fixed(addr) => session.allocate_specific(&pool, *addr, holder)?,
                AddressChoice::Next => session.allocate_next(&pool, holder)?,
            };
        }
        Action::ReleaseAddresses { owner } => {
            let mut session = IpamSession::begin(ctx.store)?;
            for id in session.pools()? {
                let Some(pool) = session.recorded_pool(&id)? else {
                    continue;
                };
                let owners: BTreeSet<Owner> = session
                    .list(&pool)?
                    .into_values()
                    .filter(|o| held_by(o, owner))
                    .collect();
                for owner in owners {
                    session.release_owner(&pool, &owner)?;
                }
            }
        }
        Action::RecordPool { pool, record } => crate::pool::record(ctx.store, pool, record)?,
        Action::ForgetStatus(object) => {
            if object.kind == orbitlab_manifests::Kind::Sector {
                upgrades::forget(ctx.store, &object.name)?;
            }
            if object.kind == orbitlab_manifests::Kind::Pool {
                crate::pool::forget(ctx.store, &object.name)?;
            }
            ctx.store.remove_status(object.kind, &object.name)?;
        }
        Action::CreateContainer(plan) => {
            let vmid = create_container(ctx, plan).inspect_err(|e| {
                if let Some(build) = &plan.appliance
                    && let Some(old) = &build.replaces
                {
                    upgrade_failed(ctx, &plan.marker, old, &build.version, &plan.template, e);
                }
            })?;
            let prefix = output_prefix(&plan.marker);
            let outputs = outcome
                .outputs
                .entry(ObjectRef::new(plan.marker.kind, &plan.marker.name))
                .or_default();
            outputs.insert(format!("{prefix}vmid"), vmid.to_string());
            outputs.insert(format!("{prefix}node"), plan.node.to_string());
        }
        Action::StartContainer { vmid, node, .. } => {
            let upid = pve.lxc_start(node.as_str(), vmid.get())?;
            pve.wait_task(&upid, ctx.task_deadline)?;
        }
        Action::StopContainer { vmid, node, .. } => {
            let upid = pve.lxc_stop(node.as_str(), vmid.get())?;
            pve.wait_task(&upid, ctx.task_deadline)?;
        }
        Action::UpdateContainer(plan) => {
            let update = LxcUpdate {
                set: plan
                    .differences
                    .iter()
                    .map(|d| (d.key.clone(), d.want.clone()))
                    .collect(),
                ..LxcUpdate::default()
            };
            pve.lxc_update(plan.node.as_str(), plan.vmid.get(), &update)?;
            let outputs = outcome
                .outputs
                .entry(ObjectRef::new(plan.marker.kind, &plan.marker.name))
                .or_default();
            let at = crate::status::rfc3339(std::time::SystemTime::now());
            // `set/memory` for an instance, `set/gateway/memory` for a
            // Sector's container.
            let role = output_prefix(&plan.marker);
            for d in &plan.differences {
                outputs.insert(
                    format!("{}{role}{}", super::statuses::SET_PREFIX, d.key),
                    format!(
                        "{} (was {}) at {at}",
                        d.want,
                        d.have.as_deref().unwrap_or("unset")
                    ),
                );
            }
        }
        Action::ResizeDisk {
            vmid, node, gib, ..
        } => {
            let upid = pve.lxc_resize(node.as_str(), vmid.get(), "rootfs", *gib)?;
            pve.wait_task(&upid, ctx.task_deadline)?;
        }
        Action::AddHa {
            vmid, state, group, ..
        } => {
            pve.ha_add(&pve::HaResourceAdd {
                vmid: vmid.get(),
                state: match state {
                    HaResourceState::Started => pve::HaState::Started,
                    HaResourceState::Stopped => pve::HaState::Stopped,
                },
                group: group.as_ref().map(ToString::to_string),
                comment: Some(
                    action
                        .object()
                        .map(|o| format!("orbitlab:{o}"))
                        .unwrap_or_default(),
                ),
            })?;
        }
        Action::RemoveHa { vmid, .. } => pve.ha_remove(&format!("ct:{vmid}"))?,
        Action::Configure(plan) => {
            let (node, vmid) = (plan.node.as_str(), plan.vmid.get());
            let id = bundle::BundleId::new(&plan.digest, std::time::SystemTime::now());
            bundle::push(ctx.host, node, vmid, &id, &plan.files)?;
            pushed::record(ctx.store, vmid, node, &plan.digest)?;
        }
        Action::UploadTemplate(copy) => upload_template(ctx, copy)?,
        Action::SwitchAppliance(plan) => switch_appliance(ctx, plan)?,
        Action::Identity { step, .. } => super::execute_identity::identity_step(ctx, step)?,
        Action::Deliver(plan) => super::execute_identity::deliver(ctx, plan)?,
        other => {
            return Err(ReconcileError::Internal(format!(
                "step {other} is handled elsewhere"
            )));
        }
    }
    Ok(())
}

/// Copies an appliance template to a node lacking it: asks Proxmox where
/// the file is on this node (the source), hashes it, uploads it to the
/// target's storage with its SHA-256 (Proxmox refuses bytes that do not
/// match), and waits for the task that stores it.
fn upload_template(ctx: &Context<'_>, copy: &TemplateCopy) -> Result<(), ReconcileError> {
    let volume = ctx
        .pve
        .storage_volume(copy.source.as_str(), &copy.storage, &copy.volid)?;
    let path = std::path::Path::new(&volume.path);
    let sha256 = sha256_of(path).map_err(|source| ReconcileError::TemplateFile {
        path: volume.path.clone(),
        source,
    })?;
    let upid = ctx.pve.storage_upload(
        copy.target.as_str(),
        &copy.storage,
        &pve::StorageUpload {
            content: "vztmpl",
            file: path,
            file_name: &copy.file_name,
            sha256: &sha256,
        },
    )?;
    ctx.pve.wait_task(&upid, ctx.task_deadline)?;
    Ok(())
}

/// The SHA-256 of a file, lower-case hex, read in blocks.
fn sha256_of(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Creates the container under the `orbitlab-vmid` lock, choosing the VMID
/// there (`/cluster/nextid` reserves nothing); on a VMID conflict with
/// someone outside OrbitLab, asks again.
fn create_container(ctx: &Context<'_>, plan: &ContainerPlan) -> Result<Vmid, ReconcileError> {
    let nets = plan
        .nics
        .iter()
        .enumerate()
        .map(|(i, nic)| Ok((i as u8, net_value(ctx, i, nic)?)))
        .collect::<Result<BTreeMap<u8, String>, ReconcileError>>()?;
    // An instance's root password: read from the vault only now, sent
    // only in the request body.
    let password = match plan.guest.as_ref().and_then(|g| g.password.as_ref()) {
        Some((secret, path)) => {
            let value = crate::vault::Vault::new(ctx.store.clone())
                .get(path)
                .map_err(|e| ReconcileError::Internal(format!("Secret {secret}: {e}")))?
                .value;
            crate::audit::delivered(ctx.store, path, &plan.hostname, &[])?;
            let text = value.expose_str().ok_or_else(|| {
                ReconcileError::Internal(format!(
                    "Secret {secret} is not text, so it cannot be a password"
                ))
            })?;
            Some(pve::Secret::new(text))
        }
        None => None,
    };
    // A replacement takes over the old container's MAC addresses with its
    // IP addresses, so that neighbours' ARP entries stay right.
    let nets = match plan.appliance.as_ref().and_then(|b| b.replaces.as_ref()) {
        Some(old) => with_macs_of(ctx, old, nets)?,
        None => nets,
    };
    let _lock = ctx.store.lock(Lock::Vmid.name())?;
    let mut last_error = None;
    for _ in 0..3 {
        let vmid = Vmid::try_from(ctx.pve.next_vmid(None)?).map_err(|e| {
            ReconcileError::Internal(format!("Proxmox proposed an invalid next id: {e}"))
        })?;
        // Proxmox hands out the lowest free VMID again: a record of what was
        // pushed into an earlier container of that id (one destroyed by
        // hand) must not pass for the new, empty one — cleared before the
        // create, so a crash right after it cannot leave the record.
        pushed::forget(ctx.store, vmid.get())?;
        super::identities::forget(ctx.store, vmid.get())?;
        let request = LxcCreate {
            vmid: vmid.get(),
            ostemplate: plan.template.clone(),
            hostname: Some(plan.hostname.clone()),
            memory: Some(plan.memory_mib),
            swap: Some(0),
            cores: Some(plan.cores),
            rootfs: Some(format!("{}:{}", plan.storage, plan.disk_gib)),
            nets: nets.clone(),
            tags: Some(GUEST_TAG.into()),
            description: Some(description(plan)),
            unprivileged: Some(true),
            onboot: Some(plan.onboot()),
            // Started by the create task itself: one task and one pass
            // fewer than a separate start.
            start: Some(plan.starts()),
            nameserver: plan.guest.as_ref().map(|g| g.nameserver.to_string()),
            searchdomain: plan.guest.as_ref().map(|g| g.searchdomain.clone()),
            ssh_public_keys: plan.guest.as_ref().and_then(|g| g.ssh_public_keys.clone()),
            password: password.clone(),
            ..LxcCreate::default()
        };
        match ctx.pve.lxc_create(plan.node.as_str(), &request) {
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

/// The description a container is created with: its marker, then (for an
/// appliance) its version or (for an instance) what it was made with.
pub(crate) fn description(plan: &ContainerPlan) -> String {
    let mut text = format!("{}\n", plan.marker);
    if let Some(build) = &plan.appliance {
        text.push_str(&format!(
            "{}\n",
            ids::appliance_version_line(&build.version)
        ));
    }
    if let Some(guest) = &plan.guest {
        for line in &guest.creation_notes {
            text.push_str(&format!("{line}\n"));
        }
    }
    text.push_str("Managed by OrbitLab: changes here are overwritten.");
    text
}

/// The status outputs' prefix of a container: its role (`gateway/`), or
/// none for an object's only container (an instance).
pub(crate) fn output_prefix(marker: &super::ids::Marker) -> String {
    marker
        .role
        .map_or_else(String::new, |r| format!("{}/", r.as_str()))
}

/// `name=eth<index>,bridge=olvn1001,ip=172.16.0.1/24[,gw=...][,mtu=...]`.
fn net_value(ctx: &Context<'_>, index: usize, nic: &NicPlan) -> Result<String, ReconcileError> {
    let address: Ipv4Addr = match &nic.address {
        AddressRef::Known(addr) => *addr,
        AddressRef::Allocated { pool: id, owner } => {
            let mut session = IpamSession::begin(ctx.store)?;
            let pool = session.recorded_pool(id)?.ok_or_else(|| {
                ReconcileError::Internal(format!("IPAM pool {id} does not exist yet"))
            })?;
            session.lookup(&pool, owner)?.ok_or_else(|| {
                ReconcileError::Internal(format!("{owner} holds no address in {id} yet"))
            })?
        }
    };
    let mut value = format!(
        "name=eth{index},bridge={},ip={address}/{}",
        nic.bridge, nic.prefix
    );
    if let Some(gw) = nic.gateway {
        value.push_str(&format!(",gw={gw}"));
    }
    if let Some(mtu) = nic.mtu {
        value.push_str(&format!(",mtu={mtu}"));
    }
    Ok(value)
}

/// `nets` with the MAC address (`hwaddr`) each interface of the replaced
/// container `old` has, where it has one.
fn with_macs_of(
    ctx: &Context<'_>,
    old: &Replaced,
    mut nets: BTreeMap<u8, String>,
) -> Result<BTreeMap<u8, String>, ReconcileError> {
    let config = ctx.pve.lxc_config(old.node.as_str(), old.vmid.get())?;
    for (index, value) in &mut nets {
        let mac = config.get(&format!("net{index}")).and_then(|net| {
            net.split(',')
                .find_map(|kv| kv.strip_prefix("hwaddr=").map(str::to_owned))
        });
        if let Some(mac) = mac {
            value.push_str(&format!(",hwaddr={mac}"));
        }
    }
    Ok(nets)
}

/// Whether a step's error is the upgrade's own failure, one that trying
/// again would meet again: Proxmox refused the request or failed its task,
/// or the helper (or `pct`) refused the configuration. Those are recorded
/// so the version is not tried again. Anything that passes (the network,
/// a timeout, a locked guest, the agent stopping, a lock, the store) is
/// not recorded: the step is simply tried again.
fn fails_upgrade(error: &ReconcileError) -> bool {
    use pve::{ApiErrorKind as Kind, PveError as E};
    match error {
        ReconcileError::Pve(E::TaskFailed { .. } | E::Decode { .. } | E::Unsupported { .. }) => {
            true
        }
        ReconcileError::Pve(E::Api { kind, .. }) => matches!(
            kind,
            Kind::Invalid(_) | Kind::AlreadyExists | Kind::NotFound | Kind::Forbidden | Kind::Other
        ),
        ReconcileError::Host(crate::host::HostError::Failed { .. }) => true,
        _ => false,
    }
}

/// Why an upgrade failed, for its record and the Sector's status: the
/// helper's or Proxmox's own words, without the command line, at most
/// [`FAILURE_REASON_MAX`] characters.
fn failure_reason(error: &ReconcileError) -> String {
    let text = match error {
        ReconcileError::Host(crate::host::HostError::Failed { status, stderr, .. }) => {
            format!("in the container ({status}): {stderr}")
        }
        other => other.to_string(),
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(FAILURE_REASON_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Most characters of an upgrade's failure reason kept.
const FAILURE_REASON_MAX: usize = 300;

/// Records that the upgrade of `marker`'s container `old` to `to` failed
/// with `error` (when it is the upgrade's own failure; logged if the record
/// cannot be written: the step's error is reported anyway).
fn upgrade_failed(
    ctx: &Context<'_>,
    marker: &ids::Marker,
    old: &Replaced,
    to: &str,
    template: &str,
    error: &ReconcileError,
) {
    let Some(role) = marker.role else {
        return;
    };
    if !fails_upgrade(error) {
        return;
    }
    let entry = RoleUpgrade::Failed {
        from: old.version.clone(),
        to: to.to_owned(),
        template: template.to_owned(),
        reason: failure_reason(error),
        at: crate::status::rfc3339(std::time::SystemTime::now()),
    };
    if let Err(e) = upgrades::set(ctx.store, &marker.name, role, entry) {
        tracing::warn!(%marker, error = %e, "cannot record a failed appliance upgrade");
    }
}

/// The switch of an appliance upgrade ([`SwitchPlan`]): under the
/// `orbitlab-reconcile` lock (taken here in a node-scoped run), checks
/// that both containers are still where the plan saw them, records the
/// old one's stop, stops it, starts the new one, pushes its configuration,
/// makes it start on boot, and records the interruption. On the
/// upgrade's own failure: records it, stops the new one and, once that is
/// stopped, starts the old one again (what is left undone, the next pass
/// finishes from the record).
fn switch_appliance(ctx: &Context<'_>, plan: &SwitchPlan) -> Result<(), ReconcileError> {
    let _lock = match ctx.lock {
        Some(_) => None,
        None => Some(ctx.store.lock(Lock::Reconcile.name())?),
    };
    let role = plan
        .marker
        .role
        .ok_or_else(|| ReconcileError::Internal(format!("{} plays no role", plan.marker)))?;
    let sector = &plan.marker.name;
    let entry = upgrades::read_all(ctx.store)?
        .remove(sector)
        .and_then(|mut r| r.remove(&role));
    if matches!(&entry, Some(RoleUpgrade::Failed { to, template, .. }) if *to == plan.to && *template == plan.template)
    {
        return Err(ReconcileError::Internal(
            "the upgrade failed meanwhile; the next pass rolls it back".into(),
        ));
    }
    let running = |node: &orbitlab_manifests::NodeName, vmid: Vmid| {
        Ok::<_, ReconcileError>(
            ctx.pve
                .lxc_list(node.as_str())?
                .into_iter()
                .find(|g| g.vmid == vmid.get())
                .map(|g| g.status == pve::GuestState::Running),
        )
    };
    let (Some(old_running), Some(new_running)) = (
        running(&plan.old.node, plan.old.vmid)?,
        running(&plan.node, plan.new)?,
    ) else {
        return Err(ReconcileError::Internal(format!(
            "container {} or {} is gone since the plan was made; the next pass decides again",
            plan.old.vmid, plan.new
        )));
    };
    let (node, new) = (plan.node.as_str(), plan.new.get());
    let mut stopped_here = None;
    let result = (|| {
        let stopped_at = if old_running {
            let now = std::time::SystemTime::now();
            upgrades::set(
                ctx.store,
                sector,
                role,
                RoleUpgrade::Switching {
                    from: plan.old.version.clone(),
                    to: plan.to.clone(),
                    vmid: new,
                    stopped_at_ms: upgrades::ms(now),
                },
            )?;
            stopped_here = Some(std::time::Instant::now());
            let upid = ctx
                .pve
                .lxc_stop(plan.old.node.as_str(), plan.old.vmid.get())?;
            ctx.pve.wait_task(&upid, ctx.task_deadline)?;
            upgrades::ms(now)
        } else {
            // Stopped by an earlier, interrupted switch: measured from then
            // (from now when that was not recorded).
            match &entry {
                Some(RoleUpgrade::Switching {
                    vmid,
                    stopped_at_ms,
                    ..
                }) if *vmid == new => *stopped_at_ms,
                _ => upgrades::ms(std::time::SystemTime::now()),
            }
        };
        if !new_running {
            let upid = ctx.pve.lxc_start(node, new)?;
            ctx.pve.wait_task(&upid, ctx.task_deadline)?;
        }
        if let Some(configure) = &plan.configure {
            let id = bundle::BundleId::new(&configure.digest, std::time::SystemTime::now());
            bundle::push(ctx.host, node, new, &id, &configure.files)?;
        }
        // Never both on boot: a node that reboots before the old one is
        // destroyed must not start two containers with one address.
        ctx.pve
            .lxc_update(plan.old.node.as_str(), plan.old.vmid.get(), &on_boot(false))?;
        ctx.pve.lxc_update(node, new, &on_boot(true))?;
        Ok::<u64, ReconcileError>(stopped_at)
    })();
    match result {
        Ok(stopped_at) => {
            let now = std::time::SystemTime::now();
            let interruption_ms = match (&entry, stopped_here) {
                // Switched before a crash that lost only the record of the
                // push: the interruption measured then stands.
                (
                    Some(RoleUpgrade::Done {
                        vmid,
                        interruption_ms,
                        ..
                    }),
                    None,
                ) if *vmid == new => *interruption_ms,
                (_, Some(at)) => u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX),
                (_, None) => upgrades::ms(now).saturating_sub(stopped_at),
            };
            upgrades::set(
                ctx.store,
                sector,
                role,
                RoleUpgrade::Done {
                    from: plan.old.version.clone(),
                    to: plan.to.clone(),
                    vmid: new,
                    interruption_ms,
                    at: crate::status::rfc3339(now),
                },
            )?;
            if let Some(configure) = &plan.configure {
                pushed::record(ctx.store, new, node, &configure.digest)?;
            }
            Ok(())
        }
        Err(error) => {
            if fails_upgrade(&error) {
                upgrade_failed(
                    ctx,
                    &plan.marker,
                    &plan.old,
                    &plan.to,
                    &plan.template,
                    &error,
                );
                roll_back(ctx, plan);
            }
            Err(error)
        }
    }
}

/// After a failed switch: the new container stopped, then the old one
/// started again. Best effort (logged): the next pass finishes what is
/// left from the record of the failure.
fn roll_back(ctx: &Context<'_>, plan: &SwitchPlan) {
    let task = |upid: Result<pve::Upid, pve::PveError>| {
        ctx.pve.wait_task(&upid?, ctx.task_deadline).map(drop)
    };
    let new_stopped = match ctx.pve.lxc_list(plan.node.as_str()) {
        Ok(guests) => guests
            .iter()
            .find(|g| g.vmid == plan.new.get())
            .is_none_or(|g| g.status != pve::GuestState::Running),
        Err(_) => false,
    } || task(ctx.pve.lxc_stop(plan.node.as_str(), plan.new.get())).is_ok();
    if !new_stopped {
        tracing::warn!(vmid = %plan.new, "cannot stop the new appliance container after a failed upgrade; the next pass removes it before starting the old one");
        return;
    }
    if let Err(e) = task(
        ctx.pve
            .lxc_start(plan.old.node.as_str(), plan.old.vmid.get()),
    ) {
        tracing::warn!(vmid = %plan.old.vmid, error = %e, "cannot start the old appliance container again after a failed upgrade; the next pass does");
    }
    if let Err(e) = ctx
        .pve
        .lxc_update(plan.old.node.as_str(), plan.old.vmid.get(), &on_boot(true))
    {
        tracing::warn!(vmid = %plan.old.vmid, error = %e, "cannot set the old appliance container to start on boot again after a failed upgrade");
    }
}

/// The config update that sets whether a container starts on boot.
fn on_boot(yes: bool) -> LxcUpdate {
    LxcUpdate {
        set: [("onboot".to_owned(), if yes { "1" } else { "0" }.to_owned())].into(),
        ..LxcUpdate::default()
    }
}
