//! What an instance receives in its running container: the secrets it
//! declares (`spec.secrets`, each granted by its Secret), the certificates
//! it declares (`spec.certificates`: certificate, chain, key) and its SSH
//! keys (`spec.ssh_keys`, current and previous halves in root's
//! `authorized_keys`).
//!
//! One [`DeliveryPlan`] per instance, identified by a digest of the files,
//! owners, modes and the versions, serials and fingerprints they hold;
//! planned when the digest differs from the last delivery's record, when
//! the container started again since (its tmpfs is empty), or when it now
//! runs on another node. Files delivered earlier and no longer declared
//! are removed by the same step (a secret whose declaration or grant is
//! gone does not stay in the container). A certificate's `reload` runs
//! only when its files change. Nothing is delivered into a stopped
//! container.

use std::collections::BTreeMap;

use orbitlab_manifests::{
    AUTHORIZED_KEYS, FileMode, FileOwner, FilePath, Kind, LxcSpec, Name, PowerState,
};
use sha2::{Digest, Sha256};

use crate::pve::Vmid;
use crate::reconcile::ObjectRef;
use crate::reconcile::action::Action;
use crate::reconcile::identities::{PkiNames, pki_names, restarted_since};
use crate::reconcile::identity_steps::{DeliveryFile, DeliveryPlan, FileSource};
use crate::reconcile::ids::Marker;
use crate::reconcile::observed::ContainerObs;
use crate::reconcile::plan::Planner;

