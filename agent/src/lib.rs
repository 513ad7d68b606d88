//! The node daemon `orbitlab-agent` over the engine (`orbitlab_engine`):
//!
//! - [`daemon`]: the reconcile loop (cluster- and node-scoped runs), change
//!   watching (inotify on this node's mount, the pmxcfs change counter),
//!   the quorum fence, backoff, metrics, systemd notification, signals;
//! - [`server`]: the HTTPS API (Proxmox tickets and API tokens, CSRF,
//!   admission limits) serving the engine's [`orbitlab_engine::api`] tree.
//!
//! The tokio runtime, axum and clap live here, not in the engine.

pub mod daemon;
pub mod server;
