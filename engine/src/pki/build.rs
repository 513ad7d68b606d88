//! Building certificates and CRLs with `rcgen` (ring backend): key
//! generation (ECDSA P-256), random serials, validity windows, the
//! parameters of roots, intermediates and leaves, CRLs. No I/O: the caller
//! loads keys from the vault and stores what comes out.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rand::RngCore;
use rand::rngs::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, NameConstraints, RevokedCertParams, SanType, SerialNumber,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::PkiError;
use super::names::{DnsName, Lifetime};
use super::records::{CaKind, LeafProfile, RevokedEntry};
use crate::vault::{SecretValue, Timestamp};

/// Organisation written into every subject.
const ORGANIZATION: &str = "OrbitLab";
/// Certificates start this long before issuance (clock skew between nodes).
pub(crate) const BACKDATE: Duration = Duration::from_secs(3600);
/// A CRL is valid for this many days after it is signed.
pub(crate) const CRL_VALIDITY_DAYS: u64 = 30;

/// A fresh ECDSA P-256 key and its PKCS#8 PEM (for the vault).
pub(crate) fn generate_key() -> Result<(KeyPair, SecretValue), PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(PkiError::build("generate an ECDSA P-256 key"))?;
    let pem = Zeroizing::new(key.serialize_pem());
    let value = SecretValue::new(pem.as_bytes().to_vec()).map_err(|e| PkiError::Build {
        doing: "store the generated key".into(),
        reason: e.to_string(),
    })?;
    Ok((key, value))
}

/// The key pair in a vault value (PKCS#8 PEM).
pub(crate) fn load_key(value: &SecretValue, key_path: &str) -> Result<KeyPair, PkiError> {
    let text = value.expose_str().ok_or_else(|| PkiError::Build {
        doing: format!("load the key in vault secret {key_path}"),
        reason: "it is not PEM text".into(),
    })?;
    KeyPair::from_pem(text).map_err(|e| PkiError::Build {
        doing: format!("load the key in vault secret {key_path}"),
        reason: e.to_string(),
    })
}

/// 16 random bytes, positive, no leading zero byte.
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

/// Whole-second UTC time.
pub(crate) fn at(t: SystemTime) -> OffsetDateTime {
    let secs = i64::try_from(Timestamp::from(t).0).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `now + days` as a timestamp.
pub(crate) fn end_of(now: SystemTime, lifetime: Lifetime) -> Timestamp {
    Timestamp::from(now + Duration::from_secs(lifetime.secs()))
}

fn base_params(common_name: &str, now: SystemTime, lifetime: Lifetime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = at(now - BACKDATE);
    params.not_after = at(now + Duration::from_secs(lifetime.secs()));
    params.serial_number = Some(random_serial());
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// Parameters of a CA certificate (`path_len` `None`: no limit).
pub(crate) fn ca_params(
    common_name: &str,
    kind: CaKind,
    path_len: Option<u8>,
    permitted_dns: &[String],
    now: SystemTime,
    lifetime: Lifetime,
) -> Result<CertificateParams, PkiError> {
    let mut params = base_params(common_name, now, lifetime);
    params.is_ca = IsCa::Ca(path_len.map_or(
        BasicConstraints::Unconstrained,
        BasicConstraints::Constrained,
    ));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = kind == CaKind::Intermediate;
    if !permitted_dns.is_empty() {
        let permitted_subtrees = permitted_dns
            .iter()
            .map(|d| GeneralSubtree::DnsName(d.clone()))
            .collect();
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees,
            excluded_subtrees: Vec::new(),
        });
    }
    Ok(params)
}

/// Parameters of a leaf certificate.
pub(crate) fn leaf_params(
    common_name: &str,
    profile: LeafProfile,
    dns: &[DnsName],
    ips: &[IpAddr],
    now: SystemTime,
    lifetime: Lifetime,
) -> Result<CertificateParams, PkiError> {
    let mut params = base_params(common_name, now, lifetime);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match profile {
        LeafProfile::Server => ExtendedKeyUsagePurpose::ServerAuth,
        LeafProfile::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    for name in dns {
        let ia5 = name
            .as_str()
            .try_into()
            .map_err(PkiError::build(format!("encode DNS name {name}")))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    Ok(params)
}

/// The issuer built from a CA certificate and its key.
pub(crate) fn issuer<'k>(
    cert_pem: &str,
    key: &'k KeyPair,
    ca: &str,
) -> Result<Issuer<'static, &'k KeyPair>, PkiError> {
    Issuer::from_ca_cert_pem(cert_pem, key)
        .map_err(PkiError::build(format!("use the certificate of CA {ca}")))
}

/// A CRL listing `revoked`, signed by the CA, valid for
/// [`CRL_VALIDITY_DAYS`] from `now`. Returns the PEM and the next update.
pub(crate) fn crl(
    issuer: &Issuer<'_, &KeyPair>,
    crl_number: u64,
    revoked: &[RevokedEntry],
    now: SystemTime,
    ca: &str,
) -> Result<(String, Timestamp), PkiError> {
    let next = now + Duration::from_secs(CRL_VALIDITY_DAYS * 86_400);
    let number = crl_number.to_be_bytes();
    let first = number
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(number.len() - 1);
    let params = CertificateRevocationListParams {
        this_update: at(now - Duration::from_secs(60)),
        next_update: at(next),
        crl_number: SerialNumber::from_slice(&number[first..]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(
                    &hex::decode(&r.serial).unwrap_or_default(),
                ),
                revocation_time: OffsetDateTime::from_unix_timestamp(
                    i64::try_from(r.revoked_at.0).unwrap_or(0),
                )
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason_code: Some(r.reason.to_rcgen()),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let list = params
        .signed_by(issuer)
        .map_err(PkiError::build(format!("sign the CRL of CA {ca}")))?;
    let pem = list
        .pem()
        .map_err(PkiError::build(format!("encode the CRL of CA {ca}")))?;
    Ok((pem, Timestamp::from(next)))
}
