//! `orbitlab apply --wait`: polls the status agents report for what an
//! apply created or changed, through the backend
//! (`GET /status/{collection}/{name}`), so it waits the same in-process on
//! a node and with `--host`. Only kinds that report a status
//! ([`orbitlab_engine::api::reports_status`]) are given to it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use orbitlab_engine::api::{Action, ApiPath, Change};
use orbitlab_engine::status::{ConditionType, ObjectStatus};

use crate::backend::Backend;

/// How often the statuses are read again.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Polls the statuses of `changes` until every created or changed one is
/// Ready (deleted ones: until their status is gone), printing each change
/// of state on standard error. Fails on a Failed object or at `timeout`.
pub fn wait_ready(backend: &Backend, changes: &[Change], timeout: Duration) -> Result<()> {
    let started = Instant::now();
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut pending = 0;
        for change in changes.iter().filter(|c| c.action != Action::Unchanged) {
            let path = ApiPath::Object(change.kind, change.name.clone());
            let status = backend.object_status(&path)?;
            let line = match state(change.action, status.as_ref()) {
                State::Done(line) => line,
                State::Pending(line) => {
                    pending += 1;
                    line
                }
                State::Failed(message) => bail!("{} failed: {message}", change.path()),
            };
            if shown.get(&change.path()) != Some(&line) {
                eprintln!("{}: {line}", change.path());
                shown.insert(change.path(), line);
            }
        }
        if pending == 0 {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            bail!(
                "gave up after {}s: {pending} object(s) not Ready yet; `orbitlab get` shows their status",
                timeout.as_secs()
            );
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Where one object stands, with the line shown for it.
#[derive(Debug, PartialEq, Eq)]
enum State {
    Done(String),
    Pending(String),
    Failed(String),
}

fn state(action: Action, status: Option<&ObjectStatus>) -> State {
    match (action, status) {
        (Action::Deleted, None) => State::Done("deleted".to_owned()),
        (Action::Deleted, Some(_)) => State::Pending("deleting".to_owned()),
        (_, None) => State::Pending("Pending: no agent has reported yet".to_owned()),
        (_, Some(status)) => {
            let phase = status.phase();
            let message = status
                .conditions
                .iter()
                .find(|c| c.status && c.kind.to_string() == phase)
                .or_else(|| status.condition(ConditionType::Ready))
                .map(|c| c.message.clone())
                .unwrap_or_default();
            match phase {
                "Ready" => State::Done(format!("{phase}: {message}")),
                "Failed" => State::Failed(message),
                _ => State::Pending(format!("{phase}: {message}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbitlab_engine::status::ConditionType;

    #[test]
    fn states_follow_the_reported_phase() {
        assert_eq!(
            state(Action::Created, None),
            State::Pending("Pending: no agent has reported yet".into())
        );
        assert_eq!(state(Action::Deleted, None), State::Done("deleted".into()));
        let mut status = ObjectStatus::default();
        assert_eq!(
            state(Action::Deleted, Some(&status)),
            State::Pending("deleting".into())
        );
        status.set_condition(
            ConditionType::Progressing,
            true,
            "Creating",
            "making the zone",
        );
        assert_eq!(
            state(Action::Configured, Some(&status)),
            State::Pending("Progressing: making the zone".into())
        );
        status.set_condition(ConditionType::Ready, true, "Applied", "all there");
        assert_eq!(
            state(Action::Configured, Some(&status)),
            State::Done("Ready: all there".into())
        );
        status.set_condition(ConditionType::Failed, true, "ProxmoxRefused", "no");
        assert_eq!(
            state(Action::Created, Some(&status)),
            State::Failed("no".into())
        );
    }
}
