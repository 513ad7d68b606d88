//! `orbitlab secret ...` and `orbitlab vault ...` as people use them: values
//! in and out byte for byte, versions, rollback, KEK rotation, bad input,
//! and the plaintext never showing up where it must not.

mod secrets_support;

use base64::Engine;
use secrets_support::{Sandbox, contains, stderr, text};

const PATH: &str = "app/db/password";

#[test]
fn values_go_in_from_stdin_or_a_file_and_come_out_byte_for_byte() {
    let sb = Sandbox::new();
    // Binary, with a NUL, a trailing newline and invalid UTF-8.
    let binary: &[u8] = b"\x00\xffline one\r\nline two\n";
    sb.ok_with(&["secret", "set", "app/binary"], Some(binary));
    assert_eq!(sb.ok(&["secret", "get", "app/binary"]), binary);
    let json = sb.json(&["secret", "get", "app/binary"]);
    assert_eq!(json["encoding"], "base64");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(json["value"].as_str().unwrap())
            .unwrap(),
        binary
    );
    assert_eq!(json["version"], 1);

    let file = sb.write("value.txt", b"from a file");
    let set = sb.json(&["secret", "set", PATH, "--file", file.to_str().unwrap()]);
    assert_eq!(set["path"], PATH);
    assert_eq!(set["version"], 1);
    assert_eq!(sb.ok(&["secret", "get", PATH]), b"from a file");
    // `--file -` is standard input.
    sb.ok_with(&["secret", "set", PATH, "--file", "-"], Some(b"from stdin"));
    assert_eq!(sb.ok(&["secret", "get", PATH]), b"from stdin");
    let json = sb.json(&["secret", "get", PATH, "--version", "1"]);
    assert_eq!(
        (&json["value"], &json["encoding"], &json["version"]),
        (
            &"from a file".into(),
            &"utf-8".into(),
            &serde_json::json!(1)
        )
    );
    let yaml = text(&sb.ok(&["secret", "get", PATH, "--output-format", "yaml"]));
    assert!(yaml.contains("value: from stdin"), "{yaml}");
}

#[test]
fn versions_rollback_list_prune_and_delete() {
    let sb = Sandbox::new();
    for value in ["one", "two", "three"] {
        sb.ok_with(&["secret", "set", PATH], Some(value.as_bytes()));
    }
    sb.ok_with(&["secret", "set", "app/other"], Some(b"x"));
    sb.ok_with(&["secret", "set", "application"], Some(b"y"));

    let versions = sb.json(&["secret", "versions", PATH]);
    let numbers: Vec<_> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);

    let rollback = sb.json(&["secret", "rollback", PATH, "--to", "1"]);
    assert_eq!(rollback["from"], 1);
    assert_eq!(rollback["written"]["version"], 4);
    assert_eq!(sb.ok(&["secret", "get", PATH]), b"one");
    assert_eq!(sb.ok(&["secret", "get", PATH, "--version", "v2"]), b"two");
    assert_eq!(sb.ok(&["secret", "get", PATH, "--version", "3"]), b"three");

    // Prefixes are segment-wise: `app` does not take in `application`.
    let listing = sb.json(&["secret", "list", "app"]);
    let paths: Vec<_> = listing["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["app/db/password", "app/other"]);
    assert_eq!(listing["secrets"][0]["versions"], 4);
    let table = text(&sb.ok(&["secret", "list"]));
    assert!(table.contains("│ application "), "{table}");
    assert!(table.contains("│ app/db/password │ 4 "), "{table}");

    let pruned = sb.json(&["secret", "prune", PATH, "--keep", "2"]);
    assert_eq!(pruned["dropped"], serde_json::json!([1, 2]));
    let versions = sb.json(&["secret", "versions", PATH]);
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(sb.ok(&["secret", "get", PATH, "--version", "3"]), b"three");
    sb.refused(
        &["secret", "get", PATH, "--version", "1"],
        None,
        "has no version 1; it has versions 3, 4",
    );
    let usage = sb.run(&["secret", "prune", PATH, "--keep", "0"]);
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));

    let deleted = sb.json(&["secret", "delete", PATH]);
    assert_eq!(deleted["deleted_versions"], 2);
    sb.refused(&["secret", "get", PATH], None, "does not exist");
    sb.refused(&["secret", "delete", PATH], None, "does not exist");
    assert_eq!(sb.ok(&["secret", "get", "app/other"]), b"x");
}

