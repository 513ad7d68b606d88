//! Appliance upgrades: moving a Sector role's container to the template of
//! the version its Appliance manifest (or, without one, this release)
//! names. Templates are immutable, so a new version replaces the
//! container; it is never upgraded in place.
//!
//! Decided from what exists: each appliance container records its version
//! in its description
//! ([`crate::reconcile::ids::appliance_version_line`]); a container
//! recording another version (or none) is *old*, one recording the
//! desired version *new*. A role with an old container is upgraded:
//!
//! 1. the new container is created **stopped**, not started on boot, on
//!    the old one's node, with the same network configuration (addresses,
//!    MAC addresses) — the addresses are IPAM's `sector/<name>/<role>`
//!    owners', never the container's, so nothing is allocated or released;
//! 2. one [`Action::SwitchAppliance`] step on the new container's node
//!    stops the old one, starts the new one, pushes its configuration (a
//!    successful `apply` of the helper means its service runs) and makes
//!    it start on boot; it records the interruption (the old one's stop to
//!    the new one configured) in [`crate::reconcile::upgrades`];
//! 3. the old container is destroyed.
//!
//! One Sector upgrades at a time, cluster-wide, one role at a time
//! (gateway first): a Sector with both an old and a new container of a
//! role is mid-upgrade and goes first (the first by name if a crash left
//! more than one); otherwise the first Sector by name that needs an
//! upgrade. The others keep their old containers serving and wait
//! ("waiting to upgrade: sector X is upgrading").
//!
//! A failure of the create, start or configuration is recorded; the new
//! container is removed and the old one started again (the switch does it
//! at once, the next passes finish it), the Sector is Failed with the
//! reason, and that version and template are not tried again until the
//! Appliance names another (or the record `upgrades/<sector>.json` is
//! removed). Every state a crash can leave — new made while the old runs,
//! old stopped before the new started, both stopped, new running before
//! it was configured — is one of the states above, driven forward (or
//! back, after a failure) by the next pass, and no third container is
//! ever made: a new container is made only while none of the new version
//! exists.
//!
//! Sectors with `spec.ha` are not upgraded: their HA resources follow the
//! container, and Proxmox HA starting a stopped old container behind the
//! switch's back would put two containers on the same addresses. Such a
//! Sector keeps its containers and is Failed with the reason.

use std::collections::BTreeSet;

use orbitlab_manifests::{ApplianceRole, Kind, Name, SectorSpec};

use crate::ipam::PoolId;
use crate::pve::Vmid;
use crate::reconcile::ObjectRef;
use crate::reconcile::action::{Action, ApplianceBuild, ContainerPlan, Replaced, SwitchPlan};
use crate::reconcile::controllers::part;
use crate::reconcile::ids::Marker;
use crate::reconcile::observed::{ContainerObs, Observed};
use crate::reconcile::plan::Planner;
use crate::reconcile::upgrades::RoleUpgrade;
use crate::store::layout;

/// What the upgrade of a Sector's appliances plans in one pass.
#[derive(Debug, Default)]
pub(super) struct Upgrade {
    /// Roles whose containers the upgrade takes care of (the others go
    /// through the ordinary container steps).
    handled: BTreeSet<ApplianceRole>,
    /// Steps for those roles' containers.
    pub steps: Vec<Action>,
    /// The observation the configuration is rendered from: each handled
    /// role shows only the container that serves it (or is about to).
    pub view: Option<Observed>,
    /// The switch to plan, its configuration filled in by [`Upgrade::finish`].
    switch: Option<Pending>,
}

/// A switch waiting for the Sector's configuration steps.
#[derive(Debug)]
struct Pending {
    plan: SwitchPlan,
    /// The old container, destroyed once the new one runs configured.
    destroy_old: Action,
    /// Whether the new container holds a configuration (it was pushed
    /// once; whether it is the current one, the configuration steps say).
    configured_once: bool,
    /// Whether the configuration could be rendered now: the other role's
    /// container runs and the Backplane address is allocated.
    renderable: bool,
}

impl Upgrade {
    /// Whether the upgrade takes care of `role`'s containers.
    pub fn handles(&self, role: Option<ApplianceRole>) -> bool {
        role.is_some_and(|r| self.handled.contains(&r))
    }

