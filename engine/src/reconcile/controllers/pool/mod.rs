//! Pools (`kind: Pool`): groups of identical instances.
//!
//! The Pool controller owns the pool's record (`orbitlab/pools/<pool>.json`,
//! [`crate::pool::PoolRecord`]): which members exist and from which
//! revision of the template each is made. It decides ([`decide`]) from the
//! spec, the record, the members' containers, addresses and health checks,
//! and writes the record when the decision changes it (one
//! [`Action::RecordPool`] step, audited for scaling, replacements and
//! rollout pauses). The members themselves are instances: the reconciler
//! adds each recorded member to the desired instances
//! ([`Desired::with_pool_members`]), so the instance controller makes,
//! configures, places (spread by [`member_spread`]) and removes them like
//! any `Lxc`, and a member is never made before it is recorded.
//!
//! Status: Ready once every wanted member is there, of the current
//! revision and healthy; Progressing while members are made, checked,
//! replaced or rolled; Failed while a rollout is paused by a failure or
//! replacing stopped (with the reason and what to do).
//!
//! [`Desired::with_pool_members`]: crate::reconcile::plan::Desired::with_pool_members

mod decide;

use std::collections::{BTreeMap, BTreeSet};

use orbitlab_manifests::{ApplianceRole, Kind, Name};

use super::Controller;
use crate::pool::{Gateway, member_name};
use crate::reconcile::ObjectRef;
use crate::reconcile::action::Action;
use crate::reconcile::ids::Marker;
use crate::reconcile::observed::Observed;
use crate::reconcile::plan::{Desired, Planner};

pub(crate) use decide::{Progress, State};

/// The controller of `kind: Pool`.
#[derive(Debug)]
pub(crate) struct PoolController;

impl Controller for PoolController {
    fn kind(&self) -> Kind {
        Kind::Pool
    }

    fn declared(&self, desired: &Desired) -> BTreeSet<Name> {
        desired.pools.keys().cloned().collect()
    }

    /// Pools with a record or a status.
    fn observed(&self, observed: &Observed) -> BTreeSet<Name> {
        observed
            .pools
            .records
            .keys()
            .cloned()
            .chain(
                observed
                    .statuses
                    .iter()
                    .filter(|o| o.kind == Kind::Pool)
                    .map(|o| o.name.clone()),
            )
            .collect()
    }

    fn plan(&self, name: &Name, planner: &mut Planner<'_>) -> Result<Vec<Action>, String> {
        let Some(spec) = planner.desired.pools.get(name) else {
            return Err("the manifest is gone".into());
        };
        let observed = planner.observed;
        let record = observed.pools.records.get(name);
        let gateway = observed
            .container(&Marker::part(
                Kind::Sector,
                &spec.instance.sector,
                ApplianceRole::Gateway,
            ))
            .map(|(vmid, c)| Gateway {
                vmid: vmid.get(),
                node: c.node.clone(),
            });
        let views = record
            .map(|r| {
                r.members
                    .iter()
                    .map(|(n, m)| (*n, view(observed, &member_name(name, *n), m)))
                    .collect()
            })
            .unwrap_or_default();
        let control = observed
            .pools
            .controls
            .get(name)
            .cloned()
            .unwrap_or_default();
        let leftovers = leftovers(observed, name, record);
        let decision = decide::decide(&decide::Inputs {
            pool: name,
            spec,
            record,
            control: &control,
            views: &views,
            gateway,
            leftovers: &leftovers,
            now: observed.pools.now,
        });
        let object = ObjectRef::new(Kind::Pool, name);
        match decision.progress {
            Progress::Stable => {}
            Progress::Working(why) => planner.wait(object, why),
            Progress::Stopped(why) => planner.block(object, why),
        }
        if record == Some(&decision.record) {
            return Ok(Vec::new());
        }
        Ok(vec![Action::RecordPool {
            pool: name.clone(),
            record: Box::new(decision.record),
        }])
    }

