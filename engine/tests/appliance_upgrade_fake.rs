//! Appliance upgrades against `FakePve`: a changed Appliance version
//! replaces every Sector's container of that role, one Sector at a time,
//! keeping its addresses and reporting the interruption; a configuration
//! the new container refuses leaves the old one serving and is not tried
//! again; a crash at any step (the new container started but not yet
//! configured among them) converges on one container per role.

mod fake_world;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fake_world::{NODES, World, assert_ready, not_ready};
use orbitlab_engine::host::{ContainerHost, ExecOutput, HostError, InstallFile, bundle};
use orbitlab_engine::status::ConditionType;

const SECTORS: [&str; 2] = ["alpha", "beta"];

fn appliances(version: &str) -> String {
    appliances_with_memory(version, 128)
}

/// Both Appliances at `version` with `memory` MiB.
fn appliances_with_memory(version: &str, memory: u32) -> String {
    let one = |role: &str| {
        format!(
            "apiVersion: orbitlab.io/v1\nkind: Appliance\nmetadata: {{name: {role}}}\nspec:\n  role: {role}\n  template: local:vztmpl/orbitlab-{role}_{version}_amd64.tar.zst\n  version: {version}\n  memory: {memory}\n"
        )
    };
    format!("{}---\n{}", one("gateway"), one("dns"))
}

/// Both templates of `version` on every node.
fn place(world: &World, version: &str) {
    for role in ["gateway", "dns"] {
        let file = world.dir.path().join(format!("{role}-{version}.tar.zst"));
        std::fs::write(&file, format!("{role} {version}\n")).unwrap();
        for node in NODES {
            let volid = format!("local:vztmpl/orbitlab-{role}_{version}_amd64.tar.zst");
            world.pve.place_template(node, &volid, &file);
        }
    }
}

/// A world with `sectors` Ready at appliance version 0.1.0, and the
/// templates of 0.2.0 on every node.
fn world_at_first_version(sectors: &[&str]) -> World {
    let world = World::new();
    place(&world, "0.1.0");
    place(&world, "0.2.0");
    world.apply(&appliances("0.1.0"));
    for (i, sector) in sectors.iter().enumerate() {
        world.create_sector(sector, &format!("172.16.{i}.0/24"));
    }
    world.settle();
    world.settle();
    for sector in sectors {
        assert_ready(&world, sector);
    }
    world
}

/// (sector, role).
type Part = (String, String);

/// The Sector containers: (sector, role) → [(vmid, version, running)].
fn appliances_now(world: &World) -> BTreeMap<Part, Vec<(u32, String, bool)>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for (vmid, (_, _, running)) in world.pve.containers() {
        let config = world.pve.config_of(vmid).unwrap();
        let description = config.description().unwrap_or_default();
        let Some(marker) = description
            .split_whitespace()
            .find_map(|w| w.strip_prefix("orbitlab:sector/"))
        else {
            continue;
        };
        let (sector, role) = marker.split_once('/').unwrap();
        let version = description
            .lines()
            .find_map(|l| l.strip_prefix("appliance-version: "))
            .unwrap_or("none")
            .to_owned();
        out.entry((sector.to_owned(), role.to_owned()))
            .or_default()
            .push((vmid, version, running));
    }
    out
}

/// The network keys of every Sector container by (sector, role), and the
/// Sectors' address outputs.
fn addresses(world: &World) -> (BTreeMap<Part, Vec<String>>, Vec<String>) {
    let mut nets = BTreeMap::new();
    for ((sector, role), containers) in appliances_now(world) {
        assert_eq!(containers.len(), 1, "{sector}/{role}: {containers:?}");
        let config = world.pve.config_of(containers[0].0).unwrap();
        let keys = ["net0", "net1"]
            .iter()
            .filter_map(|k| config.get(k))
            .collect();
        nets.insert((sector, role), keys);
    }
    let mut outputs = Vec::new();
    for sector in SECTORS {
        if let Some(status) = world
            .store
            .read_status(orbitlab_manifests::Kind::Sector, &sector.parse().unwrap())
            .unwrap()
        {
            outputs.extend(
                status
                    .outputs
                    .iter()
                    .filter(|(k, _)| k.contains("/address/"))
                    .map(|(k, v)| format!("{sector} {k}={v}")),
            );
        }
    }
    (nets, outputs)
}

