//! A Pool's decisions, pure: from its spec, its record, what an operator
//! asked and how each member is, the next record — which members exist,
//! which are on their way out, how many are wanted — and how far the pool
//! is from what it declares.
//!
//! - **Health.** A member is available when its container runs and, with
//!   a health check, its last checks made it healthy; unhealthy when its
//!   checks failed `unhealthy_after` times in a row (for a container never
//!   healthy yet, only after [`START_GRACE`] plus `unhealthy_after`
//!   intervals) or its node is offline; failed when its instance failed
//!   (a template that cannot be made, say). Results older than three
//!   intervals keep the pool from Ready but still stand.
//! - **Self-healing.** An unhealthy member gets a replacement first; it is
//!   removed once the replacement is available (or fails too). A number
//!   whose old container may remain is never given to a new member.
//!   Replacements back off (the check interval, doubled for each
//!   replacement in the last 10 minutes, at most 5 minutes); after
//!   [`FLAP_LIMIT`] in 10 minutes the pool stops replacing and says why,
//!   until an operator resumes it. A member whose container was
//!   destroyed is made again under its own name by the instance
//!   controller (recorded as `remade`).
//! - **Rolling updates.** A member made from another revision of the
//!   template is old. New members are added while the pool has fewer than
//!   `replicas + max_surge`; old ones are removed while at least
//!   `replicas - max_unavailable` members stay available (unavailable old
//!   ones first). A new member that fails or turns unhealthy while old
//!   ones serve pauses the rollout with the reason; the old ones keep
//!   serving; a resume replaces the failed new members and tries again.
//! - **Auto-scaling.** The wanted count is `ceil(measured × use / target)`
//!   (the highest over CPU and memory, over the available members it was
//!   measured on),
//!   between `min` and `max`, applied only once the use stayed beyond the
//!   target for the declared window; scale-down removes the newest
//!   members.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use orbitlab_manifests::{Autoscale, HealthCheck, Name, PoolSpec};

use crate::pool::{
    Control, Gateway, Member, MemberHealth, Pause, PoolRecord, member_name, revision,
};
use crate::reconcile::observed::Usage;

/// Replacements within [`FLAP_WINDOW`] after which replacing stops.
pub(crate) const FLAP_LIMIT: usize = 5;
/// The window of [`FLAP_LIMIT`], seconds.
pub(crate) const FLAP_WINDOW: u64 = 600;
/// The longest backoff between two replacements, seconds.
const MAX_BACKOFF: u64 = 300;
/// How long a new container may fail its checks before that counts (it
/// boots and starts its service), besides `unhealthy_after` intervals.
pub(crate) const START_GRACE: u64 = 60;

/// How one member is, as observed.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    /// Its container: VMID, node, running, use.
    pub container: Option<(u32, orbitlab_manifests::NodeName, bool, Option<Usage>)>,
    pub address: Option<Ipv4Addr>,
    /// Its last health check, when it was of this container.
    pub health: Option<MemberHealth>,
    /// Why its instance failed, when its status says so.
    pub failure: Option<String>,
    /// The offline node its container was last seen on (it is still
    /// there, unreachable).
    pub lost: Option<orbitlab_manifests::NodeName>,
    /// Seconds since the member was recorded.
    pub age: u64,
}

/// How a member is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Serving: running, and healthy if checked.
    Available,
    /// Being made, started or checked for the first time.
    Starting(String),
    /// Its checks failed `unhealthy_after` times in a row.
    Unhealthy(String),
    /// Its instance failed.
    Failed(String),
}

impl State {
    fn why(&self) -> &str {
        match self {
            State::Available => "",
            State::Starting(w) | State::Unhealthy(w) | State::Failed(w) => w,
        }
    }
}

