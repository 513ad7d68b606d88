//! Set-level validation: duplicates, singletons, references, loops, order.

mod common;

use common::{decode_ok, doc, find, lxc, sector, set_err, set_ok};
use orbitlab_manifests::{Kind, Manifest, ManifestSet, Name, SectorSpec, Sourced, validate_update};

#[test]
fn duplicate_names_point_at_both_files() {
    let errors = set_err(&[
        ("sector/web.yaml", &sector("web", "10.1.0.0/16", "")),
        (
            "other/web.yaml",
            &format!("# comment\n{}", sector("web", "10.2.0.0/16", "")),
        ),
    ]);
    assert_eq!(errors.len(), 1, "{errors}");
    let e = find(&errors, "metadata.name");
    assert_eq!(e.file, "other/web.yaml");
    assert_eq!(e.line, Some(5));
    assert!(
        e.reason
            .contains("a Sector named web is already defined in sector/web.yaml:1"),
        "{e}"
    );
}

#[test]
fn same_name_in_different_kinds_is_fine() {
    let set = set_ok(&[
        ("a.yaml", &sector("web", "10.1.0.0/16", "")),
        ("b.yaml", &doc("Secret", "web", "")),
    ]);
    assert_eq!(set.len(), 2);
}

#[test]
fn at_most_one_cluster_and_one_settings() {
    let errors = set_err(&[
        ("a.yaml", &doc("Cluster", "main", "")),
        ("b.yaml", &doc("Cluster", "second", "")),
        ("c.yaml", &doc("Settings", "a", "")),
        ("d.yaml", &doc("Settings", "b", "")),
    ]);
    assert_eq!(errors.len(), 2, "{errors}");
    let cluster = errors
        .iter()
        .find(|e| e.file == "b.yaml")
        .expect("cluster error");
    assert_eq!(cluster.field, "kind");
    assert!(
        cluster
            .reason
            .contains("only one Cluster manifest may exist"),
        "{cluster}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.file == "d.yaml" && e.reason.contains("only one Settings"))
    );
}

#[test]
fn all_dangling_references_are_reported() {
    let errors = set_err(&[
        (
            "lxc/a.yaml",
            &lxc("a", "nowhere", "ssh_keys: [k1, k2]\npassword: pw"),
        ),
        (
            "ssh/k1.yaml",
            &doc("SshKey", "k1", "passphrase: missing-pass"),
        ),
        (
            "cert/leaf.yaml",
            &doc(
                "Certificate",
                "leaf",
                "role: client\nissuer: no-ca\ncommon_name: x",
            ),
        ),
        (
            "sector/web.yaml",
            &sector(
                "web",
                "10.1.0.0/16",
                "ingress:\n  - {name: h, protocol: tcp, port: 80, to_instance: ghost}",
            ),
        ),
    ]);
    let fields: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.file.as_str(), e.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("cert/leaf.yaml", "spec.issuer"),
            ("lxc/a.yaml", "spec.sector"),
            ("lxc/a.yaml", "spec.ssh_keys[1]"),
            ("lxc/a.yaml", "spec.password"),
            ("sector/web.yaml", "spec.ingress[0].to_instance"),
            ("ssh/k1.yaml", "spec.passphrase"),
        ],
        "{errors}"
    );
    let e = find(&errors, "spec.sector");
    assert_eq!(e.line, Some(6));
    assert!(
        e.reason.contains(
            "no Sector named \"nowhere\" exists (existing: web); create it or correct the name"
        ),
        "{e}"
    );
    let e = find(&errors, "spec.password");
    assert!(e.reason.contains("there are no Secret objects yet"), "{e}");
    let e = find(&errors, "spec.ssh_keys[1]");
    assert_eq!(e.line, Some(8), "{e}");
}

