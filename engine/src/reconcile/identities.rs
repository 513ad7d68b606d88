//! What the identity controllers (SSH keys, certificates, secrets) and
//! the deliveries into instances see: each declared key's and
//! certificate's record judged against its manifest's schedule, each
//! declared Secret's newest vault version, and what was last delivered
//! into each container. Public facts and version numbers only: no value
//! or private key is read here.
//!
//! Schedules are judged when observed ([`read`]), so the planner stays a
//! pure function of the observation: a key is "due" from the moment its
//! age reaches `rotate_every`, a certificate from `renew_before` its
//! expiry, a CA's CRL from `renew_before` its next update (or half its
//! validity when shorter).
//!
//! Delivery records: `orbitlab/status/deliveries/<vmid>.json`
//! ([`layout::delivered`]), written by the agent of the container's node
//! right after it delivered ([`record`]), removed with the container.

use std::collections::BTreeMap;

use orbitlab_manifests::{CertificateRole, CertificateSpec, Kind, Name, NodeName, SshKeySpec};
use serde::{Deserialize, Serialize};

use super::ObjectRef;
use super::plan::Desired;
use crate::pki::{CaName, CertName, Pki};
use crate::pve::Vmid;
use crate::ssh::{KeyName, SshKeys};
use crate::store::{Store, StoreError, layout};
use crate::vault::{SecretPath, Timestamp, Vault, VaultError, Version};

/// An SSH key's record, judged against its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyObs {
    /// The current key's `SHA256:` fingerprint.
    pub fingerprint: String,
    /// When the current key was made.
    pub created: Timestamp,
    /// Its age, coarse (`under 1h`, `5h`, `12d`), so a status changes at
    /// most hourly.
    pub age: String,
    /// The previous key's fingerprint, while it is kept.
    pub previous: Option<String>,
    /// When the previous key goes (the rotation plus the overlap).
    pub previous_until: Option<Timestamp>,
    /// When the current key is replaced (`None`: it never rotates).
    pub next_rotation: Option<Timestamp>,
    /// The current key is as old as `rotate_every`.
    pub rotation_due: bool,
    /// The previous key's overlap is over.
    pub previous_expired: bool,
    /// The record's algorithm differs from the manifest's.
    pub algorithm_differs: bool,
}

/// A certificate's (or CA's) record, judged against its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertObs {
    /// Serial of the current certificate (colon hex).
    pub serial: String,
    /// Its end of validity.
    pub not_after: Timestamp,
    /// When it is renewed.
    pub next_renewal: Timestamp,
    /// `renew_before` its expiry has been reached.
    pub renewal_due: bool,
    /// How the record differs from the manifest (issuer, names, kind), if
    /// it does: such a certificate is not adopted.
    pub differs: Option<String>,
    /// For a CA: when its CRL must be signed again.
    pub crl_next_update: Option<Timestamp>,
    /// For a CA: the CRL is to be published again now.
    pub crl_due: bool,
    /// For a leaf: the end of its CA's certificate, when a certificate
    /// issued now for the manifest's lifetime would outlive it (the PKI
    /// refuses that: the CA must be renewed first).
    pub outlives_issuer: Option<Timestamp>,
}

/// A declared Secret's value in the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretObs {
    /// Its vault path.
    pub path: SecretPath,
    /// The newest version (`None`: no value set yet).
    pub version: Option<Version>,
    /// The instances its readers grant.
    pub readers: Vec<Name>,
}

/// What was last delivered into a container ([`record`]). Unknown fields
/// are ignored: a newer agent's record still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// The node that delivered.
    pub node: String,
    /// Identifies the delivered files and their versions.
    pub digest: String,
    /// What the container holds: `secret/<name>` → `v3`,
    /// `certificate/<name>` → serial, `ssh_key/<name>` → fingerprints.
    pub holds: BTreeMap<String, String>,
    /// When the container had started, as observed at delivery.
    pub booted: Option<u64>,
    /// The paths delivered: a path no longer declared is removed from the
    /// container at the next delivery.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// Everything identity-related one pass sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identities {
    /// Declared SSH keys that have a record.
    pub ssh_keys: BTreeMap<Name, SshKeyObs>,
    /// Declared certificates and CAs that have a record.
    pub certificates: BTreeMap<Name, CertObs>,
    /// Every declared Secret.
    pub secrets: BTreeMap<Name, SecretObs>,
    /// Delivery records, by container.
    pub delivered: BTreeMap<Vmid, Delivered>,
    /// Declared objects whose records could not be read, with why.
    pub unreadable: BTreeMap<ObjectRef, String>,
    /// The node of the reconciler that observed (restarts of containers
    /// are judged on their own node only, see `instance/deliver.rs`).
    pub local: Option<NodeName>,
}