/// How a member is, from its view and the pool's check.
pub(crate) fn state(view: &View, check: Option<&HealthCheck>) -> State {
    let Some((vmid, _, running, _)) = &view.container else {
        return match (&view.lost, &view.failure) {
            (Some(node), _) => State::Unhealthy(format!(
                "its node {node} is offline (the container stays there until it is back)"
            )),
            (None, Some(why)) => State::Failed(why.clone()),
            (None, None) => State::Starting("its container is being made".into()),
        };
    };
    if !running {
        return State::Starting(format!("container {vmid} is stopped; it is started again"));
    }
    let Some(check) = check else {
        return State::Available;
    };
    let grace = START_GRACE + check.interval.as_secs() * u64::from(check.unhealthy_after);
    match &view.health {
        Some(h) if h.healthy => State::Available,
        Some(h)
            if h.failures >= u32::from(check.unhealthy_after)
                && (h.ever_healthy || view.age >= grace) =>
        {
            State::Unhealthy(format!(
                "{} failed checks in a row: {}",
                h.failures,
                h.error.as_deref().unwrap_or("failed")
            ))
        }
        Some(h) => State::Starting(match &h.error {
            Some(e) => format!("not healthy yet ({} failed checks: {e})", h.failures),
            None => format!(
                "not healthy yet ({} of {} checks passed)",
                h.passes, check.healthy_after
            ),
        }),
        None => State::Starting("not checked yet".into()),
    }
}

/// How far a pool is from what it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Every wanted member is there, current and available.
    Stable,
    /// On its way; why it is not there yet.
    Working(String),
    /// Stopped until someone acts: why, and what to do.
    Stopped(String),
}

/// Everything a decision reads.
#[derive(Debug)]
pub(crate) struct Inputs<'a> {
    pub pool: &'a Name,
    pub spec: &'a PoolSpec,
    pub record: Option<&'a PoolRecord>,
    pub control: &'a Control,
    /// How each recorded member is, by number.
    pub views: &'a BTreeMap<u32, View>,
    pub gateway: Option<Gateway>,
    /// Numbers not in the record whose container or status may still
    /// exist: a new member never takes one (it would take over the old
    /// container).
    pub leftovers: &'a std::collections::BTreeSet<u32>,
    /// Unix seconds.
    pub now: u64,
}

/// A decision: the record to keep and the progress.
#[derive(Debug)]
pub(crate) struct Decision {
    pub record: PoolRecord,
    pub progress: Progress,
}

