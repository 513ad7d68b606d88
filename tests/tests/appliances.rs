//! End to end on a simulated 3-node cluster whose simulator checks every
//! request against Proxmox's API schema (8.4), multipart uploads included:
//! appliance templates uploaded by an administrator to one node are
//! copied to the other two by that node's agent (node-scoped, holding no
//! OrbitLab container), each upload carrying the file's SHA-256 that the
//! simulator checks; the Appliances become Ready, and a Sector's
//! containers are made from the templates.

use std::time::Duration;

use orbitlab_engine::api::{Api, ApiPath, PropertyValue};
use orbitlab_engine::pve::Pve;
use orbitlab_engine::reconcile::init::init;
use orbitlab_manifests::{Kind, codec};
use orbitlab_tests::{Lab, NODES};

const FILES: [(&str, &str); 2] = [
    ("gateway", "orbitlab-gateway_0.2.0_amd64.tar.zst"),
    ("dns", "orbitlab-dns_0.2.0_amd64.tar.zst"),
];

fn manifests() -> String {
    FILES
        .iter()
        .map(|(role, file)| {
            format!(
                "apiVersion: orbitlab.io/v1\nkind: Appliance\nmetadata: {{name: {role}}}\nspec:\n  role: {role}\n  template: local:vztmpl/{file}\n  version: 0.2.0\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The SHA-256 of a file as coreutils' `sha256sum` computes it.
fn sha256sum(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The volids on `node`'s `local` storage.
fn templates_on(lab: &Lab, node: &str) -> Vec<String> {
    lab.pve
        .storage_content(node, "local", Some("vztmpl"))
        .unwrap()
        .into_iter()
        .map(|v| v.volid)
        .collect()
}

#[test]
fn templates_on_one_node_reach_every_node_through_schema_checked_uploads() {
    let lab = Lab::with_volume_files();
    init(&lab.reconciler(&lab.host("pve1")), None).expect("init");

    // An administrator uploads both templates to pve2 (Proxmox UI: node →
    // local → CT Templates → Upload).
    let mut sums = Vec::new();
    for (role, file) in FILES {
        let path = lab.dir.path().join(file);
        let bytes = format!("rootfs of the {role} appliance\n").repeat(5000);
        std::fs::write(&path, &bytes).unwrap();
        sums.push(sha256sum(&path));
        let upid = lab
            .pve
            .upload("pve2", "local", "vztmpl", &path, file)
            .unwrap();
        lab.pve.wait_task(&upid, Duration::from_secs(10)).unwrap();
    }
    let api = Api::new(lab.store.clone());
    api.apply(codec::decode("appliances.yaml", &manifests()).unwrap())
        .unwrap();
    let props = PropertyValue::from_pairs([("name", "web"), ("cidr", "172.16.0.0/24")]).unwrap();
    api.create(&"/sectors".parse::<ApiPath>().unwrap(), props)
        .unwrap();
    lab.sim.clear_requests();

    let last = lab.converge_as_agents("pve1");
    assert!(
        last.iter().all(|r| r.steps == 0 && r.failed.is_empty()),
        "{last:#?}"
    );

    // Every request was accepted (the simulator refuses any the schema
    // refuses), the uploads went to pve1 and pve3, each with its sha256.
    let requests = lab.sim.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status >= 400).collect();
    assert!(refused.is_empty(), "{refused:#?}");
    let mut uploads: Vec<(String, String, String)> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/storage/local/upload"))
        .map(|r| {
            assert_eq!(r.params["checksum-algorithm"], "sha256", "{r:?}");
            assert_eq!(r.params["content"], "vztmpl", "{r:?}");
            (
                r.path.clone(),
                r.params["filename"].clone(),
                r.params["checksum"].clone(),
            )
        })
        .collect();
    uploads.sort();
    let mut want = Vec::new();
    for node in ["pve1", "pve3"] {
        for ((_, file), sum) in FILES.iter().zip(&sums) {
            want.push((
                format!("/nodes/{node}/storage/local/upload"),
                (*file).to_owned(),
                sum.clone(),
            ));
        }
    }
    want.sort();
    assert_eq!(uploads, want);
    // Only pve2's file path was asked for: the step ran on pve2.
    let asked: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/content/"))
        .map(|r| r.path.as_str())
        .collect();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|p| p.starts_with("/nodes/pve2/storage/local/content/")),
        "{asked:#?}"
    );

    for node in NODES {
        let on = templates_on(&lab, node);
        for (_, file) in FILES {
            assert!(
                on.contains(&format!("local:vztmpl/{file}")),
                "{node}: {on:?}"
            );
        }
    }
    for (role, _) in FILES {
        let status = lab
            .store
            .read_status(Kind::Appliance, &role.parse().unwrap())
            .unwrap()
            .expect("a status");
        assert!(status.is_ready(), "{status:#?}");
        assert_eq!(status.outputs["version"], "0.2.0");
        for node in NODES {
            assert_eq!(status.outputs[&format!("template/{node}")], "present");
        }
    }
    let sector = lab
        .store
        .read_status(Kind::Sector, &"web".parse().unwrap())
        .unwrap()
        .expect("a status");
    assert!(sector.is_ready(), "{sector:#?}");
    // Its containers were made from the Appliances' templates.
    let creates: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/lxc"))
        .map(|r| r.params["ostemplate"].clone())
        .collect();
    let mut creates = creates;
    creates.sort();
    assert_eq!(
        creates,
        [
            "local:vztmpl/orbitlab-dns_0.2.0_amd64.tar.zst",
            "local:vztmpl/orbitlab-gateway_0.2.0_amd64.tar.zst"
        ]
    );
}
