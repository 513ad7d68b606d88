//! Shared by the `ipam_*` integration tests: pools, owners, and a store
//! wrapper that counts operations and can inject a failure.

#![allow(dead_code)] // each test binary uses a different subset

use std::cell::Cell;
use std::collections::BTreeMap;

use orbitlab_engine::ipam::{IpamStore, MemoryStore, Owner, Pool, PoolId, StoreError};

pub fn pool(id: &str, cidr: &str) -> Pool {
    Pool::new(id.parse::<PoolId>().unwrap(), cidr.parse().unwrap()).unwrap()
}

pub fn owner(s: &str) -> Owner {
    s.parse().unwrap()
}

/// When an injected failure hits a mutation (write or remove).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The mutation is not performed and an error is returned.
    Before,
    /// The mutation is performed, then an error is returned (like a
    /// timeout after pmxcfs committed the write).
    After,
}

/// Wraps a [`MemoryStore`]; counts reads and mutations, and fails the
/// mutation number `fail_at` (1-based) if set.
#[derive(Debug, Default)]
pub struct TestStore {
    pub inner: MemoryStore,
    pub reads: Cell<usize>,
    pub read_bytes: Cell<usize>,
    pub mutations: Cell<usize>,
    pub written_bytes: Cell<usize>,
    pub fail_at: Option<(usize, Fault)>,
}

impl TestStore {
    pub fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            ..Self::default()
        }
    }

    pub fn failing(inner: MemoryStore, at: usize, fault: Fault) -> Self {
        Self {
            inner,
            fail_at: Some((at, fault)),
            ..Self::default()
        }
    }

    fn mutate(&self, op: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
        let n = self.mutations.get() + 1;
        self.mutations.set(n);
        match self.fail_at {
            Some((at, Fault::Before)) if at == n => Err("injected failure (before)".into()),
            Some((at, Fault::After)) if at == n => {
                op()?;
                Err("injected failure (after)".into())
            }
            _ => op(),
        }
    }
}

impl IpamStore for TestStore {
    type Guard = <MemoryStore as IpamStore>::Guard;

    fn lock(&self) -> Result<Self::Guard, StoreError> {
        self.inner.lock()
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.reads.set(self.reads.get() + 1);
        let got = self.inner.read(path)?;
        self.read_bytes
            .set(self.read_bytes.get() + got.as_ref().map_or(0, Vec::len));
        Ok(got)
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.written_bytes
            .set(self.written_bytes.get() + bytes.len());
        self.mutate(|| self.inner.write(path, bytes))
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        self.mutate(|| self.inner.remove(path))
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(dir)
    }
}

/// The raw on-disk view of one pool: (address → owner) from the address
/// shards and (owner → address) from the owner index, read straight from
/// the JSON files.
pub fn raw_view(
    store: &MemoryStore,
    pool: &str,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut shards = BTreeMap::new();
    let mut index = BTreeMap::new();
    for (path, _) in store.sizes() {
        let bytes = store.read(&path).unwrap().unwrap();
        let target = if path.starts_with(&format!("ipam/{pool}/addr/")) {
            &mut shards
        } else if path.starts_with(&format!("ipam/{pool}/owners/")) {
            &mut index
        } else {
            continue;
        };
        let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).unwrap();
        assert!(!map.is_empty(), "{path}: empty files are removed, not kept");
        target.extend(map);
    }
    (shards, index)
}
