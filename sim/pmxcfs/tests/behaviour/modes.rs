//! Links, fixed modes, chmod and chown.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{
    DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt, chown, symlink,
};

use crate::common::{assert_errno, mount};

/// The gid the simulator reports (www-data, 33 on Debian).
fn www_data() -> u32 {
    fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("www-data:x:")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(33)
}

#[test]
fn symlinks_and_hard_links_are_refused() {
    let m = mount();
    fs::write(m.path("target"), "x").unwrap();
    assert_errno(symlink("target", m.path("link")), libc::ENOSYS, "symlink");
    // The filesystem answers ENOSYS to both, as pmxcfs does; for link() the
    // kernel's FUSE layer turns that into EPERM.
    assert_errno(
        fs::hard_link(m.path("target"), m.path("hard")),
        libc::EPERM,
        "hard link",
    );
    assert!(!m.path("link").exists() && !m.path("hard").exists());
}

#[test]
fn new_files_and_directories_get_pmxcfs_modes_whatever_is_asked() {
    let m = mount();
    DirBuilder::new()
        .mode(0o777)
        .create(m.path("orbitlab"))
        .unwrap();
    DirBuilder::new()
        .mode(0o777)
        .create(m.path("priv/orbitlab"))
        .unwrap();
    for (rel, perm, is_dir) in [
        ("orbitlab", 0o755, true),
        ("priv", 0o700, true),
        ("priv/lock", 0o700, true),
        ("nodes", 0o755, true),
        ("priv/orbitlab", 0o700, true),
    ] {
        let md = fs::metadata(m.path(rel)).unwrap();
        assert_eq!((md.mode() & 0o7777, md.is_dir()), (perm, is_dir), "{rel}");
    }
    for (rel, perm) in [("orbitlab/a.yaml", 0o640), ("priv/orbitlab/key", 0o600)] {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o777)
            .open(m.path(rel))
            .unwrap();
        let md = fs::metadata(m.path(rel)).unwrap();
        assert_eq!(md.mode() & 0o7777, perm, "{rel}");
        assert_eq!((md.uid(), md.gid()), (0, www_data()), "{rel} owner");
    }
    // nodes/<node>/priv is private too.
    fs::create_dir_all(m.path("nodes/pve1/priv")).unwrap();
    fs::write(m.path("nodes/pve1/priv/x"), "").unwrap();
    assert_eq!(
        fs::metadata(m.path("nodes/pve1/priv/x")).unwrap().mode() & 0o777,
        0o600
    );
}

#[test]
fn chmod_succeeds_only_for_the_mode_pmxcfs_already_uses() {
    let m = mount();
    fs::write(m.path("pub"), "").unwrap();
    fs::write(m.path("priv/secret"), "").unwrap();
    let chmod = |rel: &str, mode| fs::set_permissions(m.path(rel), Permissions::from_mode(mode));
    chmod("pub", 0o640).unwrap();
    assert_errno(chmod("pub", 0o644), libc::EPERM, "chmod 0644");
    assert_errno(chmod("pub", 0o600), libc::EPERM, "chmod 0600 outside priv");
    chmod("priv/secret", 0o600).unwrap();
    assert_errno(
        chmod("priv/secret", 0o640),
        libc::EPERM,
        "chmod 0640 in priv",
    );
    // pmxcfs checks directories against the file modes too.
    assert_errno(chmod("priv", 0o700), libc::EPERM, "chmod of a directory");
    assert_eq!(fs::metadata(m.path("pub")).unwrap().mode() & 0o777, 0o640);
}

#[test]
fn chown_succeeds_only_towards_root_and_www_data() {
    let m = mount();
    let p = m.path("file");
    fs::write(&p, "").unwrap();
    chown(&p, Some(0), Some(www_data())).unwrap();
    chown(&p, None, Some(www_data())).unwrap();
    chown(&p, Some(0), None).unwrap();
    assert_errno(
        chown(&p, Some(1000), None),
        libc::EPERM,
        "chown to uid 1000",
    );
    assert_errno(chown(&p, None, Some(0)), libc::EPERM, "chgrp to root");
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, www_data()));
}
