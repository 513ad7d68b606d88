//! Appliance upgrades end to end on a simulated 3-node cluster whose
//! simulator checks every request against Proxmox's API schema (8.4 and
//! 9.1): two Sectors Ready on this release's appliances; the new version's
//! templates uploaded to every node (Proxmox's storage upload) and named
//! by Appliance manifests; the agents' reconciles (pve1 cluster-scoped,
//! the others node-scoped) replace alpha's containers, then beta's — never
//! two Sectors at once — keeping every address and MAC address, and each
//! Sector reports its interruption. A memory change afterwards is set on
//! the running containers in place.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::pve::Pve;
use orbitlab_engine::reconcile::Scope;
use orbitlab_engine::reconcile::init::init;
use orbitlab_engine::status::ObjectStatus;
use orbitlab_manifests::{Kind, codec};
use orbitlab_sim::pve::state::PowerState;
use orbitlab_sim::pve::{APPLIANCE_TEMPLATES, APPLIANCE_VERSION, PveVersion};
use orbitlab_tests::{Lab, NODES};

const SECTORS: [&str; 2] = ["alpha", "beta"];
const ROLES: [&str; 2] = ["gateway", "dns"];
const NEW: &str = "1.2.0";

/// (sector, role).
type Part = (String, String);

/// One appliance container as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Appliance {
    vmid: u32,
    version: String,
    running: bool,
    /// `net0` and `net1` as stored (addresses, MAC addresses).
    nics: Vec<String>,
    memory: String,
}

/// Every Sector container, by (sector, role), lowest VMID first.
fn appliances(lab: &Lab) -> BTreeMap<Part, Vec<Appliance>> {
    let guests = lab.sim.with_state(|st| st.guests.clone());
    let mut out: BTreeMap<Part, Vec<Appliance>> = BTreeMap::new();
    for (vmid, guest) in guests {
        let description = guest.config.get("description").cloned().unwrap_or_default();
        let Some((sector, role)) = description
            .split_whitespace()
            .find_map(|w| w.strip_prefix("orbitlab:sector/"))
            .and_then(|m| m.split_once('/'))
        else {
            continue;
        };
        let version = description
            .lines()
            .find_map(|l| l.trim().strip_prefix("appliance-version: "))
            .unwrap_or("none")
            .to_owned();
        out.entry((sector.to_owned(), role.to_owned()))
            .or_default()
            .push(Appliance {
                vmid,
                version,
                running: guest.status == PowerState::Running,
                nics: ["net0", "net1"]
                    .iter()
                    .filter_map(|k| guest.config.get(*k).cloned())
                    .collect(),
                memory: guest.config.get("memory").cloned().unwrap_or_default(),
            });
    }
    out
}

fn status(lab: &Lab, sector: &str) -> ObjectStatus {
    lab.store
        .read_status(Kind::Sector, &sector.parse().unwrap())
        .unwrap()
        .expect("a status")
}

/// The Sectors' IPAM address outputs (`gateway/address/<pool>`).
fn address_outputs(lab: &Lab) -> Vec<String> {
    SECTORS
        .iter()
        .flat_map(|s| {
            status(lab, s)
                .outputs
                .into_iter()
                .filter(|(k, _)| k.contains("/address/"))
                .map(move |(k, v)| format!("{s} {k}={v}"))
        })
        .collect()
}

