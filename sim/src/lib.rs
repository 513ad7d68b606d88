//! Simulators of the parts of Proxmox VE that OrbitLab uses.
