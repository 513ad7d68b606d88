//! The YAML codec: text ⇄ manifests. The only module that knows YAML.
//!
//! [`decode`] reads a multi-document YAML text into located manifests. It
//! refuses, before parsing anything, a text over 1 MiB (the most a Proxmox
//! cluster filesystem file may hold), and while parsing: nesting deeper than
//! 16 levels, alias bombs, more than 4096 documents, duplicate keys, unknown
//! fields, unknown kinds and apiVersions, and invalid names. Every refusal
//! names the file, the line, the field and the reason.
//!
//! [`decode_all`] does the same for many files at once, on every core,
//! and reports every file's refusal.
//!
//! [`encode`] writes a manifest as stable, human-readable YAML (keys in
//! declaration order, labels sorted, absent optional fields omitted) that
//! [`decode`] reads back to the same manifest.
//!
//! YAML is handled by `serde-saphyr` (the maintained successor of
//! `serde_yaml`). Pure: no I/O.

pub(crate) mod locate;

use std::sync::Arc;

use serde_saphyr::{DuplicateKeyPolicy, MessageFormatter, Spanned, UserMessageFormatter};

use crate::error::{ManifestError, ManifestErrors};
use crate::manifest::{BUFFERED_SPEC, Manifest};
use crate::sourced::Sourced;

/// Largest text [`decode`] accepts: 1 MiB, the pmxcfs per-file limit.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 16;
/// Most documents in one text.
pub const MAX_DOCUMENTS: usize = 4096;

/// Parser options: budgets sized for manifests (a 1 MiB file of ordinary
/// manifests stays far inside them; hostile shapes are stopped early).
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_documents: MAX_DOCUMENTS,
            max_nodes: 250_000,
            max_events: 600_000,
            max_aliases: 256,
            max_anchors: 256,
            max_merge_keys: 256,
            max_total_scalar_bytes: MAX_FILE_BYTES,
            max_recorded_anchor_events: 10_000,
            max_recorded_anchor_bytes: MAX_FILE_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: MAX_DEPTH,
            max_alias_expansions_per_anchor: 64,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
        with_snippet: false,
    }
}

/// Decode every document of `text` (the contents of the file labelled
/// `source`) into manifests, each carrying `source` and its first line.
/// Empty documents are skipped. Values are parsed and their types checked
/// (names, kinds, unknown fields); rules such as CIDR containment are
/// checked by [`crate::Manifest::validate`] and [`crate::ManifestSet::new`].
pub fn decode(source: &str, text: &str) -> Result<Vec<Sourced<Manifest>>, ManifestError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ManifestError::new(
            "",
            format!(
                "is {} bytes; a manifest file may hold at most {MAX_FILE_BYTES} bytes (1 MiB, the Proxmox cluster filesystem's limit); split it into several files",
                text.len()
            ),
        )
        .at(source, None));
    }
    let docs: Vec<Spanned<Manifest>> = serde_saphyr::from_multiple_with_options(text, options())
        .map_err(|e| parse_error(source, text, &e))?;
    let shared: Arc<str> = Arc::from(text);
    // Each document's text runs from the start of its first line to the
    // start of the next document's first line.
    let starts: Option<Vec<usize>> = docs
        .iter()
        .map(|d| {
            let offset = d
                .referenced
                .span()
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok());
            let offset = offset.filter(|&o| text.is_char_boundary(o))?;
            Some(text[..offset].rfind('\n').map_or(0, |i| i + 1))
        })
        .collect();
    let range = |i: usize| {
        let starts = starts.as_ref()?;
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        (end >= starts[i]).then(|| starts[i]..end)
    };
    Ok(docs
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let line = usize::try_from(d.referenced.line()).ok().filter(|l| *l > 0);
            Sourced::from_text(source, line, d.value, Arc::clone(&shared), range(i))
        })
        .collect())
}

