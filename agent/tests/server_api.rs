//! The local API over HTTPS with a canned authenticator: every route of
//! the path tree, refusals with their fields, limits, CORS, start-up
//! errors and shutdown. (Authentication against Proxmox itself is in
//! `server_auth.rs`.)

mod server_common;

use std::net::TcpStream;
use std::sync::Arc;

use orbitlab_agent::server::{self, ServerError};
use orbitlab_engine::api::ApiPath;
use reqwest::StatusCode;
use reqwest::blocking::RequestBuilder;
use serde_json::{Value, json};
use server_common::*;

const TOKEN: &str = "PVEAPIToken=admin@pve!ui=admin-secret";

fn admin() -> Running {
    start(CannedAuth::with(&[("admin@pve!ui", "admin-secret", ADMIN)]))
}

fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request
        .header("Authorization", TOKEN)
        .send()
        .expect("answer");
    let status = response.status();
    let body = response.json::<Value>().unwrap_or(Value::Null);
    (status, body)
}

#[test]
fn create_then_get_over_verified_https() {
    let s = admin();
    let (status, body) = send(s.client.post(s.url("/api2/json/orbitlab/sectors")).form(&[
        ("name", "web"),
        ("cidr", "172.16.0.0/24"),
        ("alias", "front"),
    ]));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!([{"kind": "Sector", "name": "web", "action": "created"}])
    );

    let (status, body) = send(s.client.get(s.url("/api2/json/orbitlab/sectors/web")));
    assert_eq!(status, StatusCode::OK);
    let expected = s
        .api
        .get(&"/sectors/web".parse::<ApiPath>().unwrap())
        .unwrap();
    assert_eq!(body["data"], expected);
    assert_eq!(body["data"]["spec"]["alias"], "front");

    let (status, body) = send(s.client.get(s.url("/api2/json/orbitlab/sectors?ls=1")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!([{"name": "web"}]));
    let (_, root) = send(s.client.get(s.url("/api2/json/orbitlab")));
    assert!(
        root["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "sectors")
    );

    // A client that trusts another CA refuses the server's certificate.
    let stranger = client_trusting(&server_tls().ca.pem());
    let err = stranger
        .get(s.url("/api2/json/orbitlab"))
        .header("Authorization", TOKEN)
        .send()
        .expect_err("unknown CA");
    assert!(err.is_connect() || err.is_request(), "{err}");
}

#[test]
fn refused_changes_name_the_field_and_change_nothing() {
    let s = admin();
    let (status, body) = send(
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .json(&json!({"name": "web", "cidr": "10.0.0.0/33"})),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("cidr"), "{message}");
    assert!(!body["errors"].as_object().unwrap().is_empty(), "{body}");

    // A whole-set rule: the instance's Sector does not exist.
    let (status, body) = send(s.client.post(s.url("/api2/json/orbitlab/lxc")).form(&[
        ("name", "app1"),
        ("sector", "nowhere"),
        (
            "template",
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        ),
    ]));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["errors"]["spec.sector"].is_string(), "{body}");
    assert!(s.api.store().generation().unwrap().0 == 0);

    let (status, body) = send(s.client.get(s.url("/api2/json/orbitlab/sectors/nope")));
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/sectors/nope does not exist")
    );
    let (status, body) = send(s.client.get(s.url("/api2/json/orbitlab/vpcs")));
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["errors"]["path"]
            .as_str()
            .unwrap()
            .contains("unknown collection")
    );
}

