//! The typed `spec` of every kind, and [`Spec`], the enum holding one of
//! them. Spec types are plain serde types (`deny_unknown_fields`, snake_case
//! fields), so they can be built from YAML, from JSON values, or in code.
//!
//! Each spec module checks its own single-object rules; references between
//! objects are listed by [`Spec::references`] and resolved by
//! [`crate::ManifestSet`]. Pure: no I/O.

pub mod appliance;
pub mod certificate;
pub mod cluster;
pub mod files;
pub mod lxc;
pub mod node;
pub mod pool;
pub(crate) mod rules;
pub mod secret;
pub mod sector;
pub mod settings;
pub mod ssh_key;

use serde::{Deserialize, Serialize};

use crate::error::Problems;
use crate::kind::Kind;
use crate::names::Name;

pub use appliance::{ApplianceRole, ApplianceSpec};
pub use certificate::{CertificateRole, CertificateSpec};
pub use cluster::{BackplaneSpec, ClusterDefaults, ClusterSpec};
pub use files::{Arg, CertificateFiles, FileMode, FileOwner, FilePath, SecretFile};
pub use lxc::{HaResourceState, HaSpec, LxcSpec, PowerState};
pub use node::NodeSpec;
pub use pool::{
    Autoscale, HealthCheck, HttpCheck, HttpPath, PoolSpec, Probe, Spread, TcpCheck, UpdateStrategy,
};
pub use secret::{Reader, SecretSpec, SecretType, VaultPath};
pub use sector::{IngressRule, Protocol, SectorSpec, SubnetSpec};
pub use settings::{LogLevel, SettingsSpec};
pub use ssh_key::{SshKeyAlgorithm, SshKeySpec};

/// How instances without a pinned `node` are placed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PlacementPolicy {
    /// The schedulable node with the fewest OrbitLab instances (default).
    #[default]
    Spread,
    /// The schedulable node with the most free memory.
    LeastLoaded,
    /// Fill one node before using the next.
    Pack,
}

/// The typed spec of one manifest; its variant decides the manifest's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `kind: Cluster`.
    Cluster(ClusterSpec),
    /// `kind: Node`.
    Node(NodeSpec),
    /// `kind: Sector`.
    Sector(SectorSpec),
    /// `kind: Lxc`.
    Lxc(LxcSpec),
    /// `kind: Appliance`.
    Appliance(ApplianceSpec),
    /// `kind: Secret`.
    Secret(SecretSpec),
    /// `kind: Certificate`.
    Certificate(CertificateSpec),
    /// `kind: SshKey`.
    SshKey(SshKeySpec),
    /// `kind: Settings`.
    Settings(SettingsSpec),
    /// `kind: Pool`.
    Pool(PoolSpec),
}

/// A reference from one object to another, found in its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference<'a> {
    /// Field path of the reference, e.g. `spec.ssh_keys[1]`.
    pub field: String,
    /// Kind of the object referred to.
    pub kind: Kind,
    /// Name of the object referred to.
    pub name: &'a Name,
    /// Whether the target must be created before the referring object
    /// (used for [`crate::ManifestSet::dependency_order`]). Ingress targets
    /// are not: the gateway forwards to an instance that may come later.
    pub orders: bool,
}

/// Dispatch `$body` over every variant with `$s` bound to the inner spec.
macro_rules! each_spec {
    ($spec:expr, $s:ident => $body:expr) => {
        match $spec {
            Spec::Cluster($s) => $body,
            Spec::Node($s) => $body,
            Spec::Sector($s) => $body,
            Spec::Lxc($s) => $body,
            Spec::Appliance($s) => $body,
            Spec::Secret($s) => $body,
            Spec::Certificate($s) => $body,
            Spec::SshKey($s) => $body,
            Spec::Settings($s) => $body,
            Spec::Pool($s) => $body,
        }
    };
}

