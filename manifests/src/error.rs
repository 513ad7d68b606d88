//! Refusals: what was wrong, where (file, line, field) and what to do.
//!
//! [`ManifestError`] is one refusal, [`ManifestErrors`] many. Inside the
//! crate, validation collects [`Problems`] (field + reason) first; the caller
//! that knows the file and text turns them into located errors. Pure: no I/O.

use std::fmt;

/// One refusal. Displays as `sectors/web.yaml:7: spec.subnets[1].cidr: 10.9.0.0/24 is outside the Sector CIDR 172.16.0.0/16`.
///
/// `file` is empty and `line` is `None` when the manifest did not come from
/// a file (built by the command line, for example); `field` is empty when
/// the refusal concerns the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file label given to the decoder (a path relative to the store or
    /// as the user typed it).
    pub file: String,
    /// 1-based line of the field (or of the document) when known.
    pub line: Option<usize>,
    /// Dotted path of the field, e.g. `spec.subnets[1].cidr`.
    pub field: String,
    /// What is wrong and what to do, in an operator's words.
    pub reason: String,
}

impl ManifestError {
    /// A refusal with no file (for manifests built in memory).
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ManifestError {
            file: String::new(),
            line: None,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same refusal located in `file` at `line`.
    pub fn at(mut self, file: impl Into<String>, line: Option<usize>) -> Self {
        self.file = file.into();
        self.line = line;
        self
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            f.write_str(&self.file)?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.reason)
    }
}

/// Several refusals, sorted by file, line and field. Displays one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl ManifestErrors {
    /// The refusals, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ManifestError> {
        self.0.iter()
    }

    /// Number of refusals.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sort by file, line, field (stable for equal keys).
    pub(crate) fn sorted(mut self) -> Self {
        self.0
            .sort_by(|a, b| (&a.file, a.line, &a.field).cmp(&(&b.file, b.line, &b.field)));
        self
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub(crate) fn into_result(self) -> Result<(), ManifestErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.sorted())
        }
    }
}

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

impl std::error::Error for ManifestErrors {}

impl From<ManifestError> for ManifestErrors {
    fn from(e: ManifestError) -> Self {
        ManifestErrors(vec![e])
    }
}

impl IntoIterator for ManifestErrors {
    type Item = ManifestError;
    type IntoIter = std::vec::IntoIter<ManifestError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ManifestErrors {
    type Item = &'a ManifestError;
    type IntoIter = std::slice::Iter<'a, ManifestError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Problems found while validating one object, before they are located in
/// a file: each is a field path (relative to the manifest root) and a reason.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    prefix: String,
    pub(crate) items: Vec<(String, String)>,
}

impl Problems {
    /// A collector whose fields are all below `prefix` (e.g. `spec`).
    pub(crate) fn under(prefix: &str) -> Self {
        Problems {
            prefix: prefix.to_owned(),
            items: Vec::new(),
        }
    }

    /// Record a problem at `field` (relative to the prefix; empty means the
    /// prefix itself).
    pub(crate) fn push(&mut self, field: impl AsRef<str>, reason: impl Into<String>) {
        let field = field.as_ref();
        let path = match (self.prefix.is_empty(), field.is_empty()) {
            (true, _) => field.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) if field.starts_with('[') => format!("{}{field}", self.prefix),
            (false, false) => format!("{}.{field}", self.prefix),
        };
        self.items.push((path, reason.into()));
    }

    /// Record every failure of a garde report, with its path.
    pub(crate) fn garde(&mut self, report: garde::Report) {
        for (path, error) in report.into_inner() {
            self.push(path.to_string(), error.message().to_owned());
        }
    }

    /// Move the problems of `other` (already prefixed) into this collector.
    pub(crate) fn append(&mut self, other: Problems) {
        self.items.extend(other.items);
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_location() {
        let e = ManifestError::new(
            "spec.subnets[1].cidr",
            "10.9.0.0/24 is outside the Sector CIDR 172.16.0.0/16",
        );
        assert_eq!(
            e.to_string(),
            "spec.subnets[1].cidr: 10.9.0.0/24 is outside the Sector CIDR 172.16.0.0/16"
        );
        let e = e.at("sectors/web.yaml", Some(7));
        assert_eq!(
            e.to_string(),
            "sectors/web.yaml:7: spec.subnets[1].cidr: 10.9.0.0/24 is outside the Sector CIDR 172.16.0.0/16"
        );
        let e = ManifestError::new("", "is too large").at("big.yaml", None);
        assert_eq!(e.to_string(), "big.yaml: is too large");
    }

    #[test]
    fn problems_prefix_paths() {
        let mut p = Problems::under("spec");
        p.push("cidr", "bad");
        p.push("", "whole");
        p.push("[0]", "idx");
        assert_eq!(
            p.items,
            vec![
                ("spec.cidr".to_owned(), "bad".to_owned()),
                ("spec".to_owned(), "whole".to_owned()),
                ("spec[0]".to_owned(), "idx".to_owned())
            ]
        );
    }
}
