//! Pools end to end on a simulated 3-node cluster (issue 14), with the
//! agents' work run in turn as they would: each node's health checks
//! (`pool::probe::run`: TCP checks from the Sector Gateway through the
//! simulated `pct`, whose containers' services the test turns on and off),
//! then the owner's cluster-scoped reconcile and the other nodes'
//! node-scoped ones.
//!
//! - a pool of 4 spread over 3 nodes; its DNS name answers with its
//!   healthy members only;
//! - a member destroyed through the simulator is made again, within the
//!   check threshold;
//! - a member whose service stops answering is replaced (the new one
//!   first, then the old one removed);
//! - a changed template rolls through with `max_unavailable: 1`: at no
//!   sampled moment fewer than 3 members are healthy;
//! - a rollout to a broken template pauses with the reason and leaves the
//!   old members serving; `rollout undo` goes back;
//! - CPU load scales a pool up to `max` and, once it stops, down to `min`,
//!   with no change back and forth in between; each decision is audited
//!   with its figures.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use orbitlab_engine::api::{Api, RolloutAction, RolloutPath};
use orbitlab_engine::audit::{Action, AuditLog};
use orbitlab_engine::pool::{self, PoolRecord};
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::status::ObjectStatus;
use orbitlab_manifests::{Kind, codec};
use orbitlab_tests::{Lab, NODES};

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

fn manifests(pool: &str) -> String {
    format!(
        r#"
apiVersion: orbitlab.io/v1
kind: Sector
metadata: {{name: apps}}
spec:
  cidr: 172.16.0.0/24
  ingress: [{{name: web, protocol: tcp, port: 80, to_selector: "app=web"}}]
---
apiVersion: orbitlab.io/v1
kind: Pool
metadata: {{name: web, labels: {{app: web}}}}
spec:
{pool}
"#
    )
}

fn pool_spec(memory: u32, template: &str) -> String {
    format!(
        "  instance: {{sector: apps, template: '{template}', memory: {memory}}}
  replicas: 4
  health: {{tcp: {{port: 80}}, interval: 2s, timeout: 1s, unhealthy_after: 2, healthy_after: 1}}
  update: {{max_unavailable: 1, max_surge: 1}}"
    )
}

fn apply(lab: &Lab, yaml: &str) {
    Api::new(lab.store.clone())
        .apply(codec::decode("pools.yaml", yaml).unwrap())
        .unwrap_or_else(|e| panic!("apply: {e}"));
}

/// One round of the three agents: health checks on every node, then the
/// reconciles (pve1 owns cluster-scoped work).
fn tick(lab: &Lab) {
    let now = pool::unix(std::time::SystemTime::now());
    for node in NODES {
        let host = lab.host(node);
        pool::probe::run(&lab.store, &host, &node.parse().unwrap(), now).expect("checks run");
    }
    lab.converge_as_agents("pve1");
}

fn record(lab: &Lab, name: &str) -> PoolRecord {
    pool::read_records(&lab.store)
        .unwrap()
        .remove(&name.parse::<orbitlab_manifests::Name>().unwrap())
        .unwrap_or_default()
}

fn status(lab: &Lab, name: &str) -> ObjectStatus {
    lab.store
        .read_status(Kind::Pool, &name.parse().unwrap())
        .unwrap()
        .unwrap_or_default()
}

