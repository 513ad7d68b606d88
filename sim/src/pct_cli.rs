//! The program `orbitlab-sim-pct` — its `main` lives in the library so that
//! other packages' test binaries can be the very same program: a stand-in
//! for Proxmox's `pct`, for the sandbox and multi-process tests. Agents run it (through `ORBITLAB_PCT`) exactly as
//! they run `pct`; it forwards `push` and `exec` to the PVE simulator's
//! control API, which records them; `exec` prints what the command wrote
//! on standard output and exits with its status (as `pct exec` does).
//!
//! Environment: `ORBITLAB_NODE` (the node asking), `ORBITLAB_SIM_URL` (the
//! simulator's origin, `https://127.0.0.1:PORT`), `ORBITLAB_SIM_CA` (its CA
//! certificate, PEM, when it serves HTTPS).
//!
//! Usage: `pct push VMID SOURCE DEST [--perms OCTAL]`, `pct exec VMID -- ARGV...`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;

/// Runs `pct` with the process arguments; exit status 0 on success, the
/// command's own status for `exec`.
pub fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("pct: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<u8> {
    let node = std::env::var("ORBITLAB_NODE").context("ORBITLAB_NODE is not set")?;
    let origin = std::env::var("ORBITLAB_SIM_URL").context("ORBITLAB_SIM_URL is not set")?;
    let (verb, rest) = args
        .split_first()
        .context("usage: pct push|exec VMID ...")?;
    let (vmid, rest) = rest.split_first().context("missing VMID")?;
    let vmid: u32 = vmid.parse().with_context(|| format!("bad VMID {vmid:?}"))?;
    let (path, body) = match verb.as_str() {
        "push" => {
            let [source, dest, tail @ ..] = rest else {
                bail!("usage: pct push VMID SOURCE DEST [--perms OCTAL]")
            };
            let mode = match tail {
                [] => 0o644,
                [flag, perms] if flag == "--perms" => {
                    u32::from_str_radix(perms, 8).with_context(|| format!("bad --perms {perms}"))?
                }
                _ => bail!("usage: pct push VMID SOURCE DEST [--perms OCTAL]"),
            };
            let content =
                std::fs::read_to_string(source).with_context(|| format!("cannot read {source}"))?;
            (
                "push",
                json!({ "path": dest, "mode": mode, "content": content }),
            )
        }
        "exec" => {
            let argv = match rest {
                [sep, argv @ ..] if sep == "--" => argv,
                argv => argv,
            };
            // What the command reads (OrbitLab's install script reads the
            // file to place); empty when the caller gave none.
            let mut stdin = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut stdin)
                .context("cannot read standard input")?;
            ("exec", json!({ "argv": argv, "stdin": stdin }))
        }
        other => bail!("unsupported pct command {other:?} (the simulator knows push and exec)"),
    };
    let mut client = reqwest::blocking::Client::builder();
    if let Ok(ca) = std::env::var("ORBITLAB_SIM_CA") {
        let pem = std::fs::read(&ca).with_context(|| format!("cannot read {ca}"))?;
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let response = client
        .build()?
        .post(format!("{origin}/_sim/pct/{node}/{vmid}/{path}"))
        .json(&body)
        .send()
        .context("cannot reach the PVE simulator")?;
    if !response.status().is_success() {
        bail!("{}", response.text().unwrap_or_default());
    }
    if path != "exec" {
        return Ok(0);
    }
    let answer: crate::pve::pct::ExecAnswer = response
        .json()
        .context("the simulator's answer to exec is not {status, stdout}")?;
    use std::io::Write;
    let mut out = std::io::stdout();
    out.write_all(answer.stdout.as_bytes())?;
    out.flush()?;
    std::io::stderr().write_all(answer.stderr.as_bytes())?;
    Ok(u8::try_from(answer.status).unwrap_or(u8::MAX))
}
