//! Validated free-text types: descriptions, Sector aliases, SSH key comments
//! and certificate common names.
//!
//! Free text can still reach a config (a Proxmox description, an SDN alias,
//! an `authorized_keys` line, a certificate subject), so none of these types
//! accepts a line break or other control character, and each caps its
//! length. Pure: no I/O.

use crate::names::{check_text, validated_string};

/// Longest [`Description`] in characters.
pub const DESCRIPTION_MAX: usize = 512;
/// Longest [`Alias`] in characters.
pub const ALIAS_MAX: usize = 64;
/// Longest [`Comment`] in characters.
pub const COMMENT_MAX: usize = 128;
/// Longest [`CommonName`] in characters (the X.509 upper bound).
pub const COMMON_NAME_MAX: usize = 64;

fn any_printable(_: char) -> bool {
    true
}

/// The characters Proxmox accepts in an SDN VNet alias, narrowed to ASCII.
fn alias_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '(' | ')')
}

fn comment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '@' | ':' | '+')
}

fn common_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '*' | '@' | '(' | ')' | ',')
}

validated_string!(
    /// A one-line description (`metadata.description`): any printable text
    /// without line breaks or control characters, at most 512 characters.
    Description,
    |v| check_text(
        v,
        DESCRIPTION_MAX,
        any_printable,
        "a description is one line of at most 512 characters without control characters"
    )
);

validated_string!(
    /// A Sector's display alias (becomes the Proxmox SDN VNet alias):
    /// at most 64 ASCII letters, digits, spaces, `-`, `_`, `.`, `(` or `)`.
    Alias,
    |v| check_text(
        v,
        ALIAS_MAX,
        alias_char,
        "an alias is at most 64 letters, digits, spaces, '-', '_', '.', '(' or ')'"
    )
);

validated_string!(
    /// An SSH key comment (the last field of an `authorized_keys` line):
    /// at most 128 ASCII letters, digits, spaces, `-`, `_`, `.`, `@`, `:` or `+`.
    Comment,
    |v| check_text(
        v,
        COMMENT_MAX,
        comment_char,
        "a comment is at most 128 letters, digits, spaces, '-', '_', '.', '@', ':' or '+'"
    )
);

validated_string!(
    /// A certificate subject common name: at most 64 ASCII letters, digits,
    /// spaces and `-_.*@(),`, never empty.
    CommonName,
    |v| if v.trim().is_empty() {
        Err(crate::names::InvalidValue(
            "a common name must not be empty; write for example \"OrbitLab Root CA\"".to_owned(),
        ))
    } else {
        check_text(
            v,
            COMMON_NAME_MAX,
            common_name_char,
            "a common name is at most 64 letters, digits, spaces or '-_.*@(),'",
        )
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_refuses_newline_and_length() {
        let e = "line one\nline two".parse::<Description>().unwrap_err();
        assert!(e.message().contains("contains a newline"), "{e}");
        let e = "x".repeat(600).parse::<Description>().unwrap_err();
        assert!(
            e.message().contains("is 600 characters long; at most 512"),
            "{e}"
        );
        assert!(
            "Web tier — production, «critical»"
                .parse::<Description>()
                .is_ok()
        );
    }

    #[test]
    fn alias_refuses_quotes_and_control() {
        assert!("Web tier (prod)".parse::<Alias>().is_ok());
        let e = "web\"; rm".parse::<Alias>().unwrap_err();
        assert!(e.message().contains("'\"', which is not allowed"), "{e}");
        let e = "a\tb".parse::<Alias>().unwrap_err();
        assert!(e.message().contains("control character (U+0009)"), "{e}");
    }

    #[test]
    fn comment_and_common_name() {
        assert!("ops@orbitlab".parse::<Comment>().is_ok());
        assert!("a\nssh-ed25519 AAAA".parse::<Comment>().is_err());
        assert!("OrbitLab Root CA".parse::<CommonName>().is_ok());
        assert!("  ".parse::<CommonName>().is_err());
    }
}
