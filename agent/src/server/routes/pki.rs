//! `/pki/...` over HTTP: method, path and query become a [`PkiCall`] (no
//! PKI request has a body), whose privileges are checked before anything
//! runs.

use axum::http::{Method, StatusCode};

use super::super::params::{bad_request, query_params, refuse_unknown, take, take_flag};
use super::super::permissions::Operation;
use super::super::reply::Failure;
use super::vault::operation_of;
use orbitlab_engine::api::{ApiError, PkiCall, PkiPath, PlanError, Revocation, leaf_request};
use orbitlab_engine::pki::{PkiError, RevokeTarget};

/// Parses a PKI request.
pub(super) fn parse(method: &Method, path: PkiPath, query: &str) -> Result<PkiCall, Failure> {
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
    let call = match (method.clone(), path.clone()) {
        (Method::GET, PkiPath::Cas) => PkiCall::ListCas,
        (Method::GET, PkiPath::Ca(c)) => PkiCall::ShowCa(c),
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
        (Method::POST, PkiPath::Cert(c, n)) => {
            let dns = take(&mut params, "dns")?;
            let ips = take(&mut params, "ip")?;
            let days = one(&mut params, "days")?;
            let client = take_flag(&mut params, "client")?;
            let request = leaf_request(&dns, &ips, days.as_deref(), client)
                .map_err(|e| invalid("request", &e))?;
            PkiCall::Issue(c, n, request)
        }
        (Method::GET, PkiPath::Renewal) => PkiCall::RenewalDue(within(&mut params)?),
        (Method::POST, PkiPath::Renewal) => PkiCall::Renew(within(&mut params)?),
        _ => {
            return Err(Failure::from(ApiError::NotAllowed {
                method: "this method",
                path: path.to_string(),
                hint: "see the API's path tree: GET reads; POST issues, revokes or renews".into(),
            }));
        }
    };
    refuse_unknown(&params, "the parameters listed in the API's path tree")?;
    Ok(call)
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
