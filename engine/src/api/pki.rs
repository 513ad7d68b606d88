//! The certificate authority in the API tree. The `orbitlab pki` commands
//! and the HTTPS server both run a [`PkiCall`] through [`Api::pki`]:
//!
//! ```text
//! GET  /pki/cas                           CAs                              metadata
//! GET  /pki/cas/{ca}                      one CA                           metadata
//! GET  /pki/cas/{ca}/pem                  its certificate (PEM)            metadata
//! GET  /pki/cas/{ca}/crl                  its CRL (PEM)                    metadata
//! POST /pki/cas/{ca}/revoke?cert=N|ca=N|serial=HEX[&reason=R]              change
//! GET  /pki/certs[?ca=CA]                 leaf certificates                metadata
//! GET  /pki/certs/{ca}/{name}             one, with its chain              metadata
//! GET  /pki/certs/{ca}/{name}/key         its private key                  value
//! POST /pki/certs/{ca}/{name}?dns=&ip=&days=&client=1    issue             change
//! GET  /pki/renewal[?within-days=N]       what is due for renewal          metadata
//! POST /pki/renewal[?within-days=N]       renew what is due                change
//! ```
//!
//! Creating CAs and signing CSRs are not in the tree yet: `orbitlab pki ca
//! create-*` and `pki cert sign-csr` run on a node.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use serde_json::{Value, json};

use super::{Api, PathError, VaultAccess};
use crate::pki::{
    CaName, CertName, DnsName, LeafProfile, LeafRequest, Lifetime, PkiError, RevocationReason,
    RevokeTarget,
};
use crate::vault::Vault;

/// A path below `/pki`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiPath {
    /// `/pki/cas`.
    Cas,
    /// `/pki/cas/{ca}`.
    Ca(CaName),
    /// `/pki/cas/{ca}/pem`.
    CaPem(CaName),
    /// `/pki/cas/{ca}/crl`.
    Crl(CaName),
    /// `/pki/cas/{ca}/revoke`.
    Revoke(CaName),
    /// `/pki/certs`.
    Certs,
    /// `/pki/certs/{ca}/{name}`.
    Cert(CaName, CertName),
    /// `/pki/certs/{ca}/{name}/key`.
    Key(CaName, CertName),
    /// `/pki/renewal`.
    Renewal,
}

impl PkiPath {
    /// Parses `path` when it is `/pki` or below; `Ok(None)` otherwise.
    pub fn parse(path: &str) -> Result<Option<PkiPath>, PathError> {
        let Some(rest) = super::path::below(path, "/pki") else {
            return Ok(None);
        };
        let error = |reason: String| PathError::at(path, reason);
        let ca = |t: &str| {
            t.parse::<CaName>()
                .map_err(|e| error(format!("CA name: {e}")))
        };
        let cert = |t: &str| {
            t.parse::<CertName>()
                .map_err(|e| error(format!("certificate name: {e}")))
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        Ok(Some(match segments.as_slice() {
            ["cas"] => PkiPath::Cas,
            ["cas", c] => PkiPath::Ca(ca(c)?),
            ["cas", c, "pem"] => PkiPath::CaPem(ca(c)?),
            ["cas", c, "crl"] => PkiPath::Crl(ca(c)?),
            ["cas", c, "revoke"] => PkiPath::Revoke(ca(c)?),
            ["certs"] => PkiPath::Certs,
            ["certs", c, n] => PkiPath::Cert(ca(c)?, cert(n)?),
            ["certs", c, n, "key"] => PkiPath::Key(ca(c)?, cert(n)?),
            ["renewal"] => PkiPath::Renewal,
            _ => {
                return Err(error(
                    "below /pki: cas[/{ca}[/pem|/crl|/revoke]], certs[/{ca}/{name}[/key]], renewal"
                        .into(),
                ));
            }
        }))
    }
}

impl fmt::Display for PkiPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiPath::Cas => f.write_str("/pki/cas"),
            PkiPath::Ca(c) => write!(f, "/pki/cas/{c}"),
            PkiPath::CaPem(c) => write!(f, "/pki/cas/{c}/pem"),
            PkiPath::Crl(c) => write!(f, "/pki/cas/{c}/crl"),
            PkiPath::Revoke(c) => write!(f, "/pki/cas/{c}/revoke"),
            PkiPath::Certs => f.write_str("/pki/certs"),
            PkiPath::Cert(c, n) => write!(f, "/pki/certs/{c}/{n}"),
            PkiPath::Key(c, n) => write!(f, "/pki/certs/{c}/{n}/key"),
            PkiPath::Renewal => f.write_str("/pki/renewal"),
        }
    }
}

