//! `plan(desired, observed) -> Plan`: a pure function from the manifests and
//! one snapshot of Proxmox and OrbitLab's records to the ordered steps that
//! make them match, plus the objects that cannot proceed and why.
//!
//! The kinds' controllers ([`super::controllers`]) add their objects'
//! steps to one shared [`Planner`], in registration order (a Sector needs
//! the Backplane its Cluster plans). The planner then adds the single
//! cluster-wide SDN apply and sorts every step by [`Phase`], so that all
//! SDN edits of all kinds are applied together, once.
//!
//! Steps whose inputs only exist after earlier steps ran (a container's
//! configuration needs its VMID and addresses) are planned on the next
//! pass; the reconciler repeats observe → plan → execute until nothing is
//! left, so `orbitlab plan` shows the first pass.

mod desired;

use std::collections::{BTreeMap, BTreeSet};

pub use desired::{
    APPLIANCE_VERSION, ApplianceChoice, ApplianceManifest, Desired, MemberOf,
    default_appliance_template,
};

use super::ObjectRef;
use super::action::Action;
use super::controllers::{self, Backplane, Controller};
use super::ids::Marker;
use super::observed::Observed;
use crate::ipam::PoolId;
use crate::pve::Vmid;

/// The result of planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps in execution order.
    pub actions: Vec<Action>,
    /// Objects that cannot proceed, with the reason (their steps that can
    /// still run are planned; they are never Ready).
    pub blocked: BTreeMap<ObjectRef, String>,
    /// Objects waiting for something outside their own steps (their
    /// Sector's network), with the reason: not Ready, not failed.
    pub waiting: BTreeMap<ObjectRef, String>,
    /// Objects with a container on a node that is offline, with the
    /// reason: not Ready, not failed, nothing made again elsewhere.
    pub unavailable: BTreeMap<ObjectRef, String>,
    /// Every object the manifests declare that this plan covers.
    pub declared: BTreeSet<ObjectRef>,
}

impl Plan {
    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Declared objects with nothing left to do and nothing blocking them.
    pub fn ready(&self) -> BTreeSet<ObjectRef> {
        let busy: BTreeSet<ObjectRef> = self.actions.iter().filter_map(Action::object).collect();
        self.declared
            .iter()
            .filter(|o| {
                !busy.contains(*o)
                    && !self.blocked.contains_key(*o)
                    && !self.waiting.contains_key(*o)
                    && !self.unavailable.contains_key(*o)
            })
            .cloned()
            .collect()
    }

    /// The steps of one object.
    pub fn steps_of<'a>(&'a self, object: &'a ObjectRef) -> impl Iterator<Item = &'a Action> + 'a {
        self.actions
            .iter()
            .filter(move |a| a.object().as_ref() == Some(object))
    }
}

/// Plans every object of every kind that has a controller. Pure: same
/// inputs, same plan.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut planner = Planner {
        desired,
        observed,
        markers: index(observed),
        plan: Plan::default(),
        reserved_tags: BTreeSet::new(),
        planned_addresses: BTreeMap::new(),
        placed: BTreeMap::new(),
        placed_members: BTreeMap::new(),
        backplane: None,
    };
    for controller in controllers::ALL {
        planner.run(*controller);
    }
    planner.finish()
}

/// The containers carrying each marker, lowest VMID first.
fn index(observed: &Observed) -> BTreeMap<&Marker, Vec<Vmid>> {
    let mut markers: BTreeMap<&Marker, Vec<Vmid>> = BTreeMap::new();
    for (vmid, c) in &observed.containers {
        if let Some(marker) = &c.marker {
            markers.entry(marker).or_default().push(*vmid);
        }
    }
    markers
}

