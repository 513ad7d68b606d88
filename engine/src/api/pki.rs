//! The certificate authority in the API tree. The `orbitlab pki` commands
//! and the HTTPS server both run a [`PkiCall`] through [`Api::pki`]:
//!
//! ```text
//! GET  /pki/cas                           CAs                              metadata
//! GET  /pki/cas/{ca}                      one CA                           metadata
//! POST /pki/cas/{ca}?[parent=P&]days=&common-name=&permitted-dns=&path-len=
//!                                         create a root (or an
//!                                         intermediate signed by P)        change
//! GET  /pki/cas/{ca}/pem                  its certificate (PEM)            metadata
//! GET  /pki/cas/{ca}/crl                  its CRL (PEM)                    metadata
//! POST /pki/cas/{ca}/revoke?cert=N|ca=N|serial=HEX[&reason=R]              change
//! GET  /pki/certs[?ca=CA]                 leaf certificates                metadata
//! GET  /pki/certs/{ca}/{name}             one, with its chain              metadata
//! GET  /pki/certs/{ca}/{name}/key         its private key                  value
//! POST /pki/certs/{ca}/{name}?dns=&ip=&days=&client=1    issue             change
//! POST /pki/certs/{ca}/{name}/csr?dns=&ip=&days=&client=1
//!                                         sign the CSR in the body (PEM)   change
//! GET  /pki/renewal[?within-days=N]       what is due for renewal          metadata
//! POST /pki/renewal[?within-days=N]       renew what is due                change
//! ```
//!
//! Private keys never leave the node through a change: a new CA's key is
//! made and kept in the vault (the answer holds its certificate and the
//! key's vault path), and signing a CSR answers only the certificate (the
//! requester keeps its key). Only `GET /pki/certs/{ca}/{name}/key` answers
//! a key, and it needs the privileges of a secret value.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use serde_json::{Value, json};

