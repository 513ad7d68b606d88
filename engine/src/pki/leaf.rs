//! Leaf certificates: issuing with a generated key (kept in the vault at
//! `pki/<ca>/certs/<name>/key`), signing an external CSR (the requester
//! keeps its key), renewing, and handing out a generated key.
//!
//! Side effects: vault writes and `orbitlab/pki/certs/<ca>/<name>.json`,
//! all under the `pki` lock.

use std::net::IpAddr;

use rcgen::{CertificateSigningRequestParams, PublicKeyData, SanType};

use super::build;
use super::inspect::CertInfo;
use super::names::{CaName, CertName, DnsName, Lifetime};
use super::records::{self, CaRecord, CertRecord, KeySource, LeafProfile, cert_key_path};
use super::view::CertDetails;
use super::{Pki, PkiError};
use crate::store::layout;
use crate::vault::{SecretValue, Timestamp};

/// What a leaf certificate should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRequest {
    /// Server or client.
    pub profile: LeafProfile,
    /// DNS SANs.
    pub dns: Vec<DnsName>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// Validity from now.
    pub lifetime: Lifetime,
}

impl Pki {
    /// Issues `name` from CA `ca` with a fresh key kept in the vault.
    pub fn issue(
        &self,
        ca: &CaName,
        name: &CertName,
        req: &LeafRequest,
    ) -> Result<CertDetails, PkiError> {
        let _guard = self.lock()?;
        let rec = self.prepare_issue(ca, name)?;
        let (key, key_pem) = build::generate_key()?;
        let cert_pem = self.sign_leaf(&rec, name, req, &key)?;
        self.vault.set(&cert_key_path(ca, name), &key_pem)?;
        self.save_leaf(ca, name, req, KeySource::Generated, cert_pem)
    }

