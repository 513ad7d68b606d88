//! The manifest envelope: `apiVersion`, `kind`, `metadata` and `spec`, its
//! serde form, single-object validation and the rules for updates
//! (immutable fields). Pure: no I/O.
//!
//! In YAML the envelope keys are `apiVersion`, `kind`, `metadata`, `spec`
//! (in that order when written); `kind` is derived from the spec's type, so
//! a manifest can never disagree with itself.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ManifestError, ManifestErrors, Problems};
use crate::kind::{ApiVersion, Kind};
use crate::names::{LabelKey, LabelValue, Name};
use crate::spec::{Reference, Spec};
use crate::text::Description;

/// Most labels one object may carry.
pub const MAX_LABELS: usize = 64;

/// Object metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The object's name, unique per kind.
    pub name: Name,
    /// Labels for selection and grouping.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<LabelKey, LabelValue>,
    /// A one-line description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
}

impl Metadata {
    /// Metadata with only a name.
    pub fn named(name: Name) -> Self {
        Metadata {
            name,
            labels: BTreeMap::new(),
            description: None,
        }
    }
}

/// One OrbitLab object: what a person declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Schema version.
    pub api_version: ApiVersion,
    /// Name, labels, description.
    pub metadata: Metadata,
    /// The typed desired state; its variant is the manifest's kind.
    pub spec: Spec,
}

impl Manifest {
    /// A current-version manifest named `name` holding `spec`.
    pub fn new(name: Name, spec: impl Into<Spec>) -> Self {
        Manifest {
            api_version: ApiVersion::V1,
            metadata: Metadata::named(name),
            spec: spec.into(),
        }
    }

    /// The kind, derived from the spec.
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// The object's name.
    pub fn name(&self) -> &Name {
        &self.metadata.name
    }

    /// Every reference this manifest makes to other objects.
    pub fn references(&self) -> Vec<Reference<'_>> {
        self.spec.references()
    }

    /// Check this object on its own (field ranges, CIDR rules, cross-field
    /// rules). References to other objects are checked by
    /// [`crate::ManifestSet::new`]. The errors carry no file; use
    /// [`crate::Sourced::validate`] for located errors.
    pub fn validate(&self) -> Result<(), ManifestErrors> {
        let errors = self
            .problems()
            .items
            .into_iter()
            .map(|(f, r)| ManifestError::new(f, r))
            .collect();
        ManifestErrors(errors).into_result()
    }

    /// The single-object problems, with field paths from the manifest root.
    pub(crate) fn problems(&self) -> Problems {
        let mut p = Problems::under("");
        if self.metadata.labels.len() > MAX_LABELS {
            p.push(
                "metadata.labels",
                format!(
                    "has {} labels; at most {MAX_LABELS}",
                    self.metadata.labels.len()
                ),
            );
        }
        self.spec.check(&mut p);
        p
    }
}

/// Check that `new` may replace `old`: same kind and name, and no change to
/// fields that are fixed at creation (the Backplane's CIDR, ASN and tags; a
/// Sector's CIDR). Does not validate `new` itself.
pub fn validate_update(old: &Manifest, new: &Manifest) -> Result<(), ManifestError> {
    if old.kind() != new.kind() {
        return Err(ManifestError::new(
            "kind",
            format!(
                "cannot change from {} to {}; delete the object and create a new one",
                old.kind(),
                new.kind()
            ),
        ));
    }
    if old.name() != new.name() {
        return Err(ManifestError::new(
            "metadata.name",
            format!(
                "cannot change from {} to {}; an object is renamed by creating a new one and deleting the old",
                old.name(),
                new.name()
            ),
        ));
    }
    let fixed = |field: &str, was: String, now: String, what: &str| {
        if was == now {
            Ok(())
        } else {
            Err(ManifestError::new(
                field,
                format!("cannot change after creation (was {was}, now {now}); {what}"),
            ))
        }
    };
    match (&old.spec, &new.spec) {
        (Spec::Cluster(a), Spec::Cluster(b)) => {
            let why =
                "the Backplane is configured on every node; keep the value it was created with";
            let (a, b) = (&a.backplane, &b.backplane);
            fixed(
                "spec.backplane.cidr",
                a.cidr.to_string(),
                b.cidr.to_string(),
                why,
            )?;
            fixed(
                "spec.backplane.asn",
                a.asn.to_string(),
                b.asn.to_string(),
                why,
            )?;
            fixed(
                "spec.backplane.vrf_vxlan",
                a.vrf_vxlan.to_string(),
                b.vrf_vxlan.to_string(),
                why,
            )?;
            fixed(
                "spec.backplane.vnet_tag",
                a.vnet_tag.to_string(),
                b.vnet_tag.to_string(),
                why,
            )?;
        }
        (Spec::Sector(a), Spec::Sector(b)) => {
            fixed(
                "spec.cidr",
                a.cidr.to_string(),
                b.cidr.to_string(),
                "instances hold addresses in it; create a new Sector instead",
            )?;
        }
        _ => {}
    }
    Ok(())
}

