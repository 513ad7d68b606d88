//! Instances (`kind: Lxc`) driven end to end against `FakePve` on a fake
//! three-node cluster: placement by policy, addresses and names, changes
//! in place (cores, memory, disk up; a shrink refused), power, drift made
//! by hand (reported and restored), delete with the address reused, a
//! `to_instance` ingress rule, HA, a node going offline (nothing made
//! twice), and references the vault cannot satisfy.

mod fake_world;

use std::collections::{BTreeMap, BTreeSet};

use fake_world::World;
use orbitlab_engine::pve::Pve;
use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_manifests::Kind;

const TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

/// An Lxc manifest in Sector `web` with extra spec lines.
fn lxc(name: &str, extra: &str) -> String {
    let mut yaml = format!(
        "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: {name}\nspec:\n  sector: web\n  template: {TEMPLATE}\n"
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str(&format!("  {line}\n"));
    }
    yaml
}

fn status(world: &World, name: &str) -> ObjectStatus {
    world.status_of(Kind::Lxc, name)
}

fn output(world: &World, name: &str, key: &str) -> String {
    let s = status(world, name);
    s.outputs
        .get(key)
        .cloned()
        .unwrap_or_else(|| panic!("no output {key} in {s:#?}"))
}

fn assert_instance_ready(world: &World, name: &str) {
    let s = status(world, name);
    assert!(s.is_ready(), "Lxc {name} is not Ready: {s:#?}");
}

/// (reason, message) of an instance that must not be Ready.
fn not_ready(world: &World, name: &str) -> (String, String) {
    let s = status(world, name);
    let ready = s
        .condition(ConditionType::Ready)
        .expect("a Ready condition");
    assert!(!ready.status, "Lxc {name} is Ready: {s:#?}");
    (ready.reason.clone(), ready.message.clone())
}

/// A container's config key as Proxmox stores it.
fn config(world: &World, name: &str, key: &str) -> Option<String> {
    let vmid: u32 = output(world, name, "vmid").parse().unwrap();
    let node = output(world, name, "node");
    world.pve.lxc_config(&node, vmid).unwrap().get(key)
}

/// `web` Ready with its gateway and DNS; nothing recorded yet.
fn with_web() -> World {
    let world = World::new();
    world.create_sector("web", "172.16.0.0/24");
    world.settle();
    fake_world::assert_ready(&world, "web");
    world.forget_calls_and_pushes();
    world
}

/// Containers carrying the marker of instance `name`.
fn containers_named(world: &World, name: &str) -> usize {
    world.named(name).len()
}

#[test]
fn six_instances_spread_over_the_nodes_with_addresses_names_and_dns() {
    let world = with_web();
    let names = ["a1", "a2", "a3", "a4", "a5", "a6"];
    let yaml: Vec<String> = names.iter().map(|n| lxc(n, "")).collect();
    world.apply(&yaml.join("---\n"));
    world.settle();
    world.settle();

    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut addresses = BTreeSet::new();
    let mut vmids = BTreeSet::new();
    for name in names {
        assert_instance_ready(&world, name);
        assert_eq!(containers_named(&world, name), 1, "{name} made once");
        *per_node.entry(output(&world, name, "node")).or_default() += 1;
        assert!(addresses.insert(output(&world, name, "address")));
        assert!(vmids.insert(output(&world, name, "vmid")));
        assert_eq!(
            output(&world, name, "fqdn"),
            format!("{name}.web.orbitlab.internal")
        );
        let net0 = config(&world, name, "net0").expect("net0");
        assert!(net0.contains("bridge=olvn1001"), "{net0}");
        assert!(net0.contains("gw=172.16.0.1"), "{net0}");
        assert!(net0.contains("mtu="), "{net0}");
        assert!(
            net0.contains(&format!("ip={}/24", output(&world, name, "address"))),
            "{net0}"
        );
        assert_eq!(
            config(&world, name, "nameserver").as_deref(),
            Some("172.16.0.2")
        );
        assert_eq!(
            config(&world, name, "searchdomain").as_deref(),
            Some("web.orbitlab.internal")
        );
        assert_eq!(config(&world, name, "unprivileged").as_deref(), Some("1"));
    }
    // Spread: two per node.
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{per_node:?}"
    );
    // No address is a reserved one (.1 gateway, .2 DNS, .3-.9).
    for addr in &addresses {
        let last: u8 = addr.rsplit('.').next().unwrap().parse().unwrap();
        assert!(last >= 10, "{addr}");
    }
    // The Sector DNS knows every instance.
    let zone = world
        .pushes()
        .into_iter()
        .rev()
        .find(|p| p.path.ends_with("dns.hosts"))
        .expect("the DNS configuration was pushed");
    for name in names {
        assert!(
            zone.content
                .contains(&format!("{name}.web.orbitlab.internal")),
            "{name} missing from {}",
            zone.content
        );
    }
    // Nothing left to do.
    world.forget_calls_and_pushes();
    world.settle();
    assert!(world.writes().is_empty(), "{:?}", world.writes());
}

