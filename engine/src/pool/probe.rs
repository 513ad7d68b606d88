//! Health checks of Pool members, run by each node's agent for what is on
//! its node, from the pools' records alone (no Proxmox request):
//!
//! - `tcp` and `http` checks run from the member's Sector Gateway (the
//!   only place that reaches every member of the Sector), by the agent of
//!   the gateway's node: one `pct exec <gateway> -- orbitlab-appliance
//!   probe <timeout> <target>...` per Pool and round (in batches of
//!   [`BATCH`] targets), every target checked at once inside the gateway;
//!   a gateway that cannot answer (an older helper without `probe`, a
//!   failed exec) leaves its members' last results as they were;
//! - `command` checks run inside the member, by the agent of the member's
//!   node: `pct exec <member> -- timeout -k 1 <timeout> <command>...`.
//!
//! A member becomes healthy after `healthy_after` passes in a row and
//! unhealthy after `unhealthy_after` failures in a row; a new container
//! starts unhealthy. The results go to this node's health report
//! (`orbitlab/status/health/<node>.json`), written when anything in it
//! changed; [`Round::flipped`] says whether a member's health changed, so
//! the agent can wake the reconciler at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use orbitlab_manifests::{HealthCheck, Kind, ManifestSet, Name, NodeName, Probe, Spec};

use super::{HealthReport, MemberHealth, member_name};
use crate::host::ContainerHost;
use crate::store::{ObjectError, Store};

/// The helper's path inside OrbitLab's appliances.
pub const HELPER: &str = "/usr/sbin/orbitlab-appliance";

/// Most targets one gateway probe checks (its answer stays far below what
/// `pct exec`'s output is read up to).
pub const BATCH: usize = 100;

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// Members checked this round.
    pub checked: usize,
    /// Members whose health changed (or that got their first result).
    pub flipped: BTreeSet<Name>,
    /// Seconds until the next check is due (none: nothing to check here).
    pub next_in: Option<u64>,
}

/// One target of a gateway probe, as the helper takes it.
fn target(probe: &Probe<'_>, address: Ipv4Addr) -> Option<String> {
    match probe {
        Probe::Tcp(t) => Some(format!("tcp:{address}:{}", t.port)),
        Probe::Http(h) => Some(format!(
            "http:{address}:{}:{}:{}",
            h.port,
            h.status,
            h.path.as_str()
        )),
        Probe::Command(_) => None,
    }
}

/// Parses the helper's answer: one line per target, in order,
/// `ok <target>` or `fail <target> <reason>`. A target it did not answer
/// failed with that reason.
fn read_answer(stdout: &str, targets: &[String]) -> Vec<Result<(), String>> {
    let mut by_target: BTreeMap<&str, Result<(), String>> = BTreeMap::new();
    for line in stdout.lines() {
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next()) {
            (Some("ok"), Some(t)) => {
                by_target.insert(t, Ok(()));
            }
            (Some("fail"), Some(t)) => {
                let why = parts.next().unwrap_or("failed").trim().to_owned();
                by_target.insert(t, Err(why));
            }
            _ => {}
        }
    }
    targets
        .iter()
        .map(|t| {
            by_target
                .remove(t.as_str())
                .unwrap_or_else(|| Err("the gateway's probe gave no answer for it".into()))
        })
        .collect()
}

/// Folds one result into a member's health.
fn fold(
    old: Option<&MemberHealth>,
    (vmid, member_since): (u32, u64),
    result: Result<(), String>,
    now: u64,
    check: &HealthCheck,
) -> MemberHealth {
    let mut h = match old {
        Some(h) if h.vmid == vmid && h.member_since == member_since => h.clone(),
        _ => MemberHealth {
            vmid,
            member_since,
            ever_healthy: false,
            healthy: false,
            passes: 0,
            failures: 0,
            checked: now,
            error: None,
        },
    };
    h.checked = now;
    match result {
        Ok(()) => {
            h.passes += 1;
            h.failures = 0;
            h.error = None;
            if h.passes >= u32::from(check.healthy_after) {
                h.healthy = true;
                h.ever_healthy = true;
            }
        }
        Err(why) => {
            h.failures += 1;
            h.passes = 0;
            h.error = Some(why);
            if h.failures >= u32::from(check.unhealthy_after) {
                h.healthy = false;
            }
        }
    }
    h
}

