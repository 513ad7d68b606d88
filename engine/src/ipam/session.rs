//! [`IpamSession`]: allocation and release under the IPAM lock.
//!
//! A session takes the IPAM lock when it begins and holds it until it is
//! dropped, so it may cache every file it has read: nobody else can change
//! them meanwhile. Each change is written through to the store before the
//! method returns (shard and index files are replaced atomically, one at a
//! time, in the order described in the `ipam` module documentation). A
//! single allocation reads and writes O(1) files of at most a few tens of
//! KiB, whatever the pool's size; only `list`, `remove_pool` and the final
//! check before reporting a pool exhausted read every shard.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use super::layout::{
    self, Bucket, JsonAtom, PoolMeta, Shard, block_net, bucket_count, bucket_of, bucket_path,
    meta_path, shard_path,
};
use super::pool::block_of;
use orbitlab_manifests::ApplianceRole;

use super::{IpamError, IpamStore, Owner, Pool, PoolId, StoreError};

/// One locked IPAM session over a store. See the module documentation.
pub struct IpamSession<'s, S: IpamStore> {
    store: &'s S,
    _lock: S::Guard,
    metas: HashMap<PoolId, Option<PoolMeta>>,
    shards: HashMap<String, Shard>,
    buckets: HashMap<String, Bucket>,
    /// Whether this session replaced IPAM's change token yet.
    token_replaced: bool,
}

impl<S: IpamStore> fmt::Debug for IpamSession<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpamSession")
            .field("cached_pools", &self.metas.len())
            .field("cached_shards", &self.shards.len())
            .field("cached_buckets", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

fn store_err(op: &'static str, path: &str) -> impl FnOnce(StoreError) -> IpamError {
    let path = path.to_owned();
    move |source| IpamError::Store { op, path, source }
}

/// Returns the cached document at `path`, reading and decoding it first if
/// needed (a missing file is an empty document).
fn cached<'c, T: Default>(
    store: &impl IpamStore,
    cache: &'c mut HashMap<String, T>,
    path: String,
    decode: impl FnOnce(&str, &[u8]) -> Result<T, IpamError>,
) -> Result<&'c mut T, IpamError> {
    match cache.entry(path) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(v) => {
            let doc = match store.read(v.key()).map_err(store_err("read", v.key()))? {
                Some(bytes) => decode(v.key(), &bytes)?,
                None => T::default(),
            };
            Ok(v.insert(doc))
        }
    }
}

/// Writes the cached map at `path` (removing the file when the map is
/// empty); on failure the cache entry is dropped so the next use re-reads
/// whatever the store really holds.
fn flush<K: JsonAtom, V: JsonAtom>(
    store: &impl IpamStore,
    cache: &mut HashMap<String, BTreeMap<K, V>>,
    path: &str,
) -> Result<(), IpamError> {
    let Some(doc) = cache.get(path) else {
        return Ok(());
    };
    let result = if doc.is_empty() {
        store.remove(path).map_err(store_err("remove", path))
    } else {
        layout::encode_map(path, doc)
            .and_then(|bytes| store.write(path, &bytes).map_err(store_err("write", path)))
    };
    if result.is_err() {
        cache.remove(path);
    }
    result
}

impl<'s, S: IpamStore> IpamSession<'s, S> {
    /// Takes the IPAM lock and starts a session; the lock is released when
    /// the session is dropped.
    pub fn begin(store: &'s S) -> Result<Self, IpamError> {
        let lock = store.lock().map_err(IpamError::Lock)?;
        Ok(Self {
            store,
            _lock: lock,
            metas: HashMap::new(),
            shards: HashMap::new(),
            buckets: HashMap::new(),
            token_replaced: false,
        })
    }

    /// The address `owner` holds in `pool`, if any.
    pub fn lookup(&mut self, pool: &Pool, owner: &Owner) -> Result<Option<Ipv4Addr>, IpamError> {
        if !self.load_meta(pool)? {
            return Ok(None);
        }
        let hint = self.bucket(pool, owner)?.get(owner).copied();
        match hint {
            Some(addr) if self.shard(pool, block_of(addr))?.get(&addr) == Some(owner) => {
                Ok(Some(addr))
            }
            _ => Ok(None),
        }
    }