#[test]
fn cores_memory_and_disk_change_in_place_and_a_shrink_is_refused() {
    let world = with_web();
    world.apply(&lxc("app", ""));
    world.settle();
    assert_instance_ready(&world, "app");
    let vmid = output(&world, "app", "vmid");

    world.apply(&lxc("app", "cores: 2\nmemory: 1024\ndisk: 12"));
    world.settle();
    assert_instance_ready(&world, "app");
    assert_eq!(output(&world, "app", "vmid"), vmid, "changed in place");
    assert_eq!(config(&world, "app", "cores").as_deref(), Some("2"));
    assert_eq!(config(&world, "app", "memory").as_deref(), Some("1024"));
    let rootfs = config(&world, "app", "rootfs").unwrap();
    assert!(rootfs.contains("size=12G"), "{rootfs}");
    assert!(
        world.writes().iter().any(|w| w.starts_with("lxc_resize")),
        "{:?}",
        world.writes()
    );

    world.apply(&lxc("app", "cores: 2\nmemory: 1024\ndisk: 4"));
    world.settle();
    let (reason, message) = not_ready(&world, "app");
    assert_eq!(reason, "Blocked");
    assert!(
        message.contains("spec.disk") && message.contains("cannot shrink"),
        "{message}"
    );
    let rootfs = config(&world, "app", "rootfs").unwrap();
    assert!(rootfs.contains("size=12G"), "unchanged: {rootfs}");
}

