//! Small validation helpers shared by the spec modules: garde custom rules
//! for numeric ranges with operator-friendly messages, and the duplicate
//! finder. Pure: no I/O.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;

/// A garde custom rule: the value must lie in `min..=max`. `unit` is
/// appended to the numbers (`" MiB"`, `" seconds"`, or `""`).
pub(crate) fn within<T>(min: T, max: T, unit: &'static str) -> impl FnOnce(&T, &()) -> garde::Result
where
    T: PartialOrd + Display + Copy,
{
    move |value, _| {
        if *value < min || *value > max {
            Err(garde::Error::new(format!(
                "is {value}{unit}; must be between {min}{unit} and {max}{unit}"
            )))
        } else {
            Ok(())
        }
    }
}

/// Like [`within`] for an optional value (absent is always fine).
pub(crate) fn within_opt<T>(
    min: T,
    max: T,
    unit: &'static str,
) -> impl FnOnce(&Option<T>, &()) -> garde::Result
where
    T: PartialOrd + Display + Copy,
{
    move |value, ctx| match value {
        Some(v) => within(min, max, unit)(v, ctx),
        None => Ok(()),
    }
}

/// For each item whose key repeats an earlier one, yield
/// `(index, index_of_first)`.
pub(crate) fn duplicates<'a, T, K, F>(items: &'a [T], key: F) -> Vec<(usize, usize)>
where
    K: Eq + Hash,
    F: Fn(&'a T) -> K,
{
    let mut seen: HashMap<K, usize> = HashMap::with_capacity(items.len());
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let k = key(item);
        match seen.get(&k) {
            Some(&first) => out.push((i, first)),
            None => {
                seen.insert(k, i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_message() {
        let e = within(1u16, 128, "")(&200, &()).unwrap_err();
        assert_eq!(e.message(), "is 200; must be between 1 and 128");
        assert!(within(16u32, 1024, " MiB")(&16, &()).is_ok());
        assert!(within_opt(1u32, 3, "")(&None, &()).is_ok());
    }

    #[test]
    fn finds_duplicates() {
        assert_eq!(
            duplicates(&["a", "b", "a", "a"], |s| *s),
            vec![(2, 0), (3, 0)]
        );
    }
}
