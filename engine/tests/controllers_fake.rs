//! The planner and the controllers driven end to end against `FakePve`, in
//! the situations a real cluster produces and a happy-path test never
//! meets: SDN changes someone else left pending (never applied by
//! OrbitLab), zones and containers changed by hand (drift repaired), a node
//! going offline between planning and executing, configuration that must
//! be pushed again into a gateway (and only then), and an ingress rule
//! whose target instance is missing (the Sector is blocked, the other
//! rules are still pushed), and appliances whose health probe is missing,
//! stale, unhealthy or cannot run (the Sector is not Ready, and says why).
//!
//! Every test starts from `orbitlab init` on a fake three-node 9.x
//! cluster, with the store in a temporary directory and manifests written
//! through the API. What happens outside OrbitLab is played through
//! `FakePve`'s hooks; a `Host` fake records what is pushed into which
//! container, for every node's agent.

mod fake_world;

use std::collections::BTreeSet;
use std::time::Duration;

use fake_world::{Push, World, assert_ready, not_ready};
use orbitlab_engine::pve::{ApiErrorKind, Pve, SdnKind};
use orbitlab_engine::reconcile::{Action, Context, execute};
use serde_json::json;

/// `web` (172.16.0.0/24, tag 1001) reconciled to Ready; both its containers
/// are placed on `pve1`.
fn with_web() -> World {
    let world = World::new();
    world.create_sector("web", "172.16.0.0/24");
    world.settle();
    assert_ready(&world, "web");
    assert_eq!(world.output("web", "gateway/node"), "pve1");
    assert_eq!(world.output("web", "dns/node"), "pve1");
    world.forget_calls_and_pushes();
    world
}

// 1. Foreign pending SDN changes.

#[test]
fn a_foreign_pending_zone_blocks_new_sectors_and_is_never_applied_by_orbitlab() {
    // A lowercase id, an uppercase one (Proxmox allows both), and one
    // longer than the ids OrbitLab knows (another release may allow it):
    // each is seen, and blocks.
    for zone in ["lab", "Lab", "longzone1"] {
        foreign_pending_zone_blocks(zone);
    }
}

fn foreign_pending_zone_blocks(foreign: &str) {
    let world = with_web();
    world
        .pve
        .create_sdn_by_hand(SdnKind::Zone, foreign, json!({"type": "simple"}));

    world.create_sector("api", "172.17.0.0/24");
    let report = world.settle();

    let (reason, message) = not_ready(&world, "api");
    assert_eq!(reason, "Blocked");
    assert!(message.contains(&format!("zone {foreign}")), "{message}");
    assert!(report.failed.keys().any(|o| o.name.as_ref() == "api"));
    let sdn_writes: Vec<String> = world
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("sdn_"))
        .collect();
    assert!(sdn_writes.is_empty(), "{sdn_writes:?}");
    assert!(world.pve.has_pending(), "the foreign change stays pending");
    assert!(world.pve.running(SdnKind::Zone, None, foreign).is_none());
    assert!(world.writes().is_empty(), "{:?}", world.writes());
    assert_ready(&world, "web");

    // The administrator applies their change: OrbitLab goes on.
    world.pve.apply_sdn_by_hand();
    world.settle();
    assert_ready(&world, "api");
    assert_ready(&world, "web");
    let zone = world.output("api", "zone/id");
    assert!(world.pve.running(SdnKind::Zone, None, &zone).is_some());
    assert!(!world.pve.has_pending());
}

// 2. Drift: a zone or a container changed by hand.

#[test]
fn a_sector_zone_changed_by_hand_is_restored_with_one_apply() {
    let world = with_web();
    let before = world
        .pve
        .running(SdnKind::Zone, None, "olz1001")
        .expect("the zone is applied");
    world
        .pve
        .edit_sdn_by_hand(SdnKind::Zone, None, "olz1001", "mtu", json!(1400));
    world.pve.edit_sdn_by_hand(
        SdnKind::Zone,
        None,
        "olz1001",
        "peers",
        json!("192.168.100.11"),
    );
    world.pve.apply_sdn_by_hand();
    assert_eq!(
        world.pve.running(SdnKind::Zone, None, "olz1001").unwrap()["mtu"],
        1400
    );

    world.settle();

    assert_eq!(
        world.writes(),
        ["sdn_lock", "sdn_update_zone olz1001 lock", "sdn_apply lock"]
    );
    let after = world.pve.running(SdnKind::Zone, None, "olz1001").unwrap();
    assert_eq!(after["mtu"], before["mtu"]);
    assert_eq!(after["peers"], before["peers"]);
    assert!(!world.pve.has_pending());
    assert_ready(&world, "web");
}

