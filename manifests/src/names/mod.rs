//! Validated identifier types: object names, Proxmox node names, label keys
//! and values, storage ids, bridge names, volume ids, DNS names and versions.
//!
//! Every identifier that can reach a rendered config, a shell, a Proxmox
//! parameter or a path is one of these types. They are checked once, when
//! built (`FromStr`, `TryFrom<String>`, serde), and each refusal says exactly
//! what is wrong ("contains a newline", "is 70 characters long; at most
//! 63"). Pure: no I/O.

/// A value that does not satisfy the rules of a validated type. The message
/// names the offending value (escaped and shortened) and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub(crate) String);

impl InvalidValue {
    /// The full message, e.g. `"we b" contains a space; a name is ...`.
    pub fn message(&self) -> &str {
        &self.0
    }
}

mod check;

use check::common_problem;
pub(crate) use check::{First, LabelRules, check_text, shown, validated_string};

const NAME_RULES: LabelRules = LabelRules {
    min: 1,
    max: 63,
    uppercase: false,
    extra: &['-'],
    first: First::Alnum,
    alnum_last: true,
    hint: "a name is 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
};

const NODE_RULES: LabelRules = LabelRules {
    min: 1,
    max: 63,
    uppercase: true,
    extra: &['-'],
    first: First::Alnum,
    alnum_last: true,
    hint: "a Proxmox node name is a host name: 1 to 63 letters, digits or '-', starting and ending with a letter or digit",
};

const LABEL_KEY_RULES: LabelRules = LabelRules {
    min: 1,
    max: 63,
    uppercase: false,
    extra: &['-', '_', '.'],
    first: First::Alnum,
    alnum_last: true,
    hint: "a label key is 1 to 63 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
};

const LABEL_VALUE_RULES: LabelRules = LabelRules {
    min: 0,
    max: 63,
    uppercase: true,
    extra: &['-', '_', '.'],
    first: First::Alnum,
    alnum_last: true,
    hint: "a label value is empty or up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
};

const STORAGE_RULES: LabelRules = LabelRules {
    min: 2,
    max: 64,
    uppercase: false,
    extra: &['-', '_', '.'],
    first: First::Letter,
    alnum_last: true,
    hint: "a Proxmox storage id is 2 to 64 lowercase letters, digits, '-', '_' or '.', starting with a letter (for example local-lvm)",
};

const BRIDGE_RULES: LabelRules = LabelRules {
    min: 1,
    max: 15,
    uppercase: true,
    extra: &['-', '_', '.'],
    first: First::Letter,
    alnum_last: true,
    hint: "a bridge is a Linux interface name: 1 to 15 letters, digits, '-', '_' or '.', starting with a letter (for example vmbr0)",
};

const VERSION_RULES: LabelRules = LabelRules {
    min: 1,
    max: 32,
    uppercase: true,
    extra: &['.', '-', '+', '~'],
    first: First::Digit,
    alnum_last: true,
    hint: "a version is up to 32 letters, digits, '.', '-', '+' or '~', starting with a digit (for example 1.2.0)",
};

const VOLUME_PATH_RULES: LabelRules = LabelRules {
    min: 1,
    max: 255,
    uppercase: true,
    extra: &['.', '-', '_', '+'],
    first: First::Alnum,
    alnum_last: true,
    hint: "",
};

const DNS_LABEL_RULES: LabelRules = LabelRules {
    min: 1,
    max: 63,
    uppercase: false,
    extra: &['-'],
    first: First::Alnum,
    alnum_last: true,
    hint: "",
};

validated_string!(
    /// An OrbitLab object name (`metadata.name`, and every reference to
    /// another object): a DNS label, 1–63 characters of `[a-z0-9-]`,
    /// starting and ending with a letter or digit.
    Name,
    |v| NAME_RULES.check(v)
);

validated_string!(
    /// A Proxmox node name (a host name label): 1–63 letters, digits or `-`,
    /// starting and ending with a letter or digit. Upper case is kept as
    /// written, because it must match the node's own name.
    NodeName,
    |v| NODE_RULES.check(v)
);

validated_string!(
    /// A label key: 1–63 lowercase letters, digits, `-`, `_` or `.`.
    LabelKey,
    |v| LABEL_KEY_RULES.check(v)
);

validated_string!(
    /// A label value: empty, or up to 63 letters, digits, `-`, `_` or `.`.
    LabelValue,
    |v| LABEL_VALUE_RULES.check(v)
);

validated_string!(
    /// A Proxmox storage id such as `local-lvm`.
    StorageId,
    |v| STORAGE_RULES.check(v)
);

validated_string!(
    /// A Linux bridge name such as `vmbr0` (at most 15 characters).
    BridgeName,
    |v| BRIDGE_RULES.check(v)
);

validated_string!(
    /// A version string such as `1.2.0` or `0.3.1-2`.
    Version,
    |v| VERSION_RULES.check(v)
);

validated_string!(
    /// A Proxmox volume id naming a container template, such as
    /// `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`: a storage id,
    /// `:`, then a relative path of letters, digits, `.`, `-`, `_`, `+`
    /// and single `/` separators (never `..`).
    VolumeId,
    check_volume_id
);

validated_string!(
    /// A DNS name for certificates: lowercase labels separated by `.`, at
    /// most 253 characters; a leading `*.` makes it a wildcard.
    DnsName,
    check_dns_name
);

const VOLUME_HINT: &str = "a template is a Proxmox volume id such as local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

