//! `/ssh/keys/...` over HTTP: method, path and query become an
//! [`SshCall`] (a passphrase is the raw body of a generate or rotate),
//! whose privileges are known before the body is read.

use axum::http::{Method, StatusCode};

use super::super::params::{bad_request, query_params, refuse_unknown, take};
use super::super::permissions::Operation;
use super::super::reply::Failure;
use super::vault::operation_of;
use orbitlab_engine::api::{ApiError, KeyRequest, SshCall, SshPath};
use orbitlab_engine::ssh::{SshAlgorithm, SshError};
use orbitlab_engine::vault::SecretValue;

/// An SSH-key request before its body (a generate or rotate may carry a
/// passphrase there).
#[derive(Debug)]
pub(super) struct SshIntent(SshCall);

impl SshIntent {
    pub(super) fn parse(method: &Method, path: SshPath, query: &str) -> Result<Self, Failure> {
        let mut params = query_params(query)?;
        let request = |params: &mut Vec<_>| -> Result<KeyRequest, Failure> {
            let algorithm = take(params, "algorithm")?
                .pop()
                .map(|a| a.parse::<SshAlgorithm>())
                .transpose()
                .map_err(|e| bad_request("algorithm", e.to_string()))?;
            let comment = take(params, "comment")?.pop();
            Ok(KeyRequest {
                algorithm,
                comment,
                passphrase: None,
            })
        };
        let call = match (method.clone(), path.clone()) {
            (Method::GET, SshPath::Keys) => SshCall::List,
            (Method::GET, SshPath::Key(n)) => SshCall::Show(n),
            (Method::GET, SshPath::Public(n)) => SshCall::Public(n),
            (Method::GET, SshPath::Private(n)) => SshCall::Private(n),
            (Method::POST, SshPath::Key(n)) => SshCall::Generate(n, request(&mut params)?),
            (Method::POST, SshPath::Rotate(n)) => SshCall::Rotate(n, request(&mut params)?),
            (Method::POST, SshPath::DropPrevious(n)) => SshCall::DropPrevious(n),
            (Method::DELETE, SshPath::Key(n)) => SshCall::Delete(n),
            _ => {
                return Err(Failure::from(ApiError::NotAllowed {
                    method: "this method",
                    path: path.to_string(),
                    hint: "see the API's path tree: GET reads, POST generates or rotates, DELETE deletes".into(),
                }));
            }
        };
        refuse_unknown(
            &params,
            "`algorithm` and `comment` (a passphrase is the body)",
        )?;
        Ok(SshIntent(call))
    }

    pub(super) fn operation(&self) -> Operation {
        operation_of(self.0.access())
    }

    pub(super) fn attempted(&self) -> String {
        self.0.describe()
    }

    pub(super) fn takes_body(&self) -> bool {
        matches!(self.0, SshCall::Generate(..) | SshCall::Rotate(..))
    }

    /// The call; a non-empty body is the passphrase (raw bytes).
    pub(super) fn with_body(self, body: &[u8]) -> Result<SshCall, Failure> {
        let mut call = self.0;
        if let SshCall::Generate(_, r) | SshCall::Rotate(_, r) = &mut call
            && !body.is_empty()
        {
            r.passphrase = Some(
                SecretValue::new(body.to_vec())
                    .map_err(|e| bad_request("passphrase", e.to_string()))?,
            );
        }
        Ok(call)
    }
}

impl From<SshError> for Failure {
    fn from(e: SshError) -> Self {
        match e {
            SshError::Vault(v) => Failure::from(v),
            other => {
                let status = match &other {
                    SshError::Input(_) => StatusCode::BAD_REQUEST,
                    SshError::NotFound { .. } => StatusCode::NOT_FOUND,
                    SshError::Exists { .. }
                    | SshError::PreviousKept { .. }
                    | SshError::NoPrevious { .. } => StatusCode::CONFLICT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                Failure::new(status, other.to_string())
            }
        }
    }
}
