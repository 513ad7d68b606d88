//! `orbitlab doctor` and the prerequisite checks of `orbitlab init`: every
//! check of the cluster's health that a careful Proxmox admin would make
//! before trusting it with OrbitLab, each with a fix.
//!
//! Gathering ([`Facts::gather`]) reads `<root>/.members`, the agents'
//! heartbeats (`orbitlab/agents/`, which carry each node's own
//! prerequisites: FRR, the `interfaces.d` include, Proxmox's SDN package,
//! time sync, see [`crate::host::checks`]), the lock directories
//! `priv/lock/orbitlab-*` and their owner notes, the vault's keyring, and,
//! through the Proxmox API when a connection is given, pending SDN changes
//! and the appliance templates on each online node's storage. Judging
//! ([`examine`], [`prerequisites`]) is pure. Nothing is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use orbitlab_manifests::{ApplianceRole, ManifestSet};
use serde::Serialize;

use crate::host::checks::HostReport;
use crate::liveness::{self, AgentRecord, AgentVersion, Members};
use crate::pve::Pve;
use crate::reconcile::Desired;
use crate::store::{Store, node_name};

/// A lock not renewed for this long has a holder that hangs or died (a
/// holder renews every 20 s).
pub const STALE_LOCK: Duration = Duration::from_secs(60);

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked (`quorum`, `agent`, `frr`, `template`...).
    pub check: String,
    /// The node, lock or template it is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do (empty when `ok`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Finding {
    fn ok(check: &str, target: Option<&str>, detail: impl Into<String>) -> Finding {
        Finding {
            check: check.to_owned(),
            target: target.map(str::to_owned),
            ok: true,
            detail: detail.into(),
            fix: String::new(),
        }
    }

    fn failed(
        check: &str,
        target: Option<&str>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check: check.to_owned(),
            target: target.map(str::to_owned),
            ok: false,
            detail: detail.into(),
            fix: fix.into(),
        }
    }

    /// `check` or `check target`, as shown.
    pub fn label(&self) -> String {
        match &self.target {
            Some(t) => format!("{} {t}", self.check),
            None => self.check.clone(),
        }
    }
}

/// A cluster lock directory as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockAge {
    /// `orbitlab-<name>`.
    pub name: String,
    /// Time since it was taken or last renewed.
    pub age: Duration,
    /// Its owner note, if any.
    pub holder: Option<String>,
}

/// One appliance template on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateFact {
    pub node: String,
    pub role: ApplianceRole,
    /// `storage:vztmpl/file`.
    pub volid: String,
    /// Whether the node's storage holds it, or why that is unknown.
    pub present: Result<bool, String>,
}

/// What Proxmox says, when it could be asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProxmoxFacts {
    /// Pending SDN changes OrbitLab did not make.
    pub foreign_pending: Vec<String>,
    pub templates: Vec<TemplateFact>,
}

/// Everything the checks judge.
#[derive(Debug, Clone)]
pub struct Facts {
    pub members: Members,
    pub records: BTreeMap<String, Result<AgentRecord, String>>,
    pub now: SystemTime,
    /// The Proxmox facts, or why Proxmox could not be asked.
    pub proxmox: Result<ProxmoxFacts, String>,
    pub locks: Vec<LockAge>,
    /// The vault's keyring is readable, or why not.
    pub vault: Result<(), String>,
    /// The version of the program judging.
    pub version: AgentVersion,
}

impl Facts {
    /// Gathers the facts of the cluster under `store`; `pve` is the
    /// Proxmox client, or why there is no usable connection (reported as
    /// the `proxmox` check's failure).
    pub fn gather(store: &Store, pve: Result<&dyn Pve, String>) -> Facts {
        let members = Members::read(store.root(), &node_name());
        let records = liveness::read_all(store).unwrap_or_default();
        let proxmox = pve.and_then(|pve| proxmox_facts(store, pve, &members));
        Facts {
            members,
            records,
            now: SystemTime::now(),
            proxmox,
            locks: lock_ages(store.root()),
            vault: crate::vault::Vault::new(store.clone())
                .status()
                .map(drop)
                .map_err(|e| e.to_string()),
            version: AgentVersion::this_build(),
        }
    }
}

