//! Secrets never reach logs, errors, `Debug` output or store files: run
//! every vault, PKI and SSH operation (and many failing ones) with all
//! logging captured, collect every error message, every `Debug` rendering
//! and every file of the store, and grep the lot for the plaintexts (raw,
//! hex and base64) and for the private keys. They must appear nowhere but
//! in what a decryption hands back.

mod files_support;

use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use base64::Engine;
use orbitlab_engine::pki::{
    CaName, CaOptions, CertName, LeafProfile, LeafRequest, Lifetime, Pki, RevocationReason,
    RevokeTarget,
};
use orbitlab_engine::ssh::{KeyName, KeySpec, SshKeys};
use orbitlab_engine::store::Store;
use orbitlab_engine::vault::{SecretPath, SecretValue, Vault, Version};

const SECRET_1: &str = "LEAKCHECK-first-value-5d1f8a2b";
const SECRET_2: &str = "LEAKCHECK-second-value-77c0e4";
const PASSPHRASE: &str = "LEAKCHECK-passphrase-a19b3c";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn p(s: &str) -> SecretPath {
    s.parse().unwrap()
}

fn v(s: &str) -> SecretValue {
    SecretValue::new(s.as_bytes().to_vec()).unwrap()
}

/// Forms a secret could leak in.
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        b64.encode(secret).into_bytes(),
        // Base64 of the secret at the other two alignments, without the
        // edge characters that depend on neighbours.
        b64.encode([&[0u8][..], secret].concat()).as_bytes()[4..].to_vec(),
        b64.encode([&[0u8, 0][..], secret].concat()).as_bytes()[4..].to_vec(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn plaintext_appears_nowhere_but_in_decryptions() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    let vault = Vault::new(store.clone());
    let pki = Pki::new(vault.clone());
    let ssh = SshKeys::new(vault.clone());
    let mut seen = Vec::<String>::new();
    let mut decrypted = Vec::<Vec<u8>>::new();
    macro_rules! note {
        ($e:expr) => {{
            let r = $e;
            match &r {
                Ok(value) => seen.push(format!("{value:?} {value:#?}")),
                Err(err) => seen.push(format!("{err} {err:?} {err:#?}")),
            }
            r
        }};
    }

    // Vault: every operation, successes and failures.
    let app = p("app/db/password");
    note!(vault.set(&app, &v(SECRET_1))).unwrap();
    note!(vault.set(&app, &v(SECRET_2))).unwrap();
    let got = note!(vault.get(&app)).unwrap();
    decrypted.push(got.value.expose().to_vec());
    let old = note!(vault.get_version(&app, Version::FIRST)).unwrap();
    decrypted.push(old.value.expose().to_vec());
    note!(vault.versions(&app)).unwrap();
    note!(vault.list(None)).unwrap();
    note!(vault.rollback(&app, Version::FIRST)).unwrap();
    note!(vault.rotate_kek()).unwrap();
    note!(vault.prune(&app, NonZeroUsize::new(3).unwrap())).unwrap();
    note!(vault.status()).unwrap();
    note!(vault.get_version(&app, Version::new(99).unwrap())).unwrap_err();
    note!(vault.get(&p("missing"))).unwrap_err();
    note!(SecretValue::read_from(&b""[..], "stdin")).unwrap_err();
    note!(SecretValue::read_from(&vec![b'x'; 70_000][..], "stdin")).unwrap_err();
    note!("a/../b".parse::<SecretPath>()).unwrap_err();
    seen.push(format!("{vault:?} {:?}", v(SECRET_1)));

    // Damage: a flipped byte, a swapped file, a foreign keyring.
    vault.set(&p("other"), &v(SECRET_1)).unwrap();
    let files: Vec<_> = files_support::all_files(&dir.path().join("priv/orbitlab/vault/secrets"));
    for (file, bytes) in &files {
        // One character of the encrypted data changed to another of the
        // same alphabet (hex and base64 both stay valid): only the
        // integrity check can notice.
        let mut flipped = bytes.clone();
        let data = flipped
            .windows(8)
            .position(|w| w == b"\"data\":\"")
            .expect("a version's data");
        let at = data + 8 + 4;
        flipped[at] = match flipped[at] {
            b'9' => b'8',
            b'f' => b'e',
            b'F' => b'E',
            b'z' => b'y',
            b'Z' => b'Y',
            b'+' => b'/',
            b'/' => b'+',
            c if c.is_ascii_alphanumeric() => c + 1,
            c => panic!("unexpected byte {c} in the data"),
        };
        std::fs::write(file, &flipped).unwrap();
        note!(vault.get(&app)).ok();
        note!(vault.get(&p("other"))).ok();
        note!(vault.set(&app, &v(SECRET_2))).ok();
        std::fs::write(file, bytes).unwrap();
    }
    std::fs::write(&files[0].0, &files[1].1).unwrap();
    note!(vault.get(&app)).ok();
    note!(vault.get(&p("other"))).ok();
    std::fs::write(&files[0].0, &files[0].1).unwrap();
    let keyring = dir.path().join("priv/orbitlab/vault/keyring.json");
    let own = std::fs::read(&keyring).unwrap();
    std::fs::remove_file(&keyring).unwrap();
    note!(vault.get(&app)).unwrap_err();
    note!(vault.set(&p("new"), &v(SECRET_2))).unwrap_err();
    std::fs::write(&keyring, &own).unwrap();

    // PKI: keys go to the vault only.
    let root: CaName = "root".parse().unwrap();
    let opts = CaOptions {
        common_name: None,
        lifetime: Lifetime::days(30).unwrap(),
        permitted_dns: Vec::new(),
        path_len: None,
    };
    note!(pki.create_root(&root, &opts)).unwrap();
    let web: CertName = "web".parse().unwrap();
    let req = LeafRequest {
        profile: LeafProfile::Server,
        dns: vec!["web.example".parse().unwrap()],
        ips: Vec::new(),
        lifetime: Lifetime::days(5).unwrap(),
    };
    note!(pki.issue(&root, &web, &req)).unwrap();
    note!(pki.revoke(
        &root,
        &RevokeTarget::Cert(web.clone()),
        RevocationReason::Superseded
    ))
    .unwrap();
    note!(pki.show_ca(&root)).unwrap();
    note!(pki.show_cert(&root, &web)).unwrap();
    note!(pki.renew_due(3650)).unwrap();
    note!(pki.sign_csr(&root, &"x".parse().unwrap(), "garbage", &req)).unwrap_err();
    seen.push(format!("{pki:?}"));
    let leaf_key = pki.cert_key(&root, &web).unwrap();
    let ca_key = vault.get(&p("pki/root/key")).unwrap().value;

    // SSH: a passphrase-protected key, rotated.
    let deploy: KeyName = "deploy".parse().unwrap();
    let spec = KeySpec {
        passphrase: Some(v(PASSPHRASE)),
        ..KeySpec::default()
    };
    note!(ssh.generate(&deploy, &spec)).unwrap();
    note!(ssh.rotate(&deploy, &spec)).unwrap();
    note!(ssh.rotate(&deploy, &spec)).unwrap_err();
    note!(ssh.list()).unwrap();
    seen.push(format!("{ssh:?} {spec:?}"));
    let ssh_key = ssh.private_key(&deploy).unwrap();

    drop(_log);
    let logs = captured.0.lock().unwrap().clone();
    let mut corpus: Vec<(String, Vec<u8>)> = files_support::all_files(dir.path());
    corpus.push(("captured logs".into(), logs.clone()));
    corpus.extend(
        seen.iter()
            .enumerate()
            .map(|(i, s)| (format!("captured output #{i}"), s.clone().into_bytes())),
    );

    // The grep is not vacuous: the corpus holds what we expect it to.
    let logs = String::from_utf8_lossy(&logs);
    assert!(
        logs.contains("secret version written") && logs.contains("app/db/password"),
        "{logs}"
    );
    assert!(
        seen.iter()
            .any(|s| s.contains("failed its integrity check"))
    );
    assert!(seen.iter().any(|s| s.contains("keyring")));
    assert!(decrypted.contains(&SECRET_1.as_bytes().to_vec()));
    assert!(decrypted.contains(&SECRET_2.as_bytes().to_vec()));

    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for secret in [SECRET_1, SECRET_2, PASSPHRASE] {
        for (i, e) in encodings(secret.as_bytes()).into_iter().enumerate() {
            needles.push((format!("{secret} (encoding {i})"), e));
        }
    }
    // A private key is recognised by any 64-character line of its PEM body.
    for (what, key) in [
        ("PKI leaf key", &leaf_key),
        ("CA key", &ca_key),
        ("SSH key", &ssh_key),
    ] {
        let text = key.expose_str().unwrap();
        for line in text
            .lines()
            .filter(|l| l.len() == 64 || (l.len() > 40 && !l.starts_with("-----")))
        {
            needles.push((what.to_owned(), line.as_bytes().to_vec()));
        }
    }
    assert!(needles.len() > 20);
    for (where_, hay) in &corpus {
        for (what, needle) in &needles {
            assert!(!contains(hay, needle), "{what} found in {where_}");
        }
    }
    println!(
        "searched {} files and captured outputs ({} bytes) for {} needles: none found",
        corpus.len(),
        corpus.iter().map(|(_, b)| b.len()).sum::<usize>(),
        needles.len()
    );
}
