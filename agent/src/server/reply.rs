//! Answers in Proxmox's shapes, chosen by the path's format ([`Format`]):
//!
//! - `json` (`/api2/json/...`): `{"data": ...}` on success; on failure an
//!   HTTP 4xx/5xx whose status line carries the message (as pveproxy
//!   does) and a body `{"data": null, "message": "...", "errors": {field:
//!   reason}}`;
//! - `extjs` (`/api2/extjs/...`), what Proxmox's UI helpers
//!   (`Proxmox.Utils.API2Request`, `Proxmox.window.Edit`) read, as
//!   pveproxy's formatter (`PVE::APIServer::Formatter::Standard`) writes
//!   it: always HTTP 200 `OK`, with `{"success": 1, "data": ...}` on
//!   success and `{"success": 0, "data": null, "message": "...",
//!   "status": CODE}` on failure, plus `"errors": {field: reason}` only
//!   when there are any. `success` and `status` are numbers, as Perl
//!   writes them. Failures of the credential check keep their HTTP status
//!   (401; 503 or 500 when it could not be made) and the message in the
//!   status line in both formats, as pveproxy answers its own
//!   authentication failures outside the formatter: the UI's 401 handling
//!   (log in again) depends on it. Their body is the format's failure
//!   body (pveproxy sends none).
//!
//! [`ApiError`] texts are kept whole: they name the file, field and reason.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::authenticator::AuthError;
use super::permissions::Denied;
use orbitlab_engine::api::ApiError;
use orbitlab_engine::store::{ObjectError, StoreError};

/// The base of the `json` format's paths; [`orbitlab_engine::api::TREE_PREFIX`]
/// and [`orbitlab_engine::api::APPLY_PATH`] are below it.
const JSON_BASE: &str = "/api2/json/";
/// The base of the `extjs` format's paths.
const EXTJS_BASE: &str = "/api2/extjs/";

/// The shape of an answer, from the path's second segment, as pveproxy
/// chooses its formatter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `/api2/json/...`: HTTP status codes, `{"data": ...}`.
    Json,
    /// `/api2/extjs/...`: HTTP 200 with `success` (and `status` on
    /// failure) in the body.
    Extjs,
}

impl Format {
    /// The format `path` asks for, and the path as the `json` tree names
    /// it (`/api2/extjs/orbitlab/x` is `/api2/json/orbitlab/x`); any other
    /// path is `json`, unchanged.
    pub(crate) fn of_path(path: &str) -> (Format, Cow<'_, str>) {
        match path.strip_prefix(EXTJS_BASE) {
            Some(rest) => (Format::Extjs, Cow::Owned(format!("{JSON_BASE}{rest}"))),
            None => (Format::Json, Cow::Borrowed(path)),
        }
    }

    /// `{"data": data}` with 200 (extjs: and `"success": 1`).
    pub(crate) fn ok(self, data: Value) -> Response {
        match self {
            Format::Json => Json(json!({ "data": data })).into_response(),
            Format::Extjs => Json(json!({ "success": 1, "data": data })).into_response(),
        }
    }
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) errors: BTreeMap<String, String>,
    /// Decided by the credential check: the HTTP status is kept in every
    /// format.
    pub(crate) authentication: bool,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            errors: BTreeMap::new(),
            authentication: false,
        }
    }

    /// The same failure, decided by the credential check (its HTTP status
    /// is kept in the `extjs` format too).
    pub(crate) fn at_authentication(mut self) -> Self {
        self.authentication = true;
        self
    }

    /// The same failure naming `field`.
    pub(crate) fn field(mut self, field: &str, reason: impl Into<String>) -> Self {
        self.errors.insert(field.to_owned(), reason.into());
        self
    }

    /// A 401 of the credential check.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::UNAUTHORIZED, message).at_authentication()
    }

    /// The answer in `format` (see the module doc).
    pub(crate) fn respond(self, format: Format) -> Response {
        match format {
            Format::Json => self.into_response(),
            Format::Extjs => {
                let mut body = json!({
                    "success": 0,
                    "data": null,
                    "message": self.message,
                    "status": self.status.as_u16(),
                });
                if !self.errors.is_empty() {
                    body["errors"] = json!(self.errors);
                }
                if self.authentication {
                    with_reason((self.status, Json(body)).into_response(), &self.message)
                } else {
                    Json(body).into_response()
                }
            }
        }
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Refused(m) => Failure::unauthenticated(m),
            AuthError::Unavailable(m) => {
                Failure::new(StatusCode::SERVICE_UNAVAILABLE, m).at_authentication()
            }
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
        with_reason((self.status, Json(body)).into_response(), &self.message)
    }
}