    fn teardown(&self, name: &Name, planner: &mut Planner<'_>) -> Vec<Action> {
        // Its members are no longer desired: the instance controller
        // removes them; the record and status go now.
        let object = ObjectRef::new(Kind::Pool, name);
        let known = planner.observed.pools.records.contains_key(name)
            || planner.observed.statuses.contains(&object);
        if known {
            vec![Action::ForgetStatus(object)]
        } else {
            Vec::new()
        }
    }

    fn describe(&self, name: &Name, observed: &Observed) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(record) = observed.pools.records.get(name) else {
            return out;
        };
        out.insert("replicas".into(), record.replicas.to_string());
        out.insert("revision".into(), record.current.clone());
        if let Some(spec) = record.revisions.get(&record.current) {
            out.insert(
                "fqdn".into(),
                format!("{name}.{}", super::instance::search_domain(&spec.sector)),
            );
        }
        let mut healthy = 0;
        for (n, m) in &record.members {
            let member = member_name(name, *n);
            let health = observed.pools.health.get(&member).filter(|h| h.is_of(m));
            let word = match health {
                Some(h) if h.healthy => "healthy".to_owned(),
                Some(h) if h.failures > 0 => format!(
                    "failing ({} in a row: {})",
                    h.failures,
                    h.error.as_deref().unwrap_or("failed")
                ),
                Some(_) => "passing, not yet healthy".into(),
                None => "not checked".into(),
            };
            if health.is_some_and(|h| h.healthy) {
                healthy += 1;
            }
            let mut facts = vec![format!("revision {}", m.revision)];
            if let Some(node) = &m.node {
                facts.push(format!("node {node}"));
            }
            if let Some(addr) = m.address {
                facts.push(addr.to_string());
            }
            if let Some(h) = health {
                facts.push(format!(
                    "last check {}",
                    crate::status::rfc3339(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(h.checked)
                    )
                ));
            }
            if let Some(why) = &m.retiring {
                facts.push(format!("retiring: {why}"));
            }
            out.insert(
                format!("member/{member}"),
                format!("{word}; {}", facts.join(", ")),
            );
        }
        out.insert(
            "members".into(),
            format!(
                "{} ({healthy} healthy by their last check)",
                record.members.len()
            ),
        );
        let replaced = record
            .events
            .iter()
            .filter(|e| e.what == "replace" || e.what == "remade")
            .count();
        out.insert("replacements".into(), replaced.to_string());
        for (what, key) in [
            ("scale", "last_scale"),
            ("replace", "last_replacement"),
            ("remade", "last_remade"),
        ] {
            if let Some(e) = record.events.iter().rev().find(|e| e.what == what) {
                out.insert(key.into(), e.detail.clone());
            }
        }
        let rollout = match (
            &record.failed,
            &record.paused,
            observed.pools.controls.get(name),
        ) {
            (Some(p), _, _) => format!("stopped: {}", p.reason),
            (_, Some(p), _) => format!("paused: {}", p.reason),
            (_, _, Some(c)) if c.paused => "paused by an operator".into(),
            _ => {
                let old = record
                    .members
                    .values()
                    .filter(|m| m.revision != record.current)
                    .count();
                if old == 0 {
                    "complete".into()
                } else {
                    format!("in progress: {old} members of an older revision left")
                }
            }
        };
        out.insert("rollout".into(), rollout);
        if let Some(previous) = &record.previous {
            out.insert("previous_revision".into(), previous.clone());
        }
        out
    }
}

