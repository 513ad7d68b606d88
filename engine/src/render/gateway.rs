//! The Sector Gateway's input: [`GatewaySpec`] (plain fields, built by the
//! reconciler from the Sector manifest, the cluster manifest and IPAM) and
//! [`GatewayConfig`], the same data once every cross-field rule has been
//! checked. Only a `GatewayConfig` can be rendered. Pure: no I/O.
//!
//! Interface names are fixed by the appliance: `eth0` is on the Sector's
//! VNet (it carries `.1` of every Sector subnet), `eth1` on the Backplane.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use super::{DnsLabel, RenderError, is_host_of};

/// The gateway's interface on the Sector VNet.
pub(crate) const SECTOR_IF: &str = "eth0";
/// The gateway's interface on the Backplane.
pub(crate) const BACKPLANE_IF: &str = "eth1";

/// Transport protocol of an ingress rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The nftables keyword (`tcp` / `udp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = RenderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            _ => Err(RenderError::InvalidName {
                value: s.to_owned(),
                reason: "a protocol must be \"tcp\" or \"udp\"".into(),
            }),
        }
    }
}

/// One Sector subnet as the gateway sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySubnet {
    /// The subnet (network address, e.g. `172.16.0.0/24`).
    pub cidr: Ipv4Net,
    /// The gateway's own address in it (`.1`, from IPAM).
    pub gateway: Ipv4Addr,
}

/// Where an ingress forwards: one address, or more with connections spread
/// over them in turn (a selector's targets). Sorted, never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Targets(Vec<Ipv4Addr>);

impl Targets {
    /// One address.
    pub fn one(addr: Ipv4Addr) -> Self {
        Targets(vec![addr])
    }

    /// These addresses (sorted, each once); `None` when there are none.
    pub fn new(addrs: impl IntoIterator<Item = Ipv4Addr>) -> Option<Self> {
        let set: std::collections::BTreeSet<Ipv4Addr> = addrs.into_iter().collect();
        (!set.is_empty()).then(|| Targets(set.into_iter().collect()))
    }

    /// The addresses, sorted.
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.0
    }
}

/// One explicitly declared ingress: traffic arriving on the gateway's
/// Backplane address at `protocol`/`port` is forwarded to `to`:`to_port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingress {
    /// The rule's name (shown in ruleset comments).
    pub name: DnsLabel,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Port on the gateway's Backplane address (1–65535).
    pub port: u16,
    /// Instance addresses inside the Sector.
    pub to: Targets,
    /// Port on the instance (1–65535).
    pub to_port: u16,
}

/// Everything the gateway's files are rendered from, unchecked. Turn it into
/// a [`GatewayConfig`] with [`GatewayConfig::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewaySpec {
    /// The Sector's name.
    pub sector: DnsLabel,
    /// The gateway container's host name (e.g. `olvn1001-router`).
    pub hostname: DnsLabel,
    /// The Sector's subnets, in declared order.
    pub subnets: Vec<GatewaySubnet>,
    /// The gateway's `eth1` address with the Backplane's prefix length
    /// (e.g. `10.200.0.5/16`); the Backplane network is derived from it.
    pub backplane_address: Ipv4Net,
    /// The Backplane gateway (network + 1), the gateway's default route.
    pub backplane_gateway: Ipv4Addr,
    /// Declared ingress rules, in declared order.
    pub ingress: Vec<Ingress>,
}

/// A [`GatewaySpec`] whose rules all hold:
/// - at least one subnet; each is a network address of prefix /29 or
///   shorter, with its gateway a host address inside it;
/// - subnets overlap neither each other nor the Backplane network;
/// - the Backplane address and gateway are distinct host addresses of the
///   Backplane network;
/// - ingress names are unique, `(protocol, port)` pairs are unique, ports
///   are non-zero, and each target is a host address of a Sector subnet
///   other than the gateway's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig(GatewaySpec);

