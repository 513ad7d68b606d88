//! The uplink (address, network and MTU of its uplink bridge) each member
//! node had when it was last online. EVPN peers and exit nodes follow
//! cluster *membership*, not who is online: a node that reboots keeps its
//! place in the Backplane from this record, so its outage rewrites no SDN
//! configuration. A node that joins is recorded when first seen online; a
//! node removed from the cluster is dropped.
//!
//! On disk: `<root>/orbitlab/sdn/uplinks.json` ([`layout::uplinks`],
//! `{"pve1": {"address": "192.168.1.11", "network": "192.168.1.0/24",
//! "mtu": 1500}}`), written only by the cluster-scoped reconciler, which
//! holds [`crate::store::Lock::Reconcile`] for its whole run.

use std::collections::BTreeMap;

use orbitlab_manifests::NodeName;

use super::observed::Uplink;
use crate::store::layout;
use crate::store::{Store, StoreError};

/// Every recorded uplink, by node.
pub fn read(store: &Store) -> Result<BTreeMap<NodeName, Uplink>, StoreError> {
    let Some(bytes) = store.read(&layout::uplinks())? else {
        return Ok(BTreeMap::new());
    };
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: store.absolute(&layout::uplinks()),
        reason: format!(
            "not an uplink record ({e}); delete it: agents record every online node's uplink again"
        ),
    })
}

/// Replaces the record.
pub fn write(store: &Store, uplinks: &BTreeMap<NodeName, Uplink>) -> Result<(), StoreError> {
    let text = serde_json::to_vec_pretty(uplinks).expect("uplinks encode");
    store.write(&layout::uplinks(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_a_missing_record_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        assert!(read(&store).unwrap().is_empty());
        let uplinks = BTreeMap::from([(
            "pve1".parse().unwrap(),
            Uplink {
                address: "192.168.1.11".parse().unwrap(),
                network: "192.168.1.0/24".parse().unwrap(),
                mtu: 1500,
            },
        )]);
        write(&store, &uplinks).unwrap();
        assert_eq!(read(&store).unwrap(), uplinks);
        std::fs::write(dir.path().join("orbitlab/sdn/uplinks.json"), "{").unwrap();
        let err = read(&store).unwrap_err().to_string();
        assert!(err.contains("uplinks.json"), "{err}");
    }
}