/// The PKI names of a Certificate manifest: a CA is a CA of its own name,
/// a leaf a certificate of its name under its issuer's CA.
pub(crate) enum PkiNames {
    Ca(CaName),
    Leaf(CaName, CertName),
}

/// [`PkiNames`] of Certificate `name`, or why it has none.
pub(crate) fn pki_names(name: &Name, spec: &CertificateSpec) -> Result<PkiNames, String> {
    let ca = |n: &str| {
        n.parse::<CaName>()
            .map_err(|e| format!("{n} cannot name a CA: {e}"))
    };
    if spec.role.is_ca() {
        return Ok(PkiNames::Ca(ca(name.as_str())?));
    }
    let issuer = spec
        .issuer
        .as_ref()
        .ok_or("a leaf certificate needs an issuer")?;
    let cert = name
        .as_str()
        .parse::<CertName>()
        .map_err(|e| format!("{name} cannot name a certificate: {e}"))?;
    Ok(PkiNames::Leaf(ca(issuer.as_str())?, cert))
}

/// The vault path of a declared Secret.
pub(crate) fn secret_path(
    name: &Name,
    spec: &orbitlab_manifests::SecretSpec,
) -> Option<SecretPath> {
    spec.vault_path(name).as_str().parse().ok()
}

/// Reads what the identity controllers and deliveries need, judging
/// schedules at `now`.
pub fn read(
    store: &Store,
    desired: &Desired,
    now: Timestamp,
    local: Option<NodeName>,
) -> Result<Identities, StoreError> {
    let vault = Vault::new(store.clone());
    let mut out = Identities {
        delivered: read_delivered(store)?,
        local,
        ..Identities::default()
    };
    let keys = SshKeys::new(vault.clone());
    for (name, spec) in &desired.ssh_keys {
        let Ok(key) = name.as_str().parse::<KeyName>() else {
            continue;
        };
        match keys.show(&key) {
            Ok(info) => {
                out.ssh_keys.insert(name.clone(), ssh_obs(&info, spec, now));
            }
            Err(crate::ssh::SshError::NotFound { .. }) => {}
            Err(e) => {
                out.unreadable
                    .insert(ObjectRef::new(Kind::SshKey, name), e.to_string());
            }
        }
    }
    let pki = Pki::new(vault.clone());
    for (name, spec) in &desired.certificates {
        match cert_obs(&pki, name, spec, now) {
            Ok(Some(obs)) => {
                out.certificates.insert(name.clone(), obs);
            }
            Ok(None) => {}
            Err(e) => {
                out.unreadable
                    .insert(ObjectRef::new(Kind::Certificate, name), e);
            }
        }
    }
    for (name, spec) in &desired.secrets {
        let Some(path) = secret_path(name, spec) else {
            continue;
        };
        let version = match vault.versions(&path) {
            Ok(v) => v.last().map(|i| i.version),
            Err(VaultError::NotFound { .. }) => None,
            Err(e) => {
                out.unreadable
                    .insert(ObjectRef::new(Kind::Secret, name), e.to_string());
                None
            }
        };
        let readers = desired
            .grants
            .get(name)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default();
        out.secrets.insert(
            name.clone(),
            SecretObs {
                path,
                version,
                readers,
            },
        );
    }
    Ok(out)
}

fn ssh_obs(info: &crate::ssh::SshKeyInfo, spec: &SshKeySpec, now: Timestamp) -> SshKeyObs {
    let created = info.current.created;
    let next_rotation = spec
        .rotate_every
        .map(|every| Timestamp(created.0 + every.as_secs()));
    let previous_until = info
        .previous
        .as_ref()
        .map(|_| Timestamp(created.0 + spec.overlap_secs().unwrap_or(0)));
    let want = match spec.algorithm {
        orbitlab_manifests::SshKeyAlgorithm::Ed25519 => crate::ssh::SshAlgorithm::Ed25519,
        orbitlab_manifests::SshKeyAlgorithm::Rsa4096 => crate::ssh::SshAlgorithm::Rsa4096,
    };
    SshKeyObs {
        fingerprint: info.current.fingerprint.clone(),
        created,
        age: coarse_age(now.0.saturating_sub(created.0)),
        previous: info.previous.as_ref().map(|p| p.fingerprint.clone()),
        previous_until,
        next_rotation,
        rotation_due: next_rotation.is_some_and(|t| now >= t),
        previous_expired: previous_until.is_some_and(|t| now >= t),
        algorithm_differs: info.current.algorithm != want,
    }
}

