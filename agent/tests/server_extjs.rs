//! The `extjs` format of the local API (`/api2/extjs/...`, what Proxmox's
//! UI helpers call), as pveproxy's formatter writes it: HTTP 200 with
//! `success` (and the real `status` on failure) in the body, failures of
//! the credential check keeping their HTTP status; the `json` format
//! unchanged beside it; and CORS for the web UI's origins only, on both
//! formats. (Tickets over `extjs` against the simulated Proxmox are in
//! `server_auth.rs`.)

mod server_common;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::{Value, json};
use server_common::*;

const ADMIN_TOKEN: &str = "PVEAPIToken=admin@pve!ui=admin-secret";
const AUDIT_TOKEN: &str = "PVEAPIToken=audit@pve!ui=audit-secret";
const UI: &str = "https://pve1.example.com:8006";

fn server() -> Running {
    start_with(
        CannedAuth::with(&[
            ("admin@pve!ui", "admin-secret", ADMIN),
            ("audit@pve!ui", "audit-secret", &["Sys.Audit"]),
        ]),
        |c| c.allowed_origins = vec![UI.parse().unwrap()],
    )
}

fn send(token: &str, request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.header("Authorization", token).send().unwrap();
    let status = response.status();
    (status, response.json::<Value>().unwrap_or(Value::Null))
}

fn keys(body: &Value) -> BTreeSet<&str> {
    body.as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// An `extjs` failure: HTTP 200, `success` 0, the real status, a message,
/// `data` null; `errors` only when there are some.
fn assert_extjs_failure(status: StatusCode, body: &Value, real: u16) {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], json!(0), "{body}");
    assert_eq!(body["status"], json!(real), "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
    let expected: BTreeSet<&str> = if body.get("errors").is_some() {
        assert!(
            !body["errors"].as_object().unwrap().is_empty(),
            "an empty errors map: {body}"
        );
        ["success", "data", "message", "status", "errors"].into()
    } else {
        ["success", "data", "message", "status"].into()
    };
    assert_eq!(keys(body), expected);
}

#[test]
fn extjs_success_answers_the_json_data_with_success_1() {
    let s = server();
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client
            .post(s.url("/api2/extjs/orbitlab/sectors"))
            .form(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"success": 1, "data": [{"kind": "Sector", "name": "web", "action": "created"}]})
    );

    for path in [
        "/orbitlab/sectors/web",
        "/orbitlab/sectors?ls=1",
        "/orbitlab",
    ] {
        let (_, json) = send(
            ADMIN_TOKEN,
            s.client.get(s.url(&format!("/api2/json{path}"))),
        );
        let (status, extjs) = send(
            ADMIN_TOKEN,
            s.client.get(s.url(&format!("/api2/extjs{path}"))),
        );
        assert_eq!(status, StatusCode::OK);
        assert_eq!(keys(&extjs), ["data", "success"].into(), "{extjs}");
        assert_eq!(extjs["success"], json!(1));
        assert_eq!(extjs["data"], json["data"], "{path}");
    }

    // The apply route too, and ExtJS's cache buster `_dc` is ignored (in
    // both formats, as pveproxy ignores it).
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client
            .post(s.url("/api2/extjs/orbitlab-apply?dry-run=1&_dc=1712345678901"))
            .body(SECTOR_WEB),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], json!(1));
    assert_eq!(body["data"][0]["name"], "web", "{body}");
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client
            .get(s.url("/api2/json/orbitlab/sectors/web?_dc=1712345678901")),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn extjs_400_names_the_fields_in_errors_with_http_200() {
    let s = server();
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client
            .post(s.url("/api2/extjs/orbitlab/sectors"))
            .json(&json!({"name": "web", "cidr": "10.0.0.0/33"})),
    );
    assert_extjs_failure(status, &body, 400);
    assert!(body["message"].as_str().unwrap().contains("cidr"), "{body}");
    assert!(
        body["errors"]["properties"]
            .as_str()
            .is_some_and(|r| r.contains("cidr")),
        "{body}"
    );
    // A whole-set rule names the manifest field.
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client.post(s.url("/api2/extjs/orbitlab/lxc")).form(&[
            ("name", "app1"),
            ("sector", "nowhere"),
            (
                "template",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            ),
        ]),
    );
    assert_extjs_failure(status, &body, 400);
    assert!(body["errors"]["spec.sector"].is_string(), "{body}");
    assert_eq!(s.api.store().generation().unwrap().0, 0, "a refusal wrote");

    let (status, body) = send(
        ADMIN_TOKEN,
        s.client
            .get(s.url("/api2/extjs/orbitlab/sectors?verbose=1")),
    );
    assert_extjs_failure(status, &body, 400);
    assert!(body["errors"]["verbose"].is_string(), "{body}");

    // Other failures likewise: 404 with and without fields, 405, 413.
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client.get(s.url("/api2/extjs/orbitlab/vpcs")),
    );
    assert_extjs_failure(status, &body, 404);
    assert!(body["errors"]["path"].is_string(), "{body}");
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client.get(s.url("/api2/extjs/orbitlab/sectors/nope")),
    );
    assert_extjs_failure(status, &body, 404);
    assert!(body.get("errors").is_none(), "{body}");
    let response = s
        .client
        .get(s.url("/api2/extjs/orbitlab-apply"))
        .header("Authorization", ADMIN_TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    let (status, body) = (response.status(), response.json::<Value>().unwrap());
    assert_extjs_failure(status, &body, 405);
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client
            .post(s.url("/api2/extjs/orbitlab-apply"))
            .body("#".repeat(1024 * 1024 + 1)),
    );
    assert_extjs_failure(status, &body, 413);
    let (status, body) = send(ADMIN_TOKEN, s.client.get(s.url("/api2/extjs/nodes")));
    assert_extjs_failure(status, &body, 404);
}

