//! Proxmox identifiers with Proxmox's own rules, checked once when parsed:
//! SDN zone and VNet ids (`pve-sdn-zone-id`, `pve-sdn-vnet-id`), SDN subnet
//! ids (`<zone>-<address>-<prefix>`) and guest ids (`pve-vmid`). Node
//! names are [`orbitlab_manifests::NodeName`]. Plans, actions and statuses
//! carry these types; a string becomes one only through `FromStr`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

/// Why a string is not a valid Proxmox id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not valid: {reason}")]
pub struct InvalidId {
    what: &'static str,
    value: String,
    reason: &'static str,
}

impl InvalidId {
    /// `value` (its first 64 characters) is not a valid `what`.
    pub(super) fn new(what: &'static str, value: &str, reason: &'static str) -> Self {
        InvalidId {
            what,
            value: value.chars().take(64).collect(),
            reason,
        }
    }
}

/// Proxmox's rule for zone and VNet ids (pve-network's `pve-sdn-zone-id`
/// and `pve-sdn-vnet-id`): 2–8 characters, `[a-zA-Z][a-zA-Z0-9]*[a-zA-Z0-9]`.
/// OrbitLab's own ids are lowercase; others' may not be.
fn check_sdn_id(what: &'static str, value: &str) -> Result<(), InvalidId> {
    let invalid = |reason| InvalidId {
        what,
        value: value.chars().take(64).collect(),
        reason,
    };
    if !(2..=8).contains(&value.len()) {
        return Err(invalid("must be 2 to 8 characters long"));
    }
    let bytes = value.as_bytes();
    if !bytes[0].is_ascii_alphabetic() {
        return Err(invalid("must start with a letter"));
    }
    if !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return Err(invalid("only letters and digits are allowed"));
    }
    Ok(())
}

macro_rules! sdn_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The id as Proxmox spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, InvalidId> {
                check_sdn_id($what, value)?;
                Ok(Self(value.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

sdn_id!(
    /// An SDN zone id such as `olz1001`.
    ZoneId,
    "SDN zone id"
);

sdn_id!(
    /// An SDN VNet id such as `olvn1001`.
    VnetId,
    "SDN VNet id"
);

/// An SDN subnet id: Proxmox names a subnet `<zone>-<address>-<prefix>`
/// (for `10.0.0.0/24` in zone `olz1001`: `olz1001-10.0.0.0-24`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubnetId {
    pub zone: ZoneId,
    pub cidr: Ipv4Net,
}

impl fmt::Display for SubnetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.zone,
            self.cidr.network(),
            self.cidr.prefix_len()
        )
    }
}

impl FromStr for SubnetId {
    type Err = InvalidId;

    fn from_str(value: &str) -> Result<Self, InvalidId> {
        let invalid = |reason| InvalidId {
            what: "SDN subnet id",
            value: value.chars().take(64).collect(),
            reason,
        };
        let mut parts = value.splitn(3, '-');
        let (Some(zone), Some(address), Some(prefix)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("must be <zone>-<address>-<prefix>"));
        };
        let zone: ZoneId = zone.parse()?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| invalid("the address part is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| invalid("the prefix part is not a number"))?;
        let cidr = Ipv4Net::new(address, prefix).map_err(|_| invalid("the prefix exceeds 32"))?;
        if cidr.network() != address {
            return Err(invalid("the address is not the network address"));
        }
        Ok(SubnetId { zone, cidr })
    }
}

/// A guest id (`pve-vmid`): 100 to 999 999 999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vmid(u32);

impl Vmid {
    /// The lowest guest id Proxmox accepts.
    pub const MIN: u32 = 100;
    /// The highest guest id Proxmox accepts.
    pub const MAX: u32 = 999_999_999;

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Vmid {
    type Error = InvalidId;

    fn try_from(value: u32) -> Result<Self, InvalidId> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Vmid(value))
        } else {
            Err(InvalidId {
                what: "guest id",
                value: value.to_string(),
                reason: "must be between 100 and 999999999",
            })
        }
    }
}

impl FromStr for Vmid {
    type Err = InvalidId;

    fn from_str(value: &str) -> Result<Self, InvalidId> {
        // Proxmox's pattern: no sign, no leading zero, 3 to 9 digits.
        let plain = value.len() <= 9
            && !value.starts_with('0')
            && value.bytes().all(|b| b.is_ascii_digit());
        match value.parse::<u32>() {
            Ok(n) if plain => Vmid::try_from(n),
            _ => Err(InvalidId {
                what: "guest id",
                value: value.chars().take(64).collect(),
                reason: "must be a number between 100 and 999999999",
            }),
        }
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<Vmid> for u32 {
    fn from(vmid: Vmid) -> u32 {
        vmid.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdn_ids_follow_proxmox_rules() {
        for good in ["ab", "olz1001", "olvn9999", "olbpnet", "a1", "Lab", "ZONE1"] {
            assert_eq!(good.parse::<ZoneId>().unwrap().as_str(), good);
            assert!(good.parse::<VnetId>().is_ok(), "{good}");
        }
        for bad in ["", "a", "toolongid", "1abc", "ab-c", "ab_c", "zöne", "ab c"] {
            assert!(bad.parse::<ZoneId>().is_err(), "{bad}");
            assert!(bad.parse::<VnetId>().is_err(), "{bad}");
        }
        let err = "1zone".parse::<ZoneId>().unwrap_err().to_string();
        assert!(
            err.contains("SDN zone id") && err.contains("start with a letter"),
            "{err}"
        );
    }

    #[test]
    fn subnet_ids_round_trip() {
        let id: SubnetId = "olz1001-10.0.0.0-24".parse().unwrap();
        assert_eq!(id.zone.as_str(), "olz1001");
        assert_eq!(id.cidr, "10.0.0.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(id.to_string(), "olz1001-10.0.0.0-24");
        for bad in [
            "olz1001",
            "olz1001-10.0.0.0",
            "olz1001-10.0.0.1-24",
            "olz1001-10.0.0.0-33",
            "X-10.0.0.0-24",
            "olz1001-banana-24",
        ] {
            assert!(bad.parse::<SubnetId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn vmids_follow_proxmox_rules() {
        assert_eq!("100".parse::<Vmid>().unwrap().get(), 100);
        assert_eq!("999999999".parse::<Vmid>().unwrap().get(), 999_999_999);
        for bad in [
            "",
            "99",
            "0100",
            "1000000000",
            "-100",
            "+100",
            "1e3",
            " 100",
        ] {
            assert!(bad.parse::<Vmid>().is_err(), "{bad}");
        }
        assert!(Vmid::try_from(99).is_err());
        assert!(Vmid::try_from(1_000_000_000).is_err());
    }
}
