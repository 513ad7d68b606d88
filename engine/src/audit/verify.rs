//! Checking the chain: every record's hash, `prev` link and sequence
//! number, across shards, and the head at the end. Pure: the caller reads
//! the files.

use std::fmt;

use serde::Serialize;

use super::record::{GENESIS, Record, ShardName};
use super::{Head, lines};

/// What [`super::AuditLog::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "result")]
pub enum Verification {
    /// Every record checks out, and the head matches the last one.
    Intact(Summary),
    /// The first place the chain breaks.
    Broken(Break),
}

/// An intact log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records checked.
    pub records: u64,
    /// Shard files read.
    pub shards: usize,
    /// The newest record's hash (keep it elsewhere to detect a rewrite of
    /// the whole chain); `None` for an empty log.
    pub head_hash: Option<String>,
    /// Something worth knowing that is not a break.
    pub note: Option<String>,
}

/// Where the chain breaks and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The shard file (`2026-12-06.jsonl`).
    pub shard: String,
    /// The line, from 1 (for a record missing at the end: the line it
    /// should be on).
    pub line: usize,
    /// The record's sequence number as found (or the first missing one).
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
}

/// Ways a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Problem {
    /// The line is not a record (damaged, or edited into something else).
    Unreadable { reason: String },
    /// The record's content does not match its hash: it was edited.
    Edited,
    /// Records `expected..found` are missing before this one: deleted
    /// (lines, or a whole shard).
    Missing { expected: u64, found: u64 },
    /// The record repeats or goes back in the sequence: copied or moved.
    OutOfOrder { expected: u64, found: u64 },
    /// The record does not chain to the one before it: the one before was
    /// replaced (edited with a recomputed hash).
    Relinked,
    /// The head names a newer record than the last one found: records were
    /// cut off the end (or the newest shard removed).
    Truncated { head_seq: u64, last_seq: u64 },
    /// The head does not name the last record found.
    HeadMismatch { head_seq: u64, last_seq: u64 },
    /// There are records but no head file.
    HeadMissing,
    /// The head file is not a head.
    HeadUnreadable { reason: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable { reason } => write!(f, "not an audit record ({reason})"),
            Problem::Edited => f.write_str("edited: its content does not match its hash"),
            Problem::Missing { expected, found } => write!(
                f,
                "deleted: record {expected}{} missing before it",
                if found - expected > 1 {
                    format!("..{}", found - 1)
                } else {
                    String::new()
                }
            ),
            Problem::OutOfOrder { expected, found } => {
                write!(f, "out of order: seq {found} where {expected} was due")
            }
            Problem::Relinked => f.write_str(
                "broken link: its prev is not the hash of the record before it, which was replaced",
            ),
            Problem::Truncated { head_seq, last_seq } => write!(
                f,
                "truncated: the head names record {head_seq}, the last one found is {last_seq}"
            ),
            Problem::HeadMismatch { head_seq, last_seq } => write!(
                f,
                "head mismatch: the head names record {head_seq}, which is not the last one found ({last_seq})"
            ),
            Problem::HeadMissing => f.write_str("the head file head.json is missing"),
            Problem::HeadUnreadable { reason } => write!(f, "head.json is damaged ({reason})"),
        }
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.shard, self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// The last record checked.
#[derive(Debug, Clone)]
struct Last {
    seq: u64,
    hash: String,
    prev: String,
    shard: String,
    line: usize,
}

/// Walks shards in order.
#[derive(Debug, Default)]
pub(super) struct Walk {
    last: Option<Last>,
    records: u64,
    shards: usize,
}

impl Walk {
    /// Checks one shard's records; the first break, if any.
    pub(super) fn shard(&mut self, name: &ShardName, bytes: &[u8]) -> Option<Break> {
        self.shards += 1;
        let shard = name.to_string();
        for (line_no, line) in lines(bytes) {
            let at = |seq: Option<u64>, problem| Break {
                shard: shard.clone(),
                line: line_no,
                seq,
                problem,
            };
            let record: Record = match serde_json::from_slice(line) {
                Ok(record) => record,
                Err(e) => {
                    return Some(at(
                        None,
                        Problem::Unreadable {
                            reason: e.to_string(),
                        },
                    ));
                }
            };
            let seq = Some(record.seq);
            if record.digest() != record.hash || record.line().as_bytes() != line {
                return Some(at(seq, Problem::Edited));
            }
            let (expected, prev) = match &self.last {
                Some(last) => (last.seq + 1, last.hash.as_str()),
                None => (1, GENESIS),
            };
            if record.seq > expected {
                return Some(at(
                    seq,
                    Problem::Missing {
                        expected,
                        found: record.seq,
                    },
                ));
            }
            if record.seq < expected {
                return Some(at(
                    seq,
                    Problem::OutOfOrder {
                        expected,
                        found: record.seq,
                    },
                ));
            }
            if record.prev != prev {
                return Some(at(seq, Problem::Relinked));
            }
            self.records += 1;
            self.last = Some(Last {
                seq: record.seq,
                hash: record.hash,
                prev: record.prev,
                shard: shard.clone(),
                line: line_no,
            });
        }
        None
    }

    /// A head file that does not parse.
    pub(super) fn unreadable_head(self, reason: String) -> Verification {
        Verification::Broken(Break {
            shard: "head.json".to_owned(),
            line: 1,
            seq: None,
            problem: Problem::HeadUnreadable { reason },
        })
    }

    /// Compares the head with the last record.
    pub(super) fn finish(self, head: Option<Head>) -> Verification {
        let intact = |note: Option<String>| {
            Verification::Intact(Summary {
                records: self.records,
                shards: self.shards,
                head_hash: self.last.as_ref().map(|l| l.hash.clone()),
                note,
            })
        };
        let (last_seq, last_hash) = self
            .last
            .as_ref()
            .map_or((0, GENESIS), |l| (l.seq, l.hash.as_str()));
        // Where a record missing at the end would be.
        let after = |shard: &str| match &self.last {
            Some(l) if l.shard == shard => (l.shard.clone(), l.line + 1),
            _ => (shard.to_owned(), 1),
        };
        let broken = |(shard, line): (String, usize), seq, problem| {
            Verification::Broken(Break {
                shard,
                line,
                seq,
                problem,
            })
        };
        match head {
            None if self.last.is_none() => intact(None),
            None => {
                let last = self.last.as_ref().expect("checked above");
                broken(
                    (last.shard.clone(), last.line),
                    Some(last.seq),
                    Problem::HeadMissing,
                )
            }
            Some(head) if head.seq == last_seq && head.hash == last_hash => intact(None),
            Some(head) if head.seq > last_seq => broken(
                after(&head.shard),
                Some(last_seq + 1),
                Problem::Truncated {
                    head_seq: head.seq,
                    last_seq,
                },
            ),
            Some(head)
                if head.seq + 1 == last_seq
                    && self.last.as_ref().is_some_and(|l| l.prev == head.hash) =>
            {
                intact(Some(format!(
                    "the head names record {}, one before the last: an append was interrupted (or is running); the next append completes it",
                    head.seq
                )))
            }
            Some(head) => {
                let last = self.last.as_ref();
                broken(
                    last.map_or((head.shard.clone(), 1), |l| (l.shard.clone(), l.line)),
                    Some(last_seq),
                    Problem::HeadMismatch {
                        head_seq: head.seq,
                        last_seq,
                    },
                )
            }
        }
    }
}
