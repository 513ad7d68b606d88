//! Bad names are refused while decoding, and each refusal names the file,
//! the line, the field and exactly what is wrong.

mod common;

use common::{decode_err, doc, lxc};

fn with_name(name_yaml: &str) -> String {
    doc("Sector", name_yaml, "cidr: 10.1.0.0/16")
}

#[test]
fn bad_object_names_say_what_is_wrong() {
    let cases = [
        (r#""web\nprod""#, "contains a newline"),
        (r#""we\"b""#, "contains a quote (\")"),
        ("\"we'b\"", "contains a quote (')"),
        ("web/prod", "contains a slash (/)"),
        ("\"..\"", "contains '..'"),
        ("web..prod", "contains '..'"),
        ("\"web prod\"", "contains a space"),
        ("Web", "contains the uppercase letter 'W'"),
        ("web_prod", "contains '_', which is not allowed"),
        ("-web", "starts with '-'"),
        ("\"\"", "is empty"),
    ];
    for (yaml, want) in cases {
        let e = decode_err("sector/bad.yaml", &with_name(yaml));
        assert_eq!(e.file, "sector/bad.yaml");
        assert_eq!(e.field, "metadata.name", "{yaml}: {e}");
        assert_eq!(e.line, Some(4), "{yaml}: {e}");
        assert!(e.reason.contains(want), "{yaml}: expected {want:?} in {e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with("sector/bad.yaml:4: metadata.name: "),
            "{shown}"
        );
        assert!(!shown.contains('\n'), "one line only: {shown:?}");
    }
}

#[test]
fn over_long_name_gives_its_length() {
    let long = "a".repeat(70);
    let e = decode_err("sector/long.yaml", &with_name(&long));
    assert_eq!(e.field, "metadata.name");
    assert!(
        e.reason.contains("is 70 characters long; at most 63"),
        "{e}"
    );
    // The value shown in the message is shortened.
    assert!(e.reason.len() < 250, "{e}");
}

#[test]
fn names_in_references_are_checked_too() {
    let e = decode_err("lxc/a.yaml", &lxc("a", "\"web\\nprod\"", ""));
    assert_eq!(e.field, "spec.sector");
    assert_eq!(e.line, Some(6));
    assert!(e.reason.contains("contains a newline"), "{e}");

    let e = decode_err("lxc/a.yaml", &lxc("a", "web", "ssh_keys: [ok, \"../etc\"]"));
    assert_eq!(e.field, "spec.ssh_keys[1]");
    assert!(e.reason.contains("contains a slash (/)"), "{e}");
}

#[test]
fn node_names_and_templates_are_checked() {
    let e = decode_err("lxc/a.yaml", &lxc("a", "web", "node: \"pve 1\""));
    assert_eq!(e.field, "spec.node");
    assert!(e.reason.contains("contains a space"), "{e}");

    let text = doc(
        "Lxc",
        "a",
        "sector: web\ntemplate: \"local:vztmpl/../../etc/shadow\"",
    );
    let e = decode_err("lxc/a.yaml", &text);
    assert_eq!(e.field, "spec.template");
    assert!(e.reason.contains("'..'"), "{e}");
}

#[test]
fn free_text_refuses_newlines_and_long_values() {
    let text = "apiVersion: orbitlab.io/v1\nkind: Secret\nmetadata:\n  name: a\n  description: \"one\\ntwo\"\n";
    let e = decode_err("secret/a.yaml", text);
    assert_eq!(e.field, "metadata.description");
    assert!(e.reason.contains("contains a newline"), "{e}");

    let e = decode_err(
        "sector/a.yaml",
        &doc(
            "Sector",
            "a",
            &format!("cidr: 10.1.0.0/16\nalias: {}", "x".repeat(65)),
        ),
    );
    assert_eq!(e.field, "spec.alias");
    assert!(
        e.reason.contains("is 65 characters long; at most 64"),
        "{e}"
    );

    let e = decode_err(
        "ssh_key/a.yaml",
        &doc("SshKey", "a", "comment: \"a\\u0007b\""),
    );
    assert_eq!(e.field, "spec.comment");
    assert!(e.reason.contains("control character"), "{e}");
}

#[test]
fn label_keys_and_values() {
    let text = "apiVersion: orbitlab.io/v1\nkind: Secret\nmetadata:\n  name: a\n  labels:\n    \"Tier\": web\n";
    let e = decode_err("secret/a.yaml", text);
    assert_eq!(e.field, "metadata.labels.Tier");
    assert!(e.reason.contains("uppercase"), "{e}");
}
