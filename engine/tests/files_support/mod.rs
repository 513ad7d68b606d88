//! Shared by the tests that grep a whole store for what must not be in it
//! (`vault_no_plaintext`, `audit_log`).

use std::path::Path;

/// Every file under `root` with its bytes, the path as text (for
/// messages).
pub fn all_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((
                    e.path().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out
}
