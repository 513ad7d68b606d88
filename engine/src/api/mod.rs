//! One tree of paths (`/sectors/{name}`, `/lxc/{name}`, ...) with typed
//! handlers. The `orbitlab` command calls it in-process; the agent serves
//! the same tree over HTTPS (for the web UI panel and `orbitlab --host`),
//! with the privilege checks of `server::permissions`.
//!
//! Reads show spec and status together. Every change — `create`, `set`,
//! `delete`, `apply` — runs under the cluster lock `orbitlab-manifests`:
//! it loads every stored manifest, edits that set in memory, validates the
//! whole result, and only then writes (replace-by-rename), restoring the
//! files already written if a later write fails. Then it bumps the change
//! counter so agents on every node notice.
//!
//! Every change, and every call that hands out a secret value or private
//! key, is recorded in the audit log ([`crate::audit`]) as made by the
//! API's [`Actor`] ([`Api::acting_as`]; by default this process's local
//! user): a change before it is written, a read before its answer is
//! returned. Failing to record refuses the call.
//!
//! A delete is computed before it is made ([`Api::removal`]: the object
//! and, when forced, everything that refers to it), so the HTTP server can
//! check the caller's right to every object it would remove, then delete
//! exactly that ([`Api::delete_exactly`]).
//!
//! The vault has its own part of the tree, `/vault/...` ([`VaultPath`],
//! [`VaultCall`], [`Api::vault`]): metadata by default, a value only by
//! the explicit `GET /vault/values/{path}`; SSH keys are under
//! `/ssh/keys/...` ([`SshPath`], [`SshCall`], [`Api::ssh`]), the CA under
//! `/pki/...` ([`PkiPath`], [`PkiCall`], [`Api::pki`]); `GET /plan` is
//! [`Api::plan`], `GET /status` [`Api::status`] and
//! `GET /status/{collection}/{name}` one object's reported status
//! ([`Api::object_status`], what `orbitlab apply --wait` polls).

mod change;
mod nodes;
pub mod path;
mod pki;
mod plan;
mod pools;
pub mod properties;
pub mod request;
mod ssh;
mod vault;
mod view;

use std::collections::BTreeSet;

use orbitlab_manifests::{Kind, LabelKey, LabelValue, Manifest, ManifestErrors, Name, Sourced};
use serde_json::{Value, json};

pub use change::{Action, Change};
pub use path::{ApiPath, PathError, collection_segment};
pub use pki::{
    CsrPem, MAX_CSR_BYTES, NewCa, PkiCall, PkiPath, Revocation, ca_request, leaf_request,
};
pub use plan::{PlanError, object_status_path, parse_object_status_path};
pub use pools::{RolloutAction, RolloutPath};
pub use properties::{PropertyError, PropertyValue};
pub use ssh::{KeyRequest, SshCall, SshPath};
pub use vault::{VaultAccess, VaultCall, VaultPath, secret_json};

use crate::audit::{self, Actor, Audited, Detail, Witness};
use crate::store::{ObjectError, Store, StoreError};

