//! The record of each Sector's appliance upgrades:
//! `<root>/orbitlab/upgrades/<sector>.json` ([`layout::upgrade`]), one
//! entry per role (`{"gateway": {"state": "done", ...}}`). Written by the
//! step that switches or creates the role's new container, always under
//! the cluster lock `orbitlab-reconcile` (the cluster-scoped run holds it;
//! a node-scoped switch takes it); read by every observation.
//!
//! Which container is old and which new is decided from the containers
//! themselves (the version their description records); the record only
//! keeps what the containers cannot tell: when the old one was stopped
//! (so that a switch interrupted by a crash still measures its
//! interruption), the interruption of the last switch, and an upgrade that
//! failed — the planner does not try that version and template again (see
//! `controllers/sector/upgrade.rs`). Removing the file makes a failed
//! upgrade be tried again; it is removed with the Sector.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use orbitlab_manifests::{ApplianceRole, Name};
use serde::{Deserialize, Serialize};

use crate::store::layout;
use crate::store::{Store, StoreError};

/// A Sector's upgrades, by role.
pub type Record = BTreeMap<ApplianceRole, RoleUpgrade>;

/// The last upgrade of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoleUpgrade {
    /// The old container was stopped for the switch to `vmid`.
    Switching {
        /// Version of the old container (`None`: not recorded on it).
        from: Option<String>,
        to: String,
        vmid: u32,
        /// Milliseconds since the Unix epoch.
        stopped_at_ms: u64,
    },
    /// Container `vmid` serves at version `to`.
    Done {
        from: Option<String>,
        to: String,
        vmid: u32,
        /// From the old container's stop to the new one configured.
        interruption_ms: u64,
        /// RFC 3339, when the new one was configured.
        at: String,
    },
    /// The upgrade to `to` from `template` failed; the old container
    /// serves again.
    Failed {
        from: Option<String>,
        to: String,
        template: String,
        reason: String,
        /// RFC 3339.
        at: String,
    },
}

impl RoleUpgrade {
    /// One line for the Sector's status outputs (`<role>/upgrade`).
    pub fn describe(&self) -> String {
        let from = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown version".into());
        match self {
            RoleUpgrade::Switching {
                from: f,
                to,
                vmid,
                stopped_at_ms,
            } => format!(
                "{} → {to}: switching to container {vmid} since {}",
                from(f),
                crate::status::rfc3339(at_ms(*stopped_at_ms))
            ),
            RoleUpgrade::Done {
                from: f,
                to,
                interruption_ms,
                at,
                ..
            } => format!(
                "{} → {to} in {:.1} s interruption at {at}",
                from(f),
                *interruption_ms as f64 / 1000.0
            ),
            RoleUpgrade::Failed {
                from: f,
                to,
                reason,
                at,
                ..
            } => format!("{} → {to} failed at {at}: {reason}", from(f)),
        }
    }
}

/// `time` in milliseconds since the Unix epoch.
pub fn ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn at_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

/// Every Sector's record. An unreadable record counts as none (logged):
/// at worst a failed upgrade is tried once more.
pub fn read_all(store: &Store) -> Result<BTreeMap<Name, Record>, StoreError> {
    Ok(store
        .read_dir(&layout::upgrades_dir())?
        .into_iter()
        .filter_map(|(file, bytes)| {
            let name: Name = layout::record_file_name(&file)?.parse().ok()?;
            match serde_json::from_slice(&bytes) {
                Ok(record) => Some((name, record)),
                Err(e) => {
                    tracing::warn!(sector = %name, error = %e, "an unreadable appliance upgrade record is ignored");
                    None
                }
            }
        })
        .collect())
}

/// Sets the entry of `role` in `sector`'s record. The caller holds the
/// `orbitlab-reconcile` lock.
pub fn set(
    store: &Store,
    sector: &Name,
    role: ApplianceRole,
    entry: RoleUpgrade,
) -> Result<(), StoreError> {
    let path = layout::upgrade(sector);
    let mut record: Record = store
        .read(&path)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    record.insert(role, entry);
    let body = serde_json::to_vec_pretty(&record).expect("a record encodes");
    store.write(&path, &body)
}

/// Removes `sector`'s record (the Sector is gone).
pub fn forget(store: &Store, sector: &Name) -> Result<(), StoreError> {
    store.remove(&layout::upgrade(sector)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_per_role_and_described() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let web: Name = "web".parse().unwrap();
        set(
            &store,
            &web,
            ApplianceRole::Gateway,
            RoleUpgrade::Done {
                from: Some("1.0.0".into()),
                to: "1.1.0".into(),
                vmid: 104,
                interruption_ms: 4200,
                at: "2026-01-01T00:00:00Z".into(),
            },
        )
        .unwrap();
        set(
            &store,
            &web,
            ApplianceRole::Dns,
            RoleUpgrade::Failed {
                from: None,
                to: "1.1.0".into(),
                template: "local:vztmpl/x.tar.zst".into(),
                reason: "boom".into(),
                at: "2026-01-01T00:00:00Z".into(),
            },
        )
        .unwrap();
        let all = read_all(&store).unwrap();
        let record = &all[&web];
        assert_eq!(
            record[&ApplianceRole::Gateway].describe(),
            "1.0.0 → 1.1.0 in 4.2 s interruption at 2026-01-01T00:00:00Z"
        );
        assert_eq!(
            record[&ApplianceRole::Dns].describe(),
            "unknown version → 1.1.0 failed at 2026-01-01T00:00:00Z: boom"
        );
        forget(&store, &web).unwrap();
        assert!(read_all(&store).unwrap().is_empty());
    }
}