#[test]
fn a_change_of_what_a_container_is_made_with_is_refused_with_what_to_do() {
    let world = with_web();
    world.apply(&lxc("app", ""));
    world.settle();
    assert_instance_ready(&world, "app");
    let vmid = output(&world, "app", "vmid");
    world.apply(
        &[
            lxc("app", "ssh_keys: [deploy]").replace(
                TEMPLATE,
                "local:vztmpl/debian-13-standard_13.1-1_amd64.tar.zst",
            ),
            "apiVersion: orbitlab.io/v1\nkind: SshKey\nmetadata:\n  name: deploy\nspec: {}\n"
                .into(),
        ]
        .join("---\n"),
    );
    world.forget_calls_and_pushes();
    world.settle();
    let (reason, message) = not_ready(&world, "app");
    assert_eq!(reason, "Blocked");
    for needle in [
        "spec.template is local:vztmpl/debian-13-standard_13.1-1_amd64.tar.zst, the container was made with local:vztmpl/debian-12",
        "delete the instance and apply it again",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert_eq!(output(&world, "app", "vmid"), vmid);
    assert!(world.writes().is_empty(), "{:?}", world.writes());
}

#[test]
fn state_stopped_stops_it_and_running_starts_it_again() {
    let world = with_web();
    world.apply(&lxc("app", ""));
    world.settle();
    assert_eq!(output(&world, "app", "power"), "running");

    world.apply(&lxc("app", "state: stopped"));
    world.settle();
    assert_instance_ready(&world, "app");
    assert_eq!(output(&world, "app", "power"), "stopped");

    world.apply(&lxc("app", "state: running"));
    world.settle();
    assert_instance_ready(&world, "app");
    assert_eq!(output(&world, "app", "power"), "running");
}

#[test]
fn a_hand_edit_of_an_owned_key_is_reported_and_reverted_and_others_are_left_alone() {
    let world = with_web();
    world.apply(&lxc("app", ""));
    world.settle();
    let vmid: u32 = output(&world, "app", "vmid").parse().unwrap();

    world.pve.edit_config_by_hand(vmid, "memory", "2048");
    world.pve.edit_config_by_hand(vmid, "cpulimit", "1");
    world.settle();

    assert_instance_ready(&world, "app");
    assert_eq!(config(&world, "app", "memory").as_deref(), Some("512"));
    assert_eq!(
        config(&world, "app", "cpulimit").as_deref(),
        Some("1"),
        "a key OrbitLab does not own is left as it is"
    );
    let set = output(&world, "app", "set/memory");
    assert!(set.starts_with("512 (was 2048)"), "{set}");
    // Still reported on the next pass.
    world.settle();
    assert!(output(&world, "app", "set/memory").starts_with("512 (was 2048)"));
}

#[test]
fn a_deleted_instance_frees_its_address_for_the_next_one() {
    let world = with_web();
    world.apply(&lxc("old", ""));
    world.settle();
    let address = output(&world, "old", "address");
    let vmid: u32 = output(&world, "old", "vmid").parse().unwrap();

    orbitlab_engine::api::Api::new(world.store.clone())
        .delete(&"/lxc/old".parse().unwrap(), false)
        .unwrap();
    world.settle();
    assert!(
        !world.pve.containers().contains_key(&vmid),
        "the container is destroyed"
    );
    assert!(
        world
            .store
            .read_status(Kind::Lxc, &"old".parse().unwrap())
            .unwrap()
            .is_none(),
        "its status is removed"
    );

    world.apply(&lxc("new", ""));
    world.settle();
    assert_instance_ready(&world, "new");
    assert_eq!(
        output(&world, "new", "address"),
        address,
        "the address is reused"
    );
}

#[test]
fn a_to_instance_ingress_rule_forwards_to_the_instance_address() {
    let world = with_web();
    let yaml = format!(
        "apiVersion: orbitlab.io/v1
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
---
{}",
        lxc("shop", "")
    );
    world.apply(&yaml);
    world.settle();
    world.settle();
    assert_instance_ready(&world, "shop");
    fake_world::assert_ready(&world, "web");
    let address = output(&world, "shop", "address");
    let nft = world
        .pushes()
        .into_iter()
        .rev()
        .find(|p| p.path == "/etc/nftables.conf")
        .expect("the gateway's ruleset was pushed");
    assert!(
        nft.content.contains(&format!("dnat to {address}")),
        "{}",
        nft.content
    );

    // Stopped, the target forwards to nothing: the Sector says so.
    world.apply(&yaml.replace("template: local", "state: stopped\n  template: local"));
    world.settle();
    let (_, message) = fake_world::not_ready(&world, "web");
    assert!(message.contains("shop is not running"), "{message}");
}

#[test]
fn an_instance_on_an_offline_node_is_waited_for_not_made_again() {
    let world = with_web();
    world.apply(&lxc("app", "node: pve2"));
    world.settle();
    let vmid = output(&world, "app", "vmid");
    assert_eq!(output(&world, "app", "node"), "pve2");

    world.set_online("pve2", false);
    world.settle();
    world.settle();
    let (reason, message) = not_ready(&world, "app");
    assert_eq!(reason, "Unavailable");
    assert!(message.contains("offline"), "{message}");
    assert_eq!(
        containers_named(&world, "app"),
        1,
        "not made again elsewhere"
    );

    world.set_online("pve2", true);
    world.settle();
    assert_instance_ready(&world, "app");
    assert_eq!(output(&world, "app", "vmid"), vmid);
    assert_eq!(containers_named(&world, "app"), 1);
}

#[test]
fn an_ha_instance_on_an_offline_node_is_left_to_ha() {
    let world = with_web();
    world.apply(&lxc("app", "node: pve3\nha:\n  state: started"));
    world.settle();
    assert_instance_ready(&world, "app");
    world.forget_calls_and_pushes();

    world.set_online("pve3", false);
    world.settle();
    let (reason, message) = not_ready(&world, "app");
    assert_eq!(reason, "Unavailable");
    assert!(message.contains("Proxmox HA recovers it"), "{message}");
    assert_eq!(containers_named(&world, "app"), 1, "not made again");
    assert!(
        !world.writes().iter().any(|w| w.starts_with("lxc_create")),
        "{:?}",
        world.writes()
    );

    world.set_online("pve3", true);
    world.settle();
    assert_instance_ready(&world, "app");
    assert_eq!(containers_named(&world, "app"), 1);
}

#[test]
fn an_instance_goes_only_to_a_node_holding_its_template() {
    let world = with_web();
    world.pve.remove_template("pve1", TEMPLATE);
    world.pve.remove_template("pve2", TEMPLATE);
    world.apply(&[lxc("a", ""), lxc("b", ""), lxc("c", "")].join("---\n"));
    world.settle();
    for name in ["a", "b", "c"] {
        assert_instance_ready(&world, name);
        assert_eq!(output(&world, name, "node"), "pve3", "{name}");
    }
    world.apply(&lxc("pinned", "node: pve1"));
    world.settle();
    let (reason, message) = not_ready(&world, "pinned");
    assert_eq!(reason, "Blocked");
    assert!(message.contains("is not on node pve1"), "{message}");

    // A node whose storage cannot be listed is only left out of placement;
    // the rest of the cluster is observed and planned as usual.
    world.pve.fail_storage_listing("pve3");
    world.apply(&lxc("d", ""));
    world.settle();
    let (reason, message) = not_ready(&world, "d");
    assert_eq!(reason, "Blocked");
    assert!(
        message.contains("on no schedulable online node"),
        "{message}"
    );
    for name in ["a", "b", "c"] {
        assert_instance_ready(&world, name);
    }
    fake_world::assert_ready(&world, "web");
}

#[test]
fn an_ha_instance_is_registered_and_removed_with_it() {
    let world = with_web();
    world.apply(&lxc("app", "ha:\n  state: started"));
    world.settle();
    assert_instance_ready(&world, "app");
    let vmid = output(&world, "app", "vmid");
    let sids: Vec<String> = world.pve.ha_resources().into_keys().collect();
    assert_eq!(sids, [format!("ct:{vmid}")]);
    assert_eq!(output(&world, "app", "ha"), "started");

    // A changed HA state is registered again, and kept.
    world.apply(&lxc("app", "state: stopped\nha:\n  state: stopped"));
    world.settle();
    assert_instance_ready(&world, "app");
    assert_eq!(output(&world, "app", "ha"), "stopped");
    world.forget_calls_and_pushes();
    world.settle();
    assert!(world.writes().is_empty(), "{:?}", world.writes());

    orbitlab_engine::api::Api::new(world.store.clone())
        .delete(&"/lxc/app".parse().unwrap(), false)
        .unwrap();
    world.settle();
    assert!(world.pve.ha_resources().is_empty());
    assert_eq!(containers_named(&world, "app"), 0);
}

#[test]
fn references_and_sizes_no_node_can_satisfy_are_refused_before_anything_is_made() {
    let world = with_web();
    world.pve.set_node_memory("pve1", 4 << 30, 1 << 30);
    world.pve.set_node_memory("pve2", 4 << 30, 1 << 30);
    world.pve.set_node_memory("pve3", 4 << 30, 1 << 30);
    let yaml = [
        lxc("big", "memory: 65536"),
        lxc("keyed", "ssh_keys: [admin]"),
        lxc("secretive", "password: rootpw"),
        lxc("lost", "node: pve9"),
        lxc("untemplated", "").replace(TEMPLATE, "local:vztmpl/custom_1.0_amd64.tar.zst"),
        // The key cannot be made: its passphrase Secret has no value yet.
        "apiVersion: orbitlab.io/v1\nkind: SshKey\nmetadata:\n  name: admin\nspec: {passphrase: rootpw}\n".into(),
        "apiVersion: orbitlab.io/v1\nkind: Secret\nmetadata:\n  name: rootpw\nspec: {}\n".into(),
    ]
    .join("---\n");
    world.apply(&yaml);
    world.settle();
    for (name, needle) in [
        ("big", "65536 MiB is more than any schedulable node has"),
        ("keyed", "SSH key admin has no key in the vault"),
        ("secretive", "Secret rootpw has no value in the vault"),
        ("lost", "pve9 is not a node of this cluster"),
        (
            "untemplated",
            "local:vztmpl/custom_1.0_amd64.tar.zst is on no schedulable online node",
        ),
    ] {
        let (reason, message) = not_ready(&world, name);
        assert_eq!(reason, "Blocked", "{name}");
        assert!(message.contains(needle), "{name}: {message}");
        assert_eq!(containers_named(&world, name), 0, "{name}");
    }
    let key = world.status_of(Kind::SshKey, "admin");
    let ready = key
        .condition(ConditionType::Ready)
        .expect("a Ready condition");
    assert!(!ready.status);
    assert!(
        ready
            .message
            .contains("Secret rootpw has no value in the vault"),
        "{}",
        ready.message
    );
    assert!(
        !world.writes().iter().any(|w| w.starts_with("lxc_create")),
        "{:?}",
        world.writes()
    );
}

#[test]
fn node_selector_places_on_matching_nodes_and_says_when_none_matches() {
    let world = with_web();
    let node = |name: &str, labels: &str| {
        format!(
            "apiVersion: orbitlab.io/v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {labels}\nspec: {{}}\n"
        )
    };
    world.apply(
        &[
            node("pve1", "{rack: a}"),
            node("pve2", "{rack: b, gpu: yes}"),
            node("pve3", "{rack: b}"),
            lxc("g1", "node_selector: gpu"),
            lxc("g2", "node_selector: gpu"),
            lxc("b1", "node_selector: \"rack=b,!gpu\""),
            lxc("nowhere", "node_selector: rack=z"),
        ]
        .join("---\n"),
    );
    world.settle();
    for name in ["g1", "g2", "b1"] {
        assert_instance_ready(&world, name);
    }
    assert_eq!(output(&world, "g1", "node"), "pve2");
    assert_eq!(output(&world, "g2", "node"), "pve2");
    assert_eq!(output(&world, "b1", "node"), "pve3");
    let (reason, message) = not_ready(&world, "nowhere");
    assert_eq!(reason, "Blocked");
    assert!(
        message.contains("no online, schedulable node has labels matching rack=z"),
        "{message}"
    );
    assert_eq!(containers_named(&world, "nowhere"), 0);

    // A node's labels change under a placed instance: said, not ignored.
    world.apply(&node("pve3", "{rack: c}"));
    world.settle();
    let (reason, message) = not_ready(&world, "b1");
    assert_eq!(reason, "Blocked");
    assert!(message.contains("runs on node pve3"), "{message}");
    assert_eq!(output(&world, "b1", "node"), "pve3", "not moved");
}