fn proxmox_facts(store: &Store, pve: &dyn Pve, members: &Members) -> Result<ProxmoxFacts, String> {
    let set = ManifestSet::new(store.read_all_manifests().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let desired = Desired::from_set(&set);
    let zones = pve.sdn_zones().map_err(|e| e.to_string())?;
    let vnets = pve.sdn_vnets().map_err(|e| e.to_string())?;
    let ours = crate::reconcile::ids::is_ours;
    let mut foreign_pending: Vec<String> = zones
        .iter()
        .filter(|z| z.state.is_some() && !ours(&z.id))
        .map(|z| format!("zone {}", z.id))
        .collect();
    foreign_pending.extend(
        vnets
            .iter()
            .filter(|v| v.state.is_some() && !ours(&v.id))
            .map(|v| format!("vnet {}", v.id)),
    );
    let mut templates = Vec::new();
    for node in members.online() {
        for role in ApplianceRole::ALL {
            let volid = desired.appliance(role).template;
            let (storage, _) = volid.split_once(':').unwrap_or(("local", ""));
            let present = pve
                .storage_content(node, storage, Some("vztmpl"))
                .map(|volumes| volumes.iter().any(|v| v.volid == volid))
                .map_err(|e| e.to_string());
            templates.push(TemplateFact {
                node: node.to_owned(),
                role,
                volid,
                present,
            });
        }
    }
    Ok(ProxmoxFacts {
        foreign_pending,
        templates,
    })
}

/// Every `priv/lock/orbitlab-*` directory under `root`.
fn lock_ages(root: &Path) -> Vec<LockAge> {
    let Ok(entries) = std::fs::read_dir(root.join("priv/lock")) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut locks: Vec<LockAge> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let short = name.strip_prefix("orbitlab-")?.to_owned();
            let modified = e.metadata().ok()?.modified().ok()?;
            let holder =
                std::fs::read_to_string(root.join(format!("priv/orbitlab/locks/{short}.owner")))
                    .ok()
                    .map(|s| s.trim().to_owned());
            Some(LockAge {
                name,
                age: now.duration_since(modified).unwrap_or_default(),
                holder,
            })
        })
        .collect();
    locks.sort_by(|a, b| a.name.cmp(&b.name));
    locks
}

/// Each member node's own report of its prerequisites: from its agent's
/// heartbeat, or read on the spot for the node the command runs on.
pub type HostReports = BTreeMap<String, Result<HostReport, String>>;

/// The host reports in the agents' heartbeats.
pub fn reported_hosts(records: &BTreeMap<String, Result<AgentRecord, String>>) -> HostReports {
    records
        .iter()
        .map(|(node, r)| {
            (
                node.clone(),
                r.as_ref().map(|r| r.host.clone()).map_err(Clone::clone),
            )
        })
        .collect()
}

/// The prerequisites of every member node: a report must exist (an agent
/// checks its own node; `hosts` may add the local node's, read directly),
/// each of its checks must pass, and Proxmox's SDN package must be the
/// same version everywhere. What `orbitlab init` refuses on.
pub fn prerequisites(members: &Members, hosts: &HostReports) -> Vec<Finding> {
    let mut out = Vec::new();
    for node in members.nodes.keys() {
        let target = Some(node.as_str());
        match hosts.get(node) {
            None => out.push(Finding::failed(
                "agent",
                target,
                "no orbitlab-agent has reported from this node: its prerequisites are unknown",
                format!("install the orbitlab package on {node} and start it: `systemctl enable --now orbitlab-agent`"),
            )),
            Some(Err(problem)) => out.push(Finding::failed(
                "agent",
                target,
                problem.clone(),
                format!("restart the agent on {node}: `systemctl restart orbitlab-agent`"),
            )),
            Some(Ok(host)) => {
                for check in &host.checks {
                    out.push(Finding {
                        check: check.id.as_str().to_owned(),
                        target: target.map(str::to_owned),
                        ok: check.ok,
                        detail: check.detail.clone(),
                        fix: if check.ok {
                            String::new()
                        } else {
                            format!("on {node}: {}", check.fix)
                        },
                    });
                }
            }
        }
    }
    out.extend(same_everywhere(
        hosts,
        "pve-network-version",
        "libpve-network-perl",
    ));
    out
}

