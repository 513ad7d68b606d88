//! Identities end to end on a simulated 3-node cluster (issue 13): an
//! instance declaring two secrets, a certificate and an SSH key receives
//! exactly those files, with their modes and owners, through the agents'
//! delivery into the simulated container; an instance declaring nothing
//! receives nothing. A new secret version and a rollback are delivered
//! within one pass of the instance's agent; a short-lived certificate is
//! renewed halfway through its life and delivered again, and `openssl verify`
//! accepts the delivered chain with the CA's current CRL; an SSH key
//! rotates on schedule, both keys work during the overlap and the old
//! one is gone after it (`ssh-keygen -l` on the delivered public halves
//! and the vault's private half). Refusals at `apply` name both objects.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use orbitlab_engine::api::Api;
use orbitlab_engine::audit::{Action, AuditLog, Verification};
use orbitlab_engine::pki::{CaName, CertName, Pki};
use orbitlab_engine::reconcile::Scope;
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::ssh::{KeyName, SshKeys};
use orbitlab_engine::status::ObjectStatus;
use orbitlab_engine::vault::{SecretPath, SecretValue, Timestamp, Vault, Version};
use orbitlab_manifests::{Kind, codec};
use orbitlab_sim::pve::pct::PushedFile;
use orbitlab_tests::Lab;

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

const MANIFESTS: &str = r#"
apiVersion: orbitlab.io/v1
kind: Sector
metadata: {name: web}
spec: {cidr: 172.16.0.0/24}
---
apiVersion: orbitlab.io/v1
kind: SshKey
metadata: {name: deploy}
spec: {rotate_every: 20s, overlap: 8s}
---
apiVersion: orbitlab.io/v1
kind: Certificate
metadata: {name: root}
spec: {role: root_ca, common_name: Identities Test Root}
---
apiVersion: orbitlab.io/v1
kind: Certificate
metadata: {name: api-tls}
spec:
  role: server
  issuer: root
  dns_names: [app.web.orbitlab.internal]
  lifetime: 60s
  renew_before: 30s
---
apiVersion: orbitlab.io/v1
kind: Secret
metadata: {name: db-password}
spec:
  path: app/db/password
  readers: [{lxc: app}]
---
apiVersion: orbitlab.io/v1
kind: Secret
metadata: {name: api-token}
spec:
  readers: [{selector: "role=app"}]
---
apiVersion: orbitlab.io/v1
kind: Secret
metadata: {name: admin-pw}
spec: {type: password}
---
apiVersion: orbitlab.io/v1
kind: Lxc
metadata: {name: app, labels: {role: app}}
spec:
  sector: web
  template: TEMPLATE
  ssh_keys: [deploy]
  secrets:
    - {secret: db-password, path: /run/secrets/db, mode: "0440", owner: "www-data:www-data"}
    - {secret: api-token, path: /run/secrets/token}
  certificates:
    - certificate: api-tls
      cert: /etc/ssl/api.pem
      chain: /etc/ssl/api-chain.pem
      key: /run/tls/api.key
      reload: [systemctl, reload, nginx]
---
apiVersion: orbitlab.io/v1
kind: Lxc
metadata: {name: plain, labels: {role: web}}
spec: {sector: web, template: TEMPLATE}
"#;

fn manifests() -> String {
    MANIFESTS.replace("TEMPLATE", TEMPLATE)
}

fn status(lab: &Lab, kind: Kind, name: &str) -> ObjectStatus {
    lab.store
        .read_status(kind, &name.parse().unwrap())
        .unwrap()
        .unwrap_or_else(|| panic!("{kind} {name} has no status"))
}

fn output(lab: &Lab, kind: Kind, name: &str, key: &str) -> String {
    let s = status(lab, kind, name);
    s.outputs
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("{kind} {name}: no {key} in {s:#?}"))
}

fn files_of(lab: &Lab, name: &str) -> std::collections::BTreeMap<String, PushedFile> {
    let vmid: u32 = output(lab, Kind::Lxc, name, "vmid").parse().unwrap();
    lab.sim
        .pct_log()
        .get(&vmid)
        .map(|r| r.files.clone())
        .unwrap_or_default()
}

