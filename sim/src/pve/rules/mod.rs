//! The rule tables (see `schema.rs` for their syntax).

pub mod endpoints;
pub mod formats;
