//! Instances end to end on a simulated 3-node cluster, PVE 8.4 and 9.1:
//! a Sector with six instances spread over the nodes; one resized (cores,
//! memory, disk up) and a shrink refused; one stopped and started; one
//! drifted by hand through the Proxmox API, reported and restored; one
//! deleted and its address reused; a `to_instance` ingress rule in the
//! gateway's ruleset; every instance's name in the Sector DNS. The
//! simulator checks every request against the official API schema (a
//! request that breaks it is answered 400); the test counts them and
//! asserts none was refused.

use std::collections::{BTreeMap, BTreeSet};

use orbitlab_engine::api::{Api, ApiPath};
use orbitlab_engine::pve::{LxcUpdate, Pve};
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::status::ObjectStatus;
use orbitlab_manifests::{Kind, codec};
use orbitlab_sim::pve::PveVersion;
use orbitlab_tests::Lab;

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";
const NAMES: [&str; 6] = ["w1", "w2", "w3", "w4", "w5", "w6"];

fn sector(with_ingress: bool) -> String {
    let mut yaml = "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n".to_owned();
    if with_ingress {
        yaml.push_str("  ingress:\n    - name: https\n      protocol: tcp\n      port: 443\n      to_instance: w1\n");
    }
    yaml
}

fn lxc(name: &str, extra: &[&str]) -> String {
    let mut yaml = format!(
        "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: {name}\nspec:\n  sector: web\n  template: {TEMPLATE}\n"
    );
    for line in extra {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml
}

fn apply(api: &Api, docs: &[String]) {
    api.apply(codec::decode("test.yaml", &docs.join("---\n")).unwrap())
        .unwrap();
}

fn status(lab: &Lab, name: &str) -> ObjectStatus {
    lab.store
        .read_status(Kind::Lxc, &name.parse().unwrap())
        .unwrap()
        .unwrap_or_else(|| panic!("Lxc {name} has no status"))
}

fn out(lab: &Lab, name: &str, key: &str) -> String {
    let s = status(lab, name);
    s.outputs
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("{name}: no {key} in {s:#?}"))
}

fn ready(lab: &Lab, name: &str) {
    let s = status(lab, name);
    assert!(s.is_ready(), "{name} is not Ready: {s:#?}");
}

fn config(lab: &Lab, name: &str, key: &str) -> Option<String> {
    let vmid: u32 = out(lab, name, "vmid").parse().unwrap();
    lab.pve
        .lxc_config(&out(lab, name, "node"), vmid)
        .unwrap()
        .get(key)
}

/// Requests made since the last count, checking that the simulator
/// refused none as breaking the schema.
fn count(lab: &Lab, what: &str, counts: &mut Vec<(String, usize)>) {
    let requests = lab.sim.requests();
    let refused: Vec<_> = requests
        .iter()
        .filter(|r| r.status == 400)
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.params.keys()))
        .collect();
    assert!(
        refused.is_empty(),
        "{what}: requests broke the schema: {refused:?}"
    );
    counts.push((what.to_owned(), requests.len()));
    lab.sim.clear_requests();
}

