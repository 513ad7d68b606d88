//! Observed state that agents report per object, kept apart from the spec
//! so a person editing a manifest and an agent reporting progress never
//! overwrite each other.
//!
//! On disk: `<root>/orbitlab/status/<kind>/<name>.json`
//! ([`crate::store::layout::status`]), pretty-printed JSON of
//! [`ObjectStatus`], written by agents only (replace-by-rename), read by the
//! command and the UI. Never holds a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The three conditions every object reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConditionType {
    /// Everything the spec asks for exists and was checked.
    Ready,
    /// An agent is working on the object.
    Progressing,
    /// The last attempt failed; `reason` and `message` say why.
    Failed,
}

/// The reason code of an object that is not Ready because something it
/// runs is unavailable (see [`ObjectStatus::phase`]).
pub const UNAVAILABLE: &str = "Unavailable";

/// One condition: whether it holds, why, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: bool,
    /// A short CamelCase reason (`Applied`, `ProxmoxRefused`, `IpamExhausted`).
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// When `status` last changed (RFC 3339, UTC).
    pub since: String,
}

/// The format of status files this build writes. A later build that
/// changes the format raises it; an agent never overwrites a status in a
/// newer format than its own (see [`crate::liveness`] for how agents of
/// two versions share a cluster).
pub const STATUS_FORMAT: u32 = 1;

fn status_format() -> u32 {
    STATUS_FORMAT
}

/// An object's reported state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStatus {
    /// The format of this file ([`STATUS_FORMAT`] when written by this
    /// build).
    #[serde(default = "status_format")]
    pub format: u32,
    /// The node whose agent wrote this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When it was written (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// What the object became in Proxmox: ids, VMIDs, addresses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

impl Default for ObjectStatus {
    fn default() -> Self {
        ObjectStatus {
            format: STATUS_FORMAT,
            node: None,
            updated: None,
            conditions: Vec::new(),
            outputs: BTreeMap::new(),
        }
    }
}

impl ObjectStatus {
    /// The condition of that type, if reported.
    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// True when Ready is reported and holds.
    pub fn is_ready(&self) -> bool {
        self.condition(ConditionType::Ready)
            .is_some_and(|c| c.status)
    }

    /// Sets a condition; `since` moves only when `status` changes.
    pub fn set_condition(
        &mut self,
        kind: ConditionType,
        status: bool,
        reason: &str,
        message: &str,
    ) {
        let now = rfc3339(SystemTime::now());
        match self.conditions.iter_mut().find(|c| c.kind == kind) {
            Some(c) => {
                if c.status != status {
                    c.since = now;
                }
                c.status = status;
                c.reason = reason.to_owned();
                c.message = message.to_owned();
            }
            None => {
                self.conditions.push(Condition {
                    kind,
                    status,
                    reason: reason.to_owned(),
                    message: message.to_owned(),
                    since: now,
                });
                self.conditions.sort_by_key(|c| c.kind);
            }
        }
    }

    /// A one-word summary for tables: `Ready`, `Failed`, `Progressing`,
    /// `Unavailable` (something it runs is down or unhealthy, and nothing
    /// OrbitLab does would repair it: a node offline, an appliance failing
    /// its health probe) or `Pending` (nothing reported yet).
    pub fn phase(&self) -> &'static str {
        let holds = |k| self.condition(k).is_some_and(|c| c.status);
        if holds(ConditionType::Failed) {
            "Failed"
        } else if holds(ConditionType::Ready) {
            "Ready"
        } else if holds(ConditionType::Progressing) {
            "Progressing"
        } else if self
            .condition(ConditionType::Ready)
            .is_some_and(|c| c.reason == UNAVAILABLE)
        {
            "Unavailable"
        } else {
            "Pending"
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Formats a time as RFC 3339 in UTC with second precision.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's well-known civil calendar arithmetic).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let at = |s| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_307_405), "2026-11-22T00:30:05Z");
    }

    #[test]
    fn since_moves_only_when_status_changes() {
        let mut status = ObjectStatus::default();
        assert_eq!(status.phase(), "Pending");
        status.set_condition(ConditionType::Ready, false, "Creating", "creating the zone");
        status.conditions[0].since = "then".into();
        status.set_condition(ConditionType::Ready, false, "Creating", "creating the vnet");
        assert_eq!(status.conditions[0].since, "then");
        assert_eq!(status.conditions[0].message, "creating the vnet");
        status.set_condition(ConditionType::Ready, true, "Applied", "all done");
        assert_ne!(status.conditions[0].since, "then");
        assert!(status.is_ready());
        assert_eq!(status.phase(), "Ready");
        status.set_condition(ConditionType::Failed, true, "ProxmoxRefused", "no");
        assert_eq!(status.phase(), "Failed");
    }
}
