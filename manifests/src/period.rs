//! [`Period`]: a span of time written the way operators write it, `90d`,
//! `12h`, `30m` or `45s` (one number, one unit). Used by rotation and
//! renewal schedules. Pure: no I/O.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::names::{InvalidValue, shown};

/// Longest period accepted: 20 years of 365 days.
pub const MAX_PERIOD_SECS: u64 = 7300 * 86_400;

const HINT: &str =
    "a period is a whole number and a unit: s, m, h or d (for example 90d, 12h, 30m, 45s)";

/// A span of time of at least one second and at most 20 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period(u64);

impl Period {
    /// `secs` seconds; refused outside 1..=[`MAX_PERIOD_SECS`].
    pub fn from_secs(secs: u64) -> Result<Period, InvalidValue> {
        if (1..=MAX_PERIOD_SECS).contains(&secs) {
            Ok(Period(secs))
        } else {
            Err(InvalidValue(format!(
                "{secs}s is outside 1s to 7300d; {HINT}"
            )))
        }
    }

    /// The period in seconds.
    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// The period as a [`Duration`].
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl FromStr for Period {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, InvalidValue> {
        let fail = |why: &str| Err(InvalidValue(format!("{} {why}; {HINT}", shown(value))));
        let Some(unit) = value.chars().last() else {
            return fail("is empty");
        };
        let factor = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return fail("has no unit"),
        };
        let digits = &value[..value.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return fail("is not a whole number followed by a unit");
        }
        let Some(secs) = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
        else {
            return fail("is too long");
        };
        match Period::from_secs(secs) {
            Ok(p) => Ok(p),
            Err(_) if secs == 0 => fail("is zero"),
            Err(_) => fail("is longer than 7300d"),
        }
    }
}

impl fmt::Display for Period {
    /// The largest unit that divides the period (`86400` s shows as `1d`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl TryFrom<String> for Period {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, InvalidValue> {
        value.parse()
    }
}

impl From<Period> for String {
    fn from(p: Period) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_units() {
        for (text, secs, shown) in [
            ("45s", 45, "45s"),
            ("90s", 90, "90s"),
            ("120s", 120, "2m"),
            ("30m", 1800, "30m"),
            ("12h", 43_200, "12h"),
            ("90d", 7_776_000, "90d"),
            ("7300d", MAX_PERIOD_SECS, "7300d"),
        ] {
            let p: Period = text.parse().expect(text);
            assert_eq!(p.as_secs(), secs, "{text}");
            assert_eq!(p.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn refuses_with_the_reason() {
        for (text, why) in [
            ("", "is empty"),
            ("90", "has no unit"),
            ("d", "not a whole number"),
            ("-1d", "not a whole number"),
            ("1.5h", "not a whole number"),
            ("0s", "is zero"),
            ("7301d", "longer than 7300d"),
            ("99999999999999999999d", "too long"),
            ("1 d", "not a whole number"),
        ] {
            let err = text.parse::<Period>().expect_err(text).to_string();
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(err.contains("for example 90d"), "{err}");
        }
    }
}
