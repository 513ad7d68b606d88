//! `orbitlab pki ...`: the internal certificate authority from the command
//! line — CAs, leaf certificates, revocation, CRLs, renewal.
//!
//! Every command is one of the API's PKI calls ([`PkiCall`], `/pki/...`),
//! run in this process on the store given by `--root` (records under
//! `orbitlab/pki/`, private keys in the vault; changes take the `pki`
//! cluster lock) or, with `--host`, by a node's agent. A new CA's key is
//! made and kept in the vault; `sign-csr` reads the CSR file here and
//! sends only the CSR. PEM documents (`--pem`, `--chain`, `crl`, `cert
//! key`) print as-is in text format; `cert key` prints a private key and
//! is the only command here that does.

use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::{ArgGroup, Args, Subcommand};
use orbitlab_engine::api::{CsrPem, MAX_CSR_BYTES, NewCa, PkiCall, Revocation, ca_request};
use orbitlab_engine::pki::{
    CaName, CertName, DnsName, LeafProfile, LeafRequest, Lifetime, RevocationReason, RevokeTarget,
};
use orbitlab_manifests::spec::CertificateRole;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::backend::Backend;
use crate::reply::Reply;

/// Examples under `orbitlab pki --help`.
pub const EXAMPLES: &str = "\
Examples:
  orbitlab pki ca create-root root --common-name 'OrbitLab Root CA'
  orbitlab pki ca create-intermediate sectors --parent root \\
      --permitted-dns orbitlab.internal
  orbitlab pki cert issue sectors web --dns web.orbitlab.internal --ip 10.0.0.5
  orbitlab pki cert issue sectors backup --client --dns backup.orbitlab.internal --days 90
  orbitlab pki cert sign-csr sectors db --csr db.csr
  orbitlab pki cert show sectors web
  orbitlab pki cert show sectors web --chain > web-chain.pem
  orbitlab pki cert key sectors web > web-key.pem
  orbitlab pki ca show root --pem > root.pem
  orbitlab pki revoke sectors --cert web --reason key-compromise
  orbitlab pki crl sectors > sectors.crl.pem
  orbitlab pki renew --within-days 30 --dry-run

Lifetimes default to 3650 days (root), 1825 (intermediate) and 397
(leaf); `--days` also takes `2y`. A certificate never outlives its CA.";

/// `orbitlab pki`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Certificate authorities: create-root, create-intermediate, list, show.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Leaf certificates: issue, sign-csr, list, show, key.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Revoke a certificate a CA issued (a leaf, an intermediate CA, or any
    /// serial) and re-sign the CA's CRL.
    Revoke(RevokeArgs),
    /// Print a CA's current certificate revocation list (PEM).
    Crl {
        /// The CA.
        ca: String,
    },
    /// Renew every certificate (CAs first) close to expiry, and re-sign
    /// CRLs past half their validity.
    Renew {
        /// Renew what has at most this many days left (or at most half its
        /// lifetime, when that is shorter).
        #[arg(long, default_value_t = 30, value_name = "DAYS")]
        within_days: u32,
        /// Only list what would be renewed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `orbitlab pki ca`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a self-signed root CA (its key goes to the vault).
    CreateRoot {
        /// CA name: lowercase letters, digits and `-`.
        name: String,
        #[command(flatten)]
        options: CaArgs,
    },
    /// Create an intermediate CA signed by another CA (path length 0
    /// unless --path-len says more).
    CreateIntermediate {
        /// CA name: lowercase letters, digits and `-`.
        name: String,
        /// The CA that signs it.
        #[arg(long, value_name = "CA")]
        parent: String,
        #[command(flatten)]
        options: CaArgs,
    },
    /// List the CAs (roots first).
    List,
    /// Show a CA: its certificate, chain, CRL and revocations.
    Show {
        /// The CA.
        name: String,
        /// Print only its certificate, PEM.
        #[arg(long)]
        pem: bool,
    },
}

