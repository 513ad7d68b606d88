//! IPAM on the cluster filesystem: [`Store`] as an [`IpamStore`]. Files go
//! under `<root>/orbitlab/ipam/`, replaced by rename; the lock is the
//! cluster lock `orbitlab-ipam` (also taken for VNet tag reservations).

use super::store::{IpamStore, StoreError};
use crate::store::{LockGuard, LockName, Store, StorePath};

/// The cluster lock that serialises every IPAM change.
pub fn lock_name() -> LockName {
    "ipam".parse().expect("constant lock name is valid")
}

impl IpamStore for Store {
    type Guard = LockGuard;

    fn lock(&self) -> Result<LockGuard, StoreError> {
        Ok(Store::lock(self, &lock_name())?)
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(Store::read(self, &StorePath::config(path)?)?)
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<(), StoreError> {
        Ok(Store::write(self, &StorePath::config(path)?, bytes)?)
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        Store::remove(self, &StorePath::config(path)?)?;
        Ok(())
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, StoreError> {
        Ok(Store::list(self, &StorePath::config(dir)?)?)
    }
}
