//! Authentication of the local API against Proxmox itself (the PVE
//! simulator over HTTPS with its own test CA): tokens and tickets are
//! forwarded to `GET /access/permissions` and the privileges answered
//! decide; a ticket's CSRF prevention token is checked by the agent with
//! the cluster's `pve-www.key` (the simulator's, under its pmxcfs root),
//! never by asking a daemon.

mod server_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orbitlab_agent::server::{
    Authenticator, Credential, ProxmoxAuthConfig, ProxmoxAuthenticator, ServerConfig,
};
use orbitlab_engine::api::ApiPath;
use orbitlab_engine::pve::Secret;
use orbitlab_engine::pve::Trust;
use orbitlab_sim::pve::{
    ApiToken, DEFAULT_PASSWORD, DEFAULT_TOKEN_SECRET, PveSim, SimConfig, SimHandle, TestCa,
    UserLogin, WwwKey,
};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;
use server_common::*;

const AUDITOR_SECRET: &str = "5d3c0e4e-auditor-token";
const AUDITOR_PASSWORD: &str = "auditor-password";

struct Cluster {
    sim: SimHandle,
    sim_client: Client,
    auth: Arc<ProxmoxAuthenticator>,
    /// The pmxcfs root (holds `pve-www.key`).
    root: tempfile::TempDir,
}

/// A simulator over HTTPS knowing root (every privilege) and an auditor
/// (`Sys.Audit` only), by token and by password.
fn cluster() -> Cluster {
    let ca = TestCa::new("simulated cluster CA").unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut config = SimConfig {
        tls: Some(ca.issue_server(&["127.0.0.1", "localhost"]).unwrap()),
        pmxcfs_root: Some(root.path().to_owned()),
        ..SimConfig::default()
    };
    config.auth.tokens.push(ApiToken {
        user: "auditor@pve".into(),
        name: "panel".into(),
        secret: AUDITOR_SECRET.into(),
    });
    config.auth.users.push(UserLogin {
        user: "auditor@pve".into(),
        password: AUDITOR_PASSWORD.into(),
    });
    config.auth.privileges = BTreeMap::from([(
        "auditor@pve".to_owned(),
        vec!["Sys.Audit".to_owned(), "VM.Audit".to_owned()],
    )]);
    let sim = PveSim::start(config).unwrap();
    let auth = Arc::new(
        ProxmoxAuthenticator::new(ProxmoxAuthConfig {
            base_url: sim.origin(),
            trust: Trust::CaPem(ca.pem()),
            timeout: Duration::from_secs(10),
            www_key: root.path().join("pve-www.key"),
        })
        .unwrap(),
    );
    Cluster {
        sim_client: client_trusting(&ca.pem()),
        sim,
        auth,
        root,
    }
}

struct Ticket {
    cookie: String,
    csrf: String,
}

