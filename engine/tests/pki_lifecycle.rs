//! PKI lifecycle and refusals under a movable clock: expiry, renewal of
//! what is due (CAs first), CRL refresh, issuing from an expired or
//! intermediate CA, lifetimes past the CA, name constraints, duplicate
//! names, damaged records, a CA key that does not match, garbage
//! certificates.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use orbitlab_engine::pki::{
    CaName, CaOptions, CertName, Clock, DueKind, LeafProfile, LeafRequest, Lifetime, Pki, PkiError,
    inspect_pem,
};
use orbitlab_engine::store::Store;
use orbitlab_engine::vault::{SecretValue, Vault};

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug)]
struct FakeClock(Mutex<SystemTime>);

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

impl FakeClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

fn setup(dir: &Path) -> (Pki, Arc<FakeClock>) {
    let clock = Arc::new(FakeClock(Mutex::new(SystemTime::now())));
    let pki = Pki::new(Vault::new(Store::open(dir))).with_clock(clock.clone());
    (pki, clock)
}

fn ca(s: &str) -> CaName {
    s.parse().unwrap()
}

fn cert(s: &str) -> CertName {
    s.parse().unwrap()
}

fn opts(days: u32) -> CaOptions {
    CaOptions {
        common_name: None,
        lifetime: Lifetime::days(days).unwrap(),
        permitted_dns: Vec::new(),
        path_len: None,
    }
}

fn server(dns: &str, days: u32) -> LeafRequest {
    LeafRequest {
        profile: LeafProfile::Server,
        dns: vec![dns.parse().unwrap()],
        ips: Vec::new(),
        lifetime: Lifetime::days(days).unwrap(),
    }
}

fn vault_files(dir: &Path) -> usize {
    let root = dir.join("priv/orbitlab/vault/secrets");
    std::fs::read_dir(&root)
        .map(|shards| {
            shards
                .map(|s| std::fs::read_dir(s.unwrap().path()).unwrap().count())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn an_expired_ca_issues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, clock) = setup(dir.path());
    pki.create_root(&ca("short"), &opts(10)).unwrap();
    pki.issue(&ca("short"), &cert("early"), &server("a.example", 5))
        .unwrap();
    let keys_before = vault_files(dir.path());
    clock.advance(11 * DAY);
    let err = pki
        .issue(&ca("short"), &cert("late"), &server("b.example", 1))
        .unwrap_err();
    assert!(matches!(err, PkiError::CaExpired { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("CA short expired on") && text.contains("renew"),
        "{text}"
    );
    assert_eq!(vault_files(dir.path()), keys_before, "no key was stored");
    assert!(pki.show_cert(&ca("short"), &cert("late")).is_err());
    let err = pki
        .create_intermediate(&ca("child"), &ca("short"), &opts(1))
        .unwrap_err();
    assert!(matches!(err, PkiError::CaExpired { .. }), "{err}");
    // The CA's days left turn negative.
    assert!(pki.show_ca(&ca("short")).unwrap().info.days_left < 0);
}

#[test]
fn refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, _clock) = setup(dir.path());
    pki.create_root(&ca("root"), &opts(100)).unwrap();
    let mut constrained = opts(50);
    constrained.permitted_dns = vec!["lab.internal".parse().unwrap()];
    pki.create_intermediate(&ca("lab"), &ca("root"), &constrained)
        .unwrap();

    let err = pki
        .issue(&ca("lab"), &cert("x"), &server("x.lab.internal", 51))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::OutlivesIssuer {
                max_days: 49..=50,
                ..
            }
        ),
        "{err}"
    );
    let err = pki
        .issue(&ca("lab"), &cert("x"), &server("x.evil.example", 5))
        .unwrap_err();
    assert!(matches!(err, PkiError::OutsideConstraints { .. }), "{err}");
    assert!(err.to_string().contains("x.evil.example") && err.to_string().contains("lab.internal"));
    let err = pki
        .issue(&ca("lab"), &cert("x"), &server("notlab.internal", 5))
        .unwrap_err();
    assert!(matches!(err, PkiError::OutsideConstraints { .. }), "{err}");
    let no_san = LeafRequest {
        dns: Vec::new(),
        ..server("x.lab.internal", 5)
    };
    let err = pki.issue(&ca("lab"), &cert("x"), &no_san).unwrap_err();
    assert!(matches!(err, PkiError::NoSubjectAltName { .. }), "{err}");
    let err = pki
        .create_intermediate(&ca("sub"), &ca("lab"), &opts(5))
        .unwrap_err();
    assert!(matches!(err, PkiError::CannotSignCa { .. }), "{err}");
    assert!(err.to_string().contains("path length is 0"), "{err}");
    let err = pki.create_root(&ca("root"), &opts(5)).unwrap_err();
    assert!(matches!(err, PkiError::CaExists { .. }), "{err}");
    let err = pki
        .create_intermediate(&ca("i2"), &ca("nope"), &opts(5))
        .unwrap_err();
    assert!(matches!(err, PkiError::CaNotFound { .. }), "{err}");
    assert!(
        pki.list_certs(None).unwrap().is_empty(),
        "nothing was issued"
    );
    assert_eq!(pki.list_cas().unwrap().len(), 2);

    pki.issue(&ca("lab"), &cert("x"), &server("x.lab.internal", 5))
        .unwrap();
    let err = pki
        .issue(&ca("lab"), &cert("x"), &server("y.lab.internal", 5))
        .unwrap_err();
    assert!(matches!(err, PkiError::CertExists { .. }), "{err}");
    assert_eq!(
        pki.show_cert(&ca("lab"), &cert("x"))
            .unwrap()
            .info
            .dns_names,
        ["x.lab.internal"],
        "the refused request did not replace the certificate"
    );
}

