//! End to end on a simulated 3-node cluster: `orbitlab init`, two Sectors
//! with the same CIDR, both Ready, then one deleted — after which Proxmox
//! and IPAM hold exactly what the other needs.

use std::collections::BTreeSet;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::reconcile::{init::init, tags};
use orbitlab_manifests::Kind;
use orbitlab_tests::{Lab, NODES};
use serde_json::Value;

fn ids(objects: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    objects.keys().cloned().collect()
}

fn create_sector(api: &Api, name: &str, cidr: &str) {
    let props = PropertyValue::from_pairs([("name", name), ("cidr", cidr)]).unwrap();
    api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
}

fn phase(api: &Api, path: &str) -> String {
    let view = api.get(&path.parse::<ApiPath>().unwrap()).unwrap();
    let conditions = view["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let holds = |t: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == t && c["status"] == true)
    };
    if holds("Failed") {
        format!("Failed: {}", view["status"])
    } else if holds("Ready") {
        "Ready".into()
    } else {
        format!("not ready: {}", view["status"])
    }
}

#[test]
fn init_two_overlapping_sectors_then_delete_one() {
    let lab = Lab::new();
    let host = lab.host("pve1");
    let reconciler = lab.reconciler(&host);
    let (cluster, _report) = init(&reconciler, None).expect("init succeeds");
    let api = Api::new(lab.store.clone());
    lab.converge();
    assert_eq!(phase(&api, "/cluster"), "Ready");

    // The Backplane as the design says.
    let snapshot = lab.sim.snapshot();
    let running = &snapshot["sdn"]["running"];
    let controller = &running["controllers"]["orbitlab"];
    assert_eq!(controller["type"], "evpn");
    assert_eq!(controller["asn"], 65001);
    let zone = &running["zones"]["olbp"];
    assert_eq!(zone["vrf-vxlan"], 10);
    assert_eq!(zone["mtu"], 1450);
    assert_eq!(running["vnets"]["olbpnet"]["tag"], 100);

    // Running init again changes nothing.
    lab.sim.clear_requests();
    let (again, report) = init(&reconciler, None).expect("a second init succeeds");
    assert_eq!(again, cluster);
    assert_eq!(report.steps, 0);
    assert!(
        lab.sim.requests().iter().all(|r| r.method == "GET"),
        "a second init wrote to Proxmox"
    );

    create_sector(&api, "web", "172.16.0.0/24");
    create_sector(&api, "shop", "172.16.0.0/24");
    lab.converge();
    assert_eq!(phase(&api, "/sectors/web"), "Ready");
    assert_eq!(phase(&api, "/sectors/shop"), "Ready");

    let snapshot = lab.sim.snapshot();
    let running = &snapshot["sdn"]["running"];
    assert_eq!(
        ids(running["zones"].as_object().unwrap()),
        ["olbp", "olz1001", "olz1002"].map(String::from).into()
    );
    for zone in ["olz1001", "olz1002"] {
        assert_eq!(running["zones"][zone]["type"], "vxlan");
        assert_eq!(running["zones"][zone]["mtu"], 1450);
    }
    assert_eq!(
        snapshot["guests"].as_object().unwrap().len(),
        4,
        "gateway and DNS per Sector"
    );
    let log = lab.sim.pct_log();
    assert_eq!(log.len(), 4, "every container was configured");
    let gateways: Vec<_> = log
        .values()
        .filter(|r| r.files.contains_key("/etc/nftables.conf"))
        .collect();
    assert_eq!(gateways.len(), 2);
    for gateway in gateways {
        let frr = &gateway.files["/etc/frr/frr.conf"].content;
        assert!(frr.contains("ip address 172.16.0.1/24"), "{frr}");
        assert!(frr.contains("ip route 0.0.0.0/0 10.200.0.1"), "{frr}");
    }
    // Each configuration went in as one bundle through the appliance's
    // helper: prepared, staged (the simulator's helper moved the files in
    // place, checked against the MANIFEST), applied; nothing else was run.
    for record in log.values() {
        let [prepare, apply] = record.commands.as_slice() else {
            panic!("{:?}", record.commands);
        };
        assert_eq!(prepare[..2], ["/usr/sbin/orbitlab-appliance", "prepare"]);
        assert_eq!(apply[..2], ["/usr/sbin/orbitlab-appliance", "apply"]);
        assert_eq!(prepare[2], apply[2], "one bundle id");
        assert!(
            record
                .files
                .keys()
                .all(|p| !p.starts_with("/var/lib/orbitlab/staging")),
            "{:?}",
            record.files.keys()
        );
    }

    // Delete one Sector: everything it had goes, the other stays whole.
    let web_status =
        api.get(&"/sectors/web".parse().unwrap()).unwrap()["status"]["outputs"].clone();
    api.delete(&"/sectors/web".parse().unwrap(), false).unwrap();
    lab.converge();
    let snapshot = lab.sim.snapshot();
    let running = &snapshot["sdn"]["running"];
    let web_tag: u32 = web_status["vnet/tag"].as_str().unwrap().parse().unwrap();
    let shop_tag = 2003 - web_tag;
    assert_eq!(
        ids(running["zones"].as_object().unwrap()),
        ["olbp".to_string(), format!("olz{shop_tag}")].into()
    );
    assert_eq!(
        ids(running["vnets"].as_object().unwrap()),
        ["olbpnet".to_string(), format!("olvn{shop_tag}")].into()
    );
    let subnet_vnets: BTreeSet<String> = running["subnets"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["vnet"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        subnet_vnets,
        ["olbpnet".to_string(), format!("olvn{shop_tag}")].into()
    );
    assert!(
        snapshot["sdn"]["current"] == snapshot["sdn"]["running"],
        "SDN changes left pending"
    );
    let guests = snapshot["guests"].as_object().unwrap();
    assert_eq!(guests.len(), 2);
    for guest in guests.values() {
        assert!(
            guest["config"]["description"]
                .as_str()
                .unwrap()
                .contains("orbitlab:sector/shop/")
        );
    }
    let tags = tags::read(&lab.store).unwrap();
    assert_eq!(
        tags.into_iter().collect::<Vec<_>>(),
        [(shop_tag, "shop".to_string())]
    );
    let observed = orbitlab_engine::reconcile::observe(&lab.pve, &lab.store, "vmbr0").unwrap();
    assert!(
        observed
            .addresses
            .keys()
            .all(|owner| !owner.as_str().starts_with("sector/web/")),
        "{:?}",
        observed.addresses
    );
    assert!(
        lab.store
            .read_status(Kind::Sector, &"web".parse().unwrap())
            .unwrap()
            .is_none()
    );
    assert_eq!(phase(&api, "/sectors/shop"), "Ready");
    let _ = NODES;
}

/// A declared ingress rule whose target instance is not running keeps the
/// Sector from being Ready, with the rule and the instance named; once the
/// rule points at an address, the Sector is Ready.
#[test]
fn an_ingress_rule_without_a_target_keeps_the_sector_from_ready() {
    let lab = Lab::new();
    let host = lab.host("pve1");
    init(&lab.reconciler(&host), None).expect("init succeeds");
    let api = Api::new(lab.store.clone());
    let apply = |yaml: &str| {
        let documents = orbitlab_manifests::codec::decode("test.yaml", yaml).unwrap();
        api.apply(documents).unwrap();
    };
    let sector = |ingress: &str| {
        format!(
            "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: web\nspec:\n  cidr: 172.16.0.0/24\n  ingress:\n{ingress}"
        )
    };
    let to_instance =
        "    - name: https\n      protocol: tcp\n      port: 443\n      to_instance: web-1\n";
    let to_address = "    - name: ssh\n      protocol: tcp\n      port: 2222\n      to_address: 172.16.0.10\n      to_port: 22\n";
    let lxc = "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: web-1\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n  state: stopped\n";
    apply(&format!(
        "{}---\n{lxc}",
        sector(&format!("{to_instance}{to_address}"))
    ));
    lab.converge();
    let status = phase(&api, "/sectors/web");
    assert!(status.starts_with("Failed"), "{status}");
    assert!(
        status.contains("ingress rule https") && status.contains("instance web-1"),
        "{status}"
    );
    // The rule with a target is pushed all the same.
    let log = lab.sim.pct_log();
    let ruleset = log
        .values()
        .find_map(|r| r.files.get("/etc/nftables.conf"))
        .map(|f| f.content.clone())
        .expect("the gateway was configured");
    assert!(ruleset.contains("172.16.0.10"), "{ruleset}");

    apply(&format!("{}---\n{lxc}", sector(to_address)));
    lab.converge();
    assert_eq!(phase(&api, "/sectors/web"), "Ready");
}
