//! The YAML codec: envelope errors, duplicate keys, budgets, round trips.

mod common;

use common::{decode_err, decode_ok, doc, lxc, sector};
use orbitlab_manifests::{Kind, MAX_FILE_BYTES, decode, encode, encode_all};

#[test]
fn unknown_kind_is_refused_with_the_known_ones() {
    let e = decode_err("x.yaml", &doc("VirtualMachine", "a", "cores: 2"));
    assert_eq!(e.field, "kind");
    assert_eq!(e.line, Some(2));
    assert!(e.reason.contains("unknown kind \"VirtualMachine\""), "{e}");
    assert!(e.reason.contains("Cluster, Node, Sector, Lxc"), "{e}");
}

#[test]
fn kind_accepts_the_snake_form() {
    let m = decode_ok("k.yaml", &doc("ssh_key", "a", ""));
    assert_eq!(m[0].kind(), Kind::SshKey);
    assert!(encode(&m[0]).contains("kind: SshKey\n"));
}

#[test]
fn unknown_or_missing_api_version_is_refused() {
    let text = doc("Sector", "a", "cidr: 10.1.0.0/16").replace("orbitlab.io/v1", "orbitlab.io/v2");
    let e = decode_err("x.yaml", &text);
    assert_eq!((e.field.as_str(), e.line), ("apiVersion", Some(1)));
    assert!(
        e.reason.contains("unknown apiVersion \"orbitlab.io/v2\""),
        "{e}"
    );
    assert!(e.reason.contains("orbitlab.io/v1"), "{e}");

    let text = doc("Sector", "a", "cidr: 10.1.0.0/16").replace("apiVersion: orbitlab.io/v1\n", "");
    let e = decode_err("x.yaml", &text);
    assert_eq!(e.field, "apiVersion");
    assert!(e.reason.contains("required"), "{e}");
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    let e = decode_err("x.yaml", &sector("a", "10.1.0.0/16", "vlan: 5"));
    assert_eq!((e.field.as_str(), e.line), ("spec.vlan", Some(7)));
    assert!(e.reason.contains("unknown field `vlan`"), "{e}");
    assert!(e.reason.contains("cidr"), "lists the known fields: {e}");

    let e = decode_err(
        "x.yaml",
        &sector(
            "a",
            "10.1.0.0/16",
            "subnets:\n  - name: a\n    cidr: 10.1.0.0/24\n    gw: 1",
        ),
    );
    assert_eq!(e.field, "spec.subnets[0].gw");
    assert_eq!(e.line, Some(10));

    let text = format!("{}status: {{}}\n", doc("Secret", "a", ""));
    let e = decode_err("x.yaml", &text);
    assert_eq!(e.field, "status");
    assert!(e.reason.contains("unknown field `status`"), "{e}");

    let text = doc("Secret", "a", "").replace("  name: a\n", "  name: a\n  namespace: b\n");
    let e = decode_err("x.yaml", &text);
    assert_eq!(e.field, "metadata.namespace");
}

#[test]
fn secret_values_are_refused_with_advice() {
    let e = decode_err(
        "secret/pw.yaml",
        &doc("Secret", "pw", "type: password\nvalue: hunter2"),
    );
    assert_eq!(e.field, "spec.value");
    assert!(e.reason.contains("never go into manifests"), "{e}");
    assert!(
        !e.to_string().contains("hunter2"),
        "the value must not be echoed: {e}"
    );
}

#[test]
fn missing_fields_are_named() {
    let e = decode_err(
        "lxc/a.yaml",
        &doc("Lxc", "a", "template: local:vztmpl/x.tar.zst"),
    );
    assert_eq!(e.field, "spec.sector");
    assert!(e.reason.contains("required"), "{e}");
    let e = decode_err("lxc/a.yaml", &doc("Lxc", "a", ""));
    assert_eq!(e.field, "spec.sector");
    let e = decode_err(
        "s.yaml",
        &sector("a", "10.1.0.0/16", "subnets:\n  - name: a"),
    );
    assert_eq!(e.field, "spec.subnets[0].cidr");
}

#[test]
fn duplicate_yaml_keys_are_refused() {
    let text = sector("a", "10.1.0.0/16", "cidr: 10.2.0.0/16");
    let e = decode_err("dup.yaml", &text);
    assert_eq!((e.field.as_str(), e.line), ("spec.cidr", Some(7)));
    assert!(e.reason.contains("duplicate"), "{e}");
    assert!(e.reason.contains("remove one"), "{e}");

    let text = doc("Secret", "a", "").replace("kind: Secret\n", "kind: Secret\nkind: Secret\n");
    let e = decode_err("dup.yaml", &text);
    assert_eq!(e.field, "kind");
    assert!(e.reason.contains("duplicate"), "{e}");

    let text =
        "apiVersion: orbitlab.io/v1\nkind: Secret\nmetadata:\n  name: a\n  labels: {a: x, a: y}\n";
    let e = decode_err("dup.yaml", text);
    assert!(e.field.starts_with("metadata.labels"), "{e}");
    assert!(e.reason.contains("duplicate"), "{e}");
}

