//! Installing one file into a running container with its owner and mode,
//! the way secrets, certificates and `authorized_keys` are delivered.
//!
//! [`Pct`](super::Pct) runs [`INSTALL_SCRIPT`] inside the container with
//! `pct exec` and hands it the content on standard input: the content is
//! never an argument of any process (arguments are world-readable in
//! `/proc`) and never written to the node's disk. Inside, the script:
//! - creates the parent directory (mode 0755) if it is missing;
//! - refuses a directory reached through a symbolic link, not owned by
//!   root, or writable by group or others without the sticky bit (a user
//!   of the container must not be able to swap the file or its directory
//!   while root writes it);
//! - refuses a file that must stay in memory when the directory is not a
//!   tmpfs (`stat -f`);
//! - writes a fresh temporary file (`mktemp`: new, unguessable, 0600) in
//!   that directory, sets its owner (`chown -h`) and mode, and renames it
//!   over the target (`mv -T`): a reader sees the old file or the new one,
//!   never a torn or wrongly-owned one; the temporary file is removed on
//!   any failure.

/// One file to install ([`super::ContainerHost::install`]).
#[derive(Clone, PartialEq, Eq)]
pub struct InstallFile<'a> {
    /// Absolute path inside the container (validated:
    /// `orbitlab_manifests::FilePath`).
    pub path: &'a str,
    /// Permission bits.
    pub mode: u32,
    /// `user[:group]`, resolved inside the container.
    pub owner: &'a str,
    /// The file must land on a tmpfs (its value stays in memory).
    pub tmpfs: bool,
    /// The content (possibly secret: never shown).
    pub content: &'a [u8],
}

impl std::fmt::Debug for InstallFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallFile")
            .field("path", &self.path)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("owner", &self.owner)
            .field("tmpfs", &self.tmpfs)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .finish()
    }
}

/// `$0` of the install script: how a stand-in `pct` recognises it.
pub const INSTALL_NAME: &str = "orbitlab-install";