/// Asserts one container per role, all at `version` and running.
fn assert_converged(world: &World, sectors: &[&str], version: &str) {
    let now = appliances_now(world);
    assert_eq!(now.len(), sectors.len() * 2, "{now:#?}");
    for ((sector, role), containers) in &now {
        assert_eq!(
            containers.len(),
            1,
            "{sector}/{role} has more than one container: {now:#?}"
        );
        let (_, v, running) = &containers[0];
        assert_eq!(v, version, "{sector}/{role}: {now:#?}");
        assert!(running, "{sector}/{role} is stopped: {now:#?}");
    }
    for sector in sectors {
        assert_ready(world, sector);
    }
}

#[test]
fn a_version_bump_replaces_the_containers_one_sector_at_a_time() {
    let world = world_at_first_version(&SECTORS);
    let (nets_before, addresses_before) = addresses(&world);
    let holdings_before = ipam_owners(&world);
    world.apply(&appliances("0.2.0"));

    // Every agent's run, one at a time, until nothing changes.
    let mut started: Vec<String> = Vec::new();
    for _ in 0..30 {
        for node in NODES {
            if node == "pve1" {
                world.run();
            } else {
                world.run_on(node);
            }
            let now = appliances_now(&world);
            // At most one Sector has an old and a new container at once.
            let mid: BTreeSet<&String> = now
                .iter()
                .filter(|(_, c)| c.len() > 1)
                .map(|((s, _), _)| s)
                .collect();
            assert!(mid.len() <= 1, "two Sectors upgrade at once: {now:#?}");
            for ((sector, _), containers) in &now {
                if containers.iter().any(|(_, v, _)| v == "0.2.0") && !started.contains(sector) {
                    // A Sector starts only once those before it are done.
                    for earlier in &started {
                        for role in ["gateway", "dns"] {
                            let c = &now[&(earlier.clone(), role.to_owned())];
                            assert!(
                                c.len() == 1 && c[0].1 == "0.2.0",
                                "{sector} started before {earlier} was done: {now:#?}"
                            );
                        }
                    }
                    started.push(sector.clone());
                }
            }
        }
        if appliances_now(&world)
            .values()
            .all(|c| c.len() == 1 && c[0].1 == "0.2.0")
        {
            break;
        }
    }
    world.settle();
    // alpha entirely, then beta: never back to alpha.
    assert_eq!(started, ["alpha", "beta"]);
    assert_converged(&world, &SECTORS, "0.2.0");

    let (nets_after, addresses_after) = addresses(&world);
    assert_eq!(nets_after, nets_before, "the NIC configuration changed");
    assert_eq!(addresses_after, addresses_before);
    assert!(!addresses_after.is_empty());
    assert_eq!(ipam_owners(&world), holdings_before, "IPAM changed");
    for sector in SECTORS {
        for role in ["gateway", "dns"] {
            let line = world.output(sector, &format!("{role}/upgrade"));
            assert!(
                line.starts_with("0.1.0 → 0.2.0 in ") && line.contains(" s interruption at "),
                "{sector} {role}: {line}"
            );
        }
    }
    // Nothing left to do.
    world.forget_calls_and_pushes();
    world.settle();
    assert!(world.writes().is_empty(), "{:#?}", world.writes());
}

/// IPAM addresses by owner, as the store records them.
fn ipam_owners(world: &World) -> BTreeMap<String, String> {
    let listing = orbitlab_engine::ipam::listing(&world.store).unwrap();
    listing
        .pools
        .iter()
        .flat_map(|(pool, addrs)| {
            addrs
                .iter()
                .map(move |(addr, owner)| (format!("{owner} {pool}"), addr.to_string()))
        })
        .collect()
}

/// A node's container host whose helper refuses every configuration
/// pushed into a container not in `accepts`.
#[derive(Debug)]
struct Refusing {
    local: String,
    accepts: BTreeSet<u32>,
}

impl ContainerHost for Refusing {
    fn local_node(&self) -> &str {
        &self.local
    }

    fn push(&self, _: &str, _: u32, _: &str, _: u32, _: &[u8]) -> Result<(), HostError> {
        Ok(())
    }

    fn exec(&self, _node: &str, vmid: u32, argv: &[String]) -> Result<(), HostError> {
        if bundle::applied(argv).is_some() && !self.accepts.contains(&vmid) {
            return Err(HostError::Failed {
                command: argv.join(" "),
                status: "exit status: 1".into(),
                stderr: "frr.service failed to start".into(),
            });
        }
        Ok(())
    }
    fn exec_output(&self, _: &str, _: u32, _: &[String]) -> Result<ExecOutput, HostError> {
        unreachable!("these tests run no health probe through this host")
    }
    fn install(&self, _: &str, _: u32, _: &InstallFile<'_>) -> Result<(), HostError> {
        unreachable!("these tests deliver nothing into instances")
    }
}