use super::{Api, PathError, VaultAccess};
use crate::audit::{Action, Audited, Detail};
use crate::pki::{
    CaName, CaOptions, CertName, DnsName, LeafProfile, LeafRequest, Lifetime, PkiError,
    RevocationReason, RevokeTarget,
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
    /// `/pki/certs/{ca}/{name}/csr`.
    Csr(CaName, CertName),
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
            ["certs", c, n, "csr"] => PkiPath::Csr(ca(c)?, cert(n)?),
            ["renewal"] => PkiPath::Renewal,
            _ => {
                return Err(error(
                    "below /pki: cas[/{ca}[/pem|/crl|/revoke]], certs[/{ca}/{name}[/key|/csr]], renewal"
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
            PkiPath::Csr(c, n) => write!(f, "/pki/certs/{c}/{n}/csr"),
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

/// A CA to create: a root, or an intermediate signed by `parent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCa {
    /// The CA that signs it; `None` for a self-signed root.
    pub parent: Option<CaName>,
    /// Its common name, lifetime, name constraints and path length.
    pub options: CaOptions,
}

/// Largest certificate signing request accepted (a PEM CSR is a few
/// hundred bytes to a few KiB).
pub const MAX_CSR_BYTES: usize = 64 * 1024;

/// A PKCS#10 certificate signing request, PEM text, at most
/// [`MAX_CSR_BYTES`]. Only its size and encoding are checked here; its
/// signature and contents are checked when it is signed. A CSR holds no
/// secret (the requester keeps the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrPem(String);

impl CsrPem {
    /// `bytes` as a CSR, when they are UTF-8 text of at most
    /// [`MAX_CSR_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<CsrPem, PkiError> {
        if bytes.len() > MAX_CSR_BYTES {
            return Err(PkiError::BadCsr {
                reason: format!(
                    "it is larger than {MAX_CSR_BYTES} bytes, which no certificate signing request is (a PEM CSR is a few KiB at most)"
                ),
            });
        }
        String::from_utf8(bytes).map(CsrPem).map_err(|_| PkiError::BadCsr {
            reason: "it is not text: give a PEM-encoded PKCS#10 request (`-----BEGIN CERTIFICATE REQUEST-----`)".into(),
        })
    }

    /// The PEM text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One PKI operation.
#[derive(Debug)]
pub enum PkiCall {
    /// Every CA.
    ListCas,
    /// One CA.
    ShowCa(CaName),
    /// Creates a CA; its key is made and kept in the vault.
    CreateCa(CaName, NewCa),
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
    /// Issues a leaf for the key of a CSR; answers only the certificate.
    SignCsr(CaName, CertName, LeafRequest, CsrPem),
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
            PkiCall::CreateCa(..)
            | PkiCall::Revoke(..)
            | PkiCall::Issue(..)
            | PkiCall::SignCsr(..)
            | PkiCall::Renew(_) => VaultAccess::Change,
            _ => VaultAccess::Metadata,
        }
    }

    /// The HTTP method, path and query of the call (its body, if any, is
    /// [`PkiCall::body`]).
    pub fn http(&self) -> (&'static str, PkiPath, Vec<(&'static str, String)>) {
        let within = |d: &u32| vec![("within-days", d.to_string())];
        match self {
            PkiCall::ListCas => ("GET", PkiPath::Cas, Vec::new()),
            PkiCall::ShowCa(c) => ("GET", PkiPath::Ca(c.clone()), Vec::new()),
            PkiCall::CreateCa(c, new) => ("POST", PkiPath::Ca(c.clone()), ca_query(new)),
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
            PkiCall::Issue(c, n, r) => ("POST", PkiPath::Cert(c.clone(), n.clone()), leaf_query(r)),
            PkiCall::SignCsr(c, n, r, _) => {
                ("POST", PkiPath::Csr(c.clone(), n.clone()), leaf_query(r))
            }
            PkiCall::RenewalDue(d) => ("GET", PkiPath::Renewal, within(d)),
            PkiCall::Renew(d) => ("POST", PkiPath::Renewal, within(d)),
        }
    }

    /// The request body: the CSR of a [`PkiCall::SignCsr`]; no other call
    /// has one.
    pub fn body(&self) -> Option<&[u8]> {
        match self {
            PkiCall::SignCsr(.., csr) => Some(csr.as_str().as_bytes()),
            _ => None,
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            PkiCall::CreateCa(c, NewCa { parent: None, .. }) => format!("create root CA {c}"),
            PkiCall::CreateCa(
                c,
                NewCa {
                    parent: Some(p), ..
                },
            ) => {
                format!("create intermediate CA {c} signed by {p}")
            }
            PkiCall::ListCas | PkiCall::ListCerts(_) => "list certificates".to_owned(),
            PkiCall::ShowCa(c) | PkiCall::CaPem(c) | PkiCall::Crl(c) => format!("read CA {c}"),
            PkiCall::Revoke(c, _) => format!("revoke a certificate of CA {c}"),
            PkiCall::ShowCert(c, n) => format!("read certificate {c}/{n}"),
            PkiCall::Key(c, n) => format!("read the private key of certificate {c}/{n}"),
            PkiCall::Issue(c, n, _) => format!("issue certificate {c}/{n}"),
            PkiCall::SignCsr(c, n, ..) => format!("sign a CSR as certificate {c}/{n}"),
            PkiCall::RenewalDue(_) => "list certificates due for renewal".to_owned(),
            PkiCall::Renew(_) => "renew certificates".to_owned(),
        }
    }
}

