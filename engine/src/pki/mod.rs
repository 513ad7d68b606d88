//! OrbitLab's internal certificate authority.
//!
//! Root CAs (self-signed), intermediate CAs (signed by a root, path length
//! 0, optional DNS name constraints) and leaf certificates (server or
//! client, DNS and IP SANs, chosen lifetime), all ECDSA P-256 built with
//! `rcgen` on `ring`, read back with `x509-parser`. Also: signing of
//! external CSRs, revocation with CRLs signed by the CA, renewal of what is
//! close to expiry, and the facts `orbitlab pki show` prints.
//!
//! **Where things live.** Private keys are vault secrets
//! (`pki/<ca>/key`, `pki/<ca>/certs/<name>/key`; see [`crate::vault`]).
//! Public records are in the config area (`orbitlab/pki/cas/<ca>.json`,
//! `orbitlab/pki/certs/<ca>/<name>.json`, 0640; see [`records`]). Every
//! change runs under the cluster lock [`Lock::Pki`] (vault
//! writes take the vault lock inside it: always in that order).
//!
//! **Refusals.** Issuing from an expired, not yet valid or revoked CA; a
//! certificate that would outlive its CA; a SAN outside an intermediate's
//! name constraints; a CA key in the vault that does not match its
//! certificate; garbage certificates and CSRs.

mod build;
mod ca;
mod error;
mod inspect;
mod leaf;
pub(crate) mod names;
mod records;
mod view;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rcgen::KeyPair;
use serde::de::DeserializeOwned;

pub use ca::{CaOptions, RevokeTarget};
pub use error::PkiError;
pub use inspect::{CertInfo, inspect_pem};
pub use leaf::LeafRequest;
pub use names::{CaName, CertName, DnsName, InvalidInput, Lifetime};
pub use records::{
    CaKind, LeafProfile, RevocationReason, RevokedEntry, ca_key_path, cert_key_path,
};
pub use view::{
    CaDetails, CaSummary, CertDetails, CertSummary, DueItem, DueKind, RenewFailure, RenewalReport,
    Renewed,
};

use crate::store::layout::{self, Lock};
use crate::store::{LockGuard, Store, StorePath};
use crate::vault::Vault;
use records::{CaRecord, CertRecord};

/// Where the PKI gets the time (tests move it).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// How long a CRL OrbitLab signs is valid, in seconds.
pub const CRL_VALIDITY_SECS: u64 = build::CRL_VALIDITY_DAYS * 86_400;

/// Deepest chain of CAs followed (a longer one means damaged records).
const MAX_DEPTH: usize = 16;

/// Handle on the PKI of one store (cheap to clone).
#[derive(Debug, Clone)]
pub struct Pki {
    vault: Vault,
    clock: Arc<dyn Clock>,
}

