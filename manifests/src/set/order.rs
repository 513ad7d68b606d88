//! Dependency order of a set, and refusal of dependency loops (in practice:
//! certificates that issue each other). Iterative depth-first search, so a
//! long chain cannot exhaust the stack. Pure: no I/O.

use super::ManifestSet;
use crate::error::ManifestError;
use crate::kind::Kind;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Visiting,
    Done,
}

/// Indices of the set's items, dependencies first; roots are taken by kind
/// rank, then name. Every loop is reported once, at the object that closes it.
pub(super) fn dependency_order(set: &ManifestSet) -> Result<Vec<usize>, Vec<ManifestError>> {
    let items = set.items();
    let deps: Vec<Vec<(usize, String)>> = items
        .iter()
        .map(|m| {
            m.references()
                .into_iter()
                .filter(|r| r.orders)
                .filter_map(|r| set.index_of(r.kind, r.name.as_str()).map(|j| (j, r.field)))
                .collect()
        })
        .collect();
    let mut roots: Vec<usize> = (0..items.len()).collect();
    roots.sort_by_key(|&i| items[i].kind().rank()); // stable: names stay sorted
    let mut state = vec![State::New; items.len()];
    let mut out = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for root in roots {
        if state[root] != State::New {
            continue;
        }
        state[root] = State::Visiting;
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some((dep, field)) = deps[node].get(*next) {
                *next += 1;
                match state[*dep] {
                    State::New => {
                        state[*dep] = State::Visiting;
                        stack.push((*dep, 0));
                    }
                    State::Visiting => {
                        let start = stack.iter().position(|(n, _)| n == dep).unwrap_or(0);
                        let mut path: Vec<String> =
                            stack[start..].iter().map(|(n, _)| label(set, *n)).collect();
                        path.push(label(set, *dep));
                        let hint = if items[node].kind() == Kind::Certificate {
                            "a chain of issuers must end at a root_ca"
                        } else {
                            "break the loop"
                        };
                        errors.push(items[node].error(
                            field.clone(),
                            format!(
                                "objects depend on each other in a loop: {}; {hint}",
                                path.join(" → ")
                            ),
                        ));
                    }
                    State::Done => {}
                }
            } else {
                state[node] = State::Done;
                out.push(node);
                stack.pop();
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn label(set: &ManifestSet, i: usize) -> String {
    let m = &set.items()[i];
    format!("{} {}", m.kind(), m.name())
}