fn login(c: &Cluster, user: &str, password: &str) -> Ticket {
    let answer: Value = c
        .sim_client
        .post(c.sim.base_url() + "/access/ticket")
        .form(&[("username", user), ("password", password)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    Ticket {
        cookie: format!(
            "PVEAuthCookie={}",
            answer["data"]["ticket"].as_str().unwrap()
        ),
        csrf: answer["data"]["CSRFPreventionToken"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

fn permission_checks(c: &Cluster) -> usize {
    c.sim
        .requests()
        .iter()
        .filter(|r| r.path == "/access/permissions" && r.method == "GET")
        .count()
}

fn answer(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().unwrap();
    (response.status(), response.json().unwrap_or(Value::Null))
}

fn root_token() -> String {
    format!("PVEAPIToken=root@pam!orbitlab={DEFAULT_TOKEN_SECRET}")
}

#[test]
fn no_credential_or_a_bad_one_is_refused() {
    let c = cluster();
    let s = start(c.auth.clone());
    let sectors = || s.client.get(s.url("/api2/json/orbitlab/sectors"));

    let (status, body) = answer(sectors());
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("PVEAPIToken=USER@REALM!ID=SECRET")
    );
    assert_eq!(
        permission_checks(&c),
        0,
        "asked Proxmox without a credential"
    );

    let (status, body) = answer(sectors().header(
        "Authorization",
        "PVEAPIToken=root@pam!orbitlab=not-the-secret",
    ));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let text = body.to_string();
    assert!(text.contains("Proxmox refused the credential"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
    assert_eq!(permission_checks(&c), 1);

    let (status, _) =
        answer(sectors().header("Cookie", "PVEAuthCookie=PVE:root@pam:00000000::forged"));
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Proxmox unreachable: 503, not a silent pass.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let offline = Arc::new(
        ProxmoxAuthenticator::new(ProxmoxAuthConfig {
            base_url: format!("https://127.0.0.1:{port}"),
            trust: Trust::CaPem(server_tls().ca.pem()),
            timeout: Duration::from_secs(5),
            www_key: c.root.path().join("pve-www.key"),
        })
        .unwrap(),
    );
    let s2 = start(offline);
    let (status, body) = answer(
        s2.client
            .get(s2.url("/api2/json/orbitlab"))
            .header("Authorization", root_token()),
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(!body.to_string().contains(DEFAULT_TOKEN_SECRET));
}

#[test]
fn a_valid_token_reads_what_the_api_returns_and_checks_are_cached() {
    let c = cluster();
    let s = start_with(c.auth.clone(), |cfg: &mut ServerConfig| {
        cfg.auth_cache_ttl = Duration::from_millis(500);
    });
    s.api
        .apply(orbitlab_manifests::codec::decode("web.yaml", SECTOR_WEB).unwrap())
        .unwrap();
    let get = || {
        s.client
            .get(s.url("/api2/json/orbitlab/sectors/web"))
            .header("Authorization", root_token())
    };
    let (status, body) = answer(get());
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = s
        .api
        .get(&"/sectors/web".parse::<ApiPath>().unwrap())
        .unwrap();
    assert_eq!(body["data"], expected);
    assert_eq!(body["data"]["spec"]["cidr"], "172.16.0.0/24");

    // The simulator saw the token (never the server's own) asking for `/`.
    let checks: Vec<_> = c
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/access/permissions")
        .collect();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].user.as_deref(), Some("root@pam!orbitlab"));
    assert_eq!(checks[0].params.get("path").map(String::as_str), Some("/"));

    for _ in 0..3 {
        assert_eq!(answer(get()).0, StatusCode::OK);
    }
    assert_eq!(permission_checks(&c), 1, "a cached check was repeated");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(answer(get()).0, StatusCode::OK);
    assert_eq!(
        permission_checks(&c),
        2,
        "an expired check was not repeated"
    );
}

#[test]
fn tickets_need_a_genuine_csrf_token() {
    let c = cluster();
    let s = start(c.auth.clone());
    let ticket = login(&c, "root@pam", DEFAULT_PASSWORD);
    let create = |name: &str| {
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .header("Cookie", format!("lang=en; {}", ticket.cookie))
            .form(&[("name", name), ("cidr", "172.16.0.0/24")])
    };

    let (status, body) = answer(
        s.client
            .get(s.url("/api2/json/orbitlab/sectors"))
            .header("Cookie", &ticket.cookie),
    );
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = answer(create("web"));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("CSRFPreventionToken")
    );

    let wrong = format!("{}x", ticket.csrf);
    let (status, body) = answer(create("web").header("CSRFPreventionToken", wrong));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["message"].as_str().unwrap().contains("CSRF"), "{body}");
    assert_eq!(
        s.api.store().generation().unwrap().0,
        0,
        "a refused write changed the store"
    );

    let (status, body) = answer(create("web").header("CSRFPreventionToken", &ticket.csrf));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["action"], "created");
    let stored = s
        .api
        .get(&"/sectors/web".parse::<ApiPath>().unwrap())
        .unwrap();
    assert_eq!(stored["spec"]["cidr"], "172.16.0.0/24");

    // Proxmox was only asked to read: the CSRF token never left the node.
    let requests = c.sim.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "GET" || r.path == "/access/ticket"),
        "{requests:?}"
    );
}

/// What the panel does in the browser: the web UI's ticket cookie and
/// CSRF token, on `/api2/extjs/...` from the web UI's origin. Refusals of
/// the ticket keep their HTTP 401 (the UI logs in again on it); a refusal
/// of the privileges is an `extjs` answer.
#[test]
fn the_web_ui_calls_the_extjs_format_with_its_ticket() {
    let c = cluster();
    let ui = "https://pve1.example.com:8006";
    let s = start_with(c.auth.clone(), |cfg: &mut ServerConfig| {
        cfg.allowed_origins = vec![ui.parse().unwrap()];
    });
    let root = login(&c, "root@pam", DEFAULT_PASSWORD);
    let create = |ticket: &Ticket, name: &str| {
        s.client
            .post(s.url("/api2/extjs/orbitlab/sectors"))
            .header("Origin", ui)
            .header("Cookie", &ticket.cookie)
            .header("X-Requested-With", "XMLHttpRequest")
            .form(&[("name", name), ("cidr", "172.16.0.0/24")])
    };

    let (status, body) = answer(create(&root, "web"));
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["success"], 0, "{body}");
    assert_eq!(body["status"], 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("CSRFPreventionToken")
    );
    let (status, body) =
        answer(create(&root, "web").header("CSRFPreventionToken", format!("{}x", root.csrf)));
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(s.api.store().generation().unwrap().0, 0);

    let response = create(&root, "web")
        .header("CSRFPreventionToken", &root.csrf)
        .send()
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], ui);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
    let (status, body) = (response.status(), response.json::<Value>().unwrap());
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], 1, "{body}");
    assert_eq!(body["data"][0]["action"], "created", "{body}");

    let (status, body) = answer(
        s.client
            .get(s.url("/api2/extjs/orbitlab/sectors/web"))
            .header("Cookie", &root.cookie)
            .header("CSRFPreventionToken", &root.csrf),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], 1);
    assert_eq!(body["data"]["spec"]["cidr"], "172.16.0.0/24");

    // An auditor's ticket is genuine but may not write: HTTP 200, 403 inside.
    let auditor = login(&c, "auditor@pve", AUDITOR_PASSWORD);
    let (status, body) =
        answer(create(&auditor, "db").header("CSRFPreventionToken", &auditor.csrf));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], 0, "{body}");
    assert_eq!(body["status"], 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("Sys.Modify"),
        "{body}"
    );
}