impl Pki {
    /// The PKI whose keys live in `vault` (and records in its store).
    pub fn new(vault: Vault) -> Pki {
        Pki {
            vault,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same PKI reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Pki {
        self.clock = clock;
        self
    }

    fn store(&self) -> &Store {
        self.vault.store()
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn lock(&self) -> Result<LockGuard, PkiError> {
        Ok(self.store().lock(Lock::Pki.name())?)
    }

    fn read_record<T: DeserializeOwned>(&self, path: &StorePath) -> Result<Option<T>, PkiError> {
        let Some(bytes) = self.store().read(path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PkiError::Damaged {
                file: self.store().absolute(path),
                reason: e.to_string(),
            })
    }

    fn write_record<T: serde::Serialize>(
        &self,
        path: &StorePath,
        record: &T,
    ) -> Result<(), PkiError> {
        let bytes = serde_json::to_vec_pretty(record).expect("records always serialize");
        Ok(self.store().write(path, &bytes)?)
    }

    fn load_ca(&self, ca: &CaName) -> Result<CaRecord, PkiError> {
        self.read_record(&layout::pki_ca(ca))?
            .ok_or_else(|| PkiError::CaNotFound { ca: ca.to_string() })
    }

    fn load_cert(&self, ca: &CaName, name: &CertName) -> Result<CertRecord, PkiError> {
        self.read_record(&layout::pki_cert(ca, name))?
            .ok_or_else(|| PkiError::CertNotFound {
                ca: ca.to_string(),
                name: name.to_string(),
            })
    }

    /// Every CA record, by name.
    fn all_cas(&self) -> Result<Vec<CaRecord>, PkiError> {
        let mut out = Vec::new();
        for file in self.store().list(&layout::pki_cas_dir())? {
            let Some(name) = layout::record_file_name(&file) else {
                continue;
            };
            let Ok(name) = name.parse::<CaName>() else {
                continue;
            };
            out.push(self.load_ca(&name)?);
        }
        Ok(out)
    }

    /// Every leaf record of `ca`, by name.
    fn certs_of(&self, ca: &CaName) -> Result<Vec<CertRecord>, PkiError> {
        let mut out = Vec::new();
        for file in self.store().list(&layout::pki_certs_dir(ca))? {
            let Some(name) = layout::record_file_name(&file) else {
                continue;
            };
            let Ok(name) = name.parse::<CertName>() else {
                continue;
            };
            out.push(self.load_cert(ca, &name)?);
        }
        Ok(out)
    }

    /// The CA's key from the vault, checked against its certificate.
    fn ca_key(&self, rec: &CaRecord) -> Result<KeyPair, PkiError> {
        let key_path = ca_key_path(&rec.name);
        let value = self.vault.get(&key_path)?.value;
        let key = build::load_key(&value, key_path.as_str())?;
        let der = inspect::pem_blocks(&rec.cert_pem, "CERTIFICATE", "CA certificate")?;
        let cert = inspect::parse_der(&der[0], "CA certificate")?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::KeyMismatch {
                ca: rec.name.to_string(),
                key_path: key_path.to_string(),
            });
        }
        Ok(key)
    }

    /// Facts about a CA's current certificate.
    fn ca_info(&self, rec: &CaRecord) -> Result<CertInfo, PkiError> {
        first_info(&rec.cert_pem, self.now())
    }

    /// `rec` and the CAs above it, nearest first, ending with the root.
    fn lineage(&self, rec: &CaRecord) -> Result<Vec<CaRecord>, PkiError> {
        let mut out = vec![rec.clone()];
        while let Some(parent) = out.last().and_then(|c| c.parent.clone()) {
            if out.len() > MAX_DEPTH {
                return Err(PkiError::Damaged {
                    file: self.store().absolute(&layout::pki_ca(&rec.name)),
                    reason: format!("its chain of parents is longer than {MAX_DEPTH} (a loop?)"),
                });
            }
            out.push(self.load_ca(&parent)?);
        }
        Ok(out)
    }

    /// Refuses a CA that may not issue now: it or a CA above it expired or
    /// not yet valid, or revoked by its own parent. Returns the CA's facts.
    fn check_can_issue(&self, rec: &CaRecord) -> Result<CertInfo, PkiError> {
        let lineage = self.lineage(rec)?;
        let now = crate::vault::Timestamp::from(self.now());
        let mut infos = Vec::with_capacity(lineage.len());
        for (i, ca) in lineage.iter().enumerate() {
            let info = self.ca_info(ca)?;
            if now >= info.not_after {
                return Err(PkiError::CaExpired {
                    ca: ca.name.to_string(),
                    not_after: info.not_after,
                });
            }
            if now < info.not_before {
                return Err(PkiError::CaNotYetValid {
                    ca: ca.name.to_string(),
                    not_before: info.not_before,
                });
            }
            if let Some(parent) = lineage.get(i + 1)
                && self.revoked_entry(parent, &info.serial).is_some()
            {
                return Err(PkiError::CaRevoked {
                    ca: ca.name.to_string(),
                    parent: parent.name.to_string(),
                });
            }
            infos.push(info);
        }
        Ok(infos.swap_remove(0))
    }

    /// The revocation entry of `serial` (any form) in `ca`'s list.
    fn revoked_entry<'r>(&self, ca: &'r CaRecord, serial: &str) -> Option<&'r RevokedEntry> {
        let serial = records::canonical_serial(serial)?;
        ca.revoked.iter().find(|r| r.serial == serial)
    }
}

/// Facts about the first certificate of a PEM text.
fn first_info(pem: &str, now: SystemTime) -> Result<CertInfo, PkiError> {
    inspect_pem(pem, now)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::BadPem {
            what: "certificate".into(),
            reason: "it holds no certificate".into(),
        })
}
