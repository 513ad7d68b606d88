//! Store behaviour on an ordinary directory standing in for `/etc/pve`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use orbitlab_engine::store::{
    Area, LockName, LockOptions, MAX_FILE_BYTES, Store, StoreError, StorePath,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    (dir, store)
}

#[test]
fn write_then_read_round_trips_and_sets_area_modes() {
    let (_dir, store) = store();
    let public = StorePath::config("manifests/sector/web.yaml").unwrap();
    let private = StorePath::private("vault/keyring.json").unwrap();
    store.write(&public, b"kind: Sector\n").unwrap();
    store.write(&private, b"{}").unwrap();
    assert_eq!(store.read(&public).unwrap().unwrap(), b"kind: Sector\n");
    let mode = |p: &StorePath| {
        std::fs::metadata(store.absolute(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&public), 0o640);
    assert_eq!(mode(&private), 0o600);
    let vault_dir = std::fs::metadata(store.root().join("priv/orbitlab/vault")).unwrap();
    assert_eq!(vault_dir.permissions().mode() & 0o777, 0o700);
}

#[test]
fn missing_file_reads_as_none_without_waiting_for_a_rename() {
    let (_dir, store) = store();
    let path = StorePath::config("status/sector/none.yaml").unwrap();
    assert_eq!(store.read(&path).unwrap(), None);
    assert!(!store.remove(&path).unwrap());
}

#[test]
fn oversized_write_is_refused_before_anything_changes() {
    let (_dir, store) = store();
    let path = StorePath::config("big.yaml").unwrap();
    store.write(&path, b"old").unwrap();
    let err = store
        .write(&path, &vec![b'x'; MAX_FILE_BYTES + 1])
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }));
    let message = err.to_string();
    assert!(
        message.contains("big.yaml") && message.contains("1 MiB"),
        "{message}"
    );
    assert_eq!(store.read(&path).unwrap().unwrap(), b"old");
    let everything = std::fs::read_dir(store.absolute(&StorePath::area_root(Area::Config)))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(everything, ["big.yaml"], "a temporary file was left behind");
    // Exactly at the limit is fine.
    store.write(&path, &vec![b'y'; MAX_FILE_BYTES]).unwrap();
}

#[test]
fn listings_hide_temporaries_and_sweep_removes_old_ones() {
    let (_dir, store) = store();
    let dir = StorePath::config("manifests/sector").unwrap();
    store.write(&dir.join("b.yaml").unwrap(), b"b").unwrap();
    store.write(&dir.join("a.yaml").unwrap(), b"a").unwrap();
    let leftover = store.absolute(&dir).join("c.yaml.tmp.4242");
    std::fs::write(&leftover, b"half").unwrap();
    assert_eq!(store.list(&dir).unwrap(), ["a.yaml", "b.yaml"]);
    let all = store.read_dir(&dir).unwrap();
    assert_eq!(
        all,
        [
            ("a.yaml".into(), b"a".to_vec()),
            ("b.yaml".into(), b"b".to_vec())
        ]
    );
    assert_eq!(
        store.sweep_temporaries(Duration::from_secs(3600)).unwrap(),
        0
    );
    assert!(leftover.exists());
    assert_eq!(store.sweep_temporaries(Duration::ZERO).unwrap(), 1);
    assert!(!leftover.exists());
}

#[test]
fn a_failed_replace_leaves_the_old_content_and_no_temporary() {
    let (_dir, store) = store();
    // Make the target a directory: the rename over it must fail.
    let path = StorePath::config("manifests/sector/web.yaml").unwrap();
    std::fs::create_dir_all(store.absolute(&path)).unwrap();
    let err = store.write(&path, b"new").unwrap_err();
    assert!(err.to_string().contains("rename"), "{err}");
    let parent = store.absolute(&path).parent().unwrap().to_owned();
    let names: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["web.yaml"], "a temporary file was left behind");
}

#[test]
fn lock_excludes_a_second_holder_and_times_out_naming_it() {
    let (_dir, store) = store();
    let store = store.with_lock_options(LockOptions {
        wait: Duration::from_millis(150),
        max_poll: Duration::from_millis(20),
        renew_every: Duration::from_secs(20),
        notice: None,
    });
    let name: LockName = "ipam".parse().unwrap();
    let guard = store.lock(&name).unwrap();
    assert!(guard.path().ends_with("priv/lock/orbitlab-ipam"));
    assert!(guard.is_held());
    let err = store.lock(&name).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::LockTimeout { .. }));
    assert!(message.contains("orbitlab-ipam"), "{message}");
    assert!(
        message.contains(&format!("pid={}", std::process::id())),
        "{message}"
    );
    drop(guard);
    assert!(!store.root().join("priv/lock/orbitlab-ipam").exists());
    let _again = store.lock(&name).unwrap();
}

#[test]
fn lock_renewal_keeps_the_directory_fresh() {
    let (_dir, store) = store();
    let store = store.with_lock_options(LockOptions {
        renew_every: Duration::from_millis(20),
        ..LockOptions::default()
    });
    let guard = store.lock(&"renew".parse().unwrap()).unwrap();
    let meta = std::fs::metadata(guard.path()).unwrap();
    // A waiter's expiry request sets the times to 0 ...
    std::fs::File::open(guard.path())
        .unwrap()
        .set_times(
            std::fs::FileTimes::new()
                .set_accessed(std::time::UNIX_EPOCH)
                .set_modified(std::time::UNIX_EPOCH),
        )
        .unwrap();
    // ... and the holder's renewal moves mtime forward again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = std::fs::metadata(guard.path()).unwrap().modified().unwrap();
        if now >= meta.modified().unwrap() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lock was never renewed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(guard.is_held());
}

#[test]
fn lock_names_are_validated() {
    for bad in ["", "UPPER", "a/b", "../x", "sp ace", &"x".repeat(65)] {
        let err = bad.parse::<LockName>().unwrap_err().to_string();
        assert!(err.contains("invalid lock name"), "{bad}: {err}");
    }
}

#[test]
fn generation_counts_every_bump() {
    let (_dir, store) = store();
    assert_eq!(store.generation().unwrap().0, 0);
    assert_eq!(store.bump_generation().unwrap().0, 1);
    assert_eq!(store.bump_generation().unwrap().0, 2);
    assert_eq!(store.generation().unwrap().0, 2);
    std::fs::write(store.root().join("orbitlab/generation"), "garbage").unwrap();
    let err = store.generation().unwrap_err().to_string();
    assert!(
        err.contains("orbitlab/generation") && err.contains("garbage"),
        "{err}"
    );
    assert_eq!(store.bump_generation().unwrap().0, 1);
}
