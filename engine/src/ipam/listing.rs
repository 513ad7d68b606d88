//! Every allocation at once, read through a cache that is only trusted
//! while IPAM's change token stands still.
//!
//! Reading every pool through pmxcfs costs thousands of FUSE operations,
//! and the reconciler needs the whole picture on every pass. So every
//! session that changes anything first replaces the change token
//! `ipam.serial` (under `<root>/orbitlab/`, beside the `ipam/` directory)
//! with a fresh random number, before its first write and under the IPAM
//! lock. [`listing`] reads that one small file: when it equals the token of
//! the listing cached in this [`Store`] handle (shared by its clones), the
//! cached listing is the current one; otherwise every pool is re-read in a
//! session (under the lock, token included) and cached again. Because the
//! token is replaced before any data file, a change in flight — or one cut
//! short by a crash — always makes the cache miss; a missing or unreadable
//! token never hits. [`Store::forget_cached`] (the daemon's periodic
//! resync) drops the cache anyway.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::layout;
use super::store::IpamStore;
use super::{IpamError, IpamSession, Owner, PoolId};
use crate::store::Store;

/// Every recorded allocation, by pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The change token this listing was read under.
    pub token: u64,
    /// Addresses and their owners, by pool.
    pub pools: BTreeMap<PoolId, BTreeMap<Ipv4Addr, Owner>>,
}

/// Reads the change token; `None` when missing or unreadable.
pub(crate) fn read_token(store: &impl IpamStore) -> Option<u64> {
    let bytes = store.read(&layout::token_path()).ok()??;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

/// Replaces the change token with a fresh random value (callers hold the
/// IPAM lock and have not written anything yet).
pub(crate) fn new_token(store: &impl IpamStore) -> Result<(), IpamError> {
    let token: u64 = rand::random();
    let path = layout::token_path();
    store
        .write(&path, format!("{token}\n").as_bytes())
        .map_err(|source| IpamError::Store {
            op: "write",
            path,
            source,
        })
}

/// The current listing of every pool (see the module documentation): one
/// small read when nothing changed since the last call on this store
/// handle, a locked read of every pool otherwise.
pub fn listing(store: &Store) -> Result<Arc<Listing>, IpamError> {
    if let Some(token) = read_token(store)
        && let Some(cached) = store.cached_ipam()
        && cached.token == token
    {
        return Ok(cached);
    }
    let mut session = IpamSession::begin(store)?;
    // Read under the lock: no change can slip in between token and data.
    let token = read_token(store);
    let mut listing = Listing {
        token: token.unwrap_or(0),
        pools: BTreeMap::new(),
    };
    for id in session.pools()? {
        let Some(pool) = session.recorded_pool(&id)? else {
            continue;
        };
        listing.pools.insert(id, session.list(&pool)?);
    }
    let listing = Arc::new(listing);
    store.cache_ipam(token.map(|_| Arc::clone(&listing)));
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::Pool;
    use orbitlab_manifests::ApplianceRole;

    fn pool(id: &str, cidr: &str) -> Pool {
        Pool::new(id.parse().unwrap(), cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn the_cache_follows_every_change_and_never_serves_stale_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        assert!(listing(&store).unwrap().pools.is_empty());
        let web = pool("web", "172.16.0.0/24");
        let owner: Owner = "sector/web/gateway".parse().unwrap();
        let gw = {
            let mut session = IpamSession::begin(&store).unwrap();
            session
                .allocate_role(&web, ApplianceRole::Gateway, &owner)
                .unwrap()
        };
        let first = listing(&store).unwrap();
        assert_eq!(first.pools[web.id()].get(&gw), Some(&owner));
        // Nothing moved: the very same listing, without re-reading.
        assert!(Arc::ptr_eq(&first, &listing(&store).unwrap()));

        // A change through another handle (another agent) is seen.
        let other = Store::open(dir.path());
        let lxc: Owner = "lxc/web1".parse().unwrap();
        let addr = {
            let mut session = IpamSession::begin(&other).unwrap();
            session.allocate_next(&web, &lxc).unwrap()
        };
        let second = listing(&store).unwrap();
        assert_ne!(second.token, first.token);
        assert_eq!(second.pools[web.id()].get(&addr), Some(&lxc));

        // Data changed behind the token's back (a session cut short after
        // its token write, or a hand edit): a lost token never hits.
        std::fs::remove_file(store.absolute(&crate::store::layout::ipam_serial())).unwrap();
        {
            let mut session = IpamSession::begin(&other).unwrap();
            session.release_owner(&web, &lxc).unwrap();
        }
        std::fs::remove_file(store.absolute(&crate::store::layout::ipam_serial())).ok();
        assert_eq!(listing(&store).unwrap().pools[web.id()].get(&addr), None);

        // The resync drops the cache whatever the token says.
        {
            let mut session = IpamSession::begin(&other).unwrap();
            session.allocate_next(&web, &lxc).unwrap();
        }
        let before = listing(&store).unwrap();
        assert!(Arc::ptr_eq(&before, &listing(&store).unwrap()));
        store.forget_cached();
        let after = listing(&store).unwrap();
        assert!(!Arc::ptr_eq(&before, &after));
        assert_eq!(*before, *after);
    }
}