impl Serialize for Manifest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("apiVersion", &self.api_version)?;
        map.serialize_entry("kind", &self.kind())?;
        map.serialize_entry("metadata", &self.metadata)?;
        map.serialize_entry("spec", &self.spec)?;
        map.end()
    }
}

/// Prefix of errors about a `spec` read before its `kind` (or absent): the
/// parser's position is then past the spec, so the codec names the field
/// from this prefix instead.
pub(crate) const BUFFERED_SPEC: &str = "in spec: ";

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    ApiVersion,
    Kind,
    Metadata,
    Spec,
}

/// Deserializes a `spec` value for a known kind.
struct SpecSeed(Kind);

impl<'de> de::DeserializeSeed<'de> for SpecSeed {
    type Value = Spec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Spec, D::Error> {
        Spec::deserialize_for(self.0, d)
    }
}

struct ManifestVisitor;

impl<'de> Visitor<'de> for ManifestVisitor {
    type Value = Manifest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a manifest: a mapping with apiVersion, kind, metadata and spec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Manifest, A::Error> {
        let mut api_version: Option<ApiVersion> = None;
        let mut kind: Option<Kind> = None;
        let mut metadata: Option<Metadata> = None;
        let mut spec: Option<Spec> = None;
        // A `spec` written before `kind` is held as a generic value until
        // the kind is known.
        let mut early_spec: Option<serde_json::Value> = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::ApiVersion => set_once(&mut api_version, "apiVersion", map.next_value()?)?,
                Field::Kind => set_once(&mut kind, "kind", map.next_value()?)?,
                Field::Metadata => set_once(&mut metadata, "metadata", map.next_value()?)?,
                Field::Spec => {
                    if spec.is_some() || early_spec.is_some() {
                        return Err(de::Error::duplicate_field("spec"));
                    }
                    match kind {
                        Some(k) => spec = Some(map.next_value_seed(SpecSeed(k))?),
                        None => early_spec = Some(map.next_value()?),
                    }
                }
            }
        }
        let api_version = api_version.ok_or_else(|| de::Error::missing_field("apiVersion"))?;
        let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        let metadata = metadata.ok_or_else(|| de::Error::missing_field("metadata"))?;
        let spec = match spec {
            Some(spec) => spec,
            None => {
                // An absent spec means "all defaults" (e.g. `kind: Settings`).
                let value =
                    early_spec.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
                Spec::deserialize_for(kind, value)
                    .map_err(|e| de::Error::custom(format_args!("{BUFFERED_SPEC}{e}")))?
            }
        };
        Ok(Manifest {
            api_version,
            metadata,
            spec,
        })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Deserialize<'de> for Manifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Manifest, D::Error> {
        d.deserialize_map(ManifestVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ClusterSpec, SectorSpec};
    use serde_json::json;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn json_round_trip_and_spec_before_kind() {
        let v = json!({
            "spec": {"cidr": "10.1.0.0/16"},
            "apiVersion": "orbitlab.io/v1",
            "metadata": {"name": "web"},
            "kind": "Sector",
        });
        let m: Manifest = serde_json::from_value(v).unwrap();
        assert_eq!(m.kind(), Kind::Sector);
        let back: Manifest = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn missing_spec_means_defaults() {
        let v = json!({"apiVersion": "orbitlab.io/v1", "kind": "Settings", "metadata": {"name": "agents"}});
        let m: Manifest = serde_json::from_value(v).unwrap();
        assert_eq!(m.spec, Spec::Settings(Default::default()));
    }

    #[test]
    fn update_rules() {
        let old = Manifest::new(name("main"), ClusterSpec::default());
        let mut new = old.clone();
        assert_eq!(validate_update(&old, &new), Ok(()));
        if let Spec::Cluster(c) = &mut new.spec {
            c.backplane.asn = 65002;
        }
        let e = validate_update(&old, &new).unwrap_err();
        assert_eq!(e.field, "spec.backplane.asn");
        assert!(
            e.reason
                .contains("cannot change after creation (was 65001, now 65002)"),
            "{e}"
        );

        let a = Manifest::new(name("web"), SectorSpec::new("10.1.0.0/16".parse().unwrap()));
        let b = Manifest::new(name("web"), SectorSpec::new("10.2.0.0/16".parse().unwrap()));
        assert_eq!(validate_update(&a, &b).unwrap_err().field, "spec.cidr");
        assert_eq!(validate_update(&a, &old).unwrap_err().field, "kind");
    }
}
