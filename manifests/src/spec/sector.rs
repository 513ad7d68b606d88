//! `kind: Sector` — an isolated network (like a cloud VPC): its CIDR, its
//! subnets, and the explicitly declared ingress (DNAT) rules of its
//! gateway.
//!
//! Rules checked here (one object, no set needed): the CIDR rules of
//! [`crate::cidr`]; every subnet inside the Sector CIDR, subnets not
//! overlapping each other, unique subnet names; ingress names and
//! (protocol, port) pairs unique; each ingress rule names exactly one target,
//! and an address target lies in a subnet and is not a network, broadcast,
//! gateway (.1) or DNS (.2) address. Pure: no I/O.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::rules::{duplicates, within, within_opt};
use crate::cidr::{self, NetworkRole};
use crate::error::Problems;
use crate::names::Name;
use crate::text::Alias;

/// Name of the subnet a Sector gets when it declares none.
pub const DEFAULT_SUBNET: &str = "main";

/// The desired state of a Sector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct SectorSpec {
    /// Display name shown in Proxmox (the SDN VNet alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub alias: Option<Alias>,
    /// The Sector's address range. May overlap other Sectors; immutable.
    #[serde(with = "crate::cidr::net")]
    #[garde(skip)]
    pub cidr: Ipv4Net,
    /// Subnets inside `cidr`. Empty means one subnet `main` covering the
    /// whole CIDR (see [`SectorSpec::effective_subnets`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(dive)]
    pub subnets: Vec<SubnetSpec>,
    /// Connections the gateway forwards from the Backplane into the Sector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(dive)]
    pub ingress: Vec<IngressRule>,
    /// Register the gateway and DNS containers as Proxmox HA resources: the
    /// supported way for a Sector to survive the loss of a node. Without
    /// it, appliances on a dead node are reported Unavailable and never
    /// made again elsewhere (a gateway must never exist twice); with it,
    /// Proxmox HA recovers them on another node and OrbitLab follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub ha: Option<super::lxc::HaSpec>,
}

/// One subnet of a Sector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    /// Subnet name, unique within the Sector.
    #[garde(skip)]
    pub name: Name,
    /// Range inside the Sector CIDR; its `.1` is the gateway.
    #[serde(with = "crate::cidr::net")]
    #[garde(skip)]
    pub cidr: Ipv4Net,
}

/// Transport protocol of an ingress rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// An explicitly declared DNAT rule on the Sector Gateway: traffic arriving
/// on the gateway's Backplane address at `port` goes to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    /// Rule name, unique within the Sector.
    #[garde(skip)]
    pub name: Name,
    /// `tcp` or `udp`.
    #[garde(skip)]
    pub protocol: Protocol,
    /// Port on the gateway's Backplane address.
    #[garde(custom(within(1u16, 65535, "")))]
    pub port: u16,
    /// Target instance (an `Lxc` in this Sector), or use `to_address` or
    /// `to_selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub to_instance: Option<Name>,
    /// Targets chosen by labels: the running instances of this Sector and
    /// the healthy members of its Pools (which carry their Pool's labels)
    /// that match, connections spread over them in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub to_selector: Option<crate::selector::Selector>,
    /// Target address inside the Sector, or use `to_instance`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::cidr::opt_addr"
    )]
    #[garde(skip)]
    pub to_address: Option<Ipv4Addr>,
    /// Port on the target; defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(custom(within_opt(1u16, 65535, "")))]
    pub to_port: Option<u16>,
}

impl IngressRule {
    /// The port on the target (`to_port`, else `port`).
    pub fn target_port(&self) -> u16 {
        self.to_port.unwrap_or(self.port)
    }
}

impl SectorSpec {
    /// A Sector with one subnet `main` covering `cidr` and no ingress.
    pub fn new(cidr: Ipv4Net) -> Self {
        SectorSpec {
            alias: None,
            cidr,
            subnets: Vec::new(),
            ingress: Vec::new(),
            ha: None,
        }
    }