#[test]
fn a_50_mb_document_is_refused_before_parsing() {
    let mut text = sector("a", "10.1.0.0/16", "");
    text.push_str("# ");
    text.push_str(&"x".repeat(50 * 1024 * 1024));
    let e = decode_err("huge.yaml", &text);
    assert_eq!(e.file, "huge.yaml");
    assert_eq!(e.line, None);
    assert!(
        e.reason
            .contains(&format!("at most {MAX_FILE_BYTES} bytes")),
        "{e}"
    );
    assert!(e.reason.contains("1 MiB"), "{e}");

    // Just over the limit is refused too; just under is read.
    let over = format!(
        "{}#{}\n",
        sector("a", "10.1.0.0/16", ""),
        "x".repeat(MAX_FILE_BYTES)
    );
    assert!(decode("f.yaml", &over).is_err());
    let base = sector("a", "10.1.0.0/16", "");
    let under = format!("{base}#{}\n", "x".repeat(MAX_FILE_BYTES - base.len() - 2));
    assert_eq!(under.len(), MAX_FILE_BYTES);
    assert_eq!(decode_ok("f.yaml", &under).len(), 1);
}

#[test]
fn deeply_nested_documents_are_refused() {
    // Flow nesting, as the root.
    let text = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let e = decode_err("deep.yaml", &text);
    assert!(e.reason.contains("nesting deeper than 16 levels"), "{e}");

    // Flow nesting inside a spec written before its kind (read generically).
    let text = format!(
        "spec: {}{}\nkind: Secret\n",
        "{a: ".repeat(50_000),
        "}".repeat(50_000)
    );
    let e = decode_err("deep.yaml", &text);
    assert!(e.reason.contains("nesting deeper than 16 levels"), "{e}");
    assert!(e.field.starts_with("spec"), "{e}");

    // Block nesting.
    let mut text = String::from("spec:\n");
    for depth in 0..200 {
        text.push_str(&" ".repeat(2 * depth + 2));
        text.push_str("-\n");
    }
    text.push_str("kind: Secret\n");
    let e = decode_err("deep.yaml", &text);
    assert!(e.reason.contains("nesting deeper than 16 levels"), "{e}");
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("spec:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..12 {
        let prev = level - 1;
        text.push_str(&format!(
            "  l{level}: &l{level} [{}]\n",
            vec![format!("*l{prev}"); 10].join(", ")
        ));
    }
    text.push_str("kind: Secret\n");
    let e = decode_err("bomb.yaml", &text);
    assert!(
        e.reason.starts_with("refused before reading further"),
        "{e}"
    );
    assert!(e.field.starts_with("spec"), "{e}");
}

#[test]
fn not_a_mapping() {
    let e = decode_err("x.yaml", "- a\n- b\n");
    assert!(
        e.reason
            .contains("a manifest is a mapping with apiVersion, kind, metadata and spec"),
        "{e}"
    );
}

#[test]
fn multi_document_files_keep_each_start_line() {
    let text = format!(
        "# leading comment\n{}---\n---\n{}",
        sector("web", "10.1.0.0/16", ""),
        lxc("web-1", "web", "cores: 2")
    );
    let docs = decode_ok("all.yaml", &text);
    assert_eq!(docs.len(), 2, "the empty document is skipped");
    assert_eq!(
        (docs[0].source.as_str(), docs[0].line),
        ("all.yaml", Some(2))
    );
    assert_eq!(docs[1].line, Some(10));
    assert_eq!(docs[1].kind(), Kind::Lxc);
    assert_eq!(docs[1].line_of("spec.cores"), Some(17));
    assert!(decode_ok("empty.yaml", "# nothing here\n").is_empty());
}

#[test]
fn spec_may_come_before_kind() {
    let text = "spec:\n  cidr: 10.1.0.0/16\nmetadata:\n  name: web\nkind: Sector\napiVersion: orbitlab.io/v1\n";
    let docs = decode_ok("s.yaml", text);
    assert_eq!(docs[0].kind(), Kind::Sector);
    let e = decode_err("s.yaml", &text.replace("cidr:", "cdir:"));
    assert_eq!((e.field.as_str(), e.line), ("spec.cdir", Some(1)));
    assert!(e.reason.contains("unknown field `cdir`"), "{e}");
    let e = decode_err(
        "s.yaml",
        &text.replace("cidr: 10.1.0.0/16", "cidr: 10.1.0.0"),
    );
    assert_eq!((e.field.as_str(), e.line), ("spec", Some(1)));
    assert!(e.reason.contains("has no prefix length"), "{e}");
    let e = decode_err(
        "l.yaml",
        &format!(
            "{}---\napiVersion: orbitlab.io/v1\nkind: Lxc\nmetadata:\n  name: a\n",
            doc("Secret", "x", "")
        ),
    );
    assert_eq!((e.field.as_str(), e.line), ("spec.sector", Some(8)));
    assert!(e.reason.contains("required"), "{e}");
}