/// Every check (see the module documentation).
pub fn examine(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(quorum(&facts.members));
    out.extend(agents(facts));
    out.extend(sealed(facts));
    let hosts = reported_hosts(&facts.records);
    out.extend(
        prerequisites(&facts.members, &hosts)
            .into_iter()
            .filter(|f| f.check != "agent"),
    );
    out.extend(same_everywhere(&hosts, "orbitlab-version", "orbitlab"));
    match &facts.proxmox {
        Err(why) => out.push(Finding::failed(
            "proxmox",
            None,
            format!("cannot ask Proxmox: {why}"),
            "store a working connection with `orbitlab init` (or check that pveproxy runs: `systemctl status pveproxy`)",
        )),
        Ok(p) => {
            out.push(if p.foreign_pending.is_empty() {
                Finding::ok("sdn-pending", None, "no SDN change left pending by someone else")
            } else {
                Finding::failed(
                    "sdn-pending",
                    None,
                    format!("pending SDN changes OrbitLab did not make: {}", p.foreign_pending.join(", ")),
                    "apply or revert them in Datacenter → SDN (`pvesh set /cluster/sdn` applies all): OrbitLab applies nothing while they are pending",
                )
            });
            out.extend(p.templates.iter().map(template));
        }
    }
    out.extend(facts.locks.iter().map(lock));
    out.push(match &facts.vault {
        Ok(()) => Finding::ok("vault", None, "the vault's keyring is readable"),
        Err(why) => Finding::failed(
            "vault",
            None,
            why.clone(),
            "restore /etc/pve/priv/orbitlab/vault/keyring.json from a backup; secrets cannot be read without it",
        ),
    });
    out
}

/// A sealed vault, per node whose live agent reports it (a plain vault has
/// no per-node state).
fn sealed(facts: &Facts) -> Vec<Finding> {
    use crate::vault::SealState;
    facts
        .records
        .iter()
        .filter_map(|(node, r)| Some((node, r.as_ref().ok()?)))
        .filter(|(_, r)| !r.stopped && r.fresh(facts.now))
        .filter_map(|(node, r)| {
            let target = Some(node.as_str());
            match r.vault? {
                SealState::Plain => None,
                SealState::Unsealed => Some(Finding::ok(
                    "vault-seal",
                    target,
                    "the vault is sealed and this node's agent holds its key",
                )),
                SealState::Sealed => Some(Finding::failed(
                    "vault-seal",
                    target,
                    "the vault is sealed and this node's agent does not hold its key: it delivers no secret, certificate key or SSH key, and serves no value",
                    format!(
                        "unseal it: `printf %s \"$PASSPHRASE\" | orbitlab --host https://{node}:8206 vault unseal` (an agent forgets the key when it restarts)"
                    ),
                )),
            }
        })
        .collect()
}

fn quorum(members: &Members) -> Finding {
    let online = members.online().count();
    let total = members.nodes.len();
    match (&members.problem, members.quorate) {
        (Some(problem), _) => Finding::failed(
            "quorum",
            None,
            format!("cannot read the cluster membership: {problem}"),
            "check pmxcfs: `systemctl status pve-cluster`",
        ),
        (None, true) => Finding::ok(
            "quorum",
            None,
            format!("quorate, {online} of {total} node(s) online"),
        ),
        (None, false) => Finding::failed(
            "quorum",
            None,
            format!(
                "no quorum ({online} of {total} node(s) online): /etc/pve is read-only, OrbitLab changes nothing"
            ),
            "bring nodes back or fix the corosync links (`pvecm status`); OrbitLab resumes by itself",
        ),
    }
}