/// Runs the checks due on `node` at `now` (Unix seconds) and writes the
/// node's report when it changed.
pub fn run(
    store: &Store,
    host: &dyn ContainerHost,
    node: &NodeName,
    now: u64,
) -> Result<Round, ObjectError> {
    let manifests = store.read_all_manifests()?;
    let Ok(set) = ManifestSet::new(manifests) else {
        // Invalid manifests: the reconciler says why; nothing is checked.
        return Ok(Round::default());
    };
    let records = super::read_records(store)?;
    let old = super::read_own_health(store, node)?;
    let mut report = HealthReport::default();
    let mut round = Round::default();
    for pool in set.of_kind(Kind::Pool) {
        let Spec::Pool(spec) = &pool.spec else {
            continue;
        };
        let (Some(check), Some(record)) = (&spec.health, records.get(pool.name())) else {
            continue;
        };
        let Some(probe) = check.probe() else {
            continue;
        };
        let interval = check.interval.as_secs();
        let timeout = check.timeout.as_secs();
        let due = |member: &Name| {
            old.members
                .get(member)
                .is_none_or(|h| now >= h.checked + interval)
        };
        // Members checked here, with their container and address.
        let mut here: Vec<(Name, (u32, u64), Ipv4Addr)> = Vec::new();
        for (n, m) in &record.members {
            let name = member_name(pool.name(), *n);
            let (Some(vmid), Some(addr), Some(member_node)) = (m.vmid, m.address, &m.node) else {
                continue;
            };
            let checks_here = match probe {
                Probe::Command(_) => member_node == node,
                _ => record.gateway.as_ref().is_some_and(|g| &g.node == node),
            };
            if !checks_here {
                continue;
            }
            if !due(&name) {
                // Not due: the last result stands.
                if let Some(h) = old.members.get(&name).filter(|h| h.is_of(m)) {
                    report.members.insert(name.clone(), h.clone());
                    let wait = (h.checked + interval).saturating_sub(now);
                    round.next_in = Some(round.next_in.map_or(wait, |w| w.min(wait)));
                }
                continue;
            }
            here.push((name, (vmid, m.since), addr));
        }
        if here.is_empty() {
            continue;
        }
        round.next_in = Some(round.next_in.map_or(interval, |w| w.min(interval)));
        let results: Vec<Result<(), String>> = match probe {
            Probe::Command(argv) => here
                .iter()
                .map(|(_, (vmid, _), _)| {
                    let mut cmd = vec![
                        "timeout".to_owned(),
                        "-k".to_owned(),
                        "1".to_owned(),
                        timeout.to_string(),
                    ];
                    cmd.extend(argv.iter().map(|a| a.as_str().to_owned()));
                    match host.exec_output(node.as_str(), *vmid, &cmd) {
                        Ok(out) if out.status == Some(0) => Ok(()),
                        Ok(out) => Err(format!(
                            "{} exited with {}{}",
                            argv.first().map_or("the command", |a| a.as_str()),
                            out.status
                                .map_or_else(|| "a signal".into(), |s| s.to_string()),
                            if out.stderr.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", out.stderr)
                            }
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                })
                .collect(),
            _ => {
                let Some(gateway) = &record.gateway else {
                    continue;
                };
                let targets: Vec<String> = here
                    .iter()
                    .filter_map(|(_, _, addr)| target(&probe, *addr))
                    .collect();
                let mut results = Vec::with_capacity(targets.len());
                for batch in targets.chunks(BATCH) {
                    let mut argv = vec![HELPER.to_owned(), "probe".to_owned(), timeout.to_string()];
                    argv.extend(batch.iter().cloned());
                    let answer = host
                        .exec_output(node.as_str(), gateway.vmid, &argv)
                        .map_err(|e| e.to_string())
                        .and_then(|out| match (out.status, out.truncated) {
                            (Some(0), false) => Ok(out),
                            (status, truncated) => Err(format!(
                                "the helper exited with {status:?}{}: {}",
                                if truncated {
                                    ", its answer cut short"
                                } else {
                                    ""
                                },
                                out.stderr
                            )),
                        });
                    match answer {
                        Ok(out) => results
                            .extend(read_answer(&String::from_utf8_lossy(&out.stdout), batch)),
                        Err(e) => {
                            // The gateway cannot check (an older helper, a
                            // failed exec): that says nothing about the
                            // members; their last results stand.
                            tracing::warn!(pool = %pool.name(), gateway = gateway.vmid, error = %e, "the Sector gateway could not run the health checks");
                            results.clear();
                            break;
                        }
                    }
                }
                if results.len() != here.len() {
                    for (name, (vmid, since), _) in &here {
                        if let Some(h) = old
                            .members
                            .get(name)
                            .filter(|h| h.vmid == *vmid && h.member_since == *since)
                        {
                            report.members.insert(name.clone(), h.clone());
                        }
                    }
                    continue;
                }
                results
            }
        };
        for ((name, id, _), result) in here.into_iter().zip(results) {
            round.checked += 1;
            let before = old
                .members
                .get(&name)
                .filter(|h| (h.vmid, h.member_since) == id);
            let after = fold(before, id, result, now, check);
            if before.map(|h| h.healthy) != Some(after.healthy) || before.is_none() {
                round.flipped.insert(name.clone());
            }
            report.members.insert(name, after);
        }
    }
    if report != old {
        super::write_health(store, node, &report)?;
    }
    Ok(round)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(unhealthy: u8, healthy: u8) -> HealthCheck {
        serde_json::from_value(serde_json::json!({
            "tcp": {"port": 80}, "unhealthy_after": unhealthy, "healthy_after": healthy
        }))
        .unwrap()
    }

    #[test]
    fn thresholds_decide_when_health_flips() {
        let c = check(3, 2);
        let id = (100, 7);
        let mut h = fold(None, id, Ok(()), 1, &c);
        assert!(!h.healthy, "one pass of two");
        h = fold(Some(&h), id, Ok(()), 2, &c);
        assert!(h.healthy);
        for t in 3..5 {
            h = fold(Some(&h), id, Err("refused".into()), t, &c);
            assert!(h.healthy, "two failures of three");
        }
        h = fold(Some(&h), id, Err("refused".into()), 5, &c);
        assert!(!h.healthy);
        assert_eq!((h.failures, h.error.as_deref()), (3, Some("refused")));
        // A new container starts over, unhealthy; so does a new member
        // given the same (reused) VMID.
        let fresh = fold(Some(&h), (101, 7), Ok(()), 6, &c);
        assert_eq!((fresh.vmid, fresh.passes, fresh.healthy), (101, 1, false));
        let reused = fold(Some(&h), (100, 8), Ok(()), 6, &c);
        assert_eq!(
            (reused.member_since, reused.passes, reused.healthy),
            (8, 1, false)
        );
    }

    #[test]
    fn the_answer_is_matched_by_target_and_silence_fails() {
        let targets = vec!["tcp:10.0.0.5:80".to_owned(), "tcp:10.0.0.6:80".to_owned()];
        let got = read_answer(
            "fail tcp:10.0.0.6:80 no connection within 2s\nok tcp:10.0.0.5:80\n",
            &targets,
        );
        assert_eq!(got, vec![Ok(()), Err("no connection within 2s".into())]);
        let got = read_answer("ok tcp:10.0.0.5:80\n", &targets);
        assert!(got[1].as_ref().unwrap_err().contains("no answer"));
    }
}
