//! What the PKI shows and what it renews: listings, details with the
//! verified chain, the list of what is close to expiry, and the pass that
//! renews it (CAs before the certificates they issued) and refreshes CRLs.

use serde::Serialize;

use super::build::CRL_VALIDITY_DAYS;
use super::inspect::{self, CertInfo};
use super::names::{CaName, CertName};
use super::records::{
    CaKind, CaRecord, CertRecord, KeySource, LeafProfile, RevokedEntry, cert_key_path,
};
use super::{Pki, PkiError, ca_key_path, first_info};
use crate::vault::{SecretPath, Timestamp};

/// One line of `orbitlab pki ca list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaSummary {
    /// The CA.
    pub name: CaName,
    /// Root or intermediate.
    pub kind: CaKind,
    /// Its root, for an intermediate.
    pub parent: Option<CaName>,
    /// Subject DN.
    pub subject: String,
    /// End of validity.
    pub not_after: Timestamp,
    /// Days until then.
    pub days_left: i64,
    /// Certificates it has revoked.
    pub revoked: usize,
}

/// Everything about one CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaDetails {
    /// The CA.
    pub name: CaName,
    /// Root or intermediate.
    pub kind: CaKind,
    /// Its root, for an intermediate.
    pub parent: Option<CaName>,
    /// Its current certificate.
    pub info: CertInfo,
    /// The certificates above it (its root), nearest first.
    pub chain: Vec<CertInfo>,
    /// True when every signature up the chain verifies.
    pub chain_verified: bool,
    /// Vault path of its key.
    pub key_path: SecretPath,
    /// Number of its current CRL.
    pub crl_number: u64,
    /// When its CRL must be re-signed.
    pub crl_next_update: Timestamp,
    /// What it has revoked.
    pub revoked: Vec<RevokedEntry>,
    /// Set when its parent has revoked it.
    pub revoked_by_parent: Option<RevokedEntry>,
    /// Serials of its earlier certificates.
    pub previous_serials: Vec<String>,
}

/// One line of `orbitlab pki cert list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Its CA.
    pub ca: CaName,
    /// The certificate.
    pub name: CertName,
    /// Server or client.
    pub profile: LeafProfile,
    /// Serial (colon hex).
    pub serial: String,
    /// End of validity.
    pub not_after: Timestamp,
    /// Days until then.
    pub days_left: i64,
    /// True when its CA revoked it.
    pub revoked: bool,
}

/// Everything about one leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertDetails {
    /// Its CA.
    pub ca: CaName,
    /// The certificate.
    pub name: CertName,
    /// Server or client.
    pub profile: LeafProfile,
    /// The certificate itself (SANs, fingerprint, days left, PEM).
    pub info: CertInfo,
    /// The CAs above it, nearest first, ending with the root.
    pub chain: Vec<CertInfo>,
    /// True when every signature up the chain verifies.
    pub chain_verified: bool,
    /// Vault path of its key, when OrbitLab generated it.
    pub key_path: Option<SecretPath>,
    /// Set when its CA revoked it.
    pub revoked: Option<RevokedEntry>,
    /// Serials of its earlier certificates.
    pub previous_serials: Vec<String>,
}

impl CertDetails {
    /// Leaf plus intermediates, PEM: what a TLS server presents.
    pub fn chain_pem(&self) -> String {
        let mut out = self.info.pem.clone();
        for ca in &self.chain {
            if ca.subject != ca.issuer {
                out.push_str(&ca.pem);
            }
        }
        out
    }
}

/// CA or leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DueKind {
    /// A CA certificate.
    Ca,
    /// A leaf certificate.
    Cert,
}

/// A certificate close to (or past) expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueItem {
    /// CA or leaf.
    pub kind: DueKind,
    /// The CA (for a CA item, the CA itself).
    pub ca: CaName,
    /// The CA's or the certificate's name.
    pub name: String,
    /// End of validity.
    pub not_after: Timestamp,
    /// Days until then (negative once expired).
    pub days_left: i64,
}

/// One renewal done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renewed {
    /// What was renewed.
    pub item: DueItem,
    /// The new serial.
    pub serial: String,
    /// The new end of validity.
    pub not_after: Timestamp,
}

/// One renewal that failed (the others went on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenewFailure {
    /// What could not be renewed.
    pub item: DueItem,
    /// Why.
    pub reason: String,
}

