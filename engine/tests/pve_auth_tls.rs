//! Token and ticket authentication, and TLS trust (CA and pinned
//! fingerprint) between the client and the simulator.

mod pve_common;

use std::time::Duration;

use orbitlab_engine::pve::SdnSpec;
use orbitlab_engine::pve::{
    ClientConfig, Credentials, Fingerprint, Pve, PveClient, PveError, Secret, Trust, ZoneConfig,
};
use orbitlab_sim::pve::{PveSim, PveVersion, SimConfig, TestCa};
use pve_common::*;

#[test]
fn token_auth_is_accepted_and_a_wrong_secret_refused() {
    let (sim, client) = sim_and_client(PveVersion::V8_4);
    assert_eq!(client.version().expect("version").release, "8.4");
    let bad = client_for(
        &sim,
        Credentials::token("root@pam", "orbitlab", Secret::new("wrong-secret")).expect("token"),
    );
    let err = bad.version().expect_err("refused");
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(
        !format!("{err} {err:?}").contains("wrong-secret"),
        "secret leaked: {err:?}"
    );
    let recorded = sim.requests();
    assert_eq!(recorded[0].user.as_deref(), Some("root@pam!orbitlab"));
    assert_eq!(recorded[1].status, 401);
}

#[test]
fn ticket_auth_logs_in_once_and_writes_carry_the_csrf_token() {
    let sim = start(PveVersion::V9_1);
    let client = client_for(&sim, password());
    assert_eq!(client.release().expect("release").major, 9);
    // A write: the simulator refuses it without the CSRF token.
    let zone = ZoneConfig {
        kind: Some("simple".into()),
        ..ZoneConfig::default()
    };
    client
        .sdn_create("ztick", SdnSpec::Zone(&zone), None)
        .expect("write with ticket");
    let reqs = sim.requests();
    let logins: Vec<_> = reqs.iter().filter(|r| r.path == "/access/ticket").collect();
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0].params["password"], "<redacted>");
    assert!(
        reqs.iter()
            .filter(|r| r.path != "/access/ticket")
            .all(|r| r.user.as_deref() == Some("root@pam") && r.status == 200)
    );
    let bad = client_for(
        &sim,
        Credentials::password("root@pam", Secret::new("nope-nope")).expect("creds"),
    );
    let err = bad.nodes().expect_err("bad password");
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("authentication failure"), "{err}");
}

struct TlsSetup {
    ca: TestCa,
    sim: orbitlab_sim::pve::SimHandle,
    leaf_fingerprint: Fingerprint,
}

fn tls_sim() -> TlsSetup {
    let ca = TestCa::new("OrbitLab test CA").expect("ca");
    let material = ca.issue_server(&["localhost", "127.0.0.1"]).expect("leaf");
    let leaf_fingerprint = Fingerprint::of_pem(&material.cert_chain_pem).expect("fingerprint");
    let sim = PveSim::start(SimConfig {
        tls: Some(material),
        task_duration: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .expect("tls sim");
    assert!(sim.base_url().starts_with("https://"));
    TlsSetup {
        ca,
        sim,
        leaf_fingerprint,
    }
}

fn tls_client(sim: &orbitlab_sim::pve::SimHandle, trust: Trust) -> PveClient {
    PveClient::new(ClientConfig {
        base_url: sim.origin(),
        trust,
        credentials: token(),
        options: fast_options(),
    })
    .expect("client")
}

#[test]
fn tls_with_the_right_ca_works_and_a_wrong_ca_is_refused() {
    let t = tls_sim();
    let dir = tempfile::tempdir().expect("tmp");
    let ca_file = dir.path().join("pve-root-ca.pem");
    std::fs::write(&ca_file, t.ca.pem()).expect("write ca");
    let ok = tls_client(&t.sim, Trust::CaFile(ca_file));
    assert_eq!(ok.nodes().expect("nodes over TLS").len(), 3);

    let other = TestCa::new("Some other CA").expect("ca");
    let bad = tls_client(&t.sim, Trust::CaPem(other.pem()));
    let err = bad.nodes().expect_err("wrong CA refused");
    assert!(matches!(err, PveError::Transport { .. }), "{err:?}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // Refused before any request reached the API.
    assert_eq!(t.sim.requests().len(), 1);
}

#[test]
fn tls_checks_the_host_name_in_ca_mode() {
    let ca = TestCa::new("OrbitLab test CA").expect("ca");
    let sim = PveSim::start(SimConfig {
        tls: Some(ca.issue_server(&["pve1.example.invalid"]).expect("leaf")),
        ..SimConfig::default()
    })
    .expect("sim");
    let client = tls_client(&sim, Trust::CaPem(ca.pem()));
    let err = client.nodes().expect_err("name mismatch refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn tls_with_the_pinned_fingerprint_works_and_a_wrong_one_is_refused() {
    let t = tls_sim();
    let ok = tls_client(&t.sim, Trust::Fingerprint(t.leaf_fingerprint));
    assert_eq!(ok.version().expect("version").release, "8.4");
    let mut wrong = t.leaf_fingerprint;
    wrong.0[0] ^= 0xff;
    let bad = tls_client(&t.sim, Trust::Fingerprint(wrong));
    let err = bad.version().expect_err("wrong fingerprint refused");
    assert!(err.to_string().contains("fingerprint mismatch"), "{err}");
    // The CA's own fingerprint is not the server's: refused too.
    let ca_fp = Fingerprint::of_pem(&t.ca.pem()).expect("fp");
    assert!(
        tls_client(&t.sim, Trust::Fingerprint(ca_fp))
            .version()
            .is_err()
    );
}

#[test]
fn https_without_trust_and_plain_http_elsewhere_are_refused_at_setup() {
    let t = tls_sim();
    let err = PveClient::new(ClientConfig {
        base_url: t.sim.origin(),
        trust: Trust::LoopbackHttp,
        credentials: token(),
        options: fast_options(),
    })
    .expect_err("https needs trust");
    assert!(
        err.to_string()
            .contains("CA file or a certificate fingerprint"),
        "{err}"
    );
}
