//! Errors of the Proxmox API client. Proxmox's own message and its
//! per-parameter errors are kept intact; secrets never appear.
//!
//! Every error answer is classified once, here, into an [`ApiErrorKind`]
//! so that callers steer by the kind and never by the text.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Everything that can go wrong talking to Proxmox.
#[derive(Debug, thiserror::Error)]
pub enum PveError {
    /// Proxmox answered with an error status.
    #[error("{method} {path}: Proxmox answered HTTP {status}: {message}{kind}")]
    Api {
        /// HTTP method.
        method: String,
        /// API path (after `/api2/json`).
        path: String,
        /// HTTP status.
        status: u16,
        /// Proxmox's message (status line or body).
        message: String,
        /// What kind of failure this is (see [`ApiErrorKind::classify`]).
        kind: ApiErrorKind,
    },
    /// The request was not sent: the [`super::Gate`] in front of the client
    /// refused it (no quorum, the agent is stopping...).
    #[error("{method} {path} not sent to Proxmox: {reason}")]
    Refused {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Why, as the gate put it.
        reason: String,
    },
    /// The request could not be sent or the answer not read.
    #[error(
        "{method} {path}: connection to Proxmox failed: {message} (check the URL, the network and that pveproxy runs)"
    )]
    Transport {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// What failed.
        message: String,
    },
    /// The call did not finish within its timeout.
    #[error("{method} {path}: no answer from Proxmox within {timeout:?}")]
    Timeout {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The TLS setup is unusable (bad CA file, bad fingerprint...).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The client configuration is unusable.
    #[error("Proxmox client configuration: {0}")]
    Config(String),
    /// The answer did not have the expected shape.
    #[error("{method} {path}: unexpected answer from Proxmox: {message}")]
    Decode {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// What did not fit.
        message: String,
    },
    /// A task ended with an exit status other than `OK`.
    #[error("task {upid} failed: {exitstatus}")]
    TaskFailed {
        /// The task.
        upid: String,
        /// Proxmox's exit status (the failure message).
        exitstatus: String,
    },
    /// A task was still running when its deadline passed.
    #[error(
        "task {upid} still running after {waited:?}: gave up waiting (it may still finish; check it with `pvesh get /nodes/<node>/tasks/<upid>/status`)"
    )]
    TaskDeadline {
        /// The task.
        upid: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The call needs a newer Proxmox VE.
    #[error("{what} needs Proxmox VE {needs} or newer; this cluster runs {found}")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// Minimum version.
        needs: String,
        /// Version found.
        found: String,
    },
}

/// What kind of failure an error answer of Proxmox is.
///
/// Proxmox's parameter check answers 400 with a structured `errors` map;
/// permission and ticket failures have their own statuses; but a handler
/// that `die`s answers 500 with nothing but its message. For those the
/// message's shape is the only signal Proxmox gives, so
/// [`ApiErrorKind::classify`] reads it — in this one place, pinned by
/// tests against the messages of Proxmox VE 8 and 9 and the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// The object to create exists already (a VMID taken, an SDN id
    /// defined).
    AlreadyExists,
    /// The object, path or method does not exist.
    NotFound,
    /// The object or a config file is locked by another operation.
    Locked,
    /// Parameter verification failed (HTTP 400); Proxmox's message per
    /// parameter (may be empty when Proxmox gave none). A wanted VMID that
    /// is taken (`GET /cluster/nextid?vmid=`) is reported here, under
    /// `vmid`, as Proxmox does.
    Invalid(BTreeMap<String, String>),
    /// Authentication failed or the ticket expired (HTTP 401).
    Unauthorized,
    /// The credentials lack a privilege (HTTP 403).
    Forbidden,
    /// Proxmox or a proxy in front of it is unavailable for now (HTTP 502,
    /// 503, 504, 595, 596): repeating the call may succeed.
    Unavailable,
    /// Anything else.
    Other,
}

impl ApiErrorKind {
    /// Classifies an error answer from its HTTP status, Proxmox's
    /// per-parameter `errors` and, for handler failures (500) only, the
    /// shape of Proxmox's message.
    pub fn classify(status: u16, message: &str, errors: BTreeMap<String, String>) -> Self {
        match status {
            400 => ApiErrorKind::Invalid(errors),
            401 => ApiErrorKind::Unauthorized,
            403 => ApiErrorKind::Forbidden,
            404 | 501 => ApiErrorKind::NotFound,
            502 | 503 | 504 | 595 | 596 => ApiErrorKind::Unavailable,
            500 => Self::handler_failure(message),
            _ => ApiErrorKind::Other,
        }
    }

