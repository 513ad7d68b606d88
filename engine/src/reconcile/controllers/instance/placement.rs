//! Where a new instance goes: its pinned `node`, or the node its placement
//! policy (the manifest's, else the cluster's) picks among the online,
//! schedulable nodes whose Node manifest's labels match its
//! `node_selector`, below their `max_instances` with enough free memory
//! (`GET /nodes/{node}/status`, less what this plan already placed).
//! Placement happens once: an instance stays where it was made, and a
//! cordoned node keeps what it has.

use orbitlab_manifests::{Kind, LxcSpec, NodeName, PlacementPolicy};

use crate::reconcile::ObjectRef;
use crate::reconcile::plan::Planner;

/// One candidate node as placement sees it.
#[derive(Debug, Clone)]
struct Candidate {
    node: NodeName,
    instances: u32,
    free_mib: u64,
    /// For a Pool's member: the pool's other members in the node's group
    /// (its value of the label the pool spreads over; the node itself
    /// when it spreads over nodes) and on the node. Fewer wins first.
    spread: (u32, u32),
}

impl Planner<'_> {
    /// The node for a new instance; `Ok(None)` when it must wait (its
    /// pinned node is offline); `Err` when no node can ever take it as
    /// declared.
    pub(super) fn place(
        &mut self,
        object: &ObjectRef,
        spec: &LxcSpec,
    ) -> Result<Option<NodeName>, String> {
        let instances_on = |node: &NodeName| -> u32 {
            let existing = self
                .observed
                .containers
                .values()
                .filter(|c| &c.node == node)
                .filter(|c| c.marker.as_ref().is_some_and(|m| m.kind == Kind::Lxc))
                .count() as u32;
            existing + self.placed.get(node).map_or(0, |p| p.0)
        };
        let spread = super::super::pool::member_spread(self.desired, self.observed, &object.name);
        let spread_on = |node: &NodeName| -> (u32, u32) {
            let Some((label, members_on)) = &spread else {
                return (0, 0);
            };
            let here = members_on.get(node).copied().unwrap_or(0)
                + self
                    .placed_members
                    .get(&(object_pool(self.desired, &object.name), node.clone()))
                    .copied()
                    .unwrap_or(0);
            let group_of = |n: &NodeName| {
                label.as_ref().map(|key| {
                    self.desired
                        .node_labels(n.as_str())
                        .get(key)
                        .map(ToString::to_string)
                })
            };
            let group = match label {
                None => here,
                Some(_) => self
                    .observed
                    .nodes
                    .keys()
                    .filter(|n| group_of(n) == group_of(node))
                    .map(|n| {
                        members_on.get(n).copied().unwrap_or(0)
                            + self
                                .placed_members
                                .get(&(object_pool(self.desired, &object.name), n.clone()))
                                .copied()
                                .unwrap_or(0)
                    })
                    .sum(),
            };
            (group, here)
        };
        let candidate = |node: &NodeName| -> Option<Candidate> {
            let load = self.observed.loads.get(node)?;
            let planned = self.placed.get(node).map_or(0, |p| p.1);
            Some(Candidate {
                node: node.clone(),
                instances: instances_on(node),
                free_mib: load.free_mib.saturating_sub(planned),
                spread: spread_on(node),
            })
        };
        let want = u64::from(spec.memory);
        let template = spec.template.as_ref();
        // Whether `node`'s storage holds the template (unknown: assumed).
        let has_template = |node: &NodeName| -> bool {
            let Some((storage, _)) = template.split_once(':') else {
                return true;
            };
            self.observed
                .templates
                .get(&(node.clone(), storage.to_owned()))
                .is_none_or(|volids| volids.contains(template))
        };
        let chosen = if let Some(pin) = &spec.node {
            let Some(node) = self.observed.nodes.get(pin) else {
                return Err(format!(
                    "spec.node: {pin} is not a node of this cluster (nodes: {})",
                    self.observed
                        .nodes
                        .keys()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if !node.online {
                self.wait(
                    object.clone(),
                    format!("spec.node: node {pin} is offline; the instance is made there once it is back"),
                );
                return Ok(None);
            }
            let settings = self.desired.node(pin.as_str());
            if !settings.schedulable {
                return Err(format!(
                    "spec.node: node {pin} is cordoned (schedulable: false); pin the instance to another node"
                ));
            }
            if !has_template(pin) {
                return Err(format!(
                    "spec.template: {template} is not on node {pin}; download or upload it there (node → storage → CT Templates), or pin another node"
                ));
            }
            let c =
                candidate(pin).ok_or_else(|| {
                format!("node {pin} did not answer GET /nodes/{pin}/status; asked again on the next pass")
            })?;
            if let Some(max) = settings.max_instances
                && c.instances >= max
            {
                return Err(format!(
                    "spec.node: node {pin} already runs {} instances, its max_instances is {max}",
                    c.instances
                ));
            }
            if c.free_mib < want {
                return Err(format!(
                    "spec.memory: node {pin} has {} MiB free, the instance needs {want} MiB",
                    c.free_mib
                ));
            }
            c
        } else {
            let schedulable: Vec<Candidate> = self
                .observed
                .nodes
                .iter()
                .filter(|(_, n)| n.online)
                .filter(|(name, _)| self.desired.node(name.as_str()).schedulable)
                .filter_map(|(name, _)| candidate(name))
                .collect();
            if schedulable.is_empty() {
                return Err(
                    "no online node is schedulable; mark a node schedulable: true or bring one online"
                        .into(),
                );
            }
            let schedulable: Vec<Candidate> = match &spec.node_selector {
                None => schedulable,
                Some(selector) => {
                    let matching: Vec<Candidate> = schedulable
                        .into_iter()
                        .filter(|c| selector.matches(&self.desired.node_labels(c.node.as_str())))
                        .collect();
                    if matching.is_empty() {
                        return Err(format!(
                            "spec.node_selector: no online, schedulable node has labels matching {selector}; label the nodes' Node manifests (metadata.labels) or change the selector"
                        ));
                    }
                    matching
                }
            };
            let largest = schedulable
                .iter()
                .filter_map(|c| self.observed.loads.get(&c.node))
                .map(|l| l.total_mib)
                .max()
                .unwrap_or(0);
            if want > largest {
                return Err(format!(
                    "spec.memory: {want} MiB is more than any schedulable node has (the largest has {largest} MiB)"
                ));
            }
            let schedulable: Vec<Candidate> = schedulable
                .into_iter()
                .filter(|c| has_template(&c.node))
                .collect();
            if schedulable.is_empty() {
                return Err(format!(
                    "spec.template: {template} is on no schedulable online node; download or upload it (node → storage → CT Templates)"
                ));
            }
            let fits: Vec<Candidate> = schedulable
                .into_iter()
                .filter(|c| {
                    self.desired
                        .node(c.node.as_str())
                        .max_instances
                        .is_none_or(|max| c.instances < max)
                })
                .filter(|c| c.free_mib >= want)
                .collect();
            let policy = spec.placement.unwrap_or_else(|| {
                self.desired
                    .cluster
                    .as_ref()
                    .map(|(_, c)| c.defaults.placement)
                    .unwrap_or_default()
            });
            pick(fits, policy).ok_or_else(|| {
                format!(
                    "no schedulable node has {want} MiB free below its max_instances now; free memory, raise max_instances or add a node"
                )
            })?
        };
        let entry = self.placed.entry(chosen.node.clone()).or_default();
        entry.0 += 1;
        entry.1 += want;
        if spread.is_some() {
            *self
                .placed_members
                .entry((object_pool(self.desired, &object.name), chosen.node.clone()))
                .or_default() += 1;
        }
        Ok(Some(chosen.node))
    }
}

/// The Pool `member` belongs to (its own name for an instance).
fn object_pool(
    desired: &crate::reconcile::plan::Desired,
    member: &orbitlab_manifests::Name,
) -> orbitlab_manifests::Name {
    desired
        .members
        .get(member)
        .map_or_else(|| member.clone(), |m| m.pool.clone())
}

/// The candidate `policy` prefers, after a Pool member's spread; ties go
/// to the node name, so every agent picks the same.
fn pick(candidates: Vec<Candidate>, policy: PlacementPolicy) -> Option<Candidate> {
    candidates.into_iter().min_by(|a, b| {
        let spread = a.spread.cmp(&b.spread);
        let preferred = match policy {
            PlacementPolicy::Spread => a
                .instances
                .cmp(&b.instances)
                .then(b.free_mib.cmp(&a.free_mib)),
            PlacementPolicy::LeastLoaded => b
                .free_mib
                .cmp(&a.free_mib)
                .then(a.instances.cmp(&b.instances)),
            PlacementPolicy::Pack => b.instances.cmp(&a.instances),
        };
        spread.then(preferred).then_with(|| a.node.cmp(&b.node))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(node: &str, instances: u32, free_mib: u64) -> Candidate {
        Candidate {
            node: node.parse().unwrap(),
            instances,
            free_mib,
            spread: (0, 0),
        }
    }

    #[test]
    fn each_policy_prefers_its_node() {
        let all = || vec![c("pve1", 3, 1000), c("pve2", 1, 500), c("pve3", 2, 4000)];
        let name = |p| pick(all(), p).unwrap().node.to_string();
        assert_eq!(name(PlacementPolicy::Spread), "pve2");
        assert_eq!(name(PlacementPolicy::LeastLoaded), "pve3");
        assert_eq!(name(PlacementPolicy::Pack), "pve1");
        // Ties go to the name.
        let tied = vec![c("pve2", 1, 100), c("pve1", 1, 100)];
        assert_eq!(
            pick(tied, PlacementPolicy::Spread)
                .unwrap()
                .node
                .to_string(),
            "pve1"
        );
        assert!(pick(Vec::new(), PlacementPolicy::Spread).is_none());
    }
}
