//! Label selectors: one syntax for every place a manifest targets objects
//! by their labels, e.g. `app=web,env!=dev,tier in (a,b),!legacy`.
//!
//! | term | matches objects whose labels |
//! | --- | --- |
//! | `key=value` (or `==`) | have `key` set to `value` |
//! | `key!=value` | do not have `key` set to `value` (absent counts) |
//! | `key in (a,b)` | have `key` set to one of the values |
//! | `key notin (a,b)` | do not have `key` set to any of them |
//! | `key` | have `key` |
//! | `!key` | do not have `key` |
//!
//! Terms are joined by `,` and all must hold. Parsed into a typed AST
//! ([`Selector`], [`Term`]); a mistake is refused with its 1-based column
//! ([`SelectorError`]). An empty selector is refused: it would match
//! everything, which no grant should do by accident. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::names::{LabelKey, LabelValue};

/// A parsed selector: every term must hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Selector {
    terms: Vec<Term>,
}

/// One condition on an object's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Term {
    /// `key=value`.
    Equals(LabelKey, LabelValue),
    /// `key!=value`.
    NotEquals(LabelKey, LabelValue),
    /// `key in (v1,v2)`.
    In(LabelKey, Vec<LabelValue>),
    /// `key notin (v1,v2)`.
    NotIn(LabelKey, Vec<LabelValue>),
    /// `key`.
    Exists(LabelKey),
    /// `!key`.
    NotExists(LabelKey),
}

/// A selector that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selector {selector:?}: at column {column}: {reason}")]
pub struct SelectorError {
    /// The selector as written.
    pub selector: String,
    /// 1-based column (in characters) of the mistake.
    pub column: usize,
    /// What is wrong there.
    pub reason: String,
}

impl Selector {
    /// The terms, in the order written.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<LabelKey, LabelValue>) -> bool {
        self.terms.iter().all(|t| t.matches(labels))
    }
}

impl Term {
    /// True for a term only labelled objects satisfy (`=`, `in`, a key
    /// that must be present); false for one an object without labels
    /// satisfies (`!=`, `notin`, `!key`).
    pub fn is_positive(&self) -> bool {
        matches!(self, Term::Equals(..) | Term::In(..) | Term::Exists(_))
    }

    /// Whether `labels` satisfy this term.
    pub fn matches(&self, labels: &BTreeMap<LabelKey, LabelValue>) -> bool {
        match self {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::NotEquals(k, v) => labels.get(k) != Some(v),
            Term::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Term::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Term::Exists(k) => labels.contains_key(k),
            Term::NotExists(k) => !labels.contains_key(k),
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |vs: &[LabelValue]| {
            vs.iter()
                .map(LabelValue::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Term::Equals(k, v) => write!(f, "{k}={v}"),
            Term::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Term::In(k, vs) => write!(f, "{k} in ({})", list(vs)),
            Term::NotIn(k, vs) => write!(f, "{k} notin ({})", list(vs)),
            Term::Exists(k) => write!(f, "{k}"),
            Term::NotExists(k) => write!(f, "!{k}"),
        }
    }
}

impl fmt::Display for Selector {
    /// The canonical form: terms joined by `,`, no spaces but around
    /// `in`/`notin`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(text: &str) -> Result<Self, SelectorError> {
        Parser::new(text).selector()
    }
}

impl TryFrom<String> for Selector {
    type Error = SelectorError;
    fn try_from(text: String) -> Result<Self, SelectorError> {
        text.parse()
    }
}

impl From<Selector> for String {
    fn from(s: Selector) -> String {
        s.to_string()
    }
}

/// Longest selector accepted, in characters.
const MAX_LEN: usize = 1024;

/// A recursive-descent parser over the selector's characters.
struct Parser<'t> {
    text: &'t str,
    chars: Vec<char>,
    at: usize,
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Self {
        Parser {
            text,
            chars: text.chars().collect(),
            at: 0,
        }
    }

    fn fail<T>(&self, column: usize, reason: impl Into<String>) -> Result<T, SelectorError> {
        Err(SelectorError {
            selector: self.text.chars().take(80).collect(),
            column: column + 1,
            reason: reason.into(),
        })
    }

