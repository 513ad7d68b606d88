//! Containers, HA resources, storage and the pmxcfs mirror, through the
//! client against the simulator.

mod pve_common;

use std::time::Duration;

use orbitlab_engine::pve::{
    ApiErrorKind, DownloadUrl, GuestState, HaResourceAdd, HaResourceSpec, HaState, LxcCreate,
    LxcUpdate, Pve, PveError, Secret,
};
use orbitlab_sim::pve::{DEFAULT_TEMPLATE, PveSim, PveVersion, SimConfig};
use pve_common::*;

fn gateway(vmid: u32) -> LxcCreate {
    LxcCreate {
        vmid,
        ostemplate: DEFAULT_TEMPLATE.into(),
        hostname: Some("olvn1001-router".into()),
        memory: Some(128),
        swap: Some(0),
        rootfs: Some("local-lvm:2".into()),
        nets: [
            (0, "name=eth0,bridge=olvn1001,ip=10.0.0.1/24".to_string()),
            (
                1,
                "name=eth1,bridge=olbpnet,ip=10.200.0.5/16,gw=10.200.0.1".to_string(),
            ),
        ]
        .into(),
        tags: Some("orbitlab;sector-gw".into()),
        description: Some("orbitlab:sector/web".into()),
        unprivileged: Some(true),
        password: Some(Secret::new("hunter2-hunter2")),
        ..LxcCreate::default()
    }
}

#[test]
fn container_lifecycle_reads_back_like_proxmox() {
    let (sim, c) = sim_and_client(PveVersion::V9_1);
    assert_eq!(c.next_vmid(None).expect("nextid"), 100);
    c.wait_task(
        &c.lxc_create("pve1", &gateway(100)).expect("create"),
        DEADLINE,
    )
    .expect("created");
    // nextid reserves nothing, and skips used ids.
    assert_eq!(c.next_vmid(None).expect("nextid"), 101);
    assert_eq!(c.next_vmid(None).expect("nextid"), 101);
    let err = c.next_vmid(Some(100)).expect_err("taken");
    assert_eq!(
        err.param_errors().expect("errors")["vmid"],
        "VM 100 already exists"
    );
    // VMIDs are unique across the cluster.
    let err = c.lxc_create("pve2", &gateway(100)).expect_err("duplicate");
    assert_eq!(err.kind(), Some(&ApiErrorKind::AlreadyExists), "{err}");
    assert!(
        err.to_string()
            .contains("CT 100 already exists on node 'pve1'"),
        "{err}"
    );
    let cfg = c.lxc_config("pve1", 100).expect("config");
    assert_eq!(cfg.hostname().as_deref(), Some("olvn1001-router"));
    assert_eq!(cfg.tags(), vec!["orbitlab", "sector-gw"]);
    assert_eq!(cfg.description().as_deref(), Some("orbitlab:sector/web"));
    let net0 = cfg.nets()[&0].clone();
    assert!(
        net0.starts_with("name=eth0,bridge=olvn1001,hwaddr=BC:24:11:"),
        "{net0}"
    );
    assert!(net0.ends_with(",ip=10.0.0.1/24,type=veth"), "{net0}");
    assert_eq!(cfg.get("memory").as_deref(), Some("128"));
    assert!(
        cfg.get("rootfs")
            .expect("rootfs")
            .starts_with("local-lvm:vm-100-disk-0")
    );
    assert!(cfg.get("password").is_none(), "the password is not config");
    let created = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/nodes/pve1/lxc")
        .expect("logged");
    assert_eq!(created.params["password"], "<redacted>");
    // Update with the digest, then a stale digest is refused.
    let digest = cfg.digest();
    let mut update = LxcUpdate {
        digest: digest.clone(),
        ..LxcUpdate::default()
    };
    update.set.insert("memory".into(), "256".into());
    update.delete.push("description".into());
    c.lxc_update("pve1", 100, &update).expect("update");
    let cfg = c.lxc_config("pve1", 100).expect("config");
    assert_eq!(
        (cfg.get("memory").as_deref(), cfg.description()),
        (Some("256"), None)
    );
    let err = c
        .lxc_update("pve1", 100, &update)
        .expect_err("stale digest");
    assert!(
        err.to_string().contains("file changed by other user"),
        "{err}"
    );
    // Power.
    assert_eq!(
        c.lxc_status("pve1", 100).expect("status").status,
        GuestState::Stopped
    );
    c.wait_task(&c.lxc_start("pve1", 100).expect("start"), DEADLINE)
        .expect("started");
    assert_eq!(
        c.lxc_status("pve1", 100).expect("status").status,
        GuestState::Running
    );
    let err = c.lxc_start("pve1", 100).expect_err("already running");
    assert!(err.to_string().contains("CT 100 already running"), "{err}");
    let err = c.lxc_delete("pve1", 100, false).expect_err("running");
    assert!(err.to_string().contains("is running"), "{err}");
    c.wait_task(
        &c.lxc_shutdown("pve1", 100, Some(Duration::from_secs(30)), true)
            .expect("shutdown"),
        DEADLINE,
    )
    .expect("down");
    assert_eq!(
        c.lxc_list("pve1").expect("list")[0].status,
        GuestState::Stopped
    );
    c.wait_task(&c.lxc_delete("pve1", 100, true).expect("delete"), DEADLINE)
        .expect("deleted");
    assert!(c.lxc_list("pve1").expect("list").is_empty());
}