#[test]
fn auditors_read_but_may_not_write() {
    let c = cluster();
    let s = start(c.auth.clone());
    let token = format!("PVEAPIToken=auditor@pve!panel={AUDITOR_SECRET}");
    let (status, _) = answer(
        s.client
            .get(s.url("/api2/json/orbitlab/sectors"))
            .header("Authorization", &token),
    );
    assert_eq!(status, StatusCode::OK);
    let (status, body) = answer(
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .header("Authorization", &token)
            .form(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("auditor@pve!panel") && message.contains("Sys.Modify"),
        "{message}"
    );

    // The same user logged in to the web UI.
    let ticket = login(&c, "auditor@pve", AUDITOR_PASSWORD);
    let (status, body) = answer(
        s.client
            .delete(s.url("/api2/json/orbitlab/sectors/web"))
            .header("Cookie", &ticket.cookie)
            .header("CSRFPreventionToken", &ticket.csrf),
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("auditor@pve may not delete")
    );
    assert_eq!(s.api.store().generation().unwrap().0, 0);
}

#[test]
fn the_authenticator_reports_privileges_and_hides_secrets() {
    let c = cluster();
    let token = Credential::Token {
        id: "auditor@pve!panel".into(),
        secret: Secret::new(AUDITOR_SECRET),
    };
    let identity = c.auth.authenticate(&token, false).unwrap();
    assert_eq!(identity.user, "auditor@pve!panel");
    assert_eq!(
        identity.privileges.iter().collect::<Vec<_>>(),
        ["Sys.Audit", "VM.Audit"]
    );
    assert!(!format!("{token:?} {:?}", c.auth).contains(AUDITOR_SECRET));

    let ticket = login(&c, "root@pam", DEFAULT_PASSWORD);
    let credential = Credential::Ticket {
        ticket: Secret::new(ticket.cookie.trim_start_matches("PVEAuthCookie=")),
        csrf: None,
    };
    let identity = c.auth.authenticate(&credential, false).unwrap();
    assert_eq!(identity.user, "root@pam");
    assert!(identity.privileges.has("Sys.Modify"));
    let refused = c.auth.authenticate(&credential, true).unwrap_err();
    assert!(
        refused.to_string().contains("CSRFPreventionToken"),
        "{refused}"
    );
}

/// A stand-in for pvedaemon (plain HTTP on loopback, running as root): it
/// accepts any ticket for `GET /access/permissions` (every privilege) and,
/// as Proxmox's auth handler does when it runs as root, checks no CSRF
/// token, so a write without a handler answers 501. Returns its origin.
fn daemon_that_checks_no_csrf() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let (status, body) = if request_line.starts_with("GET /api2/json/access/permissions") {
                let privileges: serde_json::Map<String, Value> = [
                    "Sys.Audit",
                    "Sys.Modify",
                    "SDN.Allocate",
                    "VM.Allocate",
                    "Datastore.AllocateTemplate",
                ]
                .iter()
                .map(|p| ((*p).to_owned(), Value::from(1)))
                .collect();
                (
                    "200 OK",
                    serde_json::json!({"data": {"/": privileges}}).to_string(),
                )
            } else {
                ("501 Method not implemented", r#"{"data":null}"#.to_owned())
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    origin
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn csrf_with_a_wrong_token_against_a_daemon_that_would_not_check_it_is_refused() {
    let daemon = daemon_that_checks_no_csrf();
    let root = tempfile::tempdir().unwrap();
    let key = WwwKey::load_or_create(&root.path().join("pve-www.key")).unwrap();
    let auth = Arc::new(
        ProxmoxAuthenticator::new(ProxmoxAuthConfig {
            base_url: daemon,
            trust: Trust::LoopbackHttp,
            timeout: Duration::from_secs(10),
            www_key: root.path().join("pve-www.key"),
        })
        .unwrap(),
    );
    let s = start(auth);
    let now = unix_now();
    let create = |csrf: &str| {
        answer(
            s.client
                .post(s.url("/api2/json/orbitlab/sectors"))
                .header(
                    "Cookie",
                    format!("PVEAuthCookie=PVE:root@pam:{now:08X}::c2lnbmF0dXJl"),
                )
                .header("CSRFPreventionToken", csrf)
                .form(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
        )
    };
    let (status, body) = create(&format!(
        "{now:08X}:not-the-token-for-this-user-at-all+wrong1"
    ));
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["message"].as_str().unwrap().contains("CSRF"), "{body}");
    assert_eq!(
        s.api.store().generation().unwrap().0,
        0,
        "a write with a wrong CSRF token changed the store"
    );
    // The genuine token of the ticket's user is enough, whatever the daemon.
    let (status, body) = create(&key.token("root@pam", now));
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn ticket_credential(ticket: &Ticket, csrf: &str) -> Credential {
    Credential::Ticket {
        ticket: Secret::new(ticket.cookie.trim_start_matches("PVEAuthCookie=")),
        csrf: Some(Secret::new(csrf)),
    }
}

#[test]
fn csrf_tokens_out_of_their_time_or_of_another_user_are_refused() {
    let c = cluster();
    let root = login(&c, "root@pam", DEFAULT_PASSWORD);
    let auditor = login(&c, "auditor@pve", AUDITOR_PASSWORD);
    let key = c.sim.www_key();
    let now = unix_now();

    // Genuine and current: accepted, also one made later than the ticket.
    let identity = c
        .auth
        .authenticate(&ticket_credential(&root, &root.csrf), true)
        .unwrap();
    assert_eq!(identity.user, "root@pam");
    c.auth
        .authenticate(
            &ticket_credential(&root, &key.token("root@pam", now + 60)),
            true,
        )
        .unwrap();

    for (what, token, expected) in [
        ("expired", key.token("root@pam", now - 7300), "expired"),
        ("future", key.token("root@pam", now + 900), "future"),
        ("another user's", auditor.csrf.clone(), "does not belong"),
    ] {
        let refused = c
            .auth
            .authenticate(&ticket_credential(&root, &token), true)
            .expect_err(what);
        let text = refused.to_string();
        assert!(
            matches!(refused, orbitlab_agent::server::AuthError::Refused(_)),
            "{what}: {text}"
        );
        assert!(text.contains(expected), "{what}: {text}");
        let signature = token.split_once(':').unwrap().1;
        assert!(!text.contains(signature), "{what}: {text}");
    }
    // The auditor's own token is fine for the auditor's ticket (reads and
    // writes are then decided by privileges).
    c.auth
        .authenticate(&ticket_credential(&auditor, &auditor.csrf), true)
        .unwrap();
}

#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn without_the_csrf_key_ticket_writes_fail_clearly_and_tokens_still_work() {
    let c = cluster();
    let key_file = c.root.path().join("pve-www.key");
    std::fs::remove_file(&key_file).unwrap();
    let ticket = login(&c, "root@pam", DEFAULT_PASSWORD);

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let refused = tracing::subscriber::with_default(subscriber, || {
        c.auth
            .authenticate(&ticket_credential(&ticket, &ticket.csrf), true)
            .unwrap_err()
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let text = refused.to_string();
    assert!(
        matches!(refused, orbitlab_agent::server::AuthError::Unavailable(_)),
        "{text}"
    );
    for message in [&text, &log] {
        assert!(message.contains(&*key_file.to_string_lossy()), "{message}");
        let signature = ticket.csrf.split_once(':').unwrap().1;
        let ticket_signature = ticket.cookie.rsplit_once("::").unwrap().1;
        assert!(!message.contains(signature), "{message}");
        assert!(!message.contains(ticket_signature), "{message}");
    }
    assert!(log.contains("ERROR"), "{log}");

    // Through the API: 503, and reads and API tokens are unaffected.
    let s = start(c.auth.clone());
    let (status, body) = answer(
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .header("Cookie", &ticket.cookie)
            .header("CSRFPreventionToken", &ticket.csrf)
            .form(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // The caller is not authenticated yet: the path is in the log only.
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("try again later"), "{body}");
    assert!(!message.contains("pve-www.key"), "{body}");
    let (status, _) = answer(
        s.client
            .get(s.url("/api2/json/orbitlab/sectors"))
            .header("Cookie", &ticket.cookie),
    );
    assert_eq!(status, StatusCode::OK);
    let (status, body) = answer(
        s.client
            .post(s.url("/api2/json/orbitlab/sectors"))
            .header("Authorization", root_token())
            .form(&[("name", "web"), ("cidr", "172.16.0.0/24")]),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
}