/// The POSIX shell script that installs standard input at `$1`, owner
/// `$2`, mode `$3`; `$4` is `tmpfs` when the directory must be one.
/// Exit status 3: the directory is not a tmpfs; 4: the directory is not
/// safe to write in (nothing written either way).
pub const INSTALL_SCRIPT: &str = r#"set -eu
umask 077
dir=${1%/*}
[ -n "$dir" ] || dir=/
(umask 022 && mkdir -p -- "$dir")
real=$(realpath -e -- "$dir")
if [ "$real" != "$dir" ]; then
  echo "$dir leads through a symbolic link (to $real): the file was not written" >&2
  exit 4
fi
if [ "$(stat -c %u -- "$dir")" != 0 ]; then
  echo "$dir is not owned by root: the file was not written" >&2
  exit 4
fi
case $(stat -c %a -- "$dir") in
  1???) ;;
  *[2367]? | *[2367])
    echo "$dir is writable by group or others: the file was not written" >&2
    exit 4 ;;
esac
if [ "$4" = tmpfs ]; then
  fs=$(stat -f -c %T -- "$dir")
  if [ "$fs" != tmpfs ]; then
    echo "$dir is on $fs, not a tmpfs: the file was not written" >&2
    exit 3
  fi
fi
tmp=$(mktemp -- "$dir/.orbitlab-XXXXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
chown -h -- "$2" "$tmp"
chmod -- "$3" "$tmp"
mv -fT -- "$tmp" "$1"
trap - EXIT
"#;

/// The command that installs `file` (its content goes on standard input).
pub fn install_argv(file: &InstallFile<'_>) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        INSTALL_SCRIPT.into(),
        INSTALL_NAME.into(),
        file.path.into(),
        file.owner.into(),
        format!("{:04o}", file.mode),
        if file.tmpfs { "tmpfs" } else { "disk" }.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::process::{Command, Stdio};

    /// Runs the script with the real `sh`, `stat`, `chown` of this
    /// machine, as `pct exec` would inside a container.
    fn run(path: &str, owner: &str, mode: u32, tmpfs: bool, content: &[u8]) -> (bool, String) {
        let file = InstallFile {
            path,
            mode,
            owner,
            tmpfs,
            content,
        };
        let argv = install_argv(&file);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh runs");
        child.stdin.take().unwrap().write_all(content).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn owner_of_this_process() -> String {
        let me = std::fs::metadata("/proc/self").unwrap();
        format!("{}:{}", me.uid(), me.gid())
    }

    #[test]
    fn installs_content_owner_and_mode_through_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/secret");
        let path = path.to_str().unwrap();
        let owner = owner_of_this_process();
        let (ok, err) = run(path, &owner, 0o440, false, b"s3cret\n");
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(path).unwrap(), b"s3cret\n");
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o440);
        assert_eq!(meta.uid(), std::fs::metadata("/proc/self").unwrap().uid());
        // Replaced whole, no temporary file left behind.
        let (ok, err) = run(path, &owner, 0o400, false, b"new");
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(path).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o7777,
            0o400
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub/dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_memory_only_file_is_refused_off_tmpfs_and_written_on_one() {
        // The crate's own target directory is on the build disk.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("key");
        let owner = owner_of_this_process();
        let (ok, err) = run(path.to_str().unwrap(), &owner, 0o400, true, b"k");
        assert!(!ok);
        assert!(err.contains("not a tmpfs"), "{err}");
        assert!(!path.exists(), "nothing may be written off tmpfs");
        // /dev/shm is a tmpfs on every Linux machine this runs on.
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = shm.path().join("key");
        let (ok, err) = run(path.to_str().unwrap(), &owner, 0o400, true, b"k");
        assert!(ok, "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"k");
    }

    #[test]
    fn new_directories_are_reachable_and_unsafe_ones_are_refused() {
        let owner = owner_of_this_process();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("made/here/secret");
        let (ok, err) = run(path.to_str().unwrap(), &owner, 0o440, false, b"v");
        assert!(ok, "{err}");
        // The owner of the file can walk to it: 0755, whatever the umask.
        for d in ["made", "made/here"] {
            let mode = std::fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755, "{d}");
        }
        // A directory reached through a symbolic link.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("link")).unwrap();
        let (ok, err) = run(
            dir.path().join("link/secret").to_str().unwrap(),
            &owner,
            0o400,
            false,
            b"v",
        );
        assert!(!ok && err.contains("symbolic link"), "{err}");
        assert!(!elsewhere.path().join("secret").exists());
        // A directory others may write in (no sticky bit).
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (ok, err) = run(
            open.join("secret").to_str().unwrap(),
            &owner,
            0o400,
            false,
            b"v",
        );
        assert!(!ok && err.contains("writable by group or others"), "{err}");
        assert!(!open.join("secret").exists());
        // A sticky one (like /dev/shm) is fine: others cannot swap our file.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let (ok, err) = run(
            open.join("secret").to_str().unwrap(),
            &owner,
            0o400,
            false,
            b"v",
        );
        assert!(ok, "{err}");
    }

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let owner = owner_of_this_process();
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        // The target and the name the script used to write to first.
        let target = dir.path().join("secret");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("secret.orbitlab-new")).unwrap();
        let (ok, err) = run(target.to_str().unwrap(), &owner, 0o400, false, b"s3cret");
        assert!(ok, "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(
            !std::fs::symlink_metadata(&target)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"s3cret");
        // A directory at the target is not written into.
        std::fs::create_dir(dir.path().join("adir")).unwrap();
        let (ok, _) = run(
            dir.path().join("adir").to_str().unwrap(),
            &owner,
            0o400,
            false,
            b"x",
        );
        assert!(!ok);
        assert_eq!(
            std::fs::read_dir(dir.path().join("adir")).unwrap().count(),
            0
        );
    }

    #[test]
    fn the_content_is_not_in_the_arguments_and_debug_hides_it() {
        let file = InstallFile {
            path: "/run/secrets/db",
            mode: 0o400,
            owner: "root",
            tmpfs: true,
            content: b"hunter2",
        };
        assert!(!install_argv(&file).iter().any(|a| a.contains("hunter2")));
        let shown = format!("{file:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<7 bytes>"),
            "{shown}"
        );
    }
}
