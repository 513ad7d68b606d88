//! What pmxcfs says about the cluster's shape: `<root>/.members` (JSON:
//! `cluster.quorate`, and per node in `nodelist` whether it is `online`
//! and its `ip`).
//!
//! A node without `.members` (a standalone Proxmox node, or a plain
//! directory standing in for `/etc/pve`) is a cluster of one, quorate. An
//! unreadable or malformed `.members` is not guessed at: the cluster is
//! treated as not quorate, with no members, until it can be read. Reads
//! only.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

use serde_json::Value;

/// One member node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Whether corosync sees it now.
    pub online: bool,
    /// Its cluster address, when pmxcfs knows it.
    pub ip: Option<String>,
}

/// What `.members` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// Whether the cluster has quorum (writes to pmxcfs succeed).
    pub quorate: bool,
    /// Every member node, online or not, by name.
    pub nodes: BTreeMap<String, Member>,
    /// Why the file could not be used, when it could not.
    pub problem: Option<String>,
}

impl Members {
    /// Reads `<root>/.members`; `local` is this node, the only member when
    /// the file does not exist.
    pub fn read(root: &Path, local: &str) -> Members {
        let path = root.join(".members");
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&bytes).unwrap_or_else(|reason| {
                Members::unusable(format!("{}: {reason}", path.display()))
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Members::single(local),
            Err(e) => Members::unusable(format!("{}: {e}", path.display())),
        }
    }

    fn single(node: &str) -> Members {
        let member = Member {
            online: true,
            ip: None,
        };
        Members {
            quorate: true,
            nodes: BTreeMap::from([(node.to_owned(), member)]),
            problem: None,
        }
    }

    fn unusable(problem: String) -> Members {
        Members {
            quorate: false,
            nodes: BTreeMap::new(),
            problem: Some(problem),
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
            return Ok(Members::single(name));
        };
        let nodelist = nodelist.as_object().ok_or("`nodelist` is not an object")?;
        let nodes = nodelist
            .iter()
            .map(|(name, node)| {
                let member = Member {
                    online: node.get("online").is_some_and(truthy),
                    ip: node.get("ip").and_then(Value::as_str).map(str::to_owned),
                };
                (name.clone(), member)
            })
            .collect();
        Ok(Members {
            quorate: value.pointer("/cluster/quorate").is_some_and(truthy),
            nodes,
            problem: None,
        })
    }

    /// Online nodes, sorted by name.
    pub fn online(&self) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(|(_, m)| m.online)
            .map(|(n, _)| n.as_str())
    }

    /// Whether `node` is a member and online.
    pub fn is_online(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|m| m.online)
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

    pub(crate) const THREE: &str = r#"{"nodename":"pve1","version":7,
        "cluster":{"name":"lab","version":3,"nodes":3,"quorate":1},
        "nodelist":{"pve1":{"id":1,"online":1,"ip":"10.0.0.1"},
                    "pve2":{"id":2,"online":1,"ip":"10.0.0.2"},
                    "pve3":{"id":3,"online":0,"ip":"10.0.0.3"}}}"#;

    #[test]
    fn members_online_nodes_and_quorum() {
        let members = Members::parse(THREE.as_bytes()).unwrap();
        assert!(members.quorate);
        assert_eq!(members.nodes.len(), 3, "offline nodes are members too");
        assert_eq!(members.online().collect::<Vec<_>>(), ["pve1", "pve2"]);
        assert_eq!(members.nodes["pve3"].ip.as_deref(), Some("10.0.0.3"));
        assert!(!members.is_online("pve3") && !members.is_online("pve9"));
        let no_quorum = THREE.replace(r#""quorate":1"#, r#""quorate":0"#);
        assert!(!Members::parse(no_quorum.as_bytes()).unwrap().quorate);
    }

    #[test]
    fn standalone_missing_and_broken_files() {
        let standalone = Members::parse(br#"{"nodename":"pve","version":0}"#).unwrap();
        assert!(standalone.quorate && standalone.is_online("pve"));
        let dir = tempfile::tempdir().unwrap();
        let missing = Members::read(dir.path(), "pve9");
        assert!(missing.quorate && missing.is_online("pve9"));
        std::fs::write(dir.path().join(".members"), "{ not json").unwrap();
        let broken = Members::read(dir.path(), "pve9");
        assert!(!broken.quorate && broken.nodes.is_empty());
        assert!(broken.problem.unwrap().contains(".members: not JSON"));
    }
}
