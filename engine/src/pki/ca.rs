//! Certificate authorities: creating roots and intermediates, renewing a
//! CA's certificate (same key and subject, so everything it issued stays
//! valid), revoking what a CA issued and signing its CRL.
//!
//! Side effects: the CA key goes to the vault (`pki/<ca>/key`), the record
//! to `orbitlab/pki/cas/<ca>.json`; all under the `pki` lock.

use rcgen::KeyPair;
use serde::Serialize;

use super::build;
use super::names::{CaName, CertName, DnsName, Lifetime, check_common_name};
use super::records::{self, CaKind, CaRecord, RevocationReason, RevokedEntry, ca_key_path};
use super::view::CaDetails;
use super::{Pki, PkiError, first_info};
use crate::store::layout;
use crate::vault::Timestamp;

/// How to make a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    /// Subject common name; default `OrbitLab <name> CA`.
    pub common_name: Option<String>,
    /// Validity from now.
    pub lifetime: Lifetime,
    /// DNS subtrees the CA may certify (empty: unconstrained). Meant for
    /// intermediates; checked before issuing and by every verifier.
    pub permitted_dns: Vec<DnsName>,
    /// How many CAs may follow below it: default no limit for a root, 0
    /// (signs only leaves) for an intermediate.
    pub path_len: Option<u8>,
}

impl CaOptions {
    /// Options with defaults: no common name, no constraints, default
    /// path length.
    pub fn lifetime(lifetime: Lifetime) -> CaOptions {
        CaOptions {
            common_name: None,
            lifetime,
            permitted_dns: Vec::new(),
            path_len: None,
        }
    }
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RevokeTarget {
    /// A leaf certificate of this CA, by name (its current serial).
    Cert(CertName),
    /// An intermediate CA signed by this root, by name.
    Ca(CaName),
    /// Any certificate this CA issued, by serial (hex, colons optional).
    Serial(String),
}

impl Pki {
    /// Creates a self-signed root CA.
    pub fn create_root(&self, name: &CaName, opts: &CaOptions) -> Result<CaDetails, PkiError> {
        let _guard = self.lock()?;
        self.create_ca(name, None, opts)
    }

    /// Creates an intermediate CA (path length 0 unless `opts` says more)
    /// signed by `parent` (a root, or an intermediate whose path length
    /// allows it), optionally limited to `opts.permitted_dns`.
    pub fn create_intermediate(
        &self,
        name: &CaName,
        parent: &CaName,
        opts: &CaOptions,
    ) -> Result<CaDetails, PkiError> {
        let _guard = self.lock()?;
        self.create_ca(name, Some(parent), opts)
    }

    fn create_ca(
        &self,
        name: &CaName,
        parent: Option<&CaName>,
        opts: &CaOptions,
    ) -> Result<CaDetails, PkiError> {
        let common_name = opts
            .common_name
            .clone()
            .unwrap_or_else(|| format!("OrbitLab {name} CA"));
        check_common_name(&common_name)?;
        if self
            .read_record::<CaRecord>(&layout::pki_ca(name))?
            .is_some()
        {
            return Err(PkiError::CaExists {
                ca: name.to_string(),
            });
        }
        let kind = if parent.is_some() {
            CaKind::Intermediate
        } else {
            CaKind::Root
        };
        let permitted: Vec<String> = opts.permitted_dns.iter().map(|d| d.to_string()).collect();
        let path_len = match kind {
            CaKind::Root => opts.path_len,
            CaKind::Intermediate => Some(opts.path_len.unwrap_or(0)),
        };
        let now = self.now();
        let params =
            build::ca_params(&common_name, kind, path_len, &permitted, now, opts.lifetime)?;
        let (key, key_pem) = build::generate_key()?;
        let cert = match parent {
            None => params
                .self_signed(&key)
                .map_err(PkiError::build(format!("sign root CA {name}")))?,
            Some(parent) => {
                let parent_rec = self.load_ca(parent)?;
                match (parent_rec.path_len, path_len) {
                    (Some(0), _) => {
                        return Err(PkiError::CannotSignCa {
                            parent: parent.to_string(),
                            reason: "its path length is 0, so it signs only leaf certificates; sign this CA with a root".into(),
                        });
                    }
                    (Some(max), Some(asked)) if asked >= max => {
                        return Err(PkiError::CannotSignCa {
                            parent: parent.to_string(),
                            reason: format!(
                                "its path length is {max}, so a CA below it may have a path length of at most {}",
                                max - 1
                            ),
                        });
                    }
                    _ => {}
                }
                let parent_info = self.check_can_issue(&parent_rec)?;
                self.check_lifetime(parent, &parent_info, opts.lifetime)?;
                let parent_key = self.ca_key(&parent_rec)?;
                let issuer = build::issuer(&parent_rec.cert_pem, &parent_key, parent.as_str())?;
                params
                    .signed_by(&key, &issuer)
                    .map_err(PkiError::build(format!("sign intermediate CA {name}")))?
            }
        };
        let cert_pem = cert.pem();
        let (crl_pem, crl_next_update) = self.sign_crl(name, &cert_pem, &key, 1, &[])?;
        let rec = CaRecord {
            name: name.clone(),
            kind,
            parent: parent.cloned(),
            common_name,
            lifetime_days: opts.lifetime.get(),
            lifetime_secs: opts.lifetime.odd_seconds(),
            path_len,
            permitted_dns: permitted,
            cert_pem,
            previous_serials: Vec::new(),
            crl_number: 1,
            crl_pem,
            crl_next_update,
            revoked: Vec::new(),
            created: Timestamp::from(now),
        };
        self.vault.set(&ca_key_path(name), &key_pem)?;
        self.write_record(&layout::pki_ca(name), &rec)?;
        tracing::info!(ca = %name, ?kind, "CA created");
        self.ca_details(&rec)
    }