    /// Gives `owner` the lowest free ordinary address of `pool` (never the
    /// network, broadcast, `.1`, `.2` or `.3`–`.9`), or the address it
    /// already holds there. The allocation is stored before this returns.
    pub fn allocate_next(&mut self, pool: &Pool, owner: &Owner) -> Result<Ipv4Addr, IpamError> {
        if let Some(addr) = self.lookup(pool, owner)? {
            return Ok(addr);
        }
        self.ensure_meta(pool)?;
        let addr = self.find_free(pool)?;
        self.record(pool, addr, owner)?;
        Ok(addr)
    }

    /// Gives `owner` the address of `role` (`.1` or `.2`). Idempotent;
    /// fails if another owner holds it or `owner` holds another address.
    pub fn allocate_role(
        &mut self,
        pool: &Pool,
        role: ApplianceRole,
        owner: &Owner,
    ) -> Result<Ipv4Addr, IpamError> {
        self.claim(pool, pool.role_address(role), owner)
    }

    /// Gives `owner` exactly `addr`, an ordinary address of `pool` (reserved
    /// addresses are refused; use [`Self::allocate_role`] for `.1`/`.2`).
    /// Idempotent; fails if another owner holds `addr` or `owner` holds
    /// another address.
    pub fn allocate_specific(
        &mut self,
        pool: &Pool,
        addr: Ipv4Addr,
        owner: &Owner,
    ) -> Result<Ipv4Addr, IpamError> {
        self.check_inside(pool, addr)?;
        if let Some(reserved) = pool.reserved(addr) {
            return Err(IpamError::Reserved {
                pool: pool.id().clone(),
                addr,
                reason: reserved.describe(),
            });
        }
        self.claim(pool, addr, owner)
    }

    /// Releases the address `owner` holds in `pool`; returns it, or `None`
    /// if the owner held nothing there.
    pub fn release_owner(
        &mut self,
        pool: &Pool,
        owner: &Owner,
    ) -> Result<Option<Ipv4Addr>, IpamError> {
        if !self.load_meta(pool)? {
            return Ok(None);
        }
        let Some(hint) = self.bucket(pool, owner)?.get(owner).copied() else {
            return Ok(None);
        };
        let block = block_of(hint);
        let held = self.shard(pool, block)?.get(&hint) == Some(owner);
        if held {
            self.shard(pool, block)?.remove(&hint);
            self.flush_shard(pool, block)?;
            self.set_full(pool, block, false)?;
        }
        self.bucket(pool, owner)?.remove(owner);
        self.flush_bucket(pool, owner)?;
        Ok(held.then_some(hint))
    }

    /// Releases `addr` in `pool`; returns its former owner, or `None` if it
    /// was free.
    pub fn release_address(
        &mut self,
        pool: &Pool,
        addr: Ipv4Addr,
    ) -> Result<Option<Owner>, IpamError> {
        self.check_inside(pool, addr)?;
        if !self.load_meta(pool)? {
            return Ok(None);
        }
        let block = block_of(addr);
        let Some(owner) = self.shard(pool, block)?.remove(&addr) else {
            return Ok(None);
        };
        self.flush_shard(pool, block)?;
        self.set_full(pool, block, false)?;
        let bucket = self.bucket(pool, &owner)?;
        if bucket.get(&owner) == Some(&addr) {
            bucket.remove(&owner);
            self.flush_bucket(pool, &owner)?;
        }
        Ok(Some(owner))
    }

    /// Releases whatever `owner` holds in every recorded pool; returns what
    /// was released. Used when an object is deleted.
    pub fn release_owner_everywhere(
        &mut self,
        owner: &Owner,
    ) -> Result<Vec<(PoolId, Ipv4Addr)>, IpamError> {
        let mut released = Vec::new();
        for id in self.pools()? {
            let Some(pool) = self.recorded_pool(&id)? else {
                continue;
            };
            if let Some(addr) = self.release_owner(&pool, owner)? {
                released.push((id, addr));
            }
        }
        Ok(released)
    }

    /// Every allocation of `pool` (reads all its shards).
    pub fn list(&mut self, pool: &Pool) -> Result<BTreeMap<Ipv4Addr, Owner>, IpamError> {
        let mut all = BTreeMap::new();
        if !self.load_meta(pool)? {
            return Ok(all);
        }
        for block in pool.blocks() {
            all.extend(
                self.shard(pool, block)?
                    .iter()
                    .map(|(a, o)| (*a, o.clone())),
            );
        }
        Ok(all)
    }