#[test]
fn renewal_renews_what_is_due_cas_first() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, clock) = setup(dir.path());
    pki.create_root(&ca("root"), &opts(400)).unwrap();
    pki.create_intermediate(&ca("mid"), &ca("root"), &opts(50))
        .unwrap();
    pki.issue(&ca("mid"), &cert("web"), &server("web.example", 10))
        .unwrap();
    pki.issue(&ca("mid"), &cert("api"), &server("api.example", 45))
        .unwrap();

    // web lives 10 days: with 10 left it is not due yet (half its life).
    assert!(pki.renewal_due(14).unwrap().is_empty());
    clock.advance(5 * DAY);
    let due = pki.renewal_due(14).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].kind, due[0].name.as_str()), (DueKind::Cert, "web"));

    clock.advance(35 * DAY);
    let due = pki.renewal_due(14).unwrap();
    let names: Vec<(DueKind, &str)> = due.iter().map(|d| (d.kind, d.name.as_str())).collect();
    assert_eq!(
        names,
        [
            (DueKind::Ca, "mid"),
            (DueKind::Cert, "api"),
            (DueKind::Cert, "web")
        ]
    );
    assert!(due[2].days_left < 0, "web has expired");

    let old_web = pki.show_cert(&ca("mid"), &cert("web")).unwrap();
    let old_key = pki.cert_key(&ca("mid"), &cert("web")).unwrap();
    let report = pki.renew_due(14).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.renewed.len(), 3);
    assert_eq!(
        report.crls_refreshed.len(),
        2,
        "both CRLs were past half their validity"
    );
    assert!(
        pki.renewal_due(14).unwrap().is_empty(),
        "renewed certificates are not due again"
    );

    let web = pki.show_cert(&ca("mid"), &cert("web")).unwrap();
    assert_ne!(web.info.serial, old_web.info.serial);
    assert_eq!(web.previous_serials, [old_web.info.serial.replace(':', "")]);
    assert!(web.info.days_left >= 9);
    assert!(
        web.chain_verified,
        "the renewed leaf chains to the renewed intermediate"
    );
    assert_ne!(
        pki.cert_key(&ca("mid"), &cert("web")).unwrap(),
        old_key,
        "a fresh key"
    );
    let mid = pki.show_ca(&ca("mid")).unwrap();
    assert_eq!(mid.previous_serials.len(), 1);
    assert_eq!(mid.crl_number, 2);
    assert!(mid.chain_verified);
    // A leaf issued before the intermediate's renewal still chains to it
    // (same key and subject).
    pki.issue(&ca("mid"), &cert("late"), &server("late.example", 5))
        .unwrap();
    assert!(
        pki.show_cert(&ca("mid"), &cert("late"))
            .unwrap()
            .chain_verified
    );
}

