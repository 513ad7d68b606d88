//! `orbitlab pki ...` checked by OpenSSL: the chain the commands print
//! verifies, the SANs asked for are in the certificate, the CRL reads and
//! lists what was revoked; and bad input is refused.

mod secrets_support;

use secrets_support::{Sandbox, text, tool, tool_ok};

const LEAF_DNS: &str = "web.orbitlab.internal";

/// Root `root`, intermediate `sectors` (limited to orbitlab.internal), and
/// their PEMs exported as `root.pem` and `sectors.pem`.
fn with_cas() -> Sandbox {
    let sb = Sandbox::new();
    let root = sb.json(&[
        "pki",
        "ca",
        "create-root",
        "root",
        "--common-name",
        "Test Root CA",
    ]);
    assert_eq!(root["kind"], "root");
    let sectors = sb.json(&[
        "pki",
        "ca",
        "create-intermediate",
        "sectors",
        "--parent",
        "root",
        "--permitted-dns",
        "orbitlab.internal",
        "--days",
        "2y",
    ]);
    assert_eq!(sectors["chain_verified"], true);
    assert_eq!(sectors["info"]["path_len"], 0);
    // Made for 730 days a moment ago: 730, or 729 once a second has passed.
    let days_left = sectors["info"]["days_left"].as_i64().unwrap();
    assert!((729..=730).contains(&days_left), "days left: {days_left}");
    export(&sb, &["pki", "ca", "show", "root", "--pem"], "root.pem");
    export(
        &sb,
        &["pki", "ca", "show", "sectors", "--pem"],
        "sectors.pem",
    );
    sb
}

/// Runs a command and saves its standard output next to the root.
fn export(sb: &Sandbox, args: &[&str], name: &str) -> String {
    let out = sb.ok(args);
    sb.write(name, &out);
    sb.file(name).to_str().unwrap().to_owned()
}

fn file(sb: &Sandbox, name: &str) -> String {
    sb.file(name).to_str().unwrap().to_owned()
}

