//! [`Sourced`]: a value together with where it came from (file label and
//! the line its document starts on), so that every later refusal can name
//! the file, the line of the offending field and the field itself.
//! Pure: no I/O (the text it keeps was read by the caller).

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use crate::codec::locate;
use crate::error::{ManifestError, ManifestErrors, Problems};
use crate::manifest::Manifest;

/// A decoded value with its origin.
#[derive(Clone)]
pub struct Sourced<T> {
    /// The file label given to the decoder (e.g. `sector/web.yaml`); empty
    /// for objects built in memory.
    pub source: String,
    /// 1-based line where the document's content starts, when known.
    pub line: Option<usize>,
    /// The value.
    pub value: T,
    origin: Option<Origin>,
}

/// The text a value was decoded from, kept to find field lines on demand.
#[derive(Clone)]
struct Origin {
    /// The whole file.
    text: Arc<str>,
    /// Byte range of this value's document, starting at the beginning of
    /// the document's first line (so a lookup parses only this document),
    /// when the parser reported byte offsets.
    range: Option<Range<usize>>,
}

impl<T> Sourced<T> {
    /// A value from `source` with no line information (e.g. built by the
    /// command line from options).
    pub fn new(source: impl Into<String>, value: T) -> Self {
        Sourced {
            source: source.into(),
            line: None,
            value,
            origin: None,
        }
    }

    /// A value decoded from `text` (the whole file) whose document starts
    /// at `line` and occupies `range` (whole lines) of the text.
    pub(crate) fn from_text(
        source: &str,
        line: Option<usize>,
        value: T,
        text: Arc<str>,
        range: Option<Range<usize>>,
    ) -> Self {
        Sourced {
            source: source.to_owned(),
            line,
            value,
            origin: Some(Origin { text, range }),
        }
    }

    /// The line of `field` (e.g. `spec.subnets[1].cidr`) in this document:
    /// the line of that field, else of its nearest written parent, else the
    /// document's first line.
    pub fn line_of(&self, field: &str) -> Option<usize> {
        let found = match (&self.origin, self.line) {
            (Some(o), Some(doc_line)) => match o.range.clone().and_then(|r| o.text.get(r)) {
                Some(doc) => locate::line_of(doc, 1, field).map(|l| l + doc_line - 1),
                None => locate::line_of(&o.text, doc_line, field),
            },
            _ => None,
        };
        found.or(self.line)
    }

    /// A refusal about `field` located in this value's file and line.
    pub fn error(&self, field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
        let field = field.into();
        let line = self.line_of(&field);
        ManifestError::new(field, reason).at(self.source.clone(), line)
    }

    /// Locate a batch of problems.
    pub(crate) fn errors(&self, problems: Problems) -> impl Iterator<Item = ManifestError> + '_ {
        problems
            .items
            .into_iter()
            .map(move |(field, reason)| self.error(field, reason))
    }

    /// Apply `f` to the value, keeping the origin.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Sourced<U> {
        Sourced {
            source: self.source,
            line: self.line,
            value: f(self.value),
            origin: self.origin,
        }
    }

    /// The value without its origin.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl Sourced<Manifest> {
    /// [`Manifest::validate`] with every error located in this file.
    pub fn validate(&self) -> Result<(), ManifestErrors> {
        ManifestErrors(self.errors(self.value.problems()).collect()).into_result()
    }
}

impl<T> Deref for Sourced<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Sourced<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sourced")
            .field("source", &self.source)
            .field("line", &self.line)
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl<T: PartialEq> PartialEq for Sourced<T> {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.line == other.line && self.value == other.value
    }
}
