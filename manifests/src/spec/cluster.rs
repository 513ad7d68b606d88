//! `kind: Cluster` — cluster-wide settings: the Backplane (the one EVPN
//! network created at `orbitlab init`), defaults for new instances, and
//! the upstream resolvers every Sector DNS forwards to.
//! At most one Cluster manifest exists; the Backplane's CIDR, ASN and tags
//! never change after creation (see [`crate::validate_update`]).
//! Pure: no I/O.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize};

use super::PlacementPolicy;
use super::rules::{duplicates, within};
use crate::cidr::{self, NetworkRole};
use crate::error::Problems;
use crate::names::{BridgeName, NodeName, StorageId};

/// Most upstream resolvers `defaults.dns_upstreams` may list: as many as a
/// Proxmox node's DNS settings hold (`dns1`–`dns3`).
pub const MAX_DNS_UPSTREAMS: usize = 3;

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

/// Defaults for new instances, and the Sector DNS's upstream resolvers.
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
    /// IPv4 resolvers every Sector DNS forwards names outside its Sector
    /// to, in order of preference (at most [`MAX_DNS_UPSTREAMS`], unicast,
    /// not loopback, outside the Backplane network, no repeats). Empty
    /// (the default): each Sector DNS uses the resolvers of the node it
    /// runs on (Proxmox's node DNS settings), skipping loopback ones.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "ipv4_list"
    )]
    pub dns_upstreams: Vec<Ipv4Addr>,
}

/// A list of IPv4 addresses, each refused with an operator's message (and
/// its index in the field path) when it is not one.
fn ipv4_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ipv4Addr>, D::Error> {
    struct Addr(Ipv4Addr);
    impl<'de> Deserialize<'de> for Addr {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = String::deserialize(d)?;
            cidr::parse_address(&text)
                .map(Addr)
                .map_err(serde::de::Error::custom)
        }
    }
    Ok(Vec::<Addr>::deserialize(d)?
        .into_iter()
        .map(|a| a.0)
        .collect())
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
            dns_upstreams: Vec::new(),
        }
    }
}

impl ClusterSpec {
    /// Single-object rules: Backplane CIDR rules, tags distinct and outside
    /// the Sector tag range, usable DNS upstreams.
    pub(crate) fn check(&self, p: &mut Problems) {
        self.check_dns_upstreams(p);
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

impl ClusterSpec {
    /// `defaults.dns_upstreams`: at most [`MAX_DNS_UPSTREAMS`], each a
    /// unicast address another host can answer from and the Sector can
    /// reach through its gateway (which forwards nothing into the
    /// Backplane network), none twice.
    fn check_dns_upstreams(&self, p: &mut Problems) {
        let list = &self.defaults.dns_upstreams;
        if list.len() > MAX_DNS_UPSTREAMS {
            p.push(
                "defaults.dns_upstreams",
                format!(
                    "lists {} resolvers; at most {MAX_DNS_UPSTREAMS} are allowed (as many as a Proxmox node's DNS settings hold): keep the {MAX_DNS_UPSTREAMS} you prefer",
                    list.len()
                ),
            );
        }
        for (i, addr) in list.iter().enumerate() {
            if let Some(why) = UnusableUpstream::of(*addr, &self.backplane.cidr) {
                p.push(
                    format!("defaults.dns_upstreams[{i}]"),
                    format!(
                        "{addr} is {why}; give a resolver the Sector can reach through its gateway"
                    ),
                );
            }
        }
        for (i, first) in duplicates(list, |a| *a) {
            p.push(
                format!("defaults.dns_upstreams[{i}]"),
                format!(
                    "{} is already listed as dns_upstreams[{first}]; list each resolver once",
                    list[i]
                ),
            );
        }
    }
}

/// Why an address cannot be a Sector DNS's upstream resolver: the Sector
/// DNS container reaches other hosts only through its Sector Gateway, which
/// forwards nothing into the Backplane network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnusableUpstream {
    /// `0.0.0.0`.
    Unspecified,
    /// `127.0.0.0/8`: the container itself (a node's `127.0.0.53` of
    /// systemd-resolved is the node's, out of the container's reach).
    Loopback,
    /// `169.254.0.0/16`: not routed past its own link.
    LinkLocal,
    /// Multicast, broadcast or reserved (`224.0.0.0/3`).
    NotUnicast,
    /// Inside the Backplane network.
    InBackplane(Ipv4Net),
}

impl UnusableUpstream {
    /// Why `addr` cannot be an upstream resolver of a Sector DNS on a
    /// cluster whose Backplane is `backplane`; `None` when it can.
    pub fn of(addr: Ipv4Addr, backplane: &Ipv4Net) -> Option<Self> {
        if addr.is_unspecified() {
            Some(Self::Unspecified)
        } else if addr.is_loopback() {
            Some(Self::Loopback)
        } else if addr.is_link_local() {
            Some(Self::LinkLocal)
        } else if addr.octets()[0] >= 224 {
            Some(Self::NotUnicast)
        } else if backplane.contains(&addr) {
            Some(Self::InBackplane(*backplane))
        } else {
            None
        }
    }
}

impl std::fmt::Display for UnusableUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unspecified => f.write_str("not the address of any host"),
            Self::Loopback => f.write_str(
                "a loopback address, which inside the Sector DNS container is the container itself",
            ),
            Self::LinkLocal => f.write_str("a link-local address, not routed past its own link"),
            Self::NotUnicast => f.write_str("not a unicast address"),
            Self::InBackplane(net) => write!(
                f,
                "inside the Backplane network {net}, which Sector Gateways never forward Sector traffic to"
            ),
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