/// Decides (see the module documentation).
pub(crate) fn decide(inputs: &Inputs<'_>) -> Decision {
    let Inputs {
        pool,
        spec,
        control,
        views,
        now,
        ..
    } = *inputs;
    let check = spec.health.as_ref();
    let mut rec = inputs.record.cloned().unwrap_or_else(|| PoolRecord {
        replicas: spec.initial_replicas(),
        ..PoolRecord::default()
    });
    let current = revision(&spec.instance);
    if rec.current != current {
        if !rec.current.is_empty() {
            rec.push_event(
                now,
                "rollout",
                format!("template changed: revision {} → {current}", rec.current),
            );
            rec.previous = Some(rec.current.clone());
        }
        rec.current = current.clone();
        rec.paused = None;
    }
    rec.revisions.insert(current.clone(), spec.instance.clone());
    rec.gateway = inputs.gateway.clone();
    learn(&mut rec, pool, views, now);
    let states: BTreeMap<u32, State> = rec
        .members
        .keys()
        .map(|n| (*n, state(views.get(n).unwrap_or(&View::default()), check)))
        .collect();
    // Numbers a new member may not take: those whose old container may
    // still exist, and those freed in this decision.
    let mut avoid = inputs.leftovers.clone();
    if rec.failed.as_ref().is_some_and(|p| p.at <= control.resumed) {
        rec.failed = None;
        rec.push_event(
            now,
            "resume",
            "replacing goes on (resumed by an operator)".into(),
        );
    }
    if rec.paused.as_ref().is_some_and(|p| p.at <= control.resumed) {
        // The members that stopped the rollout go; new ones are made in
        // their place, so that the rollout tries again.
        rec.paused = None;
        let stuck: Vec<u32> = rec
            .members
            .iter()
            .filter(|(n, m)| {
                m.revision == rec.current
                    && matches!(states.get(n), Some(State::Failed(_) | State::Unhealthy(_)))
            })
            .map(|(n, _)| *n)
            .collect();
        for n in &stuck {
            rec.members.remove(n);
            avoid.insert(*n);
        }
        rec.push_event(
            now,
            "resume",
            format!(
                "the rollout goes on (resumed by an operator); {} failed new members removed",
                stuck.len()
            ),
        );
    }
    let wanted = match (&spec.autoscale, spec.replicas) {
        (Some(auto), _) => autoscale(auto, &mut rec, views, &states, now),
        (None, Some(r)) => r,
        (None, None) => spec.initial_replicas(),
    };
    rec.replicas = wanted;
    let mut notes = Vec::new();
    let since = now.saturating_sub(FLAP_WINDOW).max(control.resumed);
    heal(
        pool,
        spec,
        &mut rec,
        &states,
        (now, since),
        &mut avoid,
        &mut notes,
    );
    retire(&mut rec, &states, &mut avoid);
    // Paused (by a failure or an operator): no member is added or removed
    // for the new revision; scaling and refilling go on.
    let hold = rec.paused.is_some() || control.paused;
    roll(pool, spec, &mut rec, &states, now, hold, &mut avoid);
    let rolling = rec.members.values().any(|m| m.revision != rec.current);
    let stopped = rec
        .failed
        .as_ref()
        .or(rec.paused.as_ref())
        .map(|p| p.reason.clone());
    if control.paused && rolling {
        notes.push(format!(
            "the rollout is paused by an operator; `orbitlab pool rollout resume {pool}` goes on"
        ));
    }
    let stale = stale(pool, spec, &rec, views, now);
    // Revisions no member uses are forgotten (the previous one is kept for
    // `rollout undo`).
    let used: Vec<String> = rec.members.values().map(|m| m.revision.clone()).collect();
    let keep =
        |r: &String| used.contains(r) || *r == rec.current || rec.previous.as_ref() == Some(r);
    rec.revisions.retain(|r, _| keep(r));
    let progress = progress(pool, &rec, &states, stopped, notes, stale);
    Decision {
        record: rec,
        progress,
    }
}

/// Takes in what was observed of each member: its container (a new VMID
/// for a known member means it was made again), node and address.
fn learn(rec: &mut PoolRecord, pool: &Name, views: &BTreeMap<u32, View>, now: u64) {
    let mut remade = Vec::new();
    for (n, m) in &mut rec.members {
        let Some(view) = views.get(n) else { continue };
        match &view.container {
            Some((vmid, node, _, _)) => {
                if let Some(old) = m.vmid.filter(|old| old != vmid) {
                    remade.push(format!(
                        "{}: container {old} was gone; made again as {vmid}",
                        member_name(pool, *n)
                    ));
                }
                m.vmid = Some(*vmid);
                m.node = Some(node.clone());
            }
            // On an offline node: still there, unreachable; it is
            // replaced (see `state`), not made again.
            None if view.lost.is_some() => {}
            // Gone (destroyed, or lost with its node's disk): the instance
            // controller makes it again under its name, at its address
            // (Proxmox may give it the same VMID).
            None => {
                if let Some(old) = m.vmid.take() {
                    remade.push(format!(
                        "{}: container {old} was gone; made again from the template",
                        member_name(pool, *n)
                    ));
                }
                m.node = None;
            }
        }
        if view.address.is_some() {
            m.address = view.address;
        }
    }
    for detail in remade {
        rec.push_event(now, "remade", detail);
    }
}