/// What [`Pki::renew_due`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RenewalReport {
    /// Renewed certificates, CAs first.
    pub renewed: Vec<Renewed>,
    /// Failures.
    pub failed: Vec<RenewFailure>,
    /// CAs whose CRL was re-signed because it was half-way to its next
    /// update.
    pub crls_refreshed: Vec<CaName>,
}

impl Pki {
    /// Every CA, roots first, then by name.
    pub fn list_cas(&self) -> Result<Vec<CaSummary>, PkiError> {
        let mut cas = self.all_cas()?;
        cas.sort_by_key(|c| (c.kind == CaKind::Intermediate, c.name.clone()));
        cas.iter()
            .map(|rec| {
                let info = self.ca_info(rec)?;
                Ok(CaSummary {
                    name: rec.name.clone(),
                    kind: rec.kind,
                    parent: rec.parent.clone(),
                    subject: info.subject,
                    not_after: info.not_after,
                    days_left: info.days_left,
                    revoked: rec.revoked.len(),
                })
            })
            .collect()
    }

    /// One CA with its chain, CRL state and revocations.
    pub fn show_ca(&self, ca: &CaName) -> Result<CaDetails, PkiError> {
        self.ca_details(&self.load_ca(ca)?)
    }

    /// The CA's certificate, PEM.
    pub fn ca_cert_pem(&self, ca: &CaName) -> Result<String, PkiError> {
        Ok(self.load_ca(ca)?.cert_pem)
    }

    /// Leaf certificates of `ca`, or of every CA.
    pub fn list_certs(&self, ca: Option<&CaName>) -> Result<Vec<CertSummary>, PkiError> {
        let cas = match ca {
            Some(ca) => vec![self.load_ca(ca)?],
            None => self.all_cas()?,
        };
        let mut out = Vec::new();
        for rec in &cas {
            for cert in self.certs_of(&rec.name)? {
                let info = first_info(&cert.cert_pem, self.now())?;
                out.push(CertSummary {
                    ca: rec.name.clone(),
                    name: cert.name.clone(),
                    profile: cert.profile,
                    revoked: self.revoked_entry(rec, &info.serial).is_some(),
                    serial: info.serial,
                    not_after: info.not_after,
                    days_left: info.days_left,
                });
            }
        }
        Ok(out)
    }

    /// One leaf with its chain (`orbitlab pki cert show`).
    pub fn show_cert(&self, ca: &CaName, name: &CertName) -> Result<CertDetails, PkiError> {
        self.cert_details(&self.load_cert(ca, name)?)
    }

    /// Certificates (CAs and leaves) close to expiry, expired ones
    /// included, revoked ones left out; CAs first (roots, then
    /// intermediates), then leaves. "Close" means at most `within_days`
    /// days left, or at most half the certificate's lifetime when that is
    /// shorter — so a certificate shorter-lived than the threshold is not
    /// renewed again on every pass.
    pub fn renewal_due(&self, within_days: u32) -> Result<Vec<DueItem>, PkiError> {
        let mut cas = self.all_cas()?;
        cas.sort_by_key(|c| (c.kind == CaKind::Intermediate, c.name.clone()));
        let due = |info: &CertInfo| {
            let half_life =
                (info.not_after.0.saturating_sub(info.not_before.0) / 86_400 / 2) as i64;
            info.days_left <= i64::from(within_days).min(half_life)
        };
        let mut ca_items = Vec::new();
        let mut leaf_items = Vec::new();
        for rec in &cas {
            let info = self.ca_info(rec)?;
            let revoked = match &rec.parent {
                Some(p) => self
                    .revoked_entry(&self.load_ca(p)?, &info.serial)
                    .is_some(),
                None => false,
            };
            if !revoked && due(&info) {
                ca_items.push(DueItem {
                    kind: DueKind::Ca,
                    ca: rec.name.clone(),
                    name: rec.name.to_string(),
                    not_after: info.not_after,
                    days_left: info.days_left,
                });
            }
            for cert in self.certs_of(&rec.name)? {
                let info = first_info(&cert.cert_pem, self.now())?;
                if self.revoked_entry(rec, &info.serial).is_none() && due(&info) {
                    leaf_items.push(DueItem {
                        kind: DueKind::Cert,
                        ca: rec.name.clone(),
                        name: cert.name.to_string(),
                        not_after: info.not_after,
                        days_left: info.days_left,
                    });
                }
            }
        }
        ca_items.extend(leaf_items);
        Ok(ca_items)
    }

