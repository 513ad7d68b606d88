//! What the manifests ask for, in the shape the planner needs.

use std::collections::{BTreeMap, BTreeSet};

use orbitlab_manifests::{
    ApplianceRole, CertificateSpec, ClusterSpec, Kind, LabelKey, LabelValue, LxcSpec, ManifestSet,
    Name, NodeSpec, PoolSpec, SecretSpec, SectorSpec, Spec, SshKeySpec, Version,
};

/// What the containers playing one appliance role are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceChoice {
    /// Template volume (`storage:vztmpl/...`).
    pub template: String,
    /// Memory per container, MiB.
    pub memory_mib: u32,
    /// The Appliance manifest it comes from; `None` for the fallback.
    pub manifest: Option<ApplianceManifest>,
}

impl ApplianceChoice {
    /// The appliance version its containers are made at: the manifest's,
    /// else [`APPLIANCE_VERSION`]. A Sector container recording another
    /// version is replaced (see `controllers/sector/upgrade.rs`).
    pub fn version(&self) -> &str {
        self.manifest
            .as_ref()
            .map_or(APPLIANCE_VERSION, |m| m.version.as_str())
    }
}

/// The Appliance manifest that chose an [`ApplianceChoice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceManifest {
    /// Its name.
    pub name: Name,
    /// The appliance version built into the template.
    pub version: Version,
}

/// The desired state of everything the reconciler manages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// The cluster manifest (`orbitlab init` writes it); `None` before init.
    pub cluster: Option<(Name, ClusterSpec)>,
    /// Declared Sectors.
    pub sectors: BTreeMap<Name, SectorSpec>,
    /// Appliance manifests, by role (at most one per role: the set's
    /// validation refuses more).
    pub appliances: BTreeMap<ApplianceRole, ApplianceChoice>,
    /// Declared container instances.
    pub instances: BTreeMap<Name, LxcSpec>,
    /// Node manifests, by the node's name in lower case (as they are
    /// named): whether a node takes new instances, and how many.
    pub nodes: BTreeMap<String, NodeSpec>,
    /// The labels of each Node manifest, by the node's name in lower case
    /// (what instances' `node_selector` matches).
    pub node_labels: BTreeMap<String, BTreeMap<LabelKey, LabelValue>>,
    /// Declared SSH keys.
    pub ssh_keys: BTreeMap<Name, SshKeySpec>,
    /// Declared certificates and CAs.
    pub certificates: BTreeMap<Name, CertificateSpec>,
    /// Declared Secrets.
    pub secrets: BTreeMap<Name, SecretSpec>,
    /// For each Secret, the instances its readers grant (resolved from
    /// names and label selectors).
    pub grants: BTreeMap<Name, BTreeSet<Name>>,
    /// Declared Pools.
    pub pools: BTreeMap<Name, PoolSpec>,
    /// The labels of each instance: its manifest's, or for a Pool's member
    /// its Pool's (what ingress selectors match).
    pub labels: BTreeMap<Name, BTreeMap<LabelKey, LabelValue>>,
    /// The labels of each Pool.
    pub pool_labels: BTreeMap<Name, BTreeMap<LabelKey, LabelValue>>,
    /// The instances that are Pools' members (also in `instances`, with
    /// the spec of the revision each was made from): see
    /// [`Desired::with_pool_members`].
    pub members: BTreeMap<Name, MemberOf>,
}

/// Which Pool an instance belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberOf {
    /// The Pool.
    pub pool: Name,
    /// Its number (`<pool>-<n>`).
    pub number: u32,
    /// The revision of the Pool's template it is made from.
    pub revision: String,
}

/// Memory of an appliance container when no Appliance manifest sets it.
pub const DEFAULT_APPLIANCE_MEMORY_MIB: u32 = 128;

/// The version of the appliance templates this release builds
/// (`appliances/VERSION`; a test keeps the two equal).
pub const APPLIANCE_VERSION: &str = "1.1.0";

/// The template file of `role`'s appliance at [`APPLIANCE_VERSION`], as
/// `orbitlab appliance build` names it: used when no Appliance manifest
/// names one. Only OrbitLab's own templates carry the helper that loads a
/// configuration bundle.
pub fn default_appliance_template(role: ApplianceRole) -> String {
    format!(
        "vztmpl/orbitlab-{}_{APPLIANCE_VERSION}_amd64.tar.zst",
        role.as_str()
    )
}

