use std::collections::{BTreeMap, BTreeSet};

use orbitlab_manifests::{LxcSpec, Name, PoolSpec};

use super::*;
use crate::pool::{Control, MemberHealth, PoolRecord};

fn pool() -> Name {
    "web".parse().unwrap()
}

fn spec(extra: serde_json::Value) -> PoolSpec {
    let mut value = serde_json::json!({
        "instance": {"sector": "apps", "template": "local:vztmpl/a.tar.zst"},
        "health": {"tcp": {"port": 80}, "interval": "5s", "timeout": "1s", "unhealthy_after": 3},
    });
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    serde_json::from_value(value).unwrap()
}

/// How the test's world treats members.
#[derive(Default)]
struct World {
    /// Members whose checks fail.
    sick: BTreeSet<u32>,
    /// Members whose instance failed (no container).
    broken: BTreeSet<u32>,
    /// Members not yet up (no container).
    pending: BTreeSet<u32>,
    /// CPU use of every member, thousandths.
    cpu: u32,
    /// Members whose node is offline (their container unreachable there).
    lost: BTreeSet<u32>,
    /// When the checks ran last (none: at every step).
    checked_at: Option<u64>,
}

impl World {
    fn views(&self, rec: &PoolRecord, now: u64) -> BTreeMap<u32, View> {
        rec.members
            .keys()
            .map(|n| {
                let view = if self.broken.contains(n) {
                    View {
                        failure: Some("spec.template: local:vztmpl/missing.tar.zst is on no schedulable online node".into()),
                        ..View::default()
                    }
                } else if self.pending.contains(n) {
                    View::default()
                } else if self.lost.contains(n) {
                    View {
                        lost: Some("pve3".parse().unwrap()),
                        ..View::default()
                    }
                } else {
                    let sick = self.sick.contains(n);
                    View {
                        container: Some((
                            100 + n,
                            "pve1".parse().unwrap(),
                            true,
                            Some(Usage {
                                cpu_permille: self.cpu,
                                mem_permille: 100,
                            }),
                        )),
                        address: Some(std::net::Ipv4Addr::new(10, 0, 0, 10 + *n as u8)),
                        health: Some(MemberHealth {
                            vmid: 100 + n,
                            member_since: 0,
                            ever_healthy: true,
                            healthy: !sick,
                            passes: u32::from(!sick),
                            failures: if sick { 3 } else { 0 },
                            checked: self.checked_at.unwrap_or(now),
                            error: sick.then(|| "connection refused".into()),
                        }),
                        failure: None,
                        lost: None,
                        age: 1000,
                    }
                };
                (*n, view)
            })
            .collect()
    }
}

fn step(spec: &PoolSpec, rec: Option<&PoolRecord>, world: &World, now: u64) -> Decision {
    step_with(spec, rec, world, now, &Control::default())
}

fn step_with(
    spec: &PoolSpec,
    rec: Option<&PoolRecord>,
    world: &World,
    now: u64,
    control: &Control,
) -> Decision {
    let empty = PoolRecord::default();
    let views = world.views(rec.unwrap_or(&empty), now);
    decide(&Inputs {
        pool: &pool(),
        spec,
        record: rec,
        control,
        views: &views,
        gateway: None,
        leftovers: &BTreeSet::new(),
        now,
    })
}

fn numbers(rec: &PoolRecord) -> Vec<u32> {
    rec.members.keys().copied().collect()
}

#[test]
fn a_new_pool_records_its_members_then_is_stable() {
    let spec = spec(serde_json::json!({"replicas": 4}));
    let d = step(&spec, None, &World::default(), 1000);
    assert_eq!(numbers(&d.record), [1, 2, 3, 4]);
    assert!(
        matches!(d.progress, Progress::Working(_)),
        "{:?}",
        d.progress
    );
    let d2 = step(&spec, Some(&d.record), &World::default(), 1001);
    assert_eq!(d2.progress, Progress::Stable);
    assert_eq!(numbers(&d2.record), [1, 2, 3, 4]);
    assert_eq!(d2.record.members[&1].vmid, Some(101));
}

