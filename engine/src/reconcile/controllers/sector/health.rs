//! The Sector's appliances' health in its status: a Sector is Ready only
//! when its gateway and DNS containers both answered the health probe
//! (`appliances/README.md`, "Health probe") as healthy while running the
//! configuration last pushed into them.
//!
//! Only the agent of the node that runs a container can probe it; it
//! publishes the answer in its heartbeat ([`crate::host::health`]), and
//! the observation reads it into [`Observed::probes`]. For each running
//! appliance container whose configuration is pushed (and none is being
//! pushed):
//! - no probe from its node yet, or one of another bundle (taken before
//!   the last push): the Sector waits (Progressing);
//! - unhealthy, or the probe could not run: the Sector is unavailable
//!   (not Ready, not failed — nothing a step of OrbitLab's would repair;
//!   no backoff), with the problems;
//! - a probe older than five minutes (its agent stopped probing) counts
//!   as one that could not run ([`ApplianceProbe::aged`]);
//! - healthy: nothing holds it back.
//!
//! Outputs: `<role>/health` (`healthy`, `unhealthy: ...`, `probe failed:
//! ...` or `waiting for a probe`), `<role>/bundle` (the bundle the
//! appliance runs, as it says) and `<role>/probed` (when, by the prober's
//! clock).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use orbitlab_manifests::{ApplianceRole, NodeName};

use crate::host::health::{ApplianceProbe, ProbeState};
use crate::pve::Vmid;
use crate::reconcile::ObjectRef;
use crate::reconcile::action::Action;
use crate::reconcile::controllers::part;
use crate::reconcile::observed::Observed;
use crate::reconcile::plan::Planner;

/// What the probes say of one appliance container.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Healthy,
    /// No probe of the configuration last pushed yet: why.
    Waiting(String),
    /// Unhealthy, or the probe could not run: why.
    Unhealthy(String),
}

/// The probe of container `vmid` by the agent of `node`, where it runs.
fn probe_of<'a>(observed: &'a Observed, node: &NodeName, vmid: Vmid) -> Option<&'a ApplianceProbe> {
    observed.probes.get(node)?.get(&vmid)
}

fn when(probe: &ApplianceProbe) -> String {
    crate::status::rfc3339(UNIX_EPOCH + Duration::from_millis(probe.checked_ms))
}

/// Judges the `role` container `vmid` on `node`, whose configuration
/// `digest` was pushed.
fn judge(
    observed: &Observed,
    role: ApplianceRole,
    vmid: Vmid,
    node: &NodeName,
    digest: &str,
) -> Verdict {
    let role = role.as_str();
    let Some(probe) = probe_of(observed, node, vmid) else {
        return Verdict::Waiting(format!(
            "waiting for the {role}'s health probe: the agent of node {node} has not reported container {vmid} yet"
        ));
    };
    let which = format!("the {role} (container {vmid} on node {node})");
    match probe.state() {
        // Whatever it ran, a container that cannot be probed is reported.
        ProbeState::Failed(error) => {
            Verdict::Unhealthy(format!("{which} could not be probed: {error}"))
        }
        _ if !probe.runs(digest) => Verdict::Waiting(format!(
            "waiting for the {role}'s health probe: the last one ({}) saw {}, not the configuration last pushed",
            when(probe),
            probe.bundle.as_deref().map_or_else(
                || "its factory configuration".to_owned(),
                |b| format!("bundle {b}")
            ),
        )),
        ProbeState::Unhealthy(problems) => {
            Verdict::Unhealthy(format!("{which} is unhealthy: {}", problems.join("; ")))
        }
        ProbeState::Healthy => Verdict::Healthy,
    }
}

impl Planner<'_> {
    /// Holds Sector `owner` back from Ready until both its appliances
    /// answered healthy with the configuration last pushed (see the module
    /// documentation). `configure`: the configuration steps planned this
    /// pass (a container being configured is judged after that).
    pub(super) fn appliance_health(&mut self, owner: &ObjectRef, configure: &[Action]) {
        for role in ApplianceRole::ALL {
            let marker = part(owner, role);
            let Some((vmid, container)) =
                self.observed.container(&marker).filter(|(_, c)| c.running)
            else {
                continue;
            };
            let pushing = configure
                .iter()
                .any(|a| matches!(a, Action::Configure(plan) if plan.vmid == vmid));
            let Some(digest) = self.observed.pushed.get(&vmid).filter(|_| !pushing) else {
                continue;
            };
            match judge(self.observed, role, vmid, &container.node, digest) {
                Verdict::Healthy => {}
                Verdict::Waiting(why) => self.wait(owner.clone(), why),
                Verdict::Unhealthy(why) => self.unavailable(owner.clone(), why),
            }
        }
    }
}

