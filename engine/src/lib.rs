//! The OrbitLab engine: everything between the manifests and Proxmox, one
//! module per concern (see `DESIGN.md`, "Shape of the code"):
//!
//! - [`store`]: OrbitLab's files on pmxcfs (`/etc/pve/orbitlab`,
//!   `/etc/pve/priv/orbitlab`) and its cluster-wide locks;
//! - [`pve`]: the Proxmox VE API client and the engine-facing [`pve::Pve`]
//!   trait (with a fake for tests);
//! - [`reconcile`]: one controller per kind, the pure planner, the
//!   executor and the statuses;
//! - [`ipam`], [`placement`], [`render`]: addresses, node choice, and the
//!   configuration files of the appliances;
//! - [`vault`], [`pki`], [`ssh`]: secrets, certificates and SSH keys;
//! - [`audit`]: the hash-chained audit log of changes and secret reads;
//! - [`api`]: the resource tree and its handlers, shared by the `orbitlab`
//!   command and the agent's HTTPS server, with their permission rules;
//! - [`host`]: pushing files into this node's containers (`pct`).
//!
//! Blocking code only: no async runtime, no HTTP server, no command-line
//! parsing (those live in `orbitlab-agent` and `orbitlab-pvecli`).

pub mod api;
pub mod audit;
pub mod doctor;
pub mod host;
pub mod ipam;
pub mod liveness;
pub mod pki;
pub mod placement;
pub mod pool;
pub mod pve;
pub mod reconcile;
pub mod render;
pub mod ssh;
pub mod status;
pub mod store;
pub mod vault;
