//! The 1 MiB file limit.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};

use crate::common::{assert_errno, mount};

const MIB: usize = 1024 * 1024;

#[test]
fn a_write_past_one_mebibyte_is_short_then_efbig_and_the_file_is_cut() {
    let m = mount();
    let path = m.path("big");
    let mut f = File::create(&path).unwrap();
    let data = vec![b'x'; MIB + 100];
    let n = f
        .write(&data)
        .expect("the write crossing the limit succeeds short");
    assert_eq!(n, MIB, "short count up to the limit");
    assert_errno(f.write(b"y"), libc::EFBIG, "next write at the limit");
    drop(f);
    assert_eq!(fs::metadata(&path).unwrap().len(), MIB as u64);
    let mut back = Vec::new();
    File::open(&path).unwrap().read_to_end(&mut back).unwrap();
    assert!(back.len() == MIB && back.iter().all(|&b| b == b'x'));
}

#[test]
fn write_all_of_a_too_large_file_fails_with_efbig() {
    let m = mount();
    let path = m.path("too-big.yaml");
    assert_errno(
        fs::write(&path, vec![b'a'; 2 * MIB]),
        libc::EFBIG,
        "fs::write 2 MiB",
    );
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        MIB as u64,
        "left cut at 1 MiB"
    );
    // A file that fits is written whole, and appending stops at the limit.
    fs::write(&path, vec![b'b'; MIB - 10]).unwrap();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    assert_eq!(f.write(&[b'c'; 20]).unwrap(), 10);
    assert_errno(f.write(b"c"), libc::EFBIG, "append at the limit");
}

#[test]
fn truncate_past_one_mebibyte_is_efbig() {
    let m = mount();
    let f = File::create(m.path("sparse")).unwrap();
    f.set_len(MIB as u64).unwrap();
    assert_errno(f.set_len(MIB as u64 + 1), libc::EFBIG, "set_len past 1 MiB");
    assert_eq!(f.metadata().unwrap().len(), MIB as u64);
}
