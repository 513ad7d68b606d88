//! Appliances: the container template an `appliance` manifest names
//! (`storage:vztmpl/file`), present on the storage of every online node
//! before a Sector container is made from it (`DESIGN.md`, "Appliances and
//! containers").
//!
//! What it reads (`observe::appliance_inputs`): each online node's storages
//! (`GET /nodes/{node}/storage`: shared, takes `vztmpl`) and the templates
//! on the template's storage. What it does: on a storage that is not
//! shared, uploads the template to every online node lacking it
//! ([`Action::UploadTemplate`], Proxmox's storage upload with the file's
//! SHA-256), from the first node by name that holds it — the step runs on
//! that node, whose agent alone can read the file. A shared storage needs
//! nothing once the volume is there. Templates are never deleted (they are
//! immutable, and containers may still be made from them); deleting the
//! manifest only removes its status.
//!
//! Status: Ready once every online node's storage holds the template;
//! Blocked (with how to get it) when no node has it or a node's storage
//! cannot take it; Waiting while another node's agent uploads it. Outputs:
//! `template`, `version`, and `template/<node>`: `present`, `missing`,
//! `uploading from <node>` or `unknown` (its storage could not be read).

use std::collections::{BTreeMap, BTreeSet};

use orbitlab_manifests::{Kind, Name, NodeName};

use super::Controller;
use crate::reconcile::ObjectRef;
use crate::reconcile::action::{Action, TemplateCopy};
use crate::reconcile::observed::{ApplianceObs, Observed};
use crate::reconcile::plan::{Desired, Planner};

/// The controller of `kind: Appliance`.
#[derive(Debug)]
pub(crate) struct ApplianceController;

impl Controller for ApplianceController {
    fn kind(&self) -> Kind {
        Kind::Appliance
    }

    fn declared(&self, desired: &Desired) -> BTreeSet<Name> {
        desired
            .appliances
            .values()
            .filter_map(|c| c.manifest.as_ref().map(|m| m.name.clone()))
            .collect()
    }

    /// Appliances with a status: nothing else in Proxmox belongs to one.
    fn observed(&self, observed: &Observed) -> BTreeSet<Name> {
        observed
            .statuses
            .iter()
            .filter(|o| o.kind == Kind::Appliance)
            .map(|o| o.name.clone())
            .collect()
    }

    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String> {
        let choice = planner
            .desired
            .appliances
            .iter()
            .find(|(_, c)| c.manifest.as_ref().is_some_and(|m| &m.name == name));
        let Some((role, choice)) = choice else {
            return Err("the manifest is gone".into());
        };
        let volume = TemplateVolume::parse(&choice.template).ok_or_else(|| {
            format!(
                "spec.template: {} is not a container template volume; name one as STORAGE:vztmpl/FILE, e.g. local:vztmpl/orbitlab-{}_0.1.0_amd64.tar.zst",
                choice.template,
                role.as_str()
            )
        })?;
        let object = ObjectRef::new(Kind::Appliance, name);
        let found = survey(planner.observed, &volume)?;
        if !found.unknown.is_empty() {
            planner.wait(
                object.clone(),
                format!(
                    "cannot read the storage {} of node(s) {}; asked again on the next pass",
                    volume.storage,
                    names(&found.unknown)
                ),
            );
        }
        if found.missing.is_empty() {
            return Ok(Vec::new());
        }
        let Some(source) = found.holders.first() else {
            if found.unknown.is_empty() {
                return Err(format!(
                    "template {} is on no online node's storage, so it cannot be copied to the others; build it on one node with `orbitlab appliance build {} --storage {}` (or upload it in the Proxmox UI: node → {} → CT Templates → Upload); OrbitLab then uploads it to every other node",
                    volume.volid,
                    role.as_str(),
                    volume.storage,
                    volume.storage
                ));
            }
            return Ok(Vec::new());
        };
        if shared(planner.observed, source, volume.storage) {
            planner.wait(
                object,
                format!(
                    "storage {} is shared, yet node(s) {} do not list {}; waiting for them to see it (is the storage available there?)",
                    volume.storage,
                    names(&found.missing),
                    volume.volid
                ),
            );
            return Ok(Vec::new());
        }
        Ok(found
            .missing
            .into_iter()
            .map(|target| {
                Action::UploadTemplate(Box::new(TemplateCopy {
                    appliance: name.clone(),
                    volid: volume.volid.to_owned(),
                    storage: volume.storage.to_owned(),
                    file_name: volume.file_name.to_owned(),
                    source: source.clone(),
                    target,
                }))
            })
            .collect())
    }

