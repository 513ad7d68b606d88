//! `/vault/...` over HTTP: method, path and query become a [`VaultCall`]
//! (the value of a `PUT /vault/values/{path}` is the raw body), whose
//! privileges are known before the body is read; vault errors become
//! answers without a value in them (a [`VaultError`] never holds one).

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use orbitlab_manifests::Kind;

use super::super::params::{bad_request, query_params, refuse_unknown, take};
use super::super::permissions::Operation;
use super::super::reply::Failure;
use orbitlab_engine::api::{ApiError, VaultAccess, VaultCall, VaultPath};
use orbitlab_engine::store::StoreError;
use orbitlab_engine::vault::{SecretPath, SecretValue, VaultError};

/// A vault request before its body: a whole call, or the path of a value
/// still to be read from the body.
#[derive(Debug)]
pub(super) enum VaultIntent {
    Ready(VaultCall),
    SetValue(SecretPath),
    /// `POST /vault/seal`: the passphrase is the body.
    Seal {
        memory_mib: u32,
    },
    /// `POST /vault/unseal`: the passphrase is the body.
    Unseal,
}

impl VaultIntent {
    pub(super) fn parse(method: &Method, path: VaultPath, query: &str) -> Result<Self, Failure> {
        let mut params = query_params(query)?;
        let mut one =
            |name: &str| -> Result<Option<String>, Failure> { Ok(take(&mut params, name)?.pop()) };
        let not_allowed = |hint: &str| {
            Failure::from(ApiError::NotAllowed {
                method: method_name(method),
                path: path.to_string(),
                hint: hint.to_owned(),
            })
        };
        let call = match (method.clone(), &path) {
            (Method::GET, VaultPath::Status) => VaultCall::Status,
            (Method::GET, VaultPath::Secrets) => VaultCall::List {
                prefix: one("prefix")?
                    .map(|p| p.parse::<SecretPath>())
                    .transpose()
                    .map_err(|e| bad_request("prefix", e.to_string()))?,
            },
            (Method::GET, VaultPath::Secret(p)) => VaultCall::Versions(p.clone()),
            (Method::DELETE, VaultPath::Secret(p)) => VaultCall::Delete(p.clone()),
            (Method::GET, VaultPath::Value(p)) => VaultCall::Value {
                path: p.clone(),
                version: one("version")?.map(|v| v.parse()).transpose().map_err(
                    |e: orbitlab_engine::vault::InvalidName| bad_request("version", e.to_string()),
                )?,
            },
            (Method::PUT, VaultPath::Value(p)) => {
                refuse_unknown(&params, "no parameters: the value is the body")?;
                return Ok(VaultIntent::SetValue(p.clone()));
            }
            (Method::POST, VaultPath::Rollback(p)) => VaultCall::Rollback {
                path: p.clone(),
                to: one("to")?
                    .ok_or_else(|| bad_request("to", "give the version to copy, e.g. to=2"))?
                    .parse()
                    .map_err(|e: orbitlab_engine::vault::InvalidName| {
                        bad_request("to", e.to_string())
                    })?,
            },
            (Method::POST, VaultPath::Prune(p)) => VaultCall::Prune {
                path: p.clone(),
                keep: one("keep")?.and_then(|k| k.parse().ok()).ok_or_else(|| {
                    bad_request(
                        "keep",
                        "give how many versions to keep (at least 1), e.g. keep=5",
                    )
                })?,
            },
            (Method::POST, VaultPath::RotateKey) => VaultCall::RotateKey,
            (Method::GET, VaultPath::Readers(p)) => VaultCall::Readers(p.clone()),
            (Method::POST, VaultPath::Seal) => {
                let memory_mib = match one("memory-mib")? {
                    Some(m) => m.parse().map_err(|_| {
                        bad_request(
                            "memory-mib",
                            "give the Argon2id memory cost in MiB, e.g. 64",
                        )
                    })?,
                    None => orbitlab_engine::vault::seal::DEFAULT_MEMORY_MIB,
                };
                refuse_unknown(&params, "memory-mib only: the passphrase is the body")?;
                return Ok(VaultIntent::Seal { memory_mib });
            }
            (Method::POST, VaultPath::Unseal) => {
                refuse_unknown(&params, "no parameters: the passphrase is the body")?;
                return Ok(VaultIntent::Unseal);
            }
            (_, VaultPath::Status | VaultPath::Secrets | VaultPath::Readers(_)) => {
                return Err(not_allowed("use GET"));
            }
            (_, VaultPath::Secret(_)) => return Err(not_allowed("use GET or DELETE")),
            (_, VaultPath::Value(_)) => {
                return Err(not_allowed("use GET to read the value, PUT to set it"));
            }
            _ => return Err(not_allowed("use POST")),
        };
        refuse_unknown(&params, "the parameters listed in the API's path tree")?;
        Ok(VaultIntent::Ready(call))
    }

