//! `GET /plan`: the steps that would make Proxmox match the manifests,
//! and the objects blocked from it, computed by this node with the stored
//! Proxmox connection (`orbitlab init` stores it). Nothing is changed.
//! `orbitlab plan` prints the same list, in-process or with `--host`.
//!
//! `GET /status`: every object with a manifest, its phase (`Pending` until
//! an agent reports) and whether an agent acts on its kind at all.
//!
//! `GET /status/{collection}/{name}`: the status an agent reported for
//! one object (`null` before any report, and again once an agent has
//! cleaned up after a delete): what `orbitlab apply --wait` polls, in
//! this process or over HTTPS.

use serde_json::{Value, json};

use orbitlab_manifests::Kind;

use super::{Api, ApiError, ApiPath, PathError, acted_on, collection_segment, not_found};
use crate::pve::{ConnectionError, PveError, StoredConnection};
use crate::reconcile::{self, ObjectRef, ReconcileError};
use crate::status::ObjectStatus;

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

impl Api {
    /// The status reported for the object at `path` (which must name one
    /// object; it need not have a manifest any more), or `None` when no
    /// agent has reported one. Reads the store only.
    pub fn object_status(&self, path: &ApiPath) -> Result<Option<ObjectStatus>, ApiError> {
        let ApiPath::Object(kind, name) = path else {
            return Err(not_found(path));
        };
        Ok(self.store().read_status(*kind, name)?)
    }
}

/// The API path of one object's status: `/status/sectors/web` for
/// `/sectors/web`.
pub fn object_status_path(path: &ApiPath) -> String {
    format!("/status{path}")
}

/// The object whose status `path` names, when `path` is below `/status`
/// (`Ok(None)` for `/status` itself and for paths elsewhere).
pub fn parse_object_status_path(path: &str) -> Result<Option<ApiPath>, PathError> {
    let Some(rest) = super::path::below(path, "/status") else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    match rest.parse::<ApiPath>()? {
        object @ ApiPath::Object(..) => Ok(Some(object)),
        _ => Err(PathError::at(
            path,
            "below /status: one object, e.g. /status/sectors/web",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_status_paths_round_trip() {
        let web: ApiPath = "/sectors/web".parse().unwrap();
        assert_eq!(object_status_path(&web), "/status/sectors/web");
        assert_eq!(
            parse_object_status_path("/status/sectors/web").unwrap(),
            Some(web)
        );
        assert_eq!(parse_object_status_path("/status").unwrap(), None);
        assert_eq!(parse_object_status_path("/statusx/a").unwrap(), None);
        assert!(parse_object_status_path("/status/sectors").is_err());
        assert!(parse_object_status_path("/status/vpcs/a").is_err());
    }
}