fn message(s: &ObjectStatus) -> String {
    s.conditions
        .iter()
        .filter(|c| c.status)
        .map(|c| format!("{:?}: {}", c.kind, c.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Ticks until `done` holds, at most `rounds` rounds of about a second;
/// the number of rounds it took.
fn until(lab: &Lab, what: &str, rounds: usize, mut done: impl FnMut(&Lab) -> bool) -> usize {
    for round in 1..=rounds {
        tick(lab);
        if done(lab) {
            return round;
        }
        std::thread::sleep(Duration::from_millis(700));
    }
    panic!(
        "{what}: not after {rounds} rounds; pool status: {}; record: {:#?}",
        message(&status(lab, "web")),
        record(lab, "web")
    );
}

fn ready(lab: &Lab) -> bool {
    status(lab, "web").is_ready()
}

/// Members by name: (VMID, node, address, healthy by its last check).
fn members(lab: &Lab, name: &str) -> BTreeMap<String, (u32, String, String, bool)> {
    let health = pool::read_health(&lab.store).unwrap();
    let rec = record(lab, name);
    rec.members
        .iter()
        .filter_map(|(n, m)| {
            let member = pool::member_name(&name.parse().unwrap(), *n);
            let healthy = health.get(&member).is_some_and(|h| h.healthy && h.is_of(m));
            Some((
                member.to_string(),
                (
                    m.vmid?,
                    m.node.clone()?.to_string(),
                    m.address?.to_string(),
                    healthy,
                ),
            ))
        })
        .collect()
}

/// Members running in the simulator whose service answers and whose last
/// check says healthy: what serves.
fn serving(lab: &Lab) -> usize {
    let running: BTreeSet<u32> = lab.sim.with_state(|st| {
        st.guests
            .iter()
            .filter(|(_, g)| matches!(g.status, orbitlab_sim::pve::state::PowerState::Running))
            .map(|(v, _)| *v)
            .collect()
    });
    let log = lab.sim.pct_log();
    members(lab, "web")
        .values()
        .filter(|(vmid, _, _, healthy)| {
            *healthy && running.contains(vmid) && log.get(vmid).is_none_or(|r| r.service.up)
        })
        .count()
}

/// The Sector DNS's records file, as last pushed into it.
fn dns_hosts(lab: &Lab) -> String {
    lab.sim
        .pct_log()
        .values()
        .find_map(|r| r.files.get("/etc/orbitlab/dns.hosts"))
        .map(|f| f.content.clone())
        .unwrap_or_default()
}

/// The addresses the Sector Gateway's ingress `web` (`to_selector:
/// app=web`) forwards to, from the ruleset last pushed into it.
fn ingress_targets(lab: &Lab) -> BTreeSet<String> {
    let ruleset = lab
        .sim
        .pct_log()
        .values()
        .find_map(|r| r.files.get("/etc/nftables.conf"))
        .map(|f| f.content.clone())
        .unwrap_or_default();
    ruleset
        .lines()
        .filter(|l| l.contains("dnat to") && l.contains("comment \"ingress web\""))
        .flat_map(|l| {
            let to = l.split("dnat to ").nth(1).unwrap_or("");
            let to = to.split(" comment").next().unwrap_or("");
            to.split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .filter(|w| w.matches('.').count() == 3)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The addresses the Sector DNS answers for `web.apps.orbitlab.internal`,
/// from the records file last pushed into it.
fn dns_answers(lab: &Lab) -> BTreeSet<String> {
    dns_hosts(lab)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("web.apps.orbitlab.internal"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn vmid_of(lab: &Lab, member: &str) -> u32 {
    members(lab, "web")[member].0
}

#[test]
fn a_pool_spreads_heals_rolls_and_pauses() {
    let lab = Lab::new();
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    apply(&lab, &manifests(&pool_spec(512, TEMPLATE)));
    until(&lab, "the pool of 4 is Ready", 30, ready);

    // Four members, spread: no node has two more than another.
    let all = members(&lab, "web");
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(names, ["web-1", "web-2", "web-3", "web-4"]);
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, node, _, healthy) in all.values() {
        assert!(healthy);
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert_eq!(
        per_node.values().max().unwrap() - per_node.values().min().unwrap(),
        1
    );
    // The pool's DNS name answers with every healthy member.
    let addresses: BTreeSet<String> = all.values().map(|m| m.2.clone()).collect();
    assert_eq!(dns_answers(&lab), addresses);
    // The Sector's ingress by selector (app=web, the Pool's label) spreads
    // over every healthy member.
    assert_eq!(ingress_targets(&lab), addresses);
    // Each member has its own name too.
    let hosts = dns_hosts(&lab);
    for (member, (_, _, addr, _)) in &all {
        let line = format!("{addr} {member}.apps.orbitlab.internal {member}");
        assert!(hosts.contains(&line), "{line} not in\n{hosts}");
    }
    let s = status(&lab, "web");
    assert_eq!(s.outputs["fqdn"], "web.apps.orbitlab.internal");
    assert_eq!(s.outputs["members"], "4 (4 healthy by their last check)");

    // A member destroyed (through the simulator) is made again under its
    // name, at its address; detected at the owner's next look.
    let (old_vmid, _, old_addr, _) = all["web-2"].clone();
    assert!(lab.sim.kill(old_vmid));
    let rounds = until(&lab, "web-2 is made again", 10, |lab| {
        let remade = status(lab, "web")
            .outputs
            .get("last_remade")
            .is_some_and(|e| e.starts_with(&format!("web-2: container {old_vmid} was gone")));
        remade && ready(lab) && members(lab, "web").get("web-2").is_some_and(|m| m.3)
    });
    assert!(rounds <= 4, "{rounds} rounds");
    assert_eq!(members(&lab, "web")["web-2"].2, old_addr);

    // A member whose service stops answering is replaced: the new one
    // first, then the old one goes. While it fails, the DNS name leaves
    // it out.
    let sick = vmid_of(&lab, "web-3");
    let sick_addr = members(&lab, "web")["web-3"].2.clone();
    lab.sim.set_service(sick, false, 200);
    let mut saw_both = false;
    let mut left_dns = false;
    until(&lab, "web-3 is replaced", 25, |lab| {
        let now = members(lab, "web");
        if now.contains_key("web-3") && now.contains_key("web-5") {
            saw_both = true;
        }
        if now.contains_key("web-3")
            && !dns_answers(lab).contains(&sick_addr)
            && !ingress_targets(lab).contains(&sick_addr)
        {
            left_dns = true;
        }
        !now.contains_key("web-3") && ready(lab)
    });
    assert!(saw_both, "the replacement came before the removal");
    assert!(
        left_dns,
        "the failing member left the pool's DNS name and the ingress"
    );
    let s = status(&lab, "web");
    assert!(
        s.outputs["last_replacement"].starts_with(
            "web-3 unhealthy (2 failed checks in a row: connection refused); replaced by web-5"
        ),
        "{:?}",
        s.outputs
    );
    let healthy: BTreeSet<String> = members(&lab, "web").values().map(|m| m.2.clone()).collect();
    assert_eq!(dns_answers(&lab), healthy);
    assert_eq!(ingress_targets(&lab), healthy);

    // A changed template rolls through, one member at a time.
    let changed_at = pool::unix(std::time::SystemTime::now());
    apply(&lab, &manifests(&pool_spec(768, TEMPLATE)));
    let mut samples = Vec::new();
    until(&lab, "the rollout completes", 60, |lab| {
        samples.push(serving(lab));
        let rec = record(lab, "web");
        ready(lab) && rec.members.values().all(|m| m.revision == rec.current)
    });
    assert!(
        samples.iter().all(|n| *n >= 3),
        "healthy members sampled: {samples:?}"
    );
    // Every member was made anew (names are reused: the lowest free number).
    let rec = record(&lab, "web");
    assert_eq!(rec.members.len(), 4);
    assert!(
        rec.members.values().all(|m| m.since >= changed_at),
        "{rec:#?}"
    );
    let good_revision = record(&lab, "web").current;

    // A rollout to a template that cannot be made pauses with the reason;
    // the old members keep serving.
    apply(
        &lab,
        &manifests(&pool_spec(768, "local:vztmpl/missing_1.0_amd64.tar.zst")),
    );
    until(&lab, "the broken rollout pauses", 15, |lab| {
        status(lab, "web").phase() == "Failed"
    });
    let s = status(&lab, "web");
    let why = message(&s);
    assert!(why.contains("the rollout to revision"), "{why}");
    assert!(
        why.contains("failed: spec.template: local:vztmpl/missing_1.0_amd64.tar.zst"),
        "{why}"
    );
    assert!(
        s.outputs["rollout"].starts_with("paused: "),
        "{:?}",
        s.outputs
    );
    assert!(serving(&lab) >= 3, "{}", serving(&lab));
    // Paused: nothing more moves.
    let paused_members = record(&lab, "web").members.clone();
    tick(&lab);
    assert_eq!(
        record(&lab, "web").members.keys().collect::<Vec<_>>(),
        paused_members.keys().collect::<Vec<_>>()
    );
    // `rollout undo` goes back to the last good template.
    Api::new(lab.store.clone())
        .rollout(&RolloutPath {
            pool: "web".parse().unwrap(),
            action: RolloutAction::Undo,
        })
        .expect("undo");
    until(&lab, "the undone rollout is Ready", 30, |lab| {
        let rec = record(lab, "web");
        ready(lab)
            && rec.current == good_revision
            && rec.members.values().all(|m| m.revision == good_revision)
    });
    assert_eq!(members(&lab, "web").len(), 4);
    let audit: Vec<_> = AuditLog::new(lab.store.clone())
        .records(None)
        .unwrap()
        .into_iter()
        .filter(|r| r.object == "/pools/web")
        .map(|r| r.action)
        .collect();
    for action in [Action::PoolReplace, Action::PoolRollout, Action::Set] {
        assert!(audit.contains(&action), "{action:?} not in {audit:?}");
    }
}

#[test]
fn load_scales_a_pool_up_to_max_and_back_down_to_min() {
    let lab = Lab::new();
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    apply(
        &lab,
        &manifests(&format!(
            "  instance: {{sector: apps, template: '{TEMPLATE}'}}
  autoscale: {{min: 2, max: 5, cpu: 50, scale_up_after: 2s, scale_down_after: 4s}}"
        )),
    );
    until(&lab, "the pool of 2 is Ready", 20, ready);
    assert_eq!(members(&lab, "web").len(), 2);
    let mut counts = vec![record(&lab, "web").replicas];
    // 90% of their cores busy: above the 50% target.
    lab.sim.set_load("web-", 0.9);
    until(&lab, "the pool scales to max", 40, |lab| {
        counts.push(record(lab, "web").replicas);
        ready(lab) && members(lab, "web").len() == 5
    });
    lab.sim.set_load("web-", 0.0);
    until(&lab, "the pool scales back to min", 40, |lab| {
        counts.push(record(lab, "web").replicas);
        ready(lab) && members(lab, "web").len() == 2
    });
    let changes: Vec<u16> = counts
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| w[1])
        .collect();
    let peak = changes.iter().position(|c| *c == 5).expect("reached max");
    assert!(
        changes[..=peak].windows(2).all(|w| w[1] > w[0]),
        "{changes:?}"
    );
    assert!(
        changes[peak..].windows(2).all(|w| w[1] < w[0]),
        "{changes:?}"
    );
    assert_eq!(changes.last(), Some(&2), "{changes:?}");
    // Each decision is in the status and the audit log, with its figures.
    let scales: Vec<String> = AuditLog::new(lab.store.clone())
        .records(None)
        .unwrap()
        .into_iter()
        .filter(|r| r.action == Action::PoolScale)
        .map(|r| r.detail["decision"].clone())
        .collect();
    assert!(
        scales
            .first()
            .is_some_and(|d| d.contains("average CPU 90.0% (target 50%)")),
        "{scales:?}"
    );
    assert!(
        scales
            .last()
            .is_some_and(|d| d.contains("→ 2 members: average CPU 0.0%")),
        "{scales:?}"
    );
    assert_eq!(scales.len(), changes.len(), "{scales:?} vs {changes:?}");
    let s = status(&lab, "web");
    assert!(
        s.outputs["last_scale"].contains("→ 2 members"),
        "{:?}",
        s.outputs
    );
}

#[test]
fn members_spread_over_the_values_of_a_node_label() {
    let lab = Lab::new();
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    // Racks: pve1 and pve2 in rack a, pve3 alone in rack b.
    let nodes = ["pve1", "pve2", "pve3"]
        .iter()
        .zip(["a", "a", "b"])
        .map(|(node, rack)| {
            format!("apiVersion: orbitlab.io/v1\nkind: Node\nmetadata: {{name: {node}, labels: {{rack: {rack}}}}}\nspec: {{}}\n")
        })
        .collect::<Vec<_>>()
        .join("---\n");
    apply(
        &lab,
        &format!(
            "{nodes}---\n{}",
            manifests(&format!(
                "  instance: {{sector: apps, template: '{TEMPLATE}'}}\n  replicas: 4\n  spread: {{label: rack}}"
            ))
        ),
    );
    until(&lab, "the pool of 4 is Ready", 20, ready);
    let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, node, _, _) in members(&lab, "web").values() {
        let rack = if node == "pve3" { "b" } else { "a" };
        *per_rack.entry(rack).or_default() += 1;
    }
    // Two per rack: pve3 alone holds as many as pve1 and pve2 together.
    assert_eq!(per_rack, BTreeMap::from([("a", 2), ("b", 2)]));
}
