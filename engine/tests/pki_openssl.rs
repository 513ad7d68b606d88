//! The PKI checked by OpenSSL, software nobody here wrote: `openssl verify`
//! accepts the chains OrbitLab issues, `openssl x509 -text` shows the SANs
//! and constraints asked for, `openssl crl` reads the CRL and lists the
//! revoked serial, and certificates signed from an OpenSSL CSR carry the
//! CSR's key.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use orbitlab_engine::pki::{
    CaName, CaOptions, CertName, LeafProfile, LeafRequest, Lifetime, Pki, PkiError,
    RevocationReason, RevokeTarget,
};
use orbitlab_engine::store::Store;
use orbitlab_engine::vault::Vault;

fn pki(dir: &Path) -> Pki {
    Pki::new(Vault::new(Store::open(dir)))
}

fn ca(s: &str) -> CaName {
    s.parse().unwrap()
}

fn cert(s: &str) -> CertName {
    s.parse().unwrap()
}

fn opts(days: u32, permitted: &[&str]) -> CaOptions {
    CaOptions {
        common_name: None,
        lifetime: Lifetime::days(days).unwrap(),
        permitted_dns: permitted.iter().map(|d| d.parse().unwrap()).collect(),
        path_len: None,
    }
}

fn server(dns: &[&str], ips: &[&str], days: u32) -> LeafRequest {
    LeafRequest {
        profile: LeafProfile::Server,
        dns: dns.iter().map(|d| d.parse().unwrap()).collect(),
        ips: ips.iter().map(|i| i.parse::<IpAddr>().unwrap()).collect(),
        lifetime: Lifetime::days(days).unwrap(),
    }
}

/// Runs openssl in `dir`; returns (success, stdout + stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A root, an intermediate limited to `example.internal`, and a server leaf.
fn hierarchy(dir: &Path) -> Pki {
    let pki = pki(dir);
    pki.create_root(&ca("root"), &opts(3650, &[])).unwrap();
    pki.create_intermediate(
        &ca("sector-web"),
        &ca("root"),
        &opts(1825, &["example.internal"]),
    )
    .unwrap();
    pki.issue(
        &ca("sector-web"),
        &cert("web"),
        &server(
            &["web.example.internal", "*.web.example.internal"],
            &["10.20.30.40", "fd00::7"],
            30,
        ),
    )
    .unwrap();
    pki
}

fn write_pems(pki: &Pki, out: &Path) {
    std::fs::write(out.join("root.pem"), pki.ca_cert_pem(&ca("root")).unwrap()).unwrap();
    std::fs::write(
        out.join("intermediate.pem"),
        pki.ca_cert_pem(&ca("sector-web")).unwrap(),
    )
    .unwrap();
    let web = pki.show_cert(&ca("sector-web"), &cert("web")).unwrap();
    std::fs::write(out.join("leaf.pem"), &web.info.pem).unwrap();
}

