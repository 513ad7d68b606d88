//! `/pki/...` over HTTP: method, path and query become a [`PkiCall`],
//! whose privileges are checked before anything runs. Only signing a CSR
//! has a body (the CSR, PEM); its privileges too are known before the body
//! is read.

use axum::http::{Method, StatusCode};

use super::super::params::{bad_request, query_params, refuse_unknown, take, take_flag};
use super::super::permissions::Operation;
use super::super::reply::Failure;
use super::vault::operation_of;
use orbitlab_engine::api::{
    ApiError, CsrPem, PkiCall, PkiPath, PlanError, Revocation, ca_request, leaf_request,
};
use orbitlab_engine::pki::{CaName, CertName, LeafRequest, PkiError, RevokeTarget};

/// A PKI request before its body: a whole call, or a CSR signing whose
/// CSR is the body.
#[derive(Debug)]
pub(super) enum PkiIntent {
    Ready(PkiCall),
    SignCsr(CaName, CertName, LeafRequest),
}

impl PkiIntent {
    /// The privileges: a CSR signing is a change, as an issue is.
    pub(super) fn operation(&self) -> Operation {
        match self {
            PkiIntent::Ready(call) => operation(call),
            PkiIntent::SignCsr(..) => operation_of(orbitlab_engine::api::VaultAccess::Change),
        }
    }

    pub(super) fn attempted(&self) -> String {
        match self {
            PkiIntent::Ready(call) => call.describe(),
            PkiIntent::SignCsr(c, n, _) => format!("sign a CSR as certificate {c}/{n}"),
        }
    }

    pub(super) fn takes_body(&self) -> bool {
        matches!(self, PkiIntent::SignCsr(..))
    }

    /// The call; the CSR of a signing is `body`, PEM text
    /// (`application/x-pem-file`, `application/pkcs10`, `text/plain` or
    /// no type).
    pub(super) fn with_body(
        self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<PkiCall, Failure> {
        match self {
            PkiIntent::Ready(call) => Ok(call),
            PkiIntent::SignCsr(c, n, r) => {
                let mime = crate::server::params::media_type(content_type);
                if !matches!(
                    mime.as_str(),
                    "" | "application/x-pem-file" | "application/pkcs10" | "text/plain"
                ) {
                    return Err(Failure::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "send the certificate signing request (PEM) as the body itself, as application/x-pem-file",
                    ));
                }
                if body.is_empty() {
                    return Err(bad_request(
                        "csr",
                        "send the certificate signing request (PEM) as the body",
                    ));
                }
                let csr =
                    CsrPem::new(body.to_vec()).map_err(|e| bad_request("csr", e.to_string()))?;
                Ok(PkiCall::SignCsr(c, n, r, csr))
            }
        }
    }
}

