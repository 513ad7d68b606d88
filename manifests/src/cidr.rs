//! IPv4 network rules shared by the Backplane, Sectors and subnets, and the
//! serde form of networks and addresses (plain strings such as
//! `10.1.0.0/16`) with messages an operator understands.
//!
//! Rules (documented in the README, enforced here):
//! - the address must be the network address (no host bits set);
//! - no overlap with `0.0.0.0/8`, `127.0.0.0/8`, `169.254.0.0/16`,
//!   `224.0.0.0/4` or `240.0.0.0/4` (which holds the broadcast address);
//! - Sectors and subnets: prefix `/16` to `/28` (IPAM keeps `.1` for the
//!   gateway, `.2` for DNS and `.3`–`.9` in reserve, so a `/28` leaves five
//!   instance addresses and a `/29` none; IPAM's sharded files cover at most
//!   a `/16`);
//! - the Backplane: prefix `/16` to `/24` (it addresses every node and every
//!   Sector Gateway).
//!
//! CIDRs may overlap between Sectors: each Sector is its own routing domain.
//! Pure: no I/O.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::names::shown;

/// Smallest prefix length OrbitLab accepts for any network (IPAM pools are
/// at most a `/16`).
pub const MIN_PREFIX: u8 = 16;
/// Largest prefix length of a Sector or subnet.
pub const MAX_SECTOR_PREFIX: u8 = 28;
/// Largest prefix length of the Backplane.
pub const MAX_BACKPLANE_PREFIX: u8 = 24;

/// Address ranges no OrbitLab network may touch, with their meaning.
const RESERVED: [(Ipv4Addr, u8, &str); 5] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved and broadcast"),
];

/// Which network a rule is checked for; it fixes the largest prefix and the
/// words used in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetworkRole {
    /// The cluster-wide Backplane network.
    Backplane,
    /// A Sector CIDR.
    Sector,
    /// One subnet of a Sector.
    Subnet,
}

impl NetworkRole {
    fn max_prefix(self) -> u8 {
        match self {
            NetworkRole::Backplane => MAX_BACKPLANE_PREFIX,
            NetworkRole::Sector | NetworkRole::Subnet => MAX_SECTOR_PREFIX,
        }
    }

    fn too_small(self, prefix: u8) -> String {
        match self {
            NetworkRole::Backplane => format!(
                "prefix /{prefix} is too small for the Backplane, which needs an address for every node and every Sector Gateway; use /{MAX_BACKPLANE_PREFIX} or a shorter prefix"
            ),
            NetworkRole::Sector | NetworkRole::Subnet => format!(
                "prefix /{prefix} leaves no address for an instance after the network, gateway (.1), DNS (.2), reserved (.3-.9) and broadcast addresses; use /{MAX_SECTOR_PREFIX} or a shorter prefix"
            ),
        }
    }
}

/// Check one network against the rules above. The message is a complete
/// reason, e.g. `10.1.2.3/16 has host bits set; write 10.1.0.0/16`.
pub(crate) fn check_network(net: &Ipv4Net, role: NetworkRole) -> Result<(), String> {
    if net.addr() != net.network() {
        return Err(format!("{net} has host bits set; write {}", net.trunc()));
    }
    for (addr, len, what) in RESERVED {
        let reserved = Ipv4Net::new(addr, len).unwrap_or_default();
        if reserved.contains(net) || net.contains(&reserved) {
            return Err(format!(
                "{net} overlaps {reserved}, which is {what} address space; choose a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
            ));
        }
    }
    if net.prefix_len() < MIN_PREFIX {
        return Err(format!(
            "prefix /{} is larger than OrbitLab allows (IPAM manages at most a /{MIN_PREFIX}); use /{MIN_PREFIX} or a longer prefix, and split a larger Sector into subnets",
            net.prefix_len()
        ));
    }
    if net.prefix_len() > role.max_prefix() {
        return Err(role.too_small(net.prefix_len()));
    }
    Ok(())
}

/// Whether two networks share at least one address.
pub(crate) fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}