    /// Issues a new certificate for CA `name` with its own key and subject
    /// and its original lifetime (a root re-signs itself; an intermediate
    /// asks its root). Certificates it issued stay valid.
    pub fn renew_ca(&self, name: &CaName) -> Result<CaDetails, PkiError> {
        let _guard = self.lock()?;
        self.renew_ca_locked(name, None)
    }

    /// [`Pki::renew_ca`] with a new lifetime from now on, recorded for
    /// later renewals.
    pub fn renew_ca_for(&self, name: &CaName, lifetime: Lifetime) -> Result<CaDetails, PkiError> {
        let _guard = self.lock()?;
        self.renew_ca_locked(name, Some(lifetime))
    }

    pub(super) fn renew_ca_locked(
        &self,
        name: &CaName,
        lifetime: Option<Lifetime>,
    ) -> Result<CaDetails, PkiError> {
        let mut rec = self.load_ca(name)?;
        if let Some(l) = lifetime {
            rec.lifetime_days = l.get();
            rec.lifetime_secs = l.odd_seconds();
        }
        let key = self.ca_key(&rec)?;
        let lifetime = Lifetime::from_record(rec.lifetime_days, rec.lifetime_secs)?;
        let now = self.now();
        let params = build::ca_params(
            &rec.common_name,
            rec.kind,
            rec.path_len,
            &rec.permitted_dns,
            now,
            lifetime,
        )?;
        let cert = match &rec.parent {
            None => params
                .self_signed(&key)
                .map_err(PkiError::build(format!("re-sign root CA {name}")))?,
            Some(parent) => {
                let parent_rec = self.load_ca(parent)?;
                let parent_info = self.check_can_issue(&parent_rec)?;
                self.check_lifetime(parent, &parent_info, lifetime)?;
                let parent_key = self.ca_key(&parent_rec)?;
                let issuer = build::issuer(&parent_rec.cert_pem, &parent_key, parent.as_str())?;
                params
                    .signed_by(&key, &issuer)
                    .map_err(PkiError::build(format!("re-sign intermediate CA {name}")))?
            }
        };
        let old = self.ca_info(&rec)?;
        rec.previous_serials
            .push(records::canonical_serial(&old.serial).unwrap_or(old.serial));
        rec.cert_pem = cert.pem();
        self.write_record(&layout::pki_ca(name), &rec)?;
        tracing::info!(ca = %name, "CA certificate renewed");
        self.ca_details(&rec)
    }