impl<'a> Planner<'a> {
    /// Runs `f` on a planner over `view` (an observation adjusted by a
    /// controller, such as one that shows only the container an upgrade
    /// is switching to), sharing this one's desired state and Backplane.
    /// What `f` returns is its caller's to keep; the reasons it gives for
    /// blocking or waiting objects are this planner's too, so none is lost
    /// from the status.
    pub(crate) fn seeing<T>(
        &mut self,
        view: &Observed,
        f: impl FnOnce(&mut Planner<'_>) -> T,
    ) -> T {
        let mut sub = Planner {
            desired: self.desired,
            observed: view,
            markers: index(view),
            plan: Plan::default(),
            reserved_tags: self.reserved_tags.clone(),
            planned_addresses: self.planned_addresses.clone(),
            placed: self.placed.clone(),
            placed_members: self.placed_members.clone(),
            backplane: self.backplane.clone(),
        };
        let out = f(&mut sub);
        for (object, reason) in sub.plan.blocked {
            self.block(object, reason);
        }
        for (object, reason) in sub.plan.waiting {
            self.wait(object, reason);
        }
        out
    }

    /// The containers carrying `marker`, lowest VMID first (more than one
    /// only after a crash between a create and its record).
    pub fn containers_with(
        &self,
        marker: &Marker,
    ) -> Vec<(Vmid, &'a super::observed::ContainerObs)> {
        let observed: &'a Observed = self.observed;
        self.markers
            .get(marker)
            .into_iter()
            .flatten()
            .filter_map(|vmid| Some((*vmid, observed.containers.get(vmid)?)))
            .collect()
    }
}

/// Planning state shared by the controllers during one plan.
#[derive(Debug)]
pub(crate) struct Planner<'a> {
    pub desired: &'a Desired,
    pub observed: &'a Observed,
    /// The containers carrying each marker, lowest VMID first (an index of
    /// `observed.containers`).
    markers: BTreeMap<&'a Marker, Vec<Vmid>>,
    plan: Plan,
    /// Tags this plan reserves, so two new Sectors never get the same one.
    pub reserved_tags: BTreeSet<u32>,
    /// Ordinary addresses this plan takes from each pool, so that
    /// exhaustion is refused before anything is created.
    pub planned_addresses: BTreeMap<PoolId, u32>,
    /// Instances this plan places on each node, and their memory (MiB),
    /// so that one plan never overfills a node.
    pub placed: BTreeMap<orbitlab_manifests::NodeName, (u32, u64)>,
    /// Members of each Pool this plan places on each node, for the pool's
    /// spread.
    pub placed_members: BTreeMap<(orbitlab_manifests::Name, orbitlab_manifests::NodeName), u32>,
    /// What the Cluster's controller found out about the Backplane, for
    /// the kinds planned after it (`None` unless it could plan it; whether
    /// it is blocked is [`Planner::blocked`] of the Cluster).
    pub backplane: Option<Backplane>,
}

impl Planner<'_> {
    /// Plans one kind: every declared object, then the teardown of every
    /// object of that kind that is observed but no longer declared.
    fn run(&mut self, controller: &dyn Controller) {
        let kind = controller.kind();
        let declared = controller.declared(self.desired);
        for name in &declared {
            let object = ObjectRef::new(kind, name);
            self.plan.declared.insert(object.clone());
            match controller.plan(name, self) {
                Ok(steps) => self.add(object, steps),
                Err(reason) => self.block(object, reason),
            }
        }
        for name in controller.observed(self.observed) {
            if !declared.contains(&name) {
                let steps = controller.teardown(&name, &mut *self);
                self.add(ObjectRef::new(kind, &name), steps);
            }
        }
    }

    /// Marks `object` blocked (the first reason given is kept).
    pub fn block(&mut self, object: ObjectRef, reason: impl Into<String>) {
        self.plan
            .blocked
            .entry(object)
            .or_insert_with(|| reason.into());
    }

    /// Marks `object` waiting (the first reason given is kept).
    pub fn wait(&mut self, object: ObjectRef, reason: impl Into<String>) {
        self.plan
            .waiting
            .entry(object)
            .or_insert_with(|| reason.into());
    }

    /// Marks `object` unavailable: a container of it is on an offline
    /// node (the first reason given is kept).
    pub fn unavailable(&mut self, object: ObjectRef, reason: impl Into<String>) {
        self.plan
            .unavailable
            .entry(object)
            .or_insert_with(|| reason.into());
    }

    /// Why `object` is blocked, if it is.
    pub fn blocked(&self, object: &ObjectRef) -> Option<&str> {
        self.plan.blocked.get(object).map(String::as_str)
    }

    /// Adds an object's steps, unless SDN changes are needed while Proxmox
    /// holds pending SDN changes that OrbitLab did not make (applying ours
    /// would apply those too).
    fn add(&mut self, object: ObjectRef, steps: Vec<Action>) {
        let foreign = self.observed.foreign_pending();
        if steps.iter().any(Action::is_sdn_edit) && !foreign.is_empty() {
            self.block(
                object,
                format!(
                    "Proxmox holds SDN changes OrbitLab did not make ({}); apply or revert them (Datacenter → SDN) first, OrbitLab will not apply them for you",
                    foreign.join(", ")
                ),
            );
            return;
        }
        self.plan.actions.extend(steps);
    }

    /// Adds the one SDN apply every SDN edit needs, and orders the steps.
    fn finish(mut self) -> Plan {
        let sdn_changes = self.plan.actions.iter().any(Action::is_sdn_edit);
        if (sdn_changes || self.observed.own_pending())
            && self.observed.foreign_pending().is_empty()
        {
            self.plan.actions.push(Action::ApplySdn);
        }
        self.plan.actions.sort_by_key(|a| (a.phase(), a.rank()));
        self.plan
    }
}
