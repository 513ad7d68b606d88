//! Shared by the `secrets_*` tests: running the built `orbitlab` binary
//! against a temporary store, and checking what it printed and stored.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary directory holding a store root (`pve/`) and room for files
/// the test exports next to it (never under the root).
#[derive(Debug)]
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// The store root (`--root`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("pve")
    }

    /// A path next to the root for exported files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `bytes` to [`Sandbox::file`] `name` with mode 0600; returns
    /// its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.file(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes))
            .expect("write a test file");
        path
    }

    /// `orbitlab --root ROOT ARGS` with empty standard input.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None)
    }

    /// `orbitlab --root ROOT ARGS` with `stdin` on standard input.
    pub fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_orbitlab"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .env_remove("ORBITLAB_ROOT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run orbitlab");
        let mut pipe = child.stdin.take().expect("piped stdin");
        if let Some(bytes) = stdin {
            // The command may stop reading early (an oversized value): a
            // broken pipe is expected then.
            let _ = pipe.write_all(bytes);
        }
        drop(pipe);
        child.wait_with_output().expect("wait for orbitlab")
    }

    /// Runs and expects success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        self.ok_with(args, None)
    }

    /// Runs with `stdin` and expects success; returns standard output.
    pub fn ok_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
        let out = self.run_with(args, stdin);
        assert!(
            out.status.success(),
            "orbitlab {args:?} failed: {}",
            stderr(&out)
        );
        out.stdout
    }

    /// Runs and expects success; returns standard output parsed as JSON
    /// (`--output-format json` is added).
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["--output-format", "json"]);
        serde_json::from_slice(&self.ok(&args)).expect("JSON output")
    }

    /// Runs and expects exit status 1 with `needle` in standard error;
    /// returns standard error.
    pub fn refused(&self, args: &[&str], stdin: Option<&[u8]>, needle: &str) -> String {
        let out = self.run_with(args, stdin);
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "orbitlab {args:?}: {message}");
        assert!(
            message.contains(needle),
            "orbitlab {args:?}: expected {needle:?} in: {message}"
        );
        assert!(
            message.starts_with("orbitlab: "),
            "orbitlab {args:?}: {message}"
        );
        message
    }

    /// Every file under the root with its content.
    pub fn stored_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        collect(&self.root(), &mut out);
        out.sort();
        out
    }

    /// The stored data: every file but the lock owner notes (which every
    /// locking command rewrites, changing nothing else) and the audit log
    /// (which records refused changes too: `begun`, then `failed`).
    pub fn stored_data(&self) -> Vec<(PathBuf, Vec<u8>)> {
        self.stored_files()
            .into_iter()
            .filter(|(path, _)| {
                let path = path.to_string_lossy();
                !path.contains("/priv/orbitlab/locks/") && !path.contains("/orbitlab/audit/")
            })
            .collect()
    }

    /// Asserts the stored data equals `before`, naming what differs.
    pub fn assert_unchanged(&self, before: &[(PathBuf, Vec<u8>)]) {
        let after = self.stored_data();
        let differing: Vec<_> = before
            .iter()
            .chain(&after)
            .filter(|entry| !before.contains(entry) || !after.contains(entry))
            .map(|(path, _)| path.display().to_string())
            .collect();
        assert!(
            differing.is_empty(),
            "a refused command changed the store: {differing:?}"
        );
    }
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            let bytes = std::fs::read(&path).expect("read a stored file");
            out.push((path, bytes));
        }
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs an external tool (openssl, ssh-keygen); returns its output.
pub fn tool(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// Runs an external tool and expects success; returns standard output.
pub fn tool_ok(program: &str, args: &[&str]) -> String {
    let out = tool(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
