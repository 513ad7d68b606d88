//! Appliances against `FakePve`: the template an `appliance` manifest
//! names is uploaded from the node that holds it to every node lacking it
//! (by that node's agent only), a shared storage needs no upload, a
//! template no node has blocks the Appliance with the fix, and a Sector's
//! containers are made on a node only once its template is there (until
//! then the Sector waits, it does not fail).

mod fake_world;

use std::path::PathBuf;

use fake_world::{World, assert_ready, not_ready};
use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_manifests::Kind;

const GATEWAY: &str = "local:vztmpl/orbitlab-gateway_0.1.0_amd64.tar.zst";
const DNS: &str = "local:vztmpl/orbitlab-dns_0.1.0_amd64.tar.zst";

/// The two Appliance manifests, their templates on `storage`.
fn appliances(storage: &str) -> String {
    let one = |role: &str| {
        format!(
            "apiVersion: orbitlab.io/v1\nkind: Appliance\nmetadata: {{name: {role}}}\nspec:\n  role: {role}\n  template: {storage}:vztmpl/orbitlab-{role}_0.1.0_amd64.tar.zst\n  version: 0.1.0\n  memory: 96\n"
        )
    };
    format!("{}---\n{}", one("gateway"), one("dns"))
}

/// A file standing for a template's content, in the world's temporary
/// directory.
fn template_file(world: &World, name: &str) -> PathBuf {
    let path = world.dir.path().join(name);
    std::fs::write(&path, format!("the rootfs of {name}\n").repeat(1000)).unwrap();
    path
}

/// Places both templates (on `storage`) on `node` only.
fn place_both(world: &World, node: &str, storage: &str) {
    for role in ["gateway", "dns"] {
        let volid = format!("{storage}:vztmpl/orbitlab-{role}_0.1.0_amd64.tar.zst");
        let file = template_file(world, &format!("{role}.tar.zst"));
        world.pve.place_template(node, &volid, &file);
    }
}

fn appliance(world: &World, name: &str) -> ObjectStatus {
    world.status_of(Kind::Appliance, name)
}

fn uploads(world: &World) -> Vec<String> {
    world
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("storage_upload"))
        .collect()
}

fn index_of(writes: &[String], prefix: &str) -> usize {
    writes
        .iter()
        .position(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {writes:#?}"))
}

/// Sectors whose containers rendezvous hashing spreads over the nodes.
const SECTORS: [&str; 3] = ["web", "db", "app"];

#[test]
fn a_template_on_one_node_is_uploaded_to_the_others_by_that_nodes_agent() {
    let world = World::new();
    place_both(&world, "pve1", "local");
    world.apply(&appliances("local"));
    for sector in SECTORS {
        world.create_sector(sector, "172.16.0.0/24");
    }

    // The agents of pve2 and pve3 cannot read pve1's file: they upload
    // nothing (and, holding no OrbitLab container, make nothing).
    world.run_on("pve2");
    world.run_on("pve3");
    assert!(world.writes().is_empty(), "{:#?}", world.writes());

    world.settle();
    let mut sent = uploads(&world);
    sent.sort();
    assert_eq!(
        sent,
        [
            "storage_upload pve2 local orbitlab-dns_0.1.0_amd64.tar.zst",
            "storage_upload pve2 local orbitlab-gateway_0.1.0_amd64.tar.zst",
            "storage_upload pve3 local orbitlab-dns_0.1.0_amd64.tar.zst",
            "storage_upload pve3 local orbitlab-gateway_0.1.0_amd64.tar.zst",
        ]
    );
    // The file's path was asked of pve1 alone, the node the step ran on.
    let asked: Vec<String> = world
        .pve
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("storage_volume"))
        .collect();
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|c| c.starts_with("storage_volume pve1 ")),
        "{asked:#?}"
    );
    for volid in [GATEWAY, DNS] {
        assert_eq!(world.pve.template_nodes(volid), ["pve1", "pve2", "pve3"]);
    }

    for name in ["gateway", "dns"] {
        let status = appliance(&world, name);
        assert!(status.is_ready(), "{status:#?}");
        assert_eq!(status.outputs["version"], "0.1.0");
        for node in fake_world::NODES {
            assert_eq!(status.outputs[&format!("template/{node}")], "present");
        }
    }
    // Every container was made after its node got its template, with
    // the Appliance's memory.
    let writes = world.writes();
    let mut elsewhere = 0;
    for sector in SECTORS {
        assert_ready(&world, sector);
        for role in ["gateway", "dns"] {
            let node = world.output(sector, &format!("{role}/node"));
            let vmid = world.vmid(sector, role);
            let created = index_of(&writes, &format!("lxc_create {node} {vmid}"));
            if node != "pve1" {
                elsewhere += 1;
                let file = format!("orbitlab-{role}_0.1.0_amd64.tar.zst");
                let uploaded = index_of(&writes, &format!("storage_upload {node} local {file}"));
                assert!(uploaded < created, "{writes:#?}");
            }
            let config = world.pve.config_of(vmid).unwrap();
            assert_eq!(config.get("memory").as_deref(), Some("96"));
        }
    }
    assert!(elsewhere > 0, "every container went to pve1");

    // Nothing is left to do: no upload, no read of a file's path again.
    world.forget_calls_and_pushes();
    world.settle();
    assert!(world.writes().is_empty(), "{:#?}", world.writes());
}

