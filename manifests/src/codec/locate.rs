//! Map between YAML positions and field paths (`spec.subnets[1].cidr`).
//!
//! Used only when something is wrong: to name the field at the position a
//! parse error points to, and to find the line of a field a validation rule
//! refused. It walks the parser's event stream once per call; the happy
//! path never pays for it. Pure: no I/O.

use serde_saphyr::granit_parser::{Event, Parser};

/// One container being walked.
enum Frame {
    /// A mapping: its path, and the key whose value comes next (if any).
    Map { path: String, key: Option<String> },
    /// A sequence: its path and the index of the next item.
    Seq { path: String, next: usize },
}

/// A node (or mapping key) position: 1-based line, 1-based column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

/// What [`walk`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A mapping key, or a scalar or alias value.
    Leaf,
    /// The start of a mapping or sequence value.
    Open,
    /// The end of the innermost open mapping or sequence.
    Close,
}

/// Visit every key, value and container end of every document with
/// `(document root line, step, path, position)`; a close reports the path
/// of the container it ends. `visit` returns `false` to stop.
fn walk(text: &str, mut visit: impl FnMut(usize, Step, &str, Pos) -> bool) {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root_line = 0;
    while let Some(Ok((event, span))) = parser.next_event() {
        let pos = Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        };
        match event {
            Event::DocumentStart(..) => {
                stack.clear();
                root_line = 0;
            }
            Event::Scalar(..)
            | Event::Alias(..)
            | Event::MappingStart(..)
            | Event::SequenceStart(..) => {
                if stack.is_empty() && root_line == 0 {
                    root_line = pos.line;
                }
                // A scalar in key position names the field; record the key.
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                }) = stack.last_mut()
                {
                    let name = match &event {
                        Event::Scalar(v, ..) => v.to_string(),
                        _ => "?".to_owned(),
                    };
                    let child = join_key(path, &name);
                    *key = Some(name);
                    if !visit(root_line, Step::Leaf, &child, pos) {
                        return;
                    }
                    if matches!(event, Event::MappingStart(..) | Event::SequenceStart(..)) {
                        // A complex key: walk it under its placeholder path.
                        stack.push(container(&event, child));
                    }
                    continue;
                }
                let path = match stack.last_mut() {
                    None => String::new(),
                    Some(Frame::Map { path, key }) => {
                        join_key(path, key.take().as_deref().unwrap_or("?"))
                    }
                    Some(Frame::Seq { path, next }) => {
                        *next += 1;
                        format!("{path}[{}]", *next - 1)
                    }
                };
                let open = matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
                if !visit(
                    root_line,
                    if open { Step::Open } else { Step::Leaf },
                    &path,
                    pos,
                ) {
                    return;
                }
                if open {
                    stack.push(container(&event, path));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let path = match stack.pop() {
                    Some(Frame::Map { path, .. } | Frame::Seq { path, .. }) => path,
                    None => String::new(),
                };
                if !visit(root_line, Step::Close, &path, pos) {
                    return;
                }
            }
            Event::StreamEnd => return,
            _ => {}
        }
    }
}