/// Options of a new CA.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// Subject common name (default `OrbitLab <name> CA`).
    #[arg(long, value_name = "CN")]
    common_name: Option<String>,
    /// Validity in days from now (`3650`, `3650d` or `10y`).
    #[arg(long, value_name = "DAYS")]
    days: Option<String>,
    /// Limit the CA to certifying names at or below this DNS name (name
    /// constraint); repeat or separate with commas.
    #[arg(long, value_name = "DNS", value_delimiter = ',')]
    permitted_dns: Vec<String>,
    /// How many CAs may follow below it (0: it signs only leaves).
    #[arg(long, value_name = "N")]
    path_len: Option<u8>,
}

/// `orbitlab pki cert`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a certificate with a fresh key (kept in the vault).
    Issue {
        /// The issuing CA.
        ca: String,
        /// Certificate name: lowercase letters, digits and `-`.
        name: String,
        #[command(flatten)]
        leaf: LeafArgs,
    },
    /// Issue a certificate for the key in a certificate signing request
    /// (its signature is checked; the requester keeps the key). SANs come
    /// from --dns/--ip, or from the CSR when neither is given.
    SignCsr {
        /// The issuing CA.
        ca: String,
        /// Certificate name: lowercase letters, digits and `-`.
        name: String,
        /// The PKCS#10 request, PEM.
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        #[command(flatten)]
        leaf: LeafArgs,
    },
    /// List certificates, of one CA or all.
    List {
        /// Only this CA's certificates.
        #[arg(long, value_name = "CA")]
        ca: Option<String>,
    },
    /// Show a certificate: SANs, fingerprint, days left, its chain.
    Show {
        /// The issuing CA.
        ca: String,
        /// The certificate.
        name: String,
        /// Print only the certificate, PEM.
        #[arg(long, conflicts_with = "chain")]
        pem: bool,
        /// Print the certificate and the intermediate CAs above it, PEM
        /// (what a TLS server presents).
        #[arg(long)]
        chain: bool,
    },
    /// Print a certificate's private key (PKCS#8 PEM) to standard output.
    Key {
        /// The issuing CA.
        ca: String,
        /// The certificate.
        name: String,
    },
}

/// What a leaf certificate says.
#[derive(Debug, Args)]
pub struct LeafArgs {
    /// DNS subject alternative name; repeat or separate with commas.
    #[arg(long, value_name = "DNS", value_delimiter = ',')]
    dns: Vec<String>,
    /// IP subject alternative name; repeat or separate with commas.
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    ip: Vec<String>,
    /// Validity in days from now (`397`, `90d` or `1y`).
    #[arg(long, value_name = "DAYS")]
    days: Option<String>,
    /// A TLS client certificate (clientAuth) instead of a server one.
    #[arg(long)]
    client: bool,
}

/// `orbitlab pki revoke`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["cert", "child_ca", "serial"])))]
pub struct RevokeArgs {
    /// The CA that issued what is revoked.
    #[arg(value_name = "CA")]
    issuer: String,
    /// A leaf certificate of that CA, by name.
    #[arg(long, value_name = "NAME")]
    cert: Option<String>,
    /// An intermediate CA that CA signed, by name.
    #[arg(long = "ca", value_name = "NAME")]
    child_ca: Option<String>,
    /// Any certificate that CA issued, by serial (hex, colons optional).
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
    /// unspecified, key-compromise, ca-compromise, affiliation-changed,
    /// superseded or cessation-of-operation.
    #[arg(long, default_value = "unspecified", value_name = "REASON")]
    reason: String,
}