/// The member count auto-scaling wants now (see the module documentation).
fn autoscale(
    auto: &Autoscale,
    rec: &mut PoolRecord,
    views: &BTreeMap<u32, View>,
    states: &BTreeMap<u32, State>,
    now: u64,
) -> u16 {
    let count = if rec.replicas == 0 {
        auto.min
    } else {
        rec.replicas
    }
    .clamp(auto.min, auto.max);
    let used: Vec<Usage> = states
        .iter()
        .filter(|(n, s)| {
            **s == State::Available && rec.members.get(n).is_some_and(|m| m.retiring.is_none())
        })
        .filter_map(|(n, _)| views.get(n)?.container.as_ref()?.3)
        .collect();
    if used.is_empty() {
        return count;
    }
    let average = |f: fn(&Usage) -> u32| {
        used.iter().map(|u| u64::from(f(u))).sum::<u64>() / used.len() as u64
    };
    let cpu = average(|u| u.cpu_permille);
    let mem = average(|u| u.mem_permille);
    // The measured members' total use over the target: members still
    // starting do not count yet (their count would inflate it).
    let measured = used.len() as u64;
    let need = |average: u64, target: Option<u8>| -> Option<u64> {
        let target = u64::from(target?) * 10;
        Some((measured * average).div_ceil(target))
    };
    let wanted = need(cpu, auto.cpu)
        .into_iter()
        .chain(need(mem, auto.memory))
        .max()
        .unwrap_or(u64::from(count))
        .clamp(u64::from(auto.min), u64::from(auto.max)) as u16;
    let figures = || {
        let mut parts = Vec::new();
        if let Some(t) = auto.cpu {
            parts.push(format!(
                "average CPU {}.{}% (target {t}%)",
                cpu / 10,
                cpu % 10
            ));
        }
        if let Some(t) = auto.memory {
            parts.push(format!(
                "average memory {}.{}% (target {t}%)",
                mem / 10,
                mem % 10
            ));
        }
        format!("{} over {} members", parts.join(", "), used.len())
    };
    let s = &mut rec.scaling;
    let (since, window) = if wanted > count {
        s.below_since = None;
        (
            *s.above_since.get_or_insert(now),
            auto.scale_up_after.as_secs(),
        )
    } else if wanted < count {
        s.above_since = None;
        (
            *s.below_since.get_or_insert(now),
            auto.scale_down_after.as_secs(),
        )
    } else {
        s.above_since = None;
        s.below_since = None;
        return count;
    };
    // Whole seconds: more than the window between two readings means
    // at least the whole window passed.
    if now.saturating_sub(since) <= window {
        return count;
    }
    s.above_since = None;
    s.below_since = None;
    let detail = format!(
        "{count} → {wanted} members: {} for {}s (window {window}s)",
        figures(),
        now - since
    );
    rec.push_event(now, "scale", detail);
    wanted
}

/// Replaces unhealthy members (see the module documentation).
/// `(now, since)`: replacements since `since` count towards the limit
/// (the flapping window, or the last resume if later).
fn heal(
    pool: &Name,
    spec: &PoolSpec,
    rec: &mut PoolRecord,
    states: &BTreeMap<u32, State>,
    (now, since): (u64, u64),
    avoid: &mut std::collections::BTreeSet<u32>,
    notes: &mut Vec<String>,
) {
    if rec.failed.is_some() {
        return;
    }
    let interval = spec.health.as_ref().map_or(10, |c| c.interval.as_secs());
    let rolling = rec.members.values().any(|m| m.revision != rec.current);
    let unhealthy: Vec<(u32, String)> = states
        .iter()
        .filter_map(|(n, s)| match s {
            State::Unhealthy(why) => Some((*n, why.clone())),
            _ => None,
        })
        .filter(|(n, _)| {
            rec.members.get(n).is_some_and(|m| {
                // A new member failing while old ones serve pauses the
                // rollout instead (see `roll`).
                m.retiring.is_none() && !(rolling && m.revision == rec.current)
            })
        })
        .collect();
    for (n, why) in unhealthy {
        let name = member_name(pool, n);
        let recent = rec.replacements_since(since);
        if recent >= FLAP_LIMIT {
            let reason = format!(
                "{recent} members were replaced in the last {} minutes, the last one {name} ({why}); replacing stopped so that it does not loop: fix what fails, then run `orbitlab pool rollout resume {pool}`",
                FLAP_WINDOW / 60
            );
            rec.push_event(now, "fail", reason.clone());
            rec.failed = Some(Pause { reason, at: now });
            return;
        }
        if recent > 0 {
            let last = rec.replaced_at.last().copied().unwrap_or(0);
            let backoff = (interval << (recent - 1).min(16)).min(MAX_BACKOFF);
            if now < last + backoff {
                notes.push(format!(
                    "{name} is unhealthy ({why}); replaced in {}s (backoff after {recent} replacements)",
                    last + backoff - now
                ));
                continue;
            }
        }
        let revision = rec.current.clone();
        let room = (usize::from(rec.replicas) + usize::from(spec.update.max_surge))
            .saturating_sub(rec.members.len());
        if room == 0 && spec.update.max_surge > 0 {
            notes.push(format!(
                "{name} is unhealthy ({why}); replaced once a replacement in progress is done (max_surge {})",
                spec.update.max_surge
            ));
            continue;
        }
        rec.replaced(now);
        if spec.update.max_surge == 0 {
            // No room for one more: the unhealthy one goes first; its
            // number is not taken again until its container is gone.
            rec.members.remove(&n);
            avoid.insert(n);
            rec.push_event(
                now,
                "replace",
                format!("{name} removed ({why}); a new member takes its place (max_surge 0)"),
            );
            continue;
        }
        let new = rec.free_number(avoid);
        rec.members.insert(new, Member::new(revision, now));
        if let Some(m) = rec.members.get_mut(&n) {
            m.retiring = Some(format!("unhealthy: {why}"));
            m.replaced_by = Some(new);
        }
        rec.push_event(
            now,
            "replace",
            format!(
                "{name} unhealthy ({why}); replaced by {}",
                member_name(pool, new)
            ),
        );
    }
}