fn instances_end_to_end(version: PveVersion) {
    let lab = Lab::with_version(version);
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    let api = Api::new(lab.store.clone());
    let mut counts = Vec::new();
    lab.sim.clear_requests();

    // Six instances; w1 is the ingress target.
    let mut docs = vec![sector(true)];
    docs.extend(NAMES.iter().map(|n| lxc(n, &[])));
    apply(&api, &docs);
    lab.converge_as_agents("pve1");
    count(&lab, "create the Sector and six instances", &mut counts);
    let mut nodes: BTreeMap<String, usize> = BTreeMap::new();
    let mut addresses = BTreeSet::new();
    for name in NAMES {
        ready(&lab, name);
        *nodes.entry(out(&lab, name, "node")).or_default() += 1;
        assert!(addresses.insert(out(&lab, name, "address")));
    }
    assert_eq!(nodes.len(), 3, "spread over every node: {nodes:?}");
    assert!(nodes.values().all(|n| *n == 2), "{nodes:?}");
    let web = lab
        .store
        .read_status(Kind::Sector, &"web".parse().unwrap())
        .unwrap()
        .unwrap();
    assert!(web.is_ready(), "{web:#?}");

    // The gateway forwards to w1, the DNS names every instance.
    let pushed = lab.sim.pct_log();
    let text = format!("{pushed:?}");
    assert!(
        text.contains(&format!("dnat to {}", out(&lab, "w1", "address"))),
        "the ingress rule reached the gateway"
    );
    for name in NAMES {
        assert!(
            text.contains(&format!("{name}.web.orbitlab.internal")),
            "{name} is in the Sector DNS"
        );
    }

    // w2 grows; a shrink is refused.
    let w2 = out(&lab, "w2", "vmid");
    docs[2] = lxc("w2", &["cores: 2", "memory: 1024", "disk: 10"]);
    apply(&api, &docs);
    lab.converge_as_agents("pve1");
    count(&lab, "grow w2", &mut counts);
    ready(&lab, "w2");
    assert_eq!(out(&lab, "w2", "vmid"), w2);
    assert_eq!(config(&lab, "w2", "cores").as_deref(), Some("2"));
    assert_eq!(config(&lab, "w2", "memory").as_deref(), Some("1024"));
    assert!(config(&lab, "w2", "rootfs").unwrap().contains("size=10G"));
    docs[2] = lxc("w2", &["cores: 2", "memory: 1024", "disk: 2"]);
    apply(&api, &docs);
    lab.converge_as_agents("pve1");
    assert!(!status(&lab, "w2").is_ready());
    assert!(config(&lab, "w2", "rootfs").unwrap().contains("size=10G"));
    docs[2] = lxc("w2", &["cores: 2", "memory: 1024", "disk: 10"]);
    apply(&api, &docs);

    // w3 stopped, then started.
    docs[3] = lxc("w3", &["state: stopped"]);
    apply(&api, &docs);
    lab.converge_as_agents("pve1");
    ready(&lab, "w3");
    assert_eq!(out(&lab, "w3", "power"), "stopped");
    docs[3] = lxc("w3", &[]);
    apply(&api, &docs);
    lab.converge_as_agents("pve1");
    ready(&lab, "w3");
    assert_eq!(out(&lab, "w3", "power"), "running");
    count(&lab, "stop and start w3", &mut counts);

    // w4 drifted by hand through the Proxmox API.
    let w4: u32 = out(&lab, "w4", "vmid").parse().unwrap();
    let mut edit = LxcUpdate::default();
    edit.set.insert("memory".into(), "4096".into());
    edit.set.insert("cores".into(), "4".into());
    lab.pve
        .lxc_update(&out(&lab, "w4", "node"), w4, &edit)
        .unwrap();
    lab.converge_as_agents("pve1");
    count(&lab, "restore w4", &mut counts);
    ready(&lab, "w4");
    assert_eq!(config(&lab, "w4", "memory").as_deref(), Some("512"));
    assert_eq!(config(&lab, "w4", "cores").as_deref(), Some("1"));
    assert!(out(&lab, "w4", "set/memory").starts_with("512 (was 4096)"));
    assert!(out(&lab, "w4", "set/cores").starts_with("1 (was 4)"));

    // w5 deleted; its address goes to a new instance.
    let w5 = out(&lab, "w5", "address");
    docs.remove(5);
    apply(&api, &docs);
    api.delete(&"/lxc/w5".parse::<ApiPath>().unwrap(), false)
        .unwrap();
    lab.converge_as_agents("pve1");
    docs.push(lxc("w7", &[]));
    apply(&api, &docs);
    lab.converge_as_agents("pve1");
    count(&lab, "delete w5, create w7", &mut counts);
    ready(&lab, "w7");
    assert_eq!(out(&lab, "w7", "address"), w5);
    let guests = lab.sim.with_state(|st| st.guests.len());
    assert_eq!(guests, 2 + 6, "gateway, DNS and six instances");

    for (what, n) in &counts {
        println!("{version:?}: {what}: {n} requests");
    }
}

#[test]
fn instances_end_to_end_on_pve_8() {
    instances_end_to_end(PveVersion::V8_4);
}

#[test]
fn instances_end_to_end_on_pve_9() {
    instances_end_to_end(PveVersion::V9_1);
}

/// The root password of an instance comes from the vault and reaches
/// Proxmox only in the create request's body: the simulator's request log
/// (which redacts secrets) shows it was sent, and no file in the store
/// (statuses, manifests, IPAM, records; the vault holds ciphertext) and no
/// answer of the API holds it.
#[test]
fn an_instance_password_reaches_only_the_create_request() {
    use orbitlab_engine::vault::{SecretValue, Vault};

    const PASSWORD: &str = "Tr0ub4dor-and-3-horses";
    let lab = Lab::with_version(PveVersion::V9_1);
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init");
    Vault::new(lab.store.clone())
        .set(
            &"app-root".parse().unwrap(),
            &SecretValue::new(PASSWORD.as_bytes().to_vec()).unwrap(),
        )
        .unwrap();
    let api = Api::new(lab.store.clone());
    apply(
        &api,
        &[
            sector(false),
            lxc("app", &["password: app-root"]),
            "apiVersion: orbitlab.io/v1\nkind: Secret\nmetadata:\n  name: app-root\nspec:\n  type: password\n".into(),
        ],
    );
    lab.sim.clear_requests();
    lab.converge_as_agents("pve1");
    ready(&lab, "app");

    let creates: Vec<_> = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.path.ends_with("/lxc")
                && r.params.get("hostname").map(String::as_str) == Some("app")
        })
        .collect();
    assert_eq!(creates.len(), 1);
    let sent = creates[0]
        .params
        .get("password")
        .expect("a password was sent");
    assert_ne!(sent, PASSWORD, "the simulator's log redacts it");
    for request in lab.sim.requests() {
        assert!(
            !request.params.values().any(|v| v.contains(PASSWORD)),
            "{} {}",
            request.method,
            request.path
        );
    }
    let mut files = vec![lab.dir.path().to_owned()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes()),
                "{} holds the password",
                path.display()
            );
        }
    }
    let shown = api
        .get(&"/lxc/app".parse::<ApiPath>().unwrap())
        .unwrap()
        .to_string();
    assert!(!shown.contains(PASSWORD), "{shown}");
    // The container holds no trace of it either: Proxmox stores no password.
    assert_eq!(config(&lab, "app", "password"), None);
}