fn file(lab: &Lab, name: &str, path: &str) -> PushedFile {
    files_of(lab, name)
        .remove(path)
        .unwrap_or_else(|| panic!("{name} has no {path}"))
}

/// How often `systemctl reload nginx` ran in `app`'s container.
fn reloads(lab: &Lab) -> usize {
    let vmid: u32 = output(lab, Kind::Lxc, "app", "vmid").parse().unwrap();
    let reload = ["systemctl", "reload", "nginx"].map(String::from).to_vec();
    lab.sim.pct_log()[&vmid]
        .commands
        .iter()
        .filter(|c| **c == reload)
        .count()
}

fn set_secret(lab: &Lab, path: &str, value: &str) -> Version {
    Vault::new(lab.store.clone())
        .set(
            &path.parse().unwrap(),
            &SecretValue::new(value.as_bytes().to_vec()).unwrap(),
        )
        .unwrap()
        .version
}

/// One run of the agent of `node` (the cluster-scoped one on pve1) with a
/// single pass: what "within one pass" means.
fn one_pass_of(lab: &Lab, node: &str) {
    let host = lab.host(node);
    let mut reconciler = lab.reconciler(&host);
    reconciler.options.max_passes = 1;
    if node != "pve1" {
        reconciler.options.scope = Scope::Node;
    }
    reconciler.run().expect("a pass runs");
}

/// Sleeps until one second after `at` (a record's whole-second time).
fn sleep_past(at: Timestamp) {
    let when = std::time::UNIX_EPOCH + Duration::from_secs(at.0 + 1);
    if let Ok(left) = when.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(left);
    }
}

/// The current key of `deploy` as its record says.
fn deploy_key(lab: &Lab) -> orbitlab_engine::ssh::SshKeyInfo {
    SshKeys::new(Vault::new(lab.store.clone()))
        .show(&"deploy".parse::<KeyName>().unwrap())
        .unwrap()
}

/// `ssh-keygen -l` of each `authorized_keys` line: their fingerprints.
fn fingerprints(dir: &Path, authorized_keys: &str) -> Vec<String> {
    let path = dir.join("authorized_keys");
    std::fs::write(&path, authorized_keys).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

/// `ssh-keygen -l` of the vault's current private half of key `deploy`.
fn private_fingerprint(lab: &Lab, dir: &Path) -> String {
    let key = SshKeys::new(Vault::new(lab.store.clone()))
        .private_key(&"deploy".parse::<KeyName>().unwrap())
        .unwrap();
    key_fingerprint(dir, key.expose())
}

/// `ssh-keygen -l` of a private key (OpenSSH format).
fn key_fingerprint(dir: &Path, private: &[u8]) -> String {
    let path = dir.join("id_deploy");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, private).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&path, perms).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

