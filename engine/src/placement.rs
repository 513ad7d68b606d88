//! Leader-free choice of a node: rendezvous (highest random weight) hashing.
//!
//! Every agent computes the same answer from the same member list, so
//! cluster-scoped work has exactly one owner among the online nodes, and
//! when a node leaves only the keys it owned move.

/// The node among `nodes` that owns `key`; `None` when there is none.
pub fn rendezvous<'a>(key: &str, nodes: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nodes
        .into_iter()
        .max_by_key(|node| (weight(node, key), *node))
}

/// FNV-1a over `node`, a separator and `key`, then a 64-bit finaliser
/// (splitmix64) so that similar names spread evenly. Stable across builds
/// and platforms, unlike `std`'s hasher.
fn weight(node: &str, key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain([0]).chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_answer_in_any_order_and_stable_when_others_leave() {
        let nodes = ["pve1", "pve2", "pve3"];
        let reversed = ["pve3", "pve2", "pve1"];
        let mut moved = 0;
        let mut counts = std::collections::BTreeMap::new();
        for i in 0..3000 {
            let key = format!("sector/s{i}");
            let owner = rendezvous(&key, nodes).unwrap();
            assert_eq!(rendezvous(&key, reversed), Some(owner));
            *counts.entry(owner).or_insert(0) += 1;
            let without_pve3 = rendezvous(&key, ["pve1", "pve2"]).unwrap();
            if owner != "pve3" {
                assert_eq!(without_pve3, owner, "a key moved although its owner stayed");
            } else {
                moved += 1;
            }
        }
        // Each node owns roughly a third.
        for (node, n) in counts {
            assert!((800..1200).contains(&n), "{node} owns {n} of 3000");
        }
        assert!(moved > 0);
        assert_eq!(rendezvous("x", std::iter::empty()), None);
    }
}
