//! Logging in as the Proxmox web UI does, on both Proxmox VE versions:
//! `root@pam` through the login window (`POST /api2/extjs/access/ticket`),
//! a second user made through the API (`POST /access/users` with a
//! password in realm `pve`, `PUT /access/acl` with the built-in role
//! `PVEAuditor` on `/`) logging in the same way, what that user may do
//! (`Sys.Audit`, not `Sys.Modify`), its `GET /access/permissions`, the
//! GUI capabilities (`cap`) of a ticket, and the ticket renewal the UI
//! makes on load (the current ticket as the password). Answers are
//! checked against the official schema.

mod pve_ui_common;

use orbitlab_sim::pve::{DEFAULT_PASSWORD, PveVersion, SimHandle};
use pve_ui_common::{Cred, assert_schema_true, call, ok, root_ticket, start, ui_login};
use serde_json::{Value, json};

/// The privileges of the built-in role `PVEAuditor` (the `audit`
/// privileges of every group; 9.x adds the guest agent's).
fn auditor_privs(version: PveVersion) -> Value {
    let mut privs = vec![
        "Datastore.Audit",
        "Mapping.Audit",
        "Pool.Audit",
        "SDN.Audit",
        "Sys.Audit",
        "VM.Audit",
    ];
    if version == PveVersion::V9_1 {
        privs.push("VM.GuestAgent.Audit");
    }
    Value::Object(privs.iter().map(|p| ((*p).to_owned(), json!(1))).collect())
}

/// As the browser test does it: root makes `alice@pve` with a password and
/// grants `PVEAuditor` on `/`, over the `extjs` format with its ticket.
fn make_alice(sim: &SimHandle, root: &Cred) {
    let made = call(
        sim,
        "extjs",
        root,
        "POST",
        "/access/users",
        &[
            ("userid", "alice@pve"),
            ("password", "alice-secret-1"),
            ("comment", "auditor"),
        ],
    );
    assert_eq!(made.body, json!({"data": null, "success": 1}), "{made:?}");
    let granted = call(
        sim,
        "extjs",
        root,
        "PUT",
        "/access/acl",
        &[
            ("path", "/"),
            ("roles", "PVEAuditor"),
            ("users", "alice@pve"),
        ],
    );
    assert_eq!(
        granted.body,
        json!({"data": null, "success": 1}),
        "{granted:?}"
    );
}

#[test]
fn root_logs_in_through_the_window_and_gets_every_capability() {
    for version in PveVersion::ALL {
        let sim = start(version);
        let (data, _) = ui_login(&sim, "root", DEFAULT_PASSWORD, "pam");
        assert_schema_true(version, "POST", "/access/ticket", &data);
        assert_eq!(data["username"], "root@pam");
        assert_eq!(data["clustername"], "orbitlab");
        let ticket = data["ticket"].as_str().expect("ticket");
        assert!(ticket.starts_with("PVE:root@pam:"), "{ticket}");
        let cap = &data["cap"];
        let mut groups: Vec<&String> = cap.as_object().expect("cap").keys().collect();
        groups.sort();
        assert_eq!(
            groups,
            ["access", "dc", "mapping", "nodes", "sdn", "storage", "vms"],
            "[{version}] every group the UI reads"
        );
        for (group, privilege) in [
            ("vms", "VM.PowerMgmt"),
            ("vms", "Permissions.Modify"),
            ("dc", "Sys.Audit"),
            ("dc", "Sys.Modify"),
            ("dc", "SDN.Allocate"),
            ("nodes", "Sys.Console"),
            ("storage", "Datastore.Allocate"),
            ("access", "User.Modify"),
            ("access", "Group.Allocate"),
            ("sdn", "SDN.Use"),
            ("mapping", "Mapping.Use"),
        ] {
            assert_eq!(cap[group][privilege], 1, "[{version}] {group} {privilege}");
        }
        assert!(
            cap["dc"].get("Sys.Console").is_none(),
            "dc holds only Sys.Audit/Modify and SDN.*"
        );
        assert!(cap["nodes"].get("VM.Audit").is_none());
        // A user name with its realm and the realm again is no user, as
        // in Proxmox (the realm is always appended).
        let twice = call(
            &sim,
            "extjs",
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[
                ("username", "root@pam"),
                ("password", DEFAULT_PASSWORD),
                ("realm", "pam"),
            ],
        );
        assert_eq!(
            (&twice.body["success"], &twice.body["status"]),
            (&json!(0), &json!(401))
        );
        // Without realm the user name carries it.
        let plain = ok(
            &sim,
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", DEFAULT_PASSWORD)],
        );
        assert_eq!(plain["username"], "root@pam");
    }
}