/// Why a request was refused. Nothing was changed when any of these is
/// returned.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{path} does not exist{hint}")]
    NotFound { path: String, hint: String },
    #[error(transparent)]
    Invalid(#[from] ManifestErrors),
    #[error("{path}: {reason}")]
    Conflict { path: String, reason: String },
    #[error("{method} is not possible on {path}: {hint}")]
    NotAllowed {
        method: &'static str,
        path: String,
        hint: String,
    },
    #[error("{path}: {reason}")]
    BadProperty { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
}

/// The API over one store.
#[derive(Debug, Clone)]
pub struct Api {
    store: Store,
    actor: Actor,
}

impl Api {
    /// An API reading and writing `store`, acting as this process's local
    /// user ([`Actor::local`]).
    pub fn new(store: Store) -> Self {
        Api {
            store,
            actor: Actor::local(),
        }
    }

    /// The same API acting for `actor`: the audit log names it for every
    /// change and value read (the HTTPS server: the authenticated caller).
    pub fn acting_as(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// Who this API acts for.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    fn witness(&self) -> Witness {
        Witness::new(&self.store, &self.actor)
    }

    /// Runs a vault, SSH key or PKI call, recorded when `audited` says so:
    /// `(kind, action, object, detail)`.
    fn audited<T, E: From<StoreError>>(
        &self,
        audited: Option<(Audited, audit::Action, String, Detail)>,
        call: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        match audited {
            None => call(),
            Some((kind, action, object, detail)) => {
                self.witness().around(kind, action, object, detail, call)
            }
        }
    }

    /// The store behind this API.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Names below `path`.
    pub fn ls(&self, path: &ApiPath) -> Result<Value, ApiError> {
        Ok(match path {
            ApiPath::Root => Value::Array(
                Kind::ALL
                    .iter()
                    .map(|k| json!({ "name": collection_segment(*k), "kind": k.as_str() }))
                    .collect(),
            ),
            ApiPath::Collection(kind) => Value::Array(
                self.store
                    .list(&crate::store::layout::manifests_dir(*kind))?
                    .iter()
                    .filter_map(|f| crate::store::layout::manifest_file_name(f))
                    .map(|n| json!({ "name": n }))
                    .collect(),
            ),
            ApiPath::Object(..) => {
                self.require(path)?;
                Value::Array(Vec::new())
            }
        })
    }

    /// Spec and status of every object of collection `path` whose labels
    /// `selector` matches (`orbitlab get /lxc -l app=web`). Nodes are
    /// matched by their Node manifest's labels. Refused for anything but
    /// a collection of several objects.
    pub fn get_selected(
        &self,
        path: &ApiPath,
        selector: &orbitlab_manifests::Selector,
    ) -> Result<Value, ApiError> {
        match path {
            ApiPath::Collection(kind) if !kind.is_singleton() => {}
            _ => {
                return Err(PathError::at(
                    &path.to_string(),
                    "a label selector picks objects of a collection, such as /lxc or /sectors",
                )
                .into());
            }
        }
        let all = self.get(path)?;
        let labels = |v: &Value| -> std::collections::BTreeMap<LabelKey, LabelValue> {
            // Nodes carry their manifest under `manifest`.
            let metadata = v
                .get("metadata")
                .or_else(|| v.get("manifest").and_then(|m| m.get("metadata")));
            metadata
                .and_then(|m| m.get("labels"))
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default()
        };
        Ok(Value::Array(
            all.as_array()
                .into_iter()
                .flatten()
                .filter(|v| selector.matches(&labels(v)))
                .cloned()
                .collect(),
        ))
    }

    /// Spec and status of an object, or of every object of a collection
    /// (for `/cluster` and `/settings`: the one object). Nodes are shown
    /// with their membership and their agent's heartbeat (`nodes`).
    pub fn get(&self, path: &ApiPath) -> Result<Value, ApiError> {
        match path {
            ApiPath::Root => self.ls(path),
            ApiPath::Collection(kind) if kind.is_singleton() => {
                let mut all = self.store.read_manifests(*kind)?;
                let Some(only) = all.pop() else {
                    return Err(not_found(path));
                };
                self.view(only.value)
            }
            ApiPath::Collection(Kind::Node) => Ok(Value::Array(nodes::rows(&self.store, None)?)),
            ApiPath::Object(Kind::Node, name) => nodes::rows(&self.store, Some(name))?
                .pop()
                .ok_or_else(|| not_found(path)),
            ApiPath::Collection(kind) => {
                let manifests = self.store.read_manifests_for_display(*kind)?;
                let mut statuses = self.store.read_statuses(*kind)?;
                let views = manifests
                    .into_iter()
                    .map(|m| {
                        let status = statuses.remove(m.value.name().as_ref());
                        view::object(&m.value, status.as_ref())
                    })
                    .collect();
                Ok(Value::Array(views))
            }
            ApiPath::Object(..) => {
                let manifest = self.require(path)?;
                self.view(manifest)
            }
        }
    }

    /// Creates an object from pvesh-style properties (`name` is required;
    /// `description` and `labels.*` go to metadata, the rest to the spec).
    pub fn create(
        &self,
        path: &ApiPath,
        properties: PropertyValue,
    ) -> Result<Vec<Change>, ApiError> {
        let ApiPath::Collection(kind) = path else {
            return Err(ApiError::NotAllowed {
                method: "create",
                path: path.to_string(),
                hint: "create on the collection, e.g. `orbitlab create /sectors --name web ...`"
                    .into(),
            });
        };
        let manifest = view::manifest_from_properties(*kind, None, properties)
            .map_err(|reason| bad_property(path, reason))?;
        let target = ApiPath::Object(*kind, manifest.name().clone());
        self.change(audit::Action::Create, |set| {
            if set.contains(*kind, manifest.name()) {
                return Err(ApiError::Conflict {
                    path: target.to_string(),
                    reason: "already exists; change it with `orbitlab set`".into(),
                });
            }
            set.put(Sourced::new(change::command_line_label(&target), manifest));
            Ok(())
        })
    }

    /// Changes properties of an object; `delete` names properties to reset
    /// to their defaults.
    pub fn set(
        &self,
        path: &ApiPath,
        properties: PropertyValue,
        delete: &[String],
    ) -> Result<Vec<Change>, ApiError> {
        let ApiPath::Object(kind, name) = path else {
            return Err(ApiError::NotAllowed {
                method: "set",
                path: path.to_string(),
                hint: "set works on one object, e.g. `orbitlab set /sectors/web --alias front`"
                    .into(),
            });
        };
        self.change(audit::Action::Set, |set| {
            let current = set.get(*kind, name).ok_or_else(|| not_found(path))?;
            let updated = view::update_from_properties(&current.value, properties, delete)
                .map_err(|reason| bad_property(path, reason))?;
            set.put(Sourced::new(change::command_line_label(path), updated));
            Ok(())
        })
    }

    /// What deleting `path` would remove, without changing anything: the
    /// object and, when `force`, every object that refers to it (directly
    /// or through another). Without `force`, an object still in use is
    /// refused (409) naming its users. [`Api::delete`] and
    /// [`Api::delete_exactly`] remove exactly what this computes, so a
    /// caller can check its right to remove every object first.
    pub fn removal(&self, path: &ApiPath, force: bool) -> Result<Removal, ApiError> {
        plan_removal(&change::Catalog::load(&self.store)?, path, force)
    }

    /// Deletes an object. Objects that refer to it are refused unless
    /// `force`, which deletes them too (and what refers to them): what
    /// [`Api::removal`] reports.
    pub fn delete(&self, path: &ApiPath, force: bool) -> Result<Vec<Change>, ApiError> {
        self.change(audit::Action::Delete, |set| {
            let removal = plan_removal(set, path, force)?;
            remove_all(set, &removal);
            Ok(())
        })
    }

    /// Deletes what `expected` (from [`Api::removal`]) names, and only if
    /// that is still exactly what the delete removes: when objects were
    /// added, changed or deleted since, so that the set differs, nothing
    /// is deleted and a 409 asks to check again.
    pub fn delete_exactly(&self, expected: &Removal) -> Result<Vec<Change>, ApiError> {
        let path = expected.target();
        self.change(audit::Action::Delete, |set| {
            let force = expected.has_dependents();
            let now = plan_removal(set, &path, force)?;
            if now != *expected {
                return Err(ApiError::Conflict {
                    path: path.to_string(),
                    reason: format!(
                        "what deleting it removes changed while the request was checked (now: {}); check again and retry",
                        now.paths().join(", ")
                    ),
                });
            }
            remove_all(set, &now);
            Ok(())
        })
    }

    /// Writes every given manifest (created or replaced) after validating
    /// them together with everything stored; all or nothing.
    pub fn apply(&self, documents: Vec<Sourced<Manifest>>) -> Result<Vec<Change>, ApiError> {
        self.change(audit::Action::Apply, |set| {
            change::refuse_duplicates(&documents)?;
            for doc in documents {
                set.put(doc);
            }
            Ok(())
        })
    }

    /// What [`Api::apply`] would do, without writing anything.
    pub fn validate(&self, documents: Vec<Sourced<Manifest>>) -> Result<Vec<Change>, ApiError> {
        change::refuse_duplicates(&documents)?;
        let mut set = change::Catalog::load(&self.store)?;
        for doc in documents {
            set.put(doc);
        }
        set.validated_changes()
    }

    fn change(
        &self,
        action: audit::Action,
        edit: impl FnOnce(&mut change::Catalog) -> Result<(), ApiError>,
    ) -> Result<Vec<Change>, ApiError> {
        change::commit(&self.store, (&self.witness(), action), edit)
    }

    fn require(&self, path: &ApiPath) -> Result<Manifest, ApiError> {
        let ApiPath::Object(kind, name) = path else {
            return Err(not_found(path));
        };
        self.store
            .read_manifest(*kind, name)?
            .map(|m| m.value)
            .ok_or_else(|| not_found(path))
    }

    fn view(&self, manifest: Manifest) -> Result<Value, ApiError> {
        let status = self.store.read_status(manifest.kind(), manifest.name())?;
        Ok(view::object(&manifest, status.as_ref()))
    }
}

/// What a delete removes: one object and the objects that cannot exist
/// without it, and which objects it edits (a Sector whose ingress rules
/// name a removed instance loses those rules). Only [`Api::removal`] makes
/// one, from the stored set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    target: (Kind, Name),
    /// Sorted by kind, then name; never holds the target.
    dependents: Vec<(Kind, Name)>,
    /// Objects kept, minus their references to what is removed.
    edited: Vec<(Kind, Name)>,
}