fn agents(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let newest = facts
        .records
        .values()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| r.fresh(facts.now))
        .map(|r| r.version.clone())
        .max();
    let nodes: BTreeSet<&String> = facts
        .members
        .nodes
        .keys()
        .chain(facts.records.keys())
        .collect();
    for node in nodes {
        let target = Some(node.as_str());
        let member = facts.members.nodes.get(node);
        let restart = format!(
            "start the agent on {node}: `systemctl restart orbitlab-agent`; `journalctl -u orbitlab-agent` says why it stopped"
        );
        let finding = match (member, facts.records.get(node)) {
            (None, _) => Finding::failed(
                "agent",
                target,
                "a heartbeat of a node that is not a cluster member",
                format!("remove /etc/pve/orbitlab/agents/{node}.json if {node} left the cluster"),
            ),
            (Some(m), _) if !m.online => Finding::failed(
                "agent",
                target,
                "the node is offline",
                format!("bring {node} back; its containers are reported Unavailable meanwhile"),
            ),
            (Some(_), None) => Finding::failed(
                "agent",
                target,
                "no orbitlab-agent has ever reported from this node",
                format!(
                    "install the orbitlab package on {node} and start it: `systemctl enable --now orbitlab-agent`"
                ),
            ),
            (Some(_), Some(Err(problem))) => {
                Finding::failed("agent", target, problem.clone(), restart)
            }
            (Some(_), Some(Ok(r))) if r.stopped => Finding::failed(
                "agent",
                target,
                format!(
                    "orbitlab-agent {} was stopped {:.0} s ago",
                    r.version,
                    r.age(facts.now).as_secs_f64()
                ),
                restart,
            ),
            (Some(_), Some(Ok(r))) if !r.fresh(facts.now) => Finding::failed(
                "agent",
                target,
                format!(
                    "no heartbeat for {:.0} s (orbitlab-agent {}){}",
                    r.age(facts.now).as_secs_f64(),
                    r.version,
                    if facts.members.quorate {
                        ""
                    } else {
                        "; without quorum no agent can write one"
                    }
                ),
                restart,
            ),
            (Some(_), Some(Ok(r))) if newest.as_ref().is_some_and(|n| r.version < *n) => {
                Finding::failed(
                    "agent",
                    target,
                    format!(
                        "orbitlab-agent {} is older than {} on other nodes: it stands down",
                        r.version,
                        newest.as_ref().map(ToString::to_string).unwrap_or_default()
                    ),
                    format!("upgrade orbitlab on {node}: `apt install orbitlab`"),
                )
            }
            (Some(_), Some(Ok(r))) => Finding::ok(
                "agent",
                target,
                format!(
                    "orbitlab-agent {} alive (heartbeat {:.1} s ago){}",
                    r.version,
                    r.age(facts.now).as_secs_f64(),
                    if r.owner {
                        ", owns cluster-scoped work"
                    } else {
                        ""
                    }
                ),
            ),
        };
        out.push(finding);
    }
    out
}