/// The health outputs of Sector `object`'s containers.
pub(super) fn outputs(object: &ObjectRef, observed: &Observed) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (vmid, container, marker) in observed.containers_of(object) {
        let Some(role) = marker.role else {
            continue;
        };
        let key = |what: &str| format!("{}/{what}", role.as_str());
        let probe = probe_of(observed, &container.node, vmid);
        let health = match (probe, observed.pushed.get(&vmid)) {
            (None, _) => "waiting for a probe".to_owned(),
            (Some(p), digest) => {
                match digest.map(|d| judge(observed, role, vmid, &container.node, d)) {
                    Some(Verdict::Waiting(_)) => "waiting for a probe".to_owned(),
                    _ => match p.state() {
                        ProbeState::Healthy => "healthy".to_owned(),
                        ProbeState::Unhealthy(problems) => {
                            format!("unhealthy: {}", problems.join("; "))
                        }
                        ProbeState::Failed(error) => format!("probe failed: {error}"),
                    },
                }
            }
        };
        out.insert(key("health"), health);
        if let Some(p) = probe {
            if let Some(bundle) = &p.bundle {
                out.insert(key("bundle"), bundle.clone());
            }
            out.insert(key("probed"), when(p));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::health::ApplianceHealth;

    fn node() -> NodeName {
        "pve2".parse().unwrap()
    }

    fn vmid() -> Vmid {
        Vmid::try_from(101u32).unwrap()
    }

    const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn observed(probe: Option<ApplianceProbe>) -> Observed {
        let mut observed = Observed::default();
        if let Some(p) = probe {
            observed.probes.insert(node(), [(vmid(), p)].into());
        }
        observed
    }

    fn answered(bundle: Option<&str>, problems: &[&str]) -> ApplianceProbe {
        ApplianceProbe::answered(
            ApplianceHealth {
                role: "gateway".into(),
                version: "1.0.0".into(),
                bundle: bundle.map(str::to_owned),
                healthy: problems.is_empty(),
                services: BTreeMap::new(),
                problems: problems.iter().map(|p| p.to_string()).collect(),
            },
            1_000,
        )
    }

    fn verdict(probe: Option<ApplianceProbe>) -> Verdict {
        judge(
            &observed(probe),
            ApplianceRole::Gateway,
            vmid(),
            &node(),
            DIGEST,
        )
    }

    #[test]
    fn a_probe_its_agent_stopped_renewing_no_longer_counts() {
        let current = "9f86d081884c7d65-1700000000000";
        let fresh = answered(Some(current), &[]);
        let limit = 1_000 + crate::host::health::PROBE_STALE_MS;
        assert_eq!(
            verdict(Some(fresh.clone().aged(limit, "pve2"))),
            Verdict::Healthy
        );
        let Verdict::Unhealthy(why) = verdict(Some(fresh.aged(limit + 1, "pve2"))) else {
            panic!("a stale probe still counts")
        };
        assert!(
            why.contains("is 300 s old") && why.contains("agent on node pve2"),
            "{why}"
        );
    }

    #[test]
    fn judges_by_the_probe_of_the_configuration_last_pushed() {
        let current = "9f86d081884c7d65-1700000000000";
        assert_eq!(
            verdict(Some(answered(Some(current), &[]))),
            Verdict::Healthy
        );
        let Verdict::Unhealthy(why) =
            verdict(Some(answered(Some(current), &["frr.service is failed"])))
        else {
            panic!("not unhealthy")
        };
        assert!(
            why.contains(
                "gateway (container 101 on node pve2) is unhealthy: frr.service is failed"
            ),
            "{why}"
        );
        let Verdict::Waiting(why) = verdict(None) else {
            panic!("not waiting")
        };
        assert!(
            why.contains("waiting for the gateway's health probe") && why.contains("pve2"),
            "{why}"
        );
        // An older bundle, healthy or not, or the factory configuration:
        // taken before the last push.
        for stale in [
            answered(Some("0000000000000000-1"), &[]),
            answered(
                Some("0000000000000000-1"),
                &["route 10.0.0.0/24 is not in the kernel"],
            ),
            answered(None, &["no current bundle"]),
        ] {
            assert!(matches!(verdict(Some(stale)), Verdict::Waiting(_)));
        }
        // A probe that could not run is reported, whatever it last saw.
        let Verdict::Unhealthy(why) = verdict(Some(ApplianceProbe::failed(
            "the health probe did not answer within 30s",
            5,
        ))) else {
            panic!("not reported")
        };
        assert!(
            why.contains("could not be probed: the health probe did not answer"),
            "{why}"
        );
    }
}