impl Desired {
    /// Gathers the desired state from a validated set.
    pub fn from_set(set: &ManifestSet) -> Self {
        let cluster = set
            .of_kind(Kind::Cluster)
            .next()
            .and_then(|m| match &m.spec {
                Spec::Cluster(spec) => Some((m.name().clone(), spec.clone())),
                _ => None,
            });
        let sectors = set
            .of_kind(Kind::Sector)
            .filter_map(|m| match &m.spec {
                Spec::Sector(spec) => Some((m.name().clone(), spec.clone())),
                _ => None,
            })
            .collect();
        let appliances = set
            .of_kind(Kind::Appliance)
            .filter_map(|m| match &m.spec {
                Spec::Appliance(a) => Some((
                    a.role,
                    ApplianceChoice {
                        template: a.template.to_string(),
                        memory_mib: a.memory,
                        manifest: Some(ApplianceManifest {
                            name: m.name().clone(),
                            version: a.version.clone(),
                        }),
                    },
                )),
                _ => None,
            })
            .collect();
        let instances = set
            .of_kind(Kind::Lxc)
            .filter_map(|m| match &m.spec {
                Spec::Lxc(spec) => Some((m.name().clone(), spec.clone())),
                _ => None,
            })
            .collect();
        let node_labels = set
            .of_kind(Kind::Node)
            .map(|m| (m.name().to_string(), m.metadata.labels.clone()))
            .collect();
        let nodes = set
            .of_kind(Kind::Node)
            .filter_map(|m| match &m.spec {
                Spec::Node(spec) => Some((m.name().to_string(), spec.clone())),
                _ => None,
            })
            .collect();
        let of = |kind: Kind| set.of_kind(kind).map(|m| (m.name().clone(), &m.spec));
        let ssh_keys = of(Kind::SshKey)
            .filter_map(|(n, s)| match s {
                Spec::SshKey(s) => Some((n, s.clone())),
                _ => None,
            })
            .collect();
        let certificates = of(Kind::Certificate)
            .filter_map(|(n, s)| match s {
                Spec::Certificate(s) => Some((n, s.clone())),
                _ => None,
            })
            .collect();
        let secrets: BTreeMap<Name, SecretSpec> = of(Kind::Secret)
            .filter_map(|(n, s)| match s {
                Spec::Secret(s) => Some((n, s.clone())),
                _ => None,
            })
            .collect();
        let grants = secrets
            .keys()
            .map(|s| {
                let who = set
                    .granted(s.as_str())
                    .into_iter()
                    .map(|(n, _)| n.clone())
                    .collect();
                (s.clone(), who)
            })
            .collect();
        let pools = of(Kind::Pool)
            .filter_map(|(n, s)| match s {
                Spec::Pool(s) => Some((n, s.clone())),
                _ => None,
            })
            .collect();
        let labels = set
            .of_kind(Kind::Lxc)
            .map(|m| (m.name().clone(), m.metadata.labels.clone()))
            .collect();
        let pool_labels = set
            .of_kind(Kind::Pool)
            .map(|m| (m.name().clone(), m.metadata.labels.clone()))
            .collect();
        Desired {
            pools,
            labels,
            pool_labels,
            members: BTreeMap::new(),
            cluster,
            sectors,
            appliances,
            instances,
            nodes,
            node_labels,
            ssh_keys,
            certificates,
            secrets,
            grants,
        }
    }

    /// Adds the members each declared Pool's record lists to `instances`:
    /// `<pool>-<n>` with the spec of the revision it was made from (so a
    /// member of an older revision stays as it was made until the rollout
    /// replaces it). Members of Pools no longer declared are left out (and
    /// so removed); a record's member whose revision is unknown takes the
    /// Pool's current template.
    pub fn with_pool_members(mut self, records: &BTreeMap<Name, crate::pool::PoolRecord>) -> Self {
        for (pool, spec) in &self.pools {
            let Some(record) = records.get(pool) else {
                continue;
            };
            for (n, member) in &record.members {
                let name = crate::pool::member_name(pool, *n);
                let instance = record
                    .revisions
                    .get(&member.revision)
                    .unwrap_or(&spec.instance)
                    .clone();
                self.instances.insert(name.clone(), instance);
                if let Some(labels) = self.pool_labels.get(pool) {
                    self.labels.insert(name.clone(), labels.clone());
                }
                self.members.insert(
                    name,
                    MemberOf {
                        pool: pool.clone(),
                        number: *n,
                        revision: member.revision.clone(),
                    },
                );
            }
        }
        self
    }

    /// What new containers playing `role` are made from: its Appliance
    /// manifest, else OrbitLab's template of this release
    /// ([`default_appliance_template`]) on the cluster's template storage
    /// with [`DEFAULT_APPLIANCE_MEMORY_MIB`].
    pub fn appliance(&self, role: ApplianceRole) -> ApplianceChoice {
        self.appliances.get(&role).cloned().unwrap_or_else(|| {
            let storage = self
                .cluster
                .as_ref()
                .map_or("local", |(_, c)| c.defaults.template_storage.as_str());
            ApplianceChoice {
                template: format!("{storage}:{}", default_appliance_template(role)),
                memory_mib: DEFAULT_APPLIANCE_MEMORY_MIB,
                manifest: None,
            }
        })
    }
}

impl Desired {
    /// The labels of `node`'s Node manifest (none without one).
    pub fn node_labels(&self, node: &str) -> BTreeMap<LabelKey, LabelValue> {
        self.node_labels
            .get(&node.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// The settings of `node` (defaults when no Node manifest names it).
    pub fn node(&self, node: &str) -> NodeSpec {
        self.nodes
            .get(&node.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }
}
