//! `owtctl cert`: the certificate owt-portal serves HTTPS (and later secure Socket.IO) with.
//! Certificates are kept as PEM: certificate.pem (with chain) and key.pem (mode 0600, owned
//! by the service user). An imported PFX or encrypted key is decrypted once at import, so no
//! passphrase is ever stored anywhere.

use crate::init::give_to_directory_owner;
use crate::{Failure, Global};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use owt_config::PortalConfig;
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Generate a self-signed certificate (RSA 2048, SHA-256).
    Generate {
        /// Names and addresses the certificate is for (repeatable); default: this host's
        /// name, localhost, 127.0.0.1 and ::1.
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Replace an existing certificate.
        #[arg(long)]
        force: bool,
    },
    /// Import a PFX/PKCS#12 file, or a PEM certificate (chain) with its key.
    Import {
        /// .pfx/.p12 file, or PEM certificate file.
        file: PathBuf,
        /// PEM private key file (when FILE is PEM and holds no key).
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Read the passphrase from this file (first line).
        #[arg(long, value_name = "FILE", conflicts_with = "passphrase_stdin")]
        passphrase_file: Option<PathBuf>,
        /// Read the passphrase from standard input (first line).
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Show the installed certificate.
    Show,
}

fn other(context: impl std::fmt::Display) -> impl Fn(openssl::error::ErrorStack) -> Failure {
    move |e| Failure::Other(format!("{context}: {e}"))
}

pub fn default_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" {
            names.insert(0, host.to_string());
        }
    }
    names
}

fn build_self_signed(names: &[String], days: u32) -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", &names[0])?;
    name.append_entry_by_text("O", "owt-rs")?;
    let name = name.build();
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(days)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(KeyUsage::new().critical().digital_signature().key_encipherment().build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut san = SubjectAlternativeName::new();
    for entry in names {
        if entry.parse::<std::net::IpAddr>().is_ok() {
            san.ip(entry);
        } else {
            san.dns(entry);
        }
    }
    let san = san.build(&builder.x509v3_context(None, None))?;
    builder.append_extension(san)?;
    builder.sign(&key, MessageDigest::sha256())?;
    Ok((builder.build(), key))
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::Other(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).map_err(fail)?;
    file.write_all(data).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Writes certificate (chain) and key where portal.toml says, giving them to the owner of
/// the state directory.
fn install(config: &PortalConfig, chain: &[X509], key: &PKey<Private>) -> Result<(), Failure> {
    let cert_path = config.certificate_path();
    let key_path = config.key_path();
    let dir = cert_path.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|e| Failure::Other(format!("{}: {e}", dir.display())))?;
    }
    let mut pem = Vec::new();
    for cert in chain {
        pem.extend(cert.to_pem().map_err(other("certificate"))?);
    }
    write_file(&key_path, &key.private_key_to_pem_pkcs8().map_err(other("key"))?, 0o600)?;
    write_file(&cert_path, &pem, 0o644)?;
    give_to_directory_owner(&config.state.dir, &[dir, &cert_path, &key_path])
}

pub fn generate(config: &PortalConfig, names: &[String], days: u32) -> Result<(), Failure> {
    let (cert, key) = build_self_signed(names, days).map_err(other("generating certificate"))?;
    install(config, &[cert], &key)
}

fn read_passphrase(file: &Option<PathBuf>, stdin: bool) -> Result<Option<String>, Failure> {
    let text = if let Some(path) = file {
        std::fs::read_to_string(path).map_err(|e| Failure::Other(format!("{}: {e}", path.display())))?
    } else if stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| Failure::Other(format!("stdin: {e}")))?;
        text
    } else if let Ok(text) = std::env::var("OWT_CERT_PASSPHRASE") {
        text
    } else {
        return Ok(None);
    };
    Ok(Some(text.lines().next().unwrap_or("").to_string()))
}