/// The Appliance manifests naming version `NEW` with `memory` MiB.
fn manifests(memory: u32) -> String {
    ROLES
        .iter()
        .map(|role| {
            format!(
                "apiVersion: orbitlab.io/v1\nkind: Appliance\nmetadata: {{name: {role}}}\nspec:\n  role: {role}\n  template: local:vztmpl/orbitlab-{role}_{NEW}_amd64.tar.zst\n  version: {NEW}\n  memory: {memory}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Uploads the `NEW` templates to every node's `local` storage, as an
/// administrator would (Proxmox UI: node → local → CT Templates → Upload).
fn upload_new_templates(lab: &Lab) {
    for role in ROLES {
        let file = format!("orbitlab-{role}_{NEW}_amd64.tar.zst");
        let path = lab.dir.path().join(&file);
        std::fs::write(&path, format!("rootfs of the {role} appliance {NEW}\n")).unwrap();
        for node in NODES {
            let upid = lab
                .pve
                .upload(node, "local", "vztmpl", &path, &file)
                .unwrap();
            lab.pve.wait_task(&upid, Duration::from_secs(10)).unwrap();
        }
    }
}

/// One reconcile of each agent in turn (pve1 cluster-scoped, the others
/// node-scoped), `check` after each; the steps taken.
fn round(lab: &Lab, check: &mut impl FnMut(&Lab)) -> usize {
    let mut steps = 0;
    for node in NODES {
        let host = lab.host(node);
        let mut reconciler = lab.reconciler(&host);
        if node != "pve1" {
            reconciler.options.scope = Scope::Node;
        }
        let report = reconciler.run().expect("a reconcile runs");
        // As the node's agent: probe its appliances, publish the answers.
        steps += report.steps + report.failed.len() + usize::from(lab.probe(node));
        check(lab);
    }
    steps
}

fn upgrade_end_to_end(version: PveVersion) {
    let lab = Lab::with_version(version);
    init(&lab.reconciler(&lab.host("pve1")), None).expect("init");
    let api = Api::new(lab.store.clone());
    for (i, sector) in SECTORS.iter().enumerate() {
        let cidr = format!("172.16.{i}.0/24");
        let props =
            PropertyValue::from_pairs([("name", *sector), ("cidr", cidr.as_str())]).unwrap();
        api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
            .unwrap();
    }
    lab.converge_as_agents("pve1");
    let before = appliances(&lab);
    assert_eq!(before.len(), 4, "{before:#?}");
    for (part, c) in &before {
        assert_eq!(c.len(), 1, "{part:?}: {c:#?}");
        assert_eq!(c[0].version, APPLIANCE_VERSION, "{part:?}");
        assert!(c[0].running, "{part:?}");
        // Made from this release's templates, which the simulator has.
        assert!(APPLIANCE_TEMPLATES.iter().any(|t| t.contains(&part.1)));
    }
    for sector in SECTORS {
        assert!(
            status(&lab, sector).is_ready(),
            "{:#?}",
            status(&lab, sector)
        );
    }
    let addresses_before = address_outputs(&lab);
    assert_eq!(addresses_before.len(), 2 * 3, "{addresses_before:#?}");
    let holdings_before = lab.address_holdings();

    upload_new_templates(&lab);
    lab.sim.clear_requests();
    api.apply(codec::decode("appliances.yaml", &manifests(128)).unwrap())
        .unwrap();

    // Reconciles until a round does nothing, checking after each one.
    let mut started: Vec<String> = Vec::new();
    let mut both_seen = 0;
    let mut check = |lab: &Lab| {
        let now = appliances(lab);
        let mid: BTreeSet<&String> = now
            .iter()
            .filter(|(_, c)| c.len() > 1)
            .map(|((s, _), _)| s)
            .collect();
        assert!(mid.len() <= 1, "two Sectors upgrade at once: {now:#?}");
        both_seen += mid.len();
        for ((sector, role), c) in &now {
            assert!(c.len() <= 2, "{sector}/{role}: {c:#?}");
            if c.iter().any(|a| a.version == NEW) && !started.contains(sector) {
                // A Sector starts only once those before it are done.
                for earlier in &started {
                    for role in ROLES {
                        let e = &now[&(earlier.clone(), role.to_owned())];
                        assert!(
                            e.len() == 1 && e[0].version == NEW,
                            "{sector} started before {earlier} was done: {now:#?}"
                        );
                    }
                }
                started.push(sector.clone());
            }
        }
    };
    let mut settled = false;
    for _ in 0..20 {
        if round(&lab, &mut check) == 0 {
            settled = true;
            break;
        }
    }
    assert!(settled, "still changing after 20 rounds");
    assert_eq!(started, ["alpha", "beta"]);
    assert!(
        both_seen > 0,
        "no reconcile ended with an old and a new container"
    );

    let after = appliances(&lab);
    assert_eq!(after.len(), 4, "{after:#?}");
    for (part, c) in &after {
        assert_eq!(c.len(), 1, "{part:?}: {c:#?}");
        let (old, new) = (&before[part][0], &c[0]);
        assert_eq!(new.version, NEW, "{part:?}");
        assert!(new.running, "{part:?}");
        assert_ne!(new.vmid, old.vmid, "{part:?} was not replaced");
        // Same addresses, same MAC addresses.
        assert_eq!(new.nics, old.nics, "{part:?}");
        assert!(new.nics[0].contains("hwaddr="), "{:?}", new.nics);
    }
    assert_eq!(after[&("alpha".into(), "gateway".into())][0].nics.len(), 2);
    assert_eq!(address_outputs(&lab), addresses_before);
    assert_eq!(lab.address_holdings(), holdings_before);
    for sector in SECTORS {
        let st = status(&lab, sector);
        assert!(st.is_ready(), "{st:#?}");
        for role in ROLES {
            let line = &st.outputs[&format!("{role}/upgrade")];
            assert!(
                line.starts_with(&format!("{APPLIANCE_VERSION} → {NEW} in "))
                    && line.contains(" s interruption at "),
                "{sector} {role}: {line}"
            );
            assert_eq!(
                st.outputs[&format!("{role}/version")],
                NEW,
                "{sector} {role}"
            );
        }
    }

    // A memory change afterwards: one config update per running container.
    api.apply(codec::decode("appliances.yaml", &manifests(256)).unwrap())
        .unwrap();
    lab.converge_as_agents("pve1");
    let resized = appliances(&lab);
    for (part, c) in &resized {
        assert_eq!(c.len(), 1, "{part:?}");
        assert_eq!(c[0].vmid, after[part][0].vmid, "{part:?} was replaced");
        assert_eq!(c[0].memory, "256", "{part:?}");
        assert!(c[0].running, "{part:?}");
    }
    let puts: Vec<(String, String)> = lab
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.params.contains_key("memory"))
        .map(|r| (r.path, r.params["memory"].clone()))
        .collect();
    assert_eq!(puts.len(), 4, "{puts:#?}");
    assert!(puts.iter().all(|(_, m)| m == "256"), "{puts:#?}");
    for sector in SECTORS {
        let st = status(&lab, sector);
        assert!(st.is_ready(), "{st:#?}");
        for role in ROLES {
            let line = &st.outputs[&format!("set/{role}/memory")];
            assert!(line.starts_with("256 (was 128) at "), "{line}");
        }
    }

    // Every request was accepted: the simulator refuses any the schema
    // of this Proxmox version refuses.
    let requests = lab.sim.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/lxc"))
    );
    let refused: Vec<_> = requests.iter().filter(|r| r.status >= 400).collect();
    assert!(refused.is_empty(), "{refused:#?}");
}

#[test]
fn upgrade_one_sector_at_a_time_on_pve_8_4() {
    upgrade_end_to_end(PveVersion::V8_4);
}

#[test]
fn upgrade_one_sector_at_a_time_on_pve_9_1() {
    upgrade_end_to_end(PveVersion::V9_1);
}
