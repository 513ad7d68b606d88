//! `.members` and `.vmlist`, and VMID uniqueness of guest configs.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::common::{assert_errno, mount};

const MEMBERS: &str = r#"{
"nodename": "pve1",
"version": 3,
"cluster": { "name": "lab", "version": 3, "nodes": 2, "quorate": 1 },
"nodelist": {
  "pve1": { "id": 1, "online": 1, "ip": "192.0.2.1"},
  "pve2": { "id": 2, "online": 0, "ip": "192.0.2.2"}
  }
}
"#;

#[test]
fn members_is_fed_from_the_control_directory_and_read_only() {
    let m = mount();
    let members = m.path(".members");
    assert!(!members.exists(), "no .members before the feed");
    m.handle.control().set_members(MEMBERS.as_bytes()).unwrap();
    assert_eq!(fs::read_to_string(&members).unwrap(), MEMBERS);
    let md = fs::metadata(&members).unwrap();
    assert_eq!((md.len(), md.mode() & 0o777), (MEMBERS.len() as u64, 0o440));
    let listed: Vec<_> = fs::read_dir(m.handle.mountpoint())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(listed.iter().any(|n| n == ".members"), "{listed:?}");
    assert_errno(fs::write(&members, "{}"), libc::EACCES, "write .members");
    assert_errno(fs::remove_file(&members), libc::EACCES, "unlink .members");
    assert_errno(
        fs::rename(&members, m.path("x")),
        libc::EACCES,
        "rename .members",
    );
    // Like on pmxcfs, `.members` reports the loss of quorum.
    m.handle.set_quorate(false).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&members).unwrap()).unwrap();
    assert_eq!(doc["cluster"]["quorate"], 0);
    assert_eq!(doc["nodelist"]["pve2"]["ip"], "192.0.2.2");
    m.handle.set_quorate(true).unwrap();
    assert_eq!(fs::read_to_string(&members).unwrap(), MEMBERS);
    // The feed changes take effect at once.
    m.handle
        .control()
        .set_members(b"{\"version\": 4}\n")
        .unwrap();
    assert_eq!(fs::read_to_string(&members).unwrap(), "{\"version\": 4}\n");
}

#[test]
fn vmlist_follows_guest_configs_and_vmids_stay_unique() {
    let m = mount();
    for dir in [
        "nodes/pve1/qemu-server",
        "nodes/pve2/lxc",
        "nodes/pve2/qemu-server",
    ] {
        fs::create_dir_all(m.path(dir)).unwrap();
    }
    fs::write(m.path("nodes/pve1/qemu-server/100.conf"), "memory: 512\n").unwrap();
    fs::write(m.path("nodes/pve2/lxc/101.conf"), "hostname: gw\n").unwrap();
    let vmlist = || -> serde_json::Value {
        serde_json::from_slice(&fs::read(m.path(".vmlist")).unwrap()).unwrap()
    };
    let v = vmlist();
    assert_eq!(v["ids"]["100"]["node"], "pve1");
    assert_eq!(v["ids"]["100"]["type"], "qemu");
    assert_eq!(v["ids"]["101"]["type"], "lxc");

    assert_errno(
        fs::write(m.path("nodes/pve2/lxc/100.conf"), ""),
        libc::EEXIST,
        "a second guest with VMID 100",
    );
    // Migration: the same guest moves to another node.
    fs::rename(
        m.path("nodes/pve1/qemu-server/100.conf"),
        m.path("nodes/pve2/qemu-server/100.conf"),
    )
    .unwrap();
    assert_eq!(vmlist()["ids"]["100"]["node"], "pve2");
    fs::remove_file(m.path("nodes/pve2/lxc/101.conf")).unwrap();
    assert!(vmlist()["ids"].get("101").is_none());

    // A fed .vmlist overrides the computed one, and clearing it goes back.
    m.handle
        .control()
        .set_vmlist(b"{\"version\": 99}\n")
        .unwrap();
    assert_eq!(
        fs::read_to_string(m.path(".vmlist")).unwrap(),
        "{\"version\": 99}\n"
    );
    m.handle.control().clear_vmlist().unwrap();
    assert_eq!(vmlist()["ids"]["100"]["node"], "pve2");
}

#[test]
fn mounting_on_a_missing_directory_says_what_to_do() {
    let err = orbitlab_pmxcfs_sim::PmxcfsSim::mount("/nonexistent/pve", Default::default())
        .expect_err("no such mount point");
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/pve") && msg.contains("create"),
        "{msg}"
    );
}
