//! Reading certificates with `x509-parser`: what `orbitlab pki show` prints
//! (subject, issuer, serial, validity, days left, SANs, SHA-256
//! fingerprint, CA constraints) and signature checks along a chain.
//! Garbage in gives [`PkiError::BadPem`] naming what was expected. Pure.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::PkiError;
use crate::vault::Timestamp;

/// Public facts about one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject distinguished name (`CN=web, O=OrbitLab`).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, colon-separated hex (as `openssl x509` prints it).
    pub serial: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// SHA-256 of the DER form, colon-separated upper-case hex (as
    /// `openssl x509 -fingerprint -sha256` prints it).
    pub sha256_fingerprint: String,
    /// True for a CA certificate.
    pub is_ca: bool,
    /// Path length constraint of a CA, when set.
    pub path_len: Option<u32>,
    /// DNS names a CA is limited to (name constraints), if any.
    pub permitted_dns: Vec<String>,
    /// The certificate, PEM.
    pub pem: String,
}

/// Splits PEM text into DER blocks labelled `label`; refuses anything else.
pub(crate) fn pem_blocks(text: &str, label: &str, what: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let bad = |reason: String| PkiError::BadPem {
        what: what.to_owned(),
        reason,
    };
    let mut blocks = Vec::new();
    for item in Pem::iter_from_buffer(text.as_bytes()) {
        let pem = item.map_err(|e| bad(format!("it is not valid PEM ({e})")))?;
        if pem.label != label {
            return Err(bad(format!(
                "found a {:?} block where {label:?} was expected",
                pem.label
            )));
        }
        blocks.push(pem.contents);
    }
    if blocks.is_empty() {
        return Err(bad(format!("it holds no -----BEGIN {label}----- block")));
    }
    Ok(blocks)
}

/// Parses one DER certificate.
pub(crate) fn parse_der<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::BadPem {
        what: what.to_owned(),
        reason: format!("it is not a valid X.509 certificate ({e})"),
    })?;
    if !rest.is_empty() {
        return Err(PkiError::BadPem {
            what: what.to_owned(),
            reason: "trailing bytes after the certificate".into(),
        });
    }
    Ok(cert)
}

/// Facts about every certificate in a PEM bundle (leaf first, as given).
pub fn inspect_pem(text: &str, now: SystemTime) -> Result<Vec<CertInfo>, PkiError> {
    pem_blocks(text, "CERTIFICATE", "certificate")?
        .iter()
        .map(|der| info_of_der(der, now))
        .collect()
}

/// Facts about one DER certificate.
pub(crate) fn info_of_der(der: &[u8], now: SystemTime) -> Result<CertInfo, PkiError> {
    let what = "certificate";
    let cert = parse_der(der, what)?;
    let ext_err = |e: x509_parser::error::X509Error| PkiError::BadPem {
        what: what.to_owned(),
        reason: format!("it has a malformed extension ({e})"),
    };
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Some(san) = cert.subject_alternative_name().map_err(ext_err)? {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                GeneralName::IPAddress(raw) => {
                    if let Some(ip) = ip_from_bytes(raw) {
                        ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let path_len = cert
        .basic_constraints()
        .map_err(ext_err)?
        .and_then(|bc| bc.value.path_len_constraint);
    let permitted_dns = cert
        .name_constraints()
        .map_err(ext_err)?
        .and_then(|nc| nc.value.permitted_subtrees.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| match s.base {
            GeneralName::DNSName(d) => Some(d.to_owned()),
            _ => None,
        })
        .collect();
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let now_secs = i64::try_from(Timestamp::from(now).0).unwrap_or(i64::MAX);
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: Timestamp(u64::try_from(not_before).unwrap_or(0)),
        not_after: Timestamp(u64::try_from(not_after).unwrap_or(0)),
        days_left: (not_after - now_secs).div_euclid(86_400),
        dns_names,
        ip_addresses,
        sha256_fingerprint: colon_hex(&Sha256::digest(der)),
        is_ca: cert.is_ca(),
        path_len,
        permitted_dns,
        pem: pem_of("CERTIFICATE", der),
    })
}

/// True when `child` carries a valid signature by `issuer`'s key.
pub(crate) fn signed_by(child_der: &[u8], issuer_der: &[u8]) -> Result<bool, PkiError> {
    let child = parse_der(child_der, "certificate")?;
    let issuer = parse_der(issuer_der, "issuer certificate")?;
    Ok(child.verify_signature(Some(issuer.public_key())).is_ok())
}

/// PEM encoding with 64-character lines.
pub(crate) fn pem_of(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `AB:CD:…` upper-case hex.
pub(crate) fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip_from_bytes(raw: &[u8]) -> Option<IpAddr> {
    match raw.len() {
        4 => <[u8; 4]>::try_from(raw).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(raw).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_clearly() {
        let now = SystemTime::now();
        for (text, needle) in [
            ("", "no -----BEGIN CERTIFICATE-----"),
            ("hello world", "no -----BEGIN CERTIFICATE-----"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a valid X.509 certificate",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "\"PRIVATE KEY\" block",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "not valid PEM",
            ),
        ] {
            let err = inspect_pem(text, now).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.starts_with("the certificate given"), "{err}");
        }
    }

    #[test]
    fn pem_round_trip() {
        let der = vec![1u8; 100];
        let pem = pem_of("CERTIFICATE", &der);
        assert_eq!(pem_blocks(&pem, "CERTIFICATE", "x").unwrap(), vec![der]);
        assert_eq!(colon_hex(&[0xab, 0x01]), "AB:01");
    }
}