#[test]
fn encode_decode_round_trip() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples directory") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("example text");
        for m in decode_ok(&path.display().to_string(), &text) {
            let once = encode(&m);
            let back = decode_ok("encoded.yaml", &once);
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].value, m.value, "round trip of {}", m.name());
            assert_eq!(encode(&back[0]), once, "encoding is stable");
            seen += 1;
        }
    }
    assert!(seen >= 9);
}

#[test]
fn encode_all_joins_documents() {
    let docs = decode_ok(
        "a.yaml",
        &format!(
            "{}---\n{}",
            sector("a", "10.1.0.0/16", ""),
            sector("b", "10.2.0.0/16", "")
        ),
    );
    let text = encode_all(docs.iter().map(|d| &d.value));
    let again = decode_ok("b.yaml", &text);
    assert_eq!(
        again.iter().map(|d| d.value.clone()).collect::<Vec<_>>(),
        docs.iter().map(|d| d.value.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn bad_values_name_their_field() {
    let e = decode_err("s.yaml", &sector("a", "10.1.0.0", ""));
    assert_eq!((e.field.as_str(), e.line), ("spec.cidr", Some(6)));
    assert!(
        e.reason
            .contains("has no prefix length; write it like 10.1.0.0/24"),
        "{e}"
    );
    let e = decode_err("l.yaml", &lxc("a", "web", "cores: many"));
    assert_eq!(e.field, "spec.cores");
    let e = decode_err(
        "s.yaml",
        &sector(
            "a",
            "10.1.0.0/16",
            "ingress:\n  - {name: a, protocol: icmp, port: 1, to_address: 10.1.0.9}",
        ),
    );
    assert_eq!(e.field, "spec.ingress[0].protocol");
    assert!(e.reason.contains("icmp"), "{e}");
}

#[test]
fn cluster_dns_upstreams_are_located_when_refused() {
    // Not an IPv4 address: refused while decoding, at its index.
    let text = doc(
        "Cluster",
        "main",
        "defaults:\n  dns_upstreams:\n    - 9.9.9.9\n    - \"2620:fe::fe\"",
    );
    let e = decode_err("cluster/main.yaml", &text);
    assert_eq!(e.field, "spec.defaults.dns_upstreams[1]", "{e}");
    assert!(
        e.reason.contains("\"2620:fe::fe\" is not an IPv4 address"),
        "{e}"
    );

    // An IPv4 address no Sector DNS can use: refused by validation, with
    // file, line and field.
    let text = doc(
        "Cluster",
        "main",
        "defaults:\n  dns_upstreams:\n    - 9.9.9.9\n    - 127.0.0.53",
    );
    let docs = decode_ok("cluster/main.yaml", &text);
    let errors = docs[0]
        .validate()
        .expect_err("a loopback upstream is refused");
    let e = errors.iter().next().unwrap();
    assert_eq!(
        (e.file.as_str(), e.line, e.field.as_str()),
        (
            "cluster/main.yaml",
            Some(9),
            "spec.defaults.dns_upstreams[1]"
        ),
        "{e}"
    );
    assert!(
        e.reason.starts_with("127.0.0.53 is a loopback address"),
        "{e}"
    );

    // Given upstreams survive a round trip; none given writes no key.
    let text = doc(
        "Cluster",
        "main",
        "defaults:\n  dns_upstreams: [192.168.1.1, 9.9.9.9]",
    );
    let docs = decode_ok("cluster/main.yaml", &text);
    assert!(docs[0].validate().is_ok());
    let again = decode_ok("again.yaml", &encode(&docs[0]));
    assert_eq!(again[0].value, docs[0].value);
    let orbitlab_manifests::Spec::Cluster(spec) = &again[0].spec else {
        panic!("a Cluster");
    };
    assert_eq!(
        spec.defaults.dns_upstreams,
        [
            std::net::Ipv4Addr::new(192, 168, 1, 1),
            std::net::Ipv4Addr::new(9, 9, 9, 9)
        ]
    );
    let plain = decode_ok("cluster/main.yaml", &doc("Cluster", "main", ""));
    assert!(!encode(&plain[0]).contains("dns_upstreams"));
}