#[test]
fn set_delete_and_apply() {
    let s = admin();
    let apply = |query: &str, yaml: &str| {
        send(
            s.client
                .post(s.url(&format!("/api2/json/orbitlab-apply{query}")))
                .header("Content-Type", "application/yaml")
                .body(yaml.to_owned()),
        )
    };
    let lxc = "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: app1\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n";
    let both = format!("{SECTOR_WEB}---\n{lxc}");

    let (status, body) = apply("?dry-run=1", &both);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["action"], "created");
    assert_eq!(s.api.store().generation().unwrap().0, 0, "a dry run wrote");

    let (status, body) = apply("?source=all.yaml", &both);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    let (status, body) = apply(
        "?source=bad.yaml",
        "apiVersion: orbitlab.io/v1\nkind: Sector\nmetadata:\n  name: x\nspec:\n  cidr: nope\n",
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("bad.yaml"),
        "{body}"
    );

    let (status, body) = send(
        s.client
            .put(s.url("/api2/json/orbitlab/sectors/web"))
            .form(&[("alias", "front"), ("description", "web tier")]),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["action"], "configured");
    let (status, _) = send(
        s.client
            .put(s.url("/api2/json/orbitlab/sectors/web"))
            .form(&[("delete", "alias")]),
    );
    assert_eq!(status, StatusCode::OK);
    let got = s.api.get(&"/sectors/web".parse().unwrap()).unwrap();
    assert!(got["spec"].get("alias").is_none(), "{got}");
    assert_eq!(got["metadata"]["description"], "web tier");

    let (status, body) = send(s.client.delete(s.url("/api2/json/orbitlab/sectors/web")));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"].as_str().unwrap().contains("/lxc/app1"),
        "{body}"
    );
    let (status, body) = send(
        s.client
            .delete(s.url("/api2/json/orbitlab/sectors/web?force=1")),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    let (status, _) = send(s.client.delete(s.url("/api2/json/orbitlab/sectors")));
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn limits_and_http_errors() {
    let s = admin();
    let big = "#".repeat(1024 * 1024 + 1);
    let (status, body) = send(s.client.post(s.url("/api2/json/orbitlab-apply")).body(big));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    let response = s
        .client
        .get(s.url("/api2/json/orbitlab-apply"))
        .header("Authorization", TOKEN)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");

    let (status, _) = send(s.client.get(s.url("/api2/json/nodes")));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .header("Content-Type", "text/xml")
            .body("<sector/>"),
    );
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = send(s.client.get(s.url("/api2/json/orbitlab/sectors?verbose=1")));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["verbose"].is_string());
}

#[test]
fn permissions_and_the_check_cache() {
    let auth = CannedAuth::with(&[
        ("admin@pve!ui", "admin-secret", ADMIN),
        ("audit@pve!ui", "audit-secret", &["Sys.Audit"]),
        (
            "net@pve!ui",
            "net-secret",
            &["Sys.Audit", "Sys.Modify", "SDN.Allocate"],
        ),
    ]);
    let s = start(auth.clone());
    let as_user = |token: &str, request: RequestBuilder| {
        let response = request
            .header("Authorization", format!("PVEAPIToken={token}"))
            .send()
            .unwrap();
        (response.status(), response.json::<Value>().unwrap())
    };
    let get = || s.client.get(s.url("/api2/json/orbitlab/sectors"));
    let create_sector = || {
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .form(&[("name", "web"), ("cidr", "172.16.0.0/24")])
    };

    assert_eq!(
        as_user("audit@pve!ui=audit-secret", get()).0,
        StatusCode::OK
    );
    let (status, body) = as_user("audit@pve!ui=audit-secret", create_sector());
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("audit@pve!ui") && message.contains("Sys.Modify"),
        "{message}"
    );

    // SDN rights are enough for Sectors, not for instances.
    assert_eq!(
        as_user("net@pve!ui=net-secret", create_sector()).0,
        StatusCode::OK
    );
    let (status, body) = as_user(
        "net@pve!ui=net-secret",
        s.client.post(s.url("/api2/json/orbitlab/lxc")).form(&[
            ("name", "app1"),
            ("sector", "web"),
            (
                "template",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            ),
        ]),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["message"].as_str().unwrap().contains("VM.Allocate"));
    // An apply needs the rights of every kind it holds.
    let (status, _) = as_user(
        "net@pve!ui=net-secret",
        s.client
            .post(s.url("/api2/json/orbitlab-apply"))
            .body(format!("{SECTOR_WEB}---\napiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: app1\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n")),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Wrong secret, no credential: 401; the secret is never echoed.
    let (status, body) = as_user("audit@pve!ui=wrong-secret", get());
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains("wrong-secret"));
    let response = get().send().unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Each accepted credential (read and write separately) was asked once.
    let before = auth.calls();
    for _ in 0..5 {
        assert_eq!(
            as_user("audit@pve!ui=audit-secret", get()).0,
            StatusCode::OK
        );
    }
    assert_eq!(auth.calls(), before, "cached checks were repeated");
    // A refusal (this one is from above) is remembered for a moment too.
    as_user("audit@pve!ui=wrong-secret", get());
    as_user("audit@pve!ui=wrong-secret", get());
    assert_eq!(auth.calls(), before);
}

