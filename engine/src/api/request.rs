//! Request parameters as `pvesh` reads them, from text a client sent: a
//! query string or form (`key=value&...`), or a JSON object whose members
//! are strings, numbers and booleans (taken as text), objects (nested
//! properties) and lists (the key repeated). `_dc` (the web UI's cache
//! buster) is dropped.
//!
//! Everything here is bounded, whatever the input: at most
//! [`MAX_PARAMS`] parameters, JSON nested at most
//! [`MAX_DEPTH`](super::properties::MAX_DEPTH) levels with at most
//! [`MAX_JSON_VALUES`] values in all, and the limits of
//! [`PropertyValue`] on keys. Nothing recurses on the input's nesting
//! beyond those limits (`serde_json` itself stops at 128 levels). Pure: no
//! I/O; a 1 MiB body is parsed in milliseconds, but callers serving many
//! clients should still run it off their event loop.

use serde_json::Value;

use super::properties::{MAX_DEPTH, PropertyValue, parse_value, shown_key};

/// Most parameters in one request (form fields, JSON members, list items).
pub const MAX_PARAMS: usize = 4096;
/// Most JSON values (objects, lists and scalars) in one body.
pub const MAX_JSON_VALUES: usize = 16 * 1024;

/// One parameter: text as in a form, or a nested JSON object or list.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A form value, or a JSON scalar as text.
    Text(String),
    /// A JSON object or list, within the depth limit.
    Json(Value),
}

/// Parameters in the order given.
pub type Params = Vec<(String, Param)>;

/// How a body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded` (also a body without a type).
    Form,
    /// `application/json`.
    Json,
}

/// A refused parameter: which field (`body` for the body as a whole) and
/// why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParamError {
    /// The parameter, cut to a readable length, or `body`.
    pub field: String,
    /// Why it was refused.
    pub reason: String,
}

impl ParamError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        ParamError {
            field: shown_key(field),
            reason: reason.into(),
        }
    }
}

fn too_many() -> ParamError {
    ParamError::new(
        "body",
        format!("more than {MAX_PARAMS} parameters; split the change into smaller requests"),
    )
}

/// `key=value&...` (percent-encoded, `+` for space).
pub fn parse_query(text: &str) -> Result<Params, ParamError> {
    let mut out = Vec::new();
    for (key, value) in form_urlencoded::parse(text.as_bytes()) {
        if key == "_dc" {
            continue;
        }
        if out.len() == MAX_PARAMS {
            return Err(too_many());
        }
        out.push((key.into_owned(), Param::Text(value.into_owned())));
    }
    Ok(out)
}

/// The parameters of a body. An empty (or blank) JSON body has none.
pub fn parse_body(format: BodyFormat, body: &[u8]) -> Result<Params, ParamError> {
    match format {
        BodyFormat::Form => {
            let text = std::str::from_utf8(body)
                .map_err(|_| ParamError::new("body", "the form is not UTF-8 text"))?;
            parse_query(text)
        }
        BodyFormat::Json => parse_json(body),
    }
}

fn parse_json(body: &[u8]) -> Result<Params, ParamError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ParamError::new("body", format!("not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(ParamError::new(
            "body",
            "a JSON body must be an object of properties, e.g. {\"name\": \"web\"}",
        ));
    };
    let mut budget = MAX_JSON_VALUES;
    let mut out = Vec::new();
    for (key, value) in fields {
        check_json(&key, &value, &mut budget)?;
        let items = match value {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            other => vec![other],
        };
        for item in items {
            if out.len() == MAX_PARAMS {
                return Err(too_many());
            }
            out.push((key.clone(), json_param(item)));
        }
    }
    Ok(out)
}

