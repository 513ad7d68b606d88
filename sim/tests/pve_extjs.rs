//! The `extjs` format (`/api2/extjs/...`, what the Proxmox web UI uses for
//! most calls and its login window) next to `json`, as pveproxy's
//! formatters (`PVE/APIServer/Formatter/Standard.pm`) answer, on both
//! Proxmox VE versions:
//!
//! - success: HTTP 200, `{"data": ..., "success": 1}`;
//! - what the API refuses or a handler's error (400 with per-parameter
//!   `errors`, a handler's 401, 403, 500, 501): HTTP 200 with `success` 0,
//!   the would-be `status` and the `message` (ending in a newline as
//!   Proxmox's errors do); `json` answers the same status over HTTP with
//!   `{"data": null, "message": ...}`;
//! - what pveproxy refuses before any handler (no or a bad ticket, a bad
//!   CSRF token, an offline node): the same plain HTTP error in both;
//! - authentication and CSRF checks as for `json`; `_dc` is ignored; the
//!   request log records the format and the API status.

mod pve_ui_common;

use std::collections::BTreeMap;

use orbitlab_sim::pve::{AuthConfig, DEFAULT_PASSWORD, PveVersion, SimHandle};
use pve_ui_common::{Cred, assert_schema_true, call, root_ticket, start, start_with};
use serde_json::{Value, json};

/// A simulator with `root@pam!audit` (secret `audit-secret`) holding
/// only `VM.Audit` on `/`.
fn with_auditor_token(version: PveVersion) -> SimHandle {
    start_with(version, |cfg| {
        let mut auth: AuthConfig = cfg.auth.clone();
        auth.tokens.push(orbitlab_sim::pve::ApiToken {
            user: "root@pam".into(),
            name: "audit".into(),
            secret: "audit-secret".into(),
        });
        auth.privileges
            .insert("root@pam!audit".into(), vec!["VM.Audit".into()]);
        cfg.auth = auth;
    })
}

