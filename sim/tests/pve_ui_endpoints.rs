//! The endpoints the Proxmox web UI reads when it loads and in the
//! Datacenter summary, as the simulator serves them on both Proxmox VE
//! versions, each answer checked against the official schema's `returns`:
//! `/cluster/resources` (guests, nodes, storages, SDN zones; `type`
//! filter; only what the caller may audit; an offline node reports
//! nothing), `/cluster/tasks` (running and finished tasks, at most 25 a
//! node; all with `Sys.Audit`, else the caller's own), `/cluster/options`
//! (with `allowed-tags`), `/access/domains` (without credentials),
//! `/nodes/{node}/subscription` (none; `localhost` is the answering node),
//! `/nodes/{node}/ceph/status` (Ceph not installed), `/version` and
//! `/cluster/status`.

mod pve_ui_common;

use std::time::Duration;

use orbitlab_sim::pve::{ApiToken, PveVersion, SimHandle, UserLogin};
use pve_ui_common::{
    Cred, assert_schema_true, call, create_ct, ok, start_with, ui_login, wait_task,
};
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;

/// A simulator with two extra tokens of `root@pam`: `vmonly` (only
/// `VM.Audit`) and `nothing` (no privilege), and the user `bob@pve`
/// (password `bob-password`) holding `VM.Audit` and `VM.PowerMgmt`.
fn sim(version: PveVersion) -> SimHandle {
    start_with(version, |cfg| {
        for (name, privs) in [("vmonly", vec!["VM.Audit"]), ("nothing", vec![])] {
            cfg.auth.tokens.push(ApiToken {
                user: "root@pam".into(),
                name: name.into(),
                secret: format!("{name}-secret"),
            });
            cfg.auth.privileges.insert(
                format!("root@pam!{name}"),
                privs.into_iter().map(str::to_owned).collect(),
            );
        }
        cfg.auth.users.push(UserLogin {
            user: "bob@pve".into(),
            password: "bob-password".into(),
        });
        cfg.auth.privileges.insert(
            "bob@pve".into(),
            vec!["VM.Audit".into(), "VM.PowerMgmt".into()],
        );
    })
}

fn token(name: &str) -> Cred {
    Cred::Token(format!("root@pam!{name}"), format!("{name}-secret"))
}

fn root() -> Cred {
    Cred::root_token()
}

fn by_id<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|e| e["id"] == id))
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

fn resources(sim: &SimHandle, version: PveVersion, cred: &Cred, query: &[(&str, &str)]) -> Value {
    let data = ok(sim, cred, "GET", "/cluster/resources", query);
    assert_schema_true(version, "GET", "/cluster/resources", &data);
    data
}