/// Refuses `value` (the member `key`) when it nests deeper than
/// [`MAX_DEPTH`] or spends the value budget. Walks with an explicit stack.
fn check_json(key: &str, value: &Value, budget: &mut usize) -> Result<(), ParamError> {
    let mut stack = vec![(value, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if *budget == 0 {
            return Err(ParamError::new(
                key,
                format!(
                    "the body holds more than {MAX_JSON_VALUES} JSON values; split the change into smaller requests"
                ),
            ));
        }
        *budget -= 1;
        if depth > MAX_DEPTH {
            return Err(ParamError::new(
                key,
                format!(
                    "nested more than {MAX_DEPTH} levels deep; properties nest at most {MAX_DEPTH} levels"
                ),
            ));
        }
        match node {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

fn json_param(value: Value) -> Param {
    match value {
        Value::String(s) => Param::Text(s),
        Value::Object(_) | Value::Array(_) => Param::Json(value),
        scalar => Param::Text(scalar.to_string()),
    }
}

/// Builds the property tree of `params` (texts as `--key value`, JSON
/// values nested under their key). A refusal names the key.
pub fn into_properties(params: Params) -> Result<PropertyValue, ParamError> {
    let refused = |key: &str, e: super::PropertyError| {
        ParamError::new(e.key().unwrap_or(key), e.reason().to_owned())
    };
    let mut props = PropertyValue::map();
    let mut nested = Vec::new();
    for (key, value) in params {
        match value {
            Param::Text(text) => props
                .insert(&key, parse_value(&text))
                .map_err(|e| refused(&key, e))?,
            Param::Json(json) => nested.push((key, json)),
        }
    }
    for (key, json) in nested {
        if let Some(value) = PropertyValue::from_json(&json) {
            props.insert(&key, value).map_err(|e| refused(&key, e))?;
        }
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_json_give_the_same_properties() {
        let form = parse_body(
            BodyFormat::Form,
            b"name=web&cidr=172.16.0.0%2F24&labels.team=a&_dc=1",
        )
        .unwrap();
        let json = parse_body(
            BodyFormat::Json,
            br#"{"name":"web","cidr":"172.16.0.0/24","labels":{"team":"a"},"x":null}"#,
        )
        .unwrap();
        assert_eq!(form.len(), 3);
        assert_eq!(
            into_properties(form).unwrap(),
            into_properties(json).unwrap()
        );
        assert_eq!(parse_body(BodyFormat::Json, b" \n").unwrap(), Vec::new());
        let err = parse_body(BodyFormat::Json, b"[1]").unwrap_err();
        assert_eq!(err.field, "body");
    }

    #[test]
    fn deep_and_wide_inputs_are_refused_naming_the_field() {
        let deep_key = format!("{}=1", vec!["a"; 20_001].join("."));
        let err = into_properties(parse_body(BodyFormat::Form, deep_key.as_bytes()).unwrap())
            .unwrap_err();
        assert!(
            err.field.starts_with("a.a.a") && err.field.len() < 80,
            "{err}"
        );
        assert!(err.reason.contains("nested 20001 levels"), "{err}");
        let long_key = format!("{}=1", "a".repeat(600));
        let err = into_properties(parse_query(&long_key).unwrap()).unwrap_err();
        assert!(err.reason.contains("at most 512"), "{err}");
        let deep_key = format!("{}=1", vec!["a"; 17].join("."));
        let err = into_properties(parse_body(BodyFormat::Form, deep_key.as_bytes()).unwrap())
            .unwrap_err();
        assert!(err.reason.contains("nested 17 levels"), "{err}");
        let ok_key = format!("{}=1", vec!["a"; 16].join("."));
        assert!(into_properties(parse_query(&ok_key).unwrap()).is_ok());

        let json = format!("{{\"spec\":{}1{}}}", "[".repeat(17), "]".repeat(17));
        let err = parse_body(BodyFormat::Json, json.as_bytes()).unwrap_err();
        assert_eq!(err.field, "spec");
        assert!(err.reason.contains("at most 16"), "{err}");
        let json = format!("{{\"spec\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let err = parse_body(BodyFormat::Json, json.as_bytes()).unwrap_err();
        assert_eq!(err.field, "body");

        let many = "a=1&".repeat(MAX_PARAMS + 1);
        assert!(parse_query(&many).unwrap_err().reason.contains("4096"));
        let wide = format!("{{\"a\":[{}1]}}", "1,".repeat(MAX_JSON_VALUES));
        assert!(parse_body(BodyFormat::Json, wide.as_bytes()).is_err());
    }
}
