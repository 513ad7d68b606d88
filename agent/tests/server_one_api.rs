//! The HTTPS API serving the PKI (CA creation and CSR signing included),
//! SSH keys and one object's status, with the permission rules of
//! `server::permissions`: metadata for `Sys.Audit`, changes for
//! `Sys.Modify`, a private key only with `Sys.Console` too. Each answer is
//! compared with the same call made in-process ([`Api`]), which is what
//! the `orbitlab` command runs on a node.

mod server_common;

use orbitlab_engine::api::{Api, ApiPath, KeyRequest, PkiCall, SshCall, VaultCall};
use orbitlab_engine::status::{ConditionType, ObjectStatus};
use orbitlab_manifests::Kind;
use reqwest::StatusCode;
use reqwest::blocking::RequestBuilder;
use serde_json::Value;
use server_common::*;

const ROOT: &str = "root@pam!ci=r";
const OPS: &str = "ops@pve!ci=o";
const AUDIT: &str = "audit@pve!ci=a";
/// Holds Sys.Modify but not Sys.Audit.
const WRITER: &str = "writer@pve!ci=w";

fn agent() -> Running {
    let mut console = ADMIN.to_vec();
    console.push("Sys.Console");
    start(CannedAuth::with(&[
        ("root@pam!ci", "r", console.leak()),
        ("ops@pve!ci", "o", &["Sys.Audit", "Sys.Modify"]),
        ("audit@pve!ci", "a", &["Sys.Audit"]),
        ("writer@pve!ci", "w", &["Sys.Modify"]),
    ]))
}

/// Sends `request` with `token`; the status and the whole answer as text.
fn call(token: &str, request: RequestBuilder) -> (StatusCode, String) {
    let response = request
        .header("Authorization", format!("PVEAPIToken={token}"))
        .send()
        .expect("answer");
    let status = response.status();
    (status, response.text().expect("body"))
}

/// The `data` of a successful answer.
fn data(answer: (StatusCode, String)) -> Value {
    let (status, text) = answer;
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str::<Value>(&text).expect("JSON")["data"].take()
}

/// A refusal with `status` whose message holds `needle`.
fn refused(answer: (StatusCode, String), status: StatusCode, needle: &str) -> String {
    let (got, text) = answer;
    assert_eq!(got, status, "{text}");
    assert!(text.contains(needle), "{needle:?} not in {text}");
    text
}

fn url(s: &Running, path: &str) -> String {
    s.url(&format!("/api2/json/orbitlab{path}"))
}

