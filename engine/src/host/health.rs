//! The appliances' health probe (`appliances/README.md`, "Health probe"):
//! `orbitlab-appliance health`, run through [`super::ContainerHost`] in a
//! container on this node, prints one JSON object and exits 0 when the
//! appliance is healthy, 1 when not.
//!
//! [`parse`] turns that answer into an [`ApplianceHealth`] and refuses
//! anything else (no JSON, JSON of another shape, an exit status that
//! contradicts the answer) with a [`ProbeError`]; [`probe`] runs it and
//! always returns an [`ApplianceProbe`], the form agents publish in their
//! heartbeat (`orbitlab/agents/<node>.json`, field `appliances`): a probe
//! that could not run, or answered garbage, is itself reported, with why.
//! What is kept is short text from inside the container — the helper's
//! one-sentence problems, its version and bundle id — capped in count and
//! length; never a command line or a secret.
//!
//! Whether a probe speaks about the configuration last pushed is told by
//! the bundle id: [`super::bundle::BundleId::new`] starts it with the
//! configuration's digest ([`runs_configuration`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{ContainerHost, ExecOutput, HostError, bundle};

/// Most problems kept from one probe.
pub const MAX_PROBLEMS: usize = 8;

/// Most characters kept of one text (a problem, a version, an error).
pub const MAX_TEXT: usize = 300;

/// `orbitlab-appliance health`.
pub fn command() -> Vec<String> {
    vec![bundle::HELPER.to_owned(), "health".to_owned()]
}

/// What the helper answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceHealth {
    /// `gateway` or `dns`, as the appliance says.
    pub role: String,
    /// The appliance template's version.
    pub version: String,
    /// The active bundle's id; `None` while it runs its factory
    /// configuration.
    pub bundle: Option<String>,
    pub healthy: bool,
    /// Each service and what `systemctl is-active` says of it.
    pub services: BTreeMap<String, String>,
    /// One sentence per failed check; empty exactly when healthy.
    pub problems: Vec<String>,
}

/// Why a probe's answer is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Nothing on standard output.
    #[error(
        "the health probe printed nothing (exit status {status}){}",
        detail(stderr)
    )]
    Silent { status: String, stderr: String },
    /// More output than a probe ever prints.
    #[error("the health probe printed more than {kept} bytes: not its answer")]
    Flood { kept: usize },
    /// Standard output is not the probe's JSON object.
    #[error("the health probe printed something other than its JSON answer: {reason}")]
    Garbage { reason: String },
    /// The exit status says otherwise than the answer.
    #[error(
        "the health probe answered healthy={healthy} but exited with status {status}: it contradicts itself"
    )]
    Contradiction { healthy: bool, status: String },
}

fn detail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {}", clean(stderr))
    }
}

/// The helper's JSON, as far as OrbitLab reads it (other fields, such as
/// `tables`, `routes`, `listen`, are allowed and ignored).
#[derive(Deserialize)]
struct Answer {
    role: String,
    version: String,
    bundle: Option<String>,
    healthy: bool,
    #[serde(default)]
    services: BTreeMap<String, String>,
    problems: Vec<String>,
}

/// Parses the answer of `orbitlab-appliance health`.
pub fn parse(output: &ExecOutput) -> Result<ApplianceHealth, ProbeError> {
    let status = || match output.status {
        Some(code) => code.to_string(),
        None => "none: killed by a signal".to_owned(),
    };
    if output.truncated {
        return Err(ProbeError::Flood {
            kept: output.stdout.len(),
        });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let text = text.trim();
    if text.is_empty() {
        return Err(ProbeError::Silent {
            status: status(),
            stderr: output.stderr.clone(),
        });
    }
    let garbage = |reason: String| ProbeError::Garbage {
        reason: clean(&reason),
    };
    let answer: Answer = serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(80).collect();
        garbage(format!("{e} (it printed {start:?})"))
    })?;
    if let Some(id) = &answer.bundle
        && !valid_bundle_id(id)
    {
        return Err(garbage(format!(
            "bundle id {id:?} is not one OrbitLab makes"
        )));
    }
    if answer.healthy != answer.problems.is_empty() {
        return Err(garbage(if answer.healthy {
            "healthy, yet it lists problems".to_owned()
        } else {
            "unhealthy, yet it lists no problem".to_owned()
        }));
    }
    let agrees = match output.status {
        Some(0) => answer.healthy,
        Some(1) => !answer.healthy,
        _ => false,
    };
    if !agrees {
        return Err(ProbeError::Contradiction {
            healthy: answer.healthy,
            status: status(),
        });
    }
    Ok(ApplianceHealth {
        role: clean(&answer.role),
        version: clean(&answer.version),
        bundle: answer.bundle,
        healthy: answer.healthy,
        services: answer
            .services
            .iter()
            .take(MAX_PROBLEMS)
            .map(|(k, v)| (clean(k), clean(v)))
            .collect(),
        problems: capped(&answer.problems),
    })
}

