//! Simulators of the parts of Proxmox VE that OrbitLab uses, for tests and
//! for trying OrbitLab on any Linux machine. Never packaged.

pub mod host;
pub mod pve;

pub mod pct_cli;
