//! Running identity steps and deliveries.
//!
//! Identity steps go through the ssh and pki engines (their own cluster
//! locks; vault writes under the vault lock), each recorded in the audit
//! log before it runs. A delivery runs on the instance's node: it checks
//! the policy again against the manifests as stored at that moment (a
//! secret the instance does not declare, or that its Secret does not
//! grant it, is refused whatever the plan says), reads each value from
//! the vault only then (each secret read recorded in the audit log before
//! it leaves), installs the files through `pct` ([`ContainerHost::install`]),
//! runs the declared reload commands, and records what the container now
//! holds ([`identities::record`]).
//!
//! [`ContainerHost::install`]: crate::host::ContainerHost::install

use orbitlab_manifests::{Kind, ManifestSet, Spec};

use super::ReconcileError;
use super::execute::Context;
use super::identities::{self, Delivered};
use super::identity_steps::{DeliveryFile, DeliveryPlan, FileSource, IdentityStep, SshKeyMaking};
use crate::audit::{self, Action as Audit};
use crate::host::InstallFile;
use crate::pki::{CaOptions, DnsName, LeafProfile, LeafRequest, Lifetime, Pki};
use crate::ssh::{KeyName, KeySpec, SshAlgorithm, SshKeys};
use crate::vault::{SecretValue, Vault};

/// Runs one identity step.
pub(super) fn identity_step(ctx: &Context<'_>, step: &IdentityStep) -> Result<(), ReconcileError> {
    let vault = Vault::new(ctx.store.clone());
    let keys = SshKeys::new(vault.clone());
    let pki = Pki::new(vault.clone());
    let object = |kind: Kind, name: &str| format!("/{}/{name}", kind.dir_name());
    let lifetime = |secs: u64| Lifetime::seconds(secs).map_err(crate::pki::PkiError::from);
    let store = ctx.store;
    match step {
        IdentityStep::CreateSshKey(k) | IdentityStep::RotateSshKey(k) => {
            let name = key_name(k)?;
            let spec = key_spec(&vault, k)?;
            let rotate = matches!(step, IdentityStep::RotateSshKey(_));
            let action = if rotate {
                Audit::SshKeyRotate
            } else {
                Audit::SshKeyCreate
            };
            audit::reconciler_change(store, action, object(Kind::SshKey, k.name.as_str()), || {
                if rotate {
                    keys.rotate(&name, &spec)
                } else {
                    keys.generate(&name, &spec)
                }
            })?;
        }
        IdentityStep::DropPreviousSshKey { name } => {
            let key = name
                .as_str()
                .parse::<KeyName>()
                .map_err(|e| ReconcileError::Internal(e.to_string()))?;
            audit::reconciler_change(
                store,
                Audit::SshKeyDropPrevious,
                object(Kind::SshKey, name.as_str()),
                || keys.drop_previous(&key),
            )?;
        }
        IdentityStep::CreateCa(ca) => {
            let mut options = CaOptions::lifetime(lifetime(ca.lifetime_secs)?);
            options.common_name = ca.common_name.clone();
            options.path_len = ca.path_len;
            options.permitted_dns = ca
                .permitted_dns
                .iter()
                .map(|d| d.parse::<DnsName>())
                .collect::<Result<_, _>>()
                .map_err(crate::pki::PkiError::from)?;
            audit::reconciler_change(
                store,
                Audit::PkiCaCreate,
                object(Kind::Certificate, ca.ca.as_str()),
                || match &ca.parent {
                    Some(parent) => pki.create_intermediate(&ca.ca, parent, &options),
                    None => pki.create_root(&ca.ca, &options),
                },
            )?;
        }
        IdentityStep::RenewCa { ca, lifetime_secs } => {
            let lifetime = lifetime(*lifetime_secs)?;
            audit::reconciler_change(
                store,
                Audit::PkiRenew,
                object(Kind::Certificate, ca.as_str()),
                || pki.renew_ca_for(ca, lifetime),
            )?;
        }
        IdentityStep::IssueCertificate(leaf) => {
            let request = LeafRequest {
                profile: if leaf.client {
                    LeafProfile::Client
                } else {
                    LeafProfile::Server
                },
                dns: leaf
                    .dns
                    .iter()
                    .map(|d| d.parse::<DnsName>())
                    .collect::<Result<_, _>>()
                    .map_err(crate::pki::PkiError::from)?,
                ips: leaf.ips.clone(),
                lifetime: lifetime(leaf.lifetime_secs)?,
            };
            audit::reconciler_change(
                store,
                Audit::PkiCertIssue,
                object(Kind::Certificate, leaf.name.as_str()),
                || pki.issue(&leaf.ca, &leaf.name, &request),
            )?;
        }
        IdentityStep::RenewCertificate {
            ca,
            name,
            lifetime_secs,
        } => {
            let lifetime = lifetime(*lifetime_secs)?;
            audit::reconciler_change(
                store,
                Audit::PkiRenew,
                object(Kind::Certificate, name.as_str()),
                || pki.renew_cert_for(ca, name, lifetime),
            )?;
        }
        IdentityStep::GeneratePassword { path } => {
            // Only when still empty: a value set meanwhile is kept.
            if !vault.exists(path)? {
                let value = generated_password()?;
                audit::reconciler_change(
                    store,
                    Audit::SecretSet,
                    format!("/vault/values/{path}"),
                    || vault.set(path, &value),
                )?;
            }
        }
        IdentityStep::PublishCrl { ca } => {
            audit::reconciler_change(
                store,
                Audit::PkiCrlPublish,
                object(Kind::Certificate, ca.as_str()),
                || pki.refresh_crl(ca),
            )?;
        }
    }
    Ok(())
}

