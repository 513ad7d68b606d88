//! Guest configs in the tree: finding a VMID's owner and rendering `.vmlist`.
//!
//! pmxcfs derives `.vmlist` from `nodes/<node>/{qemu-server,lxc}/<vmid>.conf`
//! and refuses (`EEXIST`) a config whose VMID already belongs to another node
//! or guest type. This module does the same over [`Tree`]. Pure: no I/O.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

use crate::fs::{Content, Ino, ROOT_INO, Tree};
use crate::rules::{GuestConfig, GuestType, valid_node_name, vmid_of_config_name};

/// One guest config found in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Guest {
    pub node: OsString,
    pub kind: GuestType,
    pub version: u64,
}

fn node_dirs(tree: &Tree) -> Vec<(OsString, Ino)> {
    let Ok(nodes) = tree.lookup(ROOT_INO, OsStr::new("nodes")) else {
        return Vec::new();
    };
    tree.entries(nodes)
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _, is_dir)| *is_dir && valid_node_name(name))
        .map(|(name, ino, _)| (name, ino))
        .collect()
}

/// Every guest config in the tree, by VMID (the first one found wins if a
/// VMID is duplicated, which the rules below prevent).
pub(crate) fn guests(tree: &Tree) -> BTreeMap<u32, Guest> {
    let mut out = BTreeMap::new();
    for (node, node_ino) in node_dirs(tree) {
        for kind in GuestType::ALL {
            let Ok(dir) = tree.lookup(node_ino, OsStr::new(kind.dir_name())) else {
                continue;
            };
            for (name, ino, is_dir) in tree.entries(dir).unwrap_or_default() {
                let Some(vmid) = vmid_of_config_name(&name).filter(|_| !is_dir) else {
                    continue;
                };
                let Ok(file) = tree.get(ino) else { continue };
                if matches!(file.content, Content::File(_)) {
                    out.entry(vmid).or_insert_with(|| Guest {
                        node: node.clone(),
                        kind,
                        version: file.version,
                    });
                }
            }
        }
    }
    out
}

/// Whether writing `target` would give its VMID to a second node or type
/// (pmxcfs's `vmlist_different_vm_exists`). `moving` is the config being
/// renamed onto `target`, which may keep its own VMID (a migration).
pub(crate) fn conflicts(tree: &Tree, target: &GuestConfig, moving: Option<&GuestConfig>) -> bool {
    if moving.is_some_and(|m| m.vmid == target.vmid) {
        return false;
    }
    for (node, node_ino) in node_dirs(tree) {
        for kind in GuestType::ALL {
            if node == target.node && kind == target.kind {
                continue;
            }
            let exists = tree
                .lookup(node_ino, OsStr::new(kind.dir_name()))
                .and_then(|dir| tree.lookup(dir, OsStr::new(&format!("{}.conf", target.vmid))))
                .is_ok();
            if exists {
                return true;
            }
        }
    }
    false
}

/// `.vmlist` as pmxcfs shapes it: `{"version": N, "ids": {"100": {"node":
/// "pve1", "type": "qemu", "version": V}}}` (`ids` left out when empty).
pub(crate) fn render(tree: &Tree, version: u64) -> Vec<u8> {
    let ids: serde_json::Map<String, serde_json::Value> = guests(tree)
        .into_iter()
        .map(|(vmid, g)| {
            (
                vmid.to_string(),
                serde_json::json!({
                    "node": g.node.to_string_lossy(),
                    "type": g.kind.vmlist_name(),
                    "version": g.version,
                }),
            )
        })
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("version".into(), version.into());
    if !ids.is_empty() {
        doc.insert("ids".into(), ids.into());
    }
    let mut out = serde_json::to_vec_pretty(&serde_json::Value::Object(doc)).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::guest_config;

    fn put(tree: &mut Tree, path: &str) {
        let mut cur = ROOT_INO;
        let parts: Vec<&str> = path.split('/').collect();
        for (i, p) in parts.iter().enumerate() {
            let name = OsStr::new(p);
            cur = match tree.lookup(cur, name) {
                Ok(ino) => ino,
                Err(_) if i + 1 == parts.len() => tree.create(cur, name, 1).unwrap(),
                Err(_) => tree.mkdir(cur, name, 1).unwrap(),
            };
        }
    }

    fn cfg(path: &str) -> GuestConfig {
        guest_config(&path.split('/').collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn lists_guests_and_detects_conflicts() {
        let mut t = Tree::new(1);
        put(&mut t, "nodes/pve1/qemu-server/100.conf");
        put(&mut t, "nodes/pve2/lxc/101.conf");
        put(&mut t, "nodes/pve2/lxc/notes.txt");
        let g = guests(&t);
        assert_eq!(g.keys().copied().collect::<Vec<_>>(), vec![100, 101]);
        assert_eq!(g[&101].node, "pve2");
        assert!(conflicts(&t, &cfg("nodes/pve2/lxc/100.conf"), None));
        assert!(conflicts(&t, &cfg("nodes/pve1/lxc/100.conf"), None));
        assert!(!conflicts(
            &t,
            &cfg("nodes/pve1/qemu-server/100.conf"),
            None
        ));
        assert!(!conflicts(&t, &cfg("nodes/pve3/lxc/102.conf"), None));
        let moving = cfg("nodes/pve1/qemu-server/100.conf");
        assert!(!conflicts(
            &t,
            &cfg("nodes/pve2/qemu-server/100.conf"),
            Some(&moving)
        ));
        let json: serde_json::Value = serde_json::from_slice(&render(&t, 7)).unwrap();
        assert_eq!(json["version"], 7);
        assert_eq!(json["ids"]["100"]["type"], "qemu");
        assert_eq!(json["ids"]["101"]["node"], "pve2");
        let empty: serde_json::Value = serde_json::from_slice(&render(&Tree::new(1), 0)).unwrap();
        assert!(empty.get("ids").is_none());
    }
}