#[test]
fn ha_resources_round_trip() {
    let (_sim, c) = sim_and_client(PveVersion::V8_4);
    c.wait_task(
        &c.lxc_create("pve2", &gateway(120)).expect("create"),
        DEADLINE,
    )
    .expect("created");
    let add = HaResourceAdd {
        vmid: 120,
        state: HaState::Started,
        group: Some("olgroup".into()),
        comment: Some("orbitlab".into()),
    };
    c.ha_add(&add).expect("add");
    let err = c.ha_add(&add).expect_err("twice");
    assert!(err.to_string().contains("already defined"), "{err}");
    c.ha_update(
        "ct:120",
        &HaResourceSpec {
            max_restart: Some(2),
            ..HaResourceSpec::default()
        },
    )
    .expect("update");
    let err = c.lxc_delete("pve2", 120, false).expect_err("HA managed");
    assert!(err.to_string().contains("purge"), "{err}");
    c.ha_update(
        "ct:120",
        &HaResourceSpec {
            state: Some(HaState::Stopped),
            ..HaResourceSpec::default()
        },
    )
    .expect("update");
    let list = c.ha_resources().expect("list");
    assert_eq!(
        (
            list[0].sid.as_str(),
            list[0].vmid(),
            list[0].state.as_deref(),
            list[0].max_restart
        ),
        ("ct:120", Some(120), Some("stopped"), Some(2))
    );
    assert_eq!(
        (list[0].group.as_deref(), list[0].comment.as_deref()),
        (Some("olgroup"), Some("orbitlab"))
    );
    c.ha_remove("ct:120").expect("remove");
    assert!(c.ha_resources().expect("list").is_empty());
    let err = c.ha_remove("ct:120").expect_err("gone");
    assert!(err.to_string().contains("not HA managed"), "{err}");
}

