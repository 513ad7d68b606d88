//! `orbitlab ssh-key ...` checked by `ssh-keygen`: the fingerprint shown is
//! the one OpenSSH computes, the exported private key derives the exported
//! public key, passphrases work and never leak, rotation keeps the
//! previous key until it is dropped.

mod secrets_support;

use secrets_support::{Sandbox, contains, stderr, text, tool, tool_ok};

/// `ssh-keygen -l -f` on the `public` output: the `SHA256:` fingerprint.
fn keygen_fingerprint(sb: &Sandbox, name: &str) -> String {
    let public = sb.write(&format!("{name}.pub"), &sb.ok(&["ssh-key", "public", name]));
    let listed = tool_ok("ssh-keygen", &["-l", "-f", public.to_str().unwrap()]);
    listed.split_whitespace().nth(1).unwrap().to_owned()
}

/// `ssh-keygen -y` on the `private` output (with `passphrase`): the key
/// type and base64 of the derived public key.
fn derived_public(sb: &Sandbox, name: &str, passphrase: &str) -> String {
    let private = sb.write(name, &sb.ok(&["ssh-key", "private", name]));
    let derived = tool_ok(
        "ssh-keygen",
        &["-y", "-P", passphrase, "-f", private.to_str().unwrap()],
    );
    type_and_key(&derived)
}