/// Numbers of `pool`'s members not in its record whose container (or
/// its last home, on an offline node) is still there.
fn leftovers(
    observed: &Observed,
    pool: &Name,
    record: Option<&crate::pool::PoolRecord>,
) -> BTreeSet<u32> {
    let prefix = format!("{pool}-");
    let number = |m: &Marker| -> Option<u32> {
        if m.kind != Kind::Lxc || m.role.is_some() {
            return None;
        }
        let n: u32 = m.name.as_str().strip_prefix(&prefix)?.parse().ok()?;
        (!record.is_some_and(|r| r.members.contains_key(&n))).then_some(n)
    };
    observed
        .containers
        .values()
        .filter_map(|c| c.marker.as_ref())
        .chain(observed.homes.keys())
        .filter_map(number)
        .collect()
}

/// How member `member` (recorded as `recorded`) is, as observed.
fn view(observed: &Observed, member: &Name, recorded: &crate::pool::Member) -> decide::View {
    let container = observed
        .container(&Marker::object(Kind::Lxc, member))
        .map(|(vmid, c)| (vmid.get(), c.node.clone(), c.running, c.usage));
    let owner = format!("lxc/{member}");
    let address = observed
        .addresses
        .iter()
        .find(|(o, _)| o.as_str() == owner)
        .and_then(|(_, by_pool)| by_pool.values().next().copied());
    let health = observed
        .pools
        .health
        .get(member)
        .filter(|h| {
            container.as_ref().is_some_and(|c| c.0 == h.vmid) && h.member_since == recorded.since
        })
        .cloned();
    let marker = Marker::object(Kind::Lxc, member);
    let lost = match (&container, observed.homes.get(&marker)) {
        (None, Some((_, node))) if !observed.online(node) => Some(node.clone()),
        _ => None,
    };
    decide::View {
        container,
        address,
        health,
        failure: observed.pools.failures.get(member).cloned(),
        lost,
        age: observed.pools.now.saturating_sub(recorded.since),
    }
}

/// How the members of `member`'s Pool are spread, for placing it: the
/// node label it spreads over (`None`: nodes), and how many of the pool's
/// other members run on each node.
pub(crate) fn member_spread(
    desired: &Desired,
    observed: &Observed,
    member: &Name,
) -> Option<(
    Option<orbitlab_manifests::LabelKey>,
    BTreeMap<orbitlab_manifests::NodeName, u32>,
)> {
    let of = desired.members.get(member)?;
    let spec = desired.pools.get(&of.pool)?;
    let mut on: BTreeMap<orbitlab_manifests::NodeName, u32> = BTreeMap::new();
    for other in desired
        .members
        .iter()
        .filter(|(n, o)| o.pool == of.pool && *n != member)
    {
        if let Some((_, c)) = observed.container(&Marker::object(Kind::Lxc, other.0)) {
            *on.entry(c.node.clone()).or_default() += 1;
        }
    }
    let label = match &spec.spread {
        orbitlab_manifests::Spread::Nodes => None,
        orbitlab_manifests::Spread::Label(key) => Some(key.clone()),
    };
    Some((label, on))
}

/// The Pools' names in a Sector's DNS: each Pool's name answers with the
/// addresses of its healthy members only (`<pool>.<sector>.orbitlab.internal`).
pub(crate) fn dns_groups(
    desired: &Desired,
    observed: &Observed,
    sector: &Name,
) -> BTreeMap<Name, BTreeSet<std::net::Ipv4Addr>> {
    let mut out = BTreeMap::new();
    for (pool, spec) in &desired.pools {
        if spec.instance.sector != *sector {
            continue;
        }
        let Some(record) = observed.pools.records.get(pool) else {
            continue;
        };
        let views: BTreeMap<u32, decide::View> = record
            .members
            .iter()
            .map(|(n, m)| (*n, view(observed, &member_name(pool, *n), m)))
            .collect();
        let healthy = record
            .members
            .iter()
            .filter(|(n, m)| {
                m.retiring.is_none()
                    && views
                        .get(n)
                        .is_some_and(|v| decide::state(v, spec.health.as_ref()) == State::Available)
            })
            .filter_map(|(n, _)| views.get(n)?.address)
            .collect();
        out.insert(pool.clone(), healthy);
    }
    out
}