/// Runs `orbitlab pki ...` through `backend` (this process, or an agent
/// over HTTPS).
pub fn run(backend: &Backend, command: PkiCommand) -> Result<Reply> {
    match command {
        PkiCommand::Ca(command) => run_ca(backend, command),
        PkiCommand::Cert(command) => run_cert(backend, command),
        PkiCommand::Revoke(args) => {
            let ca: CaName = args.issuer.parse()?;
            let target = match (args.cert, args.child_ca, args.serial) {
                (Some(cert), _, _) => RevokeTarget::Cert(cert.parse()?),
                (_, Some(child), _) => RevokeTarget::Ca(child.parse()?),
                (_, _, Some(serial)) => RevokeTarget::Serial(serial),
                _ => bail!("say what to revoke: --cert NAME, --ca NAME or --serial HEX"),
            };
            let reason: RevocationReason = args.reason.parse()?;
            Reply::data(backend.pki(PkiCall::Revoke(ca, Revocation { target, reason }))?)
        }
        PkiCommand::Crl { ca } => {
            let answer = backend.pki(PkiCall::Crl(ca.parse()?))?;
            Ok(document(&answer, "crl", &["ca"]))
        }
        PkiCommand::Renew {
            within_days,
            dry_run: true,
        } => Reply::data(backend.pki(PkiCall::RenewalDue(within_days))?),
        PkiCommand::Renew { within_days, .. } => {
            let report = backend.pki(PkiCall::Renew(within_days))?;
            let failed = report["failed"].as_array().map_or(0, Vec::len);
            let reply = Reply::data(&report)?;
            Ok(if failed == 0 {
                reply
            } else {
                reply.fail(format!(
                    "{failed} certificate(s) could not be renewed; `failed` above says why (the others were renewed)"
                ))
            })
        }
    }
}

/// A text document `field` of `answer`, with the `meta` fields.
fn document(answer: &Value, field: &'static str, meta: &[&str]) -> Reply {
    let meta: serde_json::Map<String, Value> = meta
        .iter()
        .map(|k| ((*k).to_owned(), answer[*k].clone()))
        .collect();
    Reply::document(
        Value::Object(meta),
        field,
        answer[field].as_str().unwrap_or_default().as_bytes(),
        false,
    )
}

fn run_ca(backend: &Backend, command: CaCommand) -> Result<Reply> {
    match command {
        CaCommand::CreateRoot { name, options } => {
            let new = options.to_request(None)?;
            Reply::data(backend.pki(PkiCall::CreateCa(name.parse()?, new))?)
        }
        CaCommand::CreateIntermediate {
            name,
            parent,
            options,
        } => {
            let new = options.to_request(Some(parent.parse()?))?;
            Reply::data(backend.pki(PkiCall::CreateCa(name.parse()?, new))?)
        }
        CaCommand::List => Reply::data(backend.pki(PkiCall::ListCas)?),
        CaCommand::Show { name, pem: true } => {
            let answer = backend.pki(PkiCall::CaPem(name.parse()?))?;
            Ok(document(&answer, "pem", &["ca"]))
        }
        CaCommand::Show { name, .. } => Reply::data(backend.pki(PkiCall::ShowCa(name.parse()?))?),
    }
}

fn run_cert(backend: &Backend, command: CertCommand) -> Result<Reply> {
    match command {
        CertCommand::Issue { ca, name, leaf } => {
            let (ca, name): (CaName, CertName) = (ca.parse()?, name.parse()?);
            Reply::data(backend.pki(PkiCall::Issue(ca, name, leaf.to_request()?))?)
        }
        CertCommand::SignCsr {
            ca,
            name,
            csr,
            leaf,
        } => {
            let (ca, name): (CaName, CertName) = (ca.parse()?, name.parse()?);
            let request = leaf.to_request()?;
            let csr_pem = read_csr(&csr)?;
            let details = backend
                .pki(PkiCall::SignCsr(ca, name, request, csr_pem))
                .with_context(|| format!("CSR file {}", csr.display()))?;
            Reply::data(details)
        }
        CertCommand::List { ca } => {
            let ca: Option<CaName> = ca.map(|c| c.parse()).transpose()?;
            Reply::data(backend.pki(PkiCall::ListCerts(ca))?)
        }
        CertCommand::Show {
            ca,
            name,
            pem,
            chain,
        } => {
            let (ca, name): (CaName, CertName) = (ca.parse()?, name.parse()?);
            let mut details = backend.pki(PkiCall::ShowCert(ca.clone(), name.clone()))?;
            let chain_pem = details
                .as_object_mut()
                .and_then(|d| d.remove("chain_pem"))
                .unwrap_or_default();
            let meta = json!({ "ca": ca, "name": name });
            if pem {
                Ok(Reply::document(
                    meta,
                    "pem",
                    details["info"]["pem"]
                        .as_str()
                        .unwrap_or_default()
                        .as_bytes(),
                    false,
                ))
            } else if chain {
                let chain = chain_pem.as_str().unwrap_or_default();
                Ok(Reply::document(meta, "chain", chain.as_bytes(), false))
            } else {
                Reply::data(details)
            }
        }
        CertCommand::Key { ca, name } => {
            let (ca, name): (CaName, CertName) = (ca.parse()?, name.parse()?);
            let mut answer = backend.pki(PkiCall::Key(ca, name))?;
            let encoded = match answer.get_mut("key").map(Value::take) {
                Some(Value::String(text)) => Zeroizing::new(text),
                _ => bail!("the answer holds no key"),
            };
            let key = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.as_bytes())
                    .context("the key in the answer is not base64")?,
            );
            Ok(Reply::document(
                json!({ "ca": answer["ca"], "name": answer["name"] }),
                "key",
                &key,
                false,
            ))
        }
    }
}

