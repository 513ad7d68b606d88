//! Making Proxmox match the manifests.
//!
//! A pass is: load and validate every manifest ([`Desired`]), take one
//! snapshot of Proxmox and OrbitLab's records ([`observe`]), let each
//! kind's controller ([`controllers`]) plan its objects' steps from it
//! ([`plan`], pure), run them ([`execute`]), and write each object's
//! status (`Ready`, `Progressing`, `Failed` with reason and since;
//! `statuses`). The
//! whole run of a cluster-scoped reconciler holds the cluster lock
//! `orbitlab-reconcile`, so two reconcilers never interleave;
//! [`Reconciler::run`] repeats passes until nothing is left to do or no
//! progress is made. Proxmox and the store are observed once per pass
//! (after its steps, when it took any): that snapshot serves both the
//! statuses of this pass and the plan of the next, and every planner reads
//! the same one.

pub mod action;
pub mod controllers;
mod execute;
mod execute_identity;
pub mod identities;
pub mod identity_steps;
pub mod ids;
pub mod init;
mod object;
mod observe;
pub mod observed;
pub mod plan;
mod pushed;
mod statuses;
pub mod tags;
pub mod upgrades;
pub mod uplinks;

use std::collections::BTreeMap;
use std::time::Duration;

use orbitlab_manifests::{ManifestErrors, ManifestSet};

pub use action::Action;
pub use execute::{Context, Outcome, execute};
pub use object::ObjectRef;
pub use observe::{local_appliances, observe};
pub use observed::Observed;
pub use plan::{Desired, Plan, plan};

use crate::host::{ContainerHost, HostError};
use crate::ipam::IpamError;
use crate::pve::{Pve, PveError};
use crate::store::{Lock, ObjectError, Store, StoreError};

/// Why a pass could not run (a failing step is reported per object
/// instead).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Pve(#[from] PveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("the stored manifests are invalid; nothing was changed:\n{0}")]
    Manifests(#[from] ManifestErrors),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Tag(#[from] tags::TagError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// An appliance template's file on this node could not be read for
    /// its upload to another node.
    #[error("cannot read the template file {path} on this node: {source}")]
    TemplateFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The cluster lock of the run was lost mid-pass; no step started
    /// after that, and no status was written.
    #[error(
        "the cluster lock {lock} was lost mid-pass (it expired or another node took it): stopped before the next change; the next pass starts over"
    )]
    LockLost { lock: String },
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    /// A delivery of a secret or certificate key its instance does not
    /// (or no longer) declare there, or that its Secret does not grant
    /// it: nothing delivered.
    #[error(
        "Lxc {instance} may not receive {kind} {object} at {path}: {why}; nothing was delivered"
    )]
    Undeclared {
        instance: String,
        kind: orbitlab_manifests::Kind,
        object: String,
        path: String,
        why: &'static str,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Settings of a reconciler.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long one Proxmox task may run.
    pub task_deadline: Duration,
    /// Most passes [`Reconciler::run`] makes.
    pub max_passes: usize,
    /// Which steps this node takes.
    pub scope: Scope,
}

/// Which steps a reconciler takes (see `DESIGN.md`, "Coordination").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every step: this node owns the cluster-scoped work (SDN, IPAM,
    /// VMIDs, container lifecycle) and writes statuses.
    Cluster,
    /// Only what must run on this node: configuring its own containers.
    Node,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            task_deadline: Duration::from_secs(300),
            max_passes: 8,
            scope: Scope::Cluster,
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub passes: usize,
    pub steps: usize,
    pub ready: Vec<ObjectRef>,
    pub progressing: BTreeMap<ObjectRef, String>,
    pub failed: BTreeMap<ObjectRef, String>,
}

/// The engine's reconciler over one store, one Proxmox and one node's
/// container host.
#[derive(Debug)]
pub struct Reconciler<'a> {
    pub pve: &'a dyn Pve,
    pub store: &'a Store,
    pub host: &'a dyn ContainerHost,
    pub options: Options,
}