#[test]
fn openssl_accepts_the_chain_and_shows_the_sans() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pki = hierarchy(dir.path());
    write_pems(&pki, out.path());

    let (ok, text) = openssl(
        out.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "leaf.pem",
        ],
    );
    assert!(ok && text.contains("leaf.pem: OK"), "{text}");
    let (ok, text) = openssl(
        out.path(),
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "leaf.pem",
        ],
    );
    assert!(ok, "{text}");
    // Without the intermediate the chain is incomplete: the check is real.
    let (ok, _) = openssl(out.path(), &["verify", "-CAfile", "root.pem", "leaf.pem"]);
    assert!(!ok);

    let (ok, text) = openssl(out.path(), &["x509", "-in", "leaf.pem", "-text", "-noout"]);
    assert!(ok, "{text}");
    for want in [
        "DNS:web.example.internal",
        "DNS:*.web.example.internal",
        "IP Address:10.20.30.40",
        "IP Address:FD00:0:0:0:0:0:0:7",
        "TLS Web Server Authentication",
        "CA:FALSE",
        "Subject: O = OrbitLab, CN = web.example.internal",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let (_, text) = openssl(
        out.path(),
        &["x509", "-in", "intermediate.pem", "-text", "-noout"],
    );
    for want in [
        "CA:TRUE, pathlen:0",
        "Permitted:",
        "DNS:example.internal",
        "Certificate Sign, CRL Sign",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    // The fingerprint, serial and SANs OrbitLab shows are OpenSSL's.
    let web = pki.show_cert(&ca("sector-web"), &cert("web")).unwrap();
    let (_, fp) = openssl(
        out.path(),
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    assert_eq!(
        fp.trim().split('=').nth(1).unwrap(),
        web.info.sha256_fingerprint
    );
    let (_, serial) = openssl(
        out.path(),
        &["x509", "-in", "leaf.pem", "-noout", "-serial"],
    );
    assert_eq!(
        serial.trim().trim_start_matches("serial="),
        web.info.serial.replace(':', "").to_uppercase()
    );
    assert_eq!(
        web.info.dns_names,
        ["web.example.internal", "*.web.example.internal"]
    );
    assert_eq!(web.info.ip_addresses.len(), 2);
    assert!(
        (29..=30).contains(&web.info.days_left),
        "{}",
        web.info.days_left
    );
    assert!(web.chain_verified);
    assert_eq!(web.chain.len(), 2);
    assert!(web.chain[0].is_ca && web.chain[0].path_len == Some(0));
    assert_eq!(web.chain[0].permitted_dns, ["example.internal"]);

    // The key in the vault belongs to the certificate.
    let key = pki.cert_key(&ca("sector-web"), &cert("web")).unwrap();
    std::fs::write(out.path().join("key.pem"), key.expose()).unwrap();
    let (_, from_key) = openssl(out.path(), &["pkey", "-in", "key.pem", "-pubout"]);
    let (_, from_cert) = openssl(
        out.path(),
        &["x509", "-in", "leaf.pem", "-noout", "-pubkey"],
    );
    assert_eq!(from_key, from_cert);

    // The chain bundle a server presents: leaf + intermediate.
    std::fs::write(out.path().join("bundle.pem"), web.chain_pem()).unwrap();
    let (ok, text) = openssl(
        out.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "bundle.pem",
            "leaf.pem",
        ],
    );
    assert!(ok, "{text}");
}

#[test]
fn a_three_level_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    pki.create_root(&ca("root"), &opts(3650, &[])).unwrap();
    let mid = CaOptions {
        path_len: Some(1),
        ..opts(1000, &["corp.internal"])
    };
    pki.create_intermediate(&ca("mid"), &ca("root"), &mid)
        .unwrap();
    pki.create_intermediate(
        &ca("issuing"),
        &ca("mid"),
        &opts(500, &["web.corp.internal"]),
    )
    .unwrap();
    let leaf = pki
        .issue(
            &ca("issuing"),
            &cert("a"),
            &server(&["a.web.corp.internal"], &["10.1.2.3"], 30),
        )
        .unwrap();
    std::fs::write(
        out.path().join("root.pem"),
        pki.ca_cert_pem(&ca("root")).unwrap(),
    )
    .unwrap();
    std::fs::write(out.path().join("untrusted.pem"), leaf.chain_pem()).unwrap();
    std::fs::write(out.path().join("leaf.pem"), &leaf.info.pem).unwrap();
    let (ok, text) = openssl(
        out.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "untrusted.pem",
            "leaf.pem",
        ],
    );
    assert!(ok && text.contains("leaf.pem: OK"), "{text}");
    let (_, text) = openssl(
        out.path(),
        &["x509", "-in", "untrusted.pem", "-text", "-noout"],
    );
    assert!(
        text.contains("CA:FALSE"),
        "the bundle starts with the leaf: {text}"
    );
    std::fs::write(
        out.path().join("mid.pem"),
        pki.ca_cert_pem(&ca("mid")).unwrap(),
    )
    .unwrap();
    let (_, text) = openssl(out.path(), &["x509", "-in", "mid.pem", "-text", "-noout"]);
    assert!(text.contains("CA:TRUE, pathlen:1"), "{text}");
}

#[test]
fn client_certificates_from_the_root_verify() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    pki.create_root(&ca("root"), &opts(365, &[])).unwrap();
    let req = LeafRequest {
        profile: LeafProfile::Client,
        dns: Vec::new(),
        ips: Vec::new(),
        lifetime: Lifetime::days(7).unwrap(),
    };
    let c = pki.issue(&ca("root"), &cert("agent-1"), &req).unwrap();
    std::fs::write(
        out.path().join("root.pem"),
        pki.ca_cert_pem(&ca("root")).unwrap(),
    )
    .unwrap();
    std::fs::write(out.path().join("client.pem"), &c.info.pem).unwrap();
    let (ok, text) = openssl(
        out.path(),
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "root.pem",
            "client.pem",
        ],
    );
    assert!(ok, "{text}");
    let (ok, _) = openssl(
        out.path(),
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.pem",
            "client.pem",
        ],
    );
    assert!(!ok, "a client certificate is no server certificate");
}