#[test]
fn ha_groups_are_not_sent_to_nine() {
    let (sim, c) = sim_and_client(PveVersion::V9_1);
    c.wait_task(
        &c.lxc_create("pve1", &gateway(130)).expect("create"),
        DEADLINE,
    )
    .expect("created");
    let add = HaResourceAdd {
        vmid: 130,
        state: HaState::Stopped,
        group: Some("olgroup".into()),
        comment: None,
    };
    sim.clear_requests();
    let err = c.ha_add(&add).expect_err("group on 9.x");
    assert!(matches!(err, PveError::Config(_)), "{err}");
    assert!(
        !sim.requests().iter().any(|r| r.method == "POST"),
        "nothing was sent"
    );
    c.ha_add(&HaResourceAdd { group: None, ..add })
        .expect("add without group");
    let list = c.ha_resources().expect("list");
    assert_eq!(
        (
            list[0].vmid(),
            list[0].state.as_deref(),
            list[0].group.as_deref()
        ),
        (Some(130), Some("stopped"), None)
    );
}

#[test]
fn node_status_and_resize_through_the_client() {
    for version in [PveVersion::V8_4, PveVersion::V9_1] {
        let (sim, c) = sim_and_client(version);
        let idle = c.node_status("pve1").expect("status");
        assert_eq!(
            (idle.memory_total, idle.memory_used, idle.cpus),
            (64 << 30, 2 << 30, 16),
            "[{version}]"
        );
        assert_eq!(idle.free_mib(), 62 * 1024);
        assert!((0.0..=1.0).contains(&idle.cpu));
        let mut gw = gateway(140);
        gw.start = Some(true);
        c.wait_task(&c.lxc_create("pve1", &gw).expect("create"), DEADLINE)
            .expect("created");
        let busy = c.node_status("pve1").expect("status");
        assert_eq!(busy.memory_used, (2 << 30) + (128 << 20), "[{version}]");
        assert_eq!(busy.memory_free, busy.memory_total - busy.memory_used);
        assert!(sim.set_node_resources("pve1", 4 << 30, 2));
        let small = c.node_status("pve1").expect("status");
        assert_eq!((small.memory_total, small.cpus), (4 << 30, 2));
        // Resize: the task grows rootfs; a shrink or the same size is refused.
        let upid = c.lxc_resize("pve1", 140, "rootfs", 5).expect("resize");
        assert_eq!(upid.kind(), "resize");
        c.wait_task(&upid, DEADLINE).expect("resized");
        let cfg = c.lxc_config("pve1", 140).expect("config");
        assert_eq!(
            cfg.get("rootfs").as_deref(),
            Some("local-lvm:vm-140-disk-0,size=5G"),
            "[{version}]"
        );
        let sent = sim
            .requests()
            .into_iter()
            .find(|r| r.method == "PUT" && r.path.ends_with("/resize"))
            .expect("logged");
        assert_eq!(
            (sent.params["disk"].as_str(), sent.params["size"].as_str()),
            ("rootfs", "5G")
        );
        let err = c.lxc_resize("pve1", 140, "rootfs", 3).expect_err("shrink");
        assert!(
            err.to_string().contains("unable to shrink disk size"),
            "{err}"
        );
        let err = c.lxc_resize("pve1", 140, "rootfs", 5).expect_err("same");
        assert!(
            err.to_string().contains("already at specified size"),
            "{err}"
        );
        let err = c.lxc_resize("pve1", 140, "mp300", 9).expect_err("schema");
        assert_eq!(err.status(), Some(400), "{err}");
        // An update through the trait, with the digest read back.
        let update = LxcUpdate {
            digest: cfg.digest(),
            set: [("cores".to_string(), "2".to_string())].into(),
            ..LxcUpdate::default()
        };
        Pve::lxc_update(&c, "pve1", 140, &update).expect("update");
        assert_eq!(
            c.lxc_config("pve1", 140)
                .expect("config")
                .get("cores")
                .as_deref(),
            Some("2")
        );
    }
}