/// Removes retiring members whose replacement is available, gone, or
/// failing too (waiting for it would help nothing: the retiring one is
/// unavailable anyway).
fn retire(
    rec: &mut PoolRecord,
    states: &BTreeMap<u32, State>,
    avoid: &mut std::collections::BTreeSet<u32>,
) {
    let done: Vec<u32> = rec
        .members
        .iter()
        .filter(|(_, m)| m.retiring.is_some())
        .filter(|(_, m)| match m.replaced_by {
            None => true,
            Some(r) => {
                // A replacement recorded in this decision has no state yet.
                !rec.members.contains_key(&r)
                    || !matches!(states.get(&r), None | Some(State::Starting(_)))
            }
        })
        .map(|(n, _)| *n)
        .collect();
    for n in done {
        rec.members.remove(&n);
        avoid.insert(n);
    }
}

/// Rolls the template through the members and follows the wanted count
/// (see the module documentation).
/// While `hold` (paused), nothing is added or removed for the new
/// revision; without old members it is only scaling, which goes on.
fn roll(
    pool: &Name,
    spec: &PoolSpec,
    rec: &mut PoolRecord,
    states: &BTreeMap<u32, State>,
    now: u64,
    hold: bool,
    avoid: &mut std::collections::BTreeSet<u32>,
) {
    let wanted = usize::from(rec.replicas);
    let current = rec.current.clone();
    let active = |rec: &PoolRecord, new: bool| -> Vec<u32> {
        rec.members
            .iter()
            .filter(|(_, m)| m.retiring.is_none() && (m.revision == current) == new)
            .map(|(n, _)| *n)
            .collect()
    };
    let old = active(rec, false);
    let fresh = active(rec, true);
    let available = |n: &u32| states.get(n) == Some(&State::Available);
    if hold && !old.is_empty() {
        return;
    }
    if !old.is_empty()
        && let Some((n, s)) = fresh
            .iter()
            .filter_map(|n| Some((n, states.get(n)?)))
            .find(|(_, s)| matches!(s, State::Failed(_) | State::Unhealthy(_)))
    {
        let reason = format!(
            "the rollout to revision {current} is paused: its member {} {}: {}; {} members of the previous revision keep serving. Fix the template and apply it, run `orbitlab pool rollout undo {pool}`, or `orbitlab pool rollout resume {pool}` to try again",
            member_name(pool, *n),
            if matches!(s, State::Failed(_)) {
                "failed"
            } else {
                "is unhealthy"
            },
            s.why(),
            old.iter().filter(|n| available(n)).count()
        );
        rec.push_event(now, "pause", reason.clone());
        rec.paused = Some(Pause { reason, at: now });
        return;
    }
    // Add members of the current revision, within the surge.
    let room = (wanted + usize::from(spec.update.max_surge)).saturating_sub(rec.members.len());
    let add = wanted.saturating_sub(fresh.len()).min(room);
    for _ in 0..add {
        let n = rec.free_number(avoid);
        rec.members.insert(n, Member::new(current.clone(), now));
    }
    // Remove old members while enough stay available.
    let min_available = wanted.saturating_sub(usize::from(spec.update.max_unavailable));
    let mut available_now = rec.members.keys().filter(|n| available(n)).count();
    let mut old = old;
    old.sort_by_key(|n| (available(n), *n));
    for n in old {
        if available(&n) {
            if available_now <= min_available {
                break;
            }
            available_now -= 1;
        }
        rec.members.remove(&n);
        avoid.insert(n);
    }
    // Scale down: the newest members beyond the wanted count go
    // (unavailable ones first).
    let mut fresh = active(rec, true);
    if fresh.len() > wanted {
        fresh.sort_by_key(|n| {
            (
                available(n),
                std::cmp::Reverse(rec.members[n].since),
                std::cmp::Reverse(*n),
            )
        });
        let extra = fresh.len() - wanted;
        for n in fresh.into_iter().take(extra) {
            rec.members.remove(&n);
            avoid.insert(n);
        }
    }
}