fn audit_token() -> Cred {
    Cred::Token("root@pam!audit".into(), "audit-secret".into())
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

#[test]
fn extjs_success_wraps_the_same_data_with_success_1() {
    for version in PveVersion::ALL {
        let sim = start(version);
        let json = call(&sim, "json", &Cred::root_token(), "GET", "/version", &[]);
        let extjs = call(&sim, "extjs", &Cred::root_token(), "GET", "/version", &[]);
        assert_eq!((json.http, extjs.http), (200, 200), "[{version}]");
        assert_eq!(keys(&json.body), ["data"], "[{version}] {:?}", json.body);
        assert_eq!(
            keys(&extjs.body),
            ["data", "success"],
            "[{version}] {:?}",
            extjs.body
        );
        assert_eq!(extjs.body["success"], 1);
        assert_eq!(extjs.body["data"], json.body["data"], "[{version}]");
        assert_schema_true(version, "GET", "/version", &extjs.body["data"]);
        // A list, a write (with a ticket and its CSRF token), a null answer.
        let root = root_ticket(&sim);
        let nodes = call(&sim, "extjs", &root, "GET", "/nodes", &[]);
        assert_eq!(nodes.body["data"].as_array().map(Vec::len), Some(3));
        let made = call(
            &sim,
            "extjs",
            &root,
            "POST",
            "/access/roles",
            &[("roleid", "Watcher"), ("privs", "Sys.Audit")],
        );
        assert_eq!(
            (made.http, &made.body),
            (200, &json!({"data": null, "success": 1}))
        );
    }
}

#[test]
fn extjs_refusals_of_the_api_answer_200_with_success_0_and_the_status() {
    for version in PveVersion::ALL {
        let sim = with_auditor_token(version);
        // 403: a privilege missing.
        let extjs = call(&sim, "extjs", &audit_token(), "GET", "/cluster/status", &[]);
        assert_eq!(extjs.http, 200, "[{version}] {extjs:?}");
        assert_eq!(
            extjs.body,
            json!({
                "data": null, "success": 0, "status": 403,
                "message": "Permission check failed (/, Sys.Audit)\n",
            }),
            "[{version}]"
        );
        let json = call(&sim, "json", &audit_token(), "GET", "/cluster/status", &[]);
        assert_eq!(json.http, 403);
        assert_eq!(
            json.reason.as_deref(),
            Some("Permission check failed (/, Sys.Audit)")
        );
        assert_eq!(
            json.body,
            json!({"data": null, "message": "Permission check failed (/, Sys.Audit)\n"})
        );

        // 401 from the ticket handler (a wrong password), as the login
        // window sees it.
        let login = call(
            &sim,
            "extjs",
            &Cred::Anonymous,
            "POST",
            "/access/ticket",
            &[
                ("username", "root"),
                ("password", "wrong-password"),
                ("realm", "pam"),
                ("new-format", "1"),
            ],
        );
        assert_eq!(login.http, 200, "[{version}] {login:?}");
        assert_eq!(
            login.body,
            json!({"data": null, "success": 0, "status": 401, "message": "authentication failure\n"})
        );

        // 400: the form fields' errors, each by name.
        let root = root_ticket(&sim);
        let bad = call(
            &sim,
            "extjs",
            &root,
            "POST",
            "/access/users",
            &[
                ("userid", "no realm"),
                ("password", "short"),
                ("colour", "red"),
            ],
        );
        assert_eq!(bad.http, 200, "[{version}] {bad:?}");
        assert_eq!(bad.body["success"], 0);
        assert_eq!(bad.body["status"], 400);
        assert_eq!(bad.body["message"], "Parameter verification failed.\n");
        assert_eq!(bad.body["data"], Value::Null);
        let errors: BTreeMap<String, String> =
            serde_json::from_value(bad.body["errors"].clone()).expect("errors by field");
        assert_eq!(
            errors.keys().map(String::as_str).collect::<Vec<_>>(),
            ["colour", "password", "userid"],
            "[{version}] {errors:?}"
        );
        assert!(
            errors["password"].contains("at least 8 characters"),
            "{errors:?}"
        );
        assert!(
            errors["colour"].contains("not defined in schema"),
            "{errors:?}"
        );
        let json = call(
            &sim,
            "json",
            &root,
            "POST",
            "/access/users",
            &[
                ("userid", "no realm"),
                ("password", "short"),
                ("colour", "red"),
            ],
        );
        assert_eq!(json.http, 400);
        assert_eq!(json.body["errors"], bad.body["errors"]);
        assert_eq!(json.body["message"], "Parameter verification failed.\n");
        assert!(json.body.get("success").is_none());

        // 500: a handler's error.
        let ceph = call(&sim, "extjs", &root, "GET", "/nodes/pve1/ceph/status", &[]);
        assert_eq!(
            (ceph.http, &ceph.body),
            (
                200,
                &json!({"data": null, "success": 0, "status": 500,
                        "message": "binary not installed: /usr/bin/ceph-mon\n"})
            ),
            "[{version}]"
        );

        // 501: no such method.
        let none = call(&sim, "extjs", &root, "GET", "/cluster/no-such-thing", &[]);
        assert_eq!(none.http, 200);
        assert_eq!(
            (&none.body["success"], &none.body["status"]),
            (&json!(0), &json!(501))
        );
        assert!(
            none.body["message"].as_str().is_some_and(
                |m| m.starts_with("Method 'GET /cluster/no-such-thing' not implemented")
            ),
            "{none:?}"
        );
    }
}

#[test]
fn extjs_authentication_and_unreachable_nodes_fail_as_plain_http_errors() {
    for version in PveVersion::ALL {
        let sim = start(version);
        for format in ["json", "extjs"] {
            // No ticket at all.
            let a = call(&sim, format, &Cred::Anonymous, "GET", "/version", &[]);
            assert_eq!(a.http, 401, "[{version}] {format} {a:?}");
            assert_eq!(a.reason.as_deref(), Some("No ticket"));
            assert!(a.body.get("success").is_none(), "{a:?}");
            // A ticket that is none.
            let forged = Cred::Ticket {
                ticket: "PVE:root@pam:00000000::forged".into(),
                csrf: "x".into(),
            };
            assert_eq!(
                call(&sim, format, &forged, "GET", "/version", &[]).http,
                401
            );
            // A bad API token secret.
            let bad = Cred::Token("root@pam!orbitlab".into(), "wrong".into());
            assert_eq!(call(&sim, format, &bad, "GET", "/version", &[]).http, 401);
        }
        // CSRF: a write with a genuine ticket but without its token is
        // refused before the API, in both formats; with it, accepted.
        let Cred::Ticket { ticket, csrf } = root_ticket(&sim) else {
            unreachable!()
        };
        let no_csrf = Cred::Ticket {
            ticket: ticket.clone(),
            csrf: String::new(),
        };
        for format in ["json", "extjs"] {
            let a = call(
                &sim,
                format,
                &no_csrf,
                "POST",
                "/access/roles",
                &[("roleid", "Nope")],
            );
            assert_eq!(a.http, 401, "[{version}] {format} {a:?}");
            assert_eq!(
                a.reason.as_deref(),
                Some("Permission denied - invalid csrf token")
            );
        }
        let good = Cred::Ticket { ticket, csrf };
        let a = call(
            &sim,
            "extjs",
            &good,
            "POST",
            "/access/roles",
            &[("roleid", "Fine")],
        );
        assert_eq!(a.body["success"], 1, "{a:?}");
        // An offline node: pveproxy's proxy gives up (595) in every format.
        sim.set_node_online("pve2", false);
        for format in ["json", "extjs"] {
            let a = call(&sim, format, &good, "GET", "/nodes/pve2/status", &[]);
            assert_eq!(a.http, 595, "[{version}] {format} {a:?}");
        }
    }
}

#[test]
fn extjs_drops_the_cache_breaker_and_is_recorded_with_its_format() {
    let sim = with_auditor_token(PveVersion::V9_1);
    let a = call(
        &sim,
        "extjs",
        &Cred::root_token(),
        "GET",
        "/cluster/resources",
        &[("_dc", "1718000000000"), ("type", "node")],
    );
    assert_eq!(a.body["success"], 1, "{a:?}");
    assert_eq!(a.body["data"].as_array().map(Vec::len), Some(3));
    let a = call(
        &sim,
        "json",
        &Cred::root_token(),
        "GET",
        "/version",
        &[("_dc", "1")],
    );
    assert_eq!(a.http, 200, "{a:?}");
    call(&sim, "extjs", &audit_token(), "GET", "/cluster/status", &[]);
    let log = sim.requests();
    let formats: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|r| (r.format.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        formats,
        [
            ("extjs", "/cluster/resources", 200),
            ("json", "/version", 200),
            ("extjs", "/cluster/status", 403),
        ]
    );
    assert!(!log[0].params.contains_key("_dc"), "{:?}", log[0].params);
    // Paths under neither format are not the API.
    let other = call(&sim, "html", &Cred::root_token(), "GET", "/version", &[]);
    assert_eq!(other.http, 404);
    // The password of a login through the window is not recorded.
    pve_ui_common::ui_login(&sim, "root", DEFAULT_PASSWORD, "pam");
    let last = sim.requests().pop().expect("the login");
    assert_eq!(
        (last.format.as_str(), last.params["password"].as_str()),
        ("extjs", "<redacted>")
    );
}