impl Removal {
    /// The object asked for.
    pub fn target(&self) -> ApiPath {
        ApiPath::Object(self.target.0, self.target.1.clone())
    }

    /// Every object removed, the target first.
    pub fn objects(&self) -> impl Iterator<Item = (Kind, &Name)> {
        std::iter::once(&self.target)
            .chain(&self.dependents)
            .map(|(k, n)| (*k, n))
    }

    /// Paths of every object removed, the target first.
    pub fn paths(&self) -> Vec<String> {
        self.objects().map(|(k, n)| object_path(k, n)).collect()
    }

    /// Kinds of every object removed.
    pub fn kinds(&self) -> BTreeSet<Kind> {
        self.objects().map(|(k, _)| k).collect()
    }

    /// Whether objects besides the target are removed or edited.
    pub fn has_dependents(&self) -> bool {
        !self.dependents.is_empty() || !self.edited.is_empty()
    }

    /// Objects kept but edited: their ingress rules to a removed instance
    /// are dropped.
    pub fn edited(&self) -> impl Iterator<Item = (Kind, &Name)> {
        self.edited.iter().map(|(k, n)| (*k, n))
    }
}

/// The removal of `path` from `set`; a pure function of the set.
fn plan_removal(set: &change::Catalog, path: &ApiPath, force: bool) -> Result<Removal, ApiError> {
    let ApiPath::Object(kind, name) = path else {
        return Err(ApiError::NotAllowed {
            method: "delete",
            path: path.to_string(),
            hint: "delete works on one object, e.g. `orbitlab delete /sectors/web`".into(),
        });
    };
    if !set.contains(*kind, name) {
        return Err(not_found(path));
    }
    let dependents = set.dependents(*kind, name);
    let removed: Vec<(Kind, Name)> = std::iter::once((*kind, name.clone()))
        .chain(dependents.iter().cloned())
        .collect();
    let edited = set.referrers(&removed);
    if (!dependents.is_empty() || !edited.is_empty()) && !force {
        let users = dependents
            .iter()
            .map(|(k, n)| object_path(*k, n))
            .chain(
                edited
                    .iter()
                    .map(|(k, n)| format!("{} (ingress rules)", object_path(*k, n))),
            )
            .collect::<Vec<_>>()
            .join(", ");
        let what = if edited.is_empty() {
            "delete those first, or pass --force to delete them too"
        } else if dependents.is_empty() {
            "change those first, or pass --force to drop those rules"
        } else {
            "delete or change those first, or pass --force to delete them too and drop those rules"
        };
        return Err(ApiError::Conflict {
            path: path.to_string(),
            reason: format!("still used by {users}; {what}"),
        });
    }
    Ok(Removal {
        target: (*kind, name.clone()),
        dependents,
        edited,
    })
}

