//! Renderers: pure functions from validated inputs to the text of the
//! configuration files OrbitLab pushes into its appliances.
//!
//! - Sector Gateway ([`GatewayConfig`]): the nftables ruleset
//!   ([`nftables`], pushed to [`NFTABLES_PATH`]), FRR's `frr.conf`
//!   ([`frr_conf`], [`FRR_CONF_PATH`]) and FRR's `daemons` file
//!   ([`frr_daemons`], [`FRR_DAEMONS_PATH`]).
//! - Sector DNS ([`DnsConfig`]): dnsmasq's configuration ([`dnsmasq_conf`],
//!   [`DNSMASQ_CONF_PATH`]) and its records file ([`dns_hosts`],
//!   [`DNS_HOSTS_PATH`]; dnsmasq re-reads it on `SIGHUP`, so a record change
//!   needs no restart).
//!
//! [`gateway_files`] and [`dns_files`] return every file of an appliance
//! with its path and mode, ready for `pct push`.
//!
//! Nothing here performs I/O. Every name that reaches a rendered file is a
//! [`DnsLabel`], and cross-field rules (addresses inside their networks, no
//! duplicate ingress) are checked once by [`GatewayConfig::new`] and
//! [`DnsConfig::new`], so a value of either type always renders to a valid
//! file. Output is deterministic (inputs are kept in sorted or declared
//! order), which the snapshot tests pin.

mod dns;
mod frr;
mod gateway;
mod label;
mod nftables;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

pub use dns::{DnsConfig, DnsSpec, dns_hosts, dnsmasq_conf};
pub use frr::{frr_conf, frr_daemons};
pub use gateway::{GatewayConfig, GatewaySpec, GatewaySubnet, Ingress, Protocol, Targets};
pub use label::{DnsLabel, MAX_LABEL_LEN};
pub use nftables::nftables;

/// Where the gateway's nftables ruleset lives in the appliance (loaded by
/// Debian's `nftables.service`, or `nft -f` on reload).
pub const NFTABLES_PATH: &str = "/etc/nftables.conf";
/// Where FRR reads its integrated configuration.
pub const FRR_CONF_PATH: &str = "/etc/frr/frr.conf";
/// Where FRR reads which daemons to start.
pub const FRR_DAEMONS_PATH: &str = "/etc/frr/daemons";
/// Where the Sector DNS appliance's dnsmasq configuration lives.
pub const DNSMASQ_CONF_PATH: &str = "/etc/dnsmasq.d/orbitlab.conf";
/// Where the Sector DNS appliance's records live (hosts-file format).
pub const DNS_HOSTS_PATH: &str = "/etc/orbitlab/dns.hosts";
/// The parent of every Sector's DNS domain: `<sector>.orbitlab.internal`.
pub const DNS_PARENT_DOMAIN: &str = "orbitlab.internal";