    /// The Sector's configuration steps with the switch folded in: the
    /// new container's configuration goes into the switch. `configure` is
    /// `None` when the configuration cannot be rendered (no switch then).
    pub fn finish(self, configure: Option<Vec<Action>>) -> Vec<Action> {
        let mut steps = self.steps;
        let Some(configure) = configure else {
            return steps;
        };
        let Some(mut pending) = self.switch else {
            steps.extend(configure);
            return steps;
        };
        for step in configure {
            match step {
                Action::Configure(c)
                    if c.marker == pending.plan.marker && c.vmid == pending.plan.new =>
                {
                    pending.plan.configure = Some(*c);
                }
                other => steps.push(other),
            }
        }
        let plan = pending.plan;
        if plan.configure.is_none() && (!pending.configured_once || !pending.renderable) {
            // Nothing to push into it yet: its configuration is rendered
            // once the other role's container runs.
            return steps;
        }
        if plan.old_running || !plan.new_running || plan.configure.is_some() {
            steps.push(Action::SwitchAppliance(Box::new(plan)));
        } else {
            steps.push(pending.destroy_old);
        }
        steps
    }
}

/// How a role's containers stand against the desired version.
struct RoleState<'a> {
    marker: Marker,
    /// Containers recording another version (or none), lowest VMID first.
    old: Vec<(Vmid, &'a ContainerObs)>,
    /// Containers recording the desired version, lowest VMID first.
    new: Vec<(Vmid, &'a ContainerObs)>,
    version: String,
    template: String,
    /// The recorded failure of an upgrade to this version and template.
    failed: Option<&'a RoleUpgrade>,
}

impl RoleState<'_> {
    /// The old container kept (the running one, else the lowest VMID).
    fn keep(&self) -> Option<(Vmid, &ContainerObs)> {
        self.old
            .iter()
            .find(|(_, c)| c.running)
            .or_else(|| self.old.first())
            .copied()
    }

    fn replaced(&self) -> Option<Replaced> {
        self.keep().map(|(vmid, c)| Replaced {
            vmid,
            node: c.node.clone(),
            version: c.version.clone(),
        })
    }

    fn from(&self) -> String {
        self.keep()
            .and_then(|(_, c)| c.version.clone())
            .unwrap_or_else(|| "an unrecorded version".into())
    }
}