#[test]
fn key_rotation_keeps_every_version_readable() {
    let sb = Sandbox::new();
    let mut expected = Vec::new();
    for secret in 0..5 {
        for version in 1..=3 {
            let path = format!("svc/s{secret}");
            let value = format!("value {secret}.{version}");
            sb.ok_with(&["secret", "set", &path], Some(value.as_bytes()));
            expected.push((path, version.to_string(), value));
        }
    }
    let before = sb.json(&["vault", "status"]);
    assert_eq!(before["secrets"], 5);
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    let old_kek = before["keys"][0]["id"].as_str().unwrap().to_owned();

    for _ in 0..2 {
        let report = sb.json(&["vault", "rotate-key"]);
        assert_eq!(report["secrets_rewrapped"], 5);
        assert_eq!(report["versions_rewrapped"], 15);
        assert_eq!(report["failed"], serde_json::json!([]));
        for (path, version, value) in &expected {
            assert_eq!(
                sb.ok(&["secret", "get", path, "--version", version]),
                value.as_bytes(),
                "{path} v{version}"
            );
        }
    }
    let after = sb.json(&["vault", "status"]);
    let keys = after["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "retired keys are dropped: {after}");
    assert_ne!(keys[0]["id"].as_str().unwrap(), old_kek);
    assert_eq!(keys[0]["active"], true);
    let versions = sb.json(&["secret", "versions", "svc/s0"]);
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["kek"] == keys[0]["id"]),
        "{versions}"
    );
    let table = text(&sb.ok(&["vault", "status"]));
    assert!(table.contains("keyring.json"), "{table}");
}

