//! pmxcfs lock directories under `priv/lock/`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{LOCK_TIMEOUT, Mounted, assert_errno, mount, utime};

fn with_lock_dir() -> Mounted {
    let m = mount();
    fs::create_dir_all(m.path("priv/lock")).unwrap();
    m
}

/// Past the lock timeout, with a margin for whole-second clocks.
fn wait_past_timeout() {
    std::thread::sleep(LOCK_TIMEOUT + Duration::from_millis(300));
}

fn unlock_request(path: &std::path::Path) -> std::io::Result<()> {
    utime(path, UNIX_EPOCH, UNIX_EPOCH)
}

#[test]
fn mkdir_acquires_exclusively_and_rmdir_releases() {
    let m = with_lock_dir();
    let lock = m.path("priv/lock/orbitlab-ipam");
    fs::create_dir(&lock).unwrap();
    assert_errno(fs::create_dir(&lock), libc::EEXIST, "second mkdir");
    fs::remove_dir(&lock).unwrap();
    fs::create_dir(&lock).unwrap();
    assert_eq!(fs::metadata(&lock).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn a_young_lock_refuses_takeover_and_an_old_one_is_removed_on_request() {
    let m = with_lock_dir();
    let lock = m.path("priv/lock/orbitlab-sdn");
    fs::create_dir(&lock).unwrap();
    assert_errno(
        unlock_request(&lock),
        libc::EACCES,
        "utime(0,0) on a young lock",
    );
    assert!(lock.is_dir(), "a refused request leaves the lock");
    wait_past_timeout();
    assert_errno(
        unlock_request(&lock),
        libc::ENOENT,
        "utime(0,0) on an expired lock",
    );
    assert!(!lock.exists(), "the expired lock is gone");
    fs::create_dir(&lock).expect("a fresh mkdir wins after expiry");
    assert_errno(
        unlock_request(&lock),
        libc::EACCES,
        "the new lock is young again",
    );
}

#[test]
fn renewal_by_the_holder_restarts_the_clock() {
    let m = with_lock_dir();
    let lock = m.path("priv/lock/orbitlab-vmid");
    fs::create_dir(&lock).unwrap();
    let taken = std::time::Instant::now();
    std::thread::sleep(LOCK_TIMEOUT / 2 + Duration::from_millis(200));
    let now = SystemTime::now();
    utime(&lock, UNIX_EPOCH, now).expect("renew with utime(dir, 0, now)");
    let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(fs::metadata(&lock).unwrap().mtime(), secs);
    std::thread::sleep(LOCK_TIMEOUT / 2);
    // Older than the timeout since mkdir, but not since the renewal.
    assert!(
        taken.elapsed() > LOCK_TIMEOUT,
        "test setup: the lock is old"
    );
    assert_errno(
        unlock_request(&lock),
        libc::EACCES,
        "utime(0,0) after renewal",
    );
    assert_errno(
        utime(&lock, UNIX_EPOCH, now - Duration::from_secs(60)),
        libc::EACCES,
        "moving a lock's mtime backwards",
    );
    wait_past_timeout();
    assert_errno(
        unlock_request(&lock),
        libc::ENOENT,
        "expired after the renewal too",
    );
}

#[test]
fn a_lock_holding_a_file_never_expires() {
    let m = with_lock_dir();
    let lock = m.path("priv/lock/orbitlab-bad");
    fs::create_dir(&lock).unwrap();
    fs::write(lock.join("owner"), "pve1").unwrap();
    wait_past_timeout();
    assert_errno(
        unlock_request(&lock),
        libc::EACCES,
        "utime(0,0) on a non-empty old lock",
    );
    assert_errno(
        fs::remove_dir(&lock),
        libc::ENOTEMPTY,
        "rmdir of a non-empty lock",
    );
    assert!(lock.join("owner").is_file());
}

#[test]
fn lock_directories_cannot_be_renamed() {
    let m = with_lock_dir();
    fs::create_dir(m.path("priv/lock/a")).unwrap();
    assert_errno(
        fs::rename(m.path("priv/lock/a"), m.path("priv/lock/b")),
        libc::EACCES,
        "rename of a lock",
    );
    assert!(m.path("priv/lock/a").is_dir());
}

#[test]
fn utime_zero_elsewhere_just_sets_the_mtime() {
    let m = mount();
    fs::create_dir(m.path("dir")).unwrap();
    unlock_request(&m.path("dir")).unwrap();
    assert_eq!(fs::metadata(m.path("dir")).unwrap().mtime(), 0);
}

#[test]
fn only_the_holder_renews_a_lock() {
    let m = with_lock_dir();
    let lock = m.path("priv/lock/orbitlab-held");
    fs::create_dir(&lock).unwrap();
    // Another process (standing for another node) may not move the mtime.
    let other = std::process::Command::new("touch")
        .args(["-m", "-d", "@4000000000"])
        .arg(&lock)
        .status()
        .unwrap();
    assert!(!other.success(), "a renewal by another process must fail");
    // The holder may, from any of its threads.
    let lock2 = lock.clone();
    std::thread::spawn(move || utime(&lock2, UNIX_EPOCH, SystemTime::now()))
        .join()
        .unwrap()
        .expect("renewal by the holder");
}