fn type_and_key(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn public_line(sb: &Sandbox, name: &str) -> String {
    text(&sb.ok(&["ssh-key", "public", name]))
}

#[test]
fn ssh_keygen_agrees_on_fingerprint_and_public_key() {
    let sb = Sandbox::new();
    let created = sb.json(&["ssh-key", "create", "deploy"]);
    assert_eq!(created["current"]["algorithm"], "ed25519");
    let shown = sb.json(&["ssh-key", "show", "deploy"]);
    let fingerprint = shown["current"]["fingerprint"].as_str().unwrap().to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    assert_eq!(keygen_fingerprint(&sb, "deploy"), fingerprint);
    let table = text(&sb.ok(&["ssh-key", "show", "deploy"]));
    assert!(table.contains(&fingerprint), "{table}");

    let public = public_line(&sb, "deploy");
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert!(public.ends_with(" orbitlab:deploy\n"), "{public:?}");
    assert_eq!(derived_public(&sb, "deploy", ""), type_and_key(&public));
    let json = sb.json(&["ssh-key", "public", "deploy"]);
    assert_eq!(json["public_key"], public.trim_end());
    assert_eq!(json["fingerprint"], fingerprint.as_str());

    let listed = text(&sb.ok(&["ssh-key", "list"]));
    assert!(
        listed.contains("│ deploy │ ed25519   │") && listed.contains(&fingerprint),
        "{listed}"
    );
}

#[test]
fn rsa_with_a_passphrase_from_stdin() {
    let sb = Sandbox::new();
    let passphrase = "PASSPHRASE-7e2b-tr0ub4dor";
    let created = sb.run_with(
        &[
            "ssh-key",
            "create",
            "backup",
            "--algorithm",
            "rsa4096",
            "--comment",
            "backup@cluster",
            "--passphrase-stdin",
            "--output-format",
            "json",
        ],
        Some(format!("{passphrase}\n").as_bytes()),
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["current"]["algorithm"], "rsa4096");
    assert_eq!(created["current"]["encrypted"], true);

    let public = public_line(&sb, "backup");
    assert!(public.starts_with("ssh-rsa AAAA"), "{public}");
    assert!(public.ends_with(" backup@cluster\n"), "{public:?}");
    let listed = tool_ok(
        "ssh-keygen",
        &[
            "-l",
            "-f",
            sb.write("backup.pub", public.as_bytes()).to_str().unwrap(),
        ],
    );
    assert!(listed.starts_with("4096 "), "{listed}");
    assert_eq!(
        listed.split_whitespace().nth(1).unwrap(),
        created["current"]["fingerprint"]
    );
    // The trailing newline is not part of the passphrase.
    assert_eq!(
        derived_public(&sb, "backup", passphrase),
        type_and_key(&public)
    );
    let private = sb.file("backup");
    for wrong in ["", "wrong", &format!("{passphrase}\n")] {
        let refused = tool(
            "ssh-keygen",
            &["-y", "-P", wrong, "-f", private.to_str().unwrap()],
        );
        assert!(!refused.status.success(), "opened with {wrong:?}");
    }

    // The passphrase never reaches the store.
    for (path, bytes) in sb.stored_files() {
        assert!(
            !contains(&bytes, passphrase.as_bytes()),
            "passphrase stored in {}",
            path.display()
        );
    }
    sb.refused(
        &["ssh-key", "create", "other", "--passphrase-stdin"],
        Some(b"\n"),
        "passphrase on standard input is empty",
    );
    sb.refused(
        &["ssh-key", "create", "other", "--passphrase-stdin"],
        Some(b""),
        "passphrase on standard input is empty",
    );
}

#[test]
fn rotation_keeps_the_previous_key_until_dropped() {
    let sb = Sandbox::new();
    sb.ok(&["ssh-key", "create", "deploy", "--comment", "ops@site"]);
    let first = sb.json(&["ssh-key", "show", "deploy"]);
    let rotated = sb.json(&["ssh-key", "rotate", "deploy"]);
    assert_eq!(rotated["previous"], first["current"]);
    assert_ne!(
        rotated["current"]["fingerprint"],
        first["current"]["fingerprint"]
    );
    assert_eq!(rotated["current"]["algorithm"], "ed25519");
    let public = public_line(&sb, "deploy");
    assert!(
        public.ends_with(" ops@site\n"),
        "the comment is kept: {public:?}"
    );
    assert_eq!(
        keygen_fingerprint(&sb, "deploy"),
        rotated["current"]["fingerprint"]
    );
    assert_eq!(derived_public(&sb, "deploy", ""), type_and_key(&public));

    sb.refused(
        &["ssh-key", "rotate", "deploy"],
        None,
        "orbitlab ssh-key drop-previous deploy",
    );
    let dropped = sb.json(&["ssh-key", "drop-previous", "deploy"]);
    assert_eq!(dropped["previous"], serde_json::Value::Null);
    sb.refused(
        &["ssh-key", "drop-previous", "deploy"],
        None,
        "keeps no previous key",
    );
    let again = sb.json(&["ssh-key", "rotate", "deploy", "--comment", "new@site"]);
    assert_eq!(again["current"]["algorithm"], "ed25519");
    assert!(public_line(&sb, "deploy").ends_with(" new@site\n"));

    let versions = sb.json(&["secret", "versions", "ssh/deploy"]);
    assert_eq!(versions.as_array().unwrap().len(), 3);
    let deleted = sb.json(&["ssh-key", "delete", "deploy"]);
    assert_eq!(deleted["deleted"], true);
    sb.refused(
        &["ssh-key", "show", "deploy"],
        None,
        "SSH key deploy does not exist",
    );
    sb.refused(&["secret", "get", "ssh/deploy"], None, "does not exist");
}

#[test]
fn bad_names_and_options_are_refused() {
    let sb = Sandbox::new();
    sb.ok(&["ssh-key", "create", "deploy"]);
    let before = sb.stored_data();
    for (args, needle) in [
        (
            &["ssh-key", "create", "Bad_Name"][..],
            "invalid SSH key name",
        ),
        (&["ssh-key", "create", "../x"], "invalid SSH key name"),
        (
            &["ssh-key", "create", "k", "--algorithm", "dsa"],
            "choose `ed25519` (default) or `rsa4096`",
        ),
        (
            &["ssh-key", "create", "k", "--comment", "two\nlines"],
            "comment",
        ),
        (
            &["ssh-key", "create", "deploy"],
            "SSH key deploy already exists",
        ),
        (&["ssh-key", "public", "missing"], "orbitlab ssh-key list"),
        (&["ssh-key", "private", "missing"], "does not exist"),
    ] {
        sb.refused(args, None, needle);
    }
    sb.assert_unchanged(&before);
    let usage = sb.run(&["ssh-key", "create", "k", "--passphrase", "secret"]);
    assert_eq!(usage.status.code(), Some(2));
}
