//! `kind: Cluster` — cluster-wide settings: the Backplane (the one EVPN
//! network created at `orbitlab init`) and defaults for new instances.
//! At most one Cluster manifest exists; the Backplane's CIDR, ASN and tags
//! never change after creation (see [`crate::validate_update`]).
//! Pure: no I/O.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::PlacementPolicy;
use super::rules::within;
use crate::cidr::{self, NetworkRole};
use crate::error::Problems;
use crate::names::{BridgeName, NodeName, StorageId};

/// Largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = 16_777_215;
/// VNet tags OrbitLab picks for Sectors (lowest free in this range).
pub const SECTOR_TAGS: std::ops::RangeInclusive<u32> = 1001..=9999;

/// The desired cluster-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// The Backplane network.
    #[serde(default)]
    #[garde(dive)]
    pub backplane: BackplaneSpec,
    /// Defaults for objects that do not say otherwise.
    #[serde(default)]
    #[garde(skip)]
    pub defaults: ClusterDefaults,
}

/// The Backplane: one EVPN zone and VNet carrying traffic between Sectors
/// and out of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct BackplaneSpec {
    /// The Backplane subnet; its `.1` is the Backplane gateway. Immutable.
    #[serde(default = "default_cidr", with = "crate::cidr::net")]
    #[garde(skip)]
    pub cidr: Ipv4Net,
    /// BGP AS number of the EVPN controller. Immutable.
    #[serde(default = "default_asn")]
    #[garde(custom(within(1u32, 4_294_967_294, "")))]
    pub asn: u32,
    /// VRF-VXLAN tag of the EVPN zone. Immutable.
    #[serde(default = "default_vrf_vxlan")]
    #[garde(custom(within(1u32, MAX_VNI, "")))]
    pub vrf_vxlan: u32,
    /// VXLAN tag of the Backplane VNet. Immutable.
    #[serde(default = "default_vnet_tag")]
    #[garde(custom(within(1u32, MAX_VNI, "")))]
    pub vnet_tag: u32,
    /// The exit node that carries the Backplane's SNAT traffic out of the
    /// cluster (Proxmox's `exitnodes-primary`, needed with SNAT on several
    /// exit nodes or an upstream router without ECMP); default: the first
    /// node in name order. Changing it is a planned change of the zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub primary_exit_node: Option<NodeName>,
}

/// Defaults for new instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterDefaults {
    /// Storage for container root disks.
    #[serde(default = "default_storage")]
    pub storage: StorageId,
    /// Storage holding container templates.
    #[serde(default = "default_template_storage")]
    pub template_storage: StorageId,
    /// The uplink bridge of every node (whose IP the EVPN peers use).
    #[serde(default = "default_bridge")]
    pub bridge: BridgeName,
    /// How instances without a `node` are placed.
    #[serde(default)]
    pub placement: PlacementPolicy,
}

fn default_cidr() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 200, 0, 0), 16).unwrap_or_default()
}
fn default_asn() -> u32 {
    65001
}
fn default_vrf_vxlan() -> u32 {
    10
}
fn default_vnet_tag() -> u32 {
    100
}
fn default_storage() -> StorageId {
    StorageId::known("local-lvm")
}
fn default_template_storage() -> StorageId {
    StorageId::known("local")
}
fn default_bridge() -> BridgeName {
    BridgeName::known("vmbr0")
}

impl Default for BackplaneSpec {
    fn default() -> Self {
        BackplaneSpec {
            cidr: default_cidr(),
            asn: default_asn(),
            vrf_vxlan: default_vrf_vxlan(),
            vnet_tag: default_vnet_tag(),
            primary_exit_node: None,
        }
    }
}

impl Default for ClusterDefaults {
    fn default() -> Self {
        ClusterDefaults {
            storage: default_storage(),
            template_storage: default_template_storage(),
            bridge: default_bridge(),
            placement: PlacementPolicy::default(),
        }
    }
}

impl ClusterSpec {
    /// Single-object rules: Backplane CIDR rules, tags distinct and outside
    /// the Sector tag range.
    pub(crate) fn check(&self, p: &mut Problems) {
        let b = &self.backplane;
        if let Err(why) = cidr::check_network(&b.cidr, NetworkRole::Backplane) {
            p.push("backplane.cidr", why);
        }
        if b.vrf_vxlan == b.vnet_tag {
            p.push(
                "backplane.vnet_tag",
                format!(
                    "is {}, the same as backplane.vrf_vxlan; the two tags must differ",
                    b.vnet_tag
                ),
            );
        }
        for (field, tag) in [
            ("backplane.vrf_vxlan", b.vrf_vxlan),
            ("backplane.vnet_tag", b.vnet_tag),
        ] {
            if SECTOR_TAGS.contains(&tag) {
                p.push(
                    field,
                    format!(
                        "is {tag}, inside {}–{}, the range OrbitLab uses for Sector VNets; choose a tag below {} or above {}",
                        SECTOR_TAGS.start(),
                        SECTOR_TAGS.end(),
                        SECTOR_TAGS.start(),
                        SECTOR_TAGS.end()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = ClusterSpec::default();
        assert_eq!(c.backplane.cidr.to_string(), "10.200.0.0/16");
        assert_eq!(
            (c.backplane.asn, c.backplane.vrf_vxlan, c.backplane.vnet_tag),
            (65001, 10, 100)
        );
        assert_eq!(c.defaults.storage, "local-lvm");
        assert_eq!(c.defaults.template_storage, "local");
        assert_eq!(c.defaults.bridge, "vmbr0");
        let mut p = Problems::under("spec");
        c.check(&mut p);
        assert!(p.is_empty());
    }

    #[test]
    fn tag_rules() {
        let mut c = ClusterSpec::default();
        c.backplane.vnet_tag = 1500;
        c.backplane.vrf_vxlan = 1500;
        let mut p = Problems::under("spec");
        c.check(&mut p);
        let fields: Vec<&str> = p.items.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.backplane.vnet_tag",
                "spec.backplane.vrf_vxlan",
                "spec.backplane.vnet_tag"
            ]
        );
    }
}
