//! What the manifests ask for, in the shape the planner needs.

use std::collections::BTreeMap;

use orbitlab_manifests::{ApplianceRole, ClusterSpec, Kind, ManifestSet, Name, SectorSpec, Spec};

/// The desired state of everything the reconciler manages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// The cluster manifest (`orbitlab init` writes it); `None` before init.
    pub cluster: Option<(Name, ClusterSpec)>,
    /// Declared Sectors.
    pub sectors: BTreeMap<Name, SectorSpec>,
    /// Template of the Sector Gateway container (`storage:vztmpl/...`).
    pub gateway_template: String,
    /// Template of the Sector DNS container.
    pub dns_template: String,
    /// Memory of a Sector Gateway container in MiB (its Appliance's
    /// `memory`, else 128).
    pub gateway_memory_mib: u32,
    /// Memory of a Sector DNS container in MiB.
    pub dns_memory_mib: u32,
}

/// Memory of an appliance container when no Appliance manifest sets it.
pub const DEFAULT_APPLIANCE_MEMORY_MIB: u32 = 128;

/// Template used when no Appliance manifest names one: Debian's standard
/// container image as Proxmox ships it.
pub const FALLBACK_TEMPLATE: &str = "vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

impl Desired {
    /// Gathers the desired state from a validated set.
    pub fn from_set(set: &ManifestSet) -> Self {
        let cluster = set
            .of_kind(Kind::Cluster)
            .next()
            .and_then(|m| match &m.spec {
                Spec::Cluster(spec) => Some((m.name().clone(), spec.clone())),
                _ => None,
            });
        let sectors = set
            .of_kind(Kind::Sector)
            .filter_map(|m| match &m.spec {
                Spec::Sector(spec) => Some((m.name().clone(), spec.clone())),
                _ => None,
            })
            .collect();
        let template_storage = cluster
            .as_ref()
            .map(|(_, c)| c.defaults.template_storage.to_string())
            .unwrap_or_else(|| "local".into());
        // At most one Appliance per role (the set's validation refuses more).
        let appliance = |role: ApplianceRole| {
            set.of_kind(Kind::Appliance).find_map(|m| match &m.spec {
                Spec::Appliance(a) if a.role == role => Some(a),
                _ => None,
            })
        };
        let template_for = |role: ApplianceRole| {
            appliance(role).map_or_else(
                || format!("{template_storage}:{FALLBACK_TEMPLATE}"),
                |a| a.template.to_string(),
            )
        };
        let memory_for = |role: ApplianceRole| {
            appliance(role).map_or(DEFAULT_APPLIANCE_MEMORY_MIB, |a| a.memory)
        };
        Desired {
            cluster,
            sectors,
            gateway_template: template_for(ApplianceRole::Gateway),
            dns_template: template_for(ApplianceRole::Dns),
            gateway_memory_mib: memory_for(ApplianceRole::Gateway),
            dns_memory_mib: memory_for(ApplianceRole::Dns),
        }
    }
}
