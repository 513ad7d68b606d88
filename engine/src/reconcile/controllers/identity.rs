//! The identity kinds: `SshKey`, `Certificate` and `Secret`.
//!
//! - SshKey: generated into the vault when missing; with `rotate_every`,
//!   rotated once the current key is that old (the previous one stays in
//!   instances' `authorized_keys` for `overlap`, then is dropped). A key
//!   whose algorithm differs from the manifest is rotated to it.
//! - Certificate: a root or intermediate CA is created, a server or client
//!   certificate issued from its issuer; each is renewed `renew_before`
//!   its expiry, and a CA's CRL is signed again before it runs out. A
//!   record that disagrees with the manifest (another issuer, other
//!   names) is not adopted: the object is blocked with what to do.
//! - Secret: values are set by people (`orbitlab secret set`), except that
//!   a `type: password` Secret without one gets a generated password; not
//!   Ready until the vault holds a value.
//!
//! Deleting a manifest stops management and removes the status; keys,
//! certificates and values stay in the vault and the PKI (removed with
//! `orbitlab ssh-key delete`, `orbitlab pki ... revoke`, `orbitlab secret
//! delete`), since something outside OrbitLab may still trust them.
//! Identity records are read by [`crate::reconcile::identities`]; their
//! steps are [`IdentityStep`]s run through the vault, ssh and pki engines.

use std::collections::{BTreeMap, BTreeSet};

use orbitlab_manifests::{CertificateRole, Kind, Name, SecretType};

use super::Controller;
use crate::reconcile::ObjectRef;
use crate::reconcile::action::Action;
use crate::reconcile::identities::{PkiNames, pki_names};
use crate::reconcile::identity_steps::{CaMaking, IdentityStep, LeafMaking, SshKeyMaking};
use crate::reconcile::observed::Observed;
use crate::reconcile::plan::{Desired, Planner};

/// Objects of `kind` that have a status (what the controller managed).
fn with_status(kind: Kind, observed: &Observed) -> BTreeSet<Name> {
    observed
        .statuses
        .iter()
        .filter(|o| o.kind == kind)
        .map(|o| o.name.clone())
        .collect()
}

/// Removing a manifest forgets its status and nothing else.
fn forget(kind: Kind, name: &Name, observed: &Observed) -> Vec<Action> {
    let object = ObjectRef::new(kind, name);
    if observed.statuses.contains(&object) {
        vec![Action::ForgetStatus(object)]
    } else {
        Vec::new()
    }
}

/// Why `object`'s records could not be read, as a blocking reason.
fn unreadable(planner: &Planner<'_>, object: &ObjectRef) -> Result<(), String> {
    match planner.observed.identities.unreadable.get(object) {
        Some(why) => Err(format!("its record cannot be read: {why}")),
        None => Ok(()),
    }
}

/// The controller of `kind: SshKey`.
#[derive(Debug)]
pub(crate) struct SshKeyController;

impl Controller for SshKeyController {
    fn kind(&self) -> Kind {
        Kind::SshKey
    }

    fn declared(&self, desired: &Desired) -> BTreeSet<Name> {
        desired.ssh_keys.keys().cloned().collect()
    }

    fn observed(&self, observed: &Observed) -> BTreeSet<Name> {
        with_status(Kind::SshKey, observed)
    }

    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String> {
        let object = ObjectRef::new(Kind::SshKey, name);
        unreadable(planner, &object)?;
        let spec = planner
            .desired
            .ssh_keys
            .get(name)
            .ok_or("the manifest is gone")?;
        let passphrase = match &spec.passphrase {
            Some(secret) => Some(secret_path(planner, secret)?),
            None => None,
        };
        let making = SshKeyMaking {
            name: name.clone(),
            algorithm: spec.algorithm,
            comment: spec.comment.as_ref().map(ToString::to_string),
            passphrase,
        };
        let step = match planner.observed.identities.ssh_keys.get(name) {
            None => Some(IdentityStep::CreateSshKey(making)),
            Some(key) if key.previous.is_some() => key
                .previous_expired
                .then(|| IdentityStep::DropPreviousSshKey { name: name.clone() }),
            Some(key) if key.rotation_due || key.algorithm_differs => {
                Some(IdentityStep::RotateSshKey(making))
            }
            Some(_) => None,
        };
        Ok(step
            .map(|step| Action::Identity {
                owner: object,
                step,
            })
            .into_iter()
            .collect())
    }