    pub(super) fn operation(&self) -> Operation {
        match self {
            VaultIntent::Ready(call) => operation_of(call.access()),
            VaultIntent::SetValue(_) | VaultIntent::Seal { .. } | VaultIntent::Unseal => {
                operation_of(VaultAccess::Change)
            }
        }
    }

    pub(super) fn attempted(&self) -> String {
        match self {
            VaultIntent::Ready(call) => call.describe(),
            VaultIntent::SetValue(p) => format!("set secret {p}"),
            VaultIntent::Seal { .. } => "seal the vault".into(),
            VaultIntent::Unseal => "unseal the vault".into(),
        }
    }

    pub(super) fn takes_body(&self) -> bool {
        !matches!(self, VaultIntent::Ready(_))
    }

    /// The call; a value comes from `body`, which must be raw bytes
    /// (`application/octet-stream`, `text/plain` or no type).
    pub(super) fn with_body(
        self,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<VaultCall, Failure> {
        if let VaultIntent::Ready(call) = self {
            return Ok(call);
        }
        let mime = crate::server::params::media_type(content_type);
        if !matches!(
            mime.as_str(),
            "" | "application/octet-stream" | "text/plain"
        ) {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the secret value or passphrase as the body itself, as application/octet-stream",
            ));
        }
        let field = if matches!(self, VaultIntent::SetValue(_)) {
            "value"
        } else {
            "passphrase"
        };
        let value =
            SecretValue::new(body.to_vec()).map_err(|e| bad_request(field, e.to_string()))?;
        Ok(match self {
            VaultIntent::Ready(call) => call,
            VaultIntent::SetValue(path) => VaultCall::Set { path, value },
            VaultIntent::Seal { memory_mib } => VaultCall::Seal {
                passphrase: value,
                memory_mib,
            },
            VaultIntent::Unseal => VaultCall::Unseal { passphrase: value },
        })
    }

    /// The call of a request answered without reading a body.
    pub(super) fn without_body(self) -> Result<VaultCall, Failure> {
        self.with_body(None, b"")
    }
}

/// The privileges class of a vault access (see the permissions table).
pub(super) fn operation_of(access: VaultAccess) -> Operation {
    match access {
        VaultAccess::Metadata => Operation::Read,
        VaultAccess::Change => Operation::Write(BTreeSet::from([Kind::Secret])),
        VaultAccess::Value => Operation::Reveal,
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "this method",
    }
}

impl From<VaultError> for Failure {
    fn from(e: VaultError) -> Self {
        let status = match &e {
            VaultError::Name(_) | VaultError::Value(_) => StatusCode::BAD_REQUEST,
            VaultError::NotFound { .. } | VaultError::VersionNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            VaultError::WrongPassphrase => StatusCode::FORBIDDEN,
            VaultError::NotSealed { .. } => StatusCode::CONFLICT,
            VaultError::Sealed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            VaultError::LockLost { .. }
            | VaultError::Store(StoreError::ReadOnly { .. } | StoreError::LockTimeout { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(method: Method, path: &str, query: &str) -> Result<VaultIntent, Failure> {
        VaultIntent::parse(&method, path.parse().unwrap(), query)
    }

    #[test]
    fn privileges_follow_what_is_shown() {
        let read = intent(Method::GET, "/vault/secrets/app/db", "").unwrap();
        assert_eq!(read.operation(), Operation::Read);
        let value = intent(Method::GET, "/vault/values/app/db", "version=2").unwrap();
        assert_eq!(value.operation(), Operation::Reveal);
        let set = intent(Method::PUT, "/vault/values/app/db", "").unwrap();
        assert!(set.takes_body());
        assert_eq!(set.operation(), Operation::write(Kind::Secret));
        let rotate = intent(Method::POST, "/vault/rotate-key", "").unwrap();
        assert_eq!(rotate.operation(), Operation::write(Kind::Secret));
    }

    #[test]
    fn refusals_name_the_field() {
        let err = intent(Method::POST, "/vault/rollback/a", "to=zero").unwrap_err();
        assert!(err.errors.contains_key("to"), "{err:?}");
        let err = intent(Method::POST, "/vault/prune/a", "").unwrap_err();
        assert!(err.errors.contains_key("keep"), "{err:?}");
        let err = intent(Method::PUT, "/vault/values/a", "value=x").unwrap_err();
        assert!(err.errors.contains_key("value"), "{err:?}");
        let err = intent(Method::POST, "/vault/secrets/a", "").unwrap_err();
        assert_eq!(err.status, StatusCode::METHOD_NOT_ALLOWED);
        let empty = intent(Method::PUT, "/vault/values/a", "").unwrap();
        let err = empty.with_body(None, b"").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let json = intent(Method::PUT, "/vault/values/a", "").unwrap();
        let err = json.with_body(Some("application/json"), b"{}").unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
