//! An agent's heartbeat: `<root>/orbitlab/agents/<node>.json`
//! ([`layout::agent`]), rewritten by that node's agent every heartbeat
//! interval (a few hundred bytes, every few seconds: far below what
//! pmxcfs handles), read by the other agents (who is alive, which
//! version), `orbitlab get /nodes` and `orbitlab doctor`. Holds no secret.
//!
//! It also carries the last health probe of each OrbitLab appliance
//! container running on its node ([`crate::host::health`]): only that
//! node's agent can reach into them, and the owner of cluster-scoped work
//! reads them from here into the Sector statuses ([`probes_by_node`]).
//!
//! Readers ignore fields they do not know, so a newer agent may add some.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orbitlab_manifests::NodeName;
use serde::{Deserialize, Serialize};

use super::AgentVersion;
use crate::host::checks::HostReport;
use crate::host::health::ApplianceProbe;
use crate::store::{Store, StoreError, layout};

/// An agent's heartbeat record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub node: String,
    /// The agent's package version.
    pub version: AgentVersion,
    /// The status format it writes ([`crate::status::STATUS_FORMAT`]).
    pub status_format: u32,
    /// When this record was written (Unix milliseconds, the writer's clock).
    pub written_ms: u64,
    /// Counts the agent's heartbeats since it started: a reader that sees
    /// it move knows the agent is alive, whatever the clocks say.
    pub seq: u64,
    /// How often the agent writes this record.
    pub interval_ms: u64,
    /// When the agent started (Unix milliseconds).
    pub started_ms: u64,
    /// Whether it owns cluster-scoped work now.
    pub owner: bool,
    /// Why it changes nothing, when it stands down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing_down: Option<String>,
    /// Its last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pass: Option<LastPass>,
    /// Its node's prerequisites.
    #[serde(default)]
    pub host: HostReport,
    /// Written by an agent that stopped cleanly: dead at once, no need to
    /// wait for missed heartbeats.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
    /// The last health probe of each OrbitLab appliance container running
    /// on its node, by VMID (absent from records of older agents).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub appliances: BTreeMap<u32, ApplianceProbe>,
    /// Whether the vault is sealed for this agent (`plain`, `sealed`,
    /// `unsealed`; absent from older agents' records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<crate::vault::SealState>,
}

/// How an agent's last reconcile went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPass {
    /// `cluster` or `node`.
    pub scope: String,
    /// When it ended (Unix milliseconds).
    pub finished_ms: u64,
    pub took_ms: u64,
    /// Steps taken.
    pub steps: usize,
    /// Objects that failed.
    pub failed: usize,
    /// Why the whole reconcile could not run, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A reader counts an agent dead after this many missed heartbeats.
pub const MISSED_BEATS: u32 = 3;

impl AgentRecord {
    /// How long after its last write a reader counts the agent dead.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(1)) * MISSED_BEATS
    }

    /// The record's age at `now` by the wall clock (0 if written "in the
    /// future" by a node whose clock runs ahead).
    pub fn age(&self, now: SystemTime) -> Duration {
        Duration::from_millis(unix_ms(now).saturating_sub(self.written_ms))
    }

    /// Whether the agent looks alive at `now` by the wall clock (what a
    /// one-shot reader such as `orbitlab doctor` can tell; agents
    /// themselves go by [`super::Tracker`]).
    pub fn fresh(&self, now: SystemTime) -> bool {
        !self.stopped && self.age(now) <= self.timeout()
    }

    /// Writes the record of its node.
    pub fn write(&self, store: &Store) -> Result<(), StoreError> {
        let node: NodeName = self.node.parse().map_err(|e| StoreError::Corrupt {
            path: store.absolute(&layout::agents_dir()),
            reason: format!("invalid node name {:?}: {e}", self.node),
        })?;
        let body = serde_json::to_vec(self).expect("a record encodes");
        store.write(&layout::agent(&node), &body)
    }
}

