//! `/nodes` as people read it: every node of the cluster, with what pmxcfs
//! says of it (member, online), what its agent's heartbeat says (alive,
//! version, heartbeat age, last pass, role, prerequisites, whether the
//! vault is sealed for it), and its Node
//! manifest when there is one. Nodes that are only in one of those places
//! are listed too, so a node without an agent, or an agent's leftover
//! heartbeat of a node that left, shows up.
//!
//! Reads `<root>/.members`, `orbitlab/agents/`, the Node manifests and
//! statuses; no writes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use orbitlab_manifests::{Kind, Name};
use serde_json::{Value, json};

use super::view;
use crate::liveness::{self, AgentRecord, Members};
use crate::store::{ObjectError, Store, node_name};

/// One row per node (every node when `only` is `None`), sorted by name.
pub(crate) fn rows(store: &Store, only: Option<&Name>) -> Result<Vec<Value>, ObjectError> {
    let members = Members::read(store.root(), &node_name());
    let records = liveness::read_all(store)?;
    let mut manifests: BTreeMap<String, Value> = BTreeMap::new();
    let mut statuses = store.read_statuses(Kind::Node)?;
    for m in store.read_manifests_for_display(Kind::Node)? {
        let name = m.value.name().to_string();
        let status = statuses.remove(&name);
        manifests.insert(name, view::object(&m.value, status.as_ref()));
    }
    let names: BTreeSet<&String> = members
        .nodes
        .keys()
        .chain(records.keys())
        .chain(manifests.keys())
        .filter(|n| only.is_none_or(|o| o.as_ref() == n.as_str()))
        .collect();
    let now = SystemTime::now();
    Ok(names
        .into_iter()
        .map(|name| {
            let member = members.nodes.get(name);
            let record = records.get(name);
            row(
                name,
                member.map(|m| m.online),
                record,
                manifests.get(name),
                now,
            )
        })
        .collect())
}

fn row(
    name: &str,
    online: Option<bool>,
    record: Option<&Result<AgentRecord, String>>,
    manifest: Option<&Value>,
    now: SystemTime,
) -> Value {
    let mut row = json!({
        "name": name,
        "member": online.is_some(),
        "online": online.unwrap_or(false),
        "agent": "none",
        "manifest": manifest.cloned().unwrap_or(Value::Null),
    });
    match record {
        None => {}
        Some(Err(problem)) => {
            row["agent"] = json!("unreadable");
            row["problem"] = json!(problem);
        }
        Some(Ok(r)) => {
            let state = if r.stopped {
                "stopped"
            } else if !r.fresh(now) {
                "silent"
            } else if r.standing_down.is_some() {
                "standing down"
            } else {
                "alive"
            };
            let failed: Vec<&str> = r.host.failed().map(|c| c.id.as_str()).collect();
            let extra = json!({
                "agent": state,
                "version": r.version.to_string(),
                "heartbeat_age_s": tenths(r.age(now).as_secs_f64()),
                "owner": r.owner && state == "alive",
                "last_pass": r.last_pass.as_ref().map_or_else(
                    || "none yet".to_owned(),
                    |p| {
                        let ago = liveness::unix_ms(now).saturating_sub(p.finished_ms) as f64 / 1000.0;
                        match &p.error {
                            Some(_) => format!("{}: could not run, {:.0} s ago", p.scope, ago),
                            None => format!(
                                "{}: {} step(s), {} failed, {:.0} s ago",
                                p.scope, p.steps, p.failed, ago
                            ),
                        }
                    },
                ),
                // `sealed`: this node's agent cannot read the vault until
                // it is unsealed (`orbitlab --host ... vault unseal`).
                "vault": r.vault.map_or("unknown", crate::vault::SealState::as_str),
                "prerequisites": if failed.is_empty() { "ok".to_owned() } else { format!("failed: {}", failed.join(", ")) },
                "heartbeat": serde_json::to_value(r).unwrap_or(Value::Null),
            });
            if let (Value::Object(row), Value::Object(extra)) = (&mut row, extra) {
                row.extend(extra);
            }
        }
    }
    row
}

fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
