//! Tearing down a Sector whose manifest is gone, in reverse order of
//! creation: containers, then SDN objects (applied), then IPAM addresses
//! and the VNet tag, then the status file; nothing while a container of
//! it is on an offline node.

use orbitlab_manifests::{Kind, Name};

use crate::reconcile::ObjectRef;
use crate::reconcile::action::Action;
use crate::reconcile::controllers::{holds_addresses, live};
use crate::reconcile::ids::{self, SectorTag};
use crate::reconcile::plan::Planner;

impl Planner<'_> {
    pub(super) fn sector_teardown(&mut self, name: &Name) -> Vec<Action> {
        let owner = ObjectRef::new(Kind::Sector, name);
        if let Some(reason) = self.stranded(&owner) {
            self.unavailable(owner, reason);
            return Vec::new();
        }
        let observed = self.observed;
        let mut steps = self.destroy_containers(&owner);
        let mut anything_left = false;
        for (&number, _) in observed
            .tags
            .iter()
            .filter(|(_, s)| s.as_str() == name.as_ref())
        {
            // A reservation outside the Sector range names no Proxmox
            // object: only the reservation itself is released.
            if let Ok(tag) = SectorTag::try_from(number) {
                let (zone, vnet) = (ids::sector_zone(tag), ids::sector_vnet(tag));
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
                // The tag is released once Proxmox no longer has the VNet,
                // so a new Sector never collides with a VNet being deleted.
                if sdn_left {
                    anything_left = true;
                    continue;
                }
            }
            steps.push(Action::ReleaseTag {
                sector: name.clone(),
                tag: number,
            });
        }
        if holds_addresses(&owner, observed) {
            steps.push(Action::ReleaseAddresses {
                owner: owner.clone(),
            });
        }
        if !anything_left && observed.statuses.contains(&owner) {
            steps.push(Action::ForgetStatus(owner));
        }
        steps
    }
}
