//! `kind: Certificate` — a certificate issued by OrbitLab's PKI: a root CA,
//! an intermediate CA, or a server or client (leaf) certificate.
//!
//! Single-object rules: a root CA has no issuer, every other certificate
//! has one; CAs need a common name; path length and name constraints only
//! on CAs; a server certificate names at least one DNS name or address;
//! wildcards are not name constraints. Whether the issuer exists and is a
//! CA, and issuer loops, are checked by [`crate::ManifestSet`].
//! Pure: no I/O.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::rules::{duplicates, within_opt};
use crate::error::Problems;
use crate::names::{DnsName, Name};
use crate::period::Period;
use crate::text::CommonName;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateRole {
    /// A self-signed root CA.
    RootCa,
    /// A CA signed by another CA.
    IntermediateCa,
    /// A TLS server certificate.
    Server,
    /// A TLS client certificate.
    Client,
}

impl CertificateRole {
    /// Whether certificates of this role may issue others.
    pub fn is_ca(self) -> bool {
        matches!(
            self,
            CertificateRole::RootCa | CertificateRole::IntermediateCa
        )
    }

    /// The YAML form (`root_ca`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateRole::RootCa => "root_ca",
            CertificateRole::IntermediateCa => "intermediate_ca",
            CertificateRole::Server => "server",
            CertificateRole::Client => "client",
        }
    }

    /// Lifetime used when `lifetime_days` is absent.
    pub fn default_lifetime_days(self) -> u32 {
        match self {
            CertificateRole::RootCa => 3650,
            CertificateRole::IntermediateCa => 1825,
            CertificateRole::Server | CertificateRole::Client => 397,
        }
    }
}

/// The desired state of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct CertificateSpec {
    /// `root_ca`, `intermediate_ca`, `server` or `client`.
    #[garde(skip)]
    pub role: CertificateRole,
    /// The CA that signs this certificate (name of a `Certificate`); absent
    /// for a root CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub issuer: Option<Name>,
    /// Subject common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub common_name: Option<CommonName>,
    /// DNS subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub dns_names: Vec<DnsName>,
    /// IP subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub ip_addresses: Vec<IpAddr>,
    /// Validity in days, 1–7300; defaults by role (3650, 1825, 397).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(custom(within_opt(1u32, 7300, " days")))]
    pub lifetime_days: Option<u32>,
    /// Validity as a period (`30d`, `12h`), instead of `lifetime_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub lifetime: Option<Period>,
    /// Renew this long before it expires (default: a third of its
    /// validity; at most half). The CRL of a CA is published again on the
    /// same schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub renew_before: Option<Period>,
    /// CAs only: how many intermediate CAs may follow, 0–8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(custom(within_opt(0u8, 8, "")))]
    pub path_len: Option<u8>,
    /// CAs only: DNS domains the CA may issue for (name constraints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[garde(skip)]
    pub permitted_dns_domains: Vec<DnsName>,
}

impl CertificateSpec {
    /// The effective lifetime in days (rounded down; see
    /// [`CertificateSpec::lifetime_secs`]).
    pub fn lifetime_days(&self) -> u32 {
        u32::try_from(self.lifetime_secs() / 86_400).unwrap_or(u32::MAX)
    }

    /// The effective lifetime in seconds: `lifetime`, else `lifetime_days`,
    /// else the role's default.
    pub fn lifetime_secs(&self) -> u64 {
        match (self.lifetime, self.lifetime_days) {
            (Some(p), _) => p.as_secs(),
            (None, Some(d)) => u64::from(d) * 86_400,
            (None, None) => u64::from(self.role.default_lifetime_days()) * 86_400,
        }
    }

    /// How long before expiry it is renewed, in seconds.
    pub fn renew_before_secs(&self) -> u64 {
        self.renew_before
            .map_or_else(|| self.lifetime_secs() / 3, Period::as_secs)
    }

    pub(crate) fn check(&self, p: &mut Problems) {
        let role = self.role.as_str();
        if self.lifetime.is_some() && self.lifetime_days.is_some() {
            p.push("lifetime", "set either lifetime or lifetime_days, not both");
        }
        if let Some(before) = self.renew_before
            && before.as_secs() > self.lifetime_secs() / 2
        {
            p.push(
                "renew_before",
                format!(
                    "{before} is more than half the certificate's validity; a certificate is renewed at the earliest halfway through its life"
                ),
            );
        }
        if self.lifetime.is_some_and(|l| l.as_secs() < 60) {
            p.push(
                "lifetime",
                "is shorter than 60s; a certificate needs at least a minute",
            );
        }
        match (self.role, &self.issuer) {
            (CertificateRole::RootCa, Some(_)) => {
                p.push("issuer", "a root_ca signs itself and has no issuer; remove issuer or use role intermediate_ca")
            }
            (r, None) if r != CertificateRole::RootCa => p.push(
                "issuer",
                format!("is required for a {role} certificate; name the CA Certificate that signs it"),
            ),
            _ => {}
        }
        if self.role.is_ca() && self.common_name.is_none() {
            p.push(
                "common_name",
                format!("is required for a {role}; write for example \"OrbitLab Root CA\""),
            );
        }
        if !self.role.is_ca() {
            if self.path_len.is_some() {
                p.push(
                    "path_len",
                    format!("applies only to CAs; remove it from this {role} certificate"),
                );
            }
            if !self.permitted_dns_domains.is_empty() {
                p.push(
                    "permitted_dns_domains",
                    format!("applies only to CAs; remove it from this {role} certificate"),
                );
            }
        }
        if self.role == CertificateRole::Server
            && self.dns_names.is_empty()
            && self.ip_addresses.is_empty()
        {
            p.push(
                "dns_names",
                "a server certificate needs at least one entry in dns_names or ip_addresses",
            );
        }
        for (i, d) in self.permitted_dns_domains.iter().enumerate() {
            if d.is_wildcard() {
                p.push(
                    format!("permitted_dns_domains[{i}]"),
                    format!(
                        "{d} is a wildcard; a name constraint is a plain domain such as example.org"
                    ),
                );
            }
        }
        for (i, first) in duplicates(&self.dns_names, |d| d) {
            p.push(
                format!("dns_names[{i}]"),
                format!(
                    "{} is already listed at dns_names[{first}]",
                    self.dns_names[i]
                ),
            );
        }
        for (i, first) in duplicates(&self.ip_addresses, |a| a) {
            p.push(
                format!("ip_addresses[{i}]"),
                format!(
                    "{} is already listed at ip_addresses[{first}]",
                    self.ip_addresses[i]
                ),
            );
        }
    }
}
