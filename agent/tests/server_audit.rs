//! The audit log names the caller the HTTPS API authenticated: a change,
//! a secret set and a secret read over HTTPS are recorded as that token
//! (`via: https`), never with the token's secret or the value.

mod server_common;

use orbitlab_engine::audit::{Action, AuditLog, Outcome, Verification, Via};
use orbitlab_engine::store::Store;
use reqwest::StatusCode;
use server_common::*;

const TOKEN_SECRET: &str = "AUDITTOKEN-secret-61b0";
const VALUE: &str = "AUDITHTTPS-value-8f21";

#[test]
fn changes_and_reads_over_https_are_recorded_as_the_caller() {
    let mut privileges = ADMIN.to_vec();
    privileges.push("Sys.Console");
    let s = start(CannedAuth::with(&[(
        "ops@pve!ci",
        TOKEN_SECRET,
        privileges.leak(),
    )]));
    let auth = format!("PVEAPIToken=ops@pve!ci={TOKEN_SECRET}");
    let url = |path: &str| s.url(&format!("/api2/json/orbitlab{path}"));
    let ok = |request: reqwest::blocking::RequestBuilder| {
        let response = request
            .header("Authorization", &auth)
            .send()
            .expect("answer");
        let status = response.status();
        let text = response.text().expect("body");
        assert_eq!(status, StatusCode::OK, "{text}");
        text
    };
    ok(s.client
        .post(url("/sectors"))
        .form(&[("name", "web"), ("cidr", "172.16.0.0/24")]));
    ok(s.client
        .put(url("/vault/values/app/db"))
        .header("Content-Type", "application/octet-stream")
        .body(VALUE));
    ok(s.client.get(url("/vault/values/app/db")));

    let log = AuditLog::new(Store::open(s.store_dir.path()));
    let records = log.records(None).unwrap();
    let seen: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.actor.as_str(),
                r.via,
                r.action,
                r.outcome,
                r.object.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "ops@pve!ci",
                Via::Https,
                Action::Create,
                Outcome::Begun,
                "/sectors/web"
            ),
            (
                "ops@pve!ci",
                Via::Https,
                Action::SecretSet,
                Outcome::Begun,
                "/vault/values/app/db"
            ),
            (
                "ops@pve!ci",
                Via::Https,
                Action::SecretRead,
                Outcome::Done,
                "/vault/values/app/db"
            ),
        ]
    );
    assert!(
        records
            .iter()
            .all(|r| r.node == orbitlab_engine::store::node_name())
    );
    assert!(matches!(log.verify().unwrap(), Verification::Intact(_)));
    let audit_dir = s.store_dir.path().join("orbitlab/audit");
    for entry in std::fs::read_dir(audit_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(TOKEN_SECRET), "{text}");
        assert!(!text.contains(VALUE), "{text}");
    }
}
