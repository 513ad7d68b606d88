//! Tearing down Sectors whose manifest is gone, in reverse order of
//! creation: containers, then SDN objects (applied), then IPAM addresses
//! and the VNet tag, then the status file.

use std::collections::BTreeSet;

use orbitlab_manifests::Kind;

use super::{ObjectKey, Planner};
use crate::reconcile::action::Action;
use crate::reconcile::ids::{self, Marker};
use crate::reconcile::observed::Pending;

impl Planner<'_> {
    pub(super) fn teardown(&mut self) {
        for name in self.orphan_sectors() {
            let steps = self.teardown_steps(&name);
            self.add((Kind::Sector, name), steps);
        }
    }

    /// Sectors that OrbitLab's records or markers mention but no manifest
    /// declares.
    fn orphan_sectors(&self) -> BTreeSet<String> {
        let declared = |n: &str| self.desired.sectors.keys().any(|k| k.as_ref() == n);
        let observed = self.observed;
        observed
            .tags
            .values()
            .cloned()
            .chain(
                observed
                    .containers
                    .values()
                    .filter_map(|c| match &c.marker {
                        Some(Marker {
                            kind: Kind::Sector,
                            name,
                            ..
                        }) => Some(name.to_string()),
                        _ => None,
                    }),
            )
            .chain(observed.addresses.keys().filter_map(|owner| {
                owner
                    .strip_prefix("sector/")
                    .and_then(|rest| rest.split('/').next())
                    .map(str::to_owned)
            }))
            .chain(
                observed
                    .statuses
                    .iter()
                    .filter(|(k, _)| *k == Kind::Sector)
                    .map(|(_, n)| n.clone()),
            )
            .filter(|n| !declared(n))
            .collect()
    }

    fn teardown_steps(&self, name: &str) -> Vec<Action> {
        let owner: ObjectKey = (Kind::Sector, name.to_owned());
        let observed = self.observed;
        let mut steps = Vec::new();
        let mut anything_left = false;
        for (vmid, c) in &observed.containers {
            if matches!(&c.marker, Some(m) if m.kind == Kind::Sector && m.name.as_ref() == name) {
                steps.push(Action::DestroyContainer {
                    owner: owner.clone(),
                    vmid: *vmid,
                    node: c.node.clone(),
                    running: c.running,
                });
            }
        }
        let live = |pending: Option<Pending>| pending != Some(Pending::Deleted);
        for (tag, _) in observed.tags.iter().filter(|(_, s)| s.as_str() == name) {
            let (zone, vnet) = (ids::sector_zone(*tag), ids::sector_vnet(*tag));
            let mut sdn_left = false;
            for (id, s) in observed.subnets.iter().filter(|(_, s)| s.vnet == vnet) {
                sdn_left = true;
                if live(s.pending) {
                    steps.push(Action::DeleteSubnet {
                        owner: owner.clone(),
                        vnet: vnet.clone(),
                        id: id.clone(),
                    });
                }
            }
            if let Some(v) = observed.vnets.get(&vnet) {
                sdn_left = true;
                if live(v.pending) {
                    steps.push(Action::DeleteVnet {
                        owner: owner.clone(),
                        id: vnet.clone(),
                    });
                }
            }
            if let Some(z) = observed.zones.get(&zone) {
                sdn_left = true;
                if live(z.pending) {
                    steps.push(Action::DeleteZone {
                        owner: owner.clone(),
                        id: zone.clone(),
                    });
                }
            }
            // The tag is released once Proxmox no longer has the VNet, so a
            // new Sector can never collide with a VNet still being deleted.
            if sdn_left {
                anything_left = true;
            } else {
                steps.push(Action::ReleaseTag {
                    sector: name.to_owned(),
                    tag: *tag,
                });
            }
        }
        let prefix = format!("sector/{name}/");
        if observed.addresses.keys().any(|o| o.starts_with(&prefix)) {
            steps.push(Action::ReleaseAddresses {
                owner: owner.clone(),
                prefix,
            });
        }
        if !anything_left && observed.statuses.contains(&owner) {
            steps.push(Action::ForgetStatus {
                kind: Kind::Sector,
                name: name.to_owned(),
            });
        }
        steps
    }
}
