//! `/pools/{name}/rollout/{pause|resume|undo}` ([`RolloutPath`],
//! [`Api::rollout`]): what an operator asks of a Pool's rollout.
//!
//! - `pause`: no member is added or removed for an update until resumed
//!   (replacing unhealthy members goes on); written to the Pool's control
//!   file `orbitlab/pools/<pool>.control`.
//! - `resume`: goes on, also after a pause or a stop that a failure caused
//!   (the reconciler clears those older than the resume).
//! - `undo`: the Pool's `spec.instance` becomes that of the revision before
//!   the current one (from the Pool's record), as any change of the
//!   manifest: validated with every other manifest, written under the
//!   manifests lock, audited as a `set`.
//!
//! Each is audited (`pool-rollout`) before it is written, and bumps the
//! change counter so the owning agent acts at once. The rollout's state is
//! in the Pool's status (`GET /pools/{name}`: `rollout`, `revision`,
//! `member/...`).

use std::fmt;
use std::str::FromStr;

use orbitlab_manifests::{Kind, Name, Spec};
use serde_json::{Value, json};

use super::{Api, ApiError, ApiPath, PathError, not_found};
use crate::audit::{self, Audited, Detail};

/// What `rollout` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutAction {
    Pause,
    Resume,
    Undo,
}

impl RolloutAction {
    /// `pause`, `resume`, `undo`.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutAction::Pause => "pause",
            RolloutAction::Resume => "resume",
            RolloutAction::Undo => "undo",
        }
    }
}

impl FromStr for RolloutAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pause" => Ok(RolloutAction::Pause),
            "resume" => Ok(RolloutAction::Resume),
            "undo" => Ok(RolloutAction::Undo),
            other => Err(format!(
                "unknown rollout action {other:?}; one of: pause, resume, undo"
            )),
        }
    }
}

/// `/pools/{name}/rollout/{action}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutPath {
    pub pool: Name,
    pub action: RolloutAction,
}

impl RolloutPath {
    /// The rollout path `rest` names; `None` for any other path.
    pub fn parse(rest: &str) -> Result<Option<RolloutPath>, PathError> {
        let trimmed = rest.trim_end_matches('/');
        let Some(below) = trimmed.strip_prefix("/pools/") else {
            return Ok(None);
        };
        let mut parts = below.split('/');
        let (Some(pool), Some("rollout")) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        let error = |reason: String| PathError::at(rest, reason);
        let action = parts
            .next()
            .ok_or_else(|| error("name the action: pause, resume or undo".into()))?
            .parse()
            .map_err(error)?;
        if let Some(extra) = parts.next() {
            return Err(error(format!("nothing below the action (found {extra:?})")));
        }
        let pool = pool
            .parse::<Name>()
            .map_err(|e| error(format!("pool name: {e}")))?;
        Ok(Some(RolloutPath { pool, action }))
    }
}

impl fmt::Display for RolloutPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/pools/{}/rollout/{}", self.pool, self.action.as_str())
    }
}

impl Api {
    /// Carries out `path` (see the module documentation); answers what was
    /// done.
    pub fn rollout(&self, path: &RolloutPath) -> Result<Value, ApiError> {
        let object = ApiPath::Object(Kind::Pool, path.pool.clone());
        let manifest = self.require(&object)?;
        let pool = &path.pool;
        match path.action {
            RolloutAction::Pause | RolloutAction::Resume => {
                let mut control = crate::pool::read_control(self.store(), pool)?;
                let pause = path.action == RolloutAction::Pause;
                control.paused = pause;
                if !pause {
                    control.resumed = crate::pool::unix(std::time::SystemTime::now());
                }
                let detail =
                    Detail::from([("rollout".to_owned(), path.action.as_str().to_owned())]);
                self.witness().around(
                    Audited::Change,
                    audit::Action::PoolRollout,
                    object.to_string(),
                    detail,
                    || -> Result<(), ApiError> {
                        crate::pool::write_control(self.store(), pool, &control)?;
                        self.store().bump_generation()?;
                        Ok(())
                    },
                )?;
                Ok(
                    json!({ "pool": pool.to_string(), "rollout": if pause { "paused" } else { "resumed" } }),
                )
            }
            RolloutAction::Undo => {
                let record = crate::pool::read_records(self.store())?
                    .remove(pool)
                    .ok_or_else(|| not_found(&object))?;
                let conflict = |reason: String| ApiError::Conflict {
                    path: path.to_string(),
                    reason,
                };
                let previous = record.previous.as_ref().ok_or_else(|| {
                    conflict(
                        "the Pool has had one revision only: there is nothing to go back to".into(),
                    )
                })?;
                let instance = record.revisions.get(previous).ok_or_else(|| {
                    conflict(format!(
                        "the spec of revision {previous} is no longer on record"
                    ))
                })?;
                let Spec::Pool(mut spec) = manifest.spec.clone() else {
                    return Err(not_found(&object));
                };
                spec.instance = instance.clone();
                let mut manifest = manifest;
                manifest.spec = Spec::Pool(spec);
                let source = crate::store::layout::manifest_label(Kind::Pool, pool.as_str());
                self.change(audit::Action::Set, |set| {
                    set.put(orbitlab_manifests::Sourced::new(source, manifest));
                    Ok(())
                })?;
                Ok(json!({ "pool": pool.to_string(), "rollout": "undone", "revision": previous }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_paths_parse_and_refuse() {
        let p = RolloutPath::parse("/pools/web/rollout/undo")
            .unwrap()
            .unwrap();
        assert_eq!((p.pool.as_str(), p.action), ("web", RolloutAction::Undo));
        assert_eq!(p.to_string(), "/pools/web/rollout/undo");
        assert_eq!(RolloutPath::parse("/pools/web").unwrap(), None);
        assert_eq!(
            RolloutPath::parse("/sectors/web/rollout/pause").unwrap(),
            None
        );
        let e = RolloutPath::parse("/pools/web/rollout/restart").unwrap_err();
        assert!(e.to_string().contains("one of: pause, resume, undo"), "{e}");
        assert!(RolloutPath::parse("/pools/web/rollout").is_err());
    }
}
