//! `kind: Pool` — a group of identical instances made from one template:
//! how many (fixed `replicas`, or `autoscale` between `min` and `max` on
//! CPU or memory use), how they are spread over nodes, how their health is
//! checked, and how a changed template rolls through them.
//!
//! Members are instances named `<pool>-<n>` that carry the pool's labels;
//! they are made, replaced and removed by the pool, never declared one by
//! one. The template is an `Lxc` spec without what would make its members
//! differ or be kept elsewhere: no `address`, `node`, `placement` or `ha`,
//! no secrets or certificates (their grants name instances), and
//! `state: running`.
//!
//! Single-object rules: exactly one of `replicas` and `autoscale`;
//! `min ≤ max`; autoscale on at least one of CPU and memory; exactly one
//! probe per health check, its timeout shorter than its interval; an
//! update strategy that can make progress. Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::lxc::{LxcSpec, PowerState};
use super::rules::within;
use crate::error::Problems;
use crate::names::LabelKey;
use crate::period::Period;
use crate::spec::Arg;

/// Most members a pool may have (`replicas`, `autoscale.max`).
pub const MAX_REPLICAS: u16 = 500;

/// Longest timeout of one health check, seconds (a round of checks must
/// finish well within what one `pct exec` may take).
pub const MAX_CHECK_TIMEOUT: u64 = 25;

/// Longest pool name: room for `-<n>` up to [`MAX_REPLICAS`] twice over
/// within a name's 40 characters.
pub const MAX_POOL_NAME: usize = 35;

/// The desired state of a pool of identical instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, garde::Validate)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// What every member is made from: an `Lxc` spec (without `address`,
    /// `node`, `placement`, `ha`, `secrets`, `certificates`).
    #[garde(dive)]
    pub instance: LxcSpec,
    /// A fixed number of members (or `autoscale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub replicas: Option<u16>,
    /// Members between `min` and `max`, following CPU or memory use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub autoscale: Option<Autoscale>,
    /// How members are spread: over `nodes` (default) or over the values
    /// of a node label (`{label: rack}`).
    #[serde(default, skip_serializing_if = "Spread::is_nodes")]
    #[garde(skip)]
    pub spread: Spread,
    /// How a member's health is checked (none: a running, configured
    /// member is healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(skip)]
    pub health: Option<HealthCheck>,
    /// How a changed template or size rolls through the members.
    #[serde(default, skip_serializing_if = "UpdateStrategy::is_default")]
    #[garde(skip)]
    pub update: UpdateStrategy,
}

/// Where members go, relative to each other.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// As few members per node as possible (default).
    #[default]
    Nodes,
    /// As few members per value of this node label (`rack`), then per
    /// node; nodes without the label count as one group.
    Label(LabelKey),
}

impl Spread {
    fn is_nodes(&self) -> bool {
        *self == Spread::Nodes
    }
}

/// Auto-scaling: the member count follows the members' average use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    /// Fewest members (at least 1).
    pub min: u16,
    /// Most members.
    pub max: u16,
    /// Target average CPU use, percent of the members' cores (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<u8>,
    /// Target average memory use, percent of the members' memory (1–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u8>,
    /// Use must stay above target this long before a member is added
    /// (default 30s).
    #[serde(default = "default_up_window")]
    pub scale_up_after: Period,
    /// Use must stay below target this long before a member is removed
    /// (default 2m).
    #[serde(default = "default_down_window")]
    pub scale_down_after: Period,
}

/// A default period of `n` seconds (1 ≤ n, far below the 20-year limit).
fn seconds(n: u64) -> Period {
    Period::from_secs(n).unwrap_or_else(|_| unreachable!("defaults are within range"))
}

fn default_up_window() -> Period {
    seconds(30)
}

fn default_down_window() -> Period {
    seconds(120)
}