#[test]
fn extjs_403_is_refused_before_the_body_with_http_200() {
    let s = server();
    let response = s
        .client
        .post(s.url("/api2/extjs/orbitlab/sectors"))
        .header("Authorization", AUDIT_TOKEN)
        .form(&[("name", "web"), ("cidr", "172.16.0.0/24")])
        .send()
        .unwrap();
    // Answered without reading the body: the connection is closed after.
    assert_eq!(response.headers()["connection"], "close");
    let (status, body) = (response.status(), response.json::<Value>().unwrap());
    assert_extjs_failure(status, &body, 403);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("audit@pve!ui") && message.contains("Sys.Modify"),
        "{message}"
    );
    // A body that is not even YAML: refused for the privileges alone.
    let (status, body) = send(
        AUDIT_TOKEN,
        s.client
            .post(s.url("/api2/extjs/orbitlab-apply"))
            .body("{{{{ not yaml"),
    );
    assert_extjs_failure(status, &body, 403);
    assert!(body["message"].as_str().unwrap().contains("Sys.Modify"));
    assert_eq!(s.api.store().generation().unwrap().0, 0);
}

#[test]
fn extjs_401_keeps_its_http_status() {
    let s = server();
    // No credential at all.
    let response = s
        .client
        .get(s.url("/api2/extjs/orbitlab/sectors"))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.json::<Value>().unwrap();
    assert_eq!(body["success"], json!(0), "{body}");
    assert_eq!(body["status"], json!(401), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("PVEAPIToken=USER@REALM!ID=SECRET"),
        "{body}"
    );
    // A refused one, on a write with a body.
    let (status, body) = send(
        "PVEAPIToken=admin@pve!ui=wrong-secret",
        s.client
            .post(s.url("/api2/extjs/orbitlab/sectors"))
            .form(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["status"], json!(401), "{body}");
    assert!(!body.to_string().contains("wrong-secret"));
}

#[test]
fn the_json_format_is_unchanged() {
    let s = server();
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client.get(s.url("/api2/json/orbitlab/sectors")),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"data": []}));
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client.get(s.url("/api2/json/orbitlab/sectors/nope")),
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(keys(&body), ["data", "errors", "message"].into(), "{body}");
    assert_eq!(body["errors"], json!({}));
    let (status, body) = send(
        ADMIN_TOKEN,
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .form(&[("name", "web"), ("cidr", "10.0.0.0/33")]),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(keys(&body), ["data", "errors", "message"].into(), "{body}");
    let (status, body) = send(
        AUDIT_TOKEN,
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .form(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.get("success").is_none() && body.get("status").is_none());
    let response = s
        .client
        .get(s.url("/api2/json/orbitlab/sectors"))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

fn preflight(s: &Running, path: &str, origin: &str) -> Response {
    s.client
        .request(reqwest::Method::OPTIONS, s.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "csrfpreventiontoken,content-type,x-requested-with",
        )
        .send()
        .unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[test]
fn preflight_works_on_both_formats_for_the_web_ui_origin_only() {
    let s = server();
    for (path, methods) in [
        ("/api2/extjs/orbitlab/sectors", "GET, POST, PUT, DELETE"),
        ("/api2/extjs/orbitlab-apply", "POST"),
        ("/api2/json/orbitlab/sectors/web", "GET, POST, PUT, DELETE"),
    ] {
        let ok = preflight(&s, path, UI);
        assert_eq!(ok.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(header(&ok, "access-control-allow-origin"), Some(UI));
        assert_eq!(
            header(&ok, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(header(&ok, "access-control-allow-methods"), Some(methods));
        assert_eq!(header(&ok, "vary"), Some("Origin"));
        let allowed: BTreeSet<String> = header(&ok, "access-control-allow-headers")
            .unwrap()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        for needed in [
            "csrfpreventiontoken",
            "authorization",
            "content-type",
            "accept",
            "x-requested-with",
        ] {
            assert!(allowed.contains(needed), "{needed} missing: {allowed:?}");
        }
        // Any other origin: 403 and no CORS header at all.
        for other in [
            "https://evil.example.net",
            "https://pve1.example.com:8007",
            "http://pve1.example.com:8006",
            "https://PVE1.example.com:8006",
            "https://pve1.example.com:8006/",
            "null",
        ] {
            let refused = preflight(&s, path, other);
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{other}");
            for name in [
                "access-control-allow-origin",
                "access-control-allow-credentials",
                "access-control-allow-methods",
                "access-control-allow-headers",
            ] {
                assert!(header(&refused, name).is_none(), "{other}: {name}");
            }
        }
    }
    let unknown = preflight(&s, "/api2/extjs/nodes", UI);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[test]
fn answers_carry_cors_headers_only_for_a_listed_origin() {
    let s = server();
    let get = |path: &str, origin: &str| {
        s.client
            .get(s.url(path))
            .header("Authorization", ADMIN_TOKEN)
            .header("Origin", origin)
            .send()
            .unwrap()
    };
    for path in [
        "/api2/extjs/orbitlab",
        "/api2/json/orbitlab",
        "/api2/extjs/orbitlab/vpcs",
    ] {
        let allowed = get(path, UI);
        assert_eq!(header(&allowed, "access-control-allow-origin"), Some(UI));
        assert_eq!(
            header(&allowed, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(header(&allowed, "vary"), Some("Origin"));
        assert_eq!(header(&allowed, "cache-control"), Some("no-store"));
        let other = get(path, "https://pve2.example.com:8006");
        assert_eq!(other.status(), StatusCode::OK);
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
        ] {
            assert!(header(&other, name).is_none(), "{path}: {name}");
        }
        // Whether they are there depends on the Origin, for every caller.
        assert_eq!(header(&other, "vary"), Some("Origin"));
        assert_eq!(header(&other, "cache-control"), Some("no-store"));
    }
    // A refusal to a listed origin carries them too, so the page can read
    // why (and a 401 tells the UI to log in again).
    let refused = s
        .client
        .get(s.url("/api2/extjs/orbitlab"))
        .header("Origin", UI)
        .send()
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&refused, "access-control-allow-origin"), Some(UI));

    // The list can be replaced while serving.
    let tunnel = "https://localhost:8006";
    assert!(
        header(
            &get("/api2/json/orbitlab", tunnel),
            "access-control-allow-origin"
        )
        .is_none()
    );
    s.handle.set_allowed_origins(vec![tunnel.parse().unwrap()]);
    assert_eq!(s.handle.allowed_origins(), [tunnel]);
    assert_eq!(
        header(
            &get("/api2/json/orbitlab", tunnel),
            "access-control-allow-origin"
        ),
        Some(tunnel)
    );
    assert!(
        header(
            &get("/api2/json/orbitlab", UI),
            "access-control-allow-origin"
        )
        .is_none()
    );
}