/// Parse a network written as `a.b.c.d/len`, with a message naming the
/// mistake (missing prefix, IPv6, garbage).
pub(crate) fn parse_network(s: &str) -> Result<Ipv4Net, String> {
    if let Ok(net) = s.parse::<Ipv4Net>() {
        return Ok(net);
    }
    if s.parse::<Ipv4Addr>().is_ok() {
        return Err(format!(
            "{} has no prefix length; write it like {s}/24",
            shown(s)
        ));
    }
    if s.contains(':') {
        return Err(format!(
            "{} is not an IPv4 network; OrbitLab networks are IPv4 for now",
            shown(s)
        ));
    }
    Err(format!(
        "{} is not an IPv4 network in CIDR form such as 10.1.0.0/16",
        shown(s)
    ))
}

/// Parse an IPv4 address with an operator-friendly message.
pub(crate) fn parse_address(s: &str) -> Result<Ipv4Addr, String> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| format!("{} is not an IPv4 address such as 10.1.0.10", shown(s)))
}

/// Serde for `Ipv4Net` as a CIDR string (`#[serde(with = "crate::cidr::net")]`).
pub(crate) mod net {
    use ipnet::Ipv4Net;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(net: &Ipv4Net, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_network(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde for `Option<Ipv4Addr>` as a string (`#[serde(with = "crate::cidr::opt_addr")]`).
pub(crate) mod opt_addr {
    use std::net::Ipv4Addr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(a: &Option<Ipv4Addr>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.collect_str(a),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Ipv4Addr>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::parse_address(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The usable host range of a network: `(first, last)` excluding the
/// network and broadcast addresses.
pub fn hosts(net: &Ipv4Net) -> (Ipv4Addr, Ipv4Addr) {
    let first = u32::from(net.network()).saturating_add(1);
    let last = u32::from(net.broadcast()).saturating_sub(1);
    (Ipv4Addr::from(first), Ipv4Addr::from(last))
}

/// The address `offset` after the network address (`.1` is the gateway,
/// `.2` the DNS server).
pub fn nth(net: &Ipv4Net, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn accepts_private_networks() {
        for s in [
            "10.0.0.0/16",
            "172.16.0.0/16",
            "192.168.1.0/24",
            "100.64.0.0/28",
        ] {
            assert_eq!(check_network(&n(s), NetworkRole::Sector), Ok(()), "{s}");
        }
    }

    #[test]
    fn refuses_with_reason() {
        let cases = [
            (
                "10.1.2.3/16",
                NetworkRole::Sector,
                "has host bits set; write 10.1.0.0/16",
            ),
            (
                "127.0.0.0/16",
                NetworkRole::Sector,
                "overlaps 127.0.0.0/8, which is loopback",
            ),
            ("169.254.1.0/24", NetworkRole::Subnet, "link-local"),
            ("224.1.0.0/16", NetworkRole::Sector, "multicast"),
            (
                "255.255.255.240/28",
                NetworkRole::Sector,
                "reserved and broadcast",
            ),
            ("0.0.0.0/0", NetworkRole::Sector, "overlaps 0.0.0.0/8"),
            (
                "10.0.0.0/29",
                NetworkRole::Sector,
                "leaves no address for an instance",
            ),
            (
                "10.0.0.0/15",
                NetworkRole::Sector,
                "prefix /15 is larger than OrbitLab allows",
            ),
            (
                "10.0.0.0/25",
                NetworkRole::Backplane,
                "too small for the Backplane",
            ),
        ];
        for (s, role, want) in cases {
            let got = check_network(&n(s), role).unwrap_err();
            assert!(got.contains(want), "{s}: {got}");
        }
    }

    #[test]
    fn parse_messages() {
        assert!(
            parse_network("10.0.0.0")
                .unwrap_err()
                .contains("has no prefix length")
        );
        assert!(
            parse_network("fd00::/64")
                .unwrap_err()
                .contains("not an IPv4 network")
        );
        assert!(
            parse_network("10.0.0.0/33")
                .unwrap_err()
                .contains("CIDR form")
        );
        assert!(parse_address("10.0.0.256").is_err());
    }

    #[test]
    fn host_helpers() {
        let net = n("10.1.0.0/24");
        assert_eq!(
            hosts(&net),
            (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 254))
        );
        assert_eq!(nth(&net, 2), Ipv4Addr::new(10, 1, 0, 2));
        assert!(overlaps(&net, &n("10.1.0.128/25")));
        assert!(!overlaps(&net, &n("10.1.1.0/24")));
    }
}