/// What to revoke.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// A leaf, an intermediate CA or a serial issued by the CA.
    pub target: RevokeTarget,
    /// Why.
    pub reason: RevocationReason,
}

/// One PKI operation.
#[derive(Debug)]
pub enum PkiCall {
    /// Every CA.
    ListCas,
    /// One CA.
    ShowCa(CaName),
    /// A CA's certificate, PEM.
    CaPem(CaName),
    /// A CA's CRL, PEM.
    Crl(CaName),
    /// Revokes a certificate the CA issued.
    Revoke(CaName, Revocation),
    /// Leaf certificates (of one CA).
    ListCerts(Option<CaName>),
    /// One leaf with its chain.
    ShowCert(CaName, CertName),
    /// A leaf's private key.
    Key(CaName, CertName),
    /// Issues (or re-issues) a leaf.
    Issue(CaName, CertName, LeafRequest),
    /// What is due for renewal within this many days.
    RenewalDue(u32),
    /// Renews what is due within this many days.
    Renew(u32),
}

impl PkiCall {
    /// What the call may see or change.
    pub fn access(&self) -> VaultAccess {
        match self {
            PkiCall::Key(..) => VaultAccess::Value,
            PkiCall::Revoke(..) | PkiCall::Issue(..) | PkiCall::Renew(_) => VaultAccess::Change,
            _ => VaultAccess::Metadata,
        }
    }