fn run_refusing(world: &World, accepts: &BTreeSet<u32>) {
    for node in NODES {
        let host = Refusing {
            local: node.into(),
            accepts: accepts.clone(),
        };
        let reconciler = world.agent(node, &host);
        reconciler.run().expect("a reconcile runs");
    }
}

#[test]
fn a_refused_configuration_leaves_the_old_container_serving_and_is_not_retried() {
    let world = world_at_first_version(&["alpha"]);
    let before = appliances_now(&world);
    let old: BTreeSet<u32> = before.values().map(|c| c[0].0).collect();
    let records: BTreeMap<u32, Vec<u8>> = old
        .iter()
        .map(|v| (*v, std::fs::read(world.pushed_record(*v)).unwrap()))
        .collect();
    world.apply(&appliances("0.2.0"));
    for _ in 0..4 {
        run_refusing(&world, &old);
    }
    world.run();

    // The old containers serve again, their configuration untouched; no
    // new container is left, and none is made again.
    assert_eq!(appliances_now(&world), before);
    for (vmid, record) in &records {
        assert_eq!(&std::fs::read(world.pushed_record(*vmid)).unwrap(), record);
    }
    let (reason, message) = not_ready(&world, "alpha");
    assert_eq!(reason, "Blocked");
    assert!(
        message.contains("gateway upgrade from 0.1.0 to 0.2.0 failed")
            && message.contains("frr.service failed to start")
            && message.contains("serves again"),
        "{message}"
    );
    assert!(
        world
            .status("alpha")
            .condition(ConditionType::Failed)
            .unwrap()
            .status
    );
    let line = world.output("alpha", "gateway/upgrade");
    assert!(line.starts_with("0.1.0 → 0.2.0 failed at"), "{line}");

    world.forget_calls_and_pushes();
    for _ in 0..3 {
        run_refusing(&world, &old);
    }
    let creates: Vec<String> = world
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("lxc_create") || w.starts_with("lxc_stop"))
        .collect();
    assert!(
        creates.is_empty(),
        "the failed version was tried again: {creates:#?}"
    );

    // Another version is tried (and, accepted, goes through).
    place(&world, "0.3.0");
    world.apply(&appliances("0.3.0"));
    for _ in 0..6 {
        world.settle();
    }
    assert_converged(&world, &["alpha"], "0.3.0");
}

#[test]
fn the_old_containers_of_a_failed_upgrade_still_get_a_memory_change() {
    let world = world_at_first_version(&["alpha"]);
    let before = appliances_now(&world);
    let old: BTreeSet<u32> = before.values().map(|c| c[0].0).collect();
    world.apply(&appliances("0.2.0"));
    for _ in 0..4 {
        run_refusing(&world, &old);
    }
    assert_eq!(appliances_now(&world), before);

    // Same version and template, more memory: not tried again, but the
    // containers serving get the memory in place.
    world.forget_calls_and_pushes();
    world.apply(&appliances_with_memory("0.2.0", 256));
    for _ in 0..3 {
        run_refusing(&world, &old);
    }
    assert_eq!(appliances_now(&world), before);
    let writes = world.writes();
    let updated: BTreeSet<u32> = writes
        .iter()
        .filter_map(|w| w.strip_prefix("lxc_update "))
        .map(|w| w.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(updated, old, "{writes:#?}");
    assert_eq!(writes.len(), old.len(), "{writes:#?}");
    for vmid in &old {
        let config = world.pve.config_of(*vmid).unwrap();
        assert_eq!(config.get("memory").as_deref(), Some("256"), "{vmid}");
    }
    let line = world.output("alpha", "set/gateway/memory");
    assert!(line.starts_with("256 (was 128) at "), "{line}");
    let (reason, _) = not_ready(&world, "alpha");
    assert_eq!(reason, "Blocked");
}

/// Runs every agent once, a panic (the crash) ending the round early.
fn round(world: &World) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        world.settle();
    }))
    .is_ok()
}