/// One health check of every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// A TCP connect to the member's address, from its Sector's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// An HTTP GET to the member's address, from its Sector's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// A command run inside the member (exit status 0: healthy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<Arg>,
    /// Time between checks (default 10s).
    #[serde(default = "default_interval")]
    pub interval: Period,
    /// How long one check may take (default 2s).
    #[serde(default = "default_timeout")]
    pub timeout: Period,
    /// Failed checks in a row that make a member unhealthy (default 3).
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after: u8,
    /// Passed checks in a row that make it healthy again (default 1).
    #[serde(default = "default_healthy_after")]
    pub healthy_after: u8,
}

fn default_interval() -> Period {
    seconds(10)
}
fn default_timeout() -> Period {
    seconds(2)
}
fn default_unhealthy_after() -> u8 {
    3
}
fn default_healthy_after() -> u8 {
    1
}

/// A TCP connect check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// The member's port.
    pub port: u16,
}

/// An HTTP GET check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// The member's port.
    pub port: u16,
    /// The path asked for (default `/`).
    #[serde(default = "default_path")]
    pub path: HttpPath,
    /// The status that means healthy (default 200).
    #[serde(default = "default_status")]
    pub status: u16,
}

fn default_path() -> HttpPath {
    HttpPath("/".into())
}
fn default_status() -> u16 {
    200
}

/// An HTTP request path: `/` and then printable ASCII without spaces,
/// at most 200 characters (it goes into a request line).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpPath(String);

impl HttpPath {
    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HttpPath {
    type Error = crate::InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let fine = s.starts_with('/') && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic());
        if fine {
            Ok(HttpPath(s))
        } else {
            Err(crate::InvalidValue(format!(
                "{} is not an HTTP path: it starts with / and holds at most 200 printable ASCII characters, no spaces",
                crate::names::shown(&s)
            )))
        }
    }
}

impl From<HttpPath> for String {
    fn from(p: HttpPath) -> String {
        p.0
    }
}

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe<'a> {
    /// TCP connect, from the member's Sector gateway.
    Tcp(TcpCheck),
    /// HTTP GET, from the member's Sector gateway.
    Http(&'a HttpCheck),
    /// A command inside the member.
    Command(&'a [Arg]),
}

impl HealthCheck {
    /// The one probe the check declares (validation refuses none or more).
    pub fn probe(&self) -> Option<Probe<'_>> {
        match (&self.tcp, &self.http, self.command.is_empty()) {
            (Some(t), None, true) => Some(Probe::Tcp(*t)),
            (None, Some(h), true) => Some(Probe::Http(h)),
            (None, None, false) => Some(Probe::Command(&self.command)),
            _ => None,
        }
    }
}

/// How changes roll through the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateStrategy {
    /// Most members that may be unavailable during an update or a
    /// replacement (default 1).
    #[serde(default = "one")]
    pub max_unavailable: u16,
    /// Most members made beyond the wanted count during an update or a
    /// replacement (default 1).
    #[serde(default = "one")]
    pub max_surge: u16,
}

fn one() -> u16 {
    1
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            max_unavailable: 1,
            max_surge: 1,
        }
    }
}

impl UpdateStrategy {
    fn is_default(&self) -> bool {
        *self == UpdateStrategy::default()
    }
}

impl PoolSpec {
    /// A pool of `replicas` members made from `instance`, spread over
    /// nodes, without a health check.
    pub fn new(instance: LxcSpec, replicas: u16) -> Self {
        PoolSpec {
            instance,
            replicas: Some(replicas),
            autoscale: None,
            spread: Spread::Nodes,
            health: None,
            update: UpdateStrategy::default(),
        }
    }

    /// The member count wanted when nothing was scaled yet: `replicas`,
    /// else `autoscale.min`.
    pub fn initial_replicas(&self) -> u16 {
        self.replicas
            .or(self.autoscale.as_ref().map(|a| a.min))
            .unwrap_or(1)
    }

