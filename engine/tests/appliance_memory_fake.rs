//! An Appliance's `memory` against `FakePve`: a change is set in place on
//! every Sector's running container of that role (one config update each,
//! reported in the Sector's status), and nothing is written afterwards; a
//! version change together with a memory change makes the new containers
//! with the new memory and sets nothing on the old ones.

mod fake_world;

use std::collections::{BTreeMap, BTreeSet};

use fake_world::{NODES, World, assert_ready};

const SECTORS: [&str; 2] = ["alpha", "beta"];
const ROLES: [&str; 2] = ["gateway", "dns"];

/// Both Appliances at `version`, the gateway with `gateway_mib` and the DNS
/// with `dns_mib` of memory.
fn appliances(version: &str, gateway_mib: u32, dns_mib: u32) -> String {
    let one = |role: &str, memory: u32| {
        format!(
            "apiVersion: orbitlab.io/v1\nkind: Appliance\nmetadata: {{name: {role}}}\nspec:\n  role: {role}\n  template: local:vztmpl/orbitlab-{role}_{version}_amd64.tar.zst\n  version: {version}\n  memory: {memory}\n"
        )
    };
    format!(
        "{}---\n{}",
        one("gateway", gateway_mib),
        one("dns", dns_mib)
    )
}

/// Both templates of `version` on every node.
fn place(world: &World, version: &str) {
    for role in ROLES {
        let file = world.dir.path().join(format!("{role}-{version}.tar.zst"));
        std::fs::write(&file, format!("{role} {version}\n")).unwrap();
        for node in NODES {
            let volid = format!("local:vztmpl/orbitlab-{role}_{version}_amd64.tar.zst");
            world.pve.place_template(node, &volid, &file);
        }
    }
}

/// Both Sectors Ready at appliance version 0.1.0 with 128 MiB, the
/// templates of 0.2.0 on every node too; no call recorded.
fn world() -> World {
    let world = World::new();
    place(&world, "0.1.0");
    place(&world, "0.2.0");
    world.apply(&appliances("0.1.0", 128, 128));
    for (i, sector) in SECTORS.iter().enumerate() {
        world.create_sector(sector, &format!("172.16.{i}.0/24"));
    }
    world.settle();
    world.settle();
    for sector in SECTORS {
        assert_ready(&world, sector);
    }
    world.forget_calls_and_pushes();
    world
}

/// The Sector containers by VMID: (sector, role, memory, version).
fn containers(world: &World) -> BTreeMap<u32, (String, String, String, String)> {
    world
        .pve
        .containers()
        .into_keys()
        .filter_map(|vmid| {
            let config = world.pve.config_of(vmid)?;
            let description = config.description()?;
            let marker = description
                .split_whitespace()
                .find_map(|w| w.strip_prefix("orbitlab:sector/"))?;
            let (sector, role) = marker.split_once('/')?;
            let memory = config.get("memory").unwrap_or_default();
            let version = description
                .lines()
                .find_map(|l| l.strip_prefix("appliance-version: "))?
                .to_owned();
            Some((vmid, (sector.to_owned(), role.to_owned(), memory, version)))
        })
        .collect()
}

/// The config updates made, by VMID (the fake records `lxc_update NODE
/// VMID`).
fn updates(world: &World) -> Vec<u32> {
    world
        .writes()
        .iter()
        .filter_map(|w| w.strip_prefix("lxc_update "))
        .map(|rest| rest.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_memory_change_is_set_once_on_every_running_container_of_its_role() {
    let world = world();
    let before = containers(&world);
    assert_eq!(before.len(), 4, "{before:#?}");
    assert!(
        before.values().all(|(_, _, m, _)| m == "128"),
        "{before:#?}"
    );

    world.apply(&appliances("0.1.0", 256, 192));
    world.settle();

    // One update per container, nothing else written: the containers are
    // neither replaced nor restarted.
    let mut updated = updates(&world);
    updated.sort_unstable();
    let all: Vec<u32> = before.keys().copied().collect();
    assert_eq!(updated, all, "{:#?}", world.writes());
    assert_eq!(
        world.writes().len(),
        all.len(),
        "only config updates: {:#?}",
        world.writes()
    );
    let after = containers(&world);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (vmid, (sector, role, memory, _)) in &after {
        let want = if role == "gateway" { "256" } else { "192" };
        assert_eq!(memory, want, "{sector}/{role} ({vmid})");
        assert!(world.pve.containers()[vmid].2, "{vmid} is not running");
    }
    // The Sectors say what was set, and are Ready.
    for sector in SECTORS {
        assert_ready(&world, sector);
        for (role, want) in [
            ("gateway", "256 (was 128) at "),
            ("dns", "192 (was 128) at "),
        ] {
            let line = world.output(sector, &format!("set/{role}/memory"));
            assert!(line.starts_with(want), "{sector} {role}: {line}");
        }
    }

    // Nothing more to do, and the record stays.
    world.forget_calls_and_pushes();
    world.settle();
    world.settle();
    assert!(world.writes().is_empty(), "{:#?}", world.writes());
    assert!(
        world
            .output("alpha", "set/gateway/memory")
            .starts_with("256")
    );
}

#[test]
fn a_memory_change_of_one_role_leaves_the_other_alone() {
    let world = world();
    world.apply(&appliances("0.1.0", 128, 64));
    world.settle();
    let dns: BTreeSet<u32> = containers(&world)
        .into_iter()
        .filter(|(_, (_, role, _, _))| role == "dns")
        .map(|(vmid, _)| vmid)
        .collect();
    assert_eq!(dns.len(), 2);
    assert_eq!(updates(&world).into_iter().collect::<BTreeSet<_>>(), dns);
    for (vmid, (_, role, memory, _)) in containers(&world) {
        let want = if role == "dns" { "64" } else { "128" };
        assert_eq!(memory, want, "{role} ({vmid})");
    }
    assert!(
        !world
            .status("alpha")
            .outputs
            .contains_key("set/gateway/memory")
    );
}

#[test]
fn a_version_and_a_memory_change_together_make_new_containers_with_the_new_memory() {
    let world = world();
    world.apply(&appliances("0.2.0", 256, 192));
    let upgraded = |world: &World| {
        let now = containers(world);
        now.len() == 4 && now.values().all(|(_, _, _, v)| v == "0.2.0")
    };
    for _ in 0..12 {
        world.settle();
        if upgraded(&world) {
            break;
        }
    }
    world.settle();
    assert!(upgraded(&world), "{:#?}", containers(&world));
    for (vmid, (sector, role, memory, _)) in containers(&world) {
        let want = if role == "gateway" { "256" } else { "192" };
        assert_eq!(
            memory, want,
            "{sector}/{role} ({vmid}) made with another memory"
        );
    }
    // The only config updates are each switch's two (the old container
    // off boot, the new one on boot): none sets memory, on an old
    // container or a new one.
    assert_eq!(updates(&world).len(), 8, "{:#?}", world.writes());
    for sector in SECTORS {
        assert_ready(&world, sector);
        let outputs = &world.status(sector).outputs;
        assert!(
            !outputs.keys().any(|k| k.starts_with("set/")),
            "{sector}: {outputs:#?}"
        );
        for role in ROLES {
            assert!(
                world
                    .output(sector, &format!("{role}/upgrade"))
                    .starts_with("0.1.0 → 0.2.0 in "),
                "{sector} {role}"
            );
        }
    }
    world.forget_calls_and_pushes();
    world.settle();
    assert!(world.writes().is_empty(), "{:#?}", world.writes());
}