#[test]
fn subnet_references_resolve_inside_their_sector() {
    let errors = set_err(&[
        (
            "s.yaml",
            &sector(
                "web",
                "10.1.0.0/16",
                "subnets:\n  - {name: front, cidr: 10.1.1.0/24}",
            ),
        ),
        ("l.yaml", &lxc("a", "web", "subnet: back")),
    ]);
    let e = find(&errors, "spec.subnet");
    assert!(
        e.reason
            .contains("Sector web has no subnet \"back\"; its subnets are front (10.1.1.0/24)"),
        "{e}"
    );
    // The implicit subnet `main` can be named.
    set_ok(&[
        ("s.yaml", &sector("web", "10.1.0.0/16", "")),
        ("l.yaml", &lxc("a", "web", "subnet: main")),
    ]);
}

#[test]
fn fixed_addresses_are_usable_and_unique() {
    let s = sector(
        "web",
        "10.1.0.0/16",
        "subnets:\n  - {name: front, cidr: 10.1.1.0/24}\n  - {name: back, cidr: 10.1.2.0/24}",
    );
    let errors = set_err(&[
        ("s.yaml", &s),
        (
            "a.yaml",
            &lxc("a", "web", "subnet: back\naddress: 10.1.1.20"),
        ),
        ("b.yaml", &lxc("b", "web", "address: 10.1.1.1")),
        ("c.yaml", &lxc("c", "web", "address: 10.1.1.30")),
        ("d.yaml", &lxc("d", "web", "address: 10.1.1.30")),
    ]);
    assert!(
        errors
            .iter()
            .any(|e| e.file == "a.yaml" && e.reason.contains("outside subnet back")),
        "{errors}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.file == "b.yaml" && e.reason.contains("gateway address")),
        "{errors}"
    );
    let d = errors
        .iter()
        .find(|e| e.file == "d.yaml")
        .expect("d refused");
    assert_eq!(d.field, "spec.address");
    assert!(
        d.reason.contains("already the address of Lxc c (c.yaml:1)"),
        "{d}"
    );
}

#[test]
fn ingress_reaches_only_its_own_sector() {
    let errors = set_err(&[
        (
            "web.yaml",
            &sector(
                "web",
                "10.1.0.0/16",
                "ingress:\n  - {name: h, protocol: tcp, port: 80, to_instance: db-1}",
            ),
        ),
        ("db.yaml", &sector("db", "10.2.0.0/16", "")),
        ("db-1.yaml", &lxc("db-1", "db", "")),
    ]);
    let e = find(&errors, "spec.ingress[0].to_instance");
    assert!(
        e.reason.contains("Lxc db-1 is in Sector db, not in web"),
        "{e}"
    );
}

#[test]
fn issuers_must_be_cas_without_loops() {
    let errors = set_err(&[
        (
            "leaf.yaml",
            &doc(
                "Certificate",
                "leaf",
                "role: server\nissuer: other\ndns_names: [a.example.org]",
            ),
        ),
        (
            "other.yaml",
            &doc(
                "Certificate",
                "other",
                "role: client\nissuer: ca\ncommon_name: c",
            ),
        ),
        (
            "a.yaml",
            &doc(
                "Certificate",
                "a",
                "role: intermediate_ca\nissuer: b\ncommon_name: A",
            ),
        ),
        (
            "b.yaml",
            &doc(
                "Certificate",
                "b",
                "role: intermediate_ca\nissuer: a\ncommon_name: B",
            ),
        ),
        (
            "ca.yaml",
            &doc(
                "Certificate",
                "ca",
                "role: root_ca\ncommon_name: Root\npath_len: 0",
            ),
        ),
        (
            "mid.yaml",
            &doc(
                "Certificate",
                "mid",
                "role: intermediate_ca\nissuer: ca\ncommon_name: Mid",
            ),
        ),
    ]);
    let e = errors
        .iter()
        .find(|e| e.file == "leaf.yaml")
        .expect("leaf refused");
    assert!(
        e.reason
            .contains("Certificate other is a client certificate and cannot sign others"),
        "{e}"
    );
    let looped: Vec<_> = errors
        .iter()
        .filter(|e| e.reason.contains("loop"))
        .collect();
    assert_eq!(looped.len(), 1, "{errors}");
    assert_eq!(looped[0].field, "spec.issuer");
    assert!(
        looped[0]
            .reason
            .contains("Certificate a → Certificate b → Certificate a"),
        "{}",
        looped[0]
    );
    assert!(looped[0].reason.contains("must end at a root_ca"));
    let e = errors
        .iter()
        .find(|e| e.file == "mid.yaml")
        .expect("mid refused");
    assert!(e.reason.contains("path_len 0"), "{e}");
}

