//! Atomic replace by rename, and pmxcfs's rename restrictions.

use std::fs;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::{assert_errno, mount};

/// Two versions of different lengths, so a torn read cannot pass for either.
fn version(i: usize) -> String {
    let body = if i.is_multiple_of(2) { "a" } else { "bb" };
    format!("version: {i}\n{}\nend\n", body.repeat(3000 + i % 7))
}

#[test]
fn tmp_then_rename_replaces_without_torn_reads() {
    let m = mount();
    fs::create_dir(m.path("orbitlab")).unwrap();
    let path = m.path("orbitlab/spec.yaml");
    fs::write(&path, version(0)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, done) = (path.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                match fs::read_to_string(&path) {
                    Ok(text) => {
                        let i: usize = text
                            .lines()
                            .next()
                            .and_then(|l| l.strip_prefix("version: "))
                            .and_then(|n| n.parse().ok())
                            .unwrap_or_else(|| {
                                panic!("torn read: {:?}", &text[..40.min(text.len())])
                            });
                        assert_eq!(text, version(i), "torn read of version {i}");
                        reads += 1;
                    }
                    // pmxcfs may briefly hide a file being replaced.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => panic!("read failed: {e}"),
                }
            }
            reads
        })
    };
    for i in 1..=200 {
        let tmp = m.path(&format!("orbitlab/spec.yaml.tmp.{i}"));
        fs::write(&tmp, version(i)).unwrap();
        fs::rename(&tmp, &path).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("reader saw only whole versions");
    assert!(reads > 0);
    assert_eq!(fs::read_to_string(&path).unwrap(), version(200));
    let left: Vec<_> = fs::read_dir(m.path("orbitlab")).unwrap().collect();
    assert_eq!(left.len(), 1, "temporary files all renamed away");
}

#[test]
fn only_empty_directories_can_be_renamed() {
    let m = mount();
    fs::create_dir_all(m.path("full/sub")).unwrap();
    assert_errno(
        fs::rename(m.path("full"), m.path("moved")),
        libc::ENOTEMPTY,
        "rename non-empty dir",
    );
    fs::create_dir(m.path("empty")).unwrap();
    fs::rename(m.path("empty"), m.path("moved")).unwrap();
    assert!(m.path("moved").is_dir() && !m.path("empty").exists());
}

#[test]
fn an_open_file_replaced_by_rename_keeps_its_old_content() {
    let m = mount();
    fs::write(m.path("f"), "old").unwrap();
    let mut old = fs::File::open(m.path("f")).unwrap();
    fs::write(m.path("f.tmp"), "new").unwrap();
    fs::rename(m.path("f.tmp"), m.path("f")).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut old, &mut s).unwrap();
    assert_eq!(s, "old");
    assert_eq!(fs::read_to_string(m.path("f")).unwrap(), "new");
}
