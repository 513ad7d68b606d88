//! How objects look through the API: spec and status side by side, and how
//! pvesh-style properties become (or change) a manifest.

use orbitlab_manifests::{Kind, Manifest, Metadata, Spec};
use serde::Deserialize;
use serde_json::Value;

use super::PropertyValue;
use crate::status::ObjectStatus;

/// Properties that belong to `metadata` rather than `spec`.
const METADATA_KEYS: [&str; 3] = ["name", "description", "labels"];

/// `{apiVersion, kind, metadata, spec, status}`; `status` is null until an
/// agent reported one, and then carries its `phase` too.
pub(crate) fn object(manifest: &Manifest, status: Option<&ObjectStatus>) -> Value {
    let mut value = serde_json::to_value(manifest).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.insert(
            "status".into(),
            status.map_or(Value::Null, |s| {
                let mut value = serde_json::to_value(s).unwrap_or(Value::Null);
                // The phase as `orbitlab status` names it, so that clients
                // (the web UI panel) need not derive it again.
                if let Value::Object(fields) = &mut value {
                    fields.insert("phase".into(), Value::from(s.phase()));
                }
                value
            }),
        );
    }
    value
}

/// A new manifest of `kind` from command-line properties.
pub(crate) fn manifest_from_properties(
    kind: Kind,
    _existing: Option<&Manifest>,
    properties: PropertyValue,
) -> Result<Manifest, String> {
    let (metadata, spec) = split(properties);
    let PropertyValue::Map(fields) = &metadata else {
        return Err("properties must be given as --key value".into());
    };
    if !fields.contains_key("name") {
        return Err("--name is required".into());
    }
    let metadata = Metadata::deserialize(metadata).map_err(|e| format!("metadata: {e}"))?;
    let spec = Spec::deserialize_for(kind, spec).map_err(|e| format!("spec: {e}"))?;
    let mut manifest = Manifest::new(metadata.name.clone(), spec);
    manifest.metadata = metadata;
    Ok(manifest)
}

/// `current` with `properties` replaced and `delete`d keys reset.
pub(crate) fn update_from_properties(
    current: &Manifest,
    properties: PropertyValue,
    delete: &[String],
) -> Result<Manifest, String> {
    let kind = current.kind();
    let to_properties =
        |value: Value| PropertyValue::from_json(&value).unwrap_or_else(PropertyValue::map);
    let mut metadata =
        to_properties(serde_json::to_value(&current.metadata).map_err(|e| e.to_string())?);
    let mut spec = to_properties(current.spec.to_json());
    let PropertyValue::Map(fields) = properties else {
        return Err("properties must be given as --key value".into());
    };
    for (key, value) in fields {
        if key == "name" {
            return Err(
                "metadata.name cannot change; create a new object and delete this one".into(),
            );
        }
        let target = if METADATA_KEYS.contains(&key.as_str()) {
            &mut metadata
        } else {
            &mut spec
        };
        target.replace(&key, value).map_err(|e| e.to_string())?;
    }
    for key in delete {
        let normalized = key.replace('-', "_");
        let head = normalized.split('.').next().unwrap_or_default();
        let target = if METADATA_KEYS.contains(&head) {
            &mut metadata
        } else {
            &mut spec
        };
        if !target.remove(&normalized) {
            return Err(format!("--delete {key}: no such property is set"));
        }
    }
    let metadata = Metadata::deserialize(metadata).map_err(|e| format!("metadata: {e}"))?;
    let spec = Spec::deserialize_for(kind, spec).map_err(|e| format!("spec: {e}"))?;
    let mut manifest = Manifest::new(metadata.name.clone(), spec);
    manifest.api_version = current.api_version;
    manifest.metadata = metadata;
    Ok(manifest)
}

/// Splits top-level properties into metadata and spec.
fn split(properties: PropertyValue) -> (PropertyValue, PropertyValue) {
    let PropertyValue::Map(fields) = properties else {
        return (properties, PropertyValue::map());
    };
    let (metadata, spec) = fields
        .into_iter()
        .partition(|(k, _)| METADATA_KEYS.contains(&k.as_str()));
    (PropertyValue::Map(metadata), PropertyValue::Map(spec))
}
