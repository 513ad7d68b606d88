//! Mirrors the cluster's shape into a pmxcfs-like directory, as pmxcfs
//! shows it under `/etc/pve`: `.members` (nodes, online, ip, quorate),
//! `.vmlist` (guest id -> node, type, version) and `.version` (pmxcfs's
//! start time and change counters: `vmlist`, `clinfo`, and one per watched
//! SDN file — `sdn/controllers.cfg`, `sdn/zones.cfg`, `sdn/vnets.cfg`,
//! `sdn/subnets.cfg`, `sdn/.running-config` — bumped whenever that file's
//! content changes, as pmxcfs's `memdb_change_array` does; the simulator
//! renders each file's content from its SDN state only to notice
//! changes). Each file is replaced
//! atomically (write `NAME.tmp.PID`, then rename), only when its content
//! changes. Writes only inside the directory the test or sandbox gave.
//!
//! A pmxcfs simulator (`orbitlab-pmxcfs-sim`) refuses writes to `.members`
//! and `.vmlist` through its mount, as pmxcfs does; it serves them from
//! `members.json` and `vmlist.json` in its control directory instead.
//! [`write_control`] feeds that directory with the same content.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::state::{ClusterState, unix_now};

/// pmxcfs's `.version` counters for the files the simulator keeps.
#[derive(Debug)]
pub(crate) struct VersionFile {
    starttime: u64,
    /// Path → (content last seen, its counter).
    files: BTreeMap<&'static str, (String, u64)>,
}

impl VersionFile {
    /// Counters at pmxcfs start: every file at 1.
    pub(crate) fn new(st: &ClusterState) -> Self {
        let files = sdn_files(st)
            .into_iter()
            .map(|(path, content)| (path, (content, 1)))
            .collect();
        VersionFile {
            starttime: unix_now(),
            files,
        }
    }

    /// Bumps the counter of every file whose content changed; whether any
    /// did.
    pub(crate) fn update(&mut self, st: &ClusterState) -> bool {
        let mut changed = false;
        for (path, content) in sdn_files(st) {
            let entry = self.files.entry(path).or_insert((String::new(), 0));
            if entry.0 != content {
                entry.0 = content;
                entry.1 += 1;
                changed = true;
            }
        }
        changed
    }

    /// `.version` content.
    pub(crate) fn json(&self, st: &ClusterState) -> Value {
        let mut out = Map::new();
        out.insert("starttime".into(), json!(self.starttime));
        out.insert("clinfo".into(), json!(st.members_version));
        out.insert("vmlist".into(), json!(st.vmlist_version));
        for (path, (_, version)) in &self.files {
            out.insert((*path).into(), json!(version));
        }
        out.insert("kvstore".into(), json!({}));
        Value::Object(out)
    }
}

/// The SDN files pmxcfs counts changes of, each rendered from the state.
fn sdn_files(st: &ClusterState) -> [(&'static str, String); 5] {
    let current = &st.sdn.current;
    [
        ("sdn/controllers.cfg", render(&current.controllers)),
        ("sdn/zones.cfg", render(&current.zones)),
        ("sdn/vnets.cfg", render(&current.vnets)),
        ("sdn/subnets.cfg", render(&current.subnets)),
        ("sdn/.running-config", render(&st.sdn.running)),
    ]
}

/// A rendering that changes whenever `value` does.
fn render<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

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
pub(crate) fn write_all(dir: &Path, st: &ClusterState, version: &VersionFile) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    replace_if_changed(dir, ".members", &members_json(st))?;
    replace_if_changed(dir, ".vmlist", &vmlist_json(st))?;
    replace_if_changed(dir, ".version", &version.json(st))
}
