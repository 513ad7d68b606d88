//! [`PkiError`]: every way a PKI operation can fail, each naming the CA,
//! certificate or file concerned and saying what to do. Private keys never
//! appear in messages.

use std::path::PathBuf;

use super::names::InvalidInput;
use crate::store::StoreError;
use crate::vault::{Timestamp, VaultError};

/// What went wrong in the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A name, DNS name, lifetime or common name that does not parse.
    #[error(transparent)]
    Input(#[from] InvalidInput),

    /// The vault refused (keys live there).
    #[error(transparent)]
    Vault(#[from] VaultError),

    /// The cluster filesystem failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// No such CA.
    #[error("CA {ca} does not exist; `orbitlab pki ca list` shows the CAs there are")]
    CaNotFound {
        /// The CA asked for.
        ca: String,
    },

    /// A CA of that name exists.
    #[error("CA {ca} already exists; choose another name (nothing was changed)")]
    CaExists {
        /// The CA.
        ca: String,
    },

    /// No such certificate.
    #[error(
        "certificate {name} of CA {ca} does not exist; `orbitlab pki cert list` shows the certificates there are"
    )]
    CertNotFound {
        /// Its CA.
        ca: String,
        /// The certificate asked for.
        name: String,
    },

    /// A certificate of that name exists under that CA.
    #[error(
        "certificate {name} of CA {ca} already exists; renew it, or choose another name (nothing was changed)"
    )]
    CertExists {
        /// Its CA.
        ca: String,
        /// The certificate.
        name: String,
    },

    /// The parent's path length forbids this CA below it.
    #[error("CA {parent} cannot sign this CA: {reason}; nothing was created")]
    CannotSignCa {
        /// The would-be parent.
        parent: String,
        /// Why (its path length).
        reason: String,
    },

    /// The issuing CA has expired.
    #[error(
        "CA {ca} expired on {not_after}; nothing was issued — renew the CA (`orbitlab pki renew`) or create a new one"
    )]
    CaExpired {
        /// The CA.
        ca: String,
        /// When it expired.
        not_after: Timestamp,
    },

    /// The issuing CA is not valid yet (clock skew?).
    #[error("CA {ca} is not valid before {not_before}; check this node's clock")]
    CaNotYetValid {
        /// The CA.
        ca: String,
        /// Start of its validity.
        not_before: Timestamp,
    },

    /// The issuing CA was revoked by its parent.
    #[error(
        "CA {ca} has been revoked by CA {parent}; nothing was issued — create a new intermediate CA"
    )]
    CaRevoked {
        /// The CA.
        ca: String,
        /// Its parent that revoked it.
        parent: String,
    },

    /// The new certificate would outlive its issuer.
    #[error(
        "a certificate of {days} days would outlive CA {ca}, which expires on {issuer_not_after}; choose at most {max_days} days, or renew the CA first"
    )]
    OutlivesIssuer {
        /// The issuing CA.
        ca: String,
        /// The lifetime asked for.
        days: u32,
        /// When the CA expires.
        issuer_not_after: Timestamp,
        /// The longest lifetime still possible.
        max_days: i64,
    },

    /// A SAN outside the CA's name constraints.
    #[error("{name} is outside the names CA {ca} may certify ({permitted}); nothing was issued")]
    OutsideConstraints {
        /// The issuing CA.
        ca: String,
        /// The offending DNS name.
        name: String,
        /// The permitted subtrees.
        permitted: String,
    },

    /// A server certificate with no SAN at all.
    #[error(
        "certificate {name} needs at least one DNS name or IP address (subject alternative name)"
    )]
    NoSubjectAltName {
        /// The certificate.
        name: String,
    },

    /// Garbage where a certificate (or chain) was expected.
    #[error("the {what} given is not usable: {reason}")]
    BadPem {
        /// What was expected.
        what: String,
        /// What is wrong.
        reason: String,
    },

    /// Garbage, or a bad signature, where a CSR was expected.
    #[error("the certificate signing request given is not usable: {reason}; nothing was issued")]
    BadCsr {
        /// What is wrong.
        reason: String,
    },

    /// A PKI record in the store cannot be read.
    #[error("PKI record {file} is damaged: {reason}; restore it from a backup")]
    Damaged {
        /// The record file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The CA's key in the vault does not belong to its certificate.
    #[error(
        "the key of CA {ca} in the vault ({key_path}) does not match the CA certificate; restore the matching vault secret or the CA record"
    )]
    KeyMismatch {
        /// The CA.
        ca: String,
        /// The vault path of its key.
        key_path: String,
    },

    /// Revocation of a serial the CA never issued.
    #[error("CA {ca} never issued a certificate with serial {serial}; nothing was revoked")]
    UnknownSerial {
        /// The CA.
        ca: String,
        /// The serial asked for.
        serial: String,
    },

    /// rcgen refused to build something.
    #[error("cannot {doing}: {reason}")]
    Build {
        /// What was being built.
        doing: String,
        /// rcgen's reason.
        reason: String,
    },
}

impl PkiError {
    pub(crate) fn build(doing: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
        let doing = doing.into();
        move |e| PkiError::Build {
            doing,
            reason: e.to_string(),
        }
    }
}
