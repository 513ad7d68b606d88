//! Errors of the Proxmox API client. Proxmox's own message and its
//! per-parameter errors are kept intact; secrets never appear.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Everything that can go wrong talking to Proxmox.
#[derive(Debug, thiserror::Error)]
pub enum PveError {
    /// Proxmox answered with an error status.
    #[error(
        "{method} {path}: Proxmox answered HTTP {status}: {message}{}",
        ParamList(errors)
    )]
    Api {
        /// HTTP method.
        method: String,
        /// API path (after `/api2/json`).
        path: String,
        /// HTTP status.
        status: u16,
        /// Proxmox's message (status line or body).
        message: String,
        /// Per-parameter errors (`{"errors": {param: msg}}`), if any.
        errors: BTreeMap<String, String>,
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

struct ParamList<'a>(&'a BTreeMap<String, String>);

impl fmt::Display for ParamList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in self.0 {
            write!(f, "; {k}: {}", v.trim_end())?;
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

    /// Proxmox's per-parameter errors, if this is a parameter error.
    pub fn param_errors(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            PveError::Api { errors, .. } if !errors.is_empty() => Some(errors),
            _ => None,
        }
    }

    /// Whether repeating the same call may succeed (network trouble, proxy
    /// errors, timeouts). Proxmox's 500 answers are deterministic handler
    /// errors and are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            PveError::Transport { .. } | PveError::Timeout { .. } => true,
            PveError::Api { status, .. } => matches!(status, 502 | 503 | 504 | 595 | 596),
            _ => false,
        }
    }
}

/// Result of client calls.
pub type Result<T, E = PveError> = std::result::Result<T, E>;
