//! The memory of a Sector's appliance containers: the `memory` of its
//! role's Appliance (this release's default without one), set in place
//! on a container that has another (`PUT /nodes/{node}/lxc/{vmid}/config`;
//! Proxmox changes a running container's memory limit live), as an
//! instance's `memory` is. The Sector's status then shows
//! `set/<role>/memory: <new> (was <old>) at <time>`.
//!
//! A container an upgrade replaces keeps its memory: its replacement is
//! made with the new one (`upgrade.rs`).

use super::super::config_update;
use crate::pve::Vmid;
use crate::reconcile::action::Action;
use crate::reconcile::ids::Marker;
use crate::reconcile::observed::ContainerObs;
use crate::reconcile::plan::Planner;

impl Planner<'_> {
    /// The step that gives the appliance container `vmid` (of `marker`'s
    /// role) the memory its Appliance asks for; `None` when it has it, or
    /// the node's listing did not say.
    pub(super) fn appliance_memory(
        &self,
        marker: &Marker,
        vmid: Vmid,
        container: &ContainerObs,
    ) -> Option<Action> {
        let role = marker.role?;
        // Unknown (a listing without `maxmem`): nothing to compare with.
        container.config.get("memory")?;
        let want = self.desired.appliance(role).memory_mib.to_string();
        config_update(marker, vmid, container, vec![("memory", want)])
    }
}
