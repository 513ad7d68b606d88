//! `GET /plan`: the steps that would make Proxmox match the manifests,
//! and the objects blocked from it, computed by this node with the stored
//! Proxmox connection (`orbitlab init` stores it). Nothing is changed.
//! `orbitlab plan` prints the same list, in-process or with `--host`.
//!
//! `GET /status`: every object with a manifest, its phase (`Pending` until
//! an agent reports) and whether an agent acts on its kind at all.

use serde_json::{Value, json};

use orbitlab_manifests::Kind;

use super::{Api, ApiError, acted_on, collection_segment};
use crate::pve::{ConnectionError, PveError, StoredConnection};
use crate::reconcile::{self, ObjectRef, ReconcileError};

/// Why a plan could not be made. Never holds the token secret.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// No usable stored connection (before `orbitlab init`).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// Proxmox could not be reached or refused.
    #[error(transparent)]
    Pve(#[from] PveError),
    /// Observing or planning failed.
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
}

impl Api {
    /// The plan as a list: first `{object, blocked}` for every blocked
    /// object, then `{object, step}` for every step (object `/` for
    /// cluster-wide steps). Blocking: asks Proxmox.
    pub fn plan(&self) -> Result<Value, PlanError> {
        let store = self.store();
        let connection = StoredConnection::load(store)?;
        let (plan, _) = reconcile::with_local_reconciler(store, &connection, |r| {
            r.plan().map_err(PlanError::from)
        })?;
        let path = |o: &ObjectRef| format!("/{}/{}", collection_segment(o.kind), o.name);
        let blocked = plan
            .blocked
            .iter()
            .map(|(o, reason)| json!({ "object": path(o), "blocked": reason }));
        let steps = plan.actions.iter().map(|a| {
            json!({
                "object": a.object().map_or_else(|| "/".into(), |o| path(&o)),
                "step": a.to_string(),
            })
        });
        Ok(Value::Array(blocked.chain(steps).collect()))
    }
}

impl Api {
    /// `[{object, kind, phase, acted_on}]` for every stored manifest,
    /// by kind then name; reads the store only.
    pub fn status(&self) -> Result<Value, ApiError> {
        let mut out = Vec::new();
        for kind in Kind::ALL {
            let statuses = self.store().read_statuses(kind)?;
            for manifest in self.store().read_manifests_for_display(kind)? {
                let name = manifest.value.name().to_string();
                let phase = statuses.get(&name).map_or("Pending", |s| s.phase());
                out.push(json!({
                    "object": format!("/{}/{name}", collection_segment(kind)),
                    "kind": kind.as_str(),
                    "phase": phase,
                    "acted_on": acted_on(kind),
                }));
            }
        }
        Ok(Value::Array(out))
    }
}