impl GatewayConfig {
    /// Checks every rule listed on [`GatewayConfig`]; the first broken one is
    /// returned as an error naming the Sector and the value.
    pub fn new(spec: GatewaySpec) -> Result<Self, RenderError> {
        let sector = || spec.sector.to_string();
        if spec.subnets.is_empty() {
            return Err(RenderError::NoSubnets { sector: sector() });
        }
        let backplane = spec.backplane_address.trunc();
        for (i, subnet) in spec.subnets.iter().enumerate() {
            check_network(&spec.sector, subnet.cidr, 29)?;
            check_host(&spec.sector, "subnet gateway", subnet.gateway, subnet.cidr)?;
            for other in spec.subnets[..i].iter().map(|s| s.cidr).chain([backplane]) {
                if subnet.cidr.contains(&other.network()) || other.contains(&subnet.cidr.network())
                {
                    return Err(RenderError::Overlap {
                        sector: sector(),
                        a: subnet.cidr,
                        b: other,
                    });
                }
            }
        }
        check_network(&spec.sector, backplane, 30)?;
        let own = spec.backplane_address.addr();
        check_host(&spec.sector, "backplane address", own, backplane)?;
        check_host(
            &spec.sector,
            "backplane gateway",
            spec.backplane_gateway,
            backplane,
        )?;
        if own == spec.backplane_gateway {
            return Err(RenderError::SameAddress {
                sector: sector(),
                what: "the backplane address and the backplane gateway",
                addr: own,
            });
        }
        check_ingress(&spec)?;
        Ok(Self(spec))
    }

    /// The checked input.
    pub fn spec(&self) -> &GatewaySpec {
        &self.0
    }

    /// The Backplane network (derived from the gateway's `eth1` address).
    pub fn backplane_network(&self) -> Ipv4Net {
        self.0.backplane_address.trunc()
    }
}

fn check_network(sector: &DnsLabel, cidr: Ipv4Net, max_prefix: u8) -> Result<(), RenderError> {
    if cidr != cidr.trunc() {
        return Err(RenderError::NotANetwork {
            sector: sector.to_string(),
            cidr,
        });
    }
    if cidr.prefix_len() > max_prefix {
        return Err(RenderError::SubnetTooSmall {
            sector: sector.to_string(),
            subnet: cidr,
        });
    }
    Ok(())
}

fn check_host(
    sector: &DnsLabel,
    what: &'static str,
    addr: Ipv4Addr,
    network: Ipv4Net,
) -> Result<(), RenderError> {
    if is_host_of(&network, addr) {
        Ok(())
    } else {
        Err(RenderError::NotAHostOf {
            sector: sector.to_string(),
            what,
            addr,
            network,
        })
    }
}

fn check_ingress(spec: &GatewaySpec) -> Result<(), RenderError> {
    let sector = || spec.sector.to_string();
    let mut names = BTreeMap::new();
    let mut ports: BTreeMap<(Protocol, u16), &DnsLabel> = BTreeMap::new();
    for rule in &spec.ingress {
        if names.insert(&rule.name, ()).is_some() {
            return Err(RenderError::DuplicateIngressName {
                sector: sector(),
                name: rule.name.to_string(),
            });
        }
        for (field, port) in [("port", rule.port), ("to_port", rule.to_port)] {
            if port == 0 {
                return Err(RenderError::IngressPortZero {
                    sector: sector(),
                    name: rule.name.to_string(),
                    field,
                });
            }
        }
        if let Some(first) = ports.insert((rule.protocol, rule.port), &rule.name) {
            return Err(RenderError::DuplicateIngressPort {
                sector: sector(),
                protocol: rule.protocol,
                port: rule.port,
                first: first.to_string(),
                second: rule.name.to_string(),
            });
        }
        for &to in rule.to.addresses() {
            let inside = spec
                .subnets
                .iter()
                .any(|s| is_host_of(&s.cidr, to) && s.gateway != to);
            if !inside {
                return Err(RenderError::IngressTarget {
                    sector: sector(),
                    name: rule.name.to_string(),
                    to,
                });
            }
        }
    }
    Ok(())
}