#[test]
fn resources_list_guests_nodes_storages_and_zones_as_proxmox_does() {
    for version in PveVersion::ALL {
        let sim = sim(version);
        let nine = version == PveVersion::V9_1;
        create_ct(
            &sim,
            "pve1",
            100,
            &[
                ("hostname", "web-1"),
                ("memory", "1024"),
                ("tags", "web;prod"),
                ("start", "1"),
            ],
        );
        create_ct(&sim, "pve2", 1000, &[("hostname", "db-1")]);
        let all = resources(&sim, version, &root(), &[]);
        let zone_ids: Vec<String> = ["pve1", "pve2", "pve3"]
            .iter()
            .map(|n| {
                if nine {
                    format!("network/{n}/zone/localnetwork")
                } else {
                    format!("sdn/{n}/localnetwork")
                }
            })
            .collect();
        let mut expected: Vec<String> = vec!["lxc/100".into(), "lxc/1000".into()];
        expected.extend(["node/pve1", "node/pve2", "node/pve3"].map(String::from));
        for storage in ["local", "local-lvm"] {
            for n in ["pve1", "pve2", "pve3"] {
                expected.push(format!("storage/{n}/{storage}"));
            }
        }
        expected.extend(zone_ids.iter().cloned());
        assert_eq!(ids(&all), expected, "[{version}]");

        let ct = by_id(&all, "lxc/100");
        assert_eq!(
            (
                &ct["vmid"],
                &ct["name"],
                &ct["node"],
                &ct["type"],
                &ct["status"]
            ),
            (
                &json!(100),
                &json!("web-1"),
                &json!("pve1"),
                &json!("lxc"),
                &json!("running")
            ),
            "[{version}] {ct}"
        );
        assert_eq!(ct["maxmem"], 1024 * 1024 * 1024_u64);
        assert_eq!(ct["tags"], "prod;web");
        assert_eq!(ct["template"], 0);
        for key in [
            "maxcpu", "cpu", "mem", "maxdisk", "disk", "uptime", "netin", "diskread",
        ] {
            assert!(ct[key].is_number(), "[{version}] {key} of {ct}");
        }
        assert_eq!(
            ct.get("memhost").is_some(),
            nine,
            "[{version}] memhost is 9.x's"
        );
        assert_eq!(by_id(&all, "lxc/1000")["status"], "stopped");

        let node = by_id(&all, "node/pve2");
        assert_eq!(
            (
                &node["status"],
                &node["level"],
                &node["maxcpu"],
                &node["maxmem"]
            ),
            (&json!("online"), &json!(""), &json!(16), &json!(64 * GIB)),
            "[{version}] {node}"
        );
        assert_eq!(node["cgroup-mode"], 2);
        let local = by_id(&all, "storage/pve3/local");
        assert_eq!(
            (
                &local["storage"],
                &local["plugintype"],
                &local["content"],
                &local["shared"]
            ),
            (
                &json!("local"),
                &json!("dir"),
                &json!("backup,import,iso,vztmpl"),
                &json!(0)
            ),
            "[{version}] {local}"
        );
        assert_eq!(local["status"], "available");
        assert!(
            local["maxdisk"].as_u64() > local["disk"].as_u64(),
            "{local}"
        );
        let zone = by_id(&all, &zone_ids[0]);
        assert_eq!(zone["status"], "ok");
        if nine {
            assert_eq!(
                (&zone["type"], &zone["network-type"], &zone["network"]),
                (&json!("network"), &json!("zone"), &json!("localnetwork"))
            );
        } else {
            assert_eq!(
                (&zone["type"], &zone["sdn"]),
                (&json!("sdn"), &json!("localnetwork"))
            );
        }

        // The type filter (its enum has no `network`: 9.1's zones come
        // only unfiltered).
        let count = |t: &str| {
            resources(&sim, version, &root(), &[("type", t)])
                .as_array()
                .map(Vec::len)
        };
        assert_eq!(count("vm"), Some(2), "[{version}]");
        assert_eq!(count("node"), Some(3));
        assert_eq!(count("storage"), Some(6));
        assert_eq!(count("sdn"), Some(if nine { 0 } else { 3 }));
        let bad = call(
            &sim,
            "json",
            &root(),
            "GET",
            "/cluster/resources",
            &[("type", "network")],
        );
        assert_eq!(bad.http, 400, "[{version}] {bad:?}");
        assert!(bad.body["errors"]["type"].is_string());

        // An applied SDN zone on every node it spans.
        ok(
            &sim,
            &root(),
            "POST",
            "/cluster/sdn/zones",
            &[("zone", "lab"), ("type", "simple"), ("nodes", "pve1,pve3")],
        );
        let pending = resources(&sim, version, &root(), &[]);
        assert_eq!(
            ids(&pending).len(),
            expected.len(),
            "[{version}] pending zones are not applied"
        );
        let upid = ok(&sim, &root(), "PUT", "/cluster/sdn", &[]);
        assert_eq!(wait_task(&sim, "pve1", &upid), "OK");
        let applied = resources(&sim, version, &root(), &[]);
        for n in ["pve1", "pve3"] {
            let id = if nine {
                format!("network/{n}/zone/lab")
            } else {
                format!("sdn/{n}/lab")
            };
            let z = by_id(&applied, &id);
            assert_eq!(z["status"], "available", "[{version}] {z}");
            if nine {
                assert_eq!(z["zone-type"], "simple");
            }
        }
        assert!(
            !ids(&applied)
                .iter()
                .any(|i| i.contains("pve2") && i.contains("lab"))
        );

        // An offline node reports nothing: its guests and storages are
        // `unknown`, it is `offline`.
        sim.set_node_online("pve2", false);
        let now = resources(&sim, version, &root(), &[]);
        let gone = by_id(&now, "lxc/1000");
        assert_eq!(gone["status"], "unknown", "[{version}] {gone}");
        assert!(
            gone.get("name").is_none() && gone.get("maxmem").is_none(),
            "{gone}"
        );
        let node = by_id(&now, "node/pve2");
        assert_eq!(node["status"], "offline");
        assert!(
            node.get("level").is_none() && node.get("maxcpu").is_none(),
            "{node}"
        );
        assert_eq!(by_id(&now, "storage/pve2/local")["status"], "unknown");
        assert!(by_id(&now, "storage/pve2/local").get("maxdisk").is_none());
    }
}