fn check_volume_id(value: &str) -> Result<(), InvalidValue> {
    let fail = |why: String| {
        Err(InvalidValue(format!(
            "{} {why}; {VOLUME_HINT}",
            shown(value)
        )))
    };
    if let Some(why) = common_problem_except_slash(value) {
        return fail(why);
    }
    let Some((storage, path)) = value.split_once(':') else {
        return fail("has no storage part (nothing before ':')".to_owned());
    };
    if let Some(why) = STORAGE_RULES.problem(storage) {
        return fail(format!("has a storage id that {why}"));
    }
    if path.chars().count() > VOLUME_PATH_RULES.max {
        return fail(format!(
            "has a path that is {} characters long; at most 255",
            path.chars().count()
        ));
    }
    for part in path.split('/') {
        if part.is_empty() {
            return fail(
                "has an empty path component (a leading, trailing or doubled '/')".to_owned(),
            );
        }
        if let Some(why) = VOLUME_PATH_RULES.problem(part) {
            return fail(format!("has a path component {} that {why}", shown(part)));
        }
    }
    Ok(())
}

/// Like [`common_problem`] but without the slash rule, for values whose
/// syntax uses `/` as a separator (it is checked per component instead).
fn common_problem_except_slash(value: &str) -> Option<String> {
    common_problem(&value.replace('/', ""))
        .or_else(|| value.contains("..").then(|| "contains '..'".to_owned()))
}

const DNS_HINT: &str = "a DNS name is lowercase labels of letters, digits or '-' separated by '.', such as api.example.org";

fn check_dns_name(value: &str) -> Result<(), InvalidValue> {
    let fail = |why: String| Err(InvalidValue(format!("{} {why}; {DNS_HINT}", shown(value))));
    if value.is_empty() {
        return fail("is empty".to_owned());
    }
    if let Some(why) = common_problem(value) {
        return fail(why);
    }
    let len = value.chars().count();
    if len > 253 {
        return fail(format!("is {len} characters long; at most 253"));
    }
    let body = value.strip_prefix("*.").unwrap_or(value);
    for label in body.split('.') {
        if label.is_empty() {
            return fail("has an empty label (a leading, trailing or doubled '.')".to_owned());
        }
        if let Some(why) = DNS_LABEL_RULES.problem(label) {
            return fail(format!("has a label {} that {why}", shown(label)));
        }
    }
    Ok(())
}

impl DnsName {
    /// Whether this is a wildcard name (`*.example.org`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason<T: std::str::FromStr<Err = InvalidValue>>(v: &str) -> String {
        match v.parse::<T>() {
            Ok(_) => String::from("<accepted>"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn names_accept_dns_labels() {
        for ok in ["a", "web", "web-1", "0", "a".repeat(63).as_str()] {
            assert!(ok.parse::<Name>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_refuse_with_exact_reason() {
        let cases = [
            ("we\nb", "contains a newline"),
            ("we\"b", "contains a quote (\")"),
            ("we'b", "contains a quote (')"),
            ("we/b", "contains a slash (/)"),
            ("a..b", "contains '..'"),
            ("we b", "contains a space"),
            ("Web", "contains the uppercase letter 'W'; use lowercase"),
            ("web_1", "contains '_', which is not allowed"),
            ("-web", "starts with '-'"),
            ("web-", "ends with '-'"),
            ("", "is empty"),
        ];
        for (input, want) in cases {
            let got = reason::<Name>(input);
            assert!(got.contains(want), "{input:?}: {got}");
            assert!(
                !got.contains('\n'),
                "message must stay on one line: {got:?}"
            );
        }
        let long = "a".repeat(70);
        assert!(reason::<Name>(&long).contains("is 70 characters long; at most 63"));
    }

    #[test]
    fn node_names_keep_case() {
        assert_eq!(
            "PVE-1".parse::<NodeName>().map(|n| n.to_string()),
            Ok("PVE-1".to_owned())
        );
        assert!(reason::<NodeName>("pve.lan").contains("'.'"));
    }

    #[test]
    fn volume_ids() {
        assert!(
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
                .parse::<VolumeId>()
                .is_ok()
        );
        assert!(reason::<VolumeId>("vztmpl/x.tar").contains("no storage part"));
        assert!(reason::<VolumeId>("local:vztmpl/../etc/passwd").contains("'..'"));
        assert!(reason::<VolumeId>("local:/etc/passwd").contains("empty path component"));
        assert!(reason::<VolumeId>("local:a b").contains("a space"));
        assert!(reason::<VolumeId>("local:a\nb").contains("newline"));
    }

    #[test]
    fn dns_names() {
        assert!("api.example.org".parse::<DnsName>().is_ok());
        assert!(
            "*.example.org"
                .parse::<DnsName>()
                .is_ok_and(|d| d.is_wildcard())
        );
        assert!(reason::<DnsName>("a..b").contains("'..'"));
        assert!(reason::<DnsName>("a.*.b").contains("'*'"));
        assert!(reason::<DnsName>("Api.example.org").contains("uppercase"));
    }

    #[test]
    fn fast_path_agrees_with_the_full_check() {
        // Every string of up to 3 characters over an alphabet that exercises
        // each rule: the fast path may only accept what the full check accepts.
        let alphabet = [
            'a', 'Z', '0', '-', '_', '.', '+', '~', ' ', '/', '"', '\n', 'é',
        ];
        let rules = [
            &NAME_RULES,
            &NODE_RULES,
            &LABEL_KEY_RULES,
            &LABEL_VALUE_RULES,
            &STORAGE_RULES,
            &BRIDGE_RULES,
            &VERSION_RULES,
        ];
        let mut words = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = words
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            words.extend(longer);
        }
        for r in rules {
            for w in &words {
                assert_eq!(
                    r.plainly_valid(w),
                    r.problem(w).is_none() && !w.is_empty(),
                    "{w:?} with {}",
                    r.hint
                );
            }
        }
    }

    #[test]
    fn shown_escapes_and_truncates() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        assert!(shown(&"x".repeat(100)).ends_with("…\""));
    }
}
