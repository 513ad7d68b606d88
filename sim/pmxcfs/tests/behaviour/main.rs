//! Behaviour of the pmxcfs simulator through a real FUSE mount, exercised
//! with ordinary `std::fs` calls (as the agent makes them) and, for sharing,
//! with several processes. Needs /dev/fuse and root (as CI has): without
//! FUSE every test fails with a message saying so.

mod common;
mod limits;
mod locks;
mod modes;
mod processes;
mod quorum;
mod rename;
mod virtual_files;