#[test]
fn cors_only_for_listed_origins() {
    let s = start_with(
        CannedAuth::with(&[("admin@pve!ui", "admin-secret", ADMIN)]),
        |c| c.allowed_origins = vec!["https://pve1.example.com:8006".parse().unwrap()],
    );
    let preflight = |origin: &str| {
        s.client
            .request(
                reqwest::Method::OPTIONS,
                s.url("/api2/json/orbitlab/sectors"),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .unwrap()
    };
    let ok = preflight("https://pve1.example.com:8006");
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://pve1.example.com:8006"
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("CSRFPreventionToken")
    );
    let refused = preflight("https://evil.example.net");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let response = s
        .client
        .get(s.url("/api2/json/orbitlab"))
        .header("Authorization", TOKEN)
        .header("Origin", "https://pve1.example.com:8006")
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
}

#[test]
fn start_up_errors_name_the_file_or_port_and_shutdown_stops_listening() {
    let tls = server_tls();
    let api = orbitlab_engine::api::Api::new(orbitlab_engine::store::Store::open(tls.dir.path()));
    let auth: Arc<CannedAuth> = CannedAuth::with(&[]);

    let mut missing = config(&tls);
    missing.cert_file = tls.dir.path().join("nope.pem");
    let err = server::spawn(missing, api.clone(), auth.clone()).unwrap_err();
    assert!(matches!(err, ServerError::Cert(_)), "{err}");
    assert!(err.to_string().contains("nope.pem"), "{err}");

    let other = server_tls();
    let mut mismatched = config(&tls);
    mismatched.key_file = other.key.clone();
    let err = server::spawn(mismatched, api.clone(), auth.clone()).unwrap_err();
    assert!(err.to_string().contains("pve-ssl.key"), "{err}");
    assert!(
        err.to_string().contains("belongs to the certificate"),
        "{err}"
    );

    let running = server::spawn(config(&tls), api.clone(), auth.clone()).unwrap();
    let addr = running.local_addr();
    let mut busy = config(&tls);
    busy.listen = addr;
    let err = server::spawn(busy, api, auth).unwrap_err();
    assert!(matches!(err, ServerError::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    assert!(TcpStream::connect(addr).is_ok());
    running.shutdown();
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after shutdown"
    );
}

#[test]
fn the_vault_over_https_shows_values_only_on_explicit_privileged_calls() {
    const VALUE: &[u8] = b"vault-value-\x00\xff-9d2e";
    let mut console = ADMIN.to_vec();
    console.push("Sys.Console");
    let s = start(CannedAuth::with(&[
        ("root@pam!ci", "r", console.leak()),
        ("ops@pve!ci", "o", &["Sys.Audit", "Sys.Modify"]),
        ("audit@pve!ci", "a", &["Sys.Audit"]),
    ]));
    let call = |token: &str, request: RequestBuilder| {
        let response = request
            .header("Authorization", format!("PVEAPIToken={token}"))
            .send()
            .expect("answer");
        let status = response.status();
        let text = response.text().expect("body");
        (status, text)
    };
    let url = |path: &str| s.url(&format!("/api2/json/orbitlab{path}"));
    let put = |token| {
        call(
            token,
            s.client
                .put(url("/vault/values/app/db"))
                .header("Content-Type", "application/octet-stream")
                .body(VALUE.to_vec()),
        )
    };
    // An auditor cannot set; an operator can.
    let (status, text) = put("audit@pve!ci=a");
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("Sys.Modify"), "{text}");
    let (status, text) = put("ops@pve!ci=o");
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["data"]["version"],
        1
    );

    // Metadata for an auditor, without the value.
    let (status, text) = call("audit@pve!ci=a", s.client.get(url("/vault/secrets")));
    assert_eq!(status, StatusCode::OK, "{text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed["data"]["secrets"][0]["path"], "app/db");
    let (status, text) = call("audit@pve!ci=a", s.client.get(url("/vault/secrets/app/db")));
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(!text.contains("vault-value"), "{text}");

    // The value: only with Sys.Console too, and the same as in-process.
    for token in ["audit@pve!ci=a", "ops@pve!ci=o"] {
        let (status, text) = call(token, s.client.get(url("/vault/values/app/db")));
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        assert!(text.contains("Sys.Console"), "{text}");
    }
    let (status, text) = call("root@pam!ci=r", s.client.get(url("/vault/values/app/db")));
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["data"]["value"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, VALUE);
    let path: orbitlab_engine::vault::SecretPath = "app/db".parse().unwrap();
    let local = s
        .api
        .vault(orbitlab_engine::api::VaultCall::Value {
            path: path.clone(),
            version: None,
        })
        .unwrap();
    assert_eq!(answer["data"], local);

    // Changes need Sys.Modify; bad parameters name their field.
    let (status, _) = call("audit@pve!ci=a", s.client.post(url("/vault/rotate-key")));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, text) = call(
        "ops@pve!ci=o",
        s.client.post(url("/vault/rollback/app/db?to=x")),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let (status, text) = call("ops@pve!ci=o", s.client.post(url("/vault/rotate-key")));
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = call(
        "ops@pve!ci=o",
        s.client.delete(url("/vault/secrets/app/db")),
    );
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, text) = call("root@pam!ci=r", s.client.get(url("/vault/values/app/db")));
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
}