fn import(
    config: &PortalConfig,
    file: &Path,
    key_file: Option<&Path>,
    passphrase: Option<String>,
) -> Result<(Vec<X509>, PKey<Private>), Failure> {
    let data = std::fs::read(file).map_err(|e| Failure::Other(format!("{}: {e}", file.display())))?;
    let _ = config;
    if !data.starts_with(b"-----") {
        let pkcs12 = openssl::pkcs12::Pkcs12::from_der(&data)
            .map_err(|e| Failure::Invalid(format!("{}: neither PEM nor PKCS#12: {e}", file.display())))?;
        let parsed = pkcs12
            .parse2(passphrase.as_deref().unwrap_or(""))
            .map_err(|_| Failure::Invalid(format!("{}: cannot decrypt (wrong passphrase?)", file.display())))?;
        let cert = parsed.cert.ok_or_else(|| Failure::Invalid(format!("{}: holds no certificate", file.display())))?;
        let key = parsed.pkey.ok_or_else(|| Failure::Invalid(format!("{}: holds no private key", file.display())))?;
        let mut chain = vec![cert];
        chain.extend(parsed.ca.into_iter().flatten());
        return Ok((chain, key));
    }
    let chain = X509::stack_from_pem(&data).map_err(|e| Failure::Invalid(format!("{}: {e}", file.display())))?;
    if chain.is_empty() {
        return Err(Failure::Invalid(format!("{}: holds no certificate", file.display())));
    }
    let key_data = match key_file {
        Some(path) => std::fs::read(path).map_err(|e| Failure::Other(format!("{}: {e}", path.display())))?,
        None => data.clone(),
    };
    let key_name = key_file.unwrap_or(file).display().to_string();
    let key = match &passphrase {
        Some(pass) => PKey::private_key_from_pem_passphrase(&key_data, pass.as_bytes()),
        None => PKey::private_key_from_pem(&key_data),
    }
    .map_err(|_| Failure::Invalid(format!("{key_name}: no readable private key (encrypted? give its passphrase)")))?;
    Ok((chain, key))
}

fn describe(path: &Path) -> Result<serde_json::Value, Failure> {
    let pem = std::fs::read(path).map_err(|e| Failure::NotFound(format!("{}: {e}", path.display())))?;
    let cert = X509::from_pem(&pem).map_err(|e| Failure::Invalid(format!("{}: {e}", path.display())))?;
    let name_text = |name: &openssl::x509::X509NameRef| {
        name.entries()
            .map(|e| {
                format!("{}={}", e.object().nid().short_name().unwrap_or("?"), e.data().to_string().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names: Vec<String> = cert
        .subject_alt_names()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            n.dnsname().map(str::to_owned).or_else(|| {
                n.ipaddress().and_then(|ip| match ip.len() {
                    4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?).to_string()),
                    16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?).to_string()),
                    _ => None,
                })
            })
        })
        .collect();
    let fingerprint = cert.digest(MessageDigest::sha256()).map_err(other("digest"))?;
    let key = cert.public_key().map_err(other("public key"))?;
    Ok(json!({
        "path": path.display().to_string(),
        "subject": name_text(cert.subject_name()),
        "issuer": name_text(cert.issuer_name()),
        "names": names,
        "notBefore": cert.not_before().to_string(),
        "notAfter": cert.not_after().to_string(),
        "keyBits": key.bits(),
        "sha256": fingerprint.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"),
    }))
}

pub fn run(global: &Global, command: &CertCommand) -> Result<(), Failure> {
    let config = global.portal_config()?;
    let cert_path = config.certificate_path();
    match command {
        CertCommand::Generate { names, days, force } => {
            if cert_path.exists() && !force {
                return Err(Failure::Invalid(format!("{} exists; use --force to replace it", cert_path.display())));
            }
            if *days == 0 {
                return Err(Failure::Invalid("--days must be at least 1".into()));
            }
            let names = if names.is_empty() { default_names() } else { names.clone() };
            generate(&config, &names, *days)?;
        }
        CertCommand::Import { file, key, passphrase_file, passphrase_stdin } => {
            let passphrase = read_passphrase(passphrase_file, *passphrase_stdin)?;
            let (chain, private_key) = import(&config, file, key.as_deref(), passphrase)?;
            let public = chain[0].public_key().map_err(other("certificate"))?;
            if !public.public_eq(&private_key) {
                return Err(Failure::Invalid("the private key does not belong to the certificate".into()));
            }
            install(&config, &chain, &private_key)?;
        }
        CertCommand::Show => {}
    }
    let info = describe(&cert_path)?;
    if global.json {
        println!("{info}");
    } else {
        for (field, value) in info.as_object().into_iter().flatten() {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => {
                    items.iter().map(|i| i.as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join(", ")
                }
                other => other.to_string(),
            };
            println!("{field:<10} {value}");
        }
    }
    Ok(())
}