#[test]
fn templates_are_listed_downloaded_and_uploaded() {
    let (_sim, c) = sim_and_client(PveVersion::V8_4);
    let before = c
        .storage_content("pve1", "local", Some("vztmpl"))
        .expect("content");
    // Debian's standard template and the two appliance templates.
    assert_eq!(before.len(), 3);
    let index = c.appliance_index("pve1").expect("aplinfo");
    let t = index
        .iter()
        .find(|t| t.template.starts_with("alpine"))
        .expect("alpine")
        .template
        .clone();
    c.wait_task(
        &c.appliance_download("pve1", "local", &t).expect("download"),
        DEADLINE,
    )
    .expect("downloaded");
    c.wait_task(
        &c.download_url(
            "pve1",
            "local",
            &DownloadUrl {
                url: "https://example.invalid/t.tar.zst".into(),
                filename: "t.tar.zst".into(),
                content: "vztmpl".into(),
                checksum: None,
                checksum_algorithm: None,
            },
        )
        .expect("download-url"),
        DEADLINE,
    )
    .expect("fetched");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("orbitlab-gw.tar.zst");
    std::fs::write(&file, vec![7u8; 100_000]).expect("write");
    let upid = c
        .upload(
            "pve1",
            "local",
            "vztmpl",
            &file,
            "orbitlab-gw_1.0_amd64.tar.zst",
        )
        .expect("upload");
    c.wait_task(&upid, DEADLINE).expect("imported");
    let after = c
        .storage_content("pve1", "local", Some("vztmpl"))
        .expect("content");
    let up = after
        .iter()
        .find(|v| v.volid == "local:vztmpl/orbitlab-gw_1.0_amd64.tar.zst")
        .expect("uploaded");
    assert_eq!(up.size, Some(100_000));
    assert!(after.iter().any(|v| v.volid == format!("local:vztmpl/{t}")));
    assert!(after.iter().any(|v| v.volid == "local:vztmpl/t.tar.zst"));
    let err = c
        .upload("pve1", "local-lvm", "vztmpl", &file, "x.tar.zst")
        .expect_err("no vztmpl on lvm");
    assert!(
        err.to_string().contains("does not support 'vztmpl'"),
        "{err}"
    );
    assert!(
        c.upload("pve1", "local", "vztmpl", &file, "../evil")
            .is_err()
    );
}

#[test]
fn network_and_nodes_read_back() {
    let sim = PveSim::start(SimConfig {
        bridge_mtu: 9000,
        ..SimConfig::default()
    })
    .expect("sim");
    let c = client_for(&sim, token());
    let nodes = c.nodes().expect("nodes");
    assert_eq!(
        nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(),
        vec!["pve1", "pve2", "pve3"]
    );
    let net = c.node_network("pve2").expect("network");
    let vmbr0 = net.iter().find(|i| i.iface == "vmbr0").expect("vmbr0");
    assert_eq!(
        (vmbr0.address.as_deref(), vmbr0.mtu),
        (Some("192.168.100.12"), Some(9000))
    );
    assert_eq!(vmbr0.cidr.as_deref(), Some("192.168.100.12/24"));
}

#[test]
fn the_pmxcfs_mirror_follows_nodes_and_guests() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = PveSim::start(SimConfig {
        pmxcfs_root: Some(dir.path().to_path_buf()),
        task_duration: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .expect("sim");
    let c = client_for(&sim, token());
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(name)).expect("file"))
            .expect("json")
    };
    let members = read(".members");
    assert_eq!(members["nodelist"]["pve2"]["ip"], "192.168.100.12");
    assert_eq!(members["cluster"]["quorate"], 1);
    c.wait_task(
        &c.lxc_create("pve3", &gateway(300)).expect("create"),
        DEADLINE,
    )
    .expect("created");
    let vmlist = read(".vmlist");
    assert_eq!(vmlist["ids"]["300"]["node"], "pve3");
    assert_eq!(vmlist["ids"]["300"]["type"], "lxc");
    sim.set_node_online("pve1", false);
    sim.set_node_online("pve2", false);
    let members = read(".members");
    assert_eq!(members["nodelist"]["pve1"]["online"], 0);
    assert_eq!(members["cluster"]["quorate"], 0);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}
