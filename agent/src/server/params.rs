//! Request parameters as `pvesh` reads them: query string and form
//! fields, or the members of a JSON object (strings, numbers and booleans
//! as text, objects nested, lists repeating the key); `_dc` (the web UI's
//! cache buster) is ignored. Reserved flags are taken out before the rest
//! become properties.

use axum::http::StatusCode;
use serde_json::Value;

use super::reply::Failure;
use crate::api::PropertyValue;

/// One parameter: text as in a form, or a nested JSON object.
pub(super) enum Param {
    Text(String),
    Json(Value),
}

pub(super) fn query_params(query: &str) -> Vec<(String, Param)> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "_dc")
        .map(|(k, v)| (k.into_owned(), Param::Text(v.into_owned())))
        .collect()
}

pub(super) fn bad_request(field: &str, reason: impl Into<String>) -> Failure {
    let reason = reason.into();
    Failure::new(StatusCode::BAD_REQUEST, format!("{field}: {reason}")).field(field, reason)
}

/// Form or JSON body parameters.
pub(super) fn body_params(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, Param)>, Failure> {
    let mime = content_type
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match mime.as_str() {
        "application/json" => {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Vec::new());
            }
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| bad_request("body", format!("not valid JSON: {e}")))?;
            let Value::Object(fields) = value else {
                return Err(bad_request(
                    "body",
                    "a JSON body must be an object of properties, e.g. {\"name\": \"web\"}",
                ));
            };
            let mut out = Vec::new();
            for (key, value) in fields {
                match value {
                    Value::Null => {}
                    Value::Array(items) => {
                        for item in items {
                            out.push((key.clone(), json_param(item)));
                        }
                    }
                    other => out.push((key, json_param(other))),
                }
            }
            Ok(out)
        }
        "" | "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| bad_request("body", "the form is not UTF-8 text"))?;
            Ok(query_params(text))
        }
        other => Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type {other:?} is not understood; send application/x-www-form-urlencoded or application/json"
            ),
        )),
    }
}

fn json_param(value: Value) -> Param {
    match value {
        Value::String(s) => Param::Text(s),
        Value::Object(_) | Value::Array(_) => Param::Json(value),
        scalar => Param::Text(scalar.to_string()),
    }
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
pub(super) fn take_flag(params: &mut Vec<(String, Param)>, name: &str) -> Result<bool, Failure> {
    let mut result = false;
    for text in take(params, name)? {
        result = flag(name, &text)?;
    }
    Ok(result)
}

/// Takes every text value of `name` out of `params`.
pub(super) fn take(params: &mut Vec<(String, Param)>, name: &str) -> Result<Vec<String>, Failure> {
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

pub(super) fn refuse_unknown(params: &[(String, Param)], known: &str) -> Result<(), Failure> {
    match params.first() {
        None => Ok(()),
        Some((key, _)) => Err(bad_request(
            key,
            format!("unknown parameter; this request takes {known}"),
        )),
    }
}

pub(super) fn properties(params: Vec<(String, Param)>) -> Result<PropertyValue, Failure> {
    let bad = |e: crate::api::PropertyError| bad_request("properties", e.to_string());
    let mut nested = Vec::new();
    let mut texts = Vec::new();
    for (key, value) in params {
        match value {
            Param::Text(text) => texts.push((key, text)),
            Param::Json(json) => nested.push((key, json)),
        }
    }
    let mut props = PropertyValue::from_pairs(texts.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(bad)?;
    for (key, json) in nested {
        if let Some(value) = PropertyValue::from_json(&json) {
            props.insert(&key, value).map_err(bad)?;
        }
    }
    Ok(props)
}