/// `openssl verify` of the delivered certificate against the root CA and
/// its current CRL.
fn openssl_verify(lab: &Lab, dir: &Path, delivered_chain: &str) {
    let pki = Pki::new(Vault::new(lab.store.clone()));
    let root: CaName = "root".parse().unwrap();
    std::fs::write(dir.join("root.pem"), pki.ca_cert_pem(&root).unwrap()).unwrap();
    std::fs::write(dir.join("crl.pem"), pki.crl(&root).unwrap()).unwrap();
    std::fs::write(dir.join("chain.pem"), delivered_chain).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-crl_check", "-CAfile"])
        .arg(dir.join("root.pem"))
        .arg("-CRLfile")
        .arg(dir.join("crl.pem"))
        .arg(dir.join("chain.pem"))
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn identities_are_delivered_exactly_where_declared_and_kept_current() {
    let lab = Lab::new();
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    let api = Api::new(lab.store.clone());
    let tmp = tempfile::tempdir().unwrap();
    set_secret(&lab, "app/db/password", "db-secret-one");
    set_secret(&lab, "api-token", "token-one");
    api.apply(codec::decode("identities.yaml", &manifests()).unwrap())
        .expect("the manifests are accepted");
    lab.converge_as_agents("pve1");
    // When the key rotates and the certificate renews, from their records;
    // and what they are before.
    let rotation_at = deploy_key(&lab).current.created.0 + 20;
    let cert_name = "api-tls".parse::<CertName>().unwrap();
    let issued = Pki::new(Vault::new(lab.store.clone()))
        .show_cert(&"root".parse().unwrap(), &cert_name)
        .unwrap();
    let renewal_at = Timestamp(issued.info.not_after.0 - 30);
    let serial = issued.info.serial.clone();
    let old_pem = issued.info.pem.clone();
    for (kind, name) in [
        (Kind::Lxc, "app"),
        (Kind::Lxc, "plain"),
        (Kind::SshKey, "deploy"),
        (Kind::Certificate, "root"),
        (Kind::Certificate, "api-tls"),
        (Kind::Secret, "db-password"),
        (Kind::Secret, "api-token"),
        (Kind::Secret, "admin-pw"),
    ] {
        let s = status(&lab, kind, name);
        assert!(s.is_ready(), "{kind} {name} is not Ready: {s:#?}");
    }

    // Exactly the declared files, with their modes and owners.
    let files = files_of(&lab, "app");
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "/etc/ssl/api-chain.pem",
            "/etc/ssl/api.pem",
            "/root/.ssh/authorized_keys",
            "/run/secrets/db",
            "/run/secrets/token",
            "/run/tls/api.key",
        ]
    );
    let db = &files["/run/secrets/db"];
    assert_eq!(
        (db.content.as_str(), db.mode, db.owner.as_str()),
        ("db-secret-one", 0o440, "www-data:www-data")
    );
    let token = &files["/run/secrets/token"];
    assert_eq!(
        (token.content.as_str(), token.mode, token.owner.as_str()),
        ("token-one", 0o400, "root:root")
    );
    let key = &files["/run/tls/api.key"];
    assert!(key.content.contains("PRIVATE KEY"));
    assert_eq!((key.mode, key.owner.as_str()), (0o400, "root:root"));
    assert_eq!(files["/etc/ssl/api.pem"].mode, 0o444);
    assert_eq!(files["/root/.ssh/authorized_keys"].mode, 0o600);
    assert_eq!(
        reloads(&lab),
        1,
        "nginx reloaded once its certificate is in place"
    );
    // The instance that declares nothing receives nothing.
    assert!(
        files_of(&lab, "plain").is_empty(),
        "{:?}",
        files_of(&lab, "plain")
    );
    // Its status lists the versions it holds, never a value.
    let app = status(&lab, Kind::Lxc, "app");
    assert_eq!(app.outputs["holds/secret/db-password"], "v1");
    assert_eq!(app.outputs["holds/secret/api-token"], "v1");
    let text = serde_json::to_string(&app).unwrap();
    assert!(!text.contains("db-secret-one") && !text.contains("token-one"));
    // A password Secret without a value got a generated one.
    let generated = Vault::new(lab.store.clone())
        .get(&"admin-pw".parse().unwrap())
        .unwrap();
    assert_eq!(generated.version.get(), 1);
    assert_eq!(generated.value.len(), 24);
    assert!(
        generated
            .value
            .expose()
            .iter()
            .all(u8::is_ascii_alphanumeric)
    );
    assert!(status(&lab, Kind::Secret, "admin-pw").is_ready());
    // Key and certificate statuses: fingerprint, age, next rotation;
    // serial, expiry, next renewal.
    let key = status(&lab, Kind::SshKey, "deploy");
    assert!(
        key.outputs["fingerprint"].starts_with("SHA256:"),
        "{key:#?}"
    );
    assert_eq!(key.outputs["age"], "under 1h");
    assert!(key.outputs.contains_key("next_rotation"), "{key:#?}");
    let cert = status(&lab, Kind::Certificate, "api-tls");
    for k in ["serial", "not_after", "next_renewal"] {
        assert!(cert.outputs.contains_key(k), "{k}: {cert:#?}");
    }
    assert!(
        status(&lab, Kind::Certificate, "root")
            .outputs
            .contains_key("crl/next_update")
    );
    let db_readers = output(&lab, Kind::Secret, "db-password", "readers");
    assert_eq!(db_readers, "lxc/app");
    // The delivered chain verifies with the CA's current CRL.
    openssl_verify(&lab, tmp.path(), &files["/etc/ssl/api-chain.pem"].content);

    // A new version is delivered within one pass of the instance's agent.
    let app_node = output(&lab, Kind::Lxc, "app", "node");
    let v2 = set_secret(&lab, "app/db/password", "db-secret-two");
    one_pass_of(&lab, &app_node);
    assert_eq!(
        file(&lab, "app", "/run/secrets/db").content,
        "db-secret-two"
    );
    // A rollback (a new version equal to v1) is delivered the same way.
    Vault::new(lab.store.clone())
        .rollback(
            &"app/db/password".parse::<SecretPath>().unwrap(),
            Version::new(1).unwrap(),
        )
        .unwrap();
    one_pass_of(&lab, &app_node);
    assert_eq!(
        file(&lab, "app", "/run/secrets/db").content,
        "db-secret-one"
    );
    lab.converge_as_agents("pve1");
    assert_eq!(
        status(&lab, Kind::Lxc, "app").outputs["holds/secret/db-password"],
        format!("v{}", v2.get() + 1)
    );
    // Still nothing for the other instance, and nginx was not reloaded
    // for a secret's change.
    assert!(files_of(&lab, "plain").is_empty());
    assert_eq!(reloads(&lab), 1);

    // SSH key rotation: after 20 s a new key; both work for the overlap.
    let first = output(&lab, Kind::SshKey, "deploy", "fingerprint");
    let only_first = fingerprints(
        tmp.path(),
        &file(&lab, "app", "/root/.ssh/authorized_keys").content,
    );
    assert_eq!(only_first, [first.as_str()]);
    assert_eq!(private_fingerprint(&lab, tmp.path()), first);
    sleep_past(Timestamp(rotation_at));
    lab.converge_as_agents("pve1");
    let second = output(&lab, Kind::SshKey, "deploy", "fingerprint");
    assert_ne!(second, first, "rotated");
    assert_eq!(
        output(&lab, Kind::SshKey, "deploy", "previous/fingerprint"),
        first
    );
    let both = fingerprints(
        tmp.path(),
        &file(&lab, "app", "/root/.ssh/authorized_keys").content,
    );
    assert_eq!(
        both,
        [second.clone(), first.clone()],
        "both halves during the overlap"
    );
    assert_eq!(private_fingerprint(&lab, tmp.path()), second);
    // The previous private half (its vault version) is the first key.
    let key = deploy_key(&lab);
    let previous = key.previous.clone().expect("a previous key");
    let old_private = Vault::new(lab.store.clone())
        .get_version(&"ssh/deploy".parse().unwrap(), previous.vault_version)
        .unwrap();
    assert_eq!(
        key_fingerprint(tmp.path(), old_private.value.expose()),
        first
    );
    // After the overlap (8 s) the old key is gone.
    sleep_past(Timestamp(key.current.created.0 + 8));
    lab.converge_as_agents("pve1");
    let after = fingerprints(
        tmp.path(),
        &file(&lab, "app", "/root/.ssh/authorized_keys").content,
    );
    assert_eq!(
        after,
        [second.as_str()],
        "the old key is gone after the overlap"
    );
    assert!(
        !status(&lab, Kind::SshKey, "deploy")
            .outputs
            .contains_key("previous/fingerprint")
    );

    // The certificate is renewed 30 s before it expires (halfway through
    // its 60 s) and delivered again.
    assert_eq!(old_pem, issued.info.pem);
    sleep_past(renewal_at);
    lab.converge_as_agents("pve1");
    let renewed = output(&lab, Kind::Certificate, "api-tls", "serial");
    assert_ne!(
        renewed,
        serial,
        "renewed before expiry: {:#?}",
        status(&lab, Kind::Certificate, "api-tls")
    );
    assert_eq!(
        status(&lab, Kind::Lxc, "app").outputs["holds/certificate/api-tls"],
        renewed
    );
    let new_pem = file(&lab, "app", "/etc/ssl/api.pem").content;
    assert_ne!(new_pem, old_pem);
    let pki = Pki::new(Vault::new(lab.store.clone()));
    let details = pki
        .show_cert(
            &"root".parse().unwrap(),
            &"api-tls".parse::<CertName>().unwrap(),
        )
        .unwrap();
    assert_eq!(new_pem, details.info.pem);
    openssl_verify(
        &lab,
        tmp.path(),
        &file(&lab, "app", "/etc/ssl/api-chain.pem").content,
    );
    assert_eq!(reloads(&lab), 2, "reloaded for the renewed certificate");
    assert!(files_of(&lab, "plain").is_empty());

    // A declaration taken back: its file leaves the container.
    let without_token =
        manifests().replace("    - {secret: api-token, path: /run/secrets/token}\n", "");
    assert_ne!(without_token, manifests());
    api.apply(codec::decode("identities.yaml", &without_token).unwrap())
        .unwrap();
    lab.converge_as_agents("pve1");
    assert!(!files_of(&lab, "app").contains_key("/run/secrets/token"));
    assert!(files_of(&lab, "app").contains_key("/run/secrets/db"));
    assert!(
        !status(&lab, Kind::Lxc, "app")
            .outputs
            .contains_key("holds/secret/api-token")
    );

    // The audit log records every delivery of a secret, the rotation and
    // the renewal, never a value; its chain verifies.
    let log = AuditLog::new(lab.store.clone());
    let records = log.records(None).unwrap();
    let delivered: Vec<_> = records
        .iter()
        .filter(|r| {
            r.action == Action::SecretDeliver && r.object == "/vault/values/app/db/password"
        })
        .collect();
    // v1, v2, v3 (the rollback), each delivered again with the files the
    // rotations and the renewal changed.
    let versions: std::collections::BTreeSet<&str> = delivered
        .iter()
        .map(|r| r.detail["version"].as_str())
        .collect();
    assert_eq!(versions, ["v1", "v2", "v3"].into(), "{delivered:#?}");
    assert!(
        delivered
            .iter()
            .all(|r| r.detail["into"] == "lxc/app" && r.detail["file"] == "/run/secrets/db")
    );
    for action in [
        Action::SshKeyRotate,
        Action::SshKeyDropPrevious,
        Action::PkiCertIssue,
        Action::PkiRenew,
    ] {
        assert!(
            records.iter().any(|r| r.action == action),
            "no {action} in the audit log"
        );
    }
    let verdict = log.verify().unwrap();
    assert!(matches!(verdict, Verification::Intact(_)), "{verdict:?}");
    // No value in any command the agents ran in a container (the
    // arguments every process in it could read).
    for (vmid, record) in lab.sim.pct_log() {
        for argv in &record.commands {
            for value in ["db-secret-one", "db-secret-two", "token-one", "PRIVATE KEY"] {
                assert!(
                    !argv.iter().any(|a| a.contains(value)),
                    "{value} in {vmid}: {argv:?}"
                );
            }
        }
    }
    // No value anywhere in the store (statuses, records, audit, vault).
    for (path, bytes) in all_files(lab.dir.path()) {
        let text = String::from_utf8_lossy(&bytes);
        for value in ["db-secret-one", "db-secret-two", "token-one"] {
            assert!(!text.contains(value), "{value} in {path}");
        }
    }
}