    fn teardown(&self, name: &Name, planner: &mut Planner<'_>) -> Vec<Action> {
        forget(Kind::SshKey, name, planner.observed)
    }

    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(key) = observed.identities.ssh_keys.get(name) {
            out.insert("fingerprint".into(), key.fingerprint.clone());
            out.insert("created".into(), key.created.to_string());
            out.insert("age".into(), key.age.clone());
            if let Some(next) = key.next_rotation {
                out.insert("next_rotation".into(), next.to_string());
            }
            if let Some(previous) = &key.previous {
                out.insert("previous/fingerprint".into(), previous.clone());
            }
            if let Some(until) = key.previous_until {
                out.insert("previous/until".into(), until.to_string());
            }
        }
        out
    }
}

/// The vault path of Secret `secret`, which an SSH key names as its
/// passphrase.
fn secret_path(planner: &Planner<'_>, secret: &Name) -> Result<crate::vault::SecretPath, String> {
    let obs = planner
        .observed
        .identities
        .secrets
        .get(secret)
        .ok_or_else(|| format!("spec.passphrase: Secret {secret} is not declared"))?;
    if obs.version.is_none() {
        return Err(format!(
            "spec.passphrase: Secret {secret} has no value in the vault; set one with `orbitlab secret set {}`",
            obs.path
        ));
    }
    Ok(obs.path.clone())
}

/// The controller of `kind: Certificate`.
#[derive(Debug)]
pub(crate) struct CertificateController;

impl Controller for CertificateController {
    fn kind(&self) -> Kind {
        Kind::Certificate
    }

    fn declared(&self, desired: &Desired) -> BTreeSet<Name> {
        desired.certificates.keys().cloned().collect()
    }

    fn observed(&self, observed: &Observed) -> BTreeSet<Name> {
        with_status(Kind::Certificate, observed)
    }

    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String> {
        let object = ObjectRef::new(Kind::Certificate, name);
        unreadable(planner, &object)?;
        let spec = planner
            .desired
            .certificates
            .get(name)
            .ok_or("the manifest is gone")?;
        let names = pki_names(name, spec)?;
        let mut steps = Vec::new();
        match (names, planner.observed.identities.certificates.get(name)) {
            (PkiNames::Ca(ca), None) => {
                let parent = match &spec.issuer {
                    Some(issuer) => Some(
                        issuer
                            .as_str()
                            .parse()
                            .map_err(|e| format!("spec.issuer: {e}"))?,
                    ),
                    None => None,
                };
                steps.push(IdentityStep::CreateCa(Box::new(CaMaking {
                    ca,
                    parent,
                    common_name: spec.common_name.as_ref().map(ToString::to_string),
                    lifetime_secs: spec.lifetime_secs(),
                    path_len: spec.path_len,
                    permitted_dns: spec
                        .permitted_dns_domains
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                })));
            }
            (PkiNames::Leaf(ca, cert), None) => {
                steps.push(IdentityStep::IssueCertificate(Box::new(LeafMaking {
                    ca,
                    name: cert,
                    client: spec.role == CertificateRole::Client,
                    dns: spec.dns_names.iter().map(ToString::to_string).collect(),
                    ips: spec.ip_addresses.clone(),
                    lifetime_secs: spec.lifetime_secs(),
                })));
            }
            (names, Some(obs)) => {
                if let Some(differs) = &obs.differs {
                    return Err(format!(
                        "{differs}; OrbitLab does not take over a certificate made otherwise: revoke and delete it in the PKI (orbitlab pki), or rename this Certificate"
                    ));
                }
                match names {
                    PkiNames::Ca(ca) => {
                        if obs.renewal_due {
                            steps.push(IdentityStep::RenewCa {
                                ca: ca.clone(),
                                lifetime_secs: spec.lifetime_secs(),
                            });
                        }
                        if obs.crl_due || obs.renewal_due {
                            steps.push(IdentityStep::PublishCrl { ca });
                        }
                    }
                    PkiNames::Leaf(ca, name) => {
                        if obs.renewal_due
                            && let Some(end) = obs.outlives_issuer
                        {
                            // Planned, it would fail (and be recorded as a
                            // failed change) on every pass.
                            return Err(format!(
                                "it is due for renewal, but a certificate valid for {}s from now would outlive its CA {ca} (valid until {end}); renew the CA first (its Certificate manifest renews it before it expires, or `orbitlab pki renew`), or shorten spec.lifetime",
                                spec.lifetime_secs()
                            ));
                        }
                        if obs.renewal_due {
                            steps.push(IdentityStep::RenewCertificate {
                                ca,
                                name,
                                lifetime_secs: spec.lifetime_secs(),
                            });
                        }
                    }
                }
            }
        }
        Ok(steps
            .into_iter()
            .map(|step| Action::Identity {
                owner: object.clone(),
                step,
            })
            .collect())
    }