impl Reconciler<'_> {
    /// The desired state from the stored manifests, validated as a whole.
    pub fn desired(&self) -> Result<Desired, ReconcileError> {
        let set = ManifestSet::new(self.store.read_all_manifests()?)?;
        let records = crate::pool::read_records(self.store)?;
        Ok(Desired::from_set(&set).with_pool_members(&records))
    }

    /// The plan of the next pass (reads only), restricted to this
    /// reconciler's [`Scope`].
    pub fn plan(&self) -> Result<(Plan, Observed), ReconcileError> {
        self.plan_from(None)
    }

    /// [`Reconciler::plan`] after a pass of `done` (the plan it ran),
    /// reusing from `earlier` (the observation made before it, in the same
    /// run, under the same lock) what cannot have changed since (see
    /// [`observe::observe_since`]).
    fn plan_after(
        &self,
        earlier: &Observed,
        done: &Plan,
    ) -> Result<(Plan, Observed), ReconcileError> {
        // A pass whose steps change nothing in Proxmox (pushing
        // configurations, IPAM, tags, statuses — all a node-scoped pass
        // ever does) leaves Proxmox as observed: only OrbitLab's records
        // are read again.
        if !done.actions.iter().any(Action::changes_proxmox) {
            let observed = observe::refresh_records(self.store, earlier.clone())?;
            return self.plan_with(&self.desired()?, observed, Some(earlier));
        }
        self.plan_from(Some(earlier))
    }

    /// [`Reconciler::plan`], reusing from `earlier` what cannot have
    /// changed since (see [`observe::observe_since`]).
    fn plan_from(&self, earlier: Option<&Observed>) -> Result<(Plan, Observed), ReconcileError> {
        let desired = self.desired()?;
        let observed = observe::observe_since(
            self.pve,
            self.store,
            &|node| uplink_bridge(&desired, node),
            earlier,
        )?;
        self.plan_with(&desired, observed, earlier)
    }

    /// The plan from `observed`, restricted to this reconciler's scope
    /// (`earlier`: the run's previous observation, for what
    /// [`observe::appliance_inputs`] may reuse).
    fn plan_with(
        &self,
        desired: &Desired,
        mut observed: Observed,
        earlier: Option<&Observed>,
    ) -> Result<(Plan, Observed), ReconcileError> {
        let cluster = self.options.scope == Scope::Cluster;
        if cluster {
            observe::instance_inputs(self.pve, self.store, desired, &mut observed)?;
        }
        observe::appliance_inputs(
            self.pve,
            desired,
            &mut observed,
            earlier.map(|e| &e.appliance),
            cluster,
        );
        let local = (!cluster).then(|| self.host.local_node());
        observe::dns_inputs(self.pve, desired, &mut observed, earlier, local);
        observed.identities = identities::read(
            self.store,
            desired,
            crate::vault::Timestamp::now(),
            self.host.local_node().parse().ok(),
        )?;
        let mut plan = plan(desired, &observed);
        if self.options.scope == Scope::Node {
            let local = self.host.local_node();
            plan.actions
                .retain(|a| a.runs_on().is_some_and(|node| node.as_str() == local));
            // What blocks or holds up an object is the cluster-scoped
            // reconciler's to report (it alone writes statuses, and it
            // alone reads what instances need for placement); a node-scoped
            // run fails only on its own steps.
            plan.blocked.clear();
            plan.waiting.clear();
            plan.unavailable.clear();
        }
        Ok((plan, observed))
    }

    /// Runs passes until nothing is left to do, nothing progresses, or
    /// `max_passes` is reached; writes statuses after every pass.
    pub fn run(&self) -> Result<Report, ReconcileError> {
        let mut report = Report::default();
        if self.options.scope == Scope::Node
            && !observe::node_has_guests(self.pve, self.host.local_node())?
            && self.desired()?.appliances.is_empty()
        {
            // Only this node's OrbitLab containers are configured here, and
            // the appliance templates it holds uploaded to other nodes.
            return Ok(report);
        }
        // Node-scoped work touches only this node's containers. The lock
        // (renewed while held) covers the whole run, so the observation
        // made after one pass is still the truth at the start of the next.
        let guard = match self.options.scope {
            Scope::Cluster => Some(self.store.lock(Lock::Reconcile.name())?),
            Scope::Node => None,
        };
        let mut next: Option<(Plan, Observed)> = None;
        for _ in 0..self.options.max_passes {
            report.passes += 1;
            let (plan, observed) = match next.take() {
                Some(planned) => planned,
                None => self.plan()?,
            };
            let context = Context {
                pve: self.pve,
                store: self.store,
                host: self.host,
                task_deadline: self.options.task_deadline,
                lock: guard.as_ref(),
            };
            let outcome = execute(&plan, &context, observed.own_pending());
            let lost = |guard: &Option<crate::store::LockGuard>| {
                guard
                    .as_ref()
                    .filter(|g| !g.is_held())
                    .map(|g| ReconcileError::LockLost {
                        lock: g.path().display().to_string(),
                    })
            };
            if outcome.lock_lost
                && let Some(error) = lost(&guard)
            {
                return Err(error);
            }
            let after = if outcome.done > 0 {
                self.plan_after(&observed, &plan)?
            } else {
                (plan.clone(), observed)
            };
            if let Some(error) = lost(&guard) {
                return Err(error);
            }
            if self.options.scope == Scope::Cluster {
                statuses::write(
                    self.store,
                    self.host.local_node(),
                    &statuses::Pass {
                        before: &plan,
                        after: &after.0,
                        observed: &after.1,
                        outcome: &outcome,
                    },
                )?;
            }
            report.steps += outcome.done;
            report.failed = outcome.failed.clone();
            report
                .failed
                .extend(after.0.blocked.iter().map(|(k, v)| (k.clone(), v.clone())));
            report.ready = after.0.ready().into_iter().collect();
            report.progressing = outcome.deferred.clone();
            report
                .progressing
                .extend(after.0.waiting.iter().map(|(k, v)| (k.clone(), v.clone())));
            let waiting_only = after.0.actions.iter().all(|a| {
                a.object().is_some_and(|o| {
                    outcome.deferred.contains_key(&o) || outcome.failed.contains_key(&o)
                })
            });
            if after.0.is_empty() || outcome.done == 0 || waiting_only {
                for action in &after.0.actions {
                    if let Some(o) = action.object()
                        && !report.failed.contains_key(&o)
                    {
                        report
                            .progressing
                            .entry(o)
                            .or_insert_with(|| format!("next: {action}"));
                    }
                }
                break;
            }
            next = Some(after);
        }
        Ok(report)
    }
}