#[test]
fn name_constraints_of_the_issuer_apply() {
    let errors = set_err(&[
        (
            "ca.yaml",
            &doc(
                "Certificate",
                "ca",
                "role: root_ca\ncommon_name: Root\npermitted_dns_domains: [orbitlab.internal]",
            ),
        ),
        (
            "ok.yaml",
            &doc(
                "Certificate",
                "ok",
                "role: server\nissuer: ca\ndns_names: [\"*.web.orbitlab.internal\", orbitlab.internal]",
            ),
        ),
        (
            "bad.yaml",
            &doc(
                "Certificate",
                "bad",
                "role: server\nissuer: ca\ndns_names: [a.orbitlab.internal, evilorbitlab.internal]",
            ),
        ),
    ]);
    assert_eq!(errors.len(), 1, "{errors}");
    let e = find(&errors, "spec.dns_names[1]");
    assert_eq!(e.file, "bad.yaml");
    assert!(e.reason.contains("evilorbitlab.internal is outside the domains Certificate ca may issue for (orbitlab.internal)"), "{e}");
}

#[test]
fn certificate_shape_rules() {
    let docs = decode_ok(
        "c.yaml",
        &doc("Certificate", "ca", "role: root_ca\nissuer: x"),
    );
    let errors = docs[0].validate().expect_err("refused");
    assert!(
        find(&errors, "spec.issuer")
            .reason
            .contains("has no issuer")
    );
    assert!(
        find(&errors, "spec.common_name")
            .reason
            .contains("required")
    );
    let docs = decode_ok(
        "c.yaml",
        &doc("Certificate", "s", "role: server\nissuer: ca\npath_len: 1"),
    );
    let errors = docs[0].validate().expect_err("refused");
    assert!(
        find(&errors, "spec.path_len")
            .reason
            .contains("only to CAs")
    );
    assert!(
        find(&errors, "spec.dns_names")
            .reason
            .contains("at least one")
    );
}

#[test]
fn pinned_instances_avoid_cordoned_nodes() {
    let errors = set_err(&[
        ("n.yaml", &doc("Node", "pve1", "schedulable: false")),
        ("s.yaml", &sector("web", "10.1.0.0/16", "")),
        ("l.yaml", &lxc("a", "web", "node: PVE1")),
    ]);
    assert!(
        find(&errors, "spec.node")
            .reason
            .contains("schedulable: false")
    );
}

#[test]
fn one_appliance_per_role() {
    let app = |name: &str| {
        doc(
            "Appliance",
            name,
            "role: gateway\ntemplate: local:vztmpl/gw.tar.zst\nversion: 0.1.0",
        )
    };
    let errors = set_err(&[("a.yaml", &app("gw-a")), ("b.yaml", &app("gw-b"))]);
    let e = find(&errors, "spec.role");
    assert_eq!(e.file, "b.yaml");
    assert!(
        e.reason
            .contains("Appliance gw-a (a.yaml:1) already serves role gateway"),
        "{e}"
    );
}

#[test]
fn single_object_problems_are_reported_by_the_set() {
    let errors = set_err(&[
        (
            "l.yaml",
            &lxc(
                "a",
                "web",
                "cores: 0\nmemory: 9999999\nnode: pve1\nplacement: pack",
            ),
        ),
        ("s.yaml", &sector("web", "10.1.0.0/16", "")),
    ]);
    assert_eq!(
        find(&errors, "spec.cores").reason,
        "is 0; must be between 1 and 128"
    );
    assert_eq!(find(&errors, "spec.cores").line, Some(8));
    assert!(
        find(&errors, "spec.memory")
            .reason
            .contains("between 16 MiB and 1048576 MiB")
    );
    assert!(find(&errors, "spec.placement").reason.contains("not both"));
}