#[test]
fn deeper_chains_follow_path_lengths_constraints_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, _clock) = setup(dir.path());
    pki.create_root(&ca("root"), &opts(100)).unwrap();
    let mid = CaOptions {
        path_len: Some(1),
        permitted_dns: vec!["corp.internal".parse().unwrap()],
        ..opts(80)
    };
    pki.create_intermediate(&ca("mid"), &ca("root"), &mid)
        .unwrap();
    let too_long = CaOptions {
        path_len: Some(1),
        ..opts(10)
    };
    let err = pki
        .create_intermediate(&ca("x"), &ca("mid"), &too_long)
        .unwrap_err();
    assert!(matches!(err, PkiError::CannotSignCa { .. }), "{err}");
    assert!(err.to_string().contains("at most 0"), "{err}");
    let issuing = CaOptions {
        permitted_dns: vec!["web.corp.internal".parse().unwrap()],
        ..opts(60)
    };
    pki.create_intermediate(&ca("issuing"), &ca("mid"), &issuing)
        .unwrap();
    let err = pki
        .create_intermediate(&ca("y"), &ca("issuing"), &opts(10))
        .unwrap_err();
    assert!(matches!(err, PkiError::CannotSignCa { .. }), "{err}");

    let ok = pki
        .issue(
            &ca("issuing"),
            &cert("a"),
            &server("a.web.corp.internal", 5),
        )
        .unwrap();
    assert!(ok.chain_verified);
    assert_eq!(ok.chain.len(), 3);
    let err = pki
        .issue(
            &ca("issuing"),
            &cert("b"),
            &server("b.other.corp.internal", 5),
        )
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::OutsideConstraints { ca, .. } if ca == "issuing"),
        "{err}"
    );

    // Revoking the middle CA stops issuing below it.
    pki.revoke(
        &ca("root"),
        &orbitlab_engine::pki::RevokeTarget::Ca(ca("mid")),
        orbitlab_engine::pki::RevocationReason::CaCompromise,
    )
    .unwrap();
    let err = pki
        .issue(
            &ca("issuing"),
            &cert("c"),
            &server("c.web.corp.internal", 5),
        )
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::CaRevoked { ca, parent } if ca == "mid" && parent == "root"),
        "{err}"
    );
}

#[test]
fn a_ca_key_that_does_not_match_and_damaged_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, _clock) = setup(dir.path());
    pki.create_root(&ca("root"), &opts(30)).unwrap();
    pki.create_root(&ca("other"), &opts(30)).unwrap();
    let vault = Vault::new(Store::open(dir.path()));
    let other_key = vault.get(&"pki/other/key".parse().unwrap()).unwrap().value;
    vault
        .set(
            &"pki/root/key".parse().unwrap(),
            &SecretValue::new(other_key.expose().to_vec()).unwrap(),
        )
        .unwrap();
    let err = pki
        .issue(&ca("root"), &cert("x"), &server("x.example", 1))
        .unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("pki/root/key"), "{err}");

    let record = dir.path().join("orbitlab/pki/cas/other.json");
    std::fs::write(&record, b"{\"name\": 3").unwrap();
    let err = pki.show_ca(&ca("other")).unwrap_err();
    assert!(matches!(err, PkiError::Damaged { .. }), "{err}");
    assert!(
        err.to_string().contains(&record.display().to_string()),
        "{err}"
    );
}

#[test]
fn garbage_certificates_are_refused() {
    let now = SystemTime::now();
    for garbage in [
        "",
        "garbage",
        "-----BEGIN CERTIFICATE-----\nZm9v\n-----END CERTIFICATE-----\n",
    ] {
        let err = inspect_pem(garbage, now).unwrap_err();
        assert!(matches!(err, PkiError::BadPem { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("the certificate given is not usable"),
            "{err}"
        );
    }
    let names = ["../x", "Root", "a b", "a\nb", ""];
    for bad in names {
        assert!(bad.parse::<CaName>().is_err(), "{bad:?}");
        assert!(bad.parse::<CertName>().is_err(), "{bad:?}");
    }
}