#[test]
fn the_ui_renews_its_ticket_with_the_ticket_as_password() {
    for version in PveVersion::ALL {
        let sim = start(version);
        let (first, cred) = ui_login(&sim, "root", DEFAULT_PASSWORD, "pam");
        let ticket = first["ticket"].as_str().expect("ticket");
        // What Workspace.js sends on load and every 15 minutes (json,
        // cookie and all).
        let renewed = call(
            &sim,
            "json",
            &cred,
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", ticket)],
        );
        assert_eq!(renewed.http, 200, "[{version}] {renewed:?}");
        let data = &renewed.body["data"];
        assert_schema_true(version, "POST", "/access/ticket", data);
        assert_eq!(data["username"], "root@pam");
        assert_ne!(data["ticket"], first["ticket"]);
        assert_eq!(data["cap"], first["cap"]);
        // The new ticket works, the old one still does (until it expires).
        let new = Cred::Ticket {
            ticket: data["ticket"].as_str().unwrap().to_owned(),
            csrf: data["CSRFPreventionToken"].as_str().unwrap().to_owned(),
        };
        assert_eq!(
            call(&sim, "extjs", &new, "GET", "/version", &[]).body["success"],
            1
        );
        assert_eq!(
            call(&sim, "extjs", &cred, "GET", "/version", &[]).body["success"],
            1
        );
        // A ticket is no password for another user (but root's may make
        // anyone's ticket); a made-up one is none at all.
        make_alice(&sim, &cred);
        let (alice, _) = ui_login(&sim, "alice", "alice-secret-1", "pve");
        let alice_ticket = alice["ticket"].as_str().unwrap();
        let stolen = call(
            &sim,
            "json",
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[("username", "root@pam"), ("password", alice_ticket)],
        );
        assert_eq!(stolen.http, 401, "[{version}] {stolen:?}");
        let by_root = ok(
            &sim,
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[("username", "alice@pve"), ("password", ticket)],
        );
        assert_eq!(by_root["username"], "alice@pve");
        let own = ok(
            &sim,
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[
                ("username", "alice"),
                ("realm", "pve"),
                ("password", alice_ticket),
            ],
        );
        assert_eq!(own["username"], "alice@pve");
        let forged = call(
            &sim,
            "json",
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[
                ("username", "root@pam"),
                ("password", "PVE:root@pam:00000000::x"),
            ],
        );
        assert_eq!(forged.http, 401);
        // `path` and `privs`: only a check, no ticket.
        let checked = ok(
            &sim,
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[
                ("username", "alice@pve"),
                ("password", "alice-secret-1"),
                ("path", "/"),
                ("privs", "Sys.Audit"),
            ],
        );
        assert_schema_true(version, "POST", "/access/ticket", &checked);
        assert!(checked.get("ticket").is_none(), "{checked}");
        assert_eq!(checked["username"], "alice@pve");
        let refused = call(
            &sim,
            "json",
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[
                ("username", "alice@pve"),
                ("password", "alice-secret-1"),
                ("path", "/"),
                ("privs", "Sys.Modify"),
            ],
        );
        assert_eq!(refused.http, 401);
    }
}