impl<'p> Planner<'p> {
    /// How `sector`'s `role` container stands.
    fn role_state(&self, sector: &Name, role: ApplianceRole) -> RoleState<'p> {
        let marker = part(&ObjectRef::new(Kind::Sector, sector), role);
        let choice = self.desired.appliance(role);
        let version = choice.version().to_owned();
        let (new, old) = self
            .containers_with(&marker)
            .into_iter()
            .partition(|(_, c)| c.version.as_deref() == Some(version.as_str()));
        let observed: &'p Observed = self.observed;
        let failed = observed
            .upgrades
            .get(sector)
            .and_then(|r| r.get(&role))
            .filter(|e| {
                matches!(e, RoleUpgrade::Failed { to, template, .. }
                    if *to == version && *template == choice.template)
            });
        RoleState {
            marker,
            old,
            new,
            version,
            template: choice.template,
            failed,
        }
    }

    /// The roles of `sector` an upgrade may move now (an old container,
    /// no recorded failure), gateway first; empty for a Sector with `ha`.
    fn upgradable(&self, sector: &Name, spec: &SectorSpec) -> Vec<RoleState<'p>> {
        if spec.ha.is_some() {
            return Vec::new();
        }
        ApplianceRole::ALL
            .into_iter()
            .map(|role| self.role_state(sector, role))
            .filter(|s| !s.old.is_empty() && s.failed.is_none())
            .collect()
    }

    /// The Sector whose turn it is to upgrade: the first by name with a
    /// role mid-upgrade (old and new containers), else the first by name
    /// with a role to upgrade.
    fn upgrade_turn(&self) -> Option<&'p Name> {
        let desired = self.desired;
        let mut first = None;
        for (name, spec) in &desired.sectors {
            let roles = self.upgradable(name, spec);
            if roles.iter().any(|s| !s.new.is_empty()) {
                return Some(name);
            }
            if first.is_none() && !roles.is_empty() {
                first = Some(name);
            }
        }
        first
    }

    /// The upgrade of `sector`'s appliance containers this pass (see the
    /// module's documentation); `plans` are the containers it would make
    /// afresh, `backplane` the Backplane's pool.
    pub(super) fn sector_upgrade(
        &mut self,
        sector: &Name,
        spec: &SectorSpec,
        plans: [&ContainerPlan; 2],
        backplane: &PoolId,
    ) -> Upgrade {
        let owner = ObjectRef::new(Kind::Sector, sector);
        let mut upgrade = Upgrade::default();
        let states: Vec<RoleState<'p>> = ApplianceRole::ALL
            .into_iter()
            .map(|role| self.role_state(sector, role))
            .filter(|s| !s.old.is_empty())
            .collect();
        if states.is_empty() {
            return upgrade;
        }
        let turn = self.upgrade_turn();
        // The role moving now: the first that may.
        let current = states
            .iter()
            .find(|s| s.failed.is_none() && spec.ha.is_none())
            .map(|s| s.marker.role);
        let mut view = self.observed.clone();
        for state in &states {
            let role = state.marker.role.unwrap_or(ApplianceRole::Gateway);
            upgrade.handled.insert(role);
            let Some((keep, kept)) = state.keep() else {
                continue;
            };
            // Old duplicates a crash (or an earlier upgrade's manifest
            // change) left: only the one kept stays.
            for (vmid, c) in state.old.iter().filter(|(v, _)| *v != keep) {
                upgrade.steps.push(destroy(&owner, *vmid, c));
            }
            let moving = turn == Some(sector) && current == Some(state.marker.role);
            if !moving {
                self.hold(&owner, spec, state, &mut upgrade);
                view.containers
                    .retain(|vmid, c| c.marker.as_ref() != Some(&state.marker) || *vmid == keep);
                continue;
            }
            let Some(&(new, made)) = state.new.first() else {
                // Step 1: the new container, stopped, where the old one is.
                if !kept.running {
                    upgrade.steps.push(start(&state.marker, keep, kept));
                }
                let plan = plans
                    .iter()
                    .find(|p| p.marker == state.marker)
                    .map(|p| ContainerPlan {
                        node: kept.node.clone(),
                        appliance: Some(ApplianceBuild {
                            version: state.version.clone(),
                            replaces: state.replaced(),
                        }),
                        ..(*p).clone()
                    });
                match plan {
                    Some(plan)
                        if self.observed.appliance.has(&plan.node, &plan.template)
                            == Some(false) =>
                    {
                        self.wait(
                            owner.clone(),
                            format!(
                                "upgrading the {} from {} to {}: waiting for its template {} on node {}",
                                role.as_str(),
                                state.from(),
                                state.version,
                                plan.template,
                                plan.node
                            ),
                        );
                    }
                    Some(plan) => upgrade.steps.push(Action::CreateContainer(Box::new(plan))),
                    None => {}
                }
                view.containers
                    .retain(|vmid, c| c.marker.as_ref() != Some(&state.marker) || *vmid == keep);
                continue;
            };
            // New duplicates a crash left.
            for (vmid, c) in &state.new[1..] {
                upgrade.steps.push(destroy(&owner, *vmid, c));
            }
            // Steps 2 and 3: the switch, then the old one destroyed.
            view.containers
                .retain(|vmid, c| c.marker.as_ref() != Some(&state.marker) || *vmid == new);
            if let Some(c) = view.containers.get_mut(&new) {
                c.running = true;
            }
            let other = part(&owner, other_role(role));
            let other_runs = view.container(&other).is_some_and(|(_, c)| c.running);
            let gateway = part(&owner, ApplianceRole::Gateway);
            upgrade.switch = Some(Pending {
                plan: SwitchPlan {
                    marker: state.marker.clone(),
                    old: state.replaced().unwrap_or(Replaced {
                        vmid: keep,
                        node: kept.node.clone(),
                        version: None,
                    }),
                    old_running: kept.running,
                    new,
                    node: made.node.clone(),
                    new_running: made.running,
                    to: state.version.clone(),
                    template: state.template.clone(),
                    configure: None,
                },
                destroy_old: destroy(&owner, keep, kept),
                configured_once: self.observed.pushed.contains_key(&new),
                renderable: other_runs
                    && self.observed.address(&gateway.owner(), backplane).is_some(),
            });
        }
        // The other Sectors wait their turn, saying why.
        if let Some(turn) = turn.filter(|t| *t != sector)
            && let Some(state) = states
                .iter()
                .find(|s| s.failed.is_none() && spec.ha.is_none())
        {
            self.wait(
                owner.clone(),
                format!(
                    "waiting to upgrade: sector {turn} is upgrading (this Sector's {} goes from {} to {} after it)",
                    state.marker.role.map_or("appliance", ApplianceRole::as_str),
                    state.from(),
                    state.version
                ),
            );
        }
        upgrade.view = Some(view);
        upgrade
    }

    /// Keeps the old container of `state` serving while its role does not
    /// move: new containers removed, the old one started (unless HA keeps
    /// its power state), its HA resource as declared; the Sector Failed
    /// when the upgrade failed or is refused.
    fn hold(
        &mut self,
        owner: &ObjectRef,
        spec: &SectorSpec,
        state: &RoleState<'_>,
        upgrade: &mut Upgrade,
    ) {
        let Some((keep, kept)) = state.keep() else {
            return;
        };
        for (vmid, c) in &state.new {
            upgrade.steps.push(destroy(owner, *vmid, c));
        }
        let managed = self.ha_steps(
            owner,
            &state.marker,
            keep,
            spec.ha.as_ref(),
            &mut upgrade.steps,
        );
        if !kept.running && !managed {
            upgrade.steps.push(start(&state.marker, keep, kept));
        }
        // Not replaced (its upgrade failed or is refused): it serves with
        // its Appliance's memory. One waiting its turn keeps its memory:
        // its replacement is made with the new one.
        if state.failed.is_some() || spec.ha.is_some() {
            upgrade
                .steps
                .extend(self.appliance_memory(&state.marker, keep, kept));
        }
        let role = state.marker.role.map_or("appliance", ApplianceRole::as_str);
        if let Some(RoleUpgrade::Failed { reason, .. }) = state.failed {
            self.block(
                owner.clone(),
                format!(
                    "the {role} upgrade from {} to {} failed: {reason}; the {} container serves again. It is tried again when the {role} Appliance names another version or template, or once /etc/pve/{} is removed",
                    state.from(),
                    state.version,
                    state.from(),
                    // Under pmxcfs's mount, where the store lives on a node.
                    layout::upgrade(&owner.name)
                ),
            );
        } else if spec.ha.is_some() {
            self.block(
                owner.clone(),
                format!(
                    "the {role} runs {} and its Appliance asks for {}, but the appliances of Sectors with spec.ha are not upgraded (Proxmox HA would start the old container during the switch); remove spec.ha to let it upgrade, then declare it again",
                    state.from(),
                    state.version
                ),
            );
        }
    }
}

/// The role that is not `role`.
fn other_role(role: ApplianceRole) -> ApplianceRole {
    match role {
        ApplianceRole::Gateway => ApplianceRole::Dns,
        ApplianceRole::Dns => ApplianceRole::Gateway,
    }
}

fn destroy(owner: &ObjectRef, vmid: Vmid, c: &ContainerObs) -> Action {
    Action::DestroyContainer {
        owner: owner.clone(),
        vmid,
        node: c.node.clone(),
        running: c.running,
    }
}

fn start(marker: &Marker, vmid: Vmid, c: &ContainerObs) -> Action {
    Action::StartContainer {
        marker: marker.clone(),
        vmid,
        node: c.node.clone(),
    }
}

/// The Sector status output of each role's last upgrade
/// (`gateway/upgrade`).
pub(super) fn describe(sector: &Name, observed: &Observed) -> Vec<(String, String)> {
    observed
        .upgrades
        .get(sector)
        .into_iter()
        .flatten()
        .map(|(role, entry)| (format!("{}/upgrade", role.as_str()), entry.describe()))
        .collect()
}