/// The helper's rule for bundle ids: letters, digits, `.`, `_`, `-`, at
/// most 64 characters.
fn valid_bundle_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `text` without control characters, at most [`MAX_TEXT`] characters.
fn clean(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT)
        .collect();
    if text.trim().chars().count() > MAX_TEXT {
        out.push('…');
    }
    out
}

/// At most [`MAX_PROBLEMS`] cleaned problems, saying how many more there were.
fn capped(problems: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = problems
        .iter()
        .take(MAX_PROBLEMS)
        .map(|p| clean(p))
        .collect();
    if problems.len() > MAX_PROBLEMS {
        kept.push(format!("and {} more", problems.len() - MAX_PROBLEMS));
    }
    kept
}

/// One probe of one container, as agents publish it in their heartbeat.
///
/// Either the probe answered (`error` is `None`; `healthy`, `bundle`,
/// `version` and `problems` are the answer) or it did not (`error` says
/// why; `healthy` is false). Build it with [`ApplianceProbe::answered`] or
/// [`ApplianceProbe::failed`]; read it with [`ApplianceProbe::state`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplianceProbe {
    pub healthy: bool,
    /// The active bundle's id (none: the factory configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// The appliance template's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Why the probe gave no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it ran (Unix milliseconds, the prober's clock).
    pub checked_ms: u64,
}

/// What a probe says, for readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeState<'a> {
    Healthy,
    /// The appliance answered: unhealthy, for these reasons.
    Unhealthy(&'a [String]),
    /// The probe gave no answer, for this reason.
    Failed(&'a str),
}

/// A probe older than this (by the reader's clock: ten times the agents'
/// default probe interval, far beyond any clock skew a cluster tolerates)
/// no longer counts ([`ApplianceProbe::aged`]).
pub const PROBE_STALE_MS: u64 = 5 * 60 * 1000;

impl ApplianceProbe {
    /// The probe answered `health` at `checked_ms`.
    pub fn answered(health: ApplianceHealth, checked_ms: u64) -> Self {
        ApplianceProbe {
            healthy: health.healthy,
            bundle: health.bundle,
            version: Some(health.version),
            problems: health.problems,
            error: None,
            checked_ms,
        }
    }

    /// The probe gave no answer at `checked_ms`, for `reason`.
    pub fn failed(reason: &str, checked_ms: u64) -> Self {
        ApplianceProbe {
            healthy: false,
            bundle: None,
            version: None,
            problems: Vec::new(),
            error: Some(clean(reason)),
            checked_ms,
        }
    }

    /// This probe as a reader at `now_ms` (Unix milliseconds) takes it: a
    /// probe older than [`PROBE_STALE_MS`] says nothing about now (its
    /// agent stopped probing: stopped, or wedged), so it becomes a probe
    /// that could not run, naming `node`'s agent.
    pub fn aged(self, now_ms: u64, node: &str) -> Self {
        let age_ms = now_ms.saturating_sub(self.checked_ms);
        if age_ms <= PROBE_STALE_MS {
            return self;
        }
        ApplianceProbe::failed(
            &format!(
                "its last health probe is {} s old; is the agent on node {node} running? (orbitlab get /nodes)",
                age_ms / 1000
            ),
            self.checked_ms,
        )
    }

    /// What it says. A record that claims healthy with a problem or an
    /// error (written by hand, or by a broken agent) is not healthy.
    pub fn state(&self) -> ProbeState<'_> {
        match (&self.error, self.healthy && self.problems.is_empty()) {
            (Some(error), _) => ProbeState::Failed(error),
            (None, true) => ProbeState::Healthy,
            (None, false) if self.problems.is_empty() => {
                ProbeState::Failed("the probe reported unhealthy without a reason")
            }
            (None, false) => ProbeState::Unhealthy(&self.problems),
        }
    }

    /// The same answer, whenever it was taken (what readers compare to
    /// notice a change).
    pub fn same_answer(&self, other: &ApplianceProbe) -> bool {
        ApplianceProbe {
            checked_ms: 0,
            ..self.clone()
        } == ApplianceProbe {
            checked_ms: 0,
            ..other.clone()
        }
    }

    /// Whether the answer speaks about configuration `digest` (the digest
    /// recorded when it was pushed; see [`runs_configuration`]).
    pub fn runs(&self, digest: &str) -> bool {
        self.bundle
            .as_deref()
            .is_some_and(|b| runs_configuration(b, digest))
    }
}

