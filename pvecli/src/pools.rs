//! `orbitlab pool rollout status|pause|resume|undo NAME`: a Pool's rollout.
//! `status` reads the Pool's status (`GET /pools/{name}`); the others are
//! `POST /pools/{name}/rollout/{action}` ([`RolloutPath`]).

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use orbitlab_engine::api::{ApiPath, RolloutAction, RolloutPath};
use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_manifests::{Kind, Name};
use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::reply::Reply;

/// Examples shown after `orbitlab pool --help`.
pub const EXAMPLES: &str = "\
Examples:
  orbitlab pool rollout status web      # revision, members and their health, pauses
  orbitlab pool rollout pause web       # stop adding and removing members for the update
  orbitlab pool rollout resume web      # go on (also after a failure paused it)
  orbitlab pool rollout undo web        # back to the template before the current one

A rollout starts when the Pool's instance template changes (`orbitlab apply`):
members of the new revision are added and old ones removed a few at a time
(update.max_surge, update.max_unavailable), waiting for their health checks.
A new member that fails pauses it with the reason; the old ones keep serving.";

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// A Pool's rollout of a changed template.
    Rollout {
        /// What to do.
        action: Action,
        /// The Pool.
        name: Name,
    },
}

/// `orbitlab pool rollout ACTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Action {
    /// Where it stands: revision, members and their health, a pause.
    Status,
    /// Stop adding and removing members for the update.
    Pause,
    /// Go on, also after a failure paused it.
    Resume,
    /// Back to the template of the revision before the current one.
    Undo,
}

pub fn run(backend: &Backend, command: PoolCommand) -> Result<Reply> {
    let PoolCommand::Rollout { action, name } = command;
    let action = match action {
        Action::Status => {
            let pool = backend.get(&ApiPath::Object(Kind::Pool, name.clone()), None)?;
            return Reply::data(rollout_view(&pool));
        }
        Action::Pause => RolloutAction::Pause,
        Action::Resume => RolloutAction::Resume,
        Action::Undo => RolloutAction::Undo,
    };
    let path = RolloutPath { pool: name, action };
    let answer = backend
        .rollout(&path)
        .with_context(|| format!("{path} failed"))?;
    Reply::data(answer)
}

/// The rollout's part of a Pool's view: phase, reason, and the status
/// outputs about revisions, members and replacements.
fn rollout_view(pool: &Value) -> Value {
    let mut out = Map::new();
    let Ok(status) = serde_json::from_value::<ObjectStatus>(pool["status"].clone()) else {
        out.insert("phase".into(), "Pending".into());
        return Value::Object(out);
    };
    out.insert("phase".into(), status.phase().into());
    let why = [ConditionType::Failed, ConditionType::Progressing]
        .into_iter()
        .filter_map(|k| status.condition(k))
        .find(|c| c.status);
    if let Some(c) = why {
        out.insert("message".into(), c.message.clone().into());
    }
    for (k, v) in status.outputs {
        out.insert(k, v.into());
    }
    Value::Object(out)
}