#[test]
fn a_container_stopped_by_hand_is_started_again() {
    let world = with_web();
    let dns = world.vmid("web", "dns");
    world.pve.stop_by_hand(dns);

    world.settle();

    assert_eq!(world.writes(), [format!("lxc_start pve1 {dns}")]);
    assert!(world.pve.containers()[&dns].2, "running again");
    assert_ready(&world, "web");
}

#[test]
fn a_container_destroyed_by_hand_is_recreated_once_and_configured_again() {
    let world = with_web();
    let old = world.vmid("web", "gateway");
    world.pve.destroy_by_hand(old);
    // Someone takes the freed VMID meanwhile: the new gateway gets another.
    world.pve.create_by_hand(old, "pve1", "someone-else");

    world.settle();

    let creates: Vec<String> = world
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("lxc_create"))
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    let new = world.vmid("web", "gateway");
    assert_ne!(new, old);
    assert_eq!(creates[0], format!("lxc_create pve1 {new}"));
    assert_eq!(world.named("olvn1001-router"), [new], "never duplicated");
    assert_eq!(
        world.pve.containers()[&old].1.as_deref(),
        Some("someone-else"),
        "the outsider's container is left alone"
    );
    assert_eq!(
        world.pushed_vmids(),
        BTreeSet::from([new]),
        "only the new gateway is configured"
    );
    assert!(
        world
            .pushes()
            .iter()
            .any(|p| p.path == "/etc/nftables.conf")
    );
    assert_ready(&world, "web");
}

#[test]
fn a_container_destroyed_by_hand_and_recreated_under_the_same_vmid_is_configured_again() {
    let world = with_web();
    let old = world.vmid("web", "gateway");
    world.pve.destroy_by_hand(old);

    world.settle();

    // Proxmox's nextid hands out the lowest free VMID: the one just freed.
    let new = world.vmid("web", "gateway");
    assert_eq!(world.named("olvn1001-router"), [new], "never duplicated");
    assert!(
        world.pushed_vmids().contains(&new),
        "the re-created gateway {new} (was {old}) is empty: its configuration must be pushed again; pushed: {:?}",
        world.pushed_vmids()
    );
    assert_ready(&world, "web");
}

// 3. A node going offline mid-plan.