#[test]
fn a_label_selector_picks_objects_of_a_collection() {
    let s = admin();
    let lxc = |name: &str, labels: &str| {
        format!(
            "apiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: {name}\n  labels: {labels}\nspec:\n  sector: web\n  template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n"
        )
    };
    let yaml = [
        SECTOR_WEB.to_owned(),
        lxc("web1", "{app: web, env: prod}"),
        lxc("web2", "{app: web, env: dev}"),
        lxc("db1", "{app: db, env: prod}"),
    ]
    .join("---\n");
    let (status, body) = send(
        s.client
            .post(s.url("/api2/json/orbitlab-apply"))
            .header("Content-Type", "application/yaml")
            .body(yaml),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let names = |selector: &str| -> Vec<String> {
        let (status, body) = send(
            s.client
                .get(s.url("/api2/json/orbitlab/lxc"))
                .query(&[("selector", selector)]),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("app=web"), ["web1", "web2"]);
    assert_eq!(names("app=web,env!=dev"), ["web1"]);
    assert_eq!(names("env in (prod),app notin (web)"), ["db1"]);
    assert_eq!(names("!app"), Vec::<String>::new());
    // A selector that does not parse names its column; one on an object
    // is refused.
    let (status, body) = send(
        s.client
            .get(s.url("/api2/json/orbitlab/lxc"))
            .query(&[("selector", "app in web")]),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("column 8"),
        "{body}"
    );
    let (status, _) = send(
        s.client
            .get(s.url("/api2/json/orbitlab/sectors/web"))
            .query(&[("selector", "app=web")]),
    );
    assert!(status.is_client_error(), "{status}");
}
