//! `plan(desired, observed) -> Plan`: a pure function from the manifests and
//! a snapshot of Proxmox and OrbitLab's records to the ordered steps that
//! make them match, plus the objects that cannot proceed and why.
//!
//! Steps whose inputs only exist after earlier steps ran (a container's
//! configuration needs its VMID and addresses) are planned on the next
//! pass; the reconciler repeats observe → plan → execute until nothing is
//! left, so `orbitlab plan` shows the first pass.

mod backplane;
mod configure;
mod desired;
mod sector;
mod teardown;

use std::collections::{BTreeMap, BTreeSet};

use orbitlab_manifests::Kind;

pub use desired::Desired;

use super::action::Action;
use super::observed::Observed;

/// An object, as plans and statuses name it.
pub type ObjectKey = (Kind, String);

/// The result of planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps in execution order.
    pub actions: Vec<Action>,
    /// Objects that cannot proceed, with the reason (nothing is planned for
    /// them).
    pub blocked: BTreeMap<ObjectKey, String>,
    /// Every object the manifests declare that this plan covers.
    pub declared: BTreeSet<ObjectKey>,
}

impl Plan {
    /// True when nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Declared objects with nothing left to do and nothing blocking them.
    pub fn ready(&self) -> BTreeSet<ObjectKey> {
        let busy: BTreeSet<ObjectKey> = self.actions.iter().filter_map(Action::object).collect();
        self.declared
            .iter()
            .filter(|o| !busy.contains(*o) && !self.blocked.contains_key(*o))
            .cloned()
            .collect()
    }

    /// The steps of one object.
    pub fn steps_of<'a>(&'a self, object: &'a ObjectKey) -> impl Iterator<Item = &'a Action> + 'a {
        self.actions
            .iter()
            .filter(move |a| a.object().as_ref() == Some(object))
    }
}

/// Plans every object. Pure: same inputs, same plan.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let mut planner = Planner {
        desired,
        observed,
        plan: Plan::default(),
        reserved_tags: BTreeSet::new(),
        planned_addresses: BTreeMap::new(),
    };
    let backplane = planner.backplane();
    planner.sectors(backplane.as_ref());
    planner.teardown();
    planner.finish()
}

/// Planning state shared by the per-kind planners.
struct Planner<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    plan: Plan,
    /// Tags this plan reserves, so two new Sectors never get the same one.
    reserved_tags: BTreeSet<u32>,
    /// Ordinary addresses this plan takes from each pool, so that
    /// exhaustion is refused before anything is created.
    planned_addresses: BTreeMap<String, u32>,
}

impl Planner<'_> {
    fn block(&mut self, object: ObjectKey, reason: impl Into<String>) {
        self.plan
            .blocked
            .entry(object)
            .or_insert_with(|| reason.into());
    }

    /// Adds an object's steps, unless SDN changes are needed while Proxmox
    /// holds pending SDN changes that OrbitLab did not make (applying ours
    /// would apply those too).
    fn add(&mut self, object: ObjectKey, steps: Vec<Action>) {
        let touches_sdn = steps.iter().any(|a| {
            matches!(
                a.phase(),
                super::action::Phase::SdnCreate | super::action::Phase::SdnDelete
            )
        });
        let foreign = self.observed.foreign_pending();
        if touches_sdn && !foreign.is_empty() {
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

    fn finish(mut self) -> Plan {
        let sdn_changes = self.plan.actions.iter().any(|a| {
            matches!(
                a.phase(),
                super::action::Phase::SdnCreate | super::action::Phase::SdnDelete
            )
        });
        if (sdn_changes || self.observed.own_pending())
            && self.observed.foreign_pending().is_empty()
        {
            self.plan.actions.push(Action::ApplySdn);
        }
        self.plan.actions.sort_by_key(|a| (a.phase(), a.rank()));
        self.plan
    }
}