#[test]
fn an_unhealthy_member_is_replaced_first_then_removed() {
    let spec = spec(serde_json::json!({"replicas": 3}));
    let mut world = World::default();
    let rec = step(&spec, None, &world, 0).record;
    let rec = step(&spec, Some(&rec), &world, 1).record;
    world.sick.insert(2);
    let d = step(&spec, Some(&rec), &world, 10);
    // The replacement is recorded; the sick one stays until it serves.
    assert_eq!(numbers(&d.record), [1, 2, 3, 4]);
    assert_eq!(d.record.members[&2].replaced_by, Some(4));
    world.pending.insert(4);
    let d = step(&spec, Some(&d.record), &world, 11);
    assert_eq!(
        numbers(&d.record),
        [1, 2, 3, 4],
        "not removed before its replacement serves"
    );
    world.pending.clear();
    let d = step(&spec, Some(&d.record), &world, 12);
    assert_eq!(numbers(&d.record), [1, 3, 4]);
    let last = d
        .record
        .events
        .iter()
        .rev()
        .find(|e| e.what == "replace")
        .unwrap();
    assert!(
        last.detail.contains(
            "web-2 unhealthy (3 failed checks in a row: connection refused); replaced by web-4"
        ),
        "{}",
        last.detail
    );
}

#[test]
fn a_flapping_pool_backs_off_then_stops_with_the_reason() {
    let spec = spec(serde_json::json!({"replicas": 2}));
    let mut world = World::default();
    let mut rec = step(&spec, None, &world, 0).record;
    let mut now = 1;
    let mut replaced_at = Vec::new();
    // Every new member turns sick at once.
    for _ in 0..200 {
        world.sick = rec.members.keys().copied().collect();
        let before = rec.replacements_since(0);
        let d = step(&spec, Some(&rec), &world, now);
        if d.record.replacements_since(0) > before {
            replaced_at.push(now);
        }
        rec = d.record;
        if let Progress::Stopped(reason) = &d.progress {
            assert!(
                reason.contains("5 members were replaced in the last 10 minutes"),
                "{reason}"
            );
            assert!(
                reason.contains("orbitlab pool rollout resume web"),
                "{reason}"
            );
            break;
        }
        now += 1;
    }
    assert!(
        rec.failed.is_some(),
        "replacing never stopped: {replaced_at:?}"
    );
    // Each replacement waited longer than the one before.
    let gaps: Vec<u64> = replaced_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    assert!(gaps.last().copied().unwrap_or(0) >= 20, "{gaps:?}");
    // Stopped: no more replacements, until resumed.
    let d = step(&spec, Some(&rec), &world, now + 1000);
    assert_eq!(d.record.replacements_since(0), rec.replacements_since(0));
    let resumed = Control {
        paused: false,
        resumed: now + 1001,
    };
    let d = step_with(&spec, Some(&rec), &world, now + 1002, &resumed);
    assert!(d.record.failed.is_none());
}

#[test]
fn a_rollout_keeps_enough_members_available_and_converges() {
    let old = spec(serde_json::json!({"replicas": 4}));
    let mut world = World::default();
    let mut rec = step(&old, None, &world, 0).record;
    rec = step(&old, Some(&rec), &world, 1).record;
    let new =
        spec(serde_json::json!({"replicas": 4, "update": {"max_unavailable": 1, "max_surge": 1}}));
    let mut new = new;
    new.instance.memory = 1024;
    let revision = crate::pool::revision(&new.instance);
    let mut seen: BTreeSet<u32> = rec.members.keys().copied().collect();
    for now in 2..60 {
        // What the last decision recorded is still being made now.
        world.pending = rec
            .members
            .keys()
            .filter(|n| !seen.contains(n))
            .copied()
            .collect();
        seen = rec.members.keys().copied().collect();
        let available = rec.members.len() - world.pending.len();
        assert!(available >= 3, "at {now}: {available} available: {rec:?}");
        let d = step(&new, Some(&rec), &world, now);
        assert!(d.record.members.len() <= 5, "surge exceeded at {now}");
        rec = d.record;
        if d.progress == Progress::Stable {
            break;
        }
    }
    assert_eq!(rec.members.len(), 4);
    assert!(
        rec.members.values().all(|m| m.revision == revision),
        "{rec:?}"
    );
    assert_eq!(
        rec.previous.as_deref(),
        Some(crate::pool::revision(&old.instance).as_str())
    );
}