    pub(crate) fn check(&self, p: &mut Problems) {
        let mut instance = Problems::under("spec.instance");
        self.instance.check(&mut instance);
        let i = &self.instance;
        let refuse = [
            (
                i.address.is_some(),
                "address",
                "members get their addresses from IPAM, one each; remove address",
            ),
            (
                i.node.is_some(),
                "node",
                "members are spread over nodes by the pool; remove node (use node_selector to choose which nodes)",
            ),
            (
                i.placement.is_some(),
                "placement",
                "the pool's spread places members; remove placement",
            ),
            (
                i.ha.is_some(),
                "ha",
                "the pool replaces failed members itself; remove ha",
            ),
            (
                !i.secrets.is_empty(),
                "secrets",
                "a Secret grants instances by name or selector, not pools' members yet; deliver it with a single Lxc, or remove secrets",
            ),
            (
                !i.certificates.is_empty(),
                "certificates",
                "certificates are not delivered to pools' members yet; remove certificates",
            ),
            (
                i.state != PowerState::Running,
                "state",
                "members are kept running; remove state (scale the pool instead)",
            ),
        ];
        for (bad, field, why) in refuse {
            if bad {
                instance.push(field, why);
            }
        }
        // The instance's own prefix: `spec.instance.*`; moved below the
        // caller's `spec` prefix by the caller's append.
        p.append(instance);
        match (self.replicas, &self.autoscale) {
            (Some(_), Some(_)) => p.push(
                "autoscale",
                "set either replicas (a fixed count) or autoscale (min and max), not both",
            ),
            (None, None) => p.push(
                "replicas",
                "missing: set replicas (a fixed count) or autoscale (min and max)",
            ),
            (Some(n), None) => {
                if let Err(e) = within(0u16, MAX_REPLICAS, "")(&n, &()) {
                    p.push("replicas", e.to_string());
                }
            }
            (None, Some(a)) => a.check(p),
        }
        if let Some(h) = &self.health {
            h.check(p);
        }
        if self.update.max_unavailable == 0 && self.update.max_surge == 0 {
            p.push(
                "update",
                "max_unavailable and max_surge are both 0: no member could ever be replaced; allow at least one of them",
            );
        }
    }
}

impl Autoscale {
    fn check(&self, p: &mut Problems) {
        if self.min == 0 {
            p.push("autoscale.min", "must be at least 1");
        }
        if self.max > MAX_REPLICAS {
            p.push(
                "autoscale.max",
                format!("{} is more than {MAX_REPLICAS}", self.max),
            );
        }
        if self.min > self.max {
            p.push(
                "autoscale.max",
                format!("{} is below min ({})", self.max, self.min),
            );
        }
        if self.cpu.is_none() && self.memory.is_none() {
            p.push(
                "autoscale",
                "names no target: set cpu or memory (a percentage of the members' use)",
            );
        }
        for (field, value) in [("cpu", self.cpu), ("memory", self.memory)] {
            if let Some(v) = value
                && !(1..=100).contains(&v)
            {
                p.push(
                    format!("autoscale.{field}"),
                    format!("{v} is not a percentage from 1 to 100"),
                );
            }
        }
    }
}