    /// The HTTP method, path and query of the call.
    pub fn http(&self) -> (&'static str, PkiPath, Vec<(&'static str, String)>) {
        let within = |d: &u32| vec![("within-days", d.to_string())];
        match self {
            PkiCall::ListCas => ("GET", PkiPath::Cas, Vec::new()),
            PkiCall::ShowCa(c) => ("GET", PkiPath::Ca(c.clone()), Vec::new()),
            PkiCall::CaPem(c) => ("GET", PkiPath::CaPem(c.clone()), Vec::new()),
            PkiCall::Crl(c) => ("GET", PkiPath::Crl(c.clone()), Vec::new()),
            PkiCall::Revoke(c, r) => {
                let target = match &r.target {
                    RevokeTarget::Cert(n) => ("cert", n.to_string()),
                    RevokeTarget::Ca(n) => ("ca", n.to_string()),
                    RevokeTarget::Serial(s) => ("serial", s.clone()),
                };
                let reason = serde_json::to_value(r.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (
                    "POST",
                    PkiPath::Revoke(c.clone()),
                    vec![target, ("reason", reason)],
                )
            }
            PkiCall::ListCerts(c) => (
                "GET",
                PkiPath::Certs,
                c.iter().map(|c| ("ca", c.to_string())).collect(),
            ),
            PkiCall::ShowCert(c, n) => ("GET", PkiPath::Cert(c.clone(), n.clone()), Vec::new()),
            PkiCall::Key(c, n) => ("GET", PkiPath::Key(c.clone(), n.clone()), Vec::new()),
            PkiCall::Issue(c, n, r) => {
                let mut query: Vec<(&'static str, String)> =
                    r.dns.iter().map(|d| ("dns", d.to_string())).collect();
                query.extend(r.ips.iter().map(|ip| ("ip", ip.to_string())));
                query.push(("days", r.lifetime.get().to_string()));
                if r.profile == LeafProfile::Client {
                    query.push(("client", "1".into()));
                }
                ("POST", PkiPath::Cert(c.clone(), n.clone()), query)
            }
            PkiCall::RenewalDue(d) => ("GET", PkiPath::Renewal, within(d)),
            PkiCall::Renew(d) => ("POST", PkiPath::Renewal, within(d)),
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            PkiCall::ListCas | PkiCall::ListCerts(_) => "list certificates".to_owned(),
            PkiCall::ShowCa(c) | PkiCall::CaPem(c) | PkiCall::Crl(c) => format!("read CA {c}"),
            PkiCall::Revoke(c, _) => format!("revoke a certificate of CA {c}"),
            PkiCall::ShowCert(c, n) => format!("read certificate {c}/{n}"),
            PkiCall::Key(c, n) => format!("read the private key of certificate {c}/{n}"),
            PkiCall::Issue(c, n, _) => format!("issue certificate {c}/{n}"),
            PkiCall::RenewalDue(_) => "list certificates due for renewal".to_owned(),
            PkiCall::Renew(_) => "renew certificates".to_owned(),
        }
    }
}

/// A leaf request from query values (`dns`, `ip`, `days`, `client`).
pub fn leaf_request(
    dns: &[String],
    ips: &[String],
    days: Option<&str>,
    client: bool,
) -> Result<LeafRequest, PkiError> {
    let profile = if client {
        LeafProfile::Client
    } else {
        LeafProfile::Server
    };
    let dns = dns
        .iter()
        .map(|d| d.parse::<DnsName>())
        .collect::<Result<_, _>>()?;
    let ips = ips
        .iter()
        .map(|ip| {
            ip.parse::<IpAddr>().map_err(|_| crate::pki::InvalidInput {
                what: "IP address",
                input: ip.clone(),
                reason: "give an IPv4 or IPv6 address (e.g. 10.0.0.5, fd00::5)".into(),
            })
        })
        .collect::<Result<_, _>>()?;
    let lifetime = match days {
        Some(days) => days.parse::<Lifetime>()?,
        None => {
            use orbitlab_manifests::spec::CertificateRole;
            let role = match profile {
                LeafProfile::Client => CertificateRole::Client,
                LeafProfile::Server => CertificateRole::Server,
            };
            Lifetime::days(role.default_lifetime_days())?
        }
    };
    Ok(LeafRequest {
        profile,
        dns,
        ips,
        lifetime,
    })
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Api {
    /// Runs a PKI call on this API's store (blocking; changes take the
    /// `pki` lock). Privileges are the caller's business.
    pub fn pki(&self, call: PkiCall) -> Result<Value, PkiError> {
        let pki = crate::pki::Pki::new(Vault::new(self.store().clone()));
        Ok(match call {
            PkiCall::ListCas => json(&pki.list_cas()?),
            PkiCall::ShowCa(c) => json(&pki.show_ca(&c)?),
            PkiCall::CaPem(c) => json!({ "ca": c, "pem": pki.ca_cert_pem(&c)? }),
            PkiCall::Crl(c) => json!({ "ca": c, "crl": pki.crl(&c)? }),
            PkiCall::Revoke(c, r) => {
                let entry = pki.revoke(&c, &r.target, r.reason)?;
                json!({ "ca": c, "revoked": entry })
            }
            PkiCall::ListCerts(c) => json(&pki.list_certs(c.as_ref())?),
            PkiCall::ShowCert(c, n) => {
                let details = pki.show_cert(&c, &n)?;
                let mut shown = json(&details);
                shown["chain_pem"] = Value::String(details.chain_pem());
                shown
            }
            PkiCall::Key(c, n) => {
                let key = pki.cert_key(&c, &n)?;
                json!({
                    "ca": c,
                    "name": n,
                    "encoding": "base64",
                    "key": base64::engine::general_purpose::STANDARD.encode(key.expose()),
                })
            }
            PkiCall::Issue(c, n, r) => json(&pki.issue(&c, &n, &r)?),
            PkiCall::RenewalDue(d) => json(&pki.renewal_due(d)?),
            PkiCall::Renew(d) => json(&pki.renew_due(d)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        for text in [
            "/pki/cas",
            "/pki/cas/root",
            "/pki/cas/root/pem",
            "/pki/cas/root/crl",
            "/pki/cas/root/revoke",
            "/pki/certs",
            "/pki/certs/sectors/web",
            "/pki/certs/sectors/web/key",
            "/pki/renewal",
        ] {
            let path = PkiPath::parse(text).unwrap().unwrap();
            assert_eq!(path.to_string(), text);
        }
        assert_eq!(PkiPath::parse("/pkix").unwrap(), None);
        assert!(PkiPath::parse("/pki/certs/sectors").is_err());
        let key = PkiCall::Key("a".parse().unwrap(), "b".parse().unwrap());
        assert_eq!(key.access(), VaultAccess::Value);
    }
}