/// The containers a plan creates: (Sector, hostname, node).
fn creates(actions: &[Action]) -> Vec<(String, String, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateContainer(p) => Some((
                p.marker.name.to_string(),
                p.hostname.clone(),
                p.node.to_string(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_going_offline_after_planning_fails_only_its_steps_then_the_sector_moves() {
    let world = World::new();
    world.create_sector("web", "172.16.0.0/24");
    world.create_sector("db", "172.18.0.0/24");
    let rec = world.rec();
    let (plan, observed) = rec.plan().unwrap();
    let planned = creates(&plan.actions);
    let on = |sector: &str| -> BTreeSet<String> {
        planned
            .iter()
            .filter(|(s, _, _)| s == sector)
            .map(|(_, _, n)| n.clone())
            .collect()
    };
    // Test premise: one of db's containers goes to pve2, none of web's.
    assert!(on("db").contains("pve2"), "{planned:?}");
    assert!(!on("web").contains("pve2"), "{planned:?}");

    world.set_online("pve2", false);
    let refused = world.pve.lxc_list("pve2").expect_err("pve2 is unreachable");
    assert_eq!(refused.status(), Some(595));
    assert_eq!(refused.kind(), Some(&ApiErrorKind::Unavailable));
    let outcome = execute(
        &plan,
        &Context {
            pve: &world.pve,
            store: &world.store,
            host: &world.host,
            task_deadline: Duration::from_secs(5),
            lock: None,
        },
        observed.own_pending(),
    );

    let failed: Vec<(String, String)> = outcome
        .failed
        .iter()
        .map(|(o, e)| (o.name.to_string(), e.clone()))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let (object, error) = &failed[0];
    assert_eq!(object, "db");
    assert!(
        error.contains("pve2") && error.contains("No route to host"),
        "{error}"
    );
    for (sector, hostname, _) in &planned {
        if sector == "web" {
            assert_eq!(world.named(hostname).len(), 1, "web's {hostname} created");
        }
    }

    // The next run, pve2 still offline: db is placed on the online nodes.
    world.settle();
    assert_ready(&world, "db");
    assert_ready(&world, "web");
    for role in ["gateway", "dns"] {
        assert_ne!(world.output("db", &format!("{role}/node")), "pve2");
    }
    let on_pve2 = world
        .pve
        .containers()
        .values()
        .filter(|(node, _, _)| node == "pve2")
        .count();
    assert_eq!(on_pve2, 0, "nothing was created on the offline node");
}

#[test]
fn only_the_agent_of_a_containers_node_configures_it() {
    let world = World::new();
    world.create_sector("db", "172.18.0.0/24");

    let report = world.run();

    let gateway = world.vmid("db", "gateway");
    assert_eq!(world.output("db", "gateway/node"), "pve2", "test premise");
    assert!(
        !world.pushed_vmids().contains(&gateway),
        "the cluster-scoped agent on pve1 pushed into pve2's container"
    );
    let waiting = report
        .progressing
        .iter()
        .find(|(o, _)| o.name.as_ref() == "db")
        .map(|(_, why)| why.clone())
        .unwrap_or_else(|| panic!("db is not waiting: {report:?}"));
    assert!(waiting.contains("pve2"), "{waiting}");
    let (reason, message) = not_ready(&world, "db");
    assert_eq!(reason, "Waiting");
    assert!(message.contains("pve2"), "{message}");

    world.run_on("pve2");
    let pushed: Vec<Push> = world
        .pushes()
        .into_iter()
        .filter(|p| p.vmid == gateway)
        .collect();
    assert!(!pushed.is_empty(), "pve2's agent configured its container");
    assert!(pushed.iter().all(|p| p.node == "pve2"));

    world.settle();
    assert_ready(&world, "db");
}

// 4. Gateway configuration pushed again, and only when needed.

const WEB_WITH_INGRESS: &str = "apiVersion: orbitlab.io/v1
kind: Sector
metadata:
  name: web
spec:
  cidr: 172.16.0.0/24
  ingress:
    - name: http
      protocol: tcp
      port: 8080
      to_address: 172.16.0.10
      to_port: 80
";

#[test]
fn a_new_ingress_rule_is_pushed_into_the_gateway_only() {
    let world = with_web();
    let (gateway, dns) = (world.vmid("web", "gateway"), world.vmid("web", "dns"));

    world.apply(WEB_WITH_INGRESS);
    world.settle();

    assert_eq!(
        world.pushed_vmids(),
        BTreeSet::from([gateway]),
        "not the DNS {dns}"
    );
    let nft = world
        .pushes()
        .into_iter()
        .find(|p| p.path == "/etc/nftables.conf")
        .expect("the gateway's nftables file was pushed");
    assert!(nft.content.contains("dport 8080"), "{}", nft.content);
    assert!(world.writes().is_empty(), "{:?}", world.writes());
    assert_ready(&world, "web");
}

#[test]
fn a_lost_push_record_pushes_again_and_an_unchanged_world_pushes_nothing() {
    let world = with_web();
    let (gateway, dns) = (world.vmid("web", "gateway"), world.vmid("web", "dns"));

    let record = world.pushed_record(dns);
    std::fs::remove_file(&record).expect("the DNS's push was recorded");
    world.settle();
    assert_eq!(
        world.pushed_vmids(),
        BTreeSet::from([dns]),
        "not the gateway {gateway}"
    );
    assert!(record.exists(), "recorded again");
    assert_ready(&world, "web");

    world.forget_calls_and_pushes();
    world.settle();
    assert!(world.pushes().is_empty(), "{:?}", world.pushes());
    assert!(world.writes().is_empty(), "{:?}", world.writes());
    assert_ready(&world, "web");
}

// 5. An ingress rule whose target is missing.

const WEB_WITH_MISSING_TARGET: &str = "apiVersion: orbitlab.io/v1
kind: Sector
metadata:
  name: web
spec:
  cidr: 172.16.0.0/24
  ingress:
    - name: https
      protocol: tcp
      port: 443
      to_instance: shop
    - name: ssh
      protocol: tcp
      port: 2222
      to_address: 172.16.0.10
      to_port: 22
---
apiVersion: orbitlab.io/v1
kind: Lxc
metadata:
  name: shop
spec:
  sector: web
  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst
  # No value was ever set for it: the instance cannot be made.
  password: rootpw
---
apiVersion: orbitlab.io/v1
kind: Secret
metadata:
  name: rootpw
spec: {}
";

#[test]
fn an_ingress_rule_without_its_instance_blocks_the_sector_but_not_the_other_rules() {
    let world = World::new();
    world.apply(WEB_WITH_MISSING_TARGET);

    let report = world.settle();

    let (reason, message) = not_ready(&world, "web");
    assert_eq!(reason, "Blocked");
    assert!(
        message.contains("ingress rule https") && message.contains("instance shop"),
        "{message}"
    );
    assert!(report.failed.keys().any(|o| o.name.as_ref() == "web"));
    let nft = world
        .pushes()
        .into_iter()
        .rfind(|p| p.path == "/etc/nftables.conf")
        .expect("the gateway was configured");
    assert!(nft.content.contains("dport 2222"), "{}", nft.content);
    assert!(!nft.content.contains("dport 443"), "{}", nft.content);
    assert_eq!(world.named("olvn1001-router").len(), 1);
}

#[test]
fn a_node_back_online_leaves_one_container_per_part() {
    let world = World::new();
    world.create_sector("db", "172.18.0.0/24");
    world.settle();
    assert_ready(&world, "db");
    assert_eq!(world.output("db", "gateway/node"), "pve2", "test premise");
    let gateway = world.vmid("db", "gateway");
    world.forget_calls_and_pushes();

    // pve2 goes down: its gateway is reported, not made again elsewhere
    // (a gateway must never exist twice), and the Backplane and the
    // Sector's zone keep pve2 as a peer (membership, not who is online).
    world.set_online("pve2", false);
    world.settle();
    world.settle();
    let (reason, message) = not_ready(&world, "db");
    assert_eq!(reason, "Unavailable");
    assert!(
        message.contains("pve2") && message.contains("offline"),
        "{message}"
    );
    assert_eq!(
        world.output("db", "gateway/node"),
        "pve2",
        "still on record"
    );
    assert_eq!(world.vmid("db", "gateway"), gateway);
    assert!(world.writes().is_empty(), "{:?}", world.writes());

    // pve2 returns with the gateway it had: Ready again, nothing written.
    world.set_online("pve2", true);
    world.settle();
    assert_ready(&world, "db");
    assert_eq!(world.named("olvn1001-router"), [gateway]);
    assert!(world.writes().is_empty(), "{:?}", world.writes());
}

// A Node manifest's uplink bridge is the one its Backplane peer address
// comes from.

#[test]
fn a_node_manifest_uplink_bridge_gives_that_nodes_peer_address() {
    let world = World::new();
    world.apply(
        "apiVersion: orbitlab.io/v1\nkind: Node\nmetadata:\n  name: pve2\nspec:\n  uplink_bridge: vmbr1\n",
    );
    world.create_sector("web", "172.16.0.0/24");
    world.settle();
    let zone = world
        .pve
        .running(SdnKind::Zone, None, "olz1001")
        .expect("the Sector's zone is applied");
    let peers = zone["peers"].as_str().unwrap_or_default().to_owned();
    assert!(peers.contains("10.99.0.12"), "{peers}");
    assert!(!peers.contains("192.168.100.12"), "{peers}");
    assert!(peers.contains("192.168.100.11"), "{peers}");
}

// A Sector deleted while its gateway's node is down keeps its network,
// tag and addresses until the node returns (another Sector must not take
// them while the gateway still exists), then goes entirely.

#[test]
fn a_sector_deleted_while_its_gateways_node_is_down_waits_for_the_node() {
    let world = World::new();
    world.create_sector("db", "172.18.0.0/24");
    world.settle();
    assert_eq!(world.output("db", "gateway/node"), "pve2", "test premise");
    let tags_before = orbitlab_engine::reconcile::tags::read(&world.store).unwrap();

    world.set_online("pve2", false);
    orbitlab_engine::api::Api::new(world.store.clone())
        .delete(&"/sectors/db".parse().unwrap(), false)
        .unwrap();
    world.forget_calls_and_pushes();
    world.settle();
    let (reason, message) = not_ready(&world, "db");
    assert_eq!(reason, "Unavailable");
    assert!(message.contains("pve2"), "{message}");
    assert!(world.writes().is_empty(), "{:?}", world.writes());
    assert_eq!(
        orbitlab_engine::reconcile::tags::read(&world.store).unwrap(),
        tags_before,
        "the tag is kept"
    );

    world.set_online("pve2", true);
    world.settle();
    world.settle();
    assert!(world.named("olvn1001-router").is_empty());
    assert!(world.named("olvn1001-dns").is_empty());
    assert!(
        orbitlab_engine::reconcile::tags::read(&world.store)
            .unwrap()
            .is_empty()
    );
    assert!(
        world
            .store
            .read_status(orbitlab_manifests::Kind::Sector, &"db".parse().unwrap())
            .unwrap()
            .is_none()
    );
}

// 6. The appliances' health probe.

/// The Ready condition's (reason, message) and the Progressing condition.
fn conditions(world: &World, sector: &str) -> (String, String, bool) {
    let status = world.status(sector);
    let (reason, message) = not_ready(world, sector);
    let progressing = status
        .condition(orbitlab_engine::status::ConditionType::Progressing)
        .is_some_and(|c| c.status);
    (reason, message, progressing)
}

#[test]
fn a_sector_is_ready_only_once_both_appliances_answered_healthy() {
    let world = World::new();
    world.create_sector("web", "172.16.0.0/24");
    // pve1's reconciler alone: configured, but nobody probed yet.
    let report = world.rec().run().unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(world.output("web", "gateway/node"), "pve1", "test premise");
    let (reason, message, progressing) = conditions(&world, "web");
    assert_eq!(reason, "Waiting");
    assert!(progressing);
    assert!(
        message.contains("waiting for the gateway's health probe") && message.contains("node pve1"),
        "{message}"
    );
    assert_eq!(world.output("web", "gateway/health"), "waiting for a probe");

    assert!(world.probe("pve1"), "the answers are new");
    world.rec().run().unwrap();
    assert_ready(&world, "web");
    for role in ["gateway", "dns"] {
        assert_eq!(world.output("web", &format!("{role}/health")), "healthy");
        let vmid = world.vmid("web", role);
        let digest = world.output("web", &format!("config/{vmid}"));
        let bundle = world.output("web", &format!("{role}/bundle"));
        assert!(bundle.starts_with(&digest[..16]), "{bundle} runs {digest}");
        assert!(
            world
                .output("web", &format!("{role}/probed"))
                .ends_with('Z')
        );
    }
    assert!(!world.probe("pve1"), "the same answers again");
}

#[test]
fn an_unhealthy_appliance_keeps_the_sector_from_ready_with_its_problems() {
    let world = with_web();
    let dns = world.vmid("web", "dns");
    world.set_problems(dns, &["dnsmasq.service is failed", "no default route"]);
    let report = world.run();

    let (reason, message, progressing) = conditions(&world, "web");
    assert_eq!(reason, "Unavailable");
    assert!(!progressing);
    assert!(
        message.contains(&format!(
            "the dns (container {dns} on node pve1) is unhealthy: dnsmasq.service is failed; no default route"
        )),
        "{message}"
    );
    assert_eq!(
        world.output("web", "dns/health"),
        "unhealthy: dnsmasq.service is failed; no default route"
    );
    assert_eq!(world.output("web", "gateway/health"), "healthy");
    assert_eq!(world.status("web").phase(), "Unavailable");
    // Nothing of OrbitLab's repairs it: no failed object, no retry.
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(world.pushes().is_empty() && world.writes().is_empty());

    world.set_problems(dns, &[]);
    world.run();
    assert_ready(&world, "web");
}

#[test]
fn a_probe_of_the_bundle_before_the_last_push_leaves_the_sector_progressing() {
    let world = with_web();
    let gateway = world.vmid("web", "gateway");
    let before = world.output("web", "gateway/bundle");
    world.apply(WEB_WITH_INGRESS);
    // The new bundle is pushed; the gateway's last probe saw the old one.
    world.rec().run().unwrap();
    assert!(world.pushed_vmids().contains(&gateway));
    let (reason, message, progressing) = conditions(&world, "web");
    assert_eq!(reason, "Waiting");
    assert!(progressing);
    assert!(
        message.contains("waiting for the gateway's health probe")
            && message.contains(&format!(
                "saw bundle {before}, not the configuration last pushed"
            )),
        "{message}"
    );
    assert_eq!(world.output("web", "gateway/health"), "waiting for a probe");

    world.probe("pve1");
    world.rec().run().unwrap();
    assert_ready(&world, "web");
    assert_ne!(world.output("web", "gateway/bundle"), before);
}

#[test]
fn a_probe_that_cannot_run_or_answers_garbage_is_reported() {
    let world = with_web();
    let (gateway, dns) = (world.vmid("web", "gateway"), world.vmid("web", "dns"));
    world.helpers.lock().unwrap().unreachable.insert(gateway);
    world.run();
    let (reason, message, _) = conditions(&world, "web");
    assert_eq!(reason, "Unavailable");
    assert!(
        message.contains(&format!(
            "the gateway (container {gateway} on node pve1) could not be probed"
        )) && message.contains("is locked (backup)"),
        "{message}"
    );
    assert!(!message.contains("pct exec"), "no command line: {message}");
    assert!(
        world
            .output("web", "gateway/health")
            .starts_with("probe failed: the health probe could not run"),
        "{}",
        world.output("web", "gateway/health")
    );

    {
        let mut helpers = world.helpers.lock().unwrap();
        helpers.unreachable.clear();
        helpers
            .garbage
            .insert(dns, "Segmentation fault (core dumped)\n".into());
    }
    world.run();
    let (reason, message, _) = conditions(&world, "web");
    assert_eq!(reason, "Unavailable");
    assert!(
        message.contains(&format!(
            "the dns (container {dns} on node pve1) could not be probed"
        )) && message.contains("other than its JSON answer")
            && message.contains("Segmentation fault (core dumped)"),
        "{message}"
    );
    assert_eq!(world.output("web", "gateway/health"), "healthy");

    world.helpers.lock().unwrap().garbage.clear();
    world.run();
    assert_ready(&world, "web");
}

#[test]
fn a_containers_health_is_what_the_agent_of_its_node_says() {
    let world = World::new();
    world.create_sector("db", "172.18.0.0/24");
    world.settle();
    assert_ready(&world, "db");
    let gateway = world.vmid("db", "gateway");
    assert_eq!(world.output("db", "gateway/node"), "pve2", "test premise");
    // pve1's agent cannot speak for pve2's container: its (made-up) word
    // that the gateway is sick changes nothing.
    let mut probes = orbitlab_engine::liveness::probes_by_node(&world.store)
        .unwrap()
        .remove("pve1")
        .unwrap_or_default();
    probes.insert(
        gateway,
        orbitlab_engine::host::health::ApplianceProbe::failed("made up", 1),
    );
    orbitlab_engine::liveness::record_probes(&world.store, "pve1", probes).unwrap();
    world.rec().run().unwrap();
    assert_ready(&world, "db");
    // pve2's agent finding it sick does.
    world.set_problems(gateway, &["frr.service is failed"]);
    assert!(world.probe("pve2"));
    world.rec().run().unwrap();
    let (reason, message, _) = conditions(&world, "db");
    assert_eq!(reason, "Unavailable");
    assert!(
        message.contains("on node pve2) is unhealthy: frr.service is failed"),
        "{message}"
    );
}