#[test]
fn a_pveauditor_made_through_the_api_logs_in_and_may_audit_only() {
    for version in PveVersion::ALL {
        let sim = start(version);
        let root = root_ticket(&sim);
        make_alice(&sim, &root);
        let users = ok(&sim, &root, "GET", "/access/users", &[]);
        assert!(
            users
                .as_array()
                .into_iter()
                .flatten()
                .any(|u| u["userid"] == "alice@pve"),
            "{users}"
        );
        // The login window: wrong password, wrong realm, then right.
        for (user, password, realm) in [
            ("alice", "not-her-password", "pve"),
            ("alice", "alice-secret-1", "pam"),
        ] {
            let a = call(
                &sim,
                "extjs",
                &Cred::Anonymous,
                "POST",
                "/access/ticket",
                &[
                    ("username", user),
                    ("password", password),
                    ("realm", realm),
                    ("new-format", "1"),
                ],
            );
            assert_eq!(
                a.body,
                json!({"data": null, "success": 0, "status": 401, "message": "authentication failure\n"}),
                "[{version}] {user}@{realm}"
            );
        }
        let (data, alice) = ui_login(&sim, "alice", "alice-secret-1", "pve");
        assert_schema_true(version, "POST", "/access/ticket", &data);
        assert_eq!(data["username"], "alice@pve");
        assert_eq!(
            data["clustername"], "orbitlab",
            "Sys.Audit shows the cluster name"
        );
        let vms = if version == PveVersion::V9_1 {
            json!({"VM.Audit": 1, "VM.GuestAgent.Audit": 1})
        } else {
            json!({"VM.Audit": 1})
        };
        assert_eq!(
            data["cap"],
            json!({
                "access": {},
                "dc": {"SDN.Audit": 1, "Sys.Audit": 1},
                "mapping": {"Mapping.Audit": 1},
                "nodes": {"Sys.Audit": 1},
                "sdn": {"SDN.Audit": 1},
                "storage": {"Datastore.Audit": 1},
                "vms": vms,
            }),
            "[{version}]"
        );

        // Her permissions, as Proxmox lists them: every top-level path.
        let all = ok(&sim, &alice, "GET", "/access/permissions", &[]);
        assert_schema_true(version, "GET", "/access/permissions", &all);
        let mut paths: Vec<&String> = all.as_object().expect("paths").keys().collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "/",
                "/access",
                "/access/groups",
                "/nodes",
                "/pool",
                "/sdn",
                "/storage",
                "/vms"
            ],
            "[{version}] {all}"
        );
        assert!(
            all.as_object()
                .unwrap()
                .values()
                .all(|p| p == &auditor_privs(version)),
            "[{version}] {all}"
        );
        let root_path = ok(&sim, &alice, "GET", "/access/permissions", &[("path", "/")]);
        assert_eq!(root_path, json!({"/": auditor_privs(version)}));
        assert!(root_path["/"].get("Sys.Modify").is_none());
        // Someone else's permissions need Sys.Audit on /access, which she has.
        let roots = ok(
            &sim,
            &alice,
            "GET",
            "/access/permissions",
            &[("userid", "root@pam"), ("path", "/")],
        );
        assert_eq!(roots["/"]["Sys.Modify"], 1);

        // What the UI reads on load works for her...
        for path in [
            "/version",
            "/cluster/resources",
            "/cluster/tasks",
            "/cluster/options",
            "/cluster/status",
            "/access/domains",
            "/nodes/localhost/subscription",
        ] {
            let a = call(&sim, "extjs", &alice, "GET", path, &[]);
            assert_eq!(a.body["success"], 1, "[{version}] {path}: {a:?}");
        }
        let options = ok(&sim, &alice, "GET", "/cluster/options", &[]);
        assert_eq!(
            options["keyboard"], "en-us",
            "Sys.Audit sees the whole config"
        );
        let sub = ok(&sim, &alice, "GET", "/nodes/localhost/subscription", &[]);
        assert!(sub["serverid"].is_string());
        // ... and changing anything is refused.
        for (method, path, form) in [
            (
                "PUT",
                "/access/acl",
                vec![
                    ("path", "/"),
                    ("roles", "Administrator"),
                    ("users", "alice@pve"),
                ],
            ),
            ("POST", "/access/users", vec![("userid", "mallory@pve")]),
            ("POST", "/access/roles", vec![("roleid", "Mine")]),
        ] {
            let a = call(&sim, "extjs", &alice, method, path, &form);
            assert_eq!(
                (a.http, &a.body["success"], &a.body["status"]),
                (200, &json!(0), &json!(403)),
                "[{version}] {method} {path}: {a:?}"
            );
        }
        // Her ticket renews like root's.
        let renewed = ok(
            &sim,
            &alice,
            "POST",
            "/access/ticket",
            &[
                ("username", "alice@pve"),
                ("password", data["ticket"].as_str().unwrap()),
            ],
        );
        assert_eq!(renewed["cap"], data["cap"]);
    }
}

#[test]
fn users_without_password_disabled_or_without_privileges_are_refused() {
    for version in PveVersion::ALL {
        let sim = start(version);
        let root = root_ticket(&sim);
        for (userid, extra) in [
            ("nopass@pve", vec![]),
            (
                "off@pve",
                vec![("password", "off-secret-1"), ("enable", "0")],
            ),
            ("plain@pve", vec![("password", "plain-secret-1")]),
        ] {
            let mut form = vec![("userid", userid)];
            form.extend(extra);
            assert_eq!(
                call(&sim, "extjs", &root, "POST", "/access/users", &form).body["success"],
                1
            );
        }
        let login = |user: &str, password: &str| {
            call(
                &sim,
                "extjs",
                &Cred::Anonymous,
                "POST",
                "/access/ticket",
                &[("username", user), ("password", password), ("realm", "pve")],
            )
            .body
        };
        assert_eq!(login("nopass", "").get("success"), Some(&json!(0)));
        assert_eq!(
            login("nopass", "anything-at-all").get("success"),
            Some(&json!(0))
        );
        assert_eq!(
            login("off", "off-secret-1").get("status"),
            Some(&json!(401)),
            "[{version}] disabled"
        );
        // A user with no role logs in and sees (almost) nothing.
        let (data, plain) = ui_login(&sim, "plain", "plain-secret-1", "pve");
        assert!(data.get("clustername").is_none(), "no Sys.Audit: {data}");
        assert!(
            data["cap"]
                .as_object()
                .unwrap()
                .values()
                .all(|g| g == &json!({})),
            "{data}"
        );
        assert_eq!(
            ok(&sim, &plain, "GET", "/access/permissions", &[]),
            json!({})
        );
        assert_eq!(
            ok(&sim, &plain, "GET", "/access/permissions", &[("path", "/")]),
            json!({"/": {}})
        );
        let status = call(&sim, "extjs", &plain, "GET", "/cluster/status", &[]);
        assert_eq!(status.body["status"], 403);
        let res = ok(&sim, &plain, "GET", "/cluster/resources", &[]);
        assert!(
            res.as_array().unwrap().iter().all(|e| e["type"] == "node"),
            "{res}"
        );
        // Root's permissions are not hers to read.
        let other = call(
            &sim,
            "json",
            &plain,
            "GET",
            "/access/permissions",
            &[("userid", "root@pam")],
        );
        assert_eq!(other.http, 403);
    }
}
