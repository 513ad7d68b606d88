//! The manifest kinds OrbitLab manages and the schema version (`apiVersion`)
//! every manifest declares.
//!
//! A kind is written in PascalCase in YAML (`kind: SshKey`); its snake form
//! (`ssh_key`) names the store directory
//! `orbitlab/manifests/<dir_name>/<name>.yaml`. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use crate::names::{InvalidValue, shown};

/// Every kind of object OrbitLab manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Cluster-wide settings: the Backplane and defaults (at most one).
    Cluster,
    /// Per-node settings for one Proxmox node.
    Node,
    /// An isolated network: one VXLAN zone, one VNet, one or more subnets.
    Sector,
    /// A container instance placed in a Sector subnet.
    Lxc,
    /// A container template built by this project (gateway, DNS).
    Appliance,
    /// Metadata of a secret; the value lives in the vault.
    Secret,
    /// A certificate issued by OrbitLab's PKI.
    Certificate,
    /// An SSH key pair generated and stored in the vault.
    SshKey,
    /// Agent settings (at most one).
    Settings,
    /// A group of identical instances with health checks and scaling.
    Pool,
}

impl Kind {
    /// All kinds, in declaration order.
    pub const ALL: [Kind; 10] = [
        Kind::Cluster,
        Kind::Node,
        Kind::Sector,
        Kind::Lxc,
        Kind::Appliance,
        Kind::Secret,
        Kind::Certificate,
        Kind::SshKey,
        Kind::Settings,
        Kind::Pool,
    ];

    /// The PascalCase form used in YAML (`SshKey`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "Cluster",
            Kind::Node => "Node",
            Kind::Sector => "Sector",
            Kind::Lxc => "Lxc",
            Kind::Appliance => "Appliance",
            Kind::Secret => "Secret",
            Kind::Certificate => "Certificate",
            Kind::SshKey => "SshKey",
            Kind::Settings => "Settings",
            Kind::Pool => "Pool",
        }
    }

    /// The snake form (`ssh_key`), used for the store directory
    /// `orbitlab/manifests/<dir_name>/<name>.yaml`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Node => "node",
            Kind::Sector => "sector",
            Kind::Lxc => "lxc",
            Kind::Appliance => "appliance",
            Kind::Secret => "secret",
            Kind::Certificate => "certificate",
            Kind::SshKey => "ssh_key",
            Kind::Settings => "settings",
            Kind::Pool => "pool",
        }
    }

    /// Whether at most one object of this kind may exist (Cluster, Settings).
    pub fn is_singleton(self) -> bool {
        matches!(self, Kind::Cluster | Kind::Settings)
    }

    /// Position of this kind in [`Kind::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Rank in dependency order: objects of a lower rank never depend on
    /// objects of a higher rank.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Kind::Settings => 0,
            Kind::Cluster => 1,
            Kind::Node => 2,
            Kind::Secret => 3,
            Kind::SshKey => 4,
            Kind::Certificate => 5,
            Kind::Appliance => 6,
            Kind::Sector => 7,
            Kind::Lxc => 8,
            Kind::Pool => 9,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = InvalidValue;

    /// Accepts the PascalCase form (`SshKey`) and the snake form (`ssh_key`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.dir_name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                InvalidValue(format!(
                    "unknown kind {}; OrbitLab knows {}",
                    shown(s),
                    known.join(", ")
                ))
            })
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The manifest schema version. Only `orbitlab.io/v1` exists today; a later
/// version becomes a new variant so that old manifests can be migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ApiVersion {
    /// `orbitlab.io/v1`.
    #[default]
    V1,
}

impl ApiVersion {
    /// The form written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "orbitlab.io/v1",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApiVersion {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "orbitlab.io/v1" => Ok(ApiVersion::V1),
            other => Err(InvalidValue(format!(
                "unknown apiVersion {}; this OrbitLab understands orbitlab.io/v1 (write apiVersion: orbitlab.io/v1)",
                shown(other)
            ))),
        }
    }
}

impl serde::Serialize for ApiVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ApiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_both_forms() {
        for k in Kind::ALL {
            assert_eq!(k.to_string().parse::<Kind>(), Ok(k));
            assert_eq!(k.dir_name().parse::<Kind>(), Ok(k));
            assert_eq!(Kind::ALL[k.index()], k);
        }
        assert_eq!("SshKey".parse::<Kind>(), Ok(Kind::SshKey));
        assert_eq!(Kind::SshKey.dir_name(), "ssh_key");
    }

    #[test]
    fn unknown_kind_lists_known_ones() {
        let e = "Vm".parse::<Kind>().unwrap_err();
        assert!(e.message().contains("unknown kind \"Vm\""), "{e}");
        assert!(e.message().contains("Sector"), "{e}");
    }

    #[test]
    fn unknown_api_version() {
        let e = "orbitlab.io/v2".parse::<ApiVersion>().unwrap_err();
        assert!(
            e.message()
                .contains("unknown apiVersion \"orbitlab.io/v2\""),
            "{e}"
        );
    }
}