#[test]
fn resources_show_only_what_the_caller_may_audit() {
    for version in PveVersion::ALL {
        let sim = sim(version);
        create_ct(&sim, "pve1", 100, &[("hostname", "web-1")]);
        let vm_only = resources(&sim, version, &token("vmonly"), &[]);
        assert_eq!(
            ids(&vm_only),
            ["lxc/100", "node/pve1", "node/pve2", "node/pve3"],
            "[{version}] no storage or zone without Datastore.Audit / SDN.Audit"
        );
        let node = by_id(&vm_only, "node/pve1");
        assert_eq!(node["status"], "online");
        for key in ["cpu", "maxcpu", "mem", "maxmem", "uptime"] {
            assert!(
                node.get(key).is_none(),
                "[{version}] {key} needs Sys.Audit: {node}"
            );
        }
        let nothing = resources(&sim, version, &token("nothing"), &[]);
        assert_eq!(ids(&nothing), ["node/pve1", "node/pve2", "node/pve3"]);
    }
}

#[test]
fn tasks_list_each_nodes_running_and_newest_finished_tasks() {
    for version in PveVersion::ALL {
        let sim = sim(version);
        create_ct(&sim, "pve1", 100, &[]);
        create_ct(&sim, "pve3", 102, &[]);
        sim.fail_next_task("vzcreate", "unable to create CT 101 - no space left");
        let failed_upid = ok(
            &sim,
            &root(),
            "POST",
            "/nodes/pve2/lxc",
            &[
                ("vmid", "101"),
                ("ostemplate", orbitlab_sim::pve::DEFAULT_TEMPLATE),
                ("rootfs", "local-lvm:8"),
            ],
        );
        assert_ne!(wait_task(&sim, "pve2", &failed_upid), "OK");
        sim.set_task_duration(Duration::from_secs(600));
        let running = ok(
            &sim,
            &root(),
            "POST",
            "/nodes/pve3/lxc/102/status/start",
            &[],
        );
        sim.set_task_duration(Duration::from_millis(20));

        let tasks = ok(&sim, &root(), "GET", "/cluster/tasks", &[]);
        assert_schema_true(version, "GET", "/cluster/tasks", &tasks);
        let list = tasks.as_array().expect("a list");
        assert_eq!(list.len(), 4, "[{version}] {tasks}");
        let find = |upid: &Value| {
            list.iter()
                .find(|t| &t["upid"] == upid)
                .unwrap_or_else(|| panic!("{upid} not listed"))
        };
        let r = find(&running);
        assert_eq!(
            (
                &r["type"],
                &r["id"],
                &r["node"],
                &r["user"],
                &r["tokenid"],
                &r["saved"]
            ),
            (
                &json!("vzstart"),
                &json!("102"),
                &json!("pve3"),
                &json!("root@pam"),
                &json!("orbitlab"),
                &json!("0")
            ),
            "[{version}] {r}"
        );
        assert!(r["pid"].is_u64() && r["starttime"].is_u64(), "{r}");
        assert!(
            r.get("endtime").is_none() && r.get("status").is_none(),
            "{r}"
        );
        let failed = find(&failed_upid);
        assert_eq!(failed["status"], "unable to create CT 101 - no space left");
        assert_eq!(failed["saved"], "1");
        assert!(failed.get("pid").is_none(), "{failed}");
        assert!(
            failed["endtime"].as_u64() >= failed["starttime"].as_u64(),
            "{failed}"
        );
        let pve3: Vec<&Value> = list.iter().filter(|t| t["node"] == "pve3").collect();
        assert_eq!(
            (&pve3[0]["upid"], &pve3[1]["type"], &pve3[1]["status"]),
            (&running, &json!("vzcreate"), &json!("OK")),
            "[{version}] running first"
        );

        // Without Sys.Audit only one's own tasks (a token's are its user's).
        assert_eq!(
            ok(&sim, &token("vmonly"), "GET", "/cluster/tasks", &[]),
            json!([])
        );
        let (_, bob) = ui_login(&sim, "bob", "bob-password", "pve");
        let mut last = ok(&sim, &bob, "POST", "/nodes/pve1/lxc/100/status/start", &[]);
        let bobs = ok(&sim, &bob, "GET", "/cluster/tasks", &[]);
        assert_eq!(
            bobs.as_array()
                .map(|l| l.iter().map(|t| t["upid"].clone()).collect::<Vec<_>>()),
            Some(vec![last.clone()]),
            "[{version}] {bobs}"
        );
        assert_eq!(bobs[0]["user"], "bob@pve");
        assert!(bobs[0].get("tokenid").is_none());
        assert_eq!(wait_task(&sim, "pve1", &last), "OK");

        // A node lists its running tasks and the newest finished, at most
        // 25 in all.
        for i in 0..30 {
            let action = if i % 2 == 0 { "stop" } else { "start" };
            last = ok(
                &sim,
                &root(),
                "POST",
                &format!("/nodes/pve1/lxc/100/status/{action}"),
                &[],
            );
            assert_eq!(wait_task(&sim, "pve1", &last), "OK");
        }
        let tasks = ok(&sim, &root(), "GET", "/cluster/tasks", &[]);
        assert_schema_true(version, "GET", "/cluster/tasks", &tasks);
        let on = |node: &str| {
            tasks
                .as_array()
                .map_or(0, |l| l.iter().filter(|t| t["node"] == node).count())
        };
        assert_eq!(
            (on("pve1"), on("pve2"), on("pve3")),
            (25, 1, 2),
            "[{version}]"
        );
        assert_eq!(tasks[0]["upid"], last, "newest first");
    }
}

