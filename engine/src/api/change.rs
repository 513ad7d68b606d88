//! Changing the stored set of manifests safely: edit in memory, validate the
//! whole result, write, and undo what was written if a later write fails.

use std::collections::{BTreeMap, BTreeSet};

use orbitlab_manifests::{
    Kind, Manifest, ManifestError, ManifestErrors, ManifestSet, Name, Sourced, codec,
    validate_update,
};
use serde::Serialize;

use super::{ApiError, ApiPath};
use crate::audit::{self, Detail, Witness};
use crate::store::layout::{self, Lock};
use crate::store::{Store, StoreError};

/// What happened (or would happen) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Deleted,
}

/// One object's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    #[serde(serialize_with = "kind_name")]
    pub kind: Kind,
    pub name: Name,
    pub action: Action,
}

impl Change {
    /// `/sectors/web`.
    pub fn path(&self) -> String {
        super::object_path(self.kind, &self.name)
    }
}

fn kind_name<S: serde::Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// Label for objects that came from command-line options.
pub(crate) fn command_line_label(path: &ApiPath) -> String {
    format!("command line ({path})")
}

type Key = (Kind, Name);

/// Every stored manifest, being edited.
pub(crate) struct Catalog {
    objects: BTreeMap<Key, Sourced<Manifest>>,
    original: BTreeMap<Key, Sourced<Manifest>>,
    touched: BTreeSet<Key>,
}

impl Catalog {
    pub(crate) fn load(store: &Store) -> Result<Self, ApiError> {
        let objects: BTreeMap<Key, Sourced<Manifest>> = store
            .read_all_manifests()?
            .into_iter()
            .map(|m| ((m.value.kind(), m.value.name().clone()), m))
            .collect();
        Ok(Catalog {
            original: objects.clone(),
            objects,
            touched: BTreeSet::new(),
        })
    }

    pub(crate) fn contains(&self, kind: Kind, name: &Name) -> bool {
        self.objects.contains_key(&(kind, name.clone()))
    }

    pub(crate) fn get(&self, kind: Kind, name: &Name) -> Option<&Sourced<Manifest>> {
        self.objects.get(&(kind, name.clone()))
    }

    pub(crate) fn put(&mut self, manifest: Sourced<Manifest>) {
        let key = (manifest.value.kind(), manifest.value.name().clone());
        self.touched.insert(key.clone());
        self.objects.insert(key, manifest);
    }

    pub(crate) fn remove(&mut self, kind: Kind, name: &Name) {
        let key = (kind, name.clone());
        self.objects.remove(&key);
        self.touched.insert(key);
    }

    /// Every object that refers to `kind/name` with a reference that
    /// orders (it cannot exist without it), directly or through another
    /// such dependent.
    pub(crate) fn dependents(&self, kind: Kind, name: &Name) -> Vec<Key> {
        let mut found: BTreeSet<Key> = BTreeSet::new();
        let mut queue = vec![(kind, name.clone())];
        while let Some((k, n)) = queue.pop() {
            for (key, m) in &self.objects {
                if found.contains(key) || *key == (kind, name.clone()) {
                    continue;
                }
                if m.value
                    .references()
                    .iter()
                    .any(|r| r.orders && r.kind == k && *r.name == n)
                {
                    found.insert(key.clone());
                    queue.push(key.clone());
                }
            }
        }
        found.into_iter().collect()
    }

