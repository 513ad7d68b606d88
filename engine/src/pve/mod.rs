//! The Proxmox VE HTTP API client (blocking, no async runtime: ureq over
//! rustls with ring, `wire.rs`).
//!
//! - auth: API token or ticket (`auth.rs`); secrets never print;
//! - TLS: a CA file such as `/etc/pve/pve-root-ca.pem` or a pinned SHA-256
//!   fingerprint (`tls.rs`); verification cannot be turned off;
//! - typed calls behind the [`Pve`] trait (`api.rs`), implemented by
//!   [`PveClient`] (`client.rs`) over the HTTP layer (`http.rs`: timeouts,
//!   retries only for safe calls, Proxmox's messages kept intact);
//! - containers and HA: create, config read/update, resize, power,
//!   destroy; HA resources list/add/remove; node status for placement;
//!   a node's DNS settings (the Sector DNS's upstream resolvers);
//! - tasks: [`Pve::wait_task`] polls a UPID until it stops or a deadline;
//! - SDN: pending-aware reads (`sdn.rs`) and [`SdnTransaction`]
//!   (`transaction.rs`), which holds the 9.x SDN lock when the cluster has
//!   it and the caller's own lock otherwise.
//!
//! - wire: one blocking HTTP(S) client (`wire.rs`, also used by the
//!   server's credential check and `orbitlab --host`): keep-alive, TLS
//!   only through our rustls configuration, error texts without URLs or
//!   header values;
//! - one gate: every request passes a [`Gate`] (`gate.rs`) if the client
//!   has one ([`PveClient::with_gate`]): the daemon's quorum fence and
//!   request accounting sit there, not around the trait;
//! - errors: each error answer is classified into an [`ApiErrorKind`];
//! - access (`access.rs`): users, roles, API tokens and the ACL, for
//!   `orbitlab init` with an administrator's login; [`privileges`] lists
//!   exactly the privileges OrbitLab's own token needs.
//!
//! Side effects: network calls to the configured Proxmox URL only.

mod access;
mod api;
mod auth;
mod client;
mod de;
mod error;
#[doc(hidden)]
pub mod fake;
mod gate;
mod http;
mod ids;
pub mod known_calls;
mod lxc;
pub mod privileges;
mod sdn;
mod stored;
mod tls;
mod transaction;
mod types;
pub mod wire;

pub use access::{
    AclEntry, AclKind, Grantee, NewToken, RoleId, RoleInfo, TokenId, TokenInfo, TokenName, UserId,
    UserInfo,
};
pub use api::Pve;
pub use auth::{Credentials, Secret};
pub use client::{ClientConfig, PveClient};
pub use error::{ApiErrorKind, PveError, Result};
pub use gate::{Access, Gate};
pub use http::{ClientOptions, Retry, RetryPolicy};
pub use ids::{InvalidId, SubnetId, Vmid, VnetId, ZoneId};
pub use lxc::{GuestState, LxcConfig, LxcCreate, LxcStatus, LxcUpdate};
pub use sdn::{
    ControllerConfig, PendingState, SdnCollection, SdnConfig, SdnItem, SdnKind, SdnLock,
    SdnLockToken, SdnSpec, SubnetConfig, VnetConfig, ZoneConfig,
};
pub use stored::{ConnectionError, StoredConnection, StoredTrust};
pub use tls::{Fingerprint, Trust, client_config};
pub use transaction::SdnTransaction;
pub use types::{
    ApplianceTemplate, ClusterStatusEntry, DownloadUrl, HaResource, HaResourceAdd, HaResourceSpec,
    HaState, NetworkInterface, NodeDns, NodeStatus, NodeStorage, NodeSummary, Release,
    StorageUpload, StorageVolume, TaskState, TaskStatus, Upid, VersionInfo, VolumeAttributes,
};
pub use wire::Method;
