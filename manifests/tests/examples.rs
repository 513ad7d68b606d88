//! The example manifests in `manifests/examples/` decode, validate as one
//! set, cover every kind, and their encoded form is pinned by snapshots.

mod common;

use std::path::Path;

use orbitlab_manifests::{Kind, Manifest, ManifestSet, Sourced, decode, encode};

fn examples() -> Vec<Sourced<Manifest>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut all = Vec::new();
    for path in files {
        let label = format!(
            "examples/{}",
            path.file_name().expect("file name").to_string_lossy()
        );
        let text = std::fs::read_to_string(&path).expect("readable example");
        all.extend(decode(&label, &text).unwrap_or_else(|e| panic!("{e}")));
    }
    all
}

#[test]
fn examples_decode_and_validate_as_one_set() {
    let all = examples();
    for m in &all {
        m.validate().unwrap_or_else(|e| panic!("{e}"));
        // Each file holds only its own kind, named after the kind's directory.
        assert_eq!(m.source, format!("examples/{}.yaml", m.kind().dir_name()));
    }
    let set = ManifestSet::new(all).unwrap_or_else(|e| panic!("{e}"));
    for kind in Kind::ALL {
        assert!(
            set.of_kind(kind).next().is_some(),
            "no example of kind {kind}"
        );
    }
}

#[test]
fn encoded_examples_are_pinned() {
    let all = examples();
    for kind in Kind::ALL {
        // The richest example of each kind.
        let text = all
            .iter()
            .filter(|m| m.kind() == kind)
            .map(|m| encode(m))
            .max_by_key(String::len)
            .expect("an example of every kind");
        insta::assert_snapshot!(format!("encode_{}", kind.dir_name()), text);
    }
}