/// Length of a generated password (letters and digits: ~143 bits).
const PASSWORD_LEN: usize = 24;

/// A random password of [`PASSWORD_LEN`] letters and digits.
fn generated_password() -> Result<SecretValue, ReconcileError> {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    let bytes = (0..PASSWORD_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect();
    SecretValue::new(bytes).map_err(|e| ReconcileError::Internal(e.to_string()))
}

fn key_name(k: &SshKeyMaking) -> Result<KeyName, ReconcileError> {
    k.name
        .as_str()
        .parse::<KeyName>()
        .map_err(|e| ReconcileError::Internal(e.to_string()))
}

/// How the ssh engine makes the key: the manifest's algorithm and comment,
/// the passphrase read from its Secret now.
fn key_spec(vault: &Vault, k: &SshKeyMaking) -> Result<KeySpec, ReconcileError> {
    Ok(KeySpec {
        algorithm: match k.algorithm {
            orbitlab_manifests::SshKeyAlgorithm::Ed25519 => SshAlgorithm::Ed25519,
            orbitlab_manifests::SshKeyAlgorithm::Rsa4096 => SshAlgorithm::Rsa4096,
        },
        comment: k.comment.clone(),
        passphrase: match &k.passphrase {
            Some(path) => Some(vault.get(path)?.value),
            None => None,
        },
    })
}

/// Runs a delivery (see the module documentation).
pub(super) fn deliver(ctx: &Context<'_>, plan: &DeliveryPlan) -> Result<(), ReconcileError> {
    let instance = plan.marker.name.as_str();
    let set = ManifestSet::new(ctx.store.read_all_manifests()?)?;
    for file in &plan.files {
        check_access(&set, instance, file)?;
    }
    let vault = Vault::new(ctx.store.clone());
    let pki = Pki::new(vault.clone());
    let keys = SshKeys::new(vault.clone());
    let (node, vmid) = (plan.node.as_str(), plan.vmid.get());
    let into = format!("lxc/{instance}");
    for file in &plan.files {
        let delivered = |path: &crate::vault::SecretPath, which: (&str, String)| {
            audit::delivered(
                ctx.store,
                path,
                &into,
                &[("file", file.path.to_string()), which],
            )
        };
        // A value is recorded in the audit log once read, before it leaves.
        let content: SecretValue = match &file.source {
            FileSource::Secret { path, version, .. } => {
                let value = vault.get_version(path, *version)?.value;
                delivered(path, ("version", format!("v{version}")))?;
                value
            }
            FileSource::Certificate { ca, name, serial }
            | FileSource::Chain { ca, name, serial } => {
                let details = pki.show_cert(ca, name)?;
                same_serial(&details.info.serial, serial, name.as_str())?;
                let pem = match &file.source {
                    FileSource::Chain { .. } => details.chain_pem(),
                    _ => details.info.pem.clone(),
                };
                public(pem.into_bytes())?
            }
            FileSource::CertificateKey { ca, name, serial } => {
                let details = pki.show_cert(ca, name)?;
                same_serial(&details.info.serial, serial, name.as_str())?;
                let key = pki.cert_key(ca, name)?;
                delivered(
                    &crate::pki::cert_key_path(ca, name),
                    ("serial", serial.clone()),
                )?;
                key
            }
            FileSource::AuthorizedKeys { keys: names } => {
                let names = names
                    .iter()
                    .map(|n| n.as_str().parse::<KeyName>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ReconcileError::Internal(e.to_string()))?;
                public(keys.authorized_keys(&names)?.into_bytes())?
            }
        };
        ctx.host.install(
            node,
            vmid,
            &InstallFile {
                path: file.path.as_str(),
                mode: file.mode.bits(),
                owner: file.owner.as_str(),
                tmpfs: file.tmpfs,
                content: content.expose(),
            },
        )?;
    }
    for path in &plan.remove {
        let argv = ["rm", "-f", "--", path.as_str()].map(String::from);
        ctx.host.exec(node, vmid, &argv)?;
    }
    for argv in &plan.reloads {
        let argv: Vec<String> = argv.iter().map(|a| a.as_str().to_owned()).collect();
        ctx.host.exec(node, vmid, &argv)?;
    }
    identities::record(
        ctx.store,
        vmid,
        &Delivered {
            node: plan.node.to_string(),
            digest: plan.digest.clone(),
            holds: plan.holds.clone(),
            booted: plan.booted,
            paths: plan.files.iter().map(|f| f.path.to_string()).collect(),
        },
    )?;
    tracing::info!(instance, vmid, files = plan.files.len(), "delivered");
    Ok(())
}

/// Refuses a file that holds a secret (a Secret's value, a certificate's
/// key) unless `instance` declares it there, in memory unless it declares
/// `on_disk`, and, for a Secret, its readers grant it — in the manifests
/// as stored now.
fn check_access(
    set: &ManifestSet,
    instance: &str,
    file: &DeliveryFile,
) -> Result<(), ReconcileError> {
    let (kind, object) = match &file.source {
        FileSource::Secret { name, .. } => (Kind::Secret, name.as_str()),
        FileSource::CertificateKey { name, .. } => (Kind::Certificate, name.as_str()),
        _ => return Ok(()),
    };
    let refuse = |why| ReconcileError::Undeclared {
        instance: instance.to_owned(),
        kind,
        object: object.to_owned(),
        path: file.path.to_string(),
        why,
    };
    let Some(Spec::Lxc(lxc)) = set.get(Kind::Lxc, instance).map(|m| &m.spec) else {
        return Err(refuse("the instance is not declared"));
    };
    // Where it is declared, and whether it may be on disk.
    let on_disk = match kind {
        Kind::Secret => lxc
            .secrets
            .iter()
            .find(|f| f.secret.as_str() == object && f.path == file.path)
            .map(|f| f.on_disk),
        _ => lxc
            .certificates
            .iter()
            .find(|c| c.certificate.as_str() == object && c.key == file.path)
            .map(|c| c.on_disk),
    };
    let Some(on_disk) = on_disk else {
        return Err(refuse("the instance does not declare it there"));
    };
    if on_disk == file.tmpfs {
        return Err(refuse(
            "where it may be written differs from the declaration",
        ));
    }
    if kind == Kind::Secret && set.grant(object, instance).is_none() {
        return Err(refuse("the Secret's readers do not grant it"));
    }
    Ok(())
}

/// Public content (a certificate, `authorized_keys`) in the buffer type
/// secrets use, so every file goes through one path.
fn public(bytes: Vec<u8>) -> Result<SecretValue, ReconcileError> {
    SecretValue::new(bytes).map_err(|e| ReconcileError::Internal(e.to_string()))
}

/// The certificate was renewed since the plan was made: deliver nothing
/// stale, the next pass plans the new one.
fn same_serial(have: &str, planned: &str, name: &str) -> Result<(), ReconcileError> {
    if have == planned {
        Ok(())
    } else {
        Err(ReconcileError::Internal(format!(
            "certificate {name} changed since it was planned ({planned} → {have}); the next pass delivers the new one"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(yaml: &str) -> ManifestSet {
        let docs = orbitlab_manifests::decode("test.yaml", yaml).expect("decodes");
        ManifestSet::new(docs).expect("valid")
    }

    const BASE: &str = r#"
apiVersion: orbitlab.io/v1
kind: Sector
metadata: {name: blue}
spec: {cidr: 172.16.0.0/24}
---
apiVersion: orbitlab.io/v1
kind: Lxc
metadata: {name: web, labels: {app: web}}
spec:
  sector: blue
  template: local:vztmpl/debian.tar.zst
  secrets: [{secret: db, path: /run/secrets/db}]
---
apiVersion: orbitlab.io/v1
kind: Lxc
metadata: {name: api}
spec: {sector: blue, template: local:vztmpl/debian.tar.zst}
---
apiVersion: orbitlab.io/v1
kind: Secret
metadata: {name: db}
spec:
  readers: [{selector: app=web}]
"#;

    fn secret_file(secret: &str, path: &str, tmpfs: bool) -> DeliveryFile {
        DeliveryFile {
            path: path.parse().unwrap(),
            mode: orbitlab_manifests::FileMode::OWNER_READ,
            owner: orbitlab_manifests::FileOwner::root(),
            tmpfs,
            source: FileSource::Secret {
                name: secret.parse().unwrap(),
                path: secret.parse().unwrap(),
                version: crate::vault::Version::new(1).unwrap(),
            },
        }
    }

    #[test]
    fn an_undeclared_read_is_refused_naming_both() {
        let set = set(BASE);
        let refusal = |instance: &str, file: DeliveryFile| {
            check_access(&set, instance, &file).unwrap_err().to_string()
        };
        assert!(check_access(&set, "web", &secret_file("db", "/run/secrets/db", true)).is_ok());
        let e = refusal("api", secret_file("db", "/run/secrets/db", true));
        assert!(e.contains("Lxc api") && e.contains("Secret db"), "{e}");
        assert!(e.contains("does not declare"), "{e}");
        let e = refusal("web", secret_file("db", "/run/other", true));
        assert!(e.contains("does not declare it there"), "{e}");
        let e = refusal("web", secret_file("db", "/run/secrets/db", false));
        assert!(e.contains("differs from the declaration"), "{e}");
        let e = refusal("gone", secret_file("db", "/run/secrets/db", true));
        assert!(e.contains("not declared"), "{e}");
        // Public files need no declaration check.
        let mut cert = secret_file("db", "/etc/ssl/x.pem", false);
        cert.source = FileSource::AuthorizedKeys { keys: Vec::new() };
        assert!(check_access(&set, "api", &cert).is_ok());
    }
}
