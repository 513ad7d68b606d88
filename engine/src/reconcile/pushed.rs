//! Which configuration each container last received:
//! `<root>/orbitlab/status/containers/<vmid>.json` ([`layout::pushed`])
//! (`{"node": "pve1", "digest": "..."}`), written only by the agent of the
//! node that runs the container, right after it pushed and reloaded that
//! configuration; removed when the container is destroyed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::layout;
use crate::store::{Store, StoreError};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pushed {
    node: String,
    digest: String,
}

/// Records that container `vmid` on `node` runs configuration `digest`.
pub fn record(store: &Store, vmid: u32, node: &str, digest: &str) -> Result<(), StoreError> {
    let body = serde_json::to_vec(&Pushed {
        node: node.to_owned(),
        digest: digest.to_owned(),
    })
    .expect("encodes");
    store.write(&layout::pushed(vmid), &body)
}

/// Forgets a destroyed container.
pub fn forget(store: &Store, vmid: u32) -> Result<(), StoreError> {
    store.remove(&layout::pushed(vmid)).map(drop)
}

/// Every record: VMID → digest. An unreadable record counts as "nothing
/// pushed" (the configuration is pushed again).
pub fn read_all(store: &Store) -> Result<BTreeMap<u32, String>, StoreError> {
    Ok(store
        .read_dir(&layout::pushed_dir())?
        .into_iter()
        .filter_map(|(file, bytes)| {
            let vmid = layout::pushed_file_vmid(&file)?;
            let pushed: Pushed = serde_json::from_slice(&bytes).ok()?;
            Some((vmid, pushed.digest))
        })
        .collect())
}