#[test]
fn openssl_reads_the_crl_and_lists_the_revoked_serial() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pki = hierarchy(dir.path());
    write_pems(&pki, out.path());
    let sector = ca("sector-web");
    let web = pki.show_cert(&sector, &cert("web")).unwrap();

    let entry = pki
        .revoke(
            &sector,
            &RevokeTarget::Cert(cert("web")),
            RevocationReason::KeyCompromise,
        )
        .unwrap();
    assert_eq!(entry.serial, web.info.serial.replace(':', ""));
    // Revoking again changes nothing.
    let again = pki
        .revoke(
            &sector,
            &RevokeTarget::Serial(web.info.serial.clone()),
            RevocationReason::Superseded,
        )
        .unwrap();
    assert_eq!(again, entry);
    let shown = pki.show_ca(&sector).unwrap();
    assert_eq!(shown.crl_number, 2);
    assert_eq!(shown.revoked, vec![entry.clone()]);
    assert!(
        pki.show_cert(&sector, &cert("web"))
            .unwrap()
            .revoked
            .is_some()
    );

    std::fs::write(out.path().join("crl.pem"), pki.crl(&sector).unwrap()).unwrap();
    let (ok, text) = openssl(out.path(), &["crl", "-in", "crl.pem", "-text", "-noout"]);
    assert!(ok, "{text}");
    let serial = entry.serial.to_uppercase();
    assert!(
        text.contains(&format!("Serial Number: {serial}")),
        "{serial} not in\n{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("X509v3 CRL Number:"), "{text}");
    let (ok, text) = openssl(
        out.path(),
        &[
            "crl",
            "-in",
            "crl.pem",
            "-noout",
            "-CAfile",
            "intermediate.pem",
        ],
    );
    assert!(
        ok && text.contains("verify OK"),
        "the CA's signature on the CRL: {text}"
    );

    // With the CRL, OpenSSL now rejects the leaf.
    let (ok, text) = openssl(
        out.path(),
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "leaf.pem",
        ],
    );
    assert!(!ok && text.contains("certificate revoked"), "{text}");

    // The root revokes the intermediate by name; issuing from it stops.
    let revoked = pki
        .revoke(
            &ca("root"),
            &RevokeTarget::Ca(sector.clone()),
            RevocationReason::CaCompromise,
        )
        .unwrap();
    std::fs::write(
        out.path().join("root-crl.pem"),
        pki.crl(&ca("root")).unwrap(),
    )
    .unwrap();
    let (_, text) = openssl(
        out.path(),
        &["crl", "-in", "root-crl.pem", "-text", "-noout"],
    );
    assert!(text.contains(&revoked.serial.to_uppercase()), "{text}");
    let err = pki
        .issue(
            &sector,
            &cert("other"),
            &server(&["o.example.internal"], &[], 5),
        )
        .unwrap_err();
    assert!(matches!(err, PkiError::CaRevoked { .. }), "{err}");

    // Unknown serials are refused.
    let err = pki
        .revoke(
            &sector,
            &RevokeTarget::Serial("01:02:03".into()),
            RevocationReason::Unspecified,
        )
        .unwrap_err();
    assert!(matches!(err, PkiError::UnknownSerial { .. }), "{err}");
}

#[test]
fn csrs_from_openssl_are_signed_and_garbage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pki = hierarchy(dir.path());
    write_pems(&pki, out.path());
    let (ok, text) = openssl(
        out.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ext.key",
            "-out",
            "ext.csr",
            "-subj",
            "/CN=api",
            "-addext",
            "subjectAltName=DNS:api.example.internal,IP:192.0.2.9",
        ],
    );
    assert!(ok, "{text}");
    let csr = std::fs::read_to_string(out.path().join("ext.csr")).unwrap();
    let no_sans = server(&[], &[], 20);
    let signed = pki
        .sign_csr(&ca("sector-web"), &cert("api"), &csr, &no_sans)
        .unwrap();
    assert_eq!(signed.info.dns_names, ["api.example.internal"]);
    assert_eq!(
        signed.info.ip_addresses,
        ["192.0.2.9".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(signed.key_path, None);
    std::fs::write(out.path().join("api.pem"), &signed.info.pem).unwrap();
    let (ok, text) = openssl(
        out.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "api.pem",
        ],
    );
    assert!(ok, "{text}");
    let (_, from_csr) = openssl(out.path(), &["req", "-in", "ext.csr", "-noout", "-pubkey"]);
    let (_, from_cert) = openssl(out.path(), &["x509", "-in", "api.pem", "-noout", "-pubkey"]);
    assert_eq!(from_csr, from_cert);
    let err = pki.cert_key(&ca("sector-web"), &cert("api")).unwrap_err();
    assert!(err.to_string().contains("requester holds the key"), "{err}");
    // Renewal re-signs the same key.
    let renewed = pki.renew_cert(&ca("sector-web"), &cert("api")).unwrap();
    assert_ne!(renewed.info.serial, signed.info.serial);
    std::fs::write(out.path().join("api2.pem"), &renewed.info.pem).unwrap();
    let (_, from_renewed) = openssl(
        out.path(),
        &["x509", "-in", "api2.pem", "-noout", "-pubkey"],
    );
    assert_eq!(from_csr, from_renewed);

    // Garbage and tampered requests.
    let mut tampered = csr.clone().into_bytes();
    let body_start = csr.find('\n').unwrap() + 40;
    tampered[body_start] = if tampered[body_start] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered = String::from_utf8(tampered).unwrap();
    for (bad, needle) in [
        ("not a csr at all", "not a PEM-encoded PKCS#10"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "not a PEM-encoded",
        ),
        (tampered.as_str(), "usable"),
    ] {
        let err = pki
            .sign_csr(&ca("sector-web"), &cert("bad"), bad, &no_sans)
            .unwrap_err();
        assert!(matches!(err, PkiError::BadCsr { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert!(
        pki.show_cert(&ca("sector-web"), &cert("bad")).is_err(),
        "nothing was issued"
    );
}