/// Whether bundle `id` (as the helper reports it) carries configuration
/// `digest`: [`bundle::BundleId::new`] makes ids `<first 16 hex digits of
/// the digest>-<milliseconds>`.
pub fn runs_configuration(id: &str, digest: &str) -> bool {
    let head: String = digest
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(16)
        .collect();
    !head.is_empty() && id.split_once('-').is_some_and(|(h, _)| h == head)
}

/// Runs the probe in container `vmid` on `node` (this node) at `now`.
/// Never fails: a probe that cannot run is a [`ApplianceProbe::failed`].
pub fn probe(host: &dyn ContainerHost, node: &str, vmid: u32, now: SystemTime) -> ApplianceProbe {
    let at = crate::liveness::unix_ms(now);
    match host.exec_output(node, vmid, &command()) {
        Ok(output) => match parse(&output) {
            Ok(health) => ApplianceProbe::answered(health, at),
            Err(e) => ApplianceProbe::failed(&e.to_string(), at),
        },
        Err(e) => ApplianceProbe::failed(&unreachable(&e), at),
    }
}

/// Probes containers `vmids` on `node` (this node) one after the other,
/// by VMID.
pub fn probe_all(
    host: &dyn ContainerHost,
    node: &str,
    vmids: impl IntoIterator<Item = u32>,
    now: SystemTime,
) -> BTreeMap<u32, ApplianceProbe> {
    vmids
        .into_iter()
        .map(|vmid| (vmid, probe(host, node, vmid, now)))
        .collect()
}

/// Whether two sets of probes give the same answers, whenever taken.
pub fn same_answers(a: &BTreeMap<u32, ApplianceProbe>, b: &BTreeMap<u32, ApplianceProbe>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(vmid, p)| b.get(vmid).is_some_and(|q| q.same_answer(p)))
}

