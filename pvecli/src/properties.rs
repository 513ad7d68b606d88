//! `--key value` arguments after the path of `create` and `set`.

use anyhow::{Context, Result, bail};

use crate::cli::OutputFormat;

/// What the trailing arguments said.
#[derive(Debug, Default)]
pub struct Properties {
    pub pairs: Vec<(String, String)>,
    /// `--delete KEY` (for `set`).
    pub delete: Vec<String>,
    /// `--output-format` given after the path.
    pub output_format: Option<OutputFormat>,
}

impl Properties {
    /// Parses `--key value` / `--key=value` pairs.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut out = Properties::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(option) = arg.strip_prefix("--") else {
                bail!("unexpected argument {arg:?}: properties are given as --key value");
            };
            let (key, value) = match option.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => {
                    let value = iter
                        .next()
                        .with_context(|| format!("option --{option} needs a value"))?;
                    (option.to_owned(), value.clone())
                }
            };
            match key.as_str() {
                "" => bail!("empty option name in {arg:?}"),
                "delete" => out.delete.push(value),
                "output-format" => {
                    out.output_format = Some(
                        clap::ValueEnum::from_str(&value, true)
                            .map_err(|e| anyhow::anyhow!("--output-format: {e}"))?,
                    )
                }
                _ => out.pairs.push((key, value)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_pairs_delete_and_output_format() {
        let p = Properties::parse(&args(&[
            "--name",
            "web",
            "--cidr=172.16.0.0/24",
            "--delete",
            "alias",
            "--output-format",
            "json",
        ]))
        .unwrap();
        assert_eq!(
            p.pairs,
            [
                ("name".into(), "web".into()),
                ("cidr".into(), "172.16.0.0/24".into())
            ]
        );
        assert_eq!(p.delete, ["alias"]);
        assert_eq!(p.output_format, Some(OutputFormat::Json));
    }

    #[test]
    fn refuses_stray_words_and_missing_values() {
        assert!(
            Properties::parse(&args(&["web"]))
                .unwrap_err()
                .to_string()
                .contains("\"web\"")
        );
        assert!(
            Properties::parse(&args(&["--name"]))
                .unwrap_err()
                .to_string()
                .contains("--name needs a value")
        );
    }
}