    fn teardown(&self, name: &Name, planner: &mut Planner<'_>) -> Vec<Action> {
        let object = ObjectRef::new(Kind::Appliance, name);
        if planner.observed.statuses.contains(&object) {
            vec![Action::ForgetStatus(object)]
        } else {
            Vec::new()
        }
    }

    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(declared) = observed.appliance.declared.get(name) else {
            return out;
        };
        out.insert("template".into(), declared.template.clone());
        out.insert("version".into(), declared.version.clone());
        let Some(volume) = TemplateVolume::parse(&declared.template) else {
            return out;
        };
        let found = survey(observed, &volume).unwrap_or_default();
        let source = found
            .holders
            .first()
            .filter(|s| !shared(observed, s, volume.storage));
        let mut state = |nodes: &[NodeName], what: &str| {
            for node in nodes {
                out.insert(format!("template/{node}"), what.to_owned());
            }
        };
        state(&found.holders, "present");
        state(&found.unknown, "unknown");
        match source {
            Some(source) => state(&found.missing, &format!("uploading from {source}")),
            None => state(&found.missing, "missing"),
        }
        out
    }
}

/// A template volume id taken apart: `storage:vztmpl/file`.
#[derive(Debug, Clone, Copy)]
struct TemplateVolume<'a> {
    volid: &'a str,
    storage: &'a str,
    file_name: &'a str,
}

impl<'a> TemplateVolume<'a> {
    /// `None` when `volid` names no file in a storage's `vztmpl` content.
    fn parse(volid: &'a str) -> Option<Self> {
        let (storage, path) = volid.split_once(':')?;
        let file_name = path
            .strip_prefix("vztmpl/")
            .filter(|f| !f.is_empty() && !f.contains('/'))?;
        Some(TemplateVolume {
            volid,
            storage,
            file_name,
        })
    }
}

/// Where a template is among the online nodes, each list by name.
#[derive(Debug, Default)]
struct Survey {
    holders: Vec<NodeName>,
    missing: Vec<NodeName>,
    /// Nodes whose storage (or its template list) could not be read.
    unknown: Vec<NodeName>,
}

/// Where `volume` is on the online nodes; `Err` when a node's storage can
/// never hold it.
fn survey(observed: &Observed, volume: &TemplateVolume<'_>) -> Result<Survey, String> {
    let mut found = Survey::default();
    let ApplianceObs { storages, .. } = &observed.appliance;
    for (node, _) in observed.nodes.iter().filter(|(_, n)| n.online) {
        let Some(listed) = storages.get(node) else {
            found.unknown.push(node.clone());
            continue;
        };
        match listed.get(volume.storage) {
            None => {
                return Err(format!(
                    "spec.template: storage {} is not available on node {node}; add the node to it (Datacenter → Storage → {} → Nodes) or name a template on a storage every node has",
                    volume.storage, volume.storage
                ));
            }
            Some(s) if !s.templates => {
                return Err(format!(
                    "spec.template: storage {} on node {node} does not take container templates; add the content `Container template` to it (Datacenter → Storage → {} → Content) or name another storage",
                    volume.storage, volume.storage
                ));
            }
            Some(_) => {}
        }
        match observed.appliance.has(node, volume.volid) {
            Some(true) => found.holders.push(node.clone()),
            Some(false) => found.missing.push(node.clone()),
            None => found.unknown.push(node.clone()),
        }
    }
    Ok(found)
}

/// Whether `storage` is shared, as `node` lists it.
fn shared(observed: &Observed, node: &NodeName, storage: &str) -> bool {
    observed
        .appliance
        .storages
        .get(node)
        .and_then(|s| s.get(storage))
        .is_some_and(|s| s.shared)
}

fn names(nodes: &[NodeName]) -> String {
    nodes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::TemplateVolume;

    #[test]
    fn only_files_in_vztmpl_are_template_volumes() {
        let v = TemplateVolume::parse("local:vztmpl/orbitlab-dns_0.1.0_amd64.tar.zst").unwrap();
        assert_eq!(
            (v.storage, v.file_name),
            ("local", "orbitlab-dns_0.1.0_amd64.tar.zst")
        );
        assert!(TemplateVolume::parse("local:iso/x.iso").is_none());
        assert!(TemplateVolume::parse("local:vztmpl/a/b.tar.zst").is_none());
        assert!(TemplateVolume::parse("local:vztmpl/").is_none());
        assert!(TemplateVolume::parse("vztmpl/x.tar.zst").is_none());
    }
}
