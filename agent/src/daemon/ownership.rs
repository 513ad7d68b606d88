//! Who does what, decided afresh on every loop from `<root>/.members`
//! (pmxcfs' JSON view of the cluster: `cluster.quorate`, and per node in
//! `nodelist` whether it is `online`).
//!
//! Cluster-scoped work belongs to `rendezvous("cluster", online nodes)`:
//! every agent computes the same owner from the same file, with no leader
//! election and no state of its own. Two agents that briefly disagree (one
//! has seen a membership change, the other not yet) are still safe, because
//! cluster-scoped passes run under the `orbitlab-reconcile` lock.
//!
//! A node without `.members` (a standalone Proxmox node, or a plain
//! directory standing in for `/etc/pve`) is a cluster of one, quorate. An
//! unreadable or malformed `.members` is not guessed at: the agent treats
//! the cluster as not quorate and changes nothing until it can read it.
//! Reads only.

use std::io::ErrorKind;
use std::path::Path;

use serde_json::Value;

use orbitlab_engine::placement::rendezvous;

/// The rendezvous key of cluster-scoped work.
pub const CLUSTER_KEY: &str = "cluster";

/// What `.members` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// Whether the cluster has quorum (writes to pmxcfs succeed).
    pub quorate: bool,
    /// Online nodes, sorted.
    pub online: Vec<String>,
    /// Why the file could not be used, when it could not.
    pub problem: Option<String>,
}

impl Members {
    /// Reads `<root>/.members`; `local` is this node, the only member when
    /// the file does not exist.
    pub fn read(root: &Path, local: &str) -> Members {
        let path = root.join(".members");
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&bytes).unwrap_or_else(|reason| Members {
                quorate: false,
                online: Vec::new(),
                problem: Some(format!("{}: {reason}", path.display())),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Members {
                quorate: true,
                online: vec![local.to_owned()],
                problem: None,
            },
            Err(e) => Members {
                quorate: false,
                online: Vec::new(),
                problem: Some(format!("{}: {e}", path.display())),
            },
        }
    }

    /// Parses pmxcfs' `.members` JSON.
    pub fn parse(bytes: &[u8]) -> Result<Members, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
        let Some(nodelist) = value.get("nodelist") else {
            // A standalone node: pmxcfs shows only `nodename`.
            let name = value
                .get("nodename")
                .and_then(Value::as_str)
                .ok_or("neither `nodelist` nor `nodename`")?;
            return Ok(Members {
                quorate: true,
                online: vec![name.to_owned()],
                problem: None,
            });
        };
        let nodelist = nodelist.as_object().ok_or("`nodelist` is not an object")?;
        let mut online: Vec<String> = nodelist
            .iter()
            .filter(|(_, node)| node.get("online").is_some_and(truthy))
            .map(|(name, _)| name.clone())
            .collect();
        online.sort();
        let quorate = value.pointer("/cluster/quorate").is_some_and(truthy);
        Ok(Members {
            quorate,
            online,
            problem: None,
        })
    }

    /// The node owning cluster-scoped work, if any node is online.
    pub fn cluster_owner(&self) -> Option<&str> {
        rendezvous(CLUSTER_KEY, self.online.iter().map(String::as_str))
    }

    /// Whether `node` owns cluster-scoped work.
    pub fn owns_cluster(&self, node: &str) -> bool {
        self.cluster_owner() == Some(node)
    }
}

/// pmxcfs writes flags as `1`/`0`; accept booleans too.
fn truthy(value: &Value) -> bool {
    value
        .as_u64()
        .map_or_else(|| value.as_bool().unwrap_or(false), |n| n != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: &str = r#"{"nodename":"pve1","version":7,
        "cluster":{"name":"lab","version":3,"nodes":3,"quorate":1},
        "nodelist":{"pve1":{"id":1,"online":1,"ip":"10.0.0.1"},
                    "pve2":{"id":2,"online":1,"ip":"10.0.0.2"},
                    "pve3":{"id":3,"online":0,"ip":"10.0.0.3"}}}"#;

    #[test]
    fn online_nodes_quorum_and_one_owner() {
        let members = Members::parse(THREE.as_bytes()).unwrap();
        assert!(members.quorate);
        assert_eq!(members.online, ["pve1", "pve2"]);
        let owner = members.cluster_owner().unwrap();
        assert_eq!(owner, rendezvous(CLUSTER_KEY, ["pve2", "pve1"]).unwrap());
        assert!(members.owns_cluster(owner));
        assert!(!members.owns_cluster("pve3"), "an offline node never owns");
        let no_quorum = THREE.replace(r#""quorate":1"#, r#""quorate":0"#);
        assert!(!Members::parse(no_quorum.as_bytes()).unwrap().quorate);
    }

    #[test]
    fn standalone_missing_and_broken_files() {
        let standalone = Members::parse(br#"{"nodename":"pve","version":0}"#).unwrap();
        assert_eq!(
            (standalone.quorate, standalone.online.clone()),
            (true, vec!["pve".to_owned()])
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = Members::read(dir.path(), "pve9");
        assert!(missing.quorate && missing.owns_cluster("pve9"));
        std::fs::write(dir.path().join(".members"), "{ not json").unwrap();
        let broken = Members::read(dir.path(), "pve9");
        assert!(!broken.quorate && broken.cluster_owner().is_none());
        assert!(broken.problem.unwrap().contains(".members: not JSON"));
    }
}