    fn teardown(&self, name: &Name, planner: &mut Planner<'_>) -> Vec<Action> {
        forget(Kind::Certificate, name, planner.observed)
    }

    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(cert) = observed.identities.certificates.get(name) {
            out.insert("serial".into(), cert.serial.clone());
            out.insert("not_after".into(), cert.not_after.to_string());
            out.insert("next_renewal".into(), cert.next_renewal.to_string());
            if let Some(next) = cert.crl_next_update {
                out.insert("crl/next_update".into(), next.to_string());
            }
        }
        out
    }
}

/// The controller of `kind: Secret`.
#[derive(Debug)]
pub(crate) struct SecretController;

impl Controller for SecretController {
    fn kind(&self) -> Kind {
        Kind::Secret
    }

    fn declared(&self, desired: &Desired) -> BTreeSet<Name> {
        desired.secrets.keys().cloned().collect()
    }

    fn observed(&self, observed: &Observed) -> BTreeSet<Name> {
        with_status(Kind::Secret, observed)
    }

    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String> {
        let object = ObjectRef::new(Kind::Secret, name);
        unreadable(planner, &object)?;
        let spec = planner
            .desired
            .secrets
            .get(name)
            .ok_or("the manifest is gone")?;
        match planner.observed.identities.secrets.get(name) {
            Some(s) if s.version.is_some() => Ok(Vec::new()),
            // `type: password` without a value: one is generated.
            Some(s) if spec.secret_type == SecretType::Password => Ok(vec![Action::Identity {
                owner: object,
                step: IdentityStep::GeneratePassword {
                    path: s.path.clone(),
                },
            }]),
            Some(s) => {
                planner.wait(
                    object,
                    format!(
                        "no value in the vault yet; set one with `orbitlab secret set {}`",
                        s.path
                    ),
                );
                Ok(Vec::new())
            }
            None => Err("its vault path is not valid".into()),
        }
    }

    fn teardown(&self, name: &Name, planner: &mut Planner<'_>) -> Vec<Action> {
        forget(Kind::Secret, name, planner.observed)
    }

    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(secret) = observed.identities.secrets.get(name) {
            out.insert("path".into(), secret.path.to_string());
            if let Some(v) = secret.version {
                out.insert("version".into(), format!("v{v}"));
            }
            out.insert(
                "readers".into(),
                if secret.readers.is_empty() {
                    "none".into()
                } else {
                    secret
                        .readers
                        .iter()
                        .map(|r| format!("lxc/{r}"))
                        .collect::<Vec<_>>()
                        .join(",")
                },
            );
        }
        out
    }
}