    /// The ids of every pool recorded in the store.
    pub fn pools(&self) -> Result<Vec<PoolId>, IpamError> {
        let dir = layout::pools_dir();
        let names = self.store.list(&dir).map_err(store_err("list", &dir))?;
        let mut ids = names
            .iter()
            .map(|name| {
                name.parse().map_err(|_| IpamError::Corrupt {
                    path: format!("{dir}/{name}"),
                    reason: "the name is not a valid pool id".into(),
                })
            })
            .collect::<Result<Vec<PoolId>, _>>()?;
        ids.sort();
        Ok(ids)
    }

    /// The pool recorded under `id` (with its recorded CIDR), if any.
    pub fn recorded_pool(&mut self, id: &PoolId) -> Result<Option<Pool>, IpamError> {
        let cidr = match self.metas.get(id) {
            Some(meta) => meta.as_ref().map(|m| m.cidr),
            None => {
                let path = meta_path(id);
                let meta = match self.store.read(&path).map_err(store_err("read", &path))? {
                    Some(bytes) => Some(layout::decode_meta(&path, &bytes)?),
                    None => None,
                };
                let cidr = meta.as_ref().map(|m| m.cidr);
                self.metas.insert(id.clone(), meta);
                cidr
            }
        };
        cidr.map(|cidr| Pool::new(id.clone(), cidr)).transpose()
    }

    /// Removes an empty pool's files. Refused while any address is held.
    pub fn remove_pool(&mut self, pool: &Pool) -> Result<(), IpamError> {
        let held = self.list(pool)?.len();
        if held > 0 {
            return Err(IpamError::PoolNotEmpty {
                pool: pool.id().clone(),
                count: held,
            });
        }
        let id = pool.id();
        let files = pool
            .blocks()
            .map(|b| shard_path(id, b))
            .chain((0..bucket_count(pool)).map(|b| bucket_path(id, b)))
            .chain([meta_path(id)]);
        self.changing()?;
        for path in files {
            self.store
                .remove(&path)
                .map_err(store_err("remove", &path))?;
            self.shards.remove(&path);
            self.buckets.remove(&path);
        }
        self.metas.insert(id.clone(), None);
        Ok(())
    }

    // ----- internals -----

    fn check_inside(&self, pool: &Pool, addr: Ipv4Addr) -> Result<(), IpamError> {
        if pool.contains(addr) {
            Ok(())
        } else {
            Err(IpamError::OutsidePool {
                pool: pool.id().clone(),
                cidr: pool.cidr(),
                addr,
            })
        }
    }

    /// Loads `pool.json` into the cache and checks its CIDR; true if the
    /// pool is recorded.
    fn load_meta(&mut self, pool: &Pool) -> Result<bool, IpamError> {
        let Some(recorded) = self.recorded_pool(pool.id())? else {
            return Ok(false);
        };
        if recorded.cidr() != pool.cidr() {
            return Err(IpamError::PoolMismatch {
                pool: pool.id().clone(),
                recorded: recorded.cidr(),
                requested: pool.cidr(),
            });
        }
        Ok(true)
    }

    fn ensure_meta(&mut self, pool: &Pool) -> Result<(), IpamError> {
        if !self.load_meta(pool)? {
            self.write_meta(pool.id(), PoolMeta::new(pool.cidr()))?;
        }
        Ok(())
    }

    /// Before the first write of this session: replace the change token
    /// (see [`super::listing`]), so no cached listing survives the change.
    fn changing(&mut self) -> Result<(), IpamError> {
        if !self.token_replaced {
            super::listing::new_token(self.store)?;
            self.token_replaced = true;
        }
        Ok(())
    }

    fn write_meta(&mut self, id: &PoolId, meta: PoolMeta) -> Result<(), IpamError> {
        self.changing()?;
        let path = meta_path(id);
        let result = layout::encode_meta(&path, &meta).and_then(|b| {
            self.store
                .write(&path, &b)
                .map_err(store_err("write", &path))
        });
        match result {
            Ok(()) => self.metas.insert(id.clone(), Some(meta)),
            Err(_) => self.metas.remove(id),
        };
        result
    }

    /// Marks `block` full or not in `pool.json`, writing only on change.
    fn set_full(&mut self, pool: &Pool, block: u32, full: bool) -> Result<(), IpamError> {
        let Some(Some(meta)) = self.metas.get(pool.id()) else {
            return Ok(());
        };
        let net = block_net(block);
        if meta.full.contains(&net) == full {
            return Ok(());
        }
        let mut meta = meta.clone();
        if full {
            meta.full.insert(net);
        } else {
            meta.full.remove(&net);
        }
        self.write_meta(pool.id(), meta)
    }