/// Where the pool stands after a decision.
fn progress(
    pool: &Name,
    rec: &PoolRecord,
    states: &BTreeMap<u32, State>,
    stopped: Option<String>,
    notes: Vec<String>,
    stale: Option<String>,
) -> Progress {
    if let Some(reason) = stopped {
        return Progress::Stopped(reason);
    }
    let wanted = usize::from(rec.replicas);
    let current = rec
        .members
        .values()
        .filter(|m| m.revision == rec.current && m.retiring.is_none())
        .count();
    let available = rec
        .members
        .keys()
        .filter(|n| states.get(n) == Some(&State::Available))
        .count();
    let stable = rec.members.len() == wanted
        && current == wanted
        && rec
            .members
            .keys()
            .all(|n| states.get(n) == Some(&State::Available))
        && stale.is_none();
    if stable {
        return Progress::Stable;
    }
    let waiting: Vec<String> = states
        .iter()
        .filter(|(n, s)| **s != State::Available && rec.members.contains_key(n))
        .take(3)
        .map(|(n, s)| format!("{}: {}", member_name(pool, *n), s.why()))
        .collect();
    let mut why = vec![format!(
        "{available} of {} members healthy, {current} of {wanted} at revision {}",
        rec.members.len(),
        rec.current
    )];
    why.extend(waiting);
    why.extend(notes);
    why.extend(stale);
    Progress::Working(why.join("; "))
}

/// Members whose last health check is too old to go by (the agent that
/// checks them is not running, or cannot reach them): said, so the pool
/// is not Ready; their last results still stand (a pool's DNS name does
/// not empty because its checks stopped).
fn stale(
    pool: &Name,
    spec: &PoolSpec,
    rec: &PoolRecord,
    views: &BTreeMap<u32, View>,
    now: u64,
) -> Option<String> {
    let check = spec.health.as_ref()?;
    let limit = 3 * check.interval.as_secs() + check.timeout.as_secs() + 30;
    let old: Vec<String> = rec
        .members
        .keys()
        .filter(|n| {
            views
                .get(n)
                .and_then(|v| v.health.as_ref())
                .is_some_and(|h| now.saturating_sub(h.checked) > limit)
        })
        .map(|n| member_name(pool, *n).to_string())
        .collect();
    if old.is_empty() {
        return None;
    }
    let who = match (&check.command.is_empty(), &rec.gateway) {
        (true, Some(g)) => format!(
            "the agent of node {} (its Sector's gateway runs there)",
            g.node
        ),
        _ => "the agents of their nodes".into(),
    };
    Some(format!(
        "the last health checks of {} are older than {limit}s: {who} does not check them; their last results stand",
        old.join(", ")
    ))
}

#[cfg(test)]
mod tests;