#[test]
fn a_broken_template_pauses_the_rollout_and_old_members_keep_serving() {
    let old = spec(serde_json::json!({"replicas": 4}));
    let world = World::default();
    let mut rec = step(&old, None, &world, 0).record;
    rec = step(&old, Some(&rec), &world, 1).record;
    let mut broken = old.clone();
    broken.instance.template = "local:vztmpl/missing.tar.zst".parse().unwrap();
    let d = step(&broken, Some(&rec), &world, 2);
    let added: Vec<u32> = d
        .record
        .members
        .iter()
        .filter(|(_, m)| m.revision != rec.current)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(added, [5]);
    let mut world = World::default();
    world.broken.insert(5);
    let d = step(&broken, Some(&d.record), &world, 3);
    let Progress::Stopped(reason) = &d.progress else {
        panic!("{:?}", d.progress)
    };
    assert!(
        reason.contains("member web-5 failed: spec.template"),
        "{reason}"
    );
    assert!(
        reason.contains("3 members of the previous revision keep serving"),
        "{reason}"
    );
    let old_left = d
        .record
        .members
        .values()
        .filter(|m| m.revision == rec.current)
        .count();
    assert_eq!(old_left, 3);
    // Paused: nothing more is added or removed.
    let again = step(&broken, Some(&d.record), &world, 50);
    assert_eq!(numbers(&again.record), numbers(&d.record));
    // Going back to the old template (undo) removes the broken member.
    let d = step(&old, Some(&again.record), &world, 51);
    assert!(d.record.paused.is_none());
    let d = step(&old, Some(&d.record), &world, 52);
    assert!(!d.record.members.contains_key(&5), "{:?}", d.record);
}

#[test]
fn autoscaling_waits_for_its_windows_and_stays_between_min_and_max() {
    let spec = spec(
        serde_json::json!({"autoscale": {"min": 2, "max": 5, "cpu": 50, "scale_up_after": "10s", "scale_down_after": "30s"}}),
    );
    let mut world = World {
        cpu: 900,
        ..World::default()
    };
    let mut rec = step(&spec, None, &world, 0).record;
    assert_eq!(rec.members.len(), 2);
    let mut counts = Vec::new();
    for now in 1..200 {
        if now == 100 {
            world.cpu = 50;
        }
        rec = step(&spec, Some(&rec), &world, now).record;
        counts.push(rec.replicas);
    }
    // Up to max, then down to min: never back and forth.
    let changes: Vec<u16> = counts
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| w[1])
        .collect();
    assert_eq!(changes.first(), Some(&4), "{changes:?}");
    assert!(changes.contains(&5), "{changes:?}");
    assert_eq!(changes.last(), Some(&2), "{changes:?}");
    let peak = changes.iter().position(|c| *c == 5).unwrap();
    assert!(
        changes[..=peak].windows(2).all(|w| w[1] > w[0]),
        "{changes:?}"
    );
    assert!(
        changes[peak..].windows(2).all(|w| w[1] < w[0]),
        "{changes:?}"
    );
    // The first change came a window after the load.
    let first = counts.iter().position(|c| *c != 2).unwrap() + 1;
    assert!(first >= 10, "{first}");
    let scale = rec.events.iter().find(|e| e.what == "scale").unwrap();
    assert!(
        scale
            .detail
            .starts_with("2 → 4 members: average CPU 90.0% (target 50%) over 2 members"),
        "{}",
        scale.detail
    );
    assert_eq!(rec.members.len(), 2);
}

#[test]
fn an_operator_pause_holds_the_rollout_but_not_scaling() {
    let old = spec(serde_json::json!({"replicas": 2}));
    let world = World::default();
    let rec = step(&old, None, &world, 0).record;
    let rec = step(&old, Some(&rec), &world, 1).record;
    let paused = Control {
        paused: true,
        resumed: 0,
    };
    let mut new = old.clone();
    new.instance = LxcSpec {
        cores: 2,
        ..new.instance.clone()
    };
    let d = step_with(&new, Some(&rec), &world, 2, &paused);
    assert_eq!(numbers(&d.record), [1, 2], "nothing rolls while paused");
    assert!(
        matches!(d.progress, Progress::Working(ref r) if r.contains("paused by an operator")),
        "{:?}",
        d.progress
    );
    // Without a rollout pending, scaling goes on.
    let mut more = old.clone();
    more.replicas = Some(3);
    let d = step_with(&more, Some(&rec), &world, 3, &paused);
    assert_eq!(numbers(&d.record), [1, 2, 3]);
}