#[test]
fn dependency_order_puts_dependencies_first() {
    let set = set_ok(&[
        (
            "l.yaml",
            &lxc("web-1", "web", "ssh_keys: [deploy]\npassword: root-pw"),
        ),
        (
            "s.yaml",
            &sector(
                "web",
                "10.1.0.0/16",
                "ingress:\n  - {name: h, protocol: tcp, port: 80, to_instance: web-1}",
            ),
        ),
        ("k.yaml", &doc("SshKey", "deploy", "passphrase: pass")),
        (
            "p.yaml",
            &format!(
                "{}---\n{}",
                doc("Secret", "root-pw", ""),
                doc("Secret", "pass", "")
            ),
        ),
        (
            "c.yaml",
            &format!(
                "{}---\n{}---\n{}",
                doc(
                    "Certificate",
                    "leaf",
                    "role: client\nissuer: b-mid\ncommon_name: x"
                ),
                doc(
                    "Certificate",
                    "b-mid",
                    "role: intermediate_ca\nissuer: z-root\ncommon_name: Mid"
                ),
                doc("Certificate", "z-root", "role: root_ca\ncommon_name: Root"),
            ),
        ),
        ("cl.yaml", &doc("Cluster", "main", "")),
    ]);
    let order: Vec<String> = set
        .dependency_order()
        .iter()
        .map(|m| format!("{}/{}", m.kind().dir_name(), m.name()))
        .collect();
    assert_eq!(
        order,
        [
            "cluster/main",
            "secret/pass",
            "secret/root-pw",
            "ssh_key/deploy",
            "certificate/z-root",
            "certificate/b-mid",
            "certificate/leaf",
            "sector/web",
            "lxc/web-1",
        ]
    );
    let pos = |s: &str| order.iter().position(|o| o == s).expect("present");
    for m in set.iter() {
        for r in m.references().into_iter().filter(|r| r.orders) {
            let me = format!("{}/{}", m.kind().dir_name(), m.name());
            let dep = format!("{}/{}", r.kind.dir_name(), r.name);
            assert!(pos(&dep) < pos(&me), "{dep} before {me}");
        }
    }
}