/// Why the probe could not reach the container, without the command line.
fn unreachable(error: &HostError) -> String {
    match error {
        HostError::Failed { status, stderr, .. } => {
            format!(
                "the health probe could not run (pct: {status}){}",
                detail(stderr)
            )
        }
        HostError::TimedOut { after, .. } => format!(
            "the health probe did not answer within {}s",
            after.as_secs()
        ),
        HostError::Spawn { source, .. } => {
            format!("the health probe could not run: cannot start pct: {source}")
        }
        other => format!("the health probe could not run: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const HEALTHY: &str = r#"{"role":"gateway","version":"1.0.0","bundle":"a1","healthy":true,
 "services":{"frr.service":"active"},
 "tables":{"inet orbitlab_filter":true,"ip orbitlab_nat":true},
 "routes":{"0.0.0.0/0":true},"default_route":true,"problems":[]}"#;

    const UNHEALTHY: &str = r#"{"role":"dns","version":"1.0.0","bundle":null,"healthy":false,"services":{"dnsmasq.service":"failed"},"listen":{},"default_route":false,"problems":["no current bundle","dnsmasq.service is failed","no default route"]}"#;

    fn out(status: Option<i32>, stdout: &str) -> ExecOutput {
        ExecOutput {
            status,
            stdout: stdout.as_bytes().to_vec(),
            truncated: false,
            stderr: String::new(),
        }
    }

    #[test]
    fn reads_the_helpers_answers() {
        let health = parse(&out(Some(0), HEALTHY)).unwrap();
        assert_eq!(
            health,
            ApplianceHealth {
                role: "gateway".into(),
                version: "1.0.0".into(),
                bundle: Some("a1".into()),
                healthy: true,
                services: [("frr.service".to_owned(), "active".to_owned())].into(),
                problems: vec![],
            }
        );
        let sick = parse(&out(Some(1), UNHEALTHY)).unwrap();
        assert!(!sick.healthy);
        assert_eq!(sick.bundle, None);
        assert_eq!(
            sick.problems,
            [
                "no current bundle",
                "dnsmasq.service is failed",
                "no default route"
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_an_answer() {
        let err = |o: ExecOutput| parse(&o).unwrap_err();
        assert!(matches!(err(out(Some(0), "")), ProbeError::Silent { .. }));
        let mut silent = out(Some(255), "  \n");
        silent.stderr = "CT 101 not running".into();
        let e = err(silent).to_string();
        assert!(
            e.contains("printed nothing") && e.contains("255") && e.contains("CT 101 not running"),
            "{e}"
        );
        assert!(matches!(
            err(out(Some(0), "OK\n")),
            ProbeError::Garbage { .. }
        ));
        assert!(matches!(
            err(out(Some(0), "[1,2]")),
            ProbeError::Garbage { .. }
        ));
        // Missing fields, wrong types.
        assert!(matches!(
            err(out(Some(0), r#"{"healthy":true}"#)),
            ProbeError::Garbage { .. }
        ));
        let wrong = HEALTHY.replace(r#""healthy":true"#, r#""healthy":"yes""#);
        assert!(matches!(
            err(out(Some(0), &wrong)),
            ProbeError::Garbage { .. }
        ));
        // A bundle id the helper would never have accepted.
        let odd = HEALTHY.replace(r#""a1""#, r#""../x y""#);
        assert!(matches!(
            err(out(Some(0), &odd)),
            ProbeError::Garbage { .. }
        ));
        // Healthy with problems, unhealthy without.
        let both = HEALTHY.replace(r#""problems":[]"#, r#""problems":["x"]"#);
        assert!(matches!(
            err(out(Some(0), &both)),
            ProbeError::Garbage { .. }
        ));
        let neither = UNHEALTHY.replace(
            r#""problems":["no current bundle","dnsmasq.service is failed","no default route"]"#,
            r#""problems":[]"#,
        );
        assert!(matches!(
            err(out(Some(1), &neither)),
            ProbeError::Garbage { .. }
        ));
        // The exit status must agree.
        assert!(matches!(
            err(out(Some(1), HEALTHY)),
            ProbeError::Contradiction { .. }
        ));
        assert!(matches!(
            err(out(Some(0), UNHEALTHY)),
            ProbeError::Contradiction { .. }
        ));
        assert!(matches!(
            err(out(Some(64), UNHEALTHY)),
            ProbeError::Contradiction { .. }
        ));
        assert!(matches!(
            err(out(None, HEALTHY)),
            ProbeError::Contradiction { .. }
        ));
        let mut flood = out(Some(0), HEALTHY);
        flood.truncated = true;
        assert!(matches!(err(flood), ProbeError::Flood { .. }));
    }

    #[test]
    fn keeps_problems_short_and_few() {
        let many: Vec<String> = (0..20)
            .map(|i| format!("problem {i}\n{}", "x".repeat(1000)))
            .collect();
        let json = serde_json::json!({
            "role": "gateway", "version": "1.0.0", "bundle": "a1", "healthy": false,
            "services": {}, "problems": many,
        });
        let health = parse(&out(Some(1), &json.to_string())).unwrap();
        assert_eq!(health.problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(health.problems[MAX_PROBLEMS], "and 12 more");
        assert!(
            health.problems[0].starts_with("problem 0 x"),
            "{}",
            health.problems[0]
        );
        assert_eq!(health.problems[0].chars().count(), MAX_TEXT + 1);
    }

    #[test]
    fn a_bundle_id_names_the_configuration_it_carries() {
        let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let other = "0000d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let id = bundle::BundleId::new(
            digest,
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        );
        assert!(runs_configuration(id.as_str(), digest));
        assert!(!runs_configuration(id.as_str(), other));
        assert!(!runs_configuration("a1", digest));
        assert!(!runs_configuration(id.as_str(), ""));
        let probe = ApplianceProbe::answered(
            ApplianceHealth {
                role: "gateway".into(),
                version: "1.0.0".into(),
                bundle: Some(id.to_string()),
                healthy: true,
                services: BTreeMap::new(),
                problems: vec![],
            },
            5,
        );
        assert!(probe.runs(digest) && !probe.runs(other));
        assert_eq!(probe.state(), ProbeState::Healthy);
    }

    #[test]
    fn a_probe_record_reads_back_and_says_what_it_means() {
        let failed = ApplianceProbe::failed(
            "the health probe could not run (pct: exit status: 255): CT 101 not running",
            7,
        );
        assert!(
            matches!(failed.state(), ProbeState::Failed(e) if e.contains("CT 101 not running"))
        );
        assert!(!failed.runs("9f86d081884c7d65"));
        let json = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            serde_json::from_str::<ApplianceProbe>(&json).unwrap(),
            failed
        );
        // Unknown fields from a newer agent are ignored.
        let newer: ApplianceProbe = serde_json::from_str(
            r#"{"healthy":false,"problems":["frr.service is failed"],"checked_ms":9,"later":1}"#,
        )
        .unwrap();
        assert_eq!(
            newer.state(),
            ProbeState::Unhealthy(&["frr.service is failed".to_owned()])
        );
        // Taken at another time, same answer.
        let mut again = newer.clone();
        again.checked_ms = 99;
        assert!(newer.same_answer(&again) && again != newer);
        // A hand-made record claiming health with a problem is not healthy.
        let mut liar = newer;
        liar.healthy = true;
        assert!(matches!(liar.state(), ProbeState::Unhealthy(_)));
    }
}
