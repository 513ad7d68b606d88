//! Without quorum pmxcfs is read-only: every change fails with EACCES.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::time::{SystemTime, UNIX_EPOCH};

use orbitlab_pmxcfs_sim::Control;

use crate::common::{assert_errno, mount, utime};

#[test]
fn without_quorum_changes_fail_with_eacces_and_reads_work() {
    let m = mount();
    fs::create_dir_all(m.path("priv/lock")).unwrap();
    fs::create_dir(m.path("orbitlab")).unwrap();
    fs::create_dir(m.path("priv/lock/held")).unwrap();
    fs::write(m.path("orbitlab/a.yaml"), "a: 1\n").unwrap();
    let mut open_for_append = OpenOptions::new()
        .append(true)
        .open(m.path("orbitlab/a.yaml"))
        .unwrap();

    m.handle.set_quorate(false).unwrap();
    let p = |rel| m.path(rel);
    assert_errno(File::create(p("orbitlab/new.yaml")), libc::EACCES, "create");
    assert_errno(
        fs::write(p("orbitlab/a.yaml"), "a: 2\n"),
        libc::EACCES,
        "rewrite (O_TRUNC)",
    );
    assert_errno(
        open_for_append.write(b"b: 2\n"),
        libc::EACCES,
        "write through an open fd",
    );
    assert_errno(
        File::options()
            .write(true)
            .open(p("orbitlab/a.yaml"))
            .and_then(|f| f.set_len(0)),
        libc::EACCES,
        "truncate",
    );
    assert_errno(fs::create_dir(p("orbitlab/d")), libc::EACCES, "mkdir");
    assert_errno(
        fs::create_dir(p("priv/lock/other")),
        libc::EACCES,
        "lock mkdir",
    );
    assert_errno(
        fs::remove_dir(p("priv/lock/held")),
        libc::EACCES,
        "lock rmdir",
    );
    assert_errno(
        utime(&p("priv/lock/held"), UNIX_EPOCH, SystemTime::now()),
        libc::EACCES,
        "lock renewal",
    );
    assert_errno(
        fs::rename(p("orbitlab/a.yaml"), p("orbitlab/b.yaml")),
        libc::EACCES,
        "rename",
    );
    assert_errno(
        fs::remove_file(p("orbitlab/a.yaml")),
        libc::EACCES,
        "unlink",
    );

    // Reads still work and nothing changed; write bits are gone.
    assert_eq!(fs::read_to_string(p("orbitlab/a.yaml")).unwrap(), "a: 1\n");
    let names: Vec<_> = fs::read_dir(p("orbitlab"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["a.yaml"]);
    assert_eq!(
        fs::metadata(p("orbitlab/a.yaml")).unwrap().mode() & 0o777,
        0o440
    );

    // Any process can switch quorum back by writing the control file.
    let control = Control::new(m.handle.control().dir());
    fs::write(control.dir().join(Control::QUORATE), "1\n").unwrap();
    open_for_append.write_all(b"b: 2\n").unwrap();
    fs::write(p("orbitlab/new.yaml"), "n: 1\n").unwrap();
    fs::remove_dir(p("priv/lock/held")).unwrap();
    assert_eq!(
        fs::read_to_string(p("orbitlab/a.yaml")).unwrap(),
        "a: 1\nb: 2\n"
    );
    assert_eq!(
        fs::metadata(p("orbitlab/a.yaml")).unwrap().mode() & 0o777,
        0o640
    );
}

#[test]
fn a_simulator_can_start_without_quorum() {
    let m = crate::common::mount_with(orbitlab_pmxcfs_sim::SimOptions {
        quorate: false,
        ..Default::default()
    });
    assert!(!m.handle.control().quorate());
    assert_errno(
        fs::create_dir(m.path("x")),
        libc::EACCES,
        "mkdir without quorum",
    );
    m.handle.set_quorate(true).unwrap();
    fs::create_dir(m.path("x")).unwrap();
}