#[test]
fn a_crash_at_any_step_of_an_upgrade_converges_on_one_container_per_role() {
    for call in [
        "lxc_create",
        "lxc_stop",
        "lxc_start",
        "lxc_update",
        "lxc_delete",
    ] {
        let world = world_at_first_version(&["alpha"]);
        let (nets_before, _) = addresses(&world);
        world.apply(&appliances("0.2.0"));
        world
            .pve
            .after_call(call, move || panic!("crash at {call}"));
        let mut crashed = false;
        for _ in 0..8 {
            crashed |= !round(&world);
            // Never more than the old and the new container of a role.
            for ((sector, role), c) in appliances_now(&world) {
                assert!(c.len() <= 2, "{call}: {sector}/{role}: {c:?}");
            }
        }
        assert!(crashed, "no crash at {call}");
        world.settle();
        assert_converged(&world, &["alpha"], "0.2.0");
        let (nets_after, _) = addresses(&world);
        assert_eq!(nets_after, nets_before, "{call}");
        // The interruption was measured despite the crash.
        assert!(
            world
                .output("alpha", "gateway/upgrade")
                .contains("interruption"),
            "{call}"
        );
    }
}

/// A node's container host that crashes (panics) at the first push into a
/// container not in `old`: the switch has stopped the old container and
/// started the new one, which holds no configuration yet.
#[derive(Debug)]
struct CrashingAtFirstPush {
    local: String,
    old: BTreeSet<u32>,
    crashed: Arc<AtomicBool>,
}

impl ContainerHost for CrashingAtFirstPush {
    fn local_node(&self) -> &str {
        &self.local
    }

    fn push(&self, _: &str, vmid: u32, path: &str, _: u32, _: &[u8]) -> Result<(), HostError> {
        if !self.old.contains(&vmid) && !self.crashed.swap(true, Ordering::SeqCst) {
            panic!("crash before pushing {path} into {vmid}");
        }
        Ok(())
    }

    fn exec(&self, _: &str, _: u32, _: &[String]) -> Result<(), HostError> {
        Ok(())
    }
    fn exec_output(&self, _: &str, _: u32, _: &[String]) -> Result<ExecOutput, HostError> {
        unreachable!("these tests run no health probe through this host")
    }
    fn install(&self, _: &str, _: u32, _: &InstallFile<'_>) -> Result<(), HostError> {
        unreachable!("these tests deliver nothing into instances")
    }
}

#[test]
fn a_crash_after_the_new_container_started_before_it_is_configured_converges() {
    let world = world_at_first_version(&["alpha"]);
    let (nets_before, _) = addresses(&world);
    let old: BTreeSet<u32> = appliances_now(&world)
        .values()
        .flatten()
        .map(|(vmid, _, _)| *vmid)
        .collect();
    world.apply(&appliances("0.2.0"));
    let crashed = Arc::new(AtomicBool::new(false));
    for _ in 0..6 {
        for node in NODES {
            let host = CrashingAtFirstPush {
                local: node.into(),
                old: old.clone(),
                crashed: Arc::clone(&crashed),
            };
            let reconciler = world.agent(node, &host);
            let _ = catch_unwind(AssertUnwindSafe(|| reconciler.run()));
            if crashed.load(Ordering::SeqCst) {
                break;
            }
        }
        if crashed.load(Ordering::SeqCst) {
            break;
        }
    }
    assert!(
        crashed.load(Ordering::SeqCst),
        "no push into a new container"
    );
    // The crash came where it should: the gateway's old container stopped,
    // its new one running and never configured.
    let now = appliances_now(&world);
    let gateway = &now[&("alpha".to_owned(), "gateway".to_owned())];
    assert_eq!(gateway.len(), 2, "{now:#?}");
    for (vmid, version, running) in gateway {
        let new = version == "0.2.0";
        assert_eq!(*running, new, "{vmid} ({version}): {now:#?}");
        if new {
            assert!(!world.pushed_record(*vmid).exists());
        }
    }

    for _ in 0..6 {
        world.settle();
        for ((sector, role), c) in appliances_now(&world) {
            assert!(c.len() <= 2, "{sector}/{role}: {c:?}");
        }
    }
    assert_converged(&world, &["alpha"], "0.2.0");
    let (nets_after, _) = addresses(&world);
    assert_eq!(nets_after, nets_before);
    // Measured from the old container's stop, before the crash.
    let line = world.output("alpha", "gateway/upgrade");
    assert!(
        line.starts_with("0.1.0 → 0.2.0 in ") && line.contains(" s interruption at "),
        "{line}"
    );
    // The new containers hold the Sector's configuration.
    for c in appliances_now(&world).values() {
        assert!(world.pushed_record(c[0].0).exists(), "{c:?}");
    }
}