/// Whether every node that reports `package` has the same version of it.
fn same_everywhere(hosts: &HostReports, check: &str, package: &str) -> Option<Finding> {
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (node, host) in hosts {
        if let Ok(h) = host
            && let Some(v) = h.packages.get(package)
        {
            versions.entry(v.as_str()).or_default().push(node.as_str());
        }
    }
    match versions.len() {
        0 => None,
        1 => Some(Finding::ok(
            check,
            None,
            format!(
                "{package} {} on every node",
                versions.keys().next().copied().unwrap_or_default()
            ),
        )),
        _ => Some(Finding::failed(
            check,
            None,
            format!(
                "{package} differs between nodes: {}",
                versions
                    .iter()
                    .map(|(v, nodes)| format!("{v} on {}", nodes.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            format!(
                "upgrade every node to the same {package} (`apt full-upgrade`, one node at a time)"
            ),
        )),
    }
}

fn template(t: &TemplateFact) -> Finding {
    let target = format!("{}/{}", t.node, t.role.as_str());
    match &t.present {
        Ok(true) => Finding::ok("template", Some(&target), format!("{} present", t.volid)),
        Ok(false) => Finding::failed(
            "template",
            Some(&target),
            format!("{} is missing on node {}", t.volid, t.node),
            format!(
                "build it on {} with `orbitlab appliance build` or copy it to that storage (Datacenter → Storage → CT Templates → Upload)",
                t.node
            ),
        ),
        Err(why) => {
            let storage = t.volid.split_once(':').map_or(t.volid.as_str(), |(s, _)| s);
            Finding::failed(
                "template-storage",
                Some(&target),
                format!("cannot list storage {storage}: {why}"),
                format!(
                    "make storage {storage} available on node {} with content `vztmpl` (Datacenter → Storage), or set `defaults.template_storage` in the cluster manifest",
                    t.node
                ),
            )
        }
    }
}

fn lock(lock: &LockAge) -> Finding {
    let holder = lock.holder.as_deref().unwrap_or("holder unknown");
    if lock.age < STALE_LOCK {
        Finding::ok(
            "lock",
            Some(&lock.name),
            format!(
                "held, renewed {:.0} s ago ({holder})",
                lock.age.as_secs_f64()
            ),
        )
    } else {
        let frees = crate::store::PMXCFS_LOCK_EXPIRY.saturating_sub(lock.age);
        Finding::failed(
            "lock",
            Some(&lock.name),
            format!("not renewed for {:.0} s ({holder})", lock.age.as_secs_f64()),
            if frees.is_zero() {
                "its holder is gone: pmxcfs frees it at the next attempt to take it".to_owned()
            } else {
                format!(
                    "its holder hangs or died: pmxcfs frees it in {:.0} s; if it comes back, restart orbitlab-agent on the node named in the holder",
                    frees.as_secs_f64()
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::checks::{Check, CheckId};

    const MEMBERS: &str = r#"{"nodename":"pve1","cluster":{"name":"lab","quorate":1},
        "nodelist":{"pve1":{"online":1},"pve2":{"online":1},"pve3":{"online":1}}}"#;

    fn record(node: &str, now: SystemTime) -> AgentRecord {
        AgentRecord {
            node: node.into(),
            version: "0.1.0".parse().unwrap(),
            status_format: 1,
            written_ms: liveness::unix_ms(now),
            seq: 1,
            interval_ms: 5000,
            started_ms: 0,
            owner: node == "pve1",
            standing_down: None,
            last_pass: None,
            host: HostReport {
                checks: vec![Check {
                    id: CheckId::Frr,
                    ok: true,
                    detail: "frr 8.5 installed".into(),
                    fix: String::new(),
                }],
                packages: [("libpve-network-perl".to_owned(), "0.9.8".to_owned())].into(),
            },
            stopped: false,
            appliances: Default::default(),
            vault: None,
        }
    }

    fn healthy() -> Facts {
        let now = SystemTime::now();
        Facts {
            members: Members::parse(MEMBERS.as_bytes()).unwrap(),
            records: ["pve1", "pve2", "pve3"]
                .iter()
                .map(|n| ((*n).to_owned(), Ok(record(n, now))))
                .collect(),
            now,
            proxmox: Ok(ProxmoxFacts {
                foreign_pending: Vec::new(),
                templates: vec![TemplateFact {
                    node: "pve1".into(),
                    role: ApplianceRole::Gateway,
                    volid: "local:vztmpl/gw.tar.zst".into(),
                    present: Ok(true),
                }],
            }),
            locks: vec![LockAge {
                name: "orbitlab-reconcile".into(),
                age: Duration::from_secs(3),
                holder: None,
            }],
            vault: Ok(()),
            version: "0.1.0".parse().unwrap(),
        }
    }

    fn failed(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .filter(|f| !f.ok)
            .map(Finding::label)
            .collect()
    }

    #[test]
    fn a_healthy_cluster_is_all_green() {
        let findings = examine(&healthy());
        assert!(failed(&findings).is_empty(), "{findings:#?}");
        assert!(findings.iter().any(|f| f.label() == "agent pve2"));
        assert!(findings.iter().any(|f| f.check == "pve-network-version"));
    }

    #[test]
    fn each_problem_is_one_failed_finding_with_a_fix() {
        let mut facts = healthy();
        facts.members.quorate = false;
        let old = facts.now - Duration::from_secs(60);
        facts.records.insert("pve2".into(), Ok(record("pve2", old)));
        if let Ok(r) = facts.records.get_mut("pve3").unwrap() {
            r.host.checks[0].ok = false;
            r.host.checks[0].fix = "apt install frr-pythontools".into();
            r.host
                .packages
                .insert("libpve-network-perl".into(), "0.9.9".into());
        }
        if let Ok(p) = &mut facts.proxmox {
            p.templates[0].present = Ok(false);
            p.foreign_pending.push("zone lab".into());
        }
        facts.locks[0].age = Duration::from_secs(90);
        facts.vault = Err("keyring.json: not JSON".into());
        let findings = examine(&facts);
        assert_eq!(
            failed(&findings),
            [
                "quorum",
                "agent pve2",
                "frr pve3",
                "pve-network-version",
                "sdn-pending",
                "template pve1/gateway",
                "lock orbitlab-reconcile",
                "vault"
            ]
        );
        for f in findings.iter().filter(|f| !f.ok) {
            assert!(!f.fix.is_empty(), "{f:?}");
        }
        let frr = findings.iter().find(|f| f.label() == "frr pve3").unwrap();
        assert_eq!(frr.fix, "on pve3: apt install frr-pythontools");
    }

    #[test]
    fn prerequisites_need_an_agent_on_every_node() {
        let mut facts = healthy();
        facts.records.remove("pve3");
        let hosts = reported_hosts(&facts.records);
        let missing: Vec<String> = failed(&prerequisites(&facts.members, &hosts));
        assert_eq!(missing, ["agent pve3"]);
    }
}