#[test]
fn the_holders_agent_uploads_while_the_owner_reports_it_uploading() {
    let world = World::new();
    place_both(&world, "pve3", "local");
    world.apply(&appliances("local"));

    // The cluster-scoped agent (pve1) cannot read pve3's file: it waits.
    world.run();
    assert!(uploads(&world).is_empty(), "{:#?}", world.writes());
    let status = appliance(&world, "gateway");
    let ready = status.condition(ConditionType::Ready).unwrap();
    assert!(!ready.status);
    assert_eq!(ready.reason, "Waiting", "{status:#?}");
    assert!(
        ready.message.contains("agent on node pve3"),
        "{}",
        ready.message
    );
    assert_eq!(status.outputs["template/pve3"], "present");
    assert_eq!(status.outputs["template/pve1"], "uploading from pve3");

    // pve3's agent, holding no OrbitLab container, still takes the step.
    world.run_on("pve3");
    let mut sent = uploads(&world);
    sent.sort();
    assert_eq!(sent.len(), 4, "{sent:#?}");
    assert!(sent.iter().all(|u| !u.contains(" pve3 ")), "{sent:#?}");
    world.run();
    assert!(appliance(&world, "gateway").is_ready());
    assert!(appliance(&world, "dns").is_ready());
}

#[test]
fn a_shared_storage_needs_no_upload() {
    let world = World::new();
    world.pve.set_storage_shared("nfs");
    place_both(&world, "pve2", "nfs");
    world.apply(&appliances("nfs"));
    world.create_sector("web", "172.16.0.0/24");
    world.settle();
    assert!(uploads(&world).is_empty(), "{:#?}", world.writes());
    for name in ["gateway", "dns"] {
        let status = appliance(&world, name);
        assert!(status.is_ready(), "{status:#?}");
        assert_eq!(status.outputs["template/pve1"], "present");
    }
    assert_ready(&world, "web");
}

#[test]
fn a_template_no_node_has_blocks_the_appliance_and_the_sector_waits() {
    let world = World::new();
    world.apply(&appliances("local"));
    world.create_sector("web", "172.16.0.0/24");
    world.settle();

    let status = appliance(&world, "gateway");
    assert_eq!(status.phase(), "Failed", "{status:#?}");
    let failed = status.condition(ConditionType::Failed).unwrap();
    assert_eq!(failed.reason, "Blocked");
    assert!(
        failed.message.contains("orbitlab appliance build gateway")
            && failed.message.contains("CT Templates → Upload"),
        "{}",
        failed.message
    );
    assert_eq!(status.outputs["template/pve2"], "missing");

    // The Sector waits: its network is made, its containers are not.
    let (reason, message) = not_ready(&world, "web");
    assert_eq!(reason, "Waiting");
    assert!(
        message.contains(GATEWAY) || message.contains(DNS),
        "{message}"
    );
    assert!(message.contains("on node pve"), "{message}");
    assert!(message.contains("Appliance "), "{message}");
    let sector = world.status("web");
    assert!(!sector.condition(ConditionType::Failed).unwrap().status);
    assert_eq!(sector.phase(), "Progressing");
    assert!(
        !world.writes().iter().any(|w| w.starts_with("lxc_create")),
        "{:#?}",
        world.writes()
    );

    // Built on pve2 (as `orbitlab appliance build` would): copied to the
    // others, then the Sector's containers are made.
    place_both(&world, "pve2", "local");
    world.settle();
    world.run_on("pve2");
    world.settle();
    assert!(appliance(&world, "gateway").is_ready());
    assert!(appliance(&world, "dns").is_ready());
    assert_ready(&world, "web");
}

#[test]
fn a_deleted_appliance_keeps_its_templates_and_loses_its_status() {
    let world = World::new();
    place_both(&world, "pve1", "local");
    world.apply(&appliances("local"));
    world.settle();
    assert!(appliance(&world, "dns").is_ready());
    orbitlab_engine::api::Api::new(world.store.clone())
        .delete(&"/appliances/dns".parse().unwrap(), false)
        .unwrap();
    world.forget_calls_and_pushes();
    world.settle();
    assert!(
        world
            .store
            .read_status(Kind::Appliance, &"dns".parse().unwrap())
            .unwrap()
            .is_none()
    );
    assert!(world.writes().is_empty(), "{:#?}", world.writes());
    assert_eq!(world.pve.template_nodes(DNS), ["pve1", "pve2", "pve3"]);
}
