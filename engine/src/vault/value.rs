//! [`SecretValue`]: plaintext held in memory that is wiped when dropped and
//! never shown by `Debug`. Pure: reads only from the reader it is given.

use std::fmt;
use std::io::Read;

use zeroize::Zeroizing;

/// Largest secret value the vault stores (64 KiB). Keys, certificates,
/// passwords and tokens are far smaller; larger blobs belong elsewhere.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Why a value was refused. Never contains the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Nothing to store.
    #[error(
        "the secret value from {source_name} is empty; an empty secret is refused (delete the secret instead)"
    )]
    Empty {
        /// Where the value came from (`stdin`, a file name).
        source_name: String,
    },
    /// Over [`MAX_VALUE_BYTES`].
    #[error(
        "the secret value from {source_name} is {size} bytes; the vault stores at most {max} bytes (64 KiB) per value"
    )]
    TooLarge {
        /// Where the value came from.
        source_name: String,
        /// Its size, or a lower bound when reading stopped early.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The reader failed.
    #[error("cannot read the secret value from {source_name}: {reason}")]
    Read {
        /// Where the value came from.
        source_name: String,
        /// The I/O error.
        reason: String,
    },
}

/// Secret bytes: zeroized on drop, redacted in `Debug`, 1 to
/// [`MAX_VALUE_BYTES`] long.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Takes ownership of `bytes` (no copy is left behind by this call).
    pub fn new(bytes: Vec<u8>) -> Result<SecretValue, ValueError> {
        Self::checked(Zeroizing::new(bytes), "the caller")
    }

    /// Reads a whole value from `reader` (stdin, a file), refusing it when
    /// empty or over the cap; `source_name` names it in errors. Reading stops
    /// one byte past the cap, so a 10 MB input is refused without being
    /// held in memory.
    pub fn read_from(reader: impl Read, source_name: &str) -> Result<SecretValue, ValueError> {
        // Capacity for the whole allowed size up front: growing the vector
        // would leave copies of the secret in freed memory.
        let mut buf = Zeroizing::new(Vec::with_capacity(MAX_VALUE_BYTES + 1));
        let limit = u64::try_from(MAX_VALUE_BYTES + 1).unwrap_or(u64::MAX);
        reader
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| ValueError::Read {
                source_name: source_name.to_owned(),
                reason: e.to_string(),
            })?;
        Self::checked(buf, source_name)
    }

    fn checked(bytes: Zeroizing<Vec<u8>>, source_name: &str) -> Result<SecretValue, ValueError> {
        if bytes.is_empty() {
            return Err(ValueError::Empty {
                source_name: source_name.to_owned(),
            });
        }
        if bytes.len() > MAX_VALUE_BYTES {
            return Err(ValueError::TooLarge {
                source_name: source_name.to_owned(),
                size: bytes.len(),
                max: MAX_VALUE_BYTES,
            });
        }
        Ok(SecretValue(bytes))
    }

    /// Wraps bytes that came out of a decryption (already non-empty and
    /// within the cap when they were stored).
    pub(crate) fn from_decrypted(bytes: Zeroizing<Vec<u8>>) -> SecretValue {
        SecretValue(bytes)
    }

    /// The plaintext. Callers must not copy it into logs or errors.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The plaintext as UTF-8, when it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: empty values cannot be built.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SecretValue {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Eq for SecretValue {}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted, {} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let v = SecretValue::new(b"hunter2-plaintext".to_vec()).unwrap();
        let shown = format!("{v:?} {v:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("17 bytes"), "{shown}");
    }

    #[test]
    fn empty_and_oversized_values_are_refused() {
        let err = SecretValue::read_from(&b""[..], "stdin").unwrap_err();
        assert!(err.to_string().contains("from stdin is empty"), "{err}");
        let big = vec![b'x'; 10 * 1000 * 1000];
        let err = SecretValue::read_from(&big[..], "value.bin").unwrap_err();
        assert!(
            matches!(err, ValueError::TooLarge { size, .. } if size == MAX_VALUE_BYTES + 1),
            "{err}"
        );
        assert!(err.to_string().contains("at most 65536 bytes"), "{err}");
        assert!(SecretValue::new(vec![b'x'; MAX_VALUE_BYTES]).is_ok());
        assert!(SecretValue::new(vec![b'x'; MAX_VALUE_BYTES + 1]).is_err());
    }

    #[test]
    fn equality_compares_bytes() {
        let a = SecretValue::new(b"abc".to_vec()).unwrap();
        assert_eq!(a, SecretValue::new(b"abc".to_vec()).unwrap());
        assert_ne!(a, SecretValue::new(b"abd".to_vec()).unwrap());
        assert_ne!(a, SecretValue::new(b"abcd".to_vec()).unwrap());
    }
}
