//! Who may read a Secret, in both directions, and the rules that keep the
//! two in step: an instance declaring a secret (`spec.secrets`) must be
//! granted it by the Secret's `readers` (by name or by a selector matching
//! its labels). Certificates delivered to instances must be server or
//! client certificates: a CA's key never leaves the vault.
//!
//! A selector grant should match at least one instance (one that matches
//! nothing is most likely a typo that would one day grant the wrong
//! instance): [`ManifestSet::unmatched_grants`] says so for a Secret being
//! applied. It is not a rule of the whole set, so removing the last
//! instance a grant matched stays possible. Pure: no I/O.

use super::{ManifestSet, place};
use crate::error::ManifestError;
use crate::kind::Kind;
use crate::manifest::Manifest;
use crate::names::Name;
use crate::sourced::Sourced;
use crate::spec::{Reader, SecretSpec, Spec};

impl ManifestSet {
    /// The reader entry of Secret `secret` that grants instance `lxc`
    /// read access, if one does.
    pub fn grant(&self, secret: &str, lxc: &str) -> Option<&Reader> {
        let Some(Spec::Secret(spec)) = self.get(Kind::Secret, secret).map(|m| &m.spec) else {
            return None;
        };
        let instance = self.get(Kind::Lxc, lxc)?;
        spec.readers.iter().find(|r| grants(r, instance))
    }

    /// The instances Secret `secret` grants read access to, each with the
    /// first reader entry that does.
    pub fn granted(&self, secret: &str) -> Vec<(&Name, &Reader)> {
        let Some(Spec::Secret(spec)) = self.get(Kind::Secret, secret).map(|m| &m.spec) else {
            return Vec::new();
        };
        self.of_kind(Kind::Lxc)
            .filter_map(|m| Some((m.name(), spec.readers.iter().find(|r| grants(r, m))?)))
            .collect()
    }

    /// Refusals of Secret `secret`'s selector grants that match no
    /// instance (see the module documentation); none for another kind.
    pub fn unmatched_grants(&self, secret: &str) -> Vec<ManifestError> {
        let Some(item) = self.get_sourced(Kind::Secret, secret) else {
            return Vec::new();
        };
        let Spec::Secret(spec) = &item.spec else {
            return Vec::new();
        };
        spec.readers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Reader::Selector(s)
                    if !self.of_kind(Kind::Lxc).any(|m| s.matches(&m.metadata.labels)) =>
                {
                    Some(item.error(
                        format!("spec.readers[{i}].selector"),
                        format!(
                            "selector {s} of Secret {} matches no Lxc instance; correct it, label the instances it is meant for, or remove it",
                            item.name()
                        ),
                    ))
                }
                _ => None,
            })
            .collect()
    }

    /// The instances that declare Secret `secret` in `spec.secrets`.
    pub fn declaring(&self, secret: &str) -> Vec<&Name> {
        self.of_kind(Kind::Lxc)
            .filter(|m| match &m.spec {
                Spec::Lxc(l) => l.secrets.iter().any(|f| f.secret.as_str() == secret),
                _ => false,
            })
            .map(Manifest::name)
            .collect()
    }
}

/// Whether `reader` grants `instance`.
fn grants(reader: &Reader, instance: &Manifest) -> bool {
    match reader {
        Reader::Lxc(name) => name == instance.name(),
        Reader::Selector(s) => s.matches(&instance.metadata.labels),
    }
}

/// How a Secret's readers read in a message.
fn readers_text(spec: &SecretSpec) -> String {
    if spec.readers.is_empty() {
        "it grants nobody".to_owned()
    } else {
        let list: Vec<String> = spec.readers.iter().map(ToString::to_string).collect();
        format!("its readers: {}", list.join("; "))
    }
}

/// The rules of one instance's declarations (see the module
/// documentation).
pub(super) fn check(set: &ManifestSet, item: &Sourced<Manifest>, errors: &mut Vec<ManifestError>) {
    let Spec::Lxc(lxc) = &item.spec else {
        return;
    };
    for (i, f) in lxc.secrets.iter().enumerate() {
        let Some(secret) = set.get_sourced(Kind::Secret, f.secret.as_str()) else {
            continue; // reported as a dangling reference
        };
        let Spec::Secret(spec) = &secret.spec else {
            continue;
        };
        if set.grant(f.secret.as_str(), item.name().as_str()).is_none() {
            errors.push(item.error(
                format!("spec.secrets[{i}].secret"),
                format!(
                    "Secret {} ({}) does not grant Lxc {} read access ({}); add `- lxc: {}` or a matching selector to its spec.readers, or remove this entry",
                    f.secret,
                    place(secret),
                    item.name(),
                    readers_text(spec),
                    item.name(),
                ),
            ));
        }
    }
    for (i, c) in lxc.certificates.iter().enumerate() {
        if let Some(Spec::Certificate(cert)) = set
            .get(Kind::Certificate, c.certificate.as_str())
            .map(|m| &m.spec)
            && cert.role.is_ca()
        {
            errors.push(item.error(
                format!("spec.certificates[{i}].certificate"),
                format!(
                    "Certificate {} is a {}; a CA's key never leaves the vault, so only server and client certificates are delivered",
                    c.certificate,
                    cert.role.as_str()
                ),
            ));
        }
    }
}