    /// A `die` of a Proxmox handler, by the message shapes Proxmox uses:
    /// `CT 100 already exists on node 'pve1'`, `sdn zone object ID 'z1'
    /// already defined`, `Configuration file '...' does not exist`,
    /// `CT 100 is locked (create)`, `can't lock file '...' - got timeout`.
    fn handler_failure(message: &str) -> Self {
        let has = |w: &str| message.contains(w);
        if has("already exists") || has("already defined") {
            ApiErrorKind::AlreadyExists
        } else if has("does not exist") || has("no such ") {
            ApiErrorKind::NotFound
        } else if has("is locked") || has("can't lock file") {
            ApiErrorKind::Locked
        } else {
            ApiErrorKind::Other
        }
    }
}

/// Shows the per-parameter errors after the message.
impl fmt::Display for ApiErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let ApiErrorKind::Invalid(errors) = self {
            for (k, v) in errors {
                write!(f, "; {k}: {}", v.trim_end())?;
            }
        }
        Ok(())
    }
}

impl PveError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            PveError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The kind of an API error.
    pub fn kind(&self) -> Option<&ApiErrorKind> {
        match self {
            PveError::Api { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// Proxmox's per-parameter errors, if this is a parameter error.
    pub fn param_errors(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            PveError::Api {
                kind: ApiErrorKind::Invalid(errors),
                ..
            } if !errors.is_empty() => Some(errors),
            _ => None,
        }
    }

    /// Whether repeating the same call may succeed (network trouble, proxy
    /// errors, timeouts). Proxmox's 500 answers are deterministic handler
    /// errors and are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            PveError::Transport { .. } | PveError::Timeout { .. } => true,
            PveError::Api { kind, .. } => *kind == ApiErrorKind::Unavailable,
            _ => false,
        }
    }
}

/// Result of client calls.
pub type Result<T, E = PveError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn classifies_by_status_params_and_handler_message() {
        let none = BTreeMap::new;
        let kind = |status, msg: &str| ApiErrorKind::classify(status, msg, none());
        assert_eq!(
            kind(
                500,
                "unable to create CT 100 - CT 100 already exists on node 'pve1'"
            ),
            ApiErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(500, "sdn zone object ID 'z1' already defined"),
            ApiErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(
                500,
                "Configuration file 'nodes/pve1/lxc/100.conf' does not exist"
            ),
            ApiErrorKind::NotFound
        );
        assert_eq!(kind(500, "CT 100 is locked (create)"), ApiErrorKind::Locked);
        assert_eq!(
            kind(
                500,
                "can't lock file '/var/lock/pve-manager/pve-sdn-lock' - got timeout"
            ),
            ApiErrorKind::Locked
        );
        assert_eq!(kind(500, "CT 100 not running"), ApiErrorKind::Other);
        assert_eq!(
            kind(501, "Method 'GET /x' not implemented"),
            ApiErrorKind::NotFound
        );
        assert_eq!(
            kind(401, "authentication failure"),
            ApiErrorKind::Unauthorized
        );
        assert_eq!(
            kind(403, "Permission check failed"),
            ApiErrorKind::Forbidden
        );
        assert_eq!(kind(503, "service unavailable"), ApiErrorKind::Unavailable);
        // The text of a status other than 500 decides nothing.
        assert_eq!(kind(418, "CT 100 already exists"), ApiErrorKind::Other);
        let bad = params(&[("zone", "invalid format")]);
        assert_eq!(
            ApiErrorKind::classify(400, "Parameter verification failed.", bad.clone()),
            ApiErrorKind::Invalid(bad)
        );
        // A parameter error stays one, whatever its text says.
        let taken = params(&[("vmid", "VM 100 already exists")]);
        assert_eq!(
            ApiErrorKind::classify(400, "Parameter verification failed.", taken.clone()),
            ApiErrorKind::Invalid(taken)
        );
    }

    #[test]
    fn only_unavailable_answers_are_transient() {
        let api = |status| PveError::Api {
            method: "GET".into(),
            path: "/p".into(),
            status,
            message: "m".into(),
            kind: ApiErrorKind::classify(status, "m", BTreeMap::new()),
        };
        assert!(api(503).is_transient());
        assert!(api(596).is_transient());
        assert!(!api(500).is_transient());
        assert!(!api(400).is_transient());
    }
}
