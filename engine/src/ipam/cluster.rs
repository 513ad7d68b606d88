//! IPAM on the cluster filesystem: [`Store`] as an [`IpamStore`]. Files go
//! under `<root>/orbitlab/ipam/`, replaced by rename; the lock is the
//! cluster lock [`Lock::Ipam`] (also taken for VNet tag reservations). The
//! paths IPAM passes in come from [`crate::store::layout`].

use super::store::{IpamStore, StoreError};
use crate::store::{Lock, LockGuard, Store, StorePath};

impl IpamStore for Store {
    type Guard = LockGuard;

    fn lock(&self) -> Result<LockGuard, StoreError> {
        Ok(Store::lock(self, Lock::Ipam.name())?)
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
