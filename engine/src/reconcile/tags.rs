//! VNet tag reservations: which Sector holds which tag in 1001–9999.
//!
//! On disk: `<root>/orbitlab/sdn/vnet-tags.json` ([`layout::vnet_tags`],
//! `{"1001": "web"}`), changed only under the cluster lock [`Lock::Ipam`]. A tag is reserved
//! before any Proxmox object uses it and released only after Proxmox no
//! longer has the VNet, so an interrupted create or delete never lets two
//! Sectors share a tag.

use std::collections::BTreeMap;

use crate::store::layout::{self, Lock};
use crate::store::{Store, StoreError};

/// Every reservation: tag → Sector name.
pub fn read(store: &Store) -> Result<BTreeMap<u32, String>, StoreError> {
    let Some(bytes) = store.read(&layout::vnet_tags())? else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: store.absolute(&layout::vnet_tags()),
        reason: format!("not a VNet tag table ({e}); restore it from a backup of /etc/pve"),
    })
}

/// Why a tag could not be reserved.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("VNet tag {tag} is already reserved for sector {holder}")]
    Taken { tag: u32, holder: String },
}

/// Reserves `tag` for `sector` (idempotent for the same pair).
pub fn reserve(store: &Store, sector: &str, tag: u32) -> Result<(), TagError> {
    let _lock = store.lock(Lock::Ipam.name())?;
    let mut tags = read(store)?;
    match tags.get(&tag) {
        Some(holder) if holder == sector => return Ok(()),
        Some(holder) => {
            return Err(TagError::Taken {
                tag,
                holder: holder.clone(),
            });
        }
        None => {}
    }
    tags.insert(tag, sector.to_owned());
    write(store, &tags)?;
    Ok(())
}

/// Releases `tag` if `sector` holds it.
pub fn release(store: &Store, sector: &str, tag: u32) -> Result<(), StoreError> {
    let _lock = store.lock(Lock::Ipam.name())?;
    let mut tags = read(store)?;
    if tags.get(&tag).map(String::as_str) == Some(sector) {
        tags.remove(&tag);
        write(store, &tags)?;
    }
    Ok(())
}

fn write(store: &Store, tags: &BTreeMap<u32, String>) -> Result<(), StoreError> {
    let text = serde_json::to_vec_pretty(tags).expect("a map of numbers to strings encodes");
    store.write(&layout::vnet_tags(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_idempotent_exclusive_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        reserve(&store, "web", 1001).unwrap();
        reserve(&store, "web", 1001).unwrap();
        let err = reserve(&store, "db", 1001).unwrap_err().to_string();
        assert!(err.contains("already reserved for sector web"), "{err}");
        release(&store, "db", 1001).unwrap();
        assert_eq!(
            read(&store).unwrap().get(&1001).map(String::as_str),
            Some("web")
        );
        release(&store, "web", 1001).unwrap();
        assert!(read(&store).unwrap().is_empty());
    }
}