    fn skip_spaces(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| *c == ' ') {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A run of letters, digits, `-`, `_`, `.` (possibly empty).
    fn word(&mut self) -> (usize, String) {
        let start = self.at;
        while self.peek().is_some_and(word_char) {
            self.at += 1;
        }
        (start, self.chars[start..self.at].iter().collect())
    }

    fn key(&mut self) -> Result<LabelKey, SelectorError> {
        self.skip_spaces();
        let (start, word) = self.word();
        if word.is_empty() {
            return match self.peek() {
                None => self.fail(start, "expected a label key, found the end"),
                Some(c) => self.fail(start, format!("expected a label key, found {c:?}")),
            };
        }
        word.parse::<LabelKey>()
            .or_else(|e| self.fail(start, e.message().to_owned()))
    }

    fn value(&mut self) -> Result<LabelValue, SelectorError> {
        self.skip_spaces();
        let (start, word) = self.word();
        if word.is_empty()
            && let Some(c) = self.peek()
            && !matches!(c, ',' | ')')
        {
            return self.fail(start, format!("expected a label value, found {c:?}"));
        }
        word.parse::<LabelValue>()
            .or_else(|e| self.fail(start, e.message().to_owned()))
    }

    /// `(v1, v2, ...)`.
    fn values(&mut self) -> Result<Vec<LabelValue>, SelectorError> {
        self.skip_spaces();
        if !self.eat('(') {
            return self.fail(self.at, "expected '(' and a list of values");
        }
        let mut out = Vec::new();
        loop {
            let v = self.value()?;
            if v.as_str().is_empty() {
                return self.fail(self.at, "expected a value in the list");
            }
            out.push(v);
            self.skip_spaces();
            if self.eat(')') {
                return Ok(out);
            }
            if !self.eat(',') {
                return match self.peek() {
                    None => self.fail(self.at, "the list is not closed with ')'"),
                    Some(c) => self.fail(self.at, format!("expected ',' or ')', found {c:?}")),
                };
            }
        }
    }

    fn term(&mut self) -> Result<Term, SelectorError> {
        self.skip_spaces();
        if self.eat('!') {
            return Ok(Term::NotExists(self.key()?));
        }
        let key = self.key()?;
        self.skip_spaces();
        if self.eat('!') {
            if !self.eat('=') {
                return self.fail(self.at, "expected '=' after '!'");
            }
            return Ok(Term::NotEquals(key, self.value()?));
        }
        if self.eat('=') {
            self.eat('=');
            return Ok(Term::Equals(key, self.value()?));
        }
        let before = self.at;
        let (_, word) = self.word();
        match word.as_str() {
            "" => Ok(Term::Exists(key)),
            "in" => Ok(Term::In(key, self.values()?)),
            "notin" => Ok(Term::NotIn(key, self.values()?)),
            other => self.fail(
                before,
                format!("expected '=', '!=', 'in', 'notin', ',' or the end, found {other:?}"),
            ),
        }
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        if self.chars.len() > MAX_LEN {
            return self.fail(
                MAX_LEN,
                format!("a selector is at most {MAX_LEN} characters"),
            );
        }
        self.skip_spaces();
        if self.peek().is_none() {
            return self.fail(0, "the selector is empty; it would match everything");
        }
        let mut terms = vec![self.term()?];
        loop {
            self.skip_spaces();
            match self.peek() {
                None => return Ok(Selector { terms }),
                Some(',') => {
                    self.at += 1;
                    terms.push(self.term()?);
                }
                Some(c) => {
                    return self.fail(self.at, format!("expected ',' or the end, found {c:?}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<LabelKey, LabelValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn parses_every_term_into_the_ast() {
        let s: Selector = "app=web, env!=dev,tier in (a, b),zone notin (x),!legacy,gpu,k==v"
            .parse()
            .unwrap();
        let key = |k: &str| k.parse::<LabelKey>().unwrap();
        let val = |v: &str| v.parse::<LabelValue>().unwrap();
        assert_eq!(
            s.terms(),
            &[
                Term::Equals(key("app"), val("web")),
                Term::NotEquals(key("env"), val("dev")),
                Term::In(key("tier"), vec![val("a"), val("b")]),
                Term::NotIn(key("zone"), vec![val("x")]),
                Term::NotExists(key("legacy")),
                Term::Exists(key("gpu")),
                Term::Equals(key("k"), val("v")),
            ]
        );
        assert_eq!(
            s.to_string(),
            "app=web,env!=dev,tier in (a,b),zone notin (x),!legacy,gpu,k=v"
        );
        assert_eq!(s.to_string().parse::<Selector>().unwrap(), s);
    }

    #[test]
    fn matches_as_documented() {
        let s: Selector = "app=web,env!=dev,tier in (a,b),!legacy".parse().unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "b"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("legacy", "")])));
        assert!(!s.matches(&labels(&[("app", "api"), ("tier", "a")])));
        let notin: Selector = "zone notin (x)".parse().unwrap();
        assert!(notin.matches(&labels(&[])));
        assert!(!notin.matches(&labels(&[("zone", "x")])));
    }

    #[test]
    fn refuses_with_the_column_of_the_mistake() {
        for (text, column, why) in [
            ("", 1, "empty"),
            ("   ", 1, "empty"),
            ("app=web,", 9, "found the end"),
            ("app=web,,x", 9, "expected a label key, found ','"),
            ("app=we b", 8, "expected ',' or the end"),
            ("tier in a,b", 9, "expected '('"),
            ("tier in (a,b", 13, "not closed"),
            ("tier in ()", 10, "expected a value"),
            ("app!web", 5, "expected '=' after '!'"),
            ("App=web", 1, "uppercase"),
            ("app=w\"eb", 6, "expected ',' or the end, found '\"'"),
            ("app foo", 5, "found \"foo\""),
            ("=web", 1, "expected a label key, found '='"),
            ("-app=1", 1, "starts with '-'"),
        ] {
            let err = text.parse::<Selector>().expect_err(text);
            assert_eq!(err.column, column, "{text:?}: {err}");
            assert!(err.reason.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn serde_goes_through_the_parser() {
        let s: Selector = serde_json::from_str("\"app = web\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"app=web\"");
        assert!(serde_json::from_str::<Selector>("\"app in\"").is_err());
    }
}
