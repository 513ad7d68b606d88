//! Writing each object's status after a pass: the conditions (`Ready`,
//! `Progressing`, `Failed`, with reason, message and since) from the plan
//! and what executing it did, and the outputs its kind's controller
//! describes from the pass's observation. Written only by the
//! cluster-scoped reconciler, to `orbitlab/status/<kind>/<name>.json`
//! ([`crate::store::layout::status`]) through the store
//! (replace-by-rename).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::controllers;
use super::{Action, ObjectRef, Observed, Outcome, Plan, ReconcileError};
use crate::status::{ConditionType, ObjectStatus};
use crate::store::Store;

/// Outputs under this prefix record owned config keys OrbitLab set on a
/// container (`set/memory: 1024 (was 512) at ...`, for a Sector's
/// `set/gateway/memory`): kept from pass to pass,
/// so a change made outside OrbitLab stays reported after it is reverted.
pub(crate) const SET_PREFIX: &str = "set/";

/// What one pass planned, did, and left.
#[derive(Debug)]
pub(super) struct Pass<'a> {
    /// The plan the pass executed.
    pub before: &'a Plan,
    /// The plan of what is left after it.
    pub after: &'a Plan,
    /// The observation made after it.
    pub observed: &'a Observed,
    pub outcome: &'a Outcome,
}

/// Writes the status of every object the pass covered, as seen by `node`.
pub(super) fn write(store: &Store, node: &str, pass: &Pass<'_>) -> Result<(), ReconcileError> {
    let mut objects: Vec<ObjectRef> = pass.after.declared.iter().cloned().collect();
    objects.extend(pass.before.actions.iter().filter_map(Action::object));
    // An object held up without a step of its own (a teardown waiting for
    // an offline node) is reported too.
    objects.extend(pass.after.unavailable.keys().cloned());
    objects.extend(pass.after.waiting.keys().cloned());
    objects.sort();
    objects.dedup();
    for object in objects {
        let outputs = describe(&object, pass.observed);
        // A deleted object keeps a status while anything of it is left (or
        // its teardown failed); once gone, its ForgetStatus step removes it.
        let deleted_and_gone = !pass.after.declared.contains(&object)
            && !pass.after.unavailable.contains_key(&object)
            && !pass.outcome.failed.contains_key(&object)
            && (!pass.observed.statuses.contains(&object) || outputs.is_empty());
        if deleted_and_gone {
            continue;
        }
        let mut status = store
            .read_status(object.kind, &object.name)?
            .unwrap_or_default();
        status.node = Some(node.to_owned());
        status.updated = Some(crate::status::rfc3339(SystemTime::now()));
        let kept = std::mem::take(&mut status.outputs)
            .into_iter()
            .filter(|(k, _)| k.starts_with(SET_PREFIX));
        status.outputs = kept.chain(outputs).collect();
        if let Some(extra) = pass.outcome.outputs.get(&object) {
            status.outputs.extend(extra.clone());
        }
        set_conditions(&mut status, &object, pass.after, pass.outcome);
        store.write_status(object.kind, &object.name, &status)?;
    }
    Ok(())
}

/// What Ready means for objects of `kind`.
fn ready_message(kind: orbitlab_manifests::Kind) -> &'static str {
    use orbitlab_manifests::Kind;
    match kind {
        Kind::Secret => "the vault holds a value",
        Kind::SshKey | Kind::Certificate => "the vault holds it, current as its schedule wants",
        Kind::Lxc => {
            "everything the manifest declares exists in Proxmox and is delivered into the container"
        }
        Kind::Pool => {
            "every wanted member exists, is made from the current template and passes its health check"
        }
        _ => "everything the manifest declares exists in Proxmox",
    }
}

/// The outputs the controller of `object`'s kind reports for it.
fn describe(object: &ObjectRef, observed: &Observed) -> BTreeMap<String, String> {
    controllers::of(object.kind)
        .map(|c| c.describe(&object.name, observed))
        .unwrap_or_default()
}

fn set_conditions(status: &mut ObjectStatus, object: &ObjectRef, after: &Plan, outcome: &Outcome) {
    use crate::status::UNAVAILABLE;
    use ConditionType::{Failed, Progressing, Ready};
    let declared = after.declared.contains(object);
    if let Some(reason) = after.blocked.get(object) {
        status.set_condition(Ready, false, "Blocked", reason);
        status.set_condition(Progressing, false, "Blocked", reason);
        status.set_condition(Failed, true, "Blocked", reason);
    } else if let Some(error) = outcome.failed.get(object) {
        status.set_condition(Ready, false, "StepFailed", error);
        status.set_condition(Progressing, false, "StepFailed", "retrying with backoff");
        status.set_condition(Failed, true, "StepFailed", error);
    } else if let Some(why) = after.unavailable.get(object) {
        status.set_condition(Ready, false, UNAVAILABLE, why);
        status.set_condition(Progressing, false, UNAVAILABLE, why);
        status.set_condition(Failed, false, UNAVAILABLE, "");
    } else if let Some(waiting) = outcome
        .deferred
        .get(object)
        .or_else(|| after.waiting.get(object))
    {
        status.set_condition(Ready, false, "Waiting", waiting);
        status.set_condition(Progressing, true, "Waiting", waiting);
        status.set_condition(Failed, false, "Waiting", "");
    } else if let Some(next) = after.steps_of(object).next() {
        let message = format!("next: {next}");
        let reason = if declared { "Reconciling" } else { "Deleting" };
        status.set_condition(Ready, false, reason, &message);
        status.set_condition(Progressing, true, reason, &message);
        status.set_condition(Failed, false, reason, "");
    } else {
        status.set_condition(Ready, true, "Reconciled", ready_message(object.kind));
        status.set_condition(Progressing, false, "Reconciled", "");
        status.set_condition(Failed, false, "Reconciled", "");
    }
}