#[test]
fn openssl_verifies_the_chain_the_commands_print() {
    let sb = with_cas();
    let issued = sb.json(&[
        "pki",
        "cert",
        "issue",
        "sectors",
        "web",
        "--dns",
        LEAF_DNS,
        "--dns",
        "api.orbitlab.internal",
        "--ip",
        "10.0.0.5",
        "--ip",
        "fd00::5",
        "--days",
        "90",
    ]);
    assert_eq!(issued["chain_verified"], true);
    let leaf = export(
        &sb,
        &["pki", "cert", "show", "sectors", "web", "--pem"],
        "leaf.pem",
    );
    let verified = tool_ok(
        "openssl",
        &[
            "verify",
            "-CAfile",
            &file(&sb, "root.pem"),
            "-untrusted",
            &file(&sb, "sectors.pem"),
            &leaf,
        ],
    );
    assert!(verified.contains(": OK"), "{verified}");

    let x509 = tool_ok("openssl", &["x509", "-in", &leaf, "-noout", "-text"]);
    for san in [
        "DNS:web.orbitlab.internal",
        "DNS:api.orbitlab.internal",
        "IP Address:10.0.0.5",
        "IP Address:FD00:0:0:0:0:0:0:5",
        "TLS Web Server Authentication",
    ] {
        assert!(x509.contains(san), "{san} missing: {x509}");
    }

    // What `show` prints: fingerprint (as openssl computes it), SANs,
    // chain, days left.
    let fingerprint = tool_ok(
        "openssl",
        &["x509", "-in", &leaf, "-noout", "-fingerprint", "-sha256"],
    );
    let fingerprint = fingerprint.trim().split('=').nth(1).unwrap().to_owned();
    let shown = sb.json(&["pki", "cert", "show", "sectors", "web"]);
    assert_eq!(shown["info"]["sha256_fingerprint"], fingerprint.as_str());
    // Issued for 90 days a moment ago: 90, or 89 once a second has passed.
    let days_left = shown["info"]["days_left"].as_i64().unwrap();
    assert!((89..=90).contains(&days_left), "days left: {days_left}");
    assert_eq!(shown["info"]["dns_names"][1], "api.orbitlab.internal");
    assert_eq!(shown["chain"].as_array().unwrap().len(), 2);
    assert_eq!(shown["chain"][1]["subject"], "O=OrbitLab, CN=Test Root CA");
    let table = text(&sb.ok(&["pki", "cert", "show", "sectors", "web"]));
    for needle in [
        fingerprint.as_str(),
        "info.dns_names[0]",
        LEAF_DNS,
        "info.days_left",
        "chain[1].subject",
        "CN=Test Root CA",
    ] {
        assert!(table.contains(needle), "{needle} missing: {table}");
    }
    assert!(!table.contains("BEGIN CERTIFICATE"), "{table}");

    // --chain: leaf then intermediate; verifies on its own.
    let chain = export(
        &sb,
        &["pki", "cert", "show", "sectors", "web", "--chain"],
        "chain.pem",
    );
    assert_eq!(
        text(&sb.ok(&["pki", "cert", "show", "sectors", "web", "--chain"]))
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    tool_ok(
        "openssl",
        &[
            "verify",
            "-CAfile",
            &file(&sb, "root.pem"),
            "-untrusted",
            &chain,
            &chain,
        ],
    );

    // The key the command prints belongs to the certificate.
    let key = export(&sb, &["pki", "cert", "key", "sectors", "web"], "leaf.key");
    let from_key = tool_ok("openssl", &["pkey", "-in", &key, "-pubout"]);
    let from_cert = tool_ok("openssl", &["x509", "-in", &leaf, "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);

    // A client certificate.
    sb.ok(&[
        "pki",
        "cert",
        "issue",
        "sectors",
        "backup",
        "--client",
        "--dns",
        "backup.orbitlab.internal",
    ]);
    let client = export(
        &sb,
        &["pki", "cert", "show", "sectors", "backup", "--pem"],
        "client.pem",
    );
    let x509 = tool_ok("openssl", &["x509", "-in", &client, "-noout", "-text"]);
    assert!(x509.contains("TLS Web Client Authentication"), "{x509}");

    let listed = sb.json(&["pki", "cert", "list", "--ca", "sectors"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let cas = sb.json(&["pki", "ca", "list"]);
    assert_eq!(cas[0]["name"], "root");
    assert_eq!(cas[1]["parent"], "root");
}

#[test]
fn openssl_reads_the_crl_and_sees_the_revocation() {
    let sb = with_cas();
    sb.ok(&["pki", "cert", "issue", "sectors", "web", "--dns", LEAF_DNS]);
    let leaf = export(
        &sb,
        &["pki", "cert", "show", "sectors", "web", "--pem"],
        "leaf.pem",
    );
    let serial = tool_ok("openssl", &["x509", "-in", &leaf, "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=").to_owned();

    let revoked = sb.json(&[
        "pki",
        "revoke",
        "sectors",
        "--cert",
        "web",
        "--reason",
        "key-compromise",
    ]);
    assert_eq!(revoked["revoked"]["serial"], serial.to_lowercase());
    assert_eq!(revoked["revoked"]["reason"], "key-compromise");

    let crl = export(&sb, &["pki", "crl", "sectors"], "sectors.crl.pem");
    let listed = tool_ok("openssl", &["crl", "-in", &crl, "-noout", "-text"]);
    assert!(
        listed.contains(&format!("Serial Number: {serial}")),
        "{listed}"
    );
    assert!(listed.contains("Key Compromise"), "{listed}");
    // Signed by the CA.
    let checked = tool(
        "openssl",
        &[
            "crl",
            "-in",
            &crl,
            "-noout",
            "-CAfile",
            &file(&sb, "sectors.pem"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&checked.stderr).contains("verify OK"),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // And a verifier that checks CRLs refuses the certificate.
    let refused = tool(
        "openssl",
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            &crl,
            "-CAfile",
            &file(&sb, "root.pem"),
            "-untrusted",
            &file(&sb, "sectors.pem"),
            &leaf,
        ],
    );
    assert!(!refused.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(said.contains("certificate revoked"), "{said}");

    // The root revokes the intermediate; listed by serial in its CRL.
    sb.ok(&["pki", "revoke", "root", "--ca", "sectors"]);
    let root_crl = export(&sb, &["pki", "crl", "root"], "root.crl.pem");
    let sectors_serial = tool_ok(
        "openssl",
        &[
            "x509",
            "-in",
            &file(&sb, "sectors.pem"),
            "-noout",
            "-serial",
        ],
    );
    let listed = tool_ok("openssl", &["crl", "-in", &root_crl, "-noout", "-text"]);
    assert!(
        listed.contains(sectors_serial.trim().trim_start_matches("serial=")),
        "{listed}"
    );
    sb.refused(
        &["pki", "cert", "issue", "sectors", "late", "--dns", LEAF_DNS],
        None,
        "has been revoked",
    );
    // By serial, colons allowed; unknown serials are refused.
    sb.refused(
        &["pki", "revoke", "root", "--serial", "de:ad:be:ef"],
        None,
        "never issued a certificate with serial de:ad:be:ef",
    );
    let json_crl = sb.json(&["pki", "crl", "root"]);
    assert!(
        json_crl["crl"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );
}

#[test]
fn signing_a_csr_and_refusing_garbage() {
    let sb = with_cas();
    let key = file(&sb, "db.key");
    let csr = file(&sb, "db.csr");
    tool_ok(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=db",
            "-addext",
            "subjectAltName=DNS:db.orbitlab.internal",
        ],
    );
    let signed = sb.json(&["pki", "cert", "sign-csr", "sectors", "db", "--csr", &csr]);
    assert_eq!(signed["info"]["dns_names"][0], "db.orbitlab.internal");
    assert_eq!(signed["key_path"], serde_json::Value::Null);
    let leaf = export(
        &sb,
        &["pki", "cert", "show", "sectors", "db", "--pem"],
        "db.pem",
    );
    tool_ok(
        "openssl",
        &[
            "verify",
            "-CAfile",
            &file(&sb, "root.pem"),
            "-untrusted",
            &file(&sb, "sectors.pem"),
            &leaf,
        ],
    );
    let from_key = tool_ok("openssl", &["pkey", "-in", &key, "-pubout"]);
    let from_cert = tool_ok("openssl", &["x509", "-in", &leaf, "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);
    sb.refused(
        &["pki", "cert", "key", "sectors", "db"],
        None,
        "the requester holds the key",
    );

    let before = sb.stored_data();
    let garbage = sb.write("garbage.csr", b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all\n-----END CERTIFICATE REQUEST-----\n");
    let message = sb.refused(
        &[
            "pki",
            "cert",
            "sign-csr",
            "sectors",
            "junk",
            "--csr",
            garbage.to_str().unwrap(),
        ],
        None,
        "certificate signing request",
    );
    assert!(message.contains(garbage.to_str().unwrap()), "{message}");
    let random = sb.write("random.csr", &[0x8f, 0x00, 0xff, 0x10, 0x7f]);
    let message = sb.refused(
        &[
            "pki",
            "cert",
            "sign-csr",
            "sectors",
            "junk",
            "--csr",
            random.to_str().unwrap(),
        ],
        None,
        "is not text",
    );
    assert!(message.contains(random.to_str().unwrap()), "{message}");
    let cert_as_csr = file(&sb, "root.pem");
    sb.refused(
        &[
            "pki",
            "cert",
            "sign-csr",
            "sectors",
            "junk",
            "--csr",
            &cert_as_csr,
        ],
        None,
        "certificate signing request",
    );
    sb.refused(
        &[
            "pki",
            "cert",
            "sign-csr",
            "sectors",
            "junk",
            "--csr",
            "/nonexistent.csr",
        ],
        None,
        "cannot open CSR file /nonexistent.csr",
    );
    sb.assert_unchanged(&before);
}

#[test]
fn bad_requests_are_refused_with_reasons() {
    let sb = with_cas();
    let before = sb.stored_data();
    for (args, needle) in [
        (
            &[
                "pki",
                "cert",
                "issue",
                "sectors",
                "ext",
                "--dns",
                "example.com",
            ][..],
            "outside the names CA sectors may certify",
        ),
        (
            &["pki", "cert", "issue", "sectors", "Web", "--dns", LEAF_DNS],
            "invalid certificate name",
        ),
        (
            &["pki", "cert", "issue", "sectors", "../x", "--dns", LEAF_DNS],
            "invalid certificate name",
        ),
        (
            &["pki", "cert", "issue", "sectors", "web", "--dns", "a..b"],
            "invalid DNS name",
        ),
        (
            &[
                "pki",
                "cert",
                "issue",
                "sectors",
                "web",
                "--ip",
                "10.0.0.300",
            ],
            "is not an IPv4 or IPv6 address",
        ),
        (
            &[
                "pki", "cert", "issue", "sectors", "web", "--dns", LEAF_DNS, "--days", "0",
            ],
            "invalid lifetime",
        ),
        (
            &[
                "pki", "cert", "issue", "sectors", "web", "--dns", LEAF_DNS, "--days", "3y",
            ],
            "would outlive CA sectors",
        ),
        (
            &["pki", "cert", "issue", "sectors", "web"],
            "needs at least one DNS name or IP address",
        ),
        (
            &["pki", "cert", "issue", "nope", "web", "--dns", LEAF_DNS],
            "CA nope does not exist",
        ),
        (
            &["pki", "ca", "create-root", "root"],
            "CA root already exists",
        ),
        (
            &[
                "pki",
                "ca",
                "create-intermediate",
                "deeper",
                "--parent",
                "sectors",
            ],
            "signs only leaf certificates",
        ),
        (
            &[
                "pki", "revoke", "sectors", "--cert", "web", "--reason", "stolen",
            ],
            "invalid revocation reason",
        ),
        (
            &["pki", "cert", "show", "sectors", "missing"],
            "does not exist",
        ),
    ] {
        sb.refused(args, None, needle);
    }
    sb.assert_unchanged(&before);
    let usage = sb.run(&["pki", "revoke", "sectors"]);
    assert_eq!(usage.status.code(), Some(2));
    let usage = sb.run(&["pki", "cert", "show", "sectors", "web", "--pem", "--chain"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn renewal_renews_what_is_close_to_expiry() {
    let sb = with_cas();
    sb.ok(&[
        "pki", "cert", "issue", "sectors", "short", "--dns", LEAF_DNS, "--days", "2",
    ]);
    sb.ok(&["pki", "cert", "issue", "sectors", "long", "--dns", LEAF_DNS]);
    // A 2-day certificate is due once at most 1 whole day is left (half
    // its lifetime): true from the second after it was issued.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let old = sb.json(&["pki", "cert", "show", "sectors", "short"]);

    let due = sb.json(&["pki", "renew", "--dry-run"]);
    let names: Vec<_> = due
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, ["short"]);
    assert_eq!(
        sb.json(&["pki", "cert", "show", "sectors", "short"]),
        old,
        "--dry-run changed something"
    );

    let report = sb.json(&["pki", "renew"]);
    assert_eq!(report["renewed"][0]["item"]["name"], "short");
    assert_eq!(report["failed"], serde_json::json!([]));
    let new = sb.json(&["pki", "cert", "show", "sectors", "short"]);
    assert_ne!(new["info"]["serial"], old["info"]["serial"]);
    assert_eq!(
        new["previous_serials"][0],
        old["info"]["serial"].as_str().unwrap().replace(':', "")
    );
    let leaf = export(
        &sb,
        &["pki", "cert", "show", "sectors", "short", "--pem"],
        "short.pem",
    );
    tool_ok(
        "openssl",
        &[
            "verify",
            "-CAfile",
            &file(&sb, "root.pem"),
            "-untrusted",
            &file(&sb, "sectors.pem"),
            &leaf,
        ],
    );
    let yaml = text(&sb.ok(&["pki", "ca", "list", "--output-format", "yaml"]));
    assert!(yaml.contains("name: sectors"), "{yaml}");
}