#[test]
fn options_give_a_fresh_datacenter_config_and_the_allowed_tags() {
    for version in PveVersion::ALL {
        let sim = sim(version);
        create_ct(&sim, "pve1", 100, &[("tags", "web;prod")]);
        create_ct(&sim, "pve2", 101, &[("tags", "db")]);
        for format in ["json", "extjs"] {
            let a = call(&sim, format, &root(), "GET", "/cluster/options", &[]);
            assert_eq!(
                a.body["data"],
                json!({
                    "allowed-tags": ["db", "prod", "web"], "description": "",
                    "keyboard": "en-us", "mac_prefix": "BC:24:11",
                }),
                "[{version}] {format}"
            );
            assert_schema_true(version, "GET", "/cluster/options", &a.body["data"]);
        }
        // Without Sys.Audit: the tags only (of the guests one may audit).
        assert_eq!(
            ok(&sim, &token("vmonly"), "GET", "/cluster/options", &[]),
            json!({"allowed-tags": ["db", "prod", "web"]})
        );
        assert_eq!(
            ok(&sim, &token("nothing"), "GET", "/cluster/options", &[]),
            json!({"allowed-tags": []})
        );
    }
}

#[test]
fn domains_answer_anyone_for_the_login_window() {
    for version in PveVersion::ALL {
        let sim = sim(version);
        for format in ["json", "extjs"] {
            let a = call(
                &sim,
                format,
                &Cred::Anonymous,
                "GET",
                "/access/domains",
                &[],
            );
            assert_eq!(a.http, 200, "[{version}] {format} {a:?}");
            let data = &a.body["data"];
            assert_schema_true(version, "GET", "/access/domains", data);
            assert_eq!(
                data,
                &json!([
                    {"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
                    {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"},
                ])
            );
        }
        // A stale ticket does not matter there.
        let stale = Cred::Ticket {
            ticket: "PVE:root@pam:00000000::stale".into(),
            csrf: String::new(),
        };
        assert_eq!(
            call(&sim, "json", &stale, "GET", "/access/domains", &[]).http,
            200
        );
        let last = sim.requests().pop().expect("recorded");
        assert_eq!((last.path.as_str(), last.user), ("/access/domains", None));
    }
}

#[test]
fn subscription_is_not_found_as_on_a_community_install() {
    for version in PveVersion::ALL {
        let sim = sim(version);
        let local = ok(&sim, &root(), "GET", "/nodes/localhost/subscription", &[]);
        assert_schema_true(version, "GET", "/nodes/{node}/subscription", &local);
        assert_eq!(local["status"], "notfound", "[{version}] {local}");
        assert_eq!(local["message"], "There is no subscription key");
        assert_eq!(
            local["url"],
            "https://www.proxmox.com/en/proxmox-virtual-environment/pricing"
        );
        let id = local["serverid"]
            .as_str()
            .expect("server id with Sys.Audit");
        assert!(
            id.len() == 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
            "{id}"
        );
        // `localhost` is the answering node, the first one.
        let pve1 = ok(&sim, &root(), "GET", "/nodes/pve1/subscription", &[]);
        assert_eq!(pve1, local);
        let pve2 = ok(&sim, &root(), "GET", "/nodes/pve2/subscription", &[]);
        assert_ne!(pve2["serverid"], local["serverid"]);
        // Anyone may ask; the server ID needs Sys.Audit on the node.
        let plain = ok(
            &sim,
            &token("nothing"),
            "GET",
            "/nodes/pve2/subscription",
            &[],
        );
        assert_schema_true(version, "GET", "/nodes/{node}/subscription", &plain);
        assert_eq!(
            plain,
            json!({
                "status": "notfound", "message": "There is no subscription key",
                "url": "https://www.proxmox.com/en/proxmox-virtual-environment/pricing",
            })
        );
        assert_eq!(
            call(
                &sim,
                "json",
                &root(),
                "GET",
                "/nodes/pve9/subscription",
                &[]
            )
            .http,
            500
        );
    }
}

#[test]
fn ceph_status_answers_as_a_node_without_ceph() {
    for version in PveVersion::ALL {
        let sim = sim(version);
        let a = call(&sim, "json", &root(), "GET", "/nodes/pve1/ceph/status", &[]);
        assert_eq!(a.http, 500, "[{version}] {a:?}");
        assert_eq!(
            a.reason.as_deref(),
            Some("binary not installed: /usr/bin/ceph-mon")
        );
        assert_eq!(
            a.body["message"],
            "binary not installed: /usr/bin/ceph-mon\n"
        );
        let a = call(
            &sim,
            "json",
            &token("nothing"),
            "GET",
            "/nodes/pve1/ceph/status",
            &[],
        );
        assert_eq!(a.http, 403, "[{version}] {a:?}");
        assert_eq!(
            a.reason.as_deref(),
            Some("Permission check failed (/, Sys.Audit|Datastore.Audit)")
        );
    }
}

#[test]
fn version_and_cluster_status_are_schema_true() {
    for version in PveVersion::ALL {
        let sim = sim(version);
        for cred in [root(), token("nothing")] {
            let v = ok(&sim, &cred, "GET", "/version", &[]);
            assert_schema_true(version, "GET", "/version", &v);
            assert_eq!(v["release"], version.release());
            assert_eq!(v["version"], version.full());
        }
        let v = ok(&sim, &root(), "GET", "/version", &[]);
        let node = ok(&sim, &root(), "GET", "/nodes/pve1/status", &[]);
        assert_eq!(
            node["pveversion"],
            format!(
                "pve-manager/{}/{}",
                v["version"].as_str().unwrap(),
                v["repoid"].as_str().unwrap()
            ),
            "[{version}] one build"
        );
        let status = ok(&sim, &root(), "GET", "/cluster/status", &[]);
        assert_schema_true(version, "GET", "/cluster/status", &status);
        let nodes: Vec<&Value> = status
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "node")
            .collect();
        assert_eq!(nodes.len(), 3);
        assert!(
            nodes.iter().all(|n| n["level"] == ""),
            "no subscription: {status}"
        );
        assert_eq!(
            nodes
                .iter()
                .filter(|n| n["local"] == 1)
                .map(|n| &n["name"])
                .collect::<Vec<_>>(),
            [&json!("pve1")]
        );
    }
}

#[test]
fn the_schema_check_catches_answers_proxmox_would_not_give() {
    let Some(version_schema) = pve_ui_common::returns(PveVersion::V9_1, "GET", "/version") else {
        return;
    };
    let mut errs = Vec::new();
    // The simulator's old `repoid`: not a git revision.
    let old = json!({"version": "9.1.2", "release": "9.1", "repoid": "0rb17l4b"});
    pve_ui_common::check_value(&version_schema, &old, "data", &mut errs);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let sub = pve_ui_common::returns(PveVersion::V8_4, "GET", "/nodes/{node}/subscription")
        .expect("schema");
    errs.clear();
    pve_ui_common::check_value(
        &sub,
        &json!({"status": "none", "sockets": "2", "extra": 1}),
        "data",
        &mut errs,
    );
    assert_eq!(
        errs.len(),
        3,
        "enum, type and a key the schema forbids: {errs:?}"
    );
    let res =
        pve_ui_common::returns(PveVersion::V8_4, "GET", "/cluster/resources").expect("schema");
    errs.clear();
    pve_ui_common::check_value(
        &res,
        &json!([{"type": "lxc", "vmid": 99}]),
        "data",
        &mut errs,
    );
    assert_eq!(
        errs.len(),
        3,
        "id missing, vmid below 100 and no VMID: {errs:?}"
    );
}