    /// Revokes a certificate `ca` issued and re-signs `ca`'s CRL. Revoking
    /// what is already revoked changes nothing and returns the entry.
    pub fn revoke(
        &self,
        ca: &CaName,
        target: &RevokeTarget,
        reason: RevocationReason,
    ) -> Result<RevokedEntry, PkiError> {
        let _guard = self.lock()?;
        let mut rec = self.load_ca(ca)?;
        let (serial, subject) = self.resolve_target(&rec, target)?;
        if let Some(existing) = rec.revoked.iter().find(|r| r.serial == serial) {
            return Ok(existing.clone());
        }
        let entry = RevokedEntry {
            serial,
            revoked_at: Timestamp::from(self.now()),
            reason,
            subject,
        };
        rec.revoked.push(entry.clone());
        self.refresh_crl_locked(&mut rec)?;
        tracing::info!(ca = %ca, serial = %entry.serial, "certificate revoked");
        Ok(entry)
    }

    /// Signs CA `ca`'s CRL again (next number, a fresh validity) and
    /// returns it (PEM).
    pub fn refresh_crl(&self, ca: &CaName) -> Result<String, PkiError> {
        let _guard = self.lock()?;
        let mut rec = self.load_ca(ca)?;
        self.refresh_crl_locked(&mut rec)?;
        tracing::info!(ca = %ca, number = rec.crl_number, "CRL published");
        Ok(rec.crl_pem)
    }

    /// The CA's current CRL (PEM).
    pub fn crl(&self, ca: &CaName) -> Result<String, PkiError> {
        Ok(self.load_ca(ca)?.crl_pem)
    }

    /// Re-signs the CRL with the next number; writes the record.
    pub(super) fn refresh_crl_locked(&self, rec: &mut CaRecord) -> Result<(), PkiError> {
        let key = self.ca_key(rec)?;
        rec.crl_number += 1;
        let (pem, next) =
            self.sign_crl(&rec.name, &rec.cert_pem, &key, rec.crl_number, &rec.revoked)?;
        rec.crl_pem = pem;
        rec.crl_next_update = next;
        self.write_record(&layout::pki_ca(&rec.name), rec)
    }

    fn sign_crl(
        &self,
        ca: &CaName,
        cert_pem: &str,
        key: &KeyPair,
        number: u64,
        revoked: &[RevokedEntry],
    ) -> Result<(String, Timestamp), PkiError> {
        let issuer = build::issuer(cert_pem, key, ca.as_str())?;
        build::crl(&issuer, number, revoked, self.now(), ca.as_str())
    }

    /// The canonical serial and a description of what `target` names.
    fn resolve_target(
        &self,
        rec: &CaRecord,
        target: &RevokeTarget,
    ) -> Result<(String, String), PkiError> {
        let current_serial = |pem: &str| -> Result<String, PkiError> {
            let info = first_info(pem, self.now())?;
            Ok(records::canonical_serial(&info.serial).unwrap_or(info.serial))
        };
        match target {
            RevokeTarget::Cert(name) => {
                let cert = self.load_cert(&rec.name, name)?;
                Ok((current_serial(&cert.cert_pem)?, format!("cert {name}")))
            }
            RevokeTarget::Ca(child) => {
                let child_rec = self.load_ca(child)?;
                if child_rec.parent.as_ref() != Some(&rec.name) {
                    return Err(PkiError::CaNotFound {
                        ca: format!("{child} (signed by {})", rec.name),
                    });
                }
                Ok((current_serial(&child_rec.cert_pem)?, format!("ca {child}")))
            }
            RevokeTarget::Serial(serial) => {
                let unknown = || PkiError::UnknownSerial {
                    ca: rec.name.to_string(),
                    serial: serial.clone(),
                };
                let wanted = records::canonical_serial(serial).ok_or_else(unknown)?;
                for cert in self.certs_of(&rec.name)? {
                    if current_serial(&cert.cert_pem)? == wanted
                        || cert.previous_serials.contains(&wanted)
                    {
                        return Ok((wanted, format!("cert {}", cert.name)));
                    }
                }
                for child in self.all_cas()? {
                    if child.parent.as_ref() == Some(&rec.name)
                        && (current_serial(&child.cert_pem)? == wanted
                            || child.previous_serials.contains(&wanted))
                    {
                        return Ok((wanted, format!("ca {}", child.name)));
                    }
                }
                Err(unknown())
            }
        }
    }
}