fn container(event: &Event<'_>, path: String) -> Frame {
    match event {
        Event::SequenceStart(..) => Frame::Seq { path, next: 0 },
        _ => Frame::Map { path, key: None },
    }
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path of the last key or node starting at or before `at` (the
/// position a parse error reports), or `None` before the first node.
pub(crate) fn path_at(text: &str, at: Pos) -> Option<String> {
    let mut best: Option<String> = None;
    walk(text, |_, step, path, pos| {
        if pos > at {
            return false;
        }
        if step != Step::Close {
            best = Some(path.to_owned());
        }
        true
    });
    best.filter(|p| !p.is_empty())
}

/// For an error about a spec read before its kind, or an absent spec
/// (whose position the parser does not know): the line of the first
/// document's `spec` written before `kind`, else the `kind` line of the
/// first document without a `spec`.
pub(crate) fn buffered_spec_line(text: &str) -> Option<usize> {
    // Per document: (line of kind, line of spec, spec came first).
    let mut docs: Vec<(usize, Option<usize>, Option<usize>, bool)> = Vec::new();
    walk(text, |root, step, path, pos| {
        if docs.last().is_none_or(|d| d.0 != root) {
            docs.push((root, None, None, false));
        }
        if let (Step::Leaf | Step::Open, Some(doc)) = (step, docs.last_mut()) {
            match path {
                "kind" if doc.1.is_none() => doc.1 = Some(pos.line),
                "spec" if doc.2.is_none() => {
                    doc.2 = Some(pos.line);
                    doc.3 = doc.1.is_none();
                }
                _ => {}
            }
        }
        true
    });
    docs.iter()
        .find_map(|d| d.2.filter(|_| d.3))
        .or_else(|| docs.iter().find(|d| d.2.is_none()).and_then(|d| d.1))
}

/// The path of the innermost mapping or sequence open at `at` (the
/// position of an error about a whole mapping, such as a missing field);
/// empty for the document root.
pub(crate) fn container_at(text: &str, at: Pos) -> String {
    let mut open: Vec<String> = Vec::new();
    walk(text, |_, step, path, pos| {
        if pos > at {
            return false;
        }
        match step {
            Step::Open => open.push(path.to_owned()),
            Step::Close => {
                open.pop();
            }
            Step::Leaf => {}
        }
        true
    });
    open.pop().unwrap_or_default()
}

/// The line of `field` in the document whose content starts on `doc_line`;
/// falls back to the nearest written parent of `field`.
pub(crate) fn line_of(text: &str, doc_line: usize, field: &str) -> Option<usize> {
    let mut lines: Vec<(String, usize)> = Vec::new();
    walk(text, |root, step, path, pos| {
        if step == Step::Close {
            return true;
        }
        if root > doc_line {
            return false;
        }
        if root == doc_line
            && field_has_prefix(field, path)
            && !lines.iter().any(|(p, _)| p == path)
        {
            lines.push((path.to_owned(), pos.line));
        }
        true
    });
    lines
        .into_iter()
        .max_by_key(|(p, _)| p.len())
        .map(|(_, line)| line)
}

/// Whether `prefix` is `field` or one of its parents (`spec.subnets` is a
/// parent of `spec.subnets[1].cidr`; `spec.sub` is not).
fn field_has_prefix(field: &str, prefix: &str) -> bool {
    field
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: orbitlab.io/v1
kind: Sector
metadata:
  name: web
spec:
  cidr: 172.16.0.0/16
  subnets:
    - name: a
      cidr: 172.16.0.0/24
    - {name: b, cidr: 10.9.0.0/24}
---
kind: Lxc
spec:
  sector: web
";

    #[test]
    fn finds_lines_of_fields() {
        assert_eq!(line_of(DOC, 1, "metadata.name"), Some(4));
        assert_eq!(line_of(DOC, 1, "spec.subnets[0].cidr"), Some(9));
        assert_eq!(line_of(DOC, 1, "spec.subnets[1].cidr"), Some(10));
        // Not written: the nearest parent.
        assert_eq!(line_of(DOC, 1, "spec.ingress[0].port"), Some(5));
        // The second document.
        assert_eq!(line_of(DOC, 12, "spec.sector"), Some(14));
    }

    #[test]
    fn finds_field_at_position() {
        assert_eq!(
            path_at(DOC, Pos { line: 4, col: 9 }).as_deref(),
            Some("metadata.name")
        );
        assert_eq!(
            path_at(DOC, Pos { line: 10, col: 30 }).as_deref(),
            Some("spec.subnets[1].cidr")
        );
        assert_eq!(
            path_at(DOC, Pos { line: 14, col: 11 }).as_deref(),
            Some("spec.sector")
        );
    }

    #[test]
    fn finds_open_container() {
        assert_eq!(container_at(DOC, Pos { line: 4, col: 3 }), "metadata");
        assert_eq!(
            container_at(DOC, Pos { line: 9, col: 7 }),
            "spec.subnets[0]"
        );
        assert_eq!(container_at(DOC, Pos { line: 1, col: 1 }), "");
    }
}