impl CaArgs {
    /// The CA to create, signed by `parent` (an intermediate) or not.
    fn to_request(&self, parent: Option<CaName>) -> Result<NewCa> {
        // The flags are checked one by one first, so an error names one.
        if let Some(days) = &self.days {
            days.parse::<Lifetime>().context("--days")?;
        }
        dns_names(&self.permitted_dns, "--permitted-dns")?;
        Ok(ca_request(
            parent,
            self.common_name.clone(),
            self.days.as_deref(),
            &self.permitted_dns,
            self.path_len,
        )?)
    }
}

impl LeafArgs {
    fn to_request(&self) -> Result<LeafRequest> {
        let (profile, role) = if self.client {
            (LeafProfile::Client, CertificateRole::Client)
        } else {
            (LeafProfile::Server, CertificateRole::Server)
        };
        let ips = self
            .ip
            .iter()
            .map(|ip| {
                ip.parse::<IpAddr>().map_err(|_| {
                    anyhow::anyhow!(
                        "--ip {ip:?} is not an IPv4 or IPv6 address (e.g. 10.0.0.5, fd00::5)"
                    )
                })
            })
            .collect::<Result<_>>()?;
        Ok(LeafRequest {
            profile,
            dns: dns_names(&self.dns, "--dns")?,
            ips,
            lifetime: lifetime(self.days.as_deref(), role)?,
        })
    }
}

/// `--days`, or the default lifetime of `role`.
fn lifetime(days: Option<&str>, role: CertificateRole) -> Result<Lifetime> {
    Ok(match days {
        Some(days) => days.parse().context("--days")?,
        None => Lifetime::days(role.default_lifetime_days())?,
    })
}

fn dns_names(names: &[String], flag: &str) -> Result<Vec<DnsName>> {
    names
        .iter()
        .map(|n| n.parse::<DnsName>().with_context(|| flag.to_owned()))
        .collect()
}

/// Reads a CSR file (at most [`MAX_CSR_BYTES`], UTF-8 text).
fn read_csr(path: &Path) -> Result<CsrPem> {
    let label = path.display();
    let file = File::open(path).with_context(|| format!("cannot open CSR file {label}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_CSR_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read CSR file {label}"))?;
    if bytes.len() > MAX_CSR_BYTES {
        bail!(
            "CSR file {label} is larger than {MAX_CSR_BYTES} bytes: it is not a certificate signing request (a PEM CSR is a few KiB at most); nothing was issued"
        );
    }
    CsrPem::new(bytes).map_err(|_| {
        anyhow::anyhow!(
            "CSR file {label} is not text: give a PEM-encoded PKCS#10 request (`-----BEGIN CERTIFICATE REQUEST-----`); nothing was issued"
        )
    })
}