/// Every file under `root`, with its path.
fn all_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push((
                    path.display().to_string(),
                    std::fs::read(&path).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

#[test]
fn a_restarted_container_gets_its_memory_only_files_again() {
    let lab = Lab::new();
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    let api = Api::new(lab.store.clone());
    set_secret(&lab, "app/db/password", "db-secret-one");
    set_secret(&lab, "api-token", "token-one");
    api.apply(codec::decode("identities.yaml", &manifests()).unwrap())
        .unwrap();
    lab.converge_as_agents("pve1");
    assert!(files_of(&lab, "app").contains_key("/run/secrets/db"));
    // A restart empties the container's tmpfs.
    let vmid: u32 = output(&lab, Kind::Lxc, "app", "vmid").parse().unwrap();
    let node = output(&lab, Kind::Lxc, "app", "node");
    use orbitlab_engine::pve::Pve;
    let upid = lab.pve.lxc_stop(&node, vmid).unwrap();
    lab.pve.wait_task(&upid, Duration::from_secs(10)).unwrap();
    // Proxmox counts uptime in whole seconds: a start seen more than a
    // few seconds after the delivery's is a restart.
    std::thread::sleep(Duration::from_secs(6));
    let upid = lab.pve.lxc_start(&node, vmid).unwrap();
    lab.pve.wait_task(&upid, Duration::from_secs(10)).unwrap();
    assert!(
        !files_of(&lab, "app").contains_key("/run/secrets/db"),
        "tmpfs emptied"
    );
    assert!(
        files_of(&lab, "app").contains_key("/etc/ssl/api.pem"),
        "disk kept"
    );
    lab.converge_as_agents("pve1");
    assert_eq!(
        file(&lab, "app", "/run/secrets/db").content,
        "db-secret-one"
    );
    assert_eq!(file(&lab, "app", "/run/tls/api.key").mode, 0o400);
}

#[test]
fn refusals_name_both_objects_and_change_nothing() {
    let lab = Lab::new();
    let api = Api::new(lab.store.clone());
    let base = manifests();
    api.apply(codec::decode("identities.yaml", &base).unwrap())
        .unwrap();
    let before = lab.store.read_all_manifests().unwrap().len();
    // A declaration without a grant.
    let undeclared = format!(
        "{base}---\napiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata: {{name: sneaky}}\nspec:\n  sector: web\n  template: {TEMPLATE}\n  secrets: [{{secret: db-password, path: /run/db}}]\n"
    );
    let err = api
        .apply(codec::decode("sneaky.yaml", &undeclared).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Secret db-password") && err.contains("Lxc sneaky"),
        "{err}"
    );
    assert!(err.contains("spec.secrets[0].secret"), "{err}");
    // A grant by a label that matches nothing.
    let orphan = format!(
        "{base}---\napiVersion: orbitlab.io/v1\nkind: Secret\nmetadata: {{name: orphan}}\nspec:\n  readers: [{{selector: \"role=nothing\"}}]\n"
    );
    let err = api
        .apply(codec::decode("orphan.yaml", &orphan).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Secret orphan") && err.contains("role=nothing"),
        "{err}"
    );
    assert!(err.contains("matches no Lxc"), "{err}");
    // A secret file off tmpfs without on_disk.
    let on_disk = base.replace("path: /run/secrets/token", "path: /etc/app/token");
    let err = api
        .apply(codec::decode("disk.yaml", &on_disk).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.secrets[1].path") && err.contains("on_disk"),
        "{err}"
    );
    // A grant that only excludes would grant every new instance.
    let excluding = base.replace(
        "readers: [{selector: \"role=app\"}]",
        "readers: [{selector: \"!legacy\"}]",
    );
    assert_ne!(excluding, base);
    let err = api
        .apply(codec::decode("excluding.yaml", &excluding).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("only excludes"), "{err}");
    assert_eq!(
        lab.store.read_all_manifests().unwrap().len(),
        before,
        "nothing stored"
    );
    // Removing the last instance a selector grant matches stays possible
    // (the grant is checked when its Secret is applied).
    let lone = base.replace(
        "metadata: {name: app, labels: {role: app}}",
        "metadata: {name: app}",
    );
    let lone = lone.replace("    - {secret: api-token, path: /run/secrets/token}\n", "");
    let lone = lone.replace(
        "readers: [{selector: \"role=app\"}]",
        "readers: [{lxc: app}]",
    );
    api.apply(codec::decode("lone.yaml", &lone).unwrap())
        .unwrap();
    let with_selector = "apiVersion: orbitlab.io/v1\nkind: Secret\nmetadata: {name: api-token}\nspec:\n  readers: [{selector: \"role=web\"}]\n";
    api.apply(codec::decode("grant.yaml", with_selector).unwrap())
        .unwrap();
    api.delete(&"/lxc/plain".parse().unwrap(), false)
        .expect("the last instance a grant matched can go");
}
