//! What the `secret`, `vault`, `pki` and `ssh-key` commands print.
//!
//! A [`Reply`] is either structured data, printed in the chosen output
//! format (in text tables, timestamps become RFC 3339 and PEM blocks are
//! left out: `--pem` prints them), or a *document* — a secret value, a PEM,
//! a key — written to standard output exactly as it is in text format, and
//! as one field of a JSON/YAML object in the other formats. Warnings and a
//! failure summary go to standard error; a failure makes the exit status 1
//! after the data was printed (a partial result is still shown).
//!
//! Buffers that held a secret are wiped before they are freed. The JSON and
//! YAML encoders may leave copies in memory we cannot reach; the process
//! exits right after printing.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use base64::Engine;
use orbitlab_engine::vault::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::cli::OutputFormat;
use crate::output;

/// Fields holding Unix seconds that text tables show as RFC 3339.
const TIME_FIELDS: &[&str] = &[
    "created",
    "updated",
    "not_before",
    "not_after",
    "revoked_at",
    "crl_next_update",
];

/// A command's result, ready to print.
#[derive(Debug)]
pub struct Reply {
    body: Body,
    /// A different view for text tables (e.g. a list's rows only).
    text: Option<Value>,
    warnings: Vec<String>,
    failure: Option<String>,
}

#[derive(Debug)]
enum Body {
    Data(Value),
    Document {
        /// The other fields of the JSON/YAML form.
        meta: Map<String, Value>,
        /// Name of the field holding the document there.
        field: &'static str,
        /// The document (redacted in `Debug`: it may be a secret).
        bytes: Redacted,
        /// Always add an `encoding` field (`utf-8` or `base64`); without
        /// it, only non-UTF-8 content gets one.
        tag_encoding: bool,
        /// Text format: end with a newline if the document lacks one.
        newline: bool,
    },
}

/// Bytes wiped on drop and never shown by `Debug`.
struct Redacted(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl Reply {
    /// Structured data.
    pub fn data(value: impl Serialize) -> Result<Reply> {
        Ok(Reply::from_body(Body::Data(serde_json::to_value(value)?)))
    }

    /// A secret value: raw in text format; in the others, `meta` plus
    /// `value` and `encoding` (`utf-8`, or `base64` for binary values).
    pub fn secret(meta: Value, bytes: &[u8]) -> Reply {
        Reply::document_of(meta, "value", bytes, true, false)
    }

    /// A text document (PEM, key): raw in text format; in the others,
    /// `meta` plus the document under `field`. `newline`: end the raw form
    /// with a newline when the document has none (one-line documents).
    pub fn document(meta: Value, field: &'static str, bytes: &[u8], newline: bool) -> Reply {
        Reply::document_of(meta, field, bytes, false, newline)
    }

    fn document_of(
        meta: Value,
        field: &'static str,
        bytes: &[u8],
        tag_encoding: bool,
        newline: bool,
    ) -> Reply {
        let meta = match meta {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Reply::from_body(Body::Document {
            meta,
            field,
            bytes: Redacted(Zeroizing::new(bytes.to_vec())),
            tag_encoding,
            newline,
        })
    }

    fn from_body(body: Body) -> Reply {
        Reply {
            body,
            text: None,
            warnings: Vec::new(),
            failure: None,
        }
    }

    /// Shows `view` instead of the data in text format.
    pub fn with_text(mut self, view: impl Serialize) -> Result<Reply> {
        self.text = Some(serde_json::to_value(view)?);
        Ok(self)
    }

    /// Adds a warning for standard error.
    pub fn warn(mut self, warning: impl Into<String>) -> Reply {
        self.warnings.push(warning.into());
        self
    }

    /// Marks the command failed (exit status 1) with `message`, printed on
    /// standard error after the data.
    pub fn fail(mut self, message: impl Into<String>) -> Reply {
        self.failure = Some(message.into());
        self
    }

    /// Prints the reply; returns the exit status.
    pub fn emit(self, format: OutputFormat) -> Result<ExitCode> {
        let mut out = std::io::stdout().lock();
        match self.body {
            Body::Data(value) => {
                let shown = match format {
                    OutputFormat::Text => humanize(self.text.unwrap_or(value)),
                    _ => value,
                };
                out.write_all(output::render(&shown, format)?.as_bytes())?;
            }
            Body::Document { bytes, newline, .. } if format == OutputFormat::Text => {
                out.write_all(&bytes.0)?;
                if newline && !bytes.0.ends_with(b"\n") {
                    out.write_all(b"\n")?;
                }
            }
            Body::Document {
                mut meta,
                field,
                bytes,
                tag_encoding,
                ..
            } => {
                let (encoding, text) = match std::str::from_utf8(&bytes.0) {
                    Ok(text) => ("utf-8", text.to_owned()),
                    Err(_) => (
                        "base64",
                        base64::engine::general_purpose::STANDARD.encode(&bytes.0),
                    ),
                };
                if tag_encoding || encoding != "utf-8" {
                    meta.insert("encoding".into(), encoding.into());
                }
                meta.insert(field.into(), Value::String(text));
                let mut value = Value::Object(meta);
                let rendered = output::render(&value, format).map(Zeroizing::new);
                if let Some(Value::String(text)) = value.get_mut(field) {
                    text.zeroize();
                }
                out.write_all(rendered?.as_bytes())?;
            }
        }
        out.flush()?;
        drop(out);
        for warning in &self.warnings {
            eprintln!("orbitlab: warning: {warning}");
        }
        match self.failure {
            Some(message) => {
                eprintln!("orbitlab: {message}");
                Ok(ExitCode::FAILURE)
            }
            None => Ok(ExitCode::SUCCESS),
        }
    }
}

/// The text-table view of data: Unix seconds in [`TIME_FIELDS`] as RFC
/// 3339, `pem` fields left out.
fn humanize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| key != "pem")
                .map(|(key, value)| {
                    let value = match value.as_u64() {
                        Some(secs) if TIME_FIELDS.contains(&key.as_str()) => {
                            Value::String(Timestamp(secs).to_string())
                        }
                        _ => humanize(value),
                    };
                    (key, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(humanize).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_view_shows_times_and_hides_pem() {
        let shown = humanize(json!({
            "created": 0,
            "version": 3,
            "info": {"not_after": 1_700_000_000, "pem": "-----BEGIN", "days_left": 5},
            "chain": [{"pem": "x", "subject": "CN=root"}]
        }));
        assert_eq!(
            shown,
            json!({
                "created": "1970-01-01T00:00:00Z",
                "version": 3,
                "info": {"not_after": "2023-11-14T22:13:20Z", "days_left": 5},
                "chain": [{"subject": "CN=root"}]
            })
        );
    }

    #[test]
    fn debug_never_shows_documents() {
        let reply = Reply::secret(json!({"path": "a"}), b"hunter2-secret");
        let shown = format!("{reply:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("14 bytes"), "{shown}");
    }
}