impl Spec {
    /// The kind this spec belongs to.
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Cluster(_) => Kind::Cluster,
            Spec::Node(_) => Kind::Node,
            Spec::Sector(_) => Kind::Sector,
            Spec::Lxc(_) => Kind::Lxc,
            Spec::Appliance(_) => Kind::Appliance,
            Spec::Secret(_) => Kind::Secret,
            Spec::Certificate(_) => Kind::Certificate,
            Spec::SshKey(_) => Kind::SshKey,
            Spec::Settings(_) => Kind::Settings,
            Spec::Pool(_) => Kind::Pool,
        }
    }

    /// Deserialize the spec of a manifest of kind `kind` from any serde
    /// deserializer (YAML, JSON, ...).
    pub fn deserialize_for<'de, D: serde::Deserializer<'de>>(
        kind: Kind,
        d: D,
    ) -> Result<Spec, D::Error> {
        Ok(match kind {
            Kind::Cluster => Spec::Cluster(Deserialize::deserialize(d)?),
            Kind::Node => Spec::Node(Deserialize::deserialize(d)?),
            Kind::Sector => Spec::Sector(Deserialize::deserialize(d)?),
            Kind::Lxc => Spec::Lxc(Deserialize::deserialize(d)?),
            Kind::Appliance => Spec::Appliance(Deserialize::deserialize(d)?),
            Kind::Secret => Spec::Secret(Deserialize::deserialize(d)?),
            Kind::Certificate => Spec::Certificate(Deserialize::deserialize(d)?),
            Kind::SshKey => Spec::SshKey(Deserialize::deserialize(d)?),
            Kind::Settings => Spec::Settings(Deserialize::deserialize(d)?),
            Kind::Pool => Spec::Pool(Deserialize::deserialize(d)?),
        })
    }

    /// Build a spec of kind `kind` from a JSON value, e.g. one assembled
    /// from command-line options (`{"cidr": "10.1.0.0/16"}`). The error
    /// names the field `spec` and serde's reason (unknown or missing field,
    /// bad value).
    pub fn from_json(kind: Kind, value: serde_json::Value) -> Result<Spec, crate::ManifestError> {
        Spec::deserialize_for(kind, value)
            .map_err(|e| crate::ManifestError::new("spec", e.to_string()))
    }

    /// The spec as a JSON value (for `--output-format json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Removes every reference to `kind/name` that does not order (an
    /// ingress rule's target instance), for deleting that object without
    /// its referrers; true when something was removed.
    pub fn drop_unordered_references(&mut self, kind: Kind, name: &Name) -> bool {
        match self {
            Spec::Sector(s) if kind == Kind::Lxc => {
                let before = s.ingress.len();
                s.ingress.retain(|r| r.to_instance.as_ref() != Some(name));
                s.ingress.len() != before
            }
            _ => false,
        }
    }

    /// Every reference this spec makes to other objects.
    pub fn references(&self) -> Vec<Reference<'_>> {
        let mut out = Vec::new();
        let mut add = |field: String, kind, name, orders| {
            out.push(Reference {
                field,
                kind,
                name,
                orders,
            })
        };
        match self {
            Spec::Lxc(_) | Spec::Pool(_) => {
                let (s, at) = match self {
                    Spec::Pool(p) => (&p.instance, "spec.instance"),
                    Spec::Lxc(s) => (s, "spec"),
                    _ => unreachable!(),
                };
                add(format!("{at}.sector"), Kind::Sector, &s.sector, true);
                for (i, k) in s.ssh_keys.iter().enumerate() {
                    add(format!("{at}.ssh_keys[{i}]"), Kind::SshKey, k, true);
                }
                if let Some(p) = &s.password {
                    add(format!("{at}.password"), Kind::Secret, p, true);
                }
                for (i, f) in s.secrets.iter().enumerate() {
                    add(
                        format!("spec.secrets[{i}].secret"),
                        Kind::Secret,
                        &f.secret,
                        true,
                    );
                }
                for (i, f) in s.certificates.iter().enumerate() {
                    add(
                        format!("spec.certificates[{i}].certificate"),
                        Kind::Certificate,
                        &f.certificate,
                        true,
                    );
                }
            }
            Spec::Secret(s) => {
                for (i, r) in s.readers.iter().enumerate() {
                    if let secret::Reader::Lxc(name) = r {
                        add(format!("spec.readers[{i}].lxc"), Kind::Lxc, name, false);
                    }
                }
            }
            Spec::SshKey(s) => {
                if let Some(p) = &s.passphrase {
                    add("spec.passphrase".into(), Kind::Secret, p, true);
                }
            }
            Spec::Certificate(s) => {
                if let Some(i) = &s.issuer {
                    add("spec.issuer".into(), Kind::Certificate, i, true);
                }
            }
            Spec::Sector(s) => {
                for (i, r) in s.ingress.iter().enumerate() {
                    if let Some(t) = &r.to_instance {
                        add(
                            format!("spec.ingress[{i}].to_instance"),
                            Kind::Lxc,
                            t,
                            false,
                        );
                    }
                }
            }
            Spec::Cluster(_) | Spec::Node(_) | Spec::Appliance(_) | Spec::Settings(_) => {}
        }
        out
    }

    /// Single-object rules: garde field rules, then the spec's cross-field
    /// rules. Problems are recorded below `spec`.
    pub(crate) fn check(&self, p: &mut Problems) {
        let mut garde_problems = Problems::under("spec");
        each_spec!(self, s => {
            if let Err(report) = garde::Validate::validate(s) {
                garde_problems.garde(report);
            }
        });
        p.append(garde_problems);
        let mut own = Problems::under("spec");
        match self {
            Spec::Cluster(s) => s.check(&mut own),
            Spec::Sector(s) => s.check(&mut own),
            Spec::Lxc(s) => s.check(&mut own),
            Spec::Certificate(s) => s.check(&mut own),
            Spec::Settings(s) => s.check(&mut own),
            Spec::Secret(s) => s.check(&mut own),
            Spec::SshKey(s) => s.check(&mut own),
            Spec::Pool(s) => s.check(&mut own),
            Spec::Node(_) | Spec::Appliance(_) => {}
        }
        p.append(own);
    }
}