/// The query of an issue or CSR signing.
fn leaf_query(r: &LeafRequest) -> Vec<(&'static str, String)> {
    let mut query: Vec<(&'static str, String)> =
        r.dns.iter().map(|d| ("dns", d.to_string())).collect();
    query.extend(r.ips.iter().map(|ip| ("ip", ip.to_string())));
    query.push(("days", r.lifetime.get().to_string()));
    if r.profile == LeafProfile::Client {
        query.push(("client", "1".into()));
    }
    query
}

/// The query of a CA creation (what [`ca_request`] reads back).
fn ca_query(new: &NewCa) -> Vec<(&'static str, String)> {
    let o = &new.options;
    let mut query: Vec<(&'static str, String)> = new
        .parent
        .iter()
        .map(|p| ("parent", p.to_string()))
        .collect();
    query.extend(o.common_name.iter().map(|cn| ("common-name", cn.clone())));
    query.push(("days", o.lifetime.get().to_string()));
    query.extend(
        o.permitted_dns
            .iter()
            .map(|d| ("permitted-dns", d.to_string())),
    );
    query.extend(o.path_len.iter().map(|n| ("path-len", n.to_string())));
    query
}

/// A CA to create from query values or command-line options: signed by
/// `parent` (an intermediate) or self-signed (a root); `days` defaults to
/// the lifetime of that role.
pub fn ca_request(
    parent: Option<CaName>,
    common_name: Option<String>,
    days: Option<&str>,
    permitted_dns: &[String],
    path_len: Option<u8>,
) -> Result<NewCa, PkiError> {
    use orbitlab_manifests::spec::CertificateRole;
    let role = match parent {
        Some(_) => CertificateRole::IntermediateCa,
        None => CertificateRole::RootCa,
    };
    let lifetime = match days {
        Some(days) => days.parse::<Lifetime>()?,
        None => Lifetime::days(role.default_lifetime_days())?,
    };
    let mut options = CaOptions::lifetime(lifetime);
    options.common_name = common_name;
    options.permitted_dns = permitted_dns
        .iter()
        .map(|d| d.parse::<DnsName>())
        .collect::<Result<_, _>>()?;
    options.path_len = path_len;
    Ok(NewCa { parent, options })
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

impl PkiCall {
    /// How the audit log records the call: a private key read and every
    /// change, with the call's path and query (a CSR's body is not kept).
    pub(crate) fn audited(&self) -> Option<(Audited, Action, String, Detail)> {
        let action = match self {
            PkiCall::CreateCa(..) => Action::PkiCaCreate,
            PkiCall::Revoke(..) => Action::PkiRevoke,
            PkiCall::Issue(..) => Action::PkiCertIssue,
            PkiCall::SignCsr(..) => Action::PkiCsrSign,
            PkiCall::Renew(_) => Action::PkiRenew,
            PkiCall::Key(..) => Action::PkiKeyExport,
            PkiCall::ListCas
            | PkiCall::ShowCa(_)
            | PkiCall::CaPem(_)
            | PkiCall::Crl(_)
            | PkiCall::ListCerts(_)
            | PkiCall::ShowCert(..)
            | PkiCall::RenewalDue(_) => return None,
        };
        let (_, path, query) = self.http();
        Some(super::audit_of(self.access(), action, path, query))
    }
}

impl Api {
    /// Runs a PKI call on this API's store (blocking; changes take the
    /// `pki` lock). Privileges are the caller's business.
    pub fn pki(&self, call: PkiCall) -> Result<Value, PkiError> {
        self.audited(call.audited(), || self.pki_unrecorded(call))
    }

    fn pki_unrecorded(&self, call: PkiCall) -> Result<Value, PkiError> {
        let pki = crate::pki::Pki::new(Vault::new(self.store().clone()));
        Ok(match call {
            PkiCall::ListCas => json(&pki.list_cas()?),
            PkiCall::ShowCa(c) => json(&pki.show_ca(&c)?),
            PkiCall::CreateCa(c, NewCa { parent, options }) => json(&match parent {
                None => pki.create_root(&c, &options)?,
                Some(p) => pki.create_intermediate(&c, &p, &options)?,
            }),
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
            PkiCall::SignCsr(c, n, r, csr) => json(&pki.sign_csr(&c, &n, csr.as_str(), &r)?),
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
            "/pki/certs/sectors/web/csr",
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
