//! Mirrors the cluster's shape into a pmxcfs-like directory, as pmxcfs
//! shows it under `/etc/pve`: `.members` (nodes, online, ip, quorate) and
//! `.vmlist` (guest id -> node, type, version). Each file is replaced
//! atomically (write `NAME.tmp.PID`, then rename), only when its content
//! changes. Writes only inside the directory the test or sandbox gave.
//!
//! A pmxcfs simulator (`orbitlab-pmxcfs-sim`) refuses writes to `.members`
//! and `.vmlist` through its mount, as pmxcfs does; it serves them from
//! `members.json` and `vmlist.json` in its control directory instead.
//! [`write_control`] feeds that directory with the same content.

use std::io;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::state::ClusterState;

/// `.members` content.
pub fn members_json(st: &ClusterState) -> Value {
    let mut nodelist = Map::new();
    for (name, n) in &st.nodes {
        nodelist.insert(
            name.clone(),
            json!({ "id": n.nodeid, "online": u8::from(n.online), "ip": n.ip.to_string() }),
        );
    }
    json!({
        "nodename": st.nodes.keys().next().cloned().unwrap_or_default(),
        "version": st.members_version,
        "cluster": {
            "name": st.cluster_name, "version": st.members_version,
            "nodes": st.nodes.len(), "quorate": u8::from(st.quorate()),
        },
        "nodelist": nodelist,
    })
}

/// `.vmlist` content.
pub fn vmlist_json(st: &ClusterState) -> Value {
    let mut ids = Map::new();
    for (vmid, g) in &st.guests {
        ids.insert(
            vmid.to_string(),
            json!({ "node": g.node, "type": "lxc", "version": g.version }),
        );
    }
    json!({ "version": st.vmlist_version, "ids": ids })
}

fn replace_if_changed(dir: &Path, name: &str, value: &Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)? + "\n";
    let path = dir.join(name);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

/// Feed both files to a pmxcfs simulator's control directory `dir` (as
/// `members.json` and `vmlist.json`), which serves them on its mount.
pub fn write_control(dir: &Path, st: &ClusterState) -> io::Result<()> {
    replace_if_changed(dir, "members.json", &members_json(st))?;
    replace_if_changed(dir, "vmlist.json", &vmlist_json(st))
}

/// Write both files into `dir` (created if missing).
pub fn write_all(dir: &Path, st: &ClusterState) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    replace_if_changed(dir, ".members", &members_json(st))?;
    replace_if_changed(dir, ".vmlist", &vmlist_json(st))
}
