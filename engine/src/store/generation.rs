//! The change counter: `<root>/orbitlab/generation` ([`layout::generation`]),
//! one decimal number.
//!
//! inotify never reports changes made on other nodes, so every writer of a
//! manifest bumps this small file (under the `generation` lock, so no bump
//! is lost) and agents poll it; a periodic full resync covers the rest.

use std::fmt;
use std::str::FromStr;

use super::layout::{self, Lock};
use super::{Store, StoreError};

/// A value of the change counter; 0 before anything was ever written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Generation(pub u64);

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

pub(super) fn read(store: &Store) -> Result<Generation, StoreError> {
    let path = layout::generation();
    let Some(bytes) = store.read(&path)? else {
        return Ok(Generation(0));
    };
    let text = String::from_utf8_lossy(&bytes);
    u64::from_str(text.trim())
        .map(Generation)
        .map_err(|_| StoreError::Corrupt {
            path: store.absolute(&path),
            reason: format!(
                "expected a decimal change counter, found {:?}; remove the file, agents recreate it",
                text.chars().take(40).collect::<String>()
            ),
        })
}

pub(super) fn bump(store: &Store) -> Result<Generation, StoreError> {
    let _guard = store.lock(Lock::Generation.name())?;
    // A corrupt counter is replaced rather than blocking every writer.
    let next = Generation(read(store).map(|g| g.0).unwrap_or(0).wrapping_add(1));
    store.write(&layout::generation(), format!("{next}\n").as_bytes())?;
    Ok(next)
}
