//! A simulated Proxmox VE cluster (API only) that enforces the official
//! parameter rules of the endpoints OrbitLab uses, and serves what the
//! Proxmox web UI reads to log in and show the Datacenter view. Start one
//! with [`PveSim::start`]; talk to it over HTTP(S) at
//! [`SimHandle::base_url`] (`/api2/json`), or under `/api2/extjs` in the
//! format the web UI uses (see [`server::Format`]).
//!
//! Layout: `schema` (rule types, parsed from the tables in `rules/`),
//! `formats` (named string formats), `validate` (request checking),
//! `request` (query/body parsing), `state` (the cluster), `endpoints/`
//! (handlers), `files` (pmxcfs `.members`/`.vmlist`/`.version` mirror), `faults`,
//! `control` (`/_sim` API), `csrf` (CSRF prevention tokens with the
//! simulator's `pve-www.key`), `tls` (test CA), `server` (HTTP and handle).

pub mod control;
pub mod csrf;
pub mod endpoints;
pub mod error;
pub mod faults;
pub mod files;
pub mod formats;
pub mod pct;
pub mod request;
mod rules;
pub mod schema;
pub mod server;
pub mod state;
pub mod tls;
pub mod validate;

pub use csrf::WwwKey;
pub use endpoints::AuthConfig;
pub use endpoints::access::{ApiToken, UserLogin};
pub use faults::FaultSpec;
pub use schema::PveVersion;
pub use server::{
    DEFAULT_PASSWORD, DEFAULT_TOKEN_SECRET, PveSim, RequestRecord, SimConfig, SimError, SimHandle,
};
pub use state::{APPLIANCE_TEMPLATES, APPLIANCE_VERSION, DEFAULT_TEMPLATE};
pub use tls::{TestCa, TlsMaterial};