/// Every record, by node; records that cannot be read are listed with the
/// reason.
pub fn read_all(
    store: &Store,
) -> Result<BTreeMap<String, Result<AgentRecord, String>>, StoreError> {
    Ok(store
        .read_dir(&layout::agents_dir())?
        .into_iter()
        .filter_map(|(file, bytes)| {
            let node = layout::record_file_name(&file)?.to_owned();
            let record = serde_json::from_slice::<AgentRecord>(&bytes)
                .map_err(|e| format!("unreadable heartbeat {file}: {e}"));
            Some((node, record))
        })
        .collect())
}

/// The appliance probes every readable record carries, by node (records
/// that cannot be read carry none).
pub fn probes_by_node(
    store: &Store,
) -> Result<BTreeMap<String, BTreeMap<u32, ApplianceProbe>>, StoreError> {
    Ok(read_all(store)?
        .into_iter()
        .filter_map(|(node, record)| Some((node, record.ok()?.appliances)))
        .filter(|(_, probes)| !probes.is_empty())
        .collect())
}

/// Puts `probes` into `node`'s record, for drivers that reconcile without
/// an agent on that node (tests, simulations); an agent publishes its
/// probes with its heartbeat instead. Keeps the rest of an existing
/// record; without one, writes a record marked `stopped` (so no reader
/// takes it for a live agent). True when an answer changed (see
/// [`crate::host::health::same_answers`]).
pub fn record_probes(
    store: &Store,
    node: &str,
    probes: BTreeMap<u32, ApplianceProbe>,
) -> Result<bool, StoreError> {
    let existing = read_all(store)?.remove(node).and_then(Result::ok);
    let changed = !crate::host::health::same_answers(
        existing
            .as_ref()
            .map_or(&BTreeMap::new(), |r| &r.appliances),
        &probes,
    );
    let record = match existing {
        Some(record) => AgentRecord {
            appliances: probes,
            ..record
        },
        None => AgentRecord {
            node: node.to_owned(),
            version: AgentVersion::this_build(),
            status_format: crate::status::STATUS_FORMAT,
            written_ms: unix_ms(SystemTime::now()),
            seq: 0,
            interval_ms: 0,
            started_ms: 0,
            owner: false,
            standing_down: None,
            last_pass: None,
            host: HostReport::default(),
            stopped: true,
            appliances: probes,
            vault: None,
        },
    };
    record.write(store)?;
    Ok(changed)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::health::ApplianceProbe;

    #[test]
    fn probes_are_published_per_node_and_old_records_read_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        // A record from an agent that knows nothing of probes.
        store
            .write(
                &layout::agent(&"pve2".parse().unwrap()),
                br#"{"node":"pve2","version":"0.1.0","status_format":1,"written_ms":5,"seq":3,"interval_ms":5000,"started_ms":1,"owner":true}"#,
            )
            .unwrap();
        assert!(probes_by_node(&store).unwrap().is_empty());
        let probe = ApplianceProbe::failed("the health probe did not answer within 30s", 9);
        assert!(record_probes(&store, "pve2", [(101, probe.clone())].into()).unwrap());
        assert!(record_probes(&store, "pve3", [(102, probe.clone())].into()).unwrap());
        let mut later = probe.clone();
        later.checked_ms += 5000;
        assert!(
            !record_probes(&store, "pve3", [(102, later)].into()).unwrap(),
            "the same answer, later"
        );
        let all = read_all(&store).unwrap();
        let pve2 = all["pve2"].as_ref().unwrap();
        assert_eq!(
            (pve2.seq, pve2.owner, pve2.stopped),
            (3, true, false),
            "the rest kept"
        );
        let pve3 = all["pve3"].as_ref().unwrap();
        assert!(
            pve3.stopped,
            "no agent runs there: not taken for a live one"
        );
        assert_eq!(
            probes_by_node(&store).unwrap(),
            BTreeMap::from([
                ("pve2".to_owned(), BTreeMap::from([(101, probe.clone())])),
                (
                    "pve3".to_owned(),
                    BTreeMap::from([(
                        102,
                        ApplianceProbe {
                            checked_ms: 5009,
                            ..probe
                        }
                    )])
                ),
            ])
        );
    }
}
