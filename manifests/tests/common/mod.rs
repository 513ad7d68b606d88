//! Helpers shared by the integration tests.
#![allow(dead_code)]

use orbitlab_manifests::{ManifestError, ManifestErrors, ManifestSet, Sourced, decode};

/// One manifest document. `spec` is the YAML body of `spec:`, indented by
/// two spaces per line by this helper (pass it unindented).
pub fn doc(kind: &str, name: &str, spec: &str) -> String {
    let mut out =
        format!("apiVersion: orbitlab.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n");
    if spec.trim().is_empty() {
        out = out.replace("spec:\n", "spec: {}\n");
    }
    for line in spec.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Decode a text that must decode.
pub fn decode_ok(file: &str, text: &str) -> Vec<Sourced<orbitlab_manifests::Manifest>> {
    decode(file, text).unwrap_or_else(|e| panic!("{file} should decode: {e}"))
}

/// Decode a text that must be refused; returns the error.
pub fn decode_err(file: &str, text: &str) -> ManifestError {
    match decode(file, text) {
        Ok(docs) => panic!("{file} should be refused, got {} manifests", docs.len()),
        Err(e) => e,
    }
}

/// Decode several files (label, text) and build a set that must be refused.
pub fn set_err(files: &[(&str, &str)]) -> ManifestErrors {
    let mut all = Vec::new();
    for (file, text) in files {
        all.extend(decode_ok(file, text));
    }
    match ManifestSet::new(all) {
        Ok(set) => panic!("set should be refused, got {} objects", set.len()),
        Err(e) => e,
    }
}

/// Decode several files and build a set that must be accepted.
pub fn set_ok(files: &[(&str, &str)]) -> ManifestSet {
    let mut all = Vec::new();
    for (file, text) in files {
        all.extend(decode_ok(file, text));
    }
    ManifestSet::new(all).unwrap_or_else(|e| panic!("set should be valid:\n{e}"))
}

/// The error about `field`, which must exist.
pub fn find<'a>(errors: &'a ManifestErrors, field: &str) -> &'a ManifestError {
    errors
        .iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("no error for field {field}; got:\n{errors}"))
}

/// A Sector manifest with the given CIDR and extra spec lines.
pub fn sector(name: &str, cidr: &str, extra: &str) -> String {
    doc("Sector", name, &format!("cidr: {cidr}\n{extra}"))
}

/// An Lxc manifest in `sector` with extra spec lines.
pub fn lxc(name: &str, sector: &str, extra: &str) -> String {
    doc(
        "Lxc",
        name,
        &format!(
            "sector: {sector}\ntemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n{extra}"
        ),
    )
}
