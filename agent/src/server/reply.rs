//! Answers in Proxmox's shape: `{"data": ...}` on success; on failure an
//! HTTP 4xx/5xx whose status line carries the message (as pveproxy does)
//! and a body `{"data": null, "message": "...", "errors": {field: reason}}`.
//! [`ApiError`] texts are kept whole: they name the file, field and reason.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::authenticator::AuthError;
use super::permissions::Denied;
use orbitlab_engine::api::ApiError;
use orbitlab_engine::store::{ObjectError, StoreError};

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) errors: BTreeMap<String, String>,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            errors: BTreeMap::new(),
        }
    }

    /// The same failure naming `field`.
    pub(crate) fn field(mut self, field: &str, reason: impl Into<String>) -> Self {
        self.errors.insert(field.to_owned(), reason.into());
        self
    }

    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Refused(m) => Failure::unauthenticated(m),
            AuthError::Unavailable(m) => Failure::new(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

impl From<Denied> for Failure {
    fn from(d: Denied) -> Self {
        Failure::new(StatusCode::FORBIDDEN, d.to_string())
    }
}

fn store_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::ReadOnly { .. } | StoreError::LockTimeout { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        StoreError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        let message = e.to_string();
        let mut failure = Failure::new(StatusCode::BAD_REQUEST, message);
        match &e {
            ApiError::Path(p) => {
                failure.status = StatusCode::NOT_FOUND;
                failure = failure.field("path", p.reason.clone());
            }
            ApiError::NotFound { .. } => failure.status = StatusCode::NOT_FOUND,
            ApiError::Invalid(errors) | ApiError::Objects(ObjectError::Manifest(errors)) => {
                if matches!(e, ApiError::Objects(_)) {
                    // A stored file is broken: not the caller's fault.
                    failure.status = StatusCode::INTERNAL_SERVER_ERROR;
                }
                for error in errors {
                    let field = if error.field.is_empty() {
                        "manifest"
                    } else {
                        &error.field
                    };
                    failure
                        .errors
                        .entry(field.to_owned())
                        .and_modify(|r| {
                            r.push_str("; ");
                            r.push_str(&error.reason);
                        })
                        .or_insert_with(|| error.reason.clone());
                }
            }
            ApiError::Conflict { .. } => failure.status = StatusCode::CONFLICT,
            ApiError::NotAllowed { .. } => failure.status = StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadProperty { reason, .. } => {
                failure = failure.field("properties", reason.clone());
            }
            ApiError::Store(s) | ApiError::Objects(ObjectError::Store(s)) => {
                failure.status = store_status(s);
            }
            ApiError::Objects(ObjectError::Status { .. }) => {
                failure.status = StatusCode::INTERNAL_SERVER_ERROR;
            }
            // This agent is older than the one that wrote the status.
            ApiError::Objects(ObjectError::NewerStatusFormat { .. }) => {
                failure.status = StatusCode::SERVICE_UNAVAILABLE;
            }
        }
        failure
    }
}

/// The first line of `message`, cleaned for a status line: ASCII only
/// (strict HTTP/1.1 clients such as the `orbitlab` command refuse other
/// bytes there; the full message is in the body).
fn reason_phrase(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| match c {
            '→' => '>',
            c if c.is_control() => ' ',
            c if !c.is_ascii() => '?',
            c => c,
        })
        .take(200)
        .collect()
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({
            "data": null,
            "message": self.message,
            "errors": self.errors,
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason_phrase(&self.message)) {
            response.extensions_mut().insert(reason);
        }
        response
    }
}

/// `{"data": data}` with 200.
pub(crate) fn ok(data: Value) -> Response {
    Json(json!({ "data": data })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbitlab_manifests::{ManifestError, ManifestErrors};

    #[test]
    fn manifest_refusals_name_their_fields() {
        let e = ApiError::Invalid(ManifestErrors(vec![
            ManifestError::new("spec.cidr", "is not a network").at("web.yaml", Some(4)),
            ManifestError::new("spec.cidr", "overlaps the Backplane"),
        ]));
        let f = Failure::from(e);
        assert_eq!(f.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            f.errors["spec.cidr"],
            "is not a network; overlaps the Backplane"
        );
        assert!(
            f.message
                .contains("web.yaml:4: spec.cidr: is not a network")
        );
        assert_eq!(reason_phrase("a\u{7}b\nsecond"), "a b");
        assert_eq!(
            reason_phrase("Datacenter → Permissions é"),
            "Datacenter > Permissions ?"
        );
    }
}