    /// Renews everything [`Pki::renewal_due`] lists (one failure does not
    /// stop the others) and re-signs CRLs past half their validity.
    pub fn renew_due(&self, within_days: u32) -> Result<RenewalReport, PkiError> {
        let _guard = self.lock()?;
        let mut report = RenewalReport::default();
        for item in self.renewal_due(within_days)? {
            let result = match item.kind {
                DueKind::Ca => self.renew_ca_locked(&item.ca, None).map(|d| d.info),
                DueKind::Cert => item
                    .name
                    .parse::<CertName>()
                    .map_err(PkiError::from)
                    .and_then(|name| self.renew_cert_locked(&item.ca, &name, None))
                    .map(|d| d.info),
            };
            match result {
                Ok(info) => report.renewed.push(Renewed {
                    item,
                    serial: info.serial,
                    not_after: info.not_after,
                }),
                Err(e) => report.failed.push(RenewFailure {
                    item,
                    reason: e.to_string(),
                }),
            }
        }
        let half = CRL_VALIDITY_DAYS * 86_400 / 2;
        let now = Timestamp::from(self.now()).0;
        for mut rec in self.all_cas()? {
            if rec.crl_next_update.0.saturating_sub(now) < half {
                self.refresh_crl_locked(&mut rec)?;
                report.crls_refreshed.push(rec.name.clone());
            }
        }
        Ok(report)
    }

    pub(super) fn ca_details(&self, rec: &CaRecord) -> Result<CaDetails, PkiError> {
        let info = self.ca_info(rec)?;
        let (chain, chain_verified) = self.chain_above(rec, &info)?;
        let revoked_by_parent = match &rec.parent {
            Some(p) => self.revoked_entry(&self.load_ca(p)?, &info.serial).cloned(),
            None => None,
        };
        Ok(CaDetails {
            name: rec.name.clone(),
            kind: rec.kind,
            parent: rec.parent.clone(),
            info,
            chain,
            chain_verified,
            key_path: ca_key_path(&rec.name),
            crl_number: rec.crl_number,
            crl_next_update: rec.crl_next_update,
            revoked: rec.revoked.clone(),
            revoked_by_parent,
            previous_serials: rec.previous_serials.clone(),
        })
    }

    pub(super) fn cert_details(&self, cert: &CertRecord) -> Result<CertDetails, PkiError> {
        let info = first_info(&cert.cert_pem, self.now())?;
        let ca = self.load_ca(&cert.ca)?;
        let ca_info = self.ca_info(&ca)?;
        let (above, above_ok) = self.chain_above(&ca, &ca_info)?;
        let leaf_ok = signed_by(&info, &ca_info)?;
        let mut chain = vec![ca_info];
        chain.extend(above);
        Ok(CertDetails {
            ca: cert.ca.clone(),
            name: cert.name.clone(),
            profile: cert.profile,
            revoked: self.revoked_entry(&ca, &info.serial).cloned(),
            info,
            chain,
            chain_verified: leaf_ok && above_ok,
            key_path: matches!(cert.key, KeySource::Generated)
                .then(|| cert_key_path(&cert.ca, &cert.name)),
            previous_serials: cert.previous_serials.clone(),
        })
    }

    /// The certificates above `rec` and whether every signature from `rec`
    /// up to its self-signed root verifies.
    fn chain_above(
        &self,
        rec: &CaRecord,
        info: &CertInfo,
    ) -> Result<(Vec<CertInfo>, bool), PkiError> {
        match &rec.parent {
            None => Ok((Vec::new(), signed_by(info, info)?)),
            Some(parent) => {
                let parent_rec = self.load_ca(parent)?;
                let parent_info = self.ca_info(&parent_rec)?;
                let (above, above_ok) = self.chain_above(&parent_rec, &parent_info)?;
                let ok = signed_by(info, &parent_info)? && above_ok;
                let mut chain = vec![parent_info];
                chain.extend(above);
                Ok((chain, ok))
            }
        }
    }
}

fn signed_by(child: &CertInfo, issuer: &CertInfo) -> Result<bool, PkiError> {
    let child_der = inspect::pem_blocks(&child.pem, "CERTIFICATE", "certificate")?;
    let issuer_der = inspect::pem_blocks(&issuer.pem, "CERTIFICATE", "issuer certificate")?;
    inspect::signed_by(&child_der[0], &issuer_der[0])
}
