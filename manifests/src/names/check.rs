//! The checker shared by every validated identifier and free-text type,
//! and the macro that defines those types. One checker means every type
//! words the same mistake the same way. Pure: no I/O.

use super::InvalidValue;

/// Show a user-supplied value in a message: escaped (newlines become `\n`)
/// and cut to at most 40 characters, so a hostile value can neither break
/// the message's line structure nor flood it.
pub(crate) fn shown(value: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::from("\"");
    for (i, c) in value.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// Which characters may begin an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum First {
    /// A letter or a digit.
    Alnum,
    /// A letter.
    Letter,
    /// A digit.
    Digit,
}

/// The rules of one label-like identifier family. One checker serves all of
/// them, so every type reports the same words for the same mistake.
#[derive(Debug)]
pub(crate) struct LabelRules {
    /// Shortest allowed length in characters (0 permits the empty string).
    pub min: usize,
    /// Longest allowed length in characters.
    pub max: usize,
    /// Whether `A`–`Z` are allowed.
    pub uppercase: bool,
    /// Allowed characters besides ASCII letters and digits.
    pub extra: &'static [char],
    /// What the first character must be.
    pub first: First,
    /// Whether the last character must be a letter or digit.
    pub alnum_last: bool,
    /// The rule in words, appended to every refusal.
    pub hint: &'static str,
}

impl LabelRules {
    /// Check `value`; on failure return the reason with the hint appended.
    pub(crate) fn check(&self, value: &str) -> Result<(), InvalidValue> {
        if self.plainly_valid(value) {
            return Ok(());
        }
        self.problem(value).map_or(Ok(()), |why| {
            Err(InvalidValue(format!(
                "{} {why}; {}",
                shown(value),
                self.hint
            )))
        })
    }

    /// One pass over the bytes that accepts the common case (a short ASCII
    /// value obeying every rule); anything else goes through
    /// [`LabelRules::problem`], which finds and words the first mistake.
    pub(super) fn plainly_valid(&self, value: &str) -> bool {
        let bytes = value.as_bytes();
        let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
            return false;
        };
        let allowed = |c: u8| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || (self.uppercase && c.is_ascii_uppercase())
                || self.extra.contains(&char::from(c))
        };
        let first_ok = match self.first {
            First::Alnum => first.is_ascii_alphanumeric(),
            First::Letter => first.is_ascii_alphabetic(),
            First::Digit => first.is_ascii_digit(),
        };
        bytes.len() >= self.min
            && bytes.len() <= self.max
            && first_ok
            && (!self.alnum_last || last.is_ascii_alphanumeric())
            && bytes.iter().all(|&c| allowed(c))
            && !bytes.windows(2).any(|w| w == b"..")
    }

    pub(super) fn problem(&self, value: &str) -> Option<String> {
        if value.is_empty() {
            return (self.min > 0).then(|| "is empty".to_owned());
        }
        if let Some(p) = common_problem(value) {
            return Some(p);
        }
        let len = value.chars().count();
        if len > self.max {
            return Some(format!("is {len} characters long; at most {}", self.max));
        }
        if len < self.min {
            return Some(format!("is {len} characters long; at least {}", self.min));
        }
        for c in value.chars() {
            if c.is_ascii_uppercase() && !self.uppercase {
                return Some(format!(
                    "contains the uppercase letter '{c}'; use lowercase"
                ));
            }
            if !(c.is_ascii_alphanumeric() || self.extra.contains(&c)) {
                return Some(format!("contains {}, which is not allowed", describe(c)));
            }
        }
        let first = value.chars().next().unwrap_or('a');
        let first_ok = match self.first {
            First::Alnum => first.is_ascii_alphanumeric(),
            First::Letter => first.is_ascii_alphabetic(),
            First::Digit => first.is_ascii_digit(),
        };
        if !first_ok {
            return Some(format!("starts with {}", describe(first)));
        }
        let last = value.chars().last().unwrap_or('a');
        if self.alnum_last && !last.is_ascii_alphanumeric() {
            return Some(format!("ends with {}", describe(last)));
        }
        None
    }
}

/// The mistakes every identifier refuses, in the order an operator should
/// hear about them: line breaks, control bytes, quotes, slashes, `..`, spaces.
pub(super) fn common_problem(value: &str) -> Option<String> {
    if value.contains(['\n', '\r']) {
        return Some("contains a newline".to_owned());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Some(format!(
            "contains a control character (U+{:04X})",
            u32::from(c)
        ));
    }
    if let Some(c) = value.chars().find(|c| matches!(c, '"' | '\'' | '`')) {
        return Some(format!("contains a quote ({c})"));
    }
    if let Some(c) = value.chars().find(|c| matches!(c, '/' | '\\')) {
        return Some(format!("contains a slash ({c})"));
    }
    if value.contains("..") {
        return Some("contains '..'".to_owned());
    }
    if value.chars().any(char::is_whitespace) {
        return Some("contains a space".to_owned());
    }
    None
}

/// A character in words, for messages.
pub(crate) fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() => format!("a control character (U+{:04X})", u32::from(c)),
        c if c.is_ascii() => format!("'{c}'"),
        c => format!("'{c}' (U+{:04X})", u32::from(c)),
    }
}

/// Check free text (descriptions, aliases, comments): no control characters
/// or line breaks, at most `max` characters, and every character accepted by
/// `allowed`. `hint` is appended to every refusal.
pub(crate) fn check_text(
    value: &str,
    max: usize,
    allowed: fn(char) -> bool,
    hint: &str,
) -> Result<(), InvalidValue> {
    let problem = if value.contains(['\n', '\r']) {
        Some("contains a newline".to_owned())
    } else if let Some(c) = value.chars().find(|c| c.is_control()) {
        Some(format!(
            "contains a control character (U+{:04X})",
            u32::from(c)
        ))
    } else if let Some(c) = value.chars().find(|c| !allowed(*c)) {
        Some(format!("contains {}, which is not allowed", describe(c)))
    } else {
        let len = value.chars().count();
        (len > max).then(|| format!("is {len} characters long; at most {max}"))
    };
    problem.map_or(Ok(()), |why| {
        Err(InvalidValue(format!("{} {why}; {hint}", shown(value))))
    })
}

/// Define a string newtype whose only constructor runs `$check`. It gets
/// `FromStr`, `TryFrom<String>`, `TryFrom<&str>`, `Display`, `AsRef<str>`,
/// `Borrow<str>`, and serde as a plain string (deserialising runs the check).
macro_rules! validated_string {
    ($(#[$meta:meta])* $name:ident, $check:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A built-in literal known to satisfy the rules (unit tests
            /// check every such literal).
            #[allow(dead_code)]
            pub(crate) fn known(value: &'static str) -> Self {
                debug_assert!(Self::check(value).is_ok(), "{value:?}");
                Self(value.to_owned())
            }

            fn check(value: &str) -> Result<(), $crate::names::InvalidValue> {
                let check: fn(&str) -> Result<(), $crate::names::InvalidValue> = $check;
                check(value)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::names::InvalidValue;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::check(value)?;
                Ok(Self(value.to_owned()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::names::InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::check(&value)?;
                Ok(Self(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::names::InvalidValue;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = <String as ::serde::Deserialize>::deserialize(d)?;
                Self::try_from(value).map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use validated_string;
