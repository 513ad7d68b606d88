//! `orbitlab init`: declare the cluster (its Backplane) once, after checking
//! that the Backplane can be built here, then reconcile. A refused init
//! writes nothing; a second init changes nothing.

use ipnet::Ipv4Net;
use orbitlab_manifests::{Kind, Manifest, Name, Sourced, Spec};

use super::{ReconcileError, Reconciler, Report, observe, plan};
use crate::api::{Api, ApiError, PropertyValue};

/// Why `orbitlab init` refused.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("cannot initialise: {0}; nothing was changed")]
    Refused(String),
}

/// The cluster manifest `init` would write: the stored one, or a new one
/// named after the Proxmox cluster with the Backplane CIDR asked for.
pub fn cluster_manifest(
    rec: &Reconciler<'_>,
    backplane_cidr: Option<Ipv4Net>,
) -> Result<Manifest, InitError> {
    if let Some(existing) = rec
        .store
        .read_manifests(Kind::Cluster)
        .map_err(ReconcileError::from)?
        .into_iter()
        .next()
    {
        if let (Some(cidr), Spec::Cluster(spec)) = (backplane_cidr, &existing.value.spec)
            && spec.backplane.cidr != cidr
        {
            return Err(InitError::Refused(format!(
                "the Backplane CIDR is {} since init and can never change (asked for {cidr})",
                spec.backplane.cidr
            )));
        }
        return Ok(existing.value);
    }
    let name = rec
        .pve
        .cluster_status()
        .map_err(ReconcileError::from)?
        .into_iter()
        .find(|e| e.kind == "cluster")
        .and_then(|e| e.name.to_lowercase().parse::<Name>().ok())
        .unwrap_or_else(|| "cluster".parse().expect("constant name is valid"));
    let mut properties = PropertyValue::map();
    if let Some(cidr) = backplane_cidr {
        properties
            .insert("backplane.cidr", PropertyValue::Scalar(cidr.to_string()))
            .map_err(|e| InitError::Refused(e.to_string()))?;
    }
    let spec = Spec::deserialize_for(Kind::Cluster, properties)
        .map_err(|e| InitError::Refused(e.to_string()))?;
    Ok(Manifest::new(name, spec))
}

/// Checks, declares and reconciles the cluster.
pub fn init(
    rec: &Reconciler<'_>,
    backplane_cidr: Option<Ipv4Net>,
) -> Result<(Manifest, Report), InitError> {
    let manifest = check(rec, backplane_cidr)?;
    let report = declare(rec, &manifest)?;
    Ok((manifest, report))
}

/// The cluster manifest init would write, once it is known that the
/// Backplane can be built; writes nothing.
pub fn check(rec: &Reconciler<'_>, backplane_cidr: Option<Ipv4Net>) -> Result<Manifest, InitError> {
    let manifest = cluster_manifest(rec, backplane_cidr)?;
    let mut desired = rec.desired()?;
    if let Spec::Cluster(spec) = &manifest.spec {
        desired.cluster = Some((manifest.name().clone(), spec.clone()));
    }
    let bridge = desired.cluster.as_ref().map_or_else(
        || "vmbr0".to_owned(),
        |(_, c)| c.defaults.bridge.to_string(),
    );
    let observed = observe(rec.pve, rec.store, &bridge)?;
    let planned = plan(&desired, &observed);
    if let Some(reason) = planned
        .blocked
        .get(&super::ObjectRef::new(Kind::Cluster, manifest.name()))
    {
        return Err(InitError::Refused(reason.clone()));
    }
    Ok(manifest)
}

/// Writes the cluster manifest (unchanged when it is already stored) and
/// reconciles.
pub fn declare(rec: &Reconciler<'_>, manifest: &Manifest) -> Result<Report, InitError> {
    Api::new(rec.store.clone()).apply(vec![Sourced::new("orbitlab init", manifest.clone())])?;
    Ok(rec.run()?)
}
