//! On-disk records of the PKI: public material only (certificates, CRLs,
//! revocation lists, issuing parameters). Private keys are in the vault.
//!
//! Files (config area, 0640, JSON; written under the `pki` cluster lock):
//! - `orbitlab/pki/cas/<ca>.json`: one [`CaRecord`] per CA;
//! - `orbitlab/pki/certs/<ca>/<name>.json`: one [`CertRecord`] per leaf.

use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::names::{CaName, CertName, InvalidInput};
use crate::vault::{SecretPath, Timestamp};

/// Root or intermediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaKind {
    /// Self-signed, no path length limit.
    Root,
    /// Signed by another CA (by default with path length 0: it signs
    /// only leaves).
    Intermediate,
}

/// What a leaf certificate is for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeafProfile {
    /// TLS server (`serverAuth`).
    Server,
    /// TLS client (`clientAuth`).
    Client,
}

impl TryFrom<orbitlab_manifests::spec::CertificateRole> for LeafProfile {
    type Error = InvalidInput;

    /// The profile of a `Certificate` manifest's leaf role (CA roles are
    /// refused: they are made with `create_root` / `create_intermediate`).
    fn try_from(role: orbitlab_manifests::spec::CertificateRole) -> Result<Self, InvalidInput> {
        use orbitlab_manifests::spec::CertificateRole;
        match role {
            CertificateRole::Server => Ok(LeafProfile::Server),
            CertificateRole::Client => Ok(LeafProfile::Client),
            CertificateRole::RootCa | CertificateRole::IntermediateCa => Err(InvalidInput {
                what: "certificate profile",
                input: role.as_str().to_owned(),
                reason: "a CA role is not a leaf profile; create the CA instead".into(),
            }),
        }
    }
}

impl FromStr for LeafProfile {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, InvalidInput> {
        match s {
            "server" => Ok(LeafProfile::Server),
            "client" => Ok(LeafProfile::Client),
            _ => Err(InvalidInput {
                what: "certificate profile",
                input: s.to_owned(),
                reason: "choose `server` or `client`".into(),
            }),
        }
    }
}

/// RFC 5280 revocation reasons OrbitLab offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given.
    Unspecified,
    /// The private key leaked.
    KeyCompromise,
    /// A CA key leaked.
    CaCompromise,
    /// The subject changed.
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// No longer needed.
    CessationOfOperation,
}

impl RevocationReason {
    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        match self {
            RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
            RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise => rcgen::RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
            RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
            RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
        }
    }
}

impl FromStr for RevocationReason {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, InvalidInput> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| InvalidInput {
            what: "revocation reason",
            input: s.to_owned(),
            reason: "choose unspecified, key-compromise, ca-compromise, affiliation-changed, superseded or cessation-of-operation".into(),
        })
    }
}

/// One revoked certificate, as listed in its CA's CRL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokedEntry {
    /// Serial, lower-case hex without separators.
    pub serial: String,
    /// When the CA revoked it.
    pub revoked_at: Timestamp,
    /// Why.
    pub reason: RevocationReason,
    /// What it was (`cert web`, `ca sector-web`), for people.
    pub subject: String,
}

/// A CA as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaRecord {
    pub(crate) name: CaName,
    pub(crate) kind: CaKind,
    pub(crate) parent: Option<CaName>,
    pub(crate) common_name: String,
    pub(crate) lifetime_days: u32,
    /// The lifetime in seconds when it is not a whole number of days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lifetime_secs: Option<u64>,
    /// How many CAs may follow below it (`None`: no limit).
    pub(crate) path_len: Option<u8>,
    pub(crate) permitted_dns: Vec<String>,
    pub(crate) cert_pem: String,
    /// Serials of this CA's earlier certificates (before renewals).
    pub(crate) previous_serials: Vec<String>,
    pub(crate) crl_number: u64,
    pub(crate) crl_pem: String,
    pub(crate) crl_next_update: Timestamp,
    pub(crate) revoked: Vec<RevokedEntry>,
    pub(crate) created: Timestamp,
}

/// Where a leaf's key came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum KeySource {
    /// OrbitLab generated it; it is in the vault.
    Generated,
    /// The requester holds it; this is the CSR it sent.
    Csr {
        /// The request, PEM.
        csr_pem: String,
    },
}

/// A leaf certificate as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertRecord {
    pub(crate) name: CertName,
    pub(crate) ca: CaName,
    pub(crate) profile: LeafProfile,
    pub(crate) dns_names: Vec<String>,
    pub(crate) ip_addresses: Vec<IpAddr>,
    pub(crate) lifetime_days: u32,
    /// The lifetime in seconds when it is not a whole number of days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lifetime_secs: Option<u64>,
    pub(crate) key: KeySource,
    pub(crate) cert_pem: String,
    pub(crate) previous_serials: Vec<String>,
    pub(crate) created: Timestamp,
}

/// Vault path of a CA's private key.
pub fn ca_key_path(ca: &CaName) -> SecretPath {
    format!("pki/{ca}/key")
        .parse()
        .expect("CA names are valid path segments")
}

/// Vault path of a generated leaf key.
pub fn cert_key_path(ca: &CaName, name: &CertName) -> SecretPath {
    format!("pki/{ca}/certs/{name}/key")
        .parse()
        .expect("certificate names are valid path segments")
}

/// Serial in canonical form: lower-case hex, no separators.
pub(crate) fn canonical_serial(input: &str) -> Option<String> {
    let hex: String = input
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (!hex.is_empty() && hex.len() <= 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_and_reasons() {
        assert_eq!(canonical_serial("6B:0A:ff").as_deref(), Some("6b0aff"));
        assert_eq!(canonical_serial("zz"), None);
        assert_eq!(canonical_serial(""), None);
        assert_eq!(
            "key-compromise".parse::<RevocationReason>().unwrap(),
            RevocationReason::KeyCompromise
        );
        assert!("stolen".parse::<RevocationReason>().is_err());
    }

    #[test]
    fn paths() {
        let ca: CaName = "root".parse().unwrap();
        let cert: CertName = "web".parse().unwrap();
        assert_eq!(ca_key_path(&ca).as_str(), "pki/root/key");
        assert_eq!(cert_key_path(&ca, &cert).as_str(), "pki/root/certs/web/key");
    }
}