/// Why an input cannot be rendered. Every message names the offending value
/// and says what to change; nothing has been rendered when one is returned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// A name is not a lowercase DNS label.
    #[error("invalid name {value:?}: {reason}; use a DNS label such as \"web-1\"")]
    InvalidName {
        /// The refused text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A gateway needs at least one Sector subnet.
    #[error("sector {sector}: a gateway needs at least one subnet; declare one in the sector")]
    NoSubnets {
        /// The Sector.
        sector: String,
    },
    /// A subnet is too small to hold a gateway and hosts.
    #[error("sector {sector}: subnet {subnet} is too small; use a prefix of /29 or shorter")]
    SubnetTooSmall {
        /// The Sector.
        sector: String,
        /// The subnet.
        subnet: Ipv4Net,
    },
    /// An address must be a host address (neither network nor broadcast) of
    /// the given network.
    #[error("sector {sector}: {what} {addr} must be a host address inside {network}")]
    NotAHostOf {
        /// The Sector.
        sector: String,
        /// Which field holds the address.
        what: &'static str,
        /// The refused address.
        addr: Ipv4Addr,
        /// The network it must belong to.
        network: Ipv4Net,
    },
    /// Two networks that must be disjoint overlap.
    #[error(
        "sector {sector}: {a} overlaps {b}; Sector subnets must not overlap each other or the Backplane"
    )]
    Overlap {
        /// The Sector.
        sector: String,
        /// First network.
        a: Ipv4Net,
        /// Second network.
        b: Ipv4Net,
    },
    /// A network is written with host bits set.
    #[error("sector {sector}: {cidr} is not a network address; write it as {}", .cidr.trunc())]
    NotANetwork {
        /// The Sector.
        sector: String,
        /// The refused network.
        cidr: Ipv4Net,
    },
    /// Two addresses that must differ are equal.
    #[error("sector {sector}: {what} must differ, both are {addr}")]
    SameAddress {
        /// The Sector.
        sector: String,
        /// Which fields collide.
        what: &'static str,
        /// The shared address.
        addr: Ipv4Addr,
    },
    /// An ingress rule name is used twice.
    #[error(
        "sector {sector}: ingress name {name} is declared twice; give each ingress rule its own name"
    )]
    DuplicateIngressName {
        /// The Sector.
        sector: String,
        /// The repeated name.
        name: String,
    },
    /// Two ingress rules claim the same protocol and port on the gateway.
    #[error(
        "sector {sector}: ingress {second} uses {protocol} port {port}, already taken by ingress {first}; choose another port"
    )]
    DuplicateIngressPort {
        /// The Sector.
        sector: String,
        /// `tcp` or `udp`.
        protocol: Protocol,
        /// The public port.
        port: u16,
        /// The rule declared first.
        first: String,
        /// The rule declared second.
        second: String,
    },
    /// Port 0 is not a port.
    #[error(
        "sector {sector}: ingress {name} has port 0 in {field}; use a port between 1 and 65535"
    )]
    IngressPortZero {
        /// The Sector.
        sector: String,
        /// The rule.
        name: String,
        /// `port` or `to_port`.
        field: &'static str,
    },
    /// An ingress target is not a host address of one of the Sector's subnets.
    #[error(
        "sector {sector}: ingress {name} targets {to}, which is not a host address in any of the sector's subnets"
    )]
    IngressTarget {
        /// The Sector.
        sector: String,
        /// The rule.
        name: String,
        /// The refused target.
        to: Ipv4Addr,
    },
    /// A DNS address is unusable.
    #[error("sector {sector}: DNS {what} {addr} is not usable: {reason}")]
    DnsAddress {
        /// The Sector.
        sector: String,
        /// Which field.
        what: &'static str,
        /// The refused address.
        addr: Ipv4Addr,
        /// Why.
        reason: &'static str,
    },
    /// A group name (a Pool's) is also a host's name.
    #[error("sector {sector}: DNS name {name} is both a host and a Pool; rename one")]
    DnsName { sector: String, name: String },
}

/// One file to place inside an appliance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedFile {
    /// Absolute path inside the container.
    pub path: &'static str,
    /// Permission bits to give the file.
    pub mode: u32,
    /// The complete content.
    pub content: String,
}

/// Every file of a Sector Gateway appliance, in the order they should be
/// pushed (FRR's daemons file before its configuration, the ruleset last).
pub fn gateway_files(config: &GatewayConfig) -> Vec<RenderedFile> {
    vec![
        RenderedFile {
            path: FRR_DAEMONS_PATH,
            mode: 0o640,
            content: frr_daemons(),
        },
        RenderedFile {
            path: FRR_CONF_PATH,
            mode: 0o640,
            content: frr_conf(config),
        },
        RenderedFile {
            path: NFTABLES_PATH,
            mode: 0o755,
            content: nftables(config),
        },
    ]
}

/// Every file of a Sector DNS appliance (configuration, then records).
pub fn dns_files(config: &DnsConfig) -> Vec<RenderedFile> {
    vec![
        RenderedFile {
            path: DNSMASQ_CONF_PATH,
            mode: 0o644,
            content: dnsmasq_conf(config),
        },
        RenderedFile {
            path: DNS_HOSTS_PATH,
            mode: 0o644,
            content: dns_hosts(config),
        },
    ]
}

/// True when `addr` is inside `net` and is neither its network nor its
/// broadcast address.
pub(crate) fn is_host_of(net: &Ipv4Net, addr: Ipv4Addr) -> bool {
    net.contains(&addr) && addr != net.network() && addr != net.broadcast()
}
