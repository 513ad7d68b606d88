//! The OrbitLab engine: one module per concern (see `DESIGN.md`, "Shape of
//! the code"). The `orbitlab` command and the `orbitlab-agent` daemon are
//! thin edges over this library.

pub mod api;
pub mod daemon;
pub mod host;
pub mod ipam;
pub mod pki;
pub mod placement;
pub mod pve;
pub mod reconcile;
pub mod render;
pub mod server;
pub mod ssh;
pub mod status;
pub mod store;
pub mod vault;