fn remove_all(set: &mut change::Catalog, removal: &Removal) {
    let removed: Vec<(Kind, Name)> = removal.objects().map(|(k, n)| (k, n.clone())).collect();
    for (kind, name) in &removed {
        set.remove(*kind, name);
    }
    for key in &removal.edited {
        set.unlink(key, &removed);
    }
}

/// The audit form of a vault, SSH key or PKI call: read or change, the
/// action, the call's path, and its query as detail (paths and queries
/// never hold a secret: values, keys and passphrases travel in bodies).
fn audit_of(
    access: VaultAccess,
    action: audit::Action,
    path: impl std::fmt::Display,
    query: Vec<(&'static str, String)>,
) -> (Audited, audit::Action, String, Detail) {
    let kind = match access {
        VaultAccess::Value => Audited::Read,
        VaultAccess::Change | VaultAccess::Metadata => Audited::Change,
    };
    let detail = query.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    (kind, action, path.to_string(), detail)
}

fn not_found(path: &ApiPath) -> ApiError {
    let hint = match path {
        ApiPath::Collection(Kind::Cluster) => "; run `orbitlab init` first".to_owned(),
        ApiPath::Object(kind, _) | ApiPath::Collection(kind) => format!(
            "; `orbitlab ls /{}` lists what does",
            collection_segment(*kind)
        ),
        ApiPath::Root => String::new(),
    };
    ApiError::NotFound {
        path: path.to_string(),
        hint,
    }
}

fn bad_property(path: &ApiPath, reason: String) -> ApiError {
    ApiError::BadProperty {
        path: path.to_string(),
        reason,
    }
}

/// Whether agents report a status for objects of `kind` (Ready,
/// Progressing, Failed): true for every kind with a controller
/// ([`crate::reconcile::controllers`]); `orbitlab apply --wait` waits for
/// these only. A Node has no status of its own: it cordons a node or
/// caps its instances for placements made from then on.
pub fn reports_status(kind: Kind) -> bool {
    crate::reconcile::controllers::reported().any(|k| k == kind)
}

/// Whether an agent acts on manifests of `kind`: the controllers' kinds
/// (Appliances among them) and Nodes. Manifests of the other kinds are validated and stored, and
/// nothing acts on them yet: `orbitlab apply` says so and `--wait` does
/// not wait for them.
pub fn acted_on(kind: Kind) -> bool {
    crate::reconcile::controllers::acted_on().any(|k| k == kind)
}

/// What an agent does with manifests of `kind` that have no status of
/// their own (Appliances, Nodes); `None` for the others.
pub fn used_for(kind: Kind) -> Option<&'static str> {
    crate::reconcile::controllers::used_for(kind)
}

/// Where the agent's HTTPS server serves the path tree (`GET
/// /api2/json/orbitlab/sectors/web`), beside Proxmox's own `/api2/json`.
pub const TREE_PREFIX: &str = "/api2/json/orbitlab";
/// Where the agent's HTTPS server applies manifests (`POST`).
pub const APPLY_PATH: &str = "/api2/json/orbitlab-apply";

/// Names a stored object for messages.
pub fn object_path(kind: Kind, name: &Name) -> String {
    ApiPath::Object(kind, name.clone()).to_string()
}
