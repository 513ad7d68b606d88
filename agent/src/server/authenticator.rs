//! Who is calling, as Proxmox says: the [`Authenticator`] trait (the real
//! one, [`super::ProxmoxAuthenticator`], asks the local Proxmox API), and a
//! short-lived cache of successful checks keyed by a digest of the
//! credential — never the credential itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::credential::Credential;
use super::permissions::Privileges;

/// A caller Proxmox accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `user@realm`, or `user@realm!token` for an API token.
    pub user: String,
    /// What the caller holds on `/`.
    pub privileges: Privileges,
}

/// Why a caller was not accepted. Messages never hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Proxmox refused the credential (HTTP 401 to the caller).
    #[error("{0}")]
    Refused(String),
    /// Proxmox could not be asked (HTTP 503 to the caller).
    #[error("{0}")]
    Unavailable(String),
}

/// Checks credentials with Proxmox. Implementations block (they call
/// Proxmox); the server runs them on its blocking thread pool.
pub trait Authenticator: Send + Sync + 'static {
    /// Who `credential` belongs to and its privileges on `/`. When `write`
    /// is true and the credential is a ticket, its CSRF prevention token
    /// must be accepted too (a missing one is refused).
    fn authenticate(&self, credential: &Credential, write: bool) -> Result<Identity, AuthError>;
}

/// Most cached checks; beyond that expired entries are dropped, then all.
const MAX_ENTRIES: usize = 4096;

/// Successful checks for `ttl`, keyed by [`Credential::cache_key`].
#[derive(Debug)]
pub(crate) struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Instant, Identity)>>,
}

impl AuthCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        AuthCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Instant, Identity)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A check made less than `ttl` ago.
    pub(crate) fn get(&self, key: &[u8; 32]) -> Option<Identity> {
        let mut entries = self.entries();
        match entries.get(key) {
            Some((at, identity)) if at.elapsed() < self.ttl => Some(identity.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers a successful check.
    pub(crate) fn put(&self, key: [u8; 32], identity: Identity) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), identity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let id = Identity {
            user: "a@pve".into(),
            privileges: Privileges::new(["Sys.Audit"]),
        };
        let cache = AuthCache::new(Duration::from_millis(40));
        cache.put([1; 32], id.clone());
        assert_eq!(cache.get(&[1; 32]), Some(id.clone()));
        assert_eq!(cache.get(&[2; 32]), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&[1; 32]), None);

        let cache = AuthCache::new(Duration::from_secs(60));
        for i in 0..=MAX_ENTRIES {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.put(key, id.clone());
        }
        assert!(cache.entries().len() <= MAX_ENTRIES);

        let off = AuthCache::new(Duration::ZERO);
        off.put([1; 32], id);
        assert_eq!(off.get(&[1; 32]), None);
    }
}
