//! The OrbitLab engine: one module per concern (see `DESIGN.md`, "Shape of
//! the code"). The `orbitlab` command and the `orbitlab-agent` daemon are
//! thin edges over this library.

pub mod pki;
pub mod ssh;
pub mod store;
pub mod vault;