impl Planner<'_> {
    /// The delivery `name` needs into container `vmid`, if any; `Err`
    /// blocks the instance (a declared secret without a value), a
    /// certificate or key not made yet makes it wait.
    pub(super) fn delivery(
        &mut self,
        name: &Name,
        spec: &LxcSpec,
        vmid: Vmid,
        container: &ContainerObs,
    ) -> Result<Option<Action>, String> {
        if !container.running || spec.state != PowerState::Running {
            return Ok(None);
        }
        let object = ObjectRef::new(Kind::Lxc, name);
        let ids = &self.observed.identities;
        let recorded = ids.delivered.get(&vmid);
        // A restart is judged only for this node's own containers: their
        // start time and the delivery's record come from one clock.
        let restarted = recorded.is_none_or(|r| {
            !r.by(&container.node)
                || (ids.local.as_ref() == Some(&container.node)
                    && restarted_since(r.booted, container.booted))
        });
        let mut files = Vec::new();
        let mut holds = BTreeMap::new();
        let mut reloads = Vec::new();
        let owner = |o: &Option<FileOwner>| o.clone().unwrap_or_else(FileOwner::root);
        for (i, f) in spec.secrets.iter().enumerate() {
            if !self
                .desired
                .grants
                .get(&f.secret)
                .is_some_and(|g| g.contains(name))
            {
                return Err(format!(
                    "spec.secrets[{i}]: Secret {} does not grant Lxc {name} read access",
                    f.secret
                ));
            }
            if let Some(why) = ids.unreadable.get(&ObjectRef::new(Kind::Secret, &f.secret)) {
                return Err(format!(
                    "spec.secrets[{i}]: Secret {} cannot be read: {why}",
                    f.secret
                ));
            }
            let secret = ids
                .secrets
                .get(&f.secret)
                .ok_or_else(|| format!("spec.secrets[{i}]: Secret {} is not declared", f.secret))?;
            let Some(version) = secret.version else {
                return Err(format!(
                    "spec.secrets[{i}]: Secret {} has no value in the vault; set one with `orbitlab secret set {}`",
                    f.secret, secret.path
                ));
            };
            holds.insert(format!("secret/{}", f.secret), format!("v{version}"));
            files.push(DeliveryFile {
                path: f.path.clone(),
                mode: f.mode.unwrap_or(FileMode::OWNER_READ),
                owner: owner(&f.owner),
                tmpfs: !f.on_disk,
                source: FileSource::Secret {
                    name: f.secret.clone(),
                    path: secret.path.clone(),
                    version,
                },
            });
        }
        for (i, c) in spec.certificates.iter().enumerate() {
            let cert_spec = self
                .desired
                .certificates
                .get(&c.certificate)
                .ok_or_else(|| {
                    format!(
                        "spec.certificates[{i}]: Certificate {} is not declared",
                        c.certificate
                    )
                })?;
            let PkiNames::Leaf(ca, cert) = pki_names(&c.certificate, cert_spec)? else {
                return Err(format!(
                    "spec.certificates[{i}]: Certificate {} is a CA; its key is never delivered",
                    c.certificate
                ));
            };
            let Some(obs) = ids.certificates.get(&c.certificate) else {
                self.wait(
                    object,
                    format!("waiting for Certificate {} to be issued", c.certificate),
                );
                return Ok(None);
            };
            let item = format!("certificate/{}", c.certificate);
            let changed =
                restarted || recorded.is_none_or(|r| r.holds.get(&item) != Some(&obs.serial));
            holds.insert(item, obs.serial.clone());
            let serial = obs.serial.clone();
            let public = |path: &FilePath, source| DeliveryFile {
                path: path.clone(),
                mode: FileMode::ALL_READ,
                owner: owner(&c.owner),
                tmpfs: false,
                source,
            };
            files.push(public(
                &c.cert,
                FileSource::Certificate {
                    ca: ca.clone(),
                    name: cert.clone(),
                    serial: serial.clone(),
                },
            ));
            if let Some(chain) = &c.chain {
                files.push(public(
                    chain,
                    FileSource::Chain {
                        ca: ca.clone(),
                        name: cert.clone(),
                        serial: serial.clone(),
                    },
                ));
            }
            files.push(DeliveryFile {
                path: c.key.clone(),
                mode: c.mode.unwrap_or(FileMode::OWNER_READ),
                owner: owner(&c.owner),
                tmpfs: !c.on_disk,
                source: FileSource::CertificateKey {
                    ca,
                    name: cert,
                    serial,
                },
            });
            if !c.reload.is_empty() && changed {
                reloads.push(c.reload.clone());
            }
        }
        if !spec.ssh_keys.is_empty() {
            for key in &spec.ssh_keys {
                let Some(obs) = ids.ssh_keys.get(key) else {
                    self.wait(object, format!("waiting for SSH key {key} to be generated"));
                    return Ok(None);
                };
                let mut prints = obs.fingerprint.clone();
                if let Some(previous) = &obs.previous {
                    prints.push(',');
                    prints.push_str(previous);
                }
                holds.insert(format!("ssh_key/{key}"), prints);
            }
            files.push(DeliveryFile {
                path: AUTHORIZED_KEYS.parse().expect("a valid path"),
                mode: FileMode::OWNER_RW,
                owner: FileOwner::root(),
                tmpfs: false,
                source: FileSource::AuthorizedKeys {
                    keys: spec.ssh_keys.clone(),
                },
            });
        }
        // Only what a delivery could have placed: a valid path.
        let remove: Vec<FilePath> = recorded
            .map(|r| {
                r.paths
                    .iter()
                    .filter_map(|p| p.parse::<FilePath>().ok())
                    .filter(|p| !files.iter().any(|f: &DeliveryFile| &f.path == p))
                    .collect()
            })
            .unwrap_or_default();
        if files.is_empty() && remove.is_empty() {
            return Ok(None);
        }
        let digest = digest(&files, &holds);
        if !restarted && remove.is_empty() && recorded.is_some_and(|r| r.digest == digest) {
            return Ok(None);
        }
        Ok(Some(Action::Deliver(Box::new(DeliveryPlan {
            marker: Marker::object(Kind::Lxc, name),
            vmid,
            node: container.node.clone(),
            files,
            remove,
            reloads,
            holds,
            digest,
            booted: container.booted,
        }))))
    }
}

/// A digest of everything a delivery places: paths, modes, owners, where
/// they may live, and what they hold.
fn digest(files: &[DeliveryFile], holds: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(format!(
            "{}\0{:o}\0{}\0{}\0{}\n",
            f.path,
            f.mode.bits(),
            f.owner.as_str(),
            f.tmpfs,
            f.source
        ));
    }
    for (k, v) in holds {
        h.update(format!("{k}={v}\n"));
    }
    hex::encode(h.finalize())
}
