//! Request parameters over HTTP: the content type chooses the body's
//! format, [`orbitlab_engine::api::request`] parses query and body within its limits,
//! and refusals become 400s (415 for an unknown content type) naming the
//! field. Reserved flags are taken out before the rest become properties.

use axum::http::StatusCode;

use super::reply::Failure;
use orbitlab_engine::api::PropertyValue;
use orbitlab_engine::api::request::{self, BodyFormat, Param, ParamError, Params};

impl From<ParamError> for Failure {
    fn from(e: ParamError) -> Self {
        bad_request(&e.field, e.reason)
    }
}

pub(super) fn query_params(query: &str) -> Result<Params, Failure> {
    Ok(request::parse_query(query)?)
}

pub(super) fn bad_request(field: &str, reason: impl Into<String>) -> Failure {
    let reason = reason.into();
    Failure::new(StatusCode::BAD_REQUEST, format!("{field}: {reason}")).field(field, reason)
}

/// The media type of a `Content-Type` header, lowercase, without
/// parameters (`""` when there is none).
pub(super) fn media_type(content_type: Option<&str>) -> String {
    content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The body format a `Content-Type` names; 415 for any other.
pub(super) fn body_format(content_type: Option<&str>) -> Result<BodyFormat, Failure> {
    let mime = media_type(content_type);
    match mime.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "" | "application/x-www-form-urlencoded" => Ok(BodyFormat::Form),
        other => Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type {other:?} is not understood; send application/x-www-form-urlencoded or application/json"
            ),
        )),
    }
}

/// Form or JSON body parameters.
pub(super) fn body_params(format: BodyFormat, body: &[u8]) -> Result<Params, Failure> {
    Ok(request::parse_body(format, body)?)
}

fn flag(name: &str, value: &str) -> Result<bool, Failure> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad_request(
            name,
            format!("{value:?} is not a boolean; use 1 or 0"),
        )),
    }
}

/// Takes the flag `name` out of `params` (absent: false).
pub(super) fn take_flag(params: &mut Params, name: &str) -> Result<bool, Failure> {
    let mut result = false;
    for text in take(params, name)? {
        result = flag(name, &text)?;
    }
    Ok(result)
}

/// Takes every text value of `name` out of `params`.
pub(super) fn take(params: &mut Params, name: &str) -> Result<Vec<String>, Failure> {
    let mut taken = Vec::new();
    let mut rest = Vec::with_capacity(params.len());
    for (key, value) in params.drain(..) {
        if key != name {
            rest.push((key, value));
            continue;
        }
        match value {
            Param::Text(text) => taken.push(text),
            Param::Json(_) => return Err(bad_request(name, "must be a plain value")),
        }
    }
    *params = rest;
    Ok(taken)
}

pub(super) fn refuse_unknown(params: &Params, known: &str) -> Result<(), Failure> {
    match params.first() {
        None => Ok(()),
        Some((key, _)) => Err(bad_request(
            &orbitlab_engine::api::properties::shown_key(key),
            format!("unknown parameter; this request takes {known}"),
        )),
    }
}

pub(super) fn properties(params: Params) -> Result<PropertyValue, Failure> {
    Ok(request::into_properties(params)?)
}