    /// Objects outside `removed` that refer to one of them with a
    /// reference that does not order (an ingress rule naming an instance).
    pub(crate) fn referrers(&self, removed: &[Key]) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(key, _)| !removed.contains(key))
            .filter(|(_, m)| {
                m.value
                    .references()
                    .iter()
                    .any(|r| !r.orders && removed.iter().any(|(k, n)| r.kind == *k && r.name == n))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Drops from `key`'s spec the references that do not order to any of
    /// `removed` (its ingress rules to them).
    pub(crate) fn unlink(&mut self, key: &Key, removed: &[Key]) {
        let Some(mut manifest) = self.objects.get(key).cloned() else {
            return;
        };
        let mut changed = false;
        for (k, n) in removed {
            changed |= manifest.value.spec.drop_unordered_references(*k, n);
        }
        if changed {
            self.put(manifest);
        }
    }

    /// Validates the edited set as a whole and lists what changes.
    pub(crate) fn validated_changes(&self) -> Result<Vec<Change>, ApiError> {
        let set = ManifestSet::new(self.objects.values().cloned().collect())?;
        let mut changes = Vec::new();
        let mut refusals = Vec::new();
        for key in &self.touched {
            // A Secret applied with a selector grant that matches nothing.
            if key.0 == Kind::Secret {
                refusals.extend(set.unmatched_grants(key.1.as_str()));
            }
            let action = match (self.original.get(key), self.objects.get(key)) {
                (None, None) => continue,
                (None, Some(_)) => Action::Created,
                (Some(_), None) => Action::Deleted,
                (Some(old), Some(new)) => {
                    if let Err(e) = validate_update(&old.value, &new.value) {
                        refusals.push(locate(new, e));
                        continue;
                    }
                    if codec::encode(&old.value) == codec::encode(&new.value) {
                        Action::Unchanged
                    } else {
                        Action::Configured
                    }
                }
            };
            changes.push(Change {
                kind: key.0,
                name: key.1.clone(),
                action,
            });
        }
        if !refusals.is_empty() {
            return Err(ApiError::Invalid(ManifestErrors(refusals)));
        }
        Ok(changes)
    }

    fn current(&self, kind: Kind, name: &Name) -> Option<&Manifest> {
        self.objects.get(&(kind, name.clone())).map(|m| &m.value)
    }
}

fn locate(doc: &Sourced<Manifest>, error: ManifestError) -> ManifestError {
    let line = doc.line_of(&error.field);
    error.at(doc.source.clone(), line)
}

/// Two documents for the same object in one request are refused.
pub(crate) fn refuse_duplicates(documents: &[Sourced<Manifest>]) -> Result<(), ApiError> {
    let mut seen: BTreeMap<Key, &Sourced<Manifest>> = BTreeMap::new();
    let mut errors = Vec::new();
    for doc in documents {
        let key = (doc.value.kind(), doc.value.name().clone());
        if let Some(first) = seen.insert(key, doc) {
            errors.push(doc.error(
                "metadata.name",
                format!(
                    "{} {} is declared twice (first in {}{})",
                    doc.value.kind(),
                    doc.value.name(),
                    first.source,
                    first.line.map(|l| format!(":{l}")).unwrap_or_default()
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(ManifestErrors(errors)))
    }
}

/// Runs `edit` on the stored set under the manifests lock, validates the
/// result, records the changes in the audit log as `method` by the
/// witness (before writing: an audit failure changes nothing), writes
/// it, and bumps the change counter.
pub(crate) fn commit(
    store: &Store,
    (witness, method): (&Witness, audit::Action),
    edit: impl FnOnce(&mut Catalog) -> Result<(), ApiError>,
) -> Result<Vec<Change>, ApiError> {
    let _guard = store.lock(Lock::Manifests.name())?;
    let mut catalog = Catalog::load(store)?;
    edit(&mut catalog)?;
    let changes = catalog.validated_changes()?;
    let recorded: Vec<_> = changes
        .iter()
        .filter(|c| c.action != Action::Unchanged)
        .map(|c| {
            let manifest = catalog.current(c.kind, &c.name);
            (method, c.path(), audit_detail(c.action, manifest))
        })
        .collect();
    witness.begin(&recorded)?;
    let mut journal = Journal::default();
    for change in changes.iter().filter(|c| c.action != Action::Unchanged) {
        let result = match catalog.current(change.kind, &change.name) {
            Some(manifest) => journal.write(store, manifest),
            None => journal.remove(store, change.kind, &change.name),
        };
        if let Err(error) = result {
            witness.failed(&recorded);
            return Err(journal.undo(store, error));
        }
    }
    if !journal.is_empty() {
        store.bump_generation()?;
    }
    Ok(changes)
}

/// What the audit log says about one object's change: what happened to it
/// and the SHA-256 of the manifest written (never its content).
fn audit_detail(action: Action, written: Option<&Manifest>) -> Detail {
    use sha2::Digest;
    let mut detail = Detail::new();
    let action = serde_json::to_value(action).ok();
    if let Some(action) = action.as_ref().and_then(|a| a.as_str()) {
        detail.insert("change".into(), action.to_owned());
    }
    if let Some(manifest) = written {
        let digest = sha2::Sha256::digest(codec::encode(manifest).as_bytes());
        detail.insert("sha256".into(), hex::encode(digest));
    }
    detail
}

/// Previous contents of the files written so far, to undo them.
#[derive(Default)]
struct Journal {
    previous: Vec<(crate::store::StorePath, Option<Vec<u8>>)>,
}

impl Journal {
    fn is_empty(&self) -> bool {
        self.previous.is_empty()
    }

    fn write(&mut self, store: &Store, manifest: &Manifest) -> Result<(), StoreError> {
        let path = layout::manifest(manifest.kind(), manifest.name());
        self.previous.push((path.clone(), store.read(&path)?));
        store.write_manifest(manifest)
    }

    fn remove(&mut self, store: &Store, kind: Kind, name: &Name) -> Result<(), StoreError> {
        let path = layout::manifest(kind, name);
        self.previous.push((path.clone(), store.read(&path)?));
        store.remove(&path).map(drop)
    }

    /// Restores every file touched (newest first); reports the original
    /// error, and any file that could not be restored.
    fn undo(self, store: &Store, error: StoreError) -> ApiError {
        let mut stuck = Vec::new();
        for (path, before) in self.previous.into_iter().rev() {
            let restored = match &before {
                Some(bytes) => store.write(&path, bytes),
                None => store.remove(&path).map(drop),
            };
            if restored.is_err() {
                stuck.push(store.absolute(&path).display().to_string());
            }
        }
        if stuck.is_empty() {
            ApiError::Store(error)
        } else {
            ApiError::Conflict {
                path: stuck.join(", "),
                reason: format!(
                    "{error}; these files could not be restored to their previous content and must be checked by hand"
                ),
            }
        }
    }
}