    fn upstream_problems(list: &[&str]) -> Vec<(String, String)> {
        let mut c = ClusterSpec::default();
        c.defaults.dns_upstreams = list.iter().map(|a| a.parse().unwrap()).collect();
        let mut p = Problems::under("spec");
        c.check(&mut p);
        p.items
    }

    #[test]
    fn dns_upstreams_default_to_none_and_accept_three_resolvers() {
        assert!(ClusterSpec::default().defaults.dns_upstreams.is_empty());
        assert!(upstream_problems(&["192.168.1.1", "9.9.9.9", "1.1.1.1"]).is_empty());
    }

    #[test]
    fn unusable_dns_upstreams_are_refused_with_field_and_reason() {
        let problems = upstream_problems(&[
            "127.0.0.53",
            "0.0.0.0",
            "10.200.0.1",
            "224.0.0.251",
            "169.254.169.253",
            "255.255.255.255",
        ]);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.defaults.dns_upstreams",
                "spec.defaults.dns_upstreams[0]",
                "spec.defaults.dns_upstreams[1]",
                "spec.defaults.dns_upstreams[2]",
                "spec.defaults.dns_upstreams[3]",
                "spec.defaults.dns_upstreams[4]",
                "spec.defaults.dns_upstreams[5]",
            ]
        );
        let reasons: Vec<&str> = problems.iter().map(|(_, r)| r.as_str()).collect();
        assert!(
            reasons[0].contains("lists 6 resolvers; at most 3"),
            "{}",
            reasons[0]
        );
        assert!(
            reasons[1].starts_with("127.0.0.53 is a loopback address"),
            "{}",
            reasons[1]
        );
        assert!(
            reasons[2].starts_with("0.0.0.0 is not the address of any host"),
            "{}",
            reasons[2]
        );
        assert!(
            reasons[3].contains("inside the Backplane network 10.200.0.0/16"),
            "{}",
            reasons[3]
        );
        assert!(
            reasons[4].contains("not a unicast address"),
            "{}",
            reasons[4]
        );
        assert!(reasons[5].contains("link-local"), "{}", reasons[5]);
        assert!(
            reasons[6].contains("not a unicast address"),
            "{}",
            reasons[6]
        );
    }

    #[test]
    fn a_dns_upstream_listed_twice_is_refused() {
        let problems = upstream_problems(&["9.9.9.9", "1.1.1.1", "9.9.9.9"]);
        assert_eq!(
            problems,
            [(
                "spec.defaults.dns_upstreams[2]".to_owned(),
                "9.9.9.9 is already listed as dns_upstreams[0]; list each resolver once".to_owned()
            )]
        );
    }

    #[test]
    fn unusable_upstream_rules() {
        let bp: Ipv4Net = "10.200.0.0/16".parse().unwrap();
        let of = |a: &str| UnusableUpstream::of(a.parse().unwrap(), &bp);
        assert_eq!(of("127.0.0.53"), Some(UnusableUpstream::Loopback));
        assert_eq!(
            of("10.200.255.254"),
            Some(UnusableUpstream::InBackplane(bp))
        );
        assert_eq!(of("240.0.0.1"), Some(UnusableUpstream::NotUnicast));
        assert_eq!(of("10.201.0.1"), None);
        assert_eq!(of("192.168.100.1"), None);
    }
}