    fn shard(&mut self, pool: &Pool, block: u32) -> Result<&mut Shard, IpamError> {
        cached(
            self.store,
            &mut self.shards,
            shard_path(pool.id(), block),
            |p, b| layout::decode_shard(p, b, pool, block),
        )
    }

    fn bucket(&mut self, pool: &Pool, owner: &Owner) -> Result<&mut Bucket, IpamError> {
        let path = bucket_path(pool.id(), bucket_of(pool, owner));
        cached(self.store, &mut self.buckets, path, |p, b| {
            layout::decode_bucket(p, b, pool)
        })
    }

    fn flush_shard(&mut self, pool: &Pool, block: u32) -> Result<(), IpamError> {
        self.changing()?;
        flush(self.store, &mut self.shards, &shard_path(pool.id(), block))
    }

    fn flush_bucket(&mut self, pool: &Pool, owner: &Owner) -> Result<(), IpamError> {
        self.changing()?;
        let path = bucket_path(pool.id(), bucket_of(pool, owner));
        flush(self.store, &mut self.buckets, &path)
    }

    /// The lowest free ordinary address in `block`.
    fn free_in_block(&mut self, pool: &Pool, block: u32) -> Result<Option<Ipv4Addr>, IpamError> {
        // Walk the block and the (sorted) taken addresses side by side.
        let mut taken = self
            .shard(pool, block)?
            .keys()
            .map(|a| u32::from(*a))
            .peekable();
        for n in pool.block_range(block) {
            while taken.next_if(|&t| t < n).is_some() {}
            if taken.next_if_eq(&n).is_none() && pool.reserved(Ipv4Addr::from(n)).is_none() {
                return Ok(Some(Ipv4Addr::from(n)));
            }
        }
        Ok(None)
    }

    /// Finds a free ordinary address: first in blocks not marked full, then
    /// (before giving up) in blocks marked full, in case a mark is stale.
    fn find_free(&mut self, pool: &Pool) -> Result<Ipv4Addr, IpamError> {
        let marked: BTreeSet<u32> = match self.metas.get(pool.id()) {
            Some(Some(meta)) => meta.full.iter().map(|n| u32::from(n.network())).collect(),
            _ => BTreeSet::new(),
        };
        for second_pass in [false, true] {
            for block in pool.blocks() {
                let is_marked = marked.contains(&block);
                if is_marked != second_pass {
                    continue;
                }
                if let Some(addr) = self.free_in_block(pool, block)? {
                    return Ok(addr);
                }
                self.set_full(pool, block, true)?;
            }
        }
        Err(IpamError::Exhausted {
            pool: pool.id().clone(),
            cidr: pool.cidr(),
            size: pool.size(),
            allocatable: pool.allocatable(),
        })
    }

    /// Gives `owner` exactly `addr` (already checked to be requestable).
    fn claim(&mut self, pool: &Pool, addr: Ipv4Addr, owner: &Owner) -> Result<Ipv4Addr, IpamError> {
        self.check_inside(pool, addr)?;
        if let Some(held) = self.lookup(pool, owner)? {
            if held == addr {
                return Ok(addr);
            }
            return Err(IpamError::OwnerConflict {
                pool: pool.id().clone(),
                owner: owner.clone(),
                held,
                requested: addr,
            });
        }
        self.ensure_meta(pool)?;
        if let Some(holder) = self.shard(pool, block_of(addr))?.get(&addr) {
            return Err(IpamError::AddressInUse {
                pool: pool.id().clone(),
                addr,
                holder: holder.clone(),
            });
        }
        self.record(pool, addr, owner)?;
        Ok(addr)
    }

    /// Records `addr` → `owner`: the owner index first, then the shard (the
    /// truth), then the block's full mark.
    fn record(&mut self, pool: &Pool, addr: Ipv4Addr, owner: &Owner) -> Result<(), IpamError> {
        self.bucket(pool, owner)?.insert(owner.clone(), addr);
        self.flush_bucket(pool, owner)?;
        let block = block_of(addr);
        self.shard(pool, block)?.insert(addr, owner.clone());
        self.flush_shard(pool, block)?;
        let full = self.free_in_block(pool, block)?.is_none();
        self.set_full(pool, block, full)
    }
}