#[test]
fn lookups() {
    let set = set_ok(&[
        (
            "s.yaml",
            &format!(
                "{}---\n{}",
                sector("b", "10.2.0.0/16", ""),
                sector("a", "10.1.0.0/16", "")
            ),
        ),
        ("l.yaml", &lxc("x", "a", "")),
    ]);
    let name: Name = "a".parse().expect("name");
    assert_eq!(
        set.get(Kind::Sector, &name).map(|m| m.kind()),
        Some(Kind::Sector)
    );
    assert!(set.get(Kind::Lxc, "a").is_none());
    assert_eq!(
        set.get_sourced(Kind::Lxc, "x").map(|s| s.source.as_str()),
        Some("l.yaml")
    );
    let names: Vec<&str> = set
        .of_kind(Kind::Sector)
        .map(|m| m.name().as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(set.iter().count(), 3);
    assert_eq!(
        set.sector("b").map(|s| s.cidr.to_string()).as_deref(),
        Some("10.2.0.0/16")
    );
    assert_eq!(set.cluster().backplane.asn, 65001);
}

#[test]
fn objects_built_in_memory_validate_without_a_file() {
    let name: Name = "web".parse().expect("name");
    let m = Manifest::new(name, SectorSpec::new("10.9.9.9/16".parse().expect("net")));
    let errors = m.validate().expect_err("host bits");
    assert_eq!(
        errors.iter().next().map(ToString::to_string).as_deref(),
        Some("spec.cidr: 10.9.9.9/16 has host bits set; write 10.9.0.0/16")
    );
    let sourced = Sourced::new("", m);
    let errors = ManifestSet::new(vec![sourced]).expect_err("refused");
    assert_eq!(errors.len(), 1);
}

#[test]
fn immutable_fields() {
    let old = &decode_ok("s.yaml", &sector("web", "10.1.0.0/16", ""))[0];
    let new = &decode_ok("s.yaml", &sector("web", "10.2.0.0/16", ""))[0];
    let e = validate_update(old, new).expect_err("cidr is immutable");
    assert_eq!(e.field, "spec.cidr");
    assert!(
        e.reason
            .contains("cannot change after creation (was 10.1.0.0/16, now 10.2.0.0/16)"),
        "{e}"
    );
    let alias = &decode_ok("s.yaml", &sector("web", "10.1.0.0/16", "alias: Web"))[0];
    assert_eq!(validate_update(old, alias), Ok(()));

    let c1 = &decode_ok("c.yaml", &doc("Cluster", "main", ""))[0];
    for change in [
        "cidr: 10.201.0.0/16",
        "asn: 65002",
        "vrf_vxlan: 11",
        "vnet_tag: 101",
    ] {
        let c2 = &decode_ok(
            "c.yaml",
            &doc("Cluster", "main", &format!("backplane:\n  {change}")),
        )[0];
        let e = validate_update(c1, c2).expect_err(change);
        assert!(e.field.starts_with("spec.backplane."), "{e}");
        assert!(e.reason.contains("cannot change after creation"), "{e}");
    }
    let c3 = &decode_ok(
        "c.yaml",
        &doc("Cluster", "main", "defaults:\n  storage: tank"),
    )[0];
    assert_eq!(validate_update(c1, c3), Ok(()));
}

#[test]
fn every_document_of_a_large_file_is_located() {
    // 3,000 instances in one file, each naming a missing Sector: every
    // refusal points at its own document's line.
    let one = lxc("x", "nowhere", "");
    let lines_per_doc = one.lines().count() + 1; // plus the `---` separator
    let text: Vec<String> = (0..3000)
        .map(|i| lxc(&format!("i-{i}"), "nowhere", ""))
        .collect();
    let text = text.join("---\n");
    let errors = set_err(&[("lxc/all.yaml", &text)]);
    assert_eq!(errors.len(), 3000);
    for e in &errors {
        assert_eq!(e.field, "spec.sector");
        let line = e.line.expect("located");
        assert_eq!(line % lines_per_doc, 6, "{e}");
    }
}

#[test]
fn pool_names_stay_clear_of_instances_and_their_members() {
    let pool = |name: &str| {
        doc(
            "Pool",
            name,
            "instance: {sector: web, template: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst}\nreplicas: 2",
        )
    };
    let errors = set_err(&[
        ("s.yaml", &sector("web", "10.1.0.0/16", "")),
        ("p.yaml", &pool("api")),
        ("a.yaml", &lxc("api", "web", "")),
        ("m.yaml", &lxc("api-2", "web", "")),
        ("d.yaml", &pool("dns")),
    ]);
    assert_eq!(errors.len(), 3, "{errors}");
    let reason = |file: &str| {
        errors
            .iter()
            .find(|e| e.file == file && e.field == "metadata.name")
            .unwrap_or_else(|| panic!("no error for {file}: {errors}"))
            .reason
            .clone()
    };
    assert!(
        reason("p.yaml")
            .contains("api.web.orbitlab.internal, which is the name of Lxc api (a.yaml:1)"),
        "{}",
        reason("p.yaml")
    );
    assert!(
        reason("m.yaml").contains("api-2 is the name of a member of Pool api (p.yaml:1)"),
        "{}",
        reason("m.yaml")
    );
    assert!(
        reason("d.yaml").contains("the Sector's own appliances"),
        "{}",
        reason("d.yaml")
    );
}