impl HealthCheck {
    fn check(&self, p: &mut Problems) {
        if self.probe().is_none() {
            p.push("health", "declare exactly one of tcp, http and command");
        }
        if self.timeout.as_secs() > MAX_CHECK_TIMEOUT {
            p.push(
                "health.timeout",
                format!(
                    "{} is longer than {MAX_CHECK_TIMEOUT}s, what one round of checks may take",
                    self.timeout
                ),
            );
        }
        if self.timeout >= self.interval {
            p.push(
                "health.timeout",
                format!(
                    "{} is not shorter than the interval ({}); checks would overlap",
                    self.timeout, self.interval
                ),
            );
        }
        for (field, value) in [
            ("unhealthy_after", self.unhealthy_after),
            ("healthy_after", self.healthy_after),
        ] {
            if !(1..=20).contains(&value) {
                p.push(
                    format!("health.{field}"),
                    format!("{value} is outside 1 to 20 checks in a row"),
                );
            }
        }
        let ports = self
            .tcp
            .map(|t| t.port)
            .into_iter()
            .chain(self.http.as_ref().map(|h| h.port));
        for port in ports {
            if port == 0 {
                p.push("health", "port 0 is not a port");
            }
        }
        if let Some(h) = &self.http
            && !(100..=599).contains(&h.status)
        {
            p.push(
                "health.http.status",
                format!("{} is not an HTTP status (100 to 599)", h.status),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<(String, String)> {
        let spec: PoolSpec = serde_saphyr::from_str(yaml).unwrap();
        let mut p = Problems::under("spec");
        spec.check(&mut p);
        p.items
    }

    const BASE: &str = "instance: {sector: apps, template: 'local:vztmpl/debian-12.tar.zst'}\n";

    #[test]
    fn a_plain_pool_is_fine_and_defaults_are_kept_out_of_the_yaml() {
        let spec: PoolSpec = serde_saphyr::from_str(&format!("{BASE}replicas: 4\n")).unwrap();
        assert_eq!(problems(&format!("{BASE}replicas: 4\n")), vec![]);
        assert_eq!(spec.initial_replicas(), 4);
        let text = serde_saphyr::to_string(&spec).unwrap();
        assert!(
            !text.contains("update") && !text.contains("spread"),
            "{text}"
        );
    }

    #[test]
    fn every_refusal_names_its_field() {
        let bad = format!(
            "{BASE}replicas: 2\nautoscale: {{min: 3, max: 2}}\nhealth: {{tcp: {{port: 80}}, command: [true], interval: 2s, timeout: 2s}}\nupdate: {{max_unavailable: 0, max_surge: 0}}\n"
        );
        let fields: Vec<String> = problems(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "spec.autoscale",
                "spec.health",
                "spec.health.timeout",
                "spec.update"
            ]
        );
        let bad = format!("{BASE}autoscale: {{min: 3, max: 2}}\n");
        let got = problems(&bad);
        assert!(
            got.contains(&("spec.autoscale.max".into(), "2 is below min (3)".into())),
            "{got:?}"
        );
        assert!(got.iter().any(|(f, _)| f == "spec.autoscale"), "{got:?}");
        let pinned = "instance: {sector: apps, template: 'local:vztmpl/d.tar.zst', node: pve1, address: 10.0.0.9}\nreplicas: 1\n";
        let fields: Vec<String> = problems(pinned).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["spec.instance.address", "spec.instance.node"]);
        assert_eq!(
            problems(BASE),
            vec![(
                "spec.replicas".into(),
                "missing: set replicas (a fixed count) or autoscale (min and max)".into()
            )]
        );
    }

    #[test]
    fn spread_and_checks_parse_to_their_types() {
        let spec: PoolSpec = serde_saphyr::from_str(&format!(
            "{BASE}replicas: 3\nspread: {{label: rack}}\nhealth: {{http: {{port: 8080, path: /healthz}}}}\n"
        ))
        .unwrap();
        assert_eq!(spec.spread, Spread::Label("rack".parse().unwrap()));
        let health = spec.health.as_ref().unwrap();
        let Some(Probe::Http(h)) = health.probe() else {
            panic!("{health:?}")
        };
        assert_eq!((h.port, h.path.as_str(), h.status), (8080, "/healthz", 200));
        assert_eq!(
            (health.interval.as_secs(), health.timeout.as_secs()),
            (10, 2)
        );
        let e = serde_saphyr::from_str::<PoolSpec>(&format!(
            "{BASE}replicas: 1\nhealth: {{http: {{port: 80, path: 'no slash'}}}}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("is not an HTTP path"), "{e}");
    }
}