/// The bridge of `node` whose address and MTU define the Backplane's
/// peers: its Node manifest's `uplink_bridge`, else the cluster's default.
fn uplink_bridge(desired: &Desired, node: &str) -> String {
    match desired.node(node).uplink_bridge {
        Some(bridge) => bridge.to_string(),
        None => desired.cluster.as_ref().map_or_else(
            || "vmbr0".to_owned(),
            |(_, c)| c.defaults.bridge.to_string(),
        ),
    }
}

/// Node-scoped helper for callers: the `ContainerHost` of this node.
pub fn local_host() -> crate::host::Pct {
    crate::host::Pct::new(crate::store::node_name())
}

/// Runs `f` with a reconciler acting as this node, the way the command's
/// `init`, `reconcile --once` and `plan` do: a Proxmox client from the
/// stored `connection`, this node's `pct`, default options. Side effects:
/// whatever `f` does; making the client sends nothing.
pub fn with_local_reconciler<T, E>(
    store: &Store,
    connection: &crate::pve::StoredConnection,
    f: impl FnOnce(&Reconciler<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<PveError> + From<crate::pve::ConnectionError>,
{
    let pve = crate::pve::PveClient::new(connection.client_config(store)?)?;
    let host = local_host();
    f(&Reconciler {
        pve: &pve,
        store,
        host: &host,
        options: Options::default(),
    })
}
