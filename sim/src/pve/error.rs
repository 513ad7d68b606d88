//! The simulator's API error: what Proxmox answers when a call fails —
//! an HTTP status, a message (sent as the status line's reason phrase, as
//! pveproxy does) and, for parameter errors, the per-parameter map.

use std::collections::BTreeMap;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Message (reason phrase).
    pub message: String,
    /// Per-parameter errors (400 answers).
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// A failure inside a handler (`die` in Proxmox): HTTP 500.
    pub fn fail(message: impl Into<String>) -> Self {
        ApiError {
            status: 500,
            message: message.into(),
            errors: None,
        }
    }

    /// A parameter verification failure for several parameters.
    pub fn params(errors: BTreeMap<String, String>) -> Self {
        ApiError {
            status: 400,
            message: "Parameter verification failed.".into(),
            errors: Some(errors),
        }
    }

    /// A parameter verification failure for one parameter.
    pub fn param(name: &str, message: impl Into<String>) -> Self {
        let mut m = BTreeMap::new();
        m.insert(name.to_string(), message.into());
        Self::params(m)
    }

    /// Any status with a message.
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            errors: None,
        }
    }
}

/// What a handler returns: the `data` of the answer, or an error.
pub type Reply = Result<serde_json::Value, ApiError>;