#[test]
fn the_plaintext_never_leaks() {
    let sb = Sandbox::new();
    let plaintext = "PLAINTEXT-4c1d9e-correct-horse-battery-staple";
    let encodings = [
        plaintext.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(plaintext),
        hex(plaintext.as_bytes()),
    ];
    let mut errors = String::new();

    // There is no value argument: a usage error that does not echo it,
    // and nothing stored.
    let usage = sb.run_with(&["secret", "set", PATH, plaintext], Some(b"ignored"));
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
    assert!(
        stderr(&usage).contains("takes no value argument"),
        "{}",
        stderr(&usage)
    );
    errors += &stderr(&usage);
    assert!(!sb.root().join("priv").exists(), "something was stored");

    let set = sb.run_with(&["secret", "set", PATH], Some(plaintext.as_bytes()));
    assert!(set.status.success());
    errors += &stderr(&set);
    for version in ["2", "3"] {
        let value = format!("{plaintext}-v{version}");
        errors += &stderr(&sb.run_with(&["secret", "set", PATH], Some(value.as_bytes())));
    }
    // Every other command, succeeding or failing.
    for args in [
        &["secret", "get", PATH][..],
        &["secret", "get", PATH, "--version", "9"],
        &["secret", "get", PATH, "--version", "zero"],
        &["secret", "list"],
        &["secret", "versions", PATH],
        &["secret", "rollback", PATH, "--to", "1"],
        &["secret", "rollback", PATH, "--to", "99"],
        &["vault", "rotate-key"],
        &["vault", "status"],
        &["secret", "prune", PATH, "--keep", "3"],
        &["secret", "set", "bad/../path"],
    ] {
        let out = sb.run_with(args, Some(plaintext.as_bytes()));
        errors += &stderr(&out);
    }
    // A value past the cap starting with the plaintext.
    let mut big = plaintext.as_bytes().to_vec();
    big.resize(100_000, b'x');
    errors += &sb.refused(&["secret", "set", PATH], Some(&big), "at most 65536 bytes");
    assert_eq!(
        sb.ok(&["secret", "get", PATH]),
        b"PLAINTEXT-4c1d9e-correct-horse-battery-staple"
    );

    // A damaged file: an integrity error, no plaintext anywhere.
    let (file, mut bytes) = sb
        .stored_files()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().contains("/vault/secrets/"))
        .expect("the secret's file");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let damaged = sb.run(&["secret", "get", PATH]);
    assert_eq!(damaged.status.code(), Some(1));
    assert!(damaged.stdout.is_empty());
    let message = stderr(&damaged);
    assert!(
        message.contains("integrity") || message.contains("damaged"),
        "{message}"
    );
    errors += &message;

    for encoded in &encodings {
        assert!(
            !errors.contains(encoded.as_str()),
            "{encoded} in standard error: {errors}"
        );
        for (path, bytes) in sb.stored_files() {
            assert!(
                !contains(&bytes, encoded.as_bytes()),
                "{encoded} stored in {}",
                path.display()
            );
        }
    }
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.ok_with(&["secret", "set", PATH], Some(b"original"));
    let before = sb.stored_data();

    sb.refused(
        &["secret", "set", PATH],
        Some(b""),
        "from standard input is empty",
    );
    let empty = sb.write("empty", b"");
    sb.refused(
        &["secret", "set", PATH, "--file", empty.to_str().unwrap()],
        None,
        &format!("from {} is empty", empty.display()),
    );
    let ten_mb = vec![b'v'; 10 * 1000 * 1000];
    sb.refused(
        &["secret", "set", PATH],
        Some(&ten_mb),
        "at most 65536 bytes",
    );
    let big = sb.write("big", &ten_mb);
    let message = sb.refused(
        &["secret", "set", PATH, "--file", big.to_str().unwrap()],
        None,
        "at most 65536 bytes",
    );
    assert!(message.contains(big.to_str().unwrap()), "{message}");
    sb.refused(
        &["secret", "set", PATH, "--file", "/nonexistent/value"],
        None,
        "cannot open the value file /nonexistent/value",
    );

    for (path, needle) in [
        ("a/../b", "`..` segment"),
        ("../etc/shadow", "`..` segment"),
        ("a/b\nc", "'\\n'"),
        ("a/b\u{1}c", "'\\u{1}'"),
        ("/abs", "starts with `/`"),
        ("a//b", "empty segment"),
        ("", "it is empty"),
    ] {
        let message = sb.refused(&["secret", "set", path], Some(b"v"), "invalid secret path");
        assert!(message.contains(needle), "{path:?}: {message}");
        sb.refused(&["secret", "get", path], None, "invalid secret path");
    }
    // (A NUL byte cannot be passed in an argument at all; the engine's own
    // tests refuse it in paths.)
    sb.refused(
        &["secret", "rollback", PATH, "--to", "0"],
        None,
        "invalid version \"0\"",
    );
    sb.refused(
        &["secret", "rollback", PATH, "--to", "7"],
        None,
        "no version 7",
    );

    sb.assert_unchanged(&before);
    assert_eq!(sb.ok(&["secret", "get", PATH]), b"original");
}

#[test]
fn two_processes_writing_one_secret_keep_every_version() {
    let sb = Sandbox::new();
    let writers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|writer| {
            let sb = &sb;
            move || {
                for i in 0..8 {
                    let value = format!("{writer}{i}");
                    sb.ok_with(&["secret", "set", PATH], Some(value.as_bytes()));
                }
            }
        })
        .collect();
    std::thread::scope(|scope| {
        for writer in writers {
            scope.spawn(writer);
        }
    });
    let versions = sb.json(&["secret", "versions", PATH]);
    assert_eq!(versions.as_array().unwrap().len(), 16);
    let mut values: Vec<String> = (1..=16)
        .map(|v| text(&sb.ok(&["secret", "get", PATH, "--version", &v.to_string()])))
        .collect();
    values.sort();
    let mut expected: Vec<String> = ["a", "b"]
        .iter()
        .flat_map(|w| (0..8).map(move |i| format!("{w}{i}")))
        .collect();
    expected.sort();
    assert_eq!(values, expected);
}

#[test]
fn help_shows_examples() {
    let sb = Sandbox::new();
    for (group, example) in [
        (
            "secret",
            "printf %s 's3cr3t' | orbitlab secret set app/db/password",
        ),
        ("vault", "orbitlab vault rotate-key"),
        ("pki", "orbitlab pki ca create-root root"),
        ("ssh-key", "orbitlab ssh-key create deploy"),
    ] {
        let help = text(&sb.ok(&[group, "--help"]));
        assert!(help.contains(example), "{group}: {help}");
    }
    let help = text(&sb.ok(&["secret", "set", "--help"]));
    assert!(help.contains("There is no value argument"), "{help}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