    /// The subnets in effect: the declared ones, or `main` = the whole CIDR.
    pub fn effective_subnets(&self) -> Cow<'_, [SubnetSpec]> {
        if self.subnets.is_empty() {
            Cow::Owned(vec![SubnetSpec {
                name: Name::known(DEFAULT_SUBNET),
                cidr: self.cidr,
            }])
        } else {
            Cow::Borrowed(&self.subnets)
        }
    }

    /// The subnet called `name`, if any (including the implicit `main`).
    pub fn subnet(&self, name: &str) -> Option<SubnetSpec> {
        self.effective_subnets()
            .iter()
            .find(|s| s.name == name)
            .cloned()
    }

    /// The Sector DNS address: `.2` of the first subnet.
    pub fn dns_address(&self) -> Ipv4Addr {
        let first = self
            .effective_subnets()
            .first()
            .map_or(self.cidr, |s| s.cidr);
        cidr::nth(&first, 2)
    }

    /// Why `addr` cannot be an instance address in this Sector, if it can't:
    /// outside every subnet, or a network, broadcast, gateway or DNS address.
    pub fn address_problem(&self, addr: Ipv4Addr, subnet: Option<&SubnetSpec>) -> Option<String> {
        let subnets = self.effective_subnets();
        let found = match subnet {
            Some(s) => s.cidr.contains(&addr).then_some(s),
            None => subnets.iter().find(|s| s.cidr.contains(&addr)),
        };
        let Some(s) = found else {
            return Some(match subnet {
                Some(s) => format!("{addr} is outside subnet {} ({})", s.name, s.cidr),
                None => format!(
                    "{addr} is outside every subnet of this Sector ({})",
                    list(&subnets)
                ),
            });
        };
        if addr == s.cidr.network() || addr == s.cidr.broadcast() {
            return Some(format!(
                "{addr} is the network or broadcast address of subnet {} ({})",
                s.name, s.cidr
            ));
        }
        if addr == cidr::nth(&s.cidr, 1) {
            return Some(format!(
                "{addr} is the gateway address of subnet {}; use another address",
                s.name
            ));
        }
        if addr == self.dns_address() {
            return Some(format!(
                "{addr} is the Sector DNS address; use another address"
            ));
        }
        None
    }

    /// Single-object rules (see the module documentation).
    pub(crate) fn check(&self, p: &mut Problems) {
        if let Err(why) = cidr::check_network(&self.cidr, NetworkRole::Sector) {
            p.push("cidr", why);
        }
        for (i, s) in self.subnets.iter().enumerate() {
            let field = format!("subnets[{i}].cidr");
            if let Err(why) = cidr::check_network(&s.cidr, NetworkRole::Subnet) {
                p.push(&field, why);
            } else if !self.cidr.contains(&s.cidr) {
                p.push(
                    &field,
                    format!("{} is outside the Sector CIDR {}", s.cidr, self.cidr),
                );
            }
        }
        for (i, first) in duplicates(&self.subnets, |s| &s.name) {
            p.push(
                format!("subnets[{i}].name"),
                format!("subnet name {} is already used by subnets[{first}]; subnet names must be unique", self.subnets[i].name),
            );
        }
        for i in 0..self.subnets.len() {
            for j in 0..i {
                let (a, b) = (&self.subnets[i], &self.subnets[j]);
                if cidr::overlaps(&a.cidr, &b.cidr) {
                    p.push(
                        format!("subnets[{i}].cidr"),
                        format!(
                            "{} overlaps subnet {} ({}); subnets of one Sector must not overlap",
                            a.cidr, b.name, b.cidr
                        ),
                    );
                }
            }
        }
        self.check_ingress(p);
    }

    fn check_ingress(&self, p: &mut Problems) {
        for (i, first) in duplicates(&self.ingress, |r| &r.name) {
            p.push(
                format!("ingress[{i}].name"),
                format!(
                    "ingress name {} is already used by ingress[{first}]; names must be unique",
                    self.ingress[i].name
                ),
            );
        }
        for (i, first) in duplicates(&self.ingress, |r| (r.protocol, r.port)) {
            let r = &self.ingress[i];
            p.push(
                format!("ingress[{i}].port"),
                format!(
                    "{} port {} is already forwarded by ingress[{first}] ({}); one port can reach only one target",
                    protocol_name(r.protocol),
                    r.port,
                    self.ingress[first].name
                ),
            );
        }
        for (i, r) in self.ingress.iter().enumerate() {
            let targets = usize::from(r.to_instance.is_some())
                + usize::from(r.to_address.is_some())
                + usize::from(r.to_selector.is_some());
            match targets {
                0 => p.push(
                    format!("ingress[{i}]"),
                    "names no target; set to_instance (an Lxc in this Sector), to_address or to_selector",
                ),
                1 => {}
                _ => p.push(
                    format!("ingress[{i}]"),
                    "set one of to_instance, to_address and to_selector",
                ),
            }
            if let Some(addr) = r.to_address
                && let Some(why) = self.address_problem(addr, None)
            {
                p.push(format!("ingress[{i}].to_address"), why);
            }
            if let Some(selector) = &r.to_selector
                && !selector
                    .terms()
                    .iter()
                    .any(crate::selector::Term::is_positive)
            {
                p.push(
                    format!("ingress[{i}].to_selector"),
                    format!(
                        "{selector} only excludes, so it would forward to every instance without those labels, today's and tomorrow's; add a term that names the targets, such as app=web"
                    ),
                );
            }
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn list(subnets: &[SubnetSpec]) -> String {
    subnets
        .iter()
        .map(|s| format!("{} {}", s.name, s.cidr))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &SectorSpec) -> Vec<(String, String)> {
        let mut p = Problems::under("spec");
        s.check(&mut p);
        p.items
    }

    fn subnet(name: &str, cidr: &str) -> SubnetSpec {
        SubnetSpec {
            name: name.parse().unwrap(),
            cidr: cidr.parse().unwrap(),
        }
    }

    #[test]
    fn implicit_main_subnet() {
        let s = SectorSpec::new("10.1.0.0/16".parse().unwrap());
        let subnets = s.effective_subnets();
        assert_eq!(subnets.len(), 1);
        assert_eq!(subnets[0].name, "main");
        assert_eq!(subnets[0].cidr, s.cidr);
        assert_eq!(s.dns_address(), Ipv4Addr::new(10, 1, 0, 2));
        assert!(check(&s).is_empty());
    }

    #[test]
    fn subnet_outside_and_overlapping() {
        let mut s = SectorSpec::new("172.16.0.0/16".parse().unwrap());
        s.subnets = vec![
            subnet("a", "172.16.0.0/24"),
            subnet("b", "10.9.0.0/24"),
            subnet("c", "172.16.0.128/25"),
        ];
        let got = check(&s);
        assert!(got.contains(&(
            "spec.subnets[1].cidr".into(),
            "10.9.0.0/24 is outside the Sector CIDR 172.16.0.0/16".into()
        )));
        assert!(
            got.iter()
                .any(|(f, r)| f == "spec.subnets[2].cidr" && r.contains("overlaps subnet a")),
            "{got:?}"
        );
    }

    #[test]
    fn ingress_rules() {
        let mut s = SectorSpec::new("10.1.0.0/24".parse().unwrap());
        let rule = |name: &str, port, addr: Option<&str>| IngressRule {
            name: name.parse().unwrap(),
            protocol: Protocol::Tcp,
            port,
            to_instance: None,
            to_selector: None,
            to_address: addr.map(|a| a.parse().unwrap()),
            to_port: None,
        };
        s.ingress = vec![
            rule("web", 80, Some("10.1.0.10")),
            rule("web", 80, Some("10.1.0.1")),
            rule("none", 81, None),
            rule("far", 82, Some("10.2.0.1")),
        ];
        let got = check(&s);
        let has = |f: &str, r: &str| got.iter().any(|(gf, gr)| gf == f && gr.contains(r));
        assert!(has("spec.ingress[1].name", "already used"), "{got:?}");
        assert!(
            has("spec.ingress[1].port", "tcp port 80 is already forwarded"),
            "{got:?}"
        );
        assert!(
            has("spec.ingress[1].to_address", "gateway address"),
            "{got:?}"
        );
        assert!(has("spec.ingress[2]", "names no target"), "{got:?}");
        assert!(
            has("spec.ingress[3].to_address", "outside every subnet"),
            "{got:?}"
        );
        assert_eq!(got.len(), 5, "{got:?}");
        // A selector target: one target only, and one that names what it
        // reaches.
        let mut by_label = rule("lb", 90, Some("10.1.0.10"));
        by_label.to_selector = Some("app=web".parse().unwrap());
        let mut only_not = rule("lb2", 91, None);
        only_not.to_selector = Some("!legacy".parse().unwrap());
        let mut fine = rule("lb3", 92, None);
        fine.to_selector = Some("app=web,tier in (a,b)".parse().unwrap());
        s.ingress = vec![by_label, only_not, fine];
        let got = check(&s);
        let has = |f: &str, r: &str| got.iter().any(|(gf, gr)| gf == f && gr.contains(r));
        assert!(
            has(
                "spec.ingress[0]",
                "set one of to_instance, to_address and to_selector"
            ),
            "{got:?}"
        );
        assert!(
            has("spec.ingress[1].to_selector", "!legacy only excludes"),
            "{got:?}"
        );
        assert_eq!(got.len(), 2, "{got:?}");
    }
}