/// `response` with `message` (cleaned) as its status line's reason.
fn with_reason(mut response: Response, message: &str) -> Response {
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason_phrase(message)) {
        response.extensions_mut().insert(reason);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbitlab_engine::api::{APPLY_PATH, TREE_PREFIX};
    use orbitlab_manifests::{ManifestError, ManifestErrors};

    /// Status, reason phrase (when set) and JSON body of `response`.
    fn parts(response: Response) -> (StatusCode, Option<String>, Value) {
        let status = response.status();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let bytes = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        (status, reason, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn the_format_is_the_paths_second_segment() {
        assert!(TREE_PREFIX.starts_with(JSON_BASE) && APPLY_PATH.starts_with(JSON_BASE));
        let (format, path) = Format::of_path("/api2/extjs/orbitlab/sectors/web");
        assert_eq!(format, Format::Extjs);
        assert_eq!(path, format!("{TREE_PREFIX}/sectors/web"));
        let (format, path) = Format::of_path("/api2/extjs/orbitlab-apply");
        assert_eq!((format, path.as_ref()), (Format::Extjs, APPLY_PATH));
        let (format, path) = Format::of_path("/api2/json/orbitlab");
        assert_eq!((format, path.as_ref()), (Format::Json, TREE_PREFIX));
        for other in [
            "/api2/extjsx/orbitlab",
            "/api2/html/orbitlab",
            "/api2/extjs",
        ] {
            assert_eq!(Format::of_path(other), (Format::Json, Cow::Borrowed(other)));
        }
    }

    #[test]
    fn extjs_answers_as_pveproxy_formats_them() {
        let (status, reason, body) = parts(Format::Extjs.ok(json!({"a": 1})));
        assert_eq!((status, reason), (StatusCode::OK, None));
        assert_eq!(body, json!({"success": 1, "data": {"a": 1}}));
        let (_, _, body) = parts(Format::Json.ok(json!([1])));
        assert_eq!(body, json!({"data": [1]}));

        let refused = Failure::new(StatusCode::BAD_REQUEST, "cidr: no\nmore").field("cidr", "no");
        let (status, reason, body) = parts(refused.clone().respond(Format::Extjs));
        assert_eq!((status, reason), (StatusCode::OK, None));
        assert_eq!(
            body,
            json!({"success": 0, "data": null, "message": "cidr: no\nmore", "status": 400, "errors": {"cidr": "no"}})
        );
        let (status, reason, body) = parts(refused.respond(Format::Json));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(reason.as_deref(), Some("cidr: no"));
        assert_eq!(
            body,
            json!({"data": null, "message": "cidr: no\nmore", "errors": {"cidr": "no"}})
        );

        let denied = Failure::new(StatusCode::FORBIDDEN, "not permitted");
        let (status, _, body) = parts(denied.clone().respond(Format::Extjs));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"success": 0, "data": null, "message": "not permitted", "status": 403})
        );
        let (_, _, body) = parts(denied.respond(Format::Json));
        assert_eq!(
            body["errors"],
            json!({}),
            "the json format always has errors"
        );

        // The credential check's failures keep their HTTP status.
        for failure in [
            Failure::unauthenticated("authentication required"),
            Failure::from(AuthError::Refused("authentication failure".into())),
            Failure::from(AuthError::Unavailable("Proxmox is down".into())),
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, "busy").at_authentication(),
        ] {
            let (status, reason, body) = parts(failure.clone().respond(Format::Extjs));
            assert_eq!(status, failure.status);
            assert_eq!(reason.as_deref(), Some(failure.message.as_str()));
            assert_eq!(body["success"], json!(0));
            assert_eq!(body["status"], json!(failure.status.as_u16()));
            assert_eq!(body["message"], json!(failure.message));
        }
    }

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
