//! Reading manifest files given with `-f`: files or directories (searched
//! recursively for `*.yaml`/`*.yml`, in name order). Every problem in every
//! file is collected before anything is refused.

use std::fs;
use std::path::{Path, PathBuf};

use orbitlab_engine::store::MAX_FILE_BYTES;
use orbitlab_manifests::{Manifest, ManifestError, ManifestErrors, Sourced, codec};

/// Decodes every manifest in `paths`; all errors at once.
pub fn read_manifests(paths: &[PathBuf]) -> Result<Vec<Sourced<Manifest>>, ManifestErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        collect(path, &mut files, &mut errors);
    }
    let mut manifests = Vec::new();
    for file in files {
        let label = file.display().to_string();
        match read_text(&file) {
            Ok(text) => match codec::decode(&label, &text) {
                Ok(docs) => manifests.extend(docs),
                Err(e) => errors.push(e),
            },
            Err(reason) => errors.push(ManifestError::new("", reason).at(label, None)),
        }
    }
    if manifests.is_empty() && errors.is_empty() {
        let label = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        errors.push(ManifestError::new("", "no manifests found (*.yaml or *.yml)").at(label, None));
    }
    if errors.is_empty() {
        Ok(manifests)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<ManifestError>) {
    let label = path.display().to_string();
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let mut entries: Vec<PathBuf> = match fs::read_dir(path) {
                Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
                Err(e) => {
                    errors.push(
                        ManifestError::new("", format!("cannot read directory: {e}"))
                            .at(label, None),
                    );
                    return;
                }
            };
            entries.sort();
            for entry in entries {
                let is_yaml = entry.extension().is_some_and(|x| x == "yaml" || x == "yml");
                if entry.is_dir() || is_yaml {
                    collect(&entry, files, errors);
                }
            }
        }
        Ok(_) => files.push(path.to_owned()),
        Err(e) => errors.push(ManifestError::new("", format!("cannot read: {e}")).at(label, None)),
    }
}

/// Reads a file, refusing one larger than a pmxcfs file may be before
/// reading it.
fn read_text(path: &Path) -> Result<String, String> {
    let size = fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if size > MAX_FILE_BYTES as u64 {
        return Err(format!(
            "is {size} bytes; a manifest may be at most 1 MiB (the Proxmox cluster filesystem's file limit)"
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_owned())
}