#[test]
fn with_no_surge_a_replacement_never_takes_the_old_number() {
    let spec =
        spec(serde_json::json!({"replicas": 3, "update": {"max_unavailable": 1, "max_surge": 0}}));
    let mut world = World::default();
    let rec = step(&spec, None, &world, 0).record;
    let rec = step(&spec, Some(&rec), &world, 1).record;
    world.sick.insert(2);
    let d = step(&spec, Some(&rec), &world, 10);
    // web-2 goes at once (no room for one more); its number is not taken
    // again in the same decision, so its container is removed.
    assert_eq!(numbers(&d.record), [1, 3, 4]);
    world.sick.clear();
    let d = step(&spec, Some(&d.record), &world, 11);
    assert_eq!(numbers(&d.record), [1, 3, 4]);
}

#[test]
fn a_number_whose_old_container_still_exists_is_not_taken() {
    let spec = spec(serde_json::json!({"replicas": 2}));
    let rec = step(&spec, None, &World::default(), 0).record;
    let mut rec = step(&spec, Some(&rec), &World::default(), 1).record;
    rec.members.remove(&1);
    let views = World::default().views(&rec, 2);
    let d = decide(&Inputs {
        pool: &pool(),
        spec: &spec,
        record: Some(&rec),
        control: &Control::default(),
        views: &views,
        gateway: None,
        leftovers: &BTreeSet::from([1]),
        now: 2,
    });
    assert_eq!(numbers(&d.record), [2, 3]);
}

#[test]
fn resuming_a_paused_rollout_replaces_the_failed_new_member() {
    let old = spec(serde_json::json!({"replicas": 3}));
    let mut world = World::default();
    let rec = step(&old, None, &world, 0).record;
    let rec = step(&old, Some(&rec), &world, 1).record;
    let mut new = old.clone();
    new.instance.cores = 2;
    let d = step(&new, Some(&rec), &world, 2);
    let added = *d.record.members.keys().max().unwrap();
    world.broken.insert(added);
    let paused = step(&new, Some(&d.record), &world, 3);
    assert!(matches!(paused.progress, Progress::Stopped(_)));
    let resumed = Control {
        paused: false,
        resumed: 4,
    };
    let d = step_with(&new, Some(&paused.record), &world, 5, &resumed);
    assert!(d.record.paused.is_none(), "{:?}", d.progress);
    assert!(
        !d.record.members.contains_key(&added),
        "the failed member went"
    );
    assert!(
        d.record
            .members
            .iter()
            .any(|(n, m)| *n != added && m.revision == d.record.current)
    );
}

#[test]
fn members_on_a_lost_node_are_replaced_not_called_remade() {
    let spec = spec(serde_json::json!({"replicas": 3}));
    let mut world = World::default();
    let rec = step(&spec, None, &world, 0).record;
    let rec = step(&spec, Some(&rec), &world, 1).record;
    world.lost.insert(3);
    let d = step(&spec, Some(&rec), &world, 10);
    assert_eq!(d.record.members[&3].replaced_by, Some(4));
    assert_eq!(
        d.record.members[&3].vmid,
        Some(103),
        "still there, unreachable"
    );
    assert!(
        d.record.events.iter().all(|e| e.what != "remade"),
        "{:?}",
        d.record.events
    );
}

#[test]
fn autoscaling_counts_only_measured_members() {
    let spec = spec(
        serde_json::json!({"autoscale": {"min": 2, "max": 10, "cpu": 50, "scale_up_after": "5s", "scale_down_after": "5s"}}),
    );
    let mut world = World {
        cpu: 900,
        ..World::default()
    };
    let mut rec = step(&spec, None, &world, 0).record;
    // Scale to 4 once the window passed; the two new members stay
    // starting: the count must not run away while they do.
    for now in 1..60 {
        world.pending = rec.members.keys().filter(|n| **n > 2).copied().collect();
        rec = step(&spec, Some(&rec), &world, now).record;
    }
    assert_eq!(rec.replicas, 4, "{:?}", rec.events);
}

#[test]
fn stale_checks_keep_the_pool_from_ready_but_keep_their_results() {
    let spec = spec(serde_json::json!({"replicas": 2}));
    let world = World {
        checked_at: Some(0),
        ..World::default()
    };
    let rec = step(&spec, None, &world, 0).record;
    let d = step(&spec, Some(&rec), &world, 10);
    assert_eq!(d.progress, Progress::Stable);
    let d = step(&spec, Some(&d.record), &world, 1000);
    let Progress::Working(why) = &d.progress else {
        panic!("{:?}", d.progress)
    };
    assert!(
        why.contains("the last health checks of web-1, web-2 are older than 46s"),
        "{why}"
    );
    assert_eq!(
        numbers(&d.record),
        [1, 2],
        "nothing replaced on old results"
    );
}
