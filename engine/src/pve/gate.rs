//! The single point every Proxmox request passes through: a [`Gate`] that
//! the HTTP transport consults before it sends a request and tells after
//! the answer came. The agent's quorum fence and its request accounting
//! are a gate (`daemon::fence`); a client without one sends everything.
//!
//! The transport classifies each request by what it does to the cluster
//! ([`Access`]); the gate decides and counts. No I/O here.

use std::fmt::Debug;

use super::wire::Method;

/// What a request does to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reads only (`GET`; also logging in).
    Read,
    /// Changes something (every other method).
    Write,
    /// Undoes what an earlier write of ours held, such as releasing the
    /// SDN lock: it must still run while the agent stops.
    Cleanup,
}

impl Access {
    /// The access of an ordinary call with `method`.
    pub fn of(method: &Method) -> Access {
        if *method == Method::GET {
            Access::Read
        } else {
            Access::Write
        }
    }
}

/// Decides whether a request may be sent, and hears that it ended.
pub trait Gate: Send + Sync + Debug {
    /// Called before a request (once per call, not per retry). `Err`
    /// says why the request must not be sent; the call then fails with
    /// [`super::PveError::Refused`] and nothing reaches Proxmox.
    fn admit(&self, access: Access) -> Result<(), String>;

    /// Called after an admitted call ended, whether it succeeded or not.
    fn finished(&self, _access: Access) {}
}