/// Decode many files at once — `(label, text)` pairs, e.g. every file of
/// the store — using every available core. Returns the manifests in the
/// order of `files` (documents in file order), or every file's refusal.
pub fn decode_all<S, T>(files: &[(S, T)]) -> Result<Vec<Sourced<Manifest>>, ManifestErrors>
where
    S: AsRef<str> + Sync,
    T: AsRef<str> + Sync,
{
    /// Fewest files worth a thread of their own.
    const MIN_PER_THREAD: usize = 256;
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(files.len().div_ceil(MIN_PER_THREAD))
        .max(1);
    let decode_chunk = |chunk: &[(S, T)]| {
        let mut docs = Vec::with_capacity(chunk.len());
        let mut errors = Vec::new();
        for (label, text) in chunk {
            match decode(label.as_ref(), text.as_ref()) {
                Ok(d) => docs.extend(d),
                Err(e) => errors.push(e),
            }
        }
        (docs, errors)
    };
    let parts: Vec<(Vec<Sourced<Manifest>>, Vec<ManifestError>)> = if threads == 1 {
        vec![decode_chunk(files)]
    } else {
        let size = files.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(size)
                .map(|c| scope.spawn(move || decode_chunk(c)))
                .collect();
            // A decoder thread panics only on a bug; pass it on unchanged.
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for (d, e) in parts {
        docs.extend(d);
        errors.extend(e);
    }
    ManifestErrors(errors).into_result().map(|()| docs)
}

/// Encode one manifest as YAML. Decoding the result gives the same manifest.
pub fn encode(manifest: &Manifest) -> String {
    // Serialising these types cannot fail: every map key is a string and
    // every value a string, number, bool, sequence or map.
    serde_saphyr::to_string(manifest).unwrap_or_else(|e| format!("# cannot encode manifest: {e}\n"))
}

/// Encode several manifests as one multi-document YAML text (`---` between).
pub fn encode_all<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> String {
    let mut out = String::new();
    for (i, m) in manifests.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&encode(m));
    }
    out
}

/// Turn a parser error into a located refusal naming the field.
fn parse_error(source: &str, text: &str, err: &serde_saphyr::Error) -> ManifestError {
    let inner = err.without_snippet();
    let message = clean(&UserMessageFormatter.format_message(inner));
    let at = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| locate::Pos {
            line: to_usize(l.line()),
            col: to_usize(l.column()),
        });
    let (message, buffered) = match message.strip_prefix(BUFFERED_SPEC) {
        Some(rest) => (rest.to_owned(), true),
        None => (message, false),
    };
    let mut line = at.map(|a| a.line);
    let mut field = if buffered {
        // A spec read before its kind (or absent): the position is past it.
        line = locate::buffered_spec_line(text).or(line);
        "spec".to_owned()
    } else {
        at.and_then(|at| locate::path_at(text, at))
            .unwrap_or_default()
    };
    let mut reason = explain(inner, &message);
    // A missing field is reported inside the mapping that lacks it.
    if let Some(missing) = between(&message, "missing field `", "`") {
        let parent = match (buffered, at) {
            (true, _) => "spec".to_owned(),
            (false, Some(at)) => locate::container_at(text, at),
            (false, None) => String::new(),
        };
        field = join(&parent, missing);
        reason = "is required but missing; add it".to_owned();
    }
    // An unknown key is reported at the key itself or at its mapping.
    if let Some(unknown) = between(&message, "unknown field `", "`")
        && !field.ends_with(unknown)
    {
        field = join(&field, unknown);
    }
    if field.ends_with(".value") || field.ends_with(".data") {
        reason.push_str(
            "; secret values never go into manifests: store them in the vault (orbitlab set /vault/secrets/NAME)",
        );
    }
    ManifestError::new(field, reason).at(source, line)
}

/// `parent.child`, or `child` at the root.
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// Reword the parser's budget refusals and terse messages for an operator.
fn explain(err: &serde_saphyr::Error, message: &str) -> String {
    use serde_saphyr::Error as E;
    const SHAPE: &str = "manifests are small, shallow documents; write the values out plainly";
    match err {
        E::AliasError { error, .. } => explain(error, message),
        E::Budget { breach, .. } => format!(
            "refused before reading further: {}; {SHAPE}",
            breach_words(breach)
        ),
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            format!("refused before reading further: aliases expand too much ({message}); {SHAPE}")
        }
        E::DuplicateMappingKey { .. } => {
            format!("{message}; each key may appear only once in a mapping: remove one of them")
        }
        _ if message.contains("recursion limit") => {
            format!(
                "refused before reading further: nesting deeper than {MAX_DEPTH} levels; {SHAPE}"
            )
        }
        _ if message.starts_with("expected mapping") => {
            format!("{message}; a manifest is a mapping with apiVersion, kind, metadata and spec")
        }
        _ => message.to_owned(),
    }
}

/// A budget breach in words.
fn breach_words(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Depth { .. } => format!("nesting deeper than {MAX_DEPTH} levels"),
        B::Documents { .. } => format!("more than {MAX_DOCUMENTS} documents in one file"),
        B::Nodes { .. } | B::Events { .. } => "too many values in one file".to_owned(),
        B::Aliases { .. } | B::Anchors { .. } | B::AliasAnchorRatio { .. } => {
            "too many anchors or aliases (&name / *name)".to_owned()
        }
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => {
            "anchors (&name) that copy too much (an alias bomb?)".to_owned()
        }
        B::MergeKeys { .. } => "too many merge keys (<<)".to_owned(),
        B::ScalarBytes { .. } => "more text than a manifest file may hold".to_owned(),
        other => format!("the document is too large or too complex ({other:?})"),
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The text between `start` and the next `end` in `s`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// Neutralise control characters in a dependency's message.
fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