/// Parses a PKI request's method, path and query.
pub(super) fn parse(method: &Method, path: PkiPath, query: &str) -> Result<PkiIntent, Failure> {
    let mut params = query_params(query)?;
    let one = |params: &mut Vec<_>, name: &str| -> Result<Option<String>, Failure> {
        Ok(take(params, name)?.pop())
    };
    let within = |params: &mut Vec<_>| -> Result<u32, Failure> {
        match take(params, "within-days")?.pop() {
            None => Ok(30),
            Some(d) => d
                .parse()
                .map_err(|_| bad_request("within-days", "give a whole number of days")),
        }
    };
    let invalid = |field: &str, e: &dyn std::fmt::Display| bad_request(field, e.to_string());
    let leaf = |params: &mut Vec<_>| -> Result<LeafRequest, Failure> {
        let dns = take(params, "dns")?;
        let ips = take(params, "ip")?;
        let days = take(params, "days")?.pop();
        let client = take_flag(params, "client")?;
        leaf_request(&dns, &ips, days.as_deref(), client).map_err(|e| invalid("request", &e))
    };
    let call = match (method.clone(), path.clone()) {
        (Method::GET, PkiPath::Cas) => PkiCall::ListCas,
        (Method::GET, PkiPath::Ca(c)) => PkiCall::ShowCa(c),
        (Method::POST, PkiPath::Ca(c)) => {
            let parent = one(&mut params, "parent")?
                .map(|p| p.parse::<CaName>())
                .transpose()
                .map_err(|e| invalid("parent", &e))?;
            let common_name = one(&mut params, "common-name")?;
            let days = one(&mut params, "days")?;
            let permitted_dns: Vec<String> = take(&mut params, "permitted-dns")?
                .iter()
                .flat_map(|d| d.split(','))
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect();
            let path_len = one(&mut params, "path-len")?
                .map(|n| n.parse::<u8>())
                .transpose()
                .map_err(|_| bad_request("path-len", "give a whole number from 0 to 255"))?;
            let new = ca_request(
                parent,
                common_name,
                days.as_deref(),
                &permitted_dns,
                path_len,
            )
            .map_err(|e| invalid("request", &e))?;
            PkiCall::CreateCa(c, new)
        }
        (Method::GET, PkiPath::CaPem(c)) => PkiCall::CaPem(c),
        (Method::GET, PkiPath::Crl(c)) => PkiCall::Crl(c),
        (Method::POST, PkiPath::Revoke(c)) => {
            let target = match (
                one(&mut params, "cert")?,
                one(&mut params, "ca")?,
                one(&mut params, "serial")?,
            ) {
                (Some(n), None, None) => {
                    RevokeTarget::Cert(n.parse().map_err(|e| invalid("cert", &e))?)
                }
                (None, Some(n), None) => {
                    RevokeTarget::Ca(n.parse().map_err(|e| invalid("ca", &e))?)
                }
                (None, None, Some(s)) => RevokeTarget::Serial(s),
                _ => {
                    return Err(bad_request(
                        "cert",
                        "say what to revoke with exactly one of cert, ca or serial",
                    ));
                }
            };
            let reason = one(&mut params, "reason")?
                .unwrap_or_else(|| "unspecified".into())
                .parse()
                .map_err(|e| invalid("reason", &e))?;
            PkiCall::Revoke(c, Revocation { target, reason })
        }
        (Method::GET, PkiPath::Certs) => PkiCall::ListCerts(
            one(&mut params, "ca")?
                .map(|c| c.parse())
                .transpose()
                .map_err(|e| invalid("ca", &e))?,
        ),
        (Method::GET, PkiPath::Cert(c, n)) => PkiCall::ShowCert(c, n),
        (Method::GET, PkiPath::Key(c, n)) => PkiCall::Key(c, n),
        (Method::POST, PkiPath::Cert(c, n)) => PkiCall::Issue(c, n, leaf(&mut params)?),
        (Method::POST, PkiPath::Csr(c, n)) => {
            let request = leaf(&mut params)?;
            refuse_unknown(
                &params,
                "`dns`, `ip`, `days` and `client` (the CSR is the body)",
            )?;
            return Ok(PkiIntent::SignCsr(c, n, request));
        }
        (Method::GET, PkiPath::Renewal) => PkiCall::RenewalDue(within(&mut params)?),
        (Method::POST, PkiPath::Renewal) => PkiCall::Renew(within(&mut params)?),
        _ => {
            return Err(Failure::from(ApiError::NotAllowed {
                method: "this method",
                path: path.to_string(),
                hint: "see the API's path tree: GET reads; POST creates a CA, issues, signs a CSR, revokes or renews".into(),
            }));
        }
    };
    refuse_unknown(&params, "the parameters listed in the API's path tree")?;
    Ok(PkiIntent::Ready(call))
}

/// The privileges a PKI call needs.
pub(super) fn operation(call: &PkiCall) -> Operation {
    operation_of(call.access())
}

impl From<PkiError> for Failure {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::Vault(v) => Failure::from(v),
            other => {
                let status = match &other {
                    PkiError::Input(_) | PkiError::BadPem { .. } | PkiError::BadCsr { .. } => {
                        StatusCode::BAD_REQUEST
                    }
                    PkiError::CaNotFound { .. }
                    | PkiError::CertNotFound { .. }
                    | PkiError::UnknownSerial { .. } => StatusCode::NOT_FOUND,
                    PkiError::CaExists { .. }
                    | PkiError::CertExists { .. }
                    | PkiError::CannotSignCa { .. }
                    | PkiError::CaExpired { .. }
                    | PkiError::CaNotYetValid { .. }
                    | PkiError::CaRevoked { .. }
                    | PkiError::OutlivesIssuer { .. }
                    | PkiError::OutsideConstraints { .. }
                    | PkiError::NoSubjectAltName { .. } => StatusCode::CONFLICT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                Failure::new(status, other.to_string())
            }
        }
    }
}

impl From<PlanError> for Failure {
    fn from(e: PlanError) -> Self {
        let status = match &e {
            PlanError::Connection(_) => StatusCode::CONFLICT,
            PlanError::Pve(_) | PlanError::Reconcile(_) => StatusCode::BAD_GATEWAY,
        };
        Failure::new(status, e.to_string())
    }
}