/// `under 1h`, `Nh` under a day, else `Nd`.
fn coarse_age(secs: u64) -> String {
    match secs {
        s if s < 3600 => "under 1h".into(),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A certificate's observation; `Ok(None)` when it has no record yet.
fn cert_obs(
    pki: &Pki,
    name: &Name,
    spec: &CertificateSpec,
    now: Timestamp,
) -> Result<Option<CertObs>, String> {
    let renew_before = spec.renew_before_secs();
    // Never more than half the certificate's own validity before its end:
    // one issued with another lifetime than the manifest's now is not
    // renewed again on every pass (it is renewed with the manifest's).
    // A CA's CRL is signed again once `renew_before` (at most half the
    // CRL's validity) is left, so relying parties never hold a stale one.
    let judge = |info: &crate::pki::CertInfo, differs, crl: Option<Timestamp>| {
        let half = info.not_after.0.saturating_sub(info.not_before.0) / 2;
        let next_renewal = Timestamp(info.not_after.0.saturating_sub(renew_before.min(half)));
        let crl_window = renew_before.min(crate::pki::CRL_VALIDITY_SECS / 2);
        CertObs {
            serial: info.serial.clone(),
            not_after: info.not_after,
            next_renewal,
            renewal_due: now >= next_renewal,
            differs,
            crl_next_update: crl,
            crl_due: crl.is_some_and(|next| now.0 + crl_window >= next.0),
            outlives_issuer: None,
        }
    };
    match pki_names(name, spec)? {
        PkiNames::Ca(ca) => {
            let details = match pki.show_ca(&ca) {
                Ok(d) => d,
                Err(crate::pki::PkiError::CaNotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            let want_root = spec.role == CertificateRole::RootCa;
            let is_root = details.kind == crate::pki::CaKind::Root;
            let parent = details.parent.as_ref().map(ToString::to_string);
            let want_parent = spec.issuer.as_ref().map(ToString::to_string);
            let differs = if want_root != is_root {
                Some(format!(
                    "the CA {ca} in the PKI is a{} CA, the manifest asks for a{}",
                    if is_root { " root" } else { "n intermediate" },
                    if want_root { " root" } else { "n intermediate" },
                ))
            } else if parent != want_parent {
                Some(format!(
                    "the CA {ca} in the PKI is signed by {}, the manifest names {}",
                    parent.as_deref().unwrap_or("itself"),
                    want_parent.as_deref().unwrap_or("none")
                ))
            } else {
                None
            };
            Ok(Some(judge(
                &details.info,
                differs,
                Some(details.crl_next_update),
            )))
        }
        PkiNames::Leaf(ca, cert) => {
            let details = match pki.show_cert(&ca, &cert) {
                Ok(d) => d,
                Err(crate::pki::PkiError::CertNotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            };
            let mut want_dns: Vec<String> = spec.dns_names.iter().map(|d| d.to_string()).collect();
            want_dns.sort();
            let mut have_dns = details.info.dns_names.clone();
            have_dns.sort();
            let mut want_ips = spec.ip_addresses.clone();
            want_ips.sort();
            let mut have_ips = details.info.ip_addresses.clone();
            have_ips.sort();
            let differs = (want_dns != have_dns || want_ips != have_ips).then(|| {
                format!(
                    "the certificate {cert} of CA {ca} in the PKI names {:?} {:?}, the manifest {:?} {:?}",
                    have_dns, have_ips, want_dns, want_ips
                )
            });
            let mut obs = judge(&details.info, differs, None);
            // The chain lists the CAs above it, nearest first.
            obs.outlives_issuer = details
                .chain
                .first()
                .map(|ca| ca.not_after)
                .filter(|end| now.0 + spec.lifetime_secs() > end.0);
            Ok(Some(obs))
        }
    }
}

/// Records what was delivered into container `vmid`.
pub fn record(store: &Store, vmid: u32, delivered: &Delivered) -> Result<(), StoreError> {
    let body = serde_json::to_vec_pretty(delivered).expect("encodes");
    store.write(&layout::delivered(vmid), &body)
}

/// Forgets a destroyed container's deliveries.
pub fn forget(store: &Store, vmid: u32) -> Result<(), StoreError> {
    store.remove(&layout::delivered(vmid)).map(drop)
}

/// Every delivery record. An unreadable one counts as "nothing
/// delivered" (everything is delivered again).
fn read_delivered(store: &Store) -> Result<BTreeMap<Vmid, Delivered>, StoreError> {
    Ok(store
        .read_dir(&layout::delivered_dir())?
        .into_iter()
        .filter_map(|(file, bytes)| {
            let vmid = Vmid::try_from(layout::pushed_file_vmid(&file)?).ok()?;
            Some((vmid, serde_json::from_slice(&bytes).ok()?))
        })
        .collect())
}

/// Slack between two readings of one boot time (`now - uptime`, each
/// rounded to the second, read at different moments).
const BOOT_SLACK_SECS: u64 = 5;

/// Whether a container observed booted at `booted` restarted since a
/// delivery recorded at `recorded`. A restart less than
/// [`BOOT_SLACK_SECS`] after the previous start goes unseen; a container
/// takes longer than that to boot and be delivered to.
pub(crate) fn restarted_since(recorded: Option<u64>, booted: Option<u64>) -> bool {
    match (recorded, booted) {
        (Some(r), Some(b)) => b > r + BOOT_SLACK_SECS,
        (None, Some(_)) => true,
        _ => false,
    }
}

/// The node name of a delivery record, for comparing with a container's.
impl Delivered {
    /// True when `node` made this record.
    pub fn by(&self, node: &NodeName) -> bool {
        self.node == node.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Certificate `name` as observed at `secs`.
    fn cert_at(store: &Store, desired: &Desired, name: &Name, secs: u64) -> CertObs {
        read(store, desired, Timestamp(secs), None)
            .unwrap()
            .certificates[name]
            .clone()
    }

    fn desired_with_root() -> Desired {
        let mut desired = Desired::default();
        let spec: CertificateSpec =
            serde_json::from_value(serde_json::json!({"role": "root_ca", "common_name": "Root"}))
                .unwrap();
        desired.certificates.insert("root".parse().unwrap(), spec);
        desired
    }

    #[test]
    fn a_cas_crl_and_certificate_fall_due_on_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let pki = Pki::new(Vault::new(store.clone()));
        pki.create_root(
            &"root".parse().unwrap(),
            &crate::pki::CaOptions::lifetime(crate::pki::Lifetime::days(3650).unwrap()),
        )
        .unwrap();
        let desired = desired_with_root();
        let name: Name = "root".parse().unwrap();
        let now = Timestamp::now().0;
        let day = 86_400;
        let at = |secs: u64| cert_at(&store, &desired, &name, secs);
        let fresh = at(now);
        assert!(!fresh.crl_due && !fresh.renewal_due, "{fresh:?}");
        assert!(fresh.differs.is_none());
        // The CRL is valid 30 days and signed again 15 days before it ends.
        assert!(!at(now + 14 * day).crl_due);
        assert!(at(now + 16 * day).crl_due);
        // The CA is renewed a third of its 3650 days before it expires.
        let renewal = fresh.next_renewal.0;
        assert!(
            renewal.abs_diff(now + (3650 - 3650 / 3) * day) < 2 * day,
            "{fresh:?}"
        );
        assert!(!at(renewal - 1).renewal_due);
        assert!(at(renewal).renewal_due);
    }

    #[test]
    fn a_renewal_that_would_outlive_the_ca_is_known_before_it_is_tried() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let pki = Pki::new(Vault::new(store.clone()));
        let hours = |h: u64| crate::pki::Lifetime::seconds(h * 3600).unwrap();
        let root: crate::pki::CaName = "root".parse().unwrap();
        pki.create_root(&root, &crate::pki::CaOptions::lifetime(hours(48)))
            .unwrap();
        let request = crate::pki::LeafRequest {
            profile: crate::pki::LeafProfile::Server,
            dns: vec!["web.example".parse().unwrap()],
            ips: Vec::new(),
            lifetime: hours(30),
        };
        pki.issue(&root, &"web".parse().unwrap(), &request).unwrap();
        let mut desired = desired_with_root();
        let leaf: CertificateSpec = serde_json::from_value(serde_json::json!({
            "role": "server", "issuer": "root", "dns_names": ["web.example"], "lifetime": "30h"
        }))
        .unwrap();
        desired.certificates.insert("web".parse().unwrap(), leaf);
        let name: Name = "web".parse().unwrap();
        let now = Timestamp::now().0;
        let at = |secs: u64| cert_at(&store, &desired, &name, secs);
        let fresh = at(now);
        assert!(
            fresh.outlives_issuer.is_none() && !fresh.renewal_due,
            "{fresh:?}"
        );
        // Due (10 h before its end) 25 h from now, when 30 more hours
        // would end after the CA's 48.
        let later = at(now + 25 * 3600);
        assert!(later.renewal_due, "{later:?}");
        assert!(later.outlives_issuer.is_some(), "{later:?}");
    }

    #[test]
    fn a_restart_is_a_start_later_than_the_delivery_saw() {
        assert!(
            !restarted_since(Some(1000), Some(1002)),
            "the same boot read later"
        );
        assert!(restarted_since(Some(1000), Some(1060)));
        assert!(restarted_since(None, Some(1000)), "no boot on record");
        assert!(
            !restarted_since(Some(1000), None),
            "stopped: nothing to deliver into"
        );
    }
}