    /// Issues `name` from CA `ca` for the key in `csr_pem` (its signature is
    /// checked). SANs come from `req`, or from the CSR when `req` has none;
    /// nothing else in the CSR is trusted.
    pub fn sign_csr(
        &self,
        ca: &CaName,
        name: &CertName,
        csr_pem: &str,
        req: &LeafRequest,
    ) -> Result<CertDetails, PkiError> {
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::BadCsr {
                reason: match e {
                    rcgen::Error::CouldNotParseCertificationRequest => {
                        "it is not a PEM-encoded PKCS#10 certificate request".into()
                    }
                    rcgen::Error::InvalidCertificationRequestSignature => {
                        "its signature does not verify".into()
                    }
                    other => other.to_string(),
                },
            })?;
        let mut req = req.clone();
        if req.dns.is_empty() && req.ips.is_empty() {
            for san in &csr.params.subject_alt_names {
                match san {
                    SanType::DnsName(d) => {
                        req.dns
                            .push(d.as_str().parse().map_err(|e| PkiError::BadCsr {
                                reason: format!("it asks for a bad DNS name: {e}"),
                            })?)
                    }
                    SanType::IpAddress(ip) => req.ips.push(*ip),
                    _ => {}
                }
            }
        }
        let _guard = self.lock()?;
        let rec = self.prepare_issue(ca, name)?;
        let cert_pem = self.sign_leaf(&rec, name, &req, &csr.public_key)?;
        let source = KeySource::Csr {
            csr_pem: csr_pem.to_owned(),
        };
        self.save_leaf(ca, name, &req, source, cert_pem)
    }

    /// Issues a fresh certificate for `name` with the same SANs, profile and
    /// lifetime (a new key when OrbitLab holds it, the CSR's key otherwise).
    pub fn renew_cert(&self, ca: &CaName, name: &CertName) -> Result<CertDetails, PkiError> {
        let _guard = self.lock()?;
        self.renew_cert_locked(ca, name, None)
    }

    /// [`Pki::renew_cert`] with a new lifetime from now on (a manifest's
    /// changed `lifetime`), recorded for later renewals.
    pub fn renew_cert_for(
        &self,
        ca: &CaName,
        name: &CertName,
        lifetime: Lifetime,
    ) -> Result<CertDetails, PkiError> {
        let _guard = self.lock()?;
        self.renew_cert_locked(ca, name, Some(lifetime))
    }

    pub(super) fn renew_cert_locked(
        &self,
        ca: &CaName,
        name: &CertName,
        lifetime: Option<Lifetime>,
    ) -> Result<CertDetails, PkiError> {
        let mut cert = self.load_cert(ca, name)?;
        if let Some(l) = lifetime {
            cert.lifetime_days = l.get();
            cert.lifetime_secs = l.odd_seconds();
        }
        let rec = self.load_ca(ca)?;
        let req = LeafRequest {
            profile: cert.profile,
            dns: cert
                .dns_names
                .iter()
                .map(|d| d.parse())
                .collect::<Result<_, _>>()?,
            ips: cert.ip_addresses.clone(),
            lifetime: Lifetime::from_record(cert.lifetime_days, cert.lifetime_secs)?,
        };
        let cert_pem = match &cert.key {
            KeySource::Generated => {
                let (key, key_pem) = build::generate_key()?;
                let pem = self.sign_leaf(&rec, name, &req, &key)?;
                self.vault.set(&cert_key_path(ca, name), &key_pem)?;
                pem
            }
            KeySource::Csr { csr_pem } => {
                let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(
                    PkiError::build(format!("re-read the CSR of certificate {name}")),
                )?;
                self.sign_leaf(&rec, name, &req, &csr.public_key)?
            }
        };
        let old = super::first_info(&cert.cert_pem, self.now())?;
        cert.previous_serials
            .push(records::canonical_serial(&old.serial).unwrap_or(old.serial));
        cert.cert_pem = cert_pem;
        self.write_record(&layout::pki_cert(ca, name), &cert)?;
        tracing::info!(ca = %ca, cert = %name, "certificate renewed");
        self.cert_details(&cert)
    }

    /// The private key (PKCS#8 PEM) of a certificate OrbitLab generated.
    pub fn cert_key(&self, ca: &CaName, name: &CertName) -> Result<SecretValue, PkiError> {
        let cert = self.load_cert(ca, name)?;
        match cert.key {
            KeySource::Generated => Ok(self.vault.get(&cert_key_path(ca, name))?.value),
            KeySource::Csr { .. } => Err(PkiError::Build {
                doing: format!("hand out the key of certificate {name}"),
                reason:
                    "it was signed from a CSR: the requester holds the key, OrbitLab never had it"
                        .into(),
            }),
        }
    }

    /// The issuing CA's record, after checking it may issue and `name` is
    /// free.
    fn prepare_issue(&self, ca: &CaName, name: &CertName) -> Result<CaRecord, PkiError> {
        let rec = self.load_ca(ca)?;
        if self
            .read_record::<CertRecord>(&layout::pki_cert(ca, name))?
            .is_some()
        {
            return Err(PkiError::CertExists {
                ca: ca.to_string(),
                name: name.to_string(),
            });
        }
        Ok(rec)
    }

    /// Checks everything about the request against the CA and signs it.
    fn sign_leaf(
        &self,
        rec: &CaRecord,
        name: &CertName,
        req: &LeafRequest,
        subject_key: &impl PublicKeyData,
    ) -> Result<String, PkiError> {
        let ca_info = self.check_can_issue(rec)?;
        self.check_lifetime(&rec.name, &ca_info, req.lifetime)?;
        if req.profile == LeafProfile::Server && req.dns.is_empty() && req.ips.is_empty() {
            return Err(PkiError::NoSubjectAltName {
                name: name.to_string(),
            });
        }
        // Every CA up the chain may constrain names; verifiers check all.
        for ca in self.lineage(rec)? {
            let permitted: Vec<DnsName> = ca
                .permitted_dns
                .iter()
                .map(|d| d.parse())
                .collect::<Result<_, _>>()?;
            if !permitted.is_empty()
                && let Some(outside) = req
                    .dns
                    .iter()
                    .find(|d| !permitted.iter().any(|p| d.is_within(p)))
            {
                return Err(PkiError::OutsideConstraints {
                    ca: ca.name.to_string(),
                    name: outside.to_string(),
                    permitted: ca.permitted_dns.join(", "),
                });
            }
        }
        let common_name = req
            .dns
            .first()
            .map_or_else(|| name.to_string(), |d| d.to_string());
        let params = build::leaf_params(
            &common_name,
            req.profile,
            &req.dns,
            &req.ips,
            self.now(),
            req.lifetime,
        )?;
        let key = self.ca_key(rec)?;
        let issuer = build::issuer(&rec.cert_pem, &key, rec.name.as_str())?;
        let cert = params
            .signed_by(subject_key, &issuer)
            .map_err(PkiError::build(format!("sign certificate {name}")))?;
        Ok(cert.pem())
    }

    /// Refuses a lifetime that would end after the issuer's certificate.
    pub(super) fn check_lifetime(
        &self,
        ca: &CaName,
        ca_info: &CertInfo,
        lifetime: Lifetime,
    ) -> Result<(), PkiError> {
        let end = build::end_of(self.now(), lifetime);
        if end > ca_info.not_after {
            let now = Timestamp::from(self.now()).0;
            return Err(PkiError::OutlivesIssuer {
                ca: ca.to_string(),
                days: lifetime.get(),
                issuer_not_after: ca_info.not_after,
                max_days: (ca_info.not_after.0.saturating_sub(now) / 86_400) as i64,
            });
        }
        Ok(())
    }

    fn save_leaf(
        &self,
        ca: &CaName,
        name: &CertName,
        req: &LeafRequest,
        key: KeySource,
        cert_pem: String,
    ) -> Result<CertDetails, PkiError> {
        let cert = CertRecord {
            name: name.clone(),
            ca: ca.clone(),
            profile: req.profile,
            dns_names: req.dns.iter().map(|d| d.to_string()).collect(),
            ip_addresses: req.ips.clone(),
            lifetime_days: req.lifetime.get(),
            lifetime_secs: req.lifetime.odd_seconds(),
            key,
            cert_pem,
            previous_serials: Vec::new(),
            created: Timestamp::from(self.now()),
        };
        self.write_record(&layout::pki_cert(ca, name), &cert)?;
        tracing::info!(ca = %ca, cert = %name, "certificate issued");
        self.cert_details(&cert)
    }
}