impl Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        each_spec!(self, inner => inner.serialize(s))
    }
}

macro_rules! spec_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Spec {
            fn from(s: $ty) -> Spec {
                Spec::$variant(s)
            }
        })*
    };
}

spec_from!(
    Cluster(ClusterSpec),
    Node(NodeSpec),
    Sector(SectorSpec),
    Lxc(LxcSpec),
    Appliance(ApplianceSpec),
    Secret(SecretSpec),
    Certificate(CertificateSpec),
    SshKey(SshKeySpec),
    Settings(SettingsSpec),
    Pool(PoolSpec),
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn from_json_builds_a_sector() {
        let spec =
            Spec::from_json(Kind::Sector, json!({"cidr": "10.1.0.0/16", "alias": "Web"})).unwrap();
        assert_eq!(spec.kind(), Kind::Sector);
        assert_eq!(
            spec.to_json(),
            json!({"alias": "Web", "cidr": "10.1.0.0/16"})
        );
    }

    #[test]
    fn from_json_refuses_unknown_field() {
        let e =
            Spec::from_json(Kind::Sector, json!({"cidr": "10.1.0.0/16", "vlan": 3})).unwrap_err();
        assert_eq!(e.field, "spec");
        assert!(e.reason.contains("unknown field `vlan`"), "{e}");
    }

    #[test]
    fn lxc_references() {
        let spec = Spec::from_json(
            Kind::Lxc,
            json!({"sector": "web", "template": "local:vztmpl/d.tar.zst", "ssh_keys": ["a", "b"], "password": "pw"}),
        )
        .unwrap();
        let refs: Vec<(String, Kind, &str)> = spec
            .references()
            .into_iter()
            .map(|r| (r.field, r.kind, r.name.as_str()))
            .collect();
        assert_eq!(
            refs,
            vec![
                ("spec.sector".to_owned(), Kind::Sector, "web"),
                ("spec.ssh_keys[0]".to_owned(), Kind::SshKey, "a"),
                ("spec.ssh_keys[1]".to_owned(), Kind::SshKey, "b"),
                ("spec.password".to_owned(), Kind::Secret, "pw"),
            ]
        );
    }
}