fn ca_names(api: &Api) -> Vec<String> {
    api.pki(PkiCall::ListCas)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn creating_cas_over_https_needs_sys_modify_and_keeps_the_key_in_the_vault() {
    let s = agent();
    let create_root = |token| {
        call(
            token,
            s.client
                .post(url(&s, "/pki/cas/root"))
                .query(&[("common-name", "Test Root CA"), ("days", "3650")]),
        )
    };
    // An auditor, or a token without any PKI privilege, creates nothing.
    refused(create_root(AUDIT), StatusCode::FORBIDDEN, "Sys.Modify");
    assert!(ca_names(&s.api).is_empty());

    let root = data(create_root(OPS));
    assert_eq!(root["name"], "root");
    assert_eq!(root["kind"], "root");
    assert_eq!(root["info"]["subject"], "O=OrbitLab, CN=Test Root CA");
    let text = root.to_string();
    assert!(!text.contains("PRIVATE KEY"), "no key in the answer");
    // The key is in the vault, under the path the answer names, and is
    // not what the answer shows.
    let key_path = root["key_path"].as_str().unwrap();
    let versions = s
        .api
        .vault(VaultCall::Versions(key_path.parse().unwrap()))
        .expect("the CA key is a vault secret");
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    // The answer is what the command shows in-process.
    let shown = s.api.pki(PkiCall::ShowCa("root".parse().unwrap())).unwrap();
    assert_eq!(root["info"]["pem"], shown["info"]["pem"]);
    assert_eq!(root["info"]["serial"], shown["info"]["serial"]);

    // An intermediate with a name constraint, signed by the root.
    let sectors = data(call(
        OPS,
        s.client.post(url(&s, "/pki/cas/sectors")).query(&[
            ("parent", "root"),
            ("permitted-dns", "orbitlab.internal"),
            ("path-len", "0"),
        ]),
    ));
    assert_eq!(sectors["kind"], "intermediate");
    assert_eq!(sectors["parent"], "root");
    assert_eq!(sectors["chain_verified"], true);
    assert_eq!(ca_names(&s.api), ["root", "sectors"]);

    // The same CA twice, a bad parameter, an unknown one: refused, with
    // nothing changed.
    refused(create_root(OPS), StatusCode::CONFLICT, "already exists");
    let text = refused(
        call(
            OPS,
            s.client
                .post(url(&s, "/pki/cas/x"))
                .query(&[("path-len", "many")]),
        ),
        StatusCode::BAD_REQUEST,
        "path-len",
    );
    assert!(text.contains("0 to 255"), "{text}");
    refused(
        call(
            OPS,
            s.client
                .post(url(&s, "/pki/cas/x"))
                .query(&[("parent", "nope")]),
        ),
        StatusCode::NOT_FOUND,
        "nope",
    );
    refused(
        call(
            OPS,
            s.client.post(url(&s, "/pki/cas/x")).query(&[("key", "1")]),
        ),
        StatusCode::BAD_REQUEST,
        "key",
    );
    assert_eq!(ca_names(&s.api), ["root", "sectors"]);

    // Listing is metadata: an auditor sees what the command lists.
    let listed = data(call(AUDIT, s.client.get(url(&s, "/pki/cas"))));
    assert_eq!(listed, s.api.pki(PkiCall::ListCas).unwrap());
}

#[test]
fn signing_a_csr_over_https_answers_only_the_certificate() {
    let s = agent();
    data(call(OPS, s.client.post(url(&s, "/pki/cas/root"))));
    let dir = tempfile::tempdir().expect("tempdir");
    let csr =
        std::fs::read_to_string(openssl_csr(dir.path(), "db.orbitlab.internal")).expect("CSR");
    let sign = |token, body: String, content_type: &str| {
        call(
            token,
            s.client
                .post(url(&s, "/pki/certs/root/db/csr"))
                .query(&[("days", "90")])
                .header("Content-Type", content_type)
                .body(body),
        )
    };
    refused(
        sign(AUDIT, csr.clone(), "application/x-pem-file"),
        StatusCode::FORBIDDEN,
        "Sys.Modify",
    );
    assert_eq!(
        s.api.pki(PkiCall::ListCerts(None)).unwrap(),
        Value::Array(Vec::new())
    );
    refused(
        sign(OPS, csr.clone(), "application/json"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "PEM",
    );
    refused(
        sign(OPS, "not a CSR".into(), "application/x-pem-file"),
        StatusCode::BAD_REQUEST,
        "PKCS#10",
    );
    refused(
        sign(OPS, String::new(), "application/x-pem-file"),
        StatusCode::BAD_REQUEST,
        "csr",
    );

    let signed = data(sign(OPS, csr, "application/x-pem-file"));
    assert_eq!(signed["name"], "db");
    assert_eq!(signed["info"]["dns_names"][0], "db.orbitlab.internal");
    assert_eq!(
        signed["key_path"],
        Value::Null,
        "the requester holds the key"
    );
    assert!(!signed.to_string().contains("PRIVATE KEY"));
    let shown = s
        .api
        .pki(PkiCall::ShowCert(
            "root".parse().unwrap(),
            "db".parse().unwrap(),
        ))
        .unwrap();
    assert_eq!(signed["info"]["pem"], shown["info"]["pem"]);
    // There is no key to reveal, even to a Console holder.
    let (status, text) = call(ROOT, s.client.get(url(&s, "/pki/certs/root/db/key")));
    assert_ne!(status, StatusCode::OK, "{text}");
    assert!(!text.contains("PRIVATE KEY"));
    // A CSR is sent with POST only.
    refused(
        call(ROOT, s.client.get(url(&s, "/pki/certs/root/db/csr"))),
        StatusCode::METHOD_NOT_ALLOWED,
        "POST",
    );
}

#[test]
fn issued_keys_over_https_need_sys_console_as_secret_values_do() {
    let s = agent();
    data(call(OPS, s.client.post(url(&s, "/pki/cas/root"))));
    let issue = |token| {
        call(
            token,
            s.client
                .post(url(&s, "/pki/certs/root/web"))
                .query(&[("dns", "web.orbitlab.internal")]),
        )
    };
    refused(issue(AUDIT), StatusCode::FORBIDDEN, "Sys.Modify");
    let issued = data(issue(OPS));
    assert!(!issued.to_string().contains("PRIVATE KEY"));
    for token in [AUDIT, OPS] {
        refused(
            call(token, s.client.get(url(&s, "/pki/certs/root/web/key"))),
            StatusCode::FORBIDDEN,
            "Sys.Console",
        );
    }
    let key = data(call(ROOT, s.client.get(url(&s, "/pki/certs/root/web/key"))));
    let local = s
        .api
        .pki(PkiCall::Key(
            "root".parse().unwrap(),
            "web".parse().unwrap(),
        ))
        .unwrap();
    assert_eq!(key, local);
}

#[test]
fn ssh_keys_over_https_follow_the_same_rules() {
    let s = agent();
    const PASSPHRASE: &str = "correct horse 7c1e";
    let generate = |token| {
        call(
            token,
            s.client
                .post(url(&s, "/ssh/keys/deploy"))
                .query(&[("comment", "ci@orbitlab")])
                .header("Content-Type", "application/octet-stream")
                .body(PASSPHRASE),
        )
    };
    refused(generate(AUDIT), StatusCode::FORBIDDEN, "Sys.Modify");
    let created = data(generate(OPS));
    assert_eq!(created["name"], "deploy");
    assert!(!created.to_string().contains(PASSPHRASE));
    let deploy = || "deploy".parse().unwrap();
    assert_eq!(
        data(call(
            AUDIT,
            s.client.get(url(&s, "/ssh/keys/deploy/public"))
        )),
        s.api.ssh(SshCall::Public(deploy())).unwrap()
    );
    assert_eq!(
        data(call(AUDIT, s.client.get(url(&s, "/ssh/keys")))),
        s.api.ssh(SshCall::List).unwrap()
    );
    for token in [AUDIT, OPS] {
        refused(
            call(token, s.client.get(url(&s, "/ssh/keys/deploy/private"))),
            StatusCode::FORBIDDEN,
            "Sys.Console",
        );
    }
    assert_eq!(
        data(call(
            ROOT,
            s.client.get(url(&s, "/ssh/keys/deploy/private"))
        )),
        s.api.ssh(SshCall::Private(deploy())).unwrap()
    );
    refused(
        call(AUDIT, s.client.post(url(&s, "/ssh/keys/deploy/rotate"))),
        StatusCode::FORBIDDEN,
        "Sys.Modify",
    );
    refused(
        call(AUDIT, s.client.delete(url(&s, "/ssh/keys/deploy"))),
        StatusCode::FORBIDDEN,
        "Sys.Modify",
    );
    data(call(OPS, s.client.delete(url(&s, "/ssh/keys/deploy"))));
    let gone = s.api.ssh(SshCall::Generate(
        deploy(),
        KeyRequest {
            algorithm: None,
            comment: None,
            passphrase: None,
        },
    ));
    assert!(gone.is_ok(), "deleted over HTTPS, so the name is free");
}

#[test]
fn one_objects_status_is_served_for_auditors() {
    let s = agent();
    let web: ApiPath = "/sectors/web".parse().unwrap();
    let get = |token| call(token, s.client.get(url(&s, "/status/sectors/web")));
    // Nothing reported yet: null, as in-process.
    assert_eq!(data(get(AUDIT)), Value::Null);
    assert_eq!(s.api.object_status(&web).unwrap(), None);

    let mut status = ObjectStatus {
        node: Some("pve1".into()),
        ..ObjectStatus::default()
    };
    status.set_condition(ConditionType::Ready, true, "Applied", "zone web is up");
    s.api
        .store()
        .write_status(Kind::Sector, &"web".parse().unwrap(), &status)
        .unwrap();
    let served = data(get(AUDIT));
    assert_eq!(
        serde_json::from_value::<ObjectStatus>(served).unwrap(),
        status
    );
    // Reading a status is a read: Sys.Audit, like GET /status.
    refused(get(WRITER), StatusCode::FORBIDDEN, "Sys.Audit");
    refused(
        call(WRITER, s.client.get(url(&s, "/status"))),
        StatusCode::FORBIDDEN,
        "Sys.Audit",
    );
    // One object only, read only.
    refused(
        call(AUDIT, s.client.get(url(&s, "/status/sectors"))),
        StatusCode::NOT_FOUND,
        "one object",
    );
    refused(
        call(AUDIT, s.client.get(url(&s, "/status/vpcs/web"))),
        StatusCode::NOT_FOUND,
        "unknown collection",
    );
    let (code, text) = call(ROOT, s.client.post(url(&s, "/status/sectors/web")));
    assert!(code.is_client_error(), "{code} {text}");
    assert!(text.contains("use GET"), "{text}");
}
