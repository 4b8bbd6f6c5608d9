//! The local certificate authority of the proxy mode: created once in the data
//! directory (key readable by the owner only), constrained by X.509 name
//! constraints to the Twilio host names the proxy serves, and issuing a leaf
//! certificate per requested host on the fly.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

use super::names;

const DIR: &str = "proxy-ca";
const CERT: &str = "ca.pem";
const KEY: &str = "ca-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the proxy CA in {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("the proxy CA: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("the proxy's TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("no proxy CA yet in {0}: run `bulkexport ca init` (or `serve --proxy-listen`)")]
    Missing(String),
}

/// Where the CA certificate of `data_dir` is (whether or not it exists yet),
/// as an absolute path: clients read it from wherever they run.
pub fn cert_path(data_dir: &Path) -> PathBuf {
    let path = data_dir.join(DIR).join(CERT);
    std::path::absolute(&path).unwrap_or(path)
}

/// Creates the CA in `data_dir` unless it exists; returns the certificate's
/// path and whether it was created now. Concurrent creators are safe: each
/// writes a complete CA into its own directory and renames it into place; the
/// first rename wins and the others discard theirs.
pub fn init(data_dir: &Path) -> Result<(PathBuf, bool), Error> {
    let dir = data_dir.join(DIR);
    let io = |source| Error::Io {
        dir: dir.display().to_string(),
        source,
    };
    if dir.join(CERT).exists() && dir.join(KEY).exists() {
        return Ok((cert_path(data_dir), false));
    }
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let staging = data_dir.join(format!(".{DIR}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    create_private_dir(&staging).map_err(io)?;
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?;
    write_private(&staging.join(KEY), key.serialize_pem().as_bytes()).map_err(io)?;
    std::fs::write(staging.join(CERT), cert.pem()).map_err(io)?;
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok((cert_path(data_dir), true)),
        Err(_) if dir.join(CERT).exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok((cert_path(data_dir), false))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(io(e))
        }
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(path)
    }
    #[cfg(not(unix))]
    std::fs::create_dir(path)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The CA's parameters: a CA for server certificates only, valid ten years,
/// whose name constraints permit exactly the host names the proxy accepts.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "bulkexport");
    dn.push(
        DnType::CommonName,
        "bulkexport local proxy CA (Twilio API hosts only)",
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: names::all()
            .into_iter()
            .map(GeneralSubtree::DnsName)
            .collect(),
        excluded_subtrees: Vec::new(),
    });
    set_validity(&mut params, 3650);
    params
}

/// Valid from yesterday (clock skew) for `days` days. Clients check
/// certificates against their own real time, so this reads the system clock,
/// never a service clock moved forward with `--clock`.
fn set_validity(params: &mut CertificateParams, days: i64) {
    use chrono::Datelike;
    let at = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = crate::clock::Clock::system().now().date_naive();
    params.not_before = at(today - chrono::Duration::days(1));
    params.not_after = at(today + chrono::Duration::days(days));
}

/// The loaded CA: issues (and caches) one TLS configuration per host.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    configs: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl Authority {
    /// Loads the CA of `data_dir`, creating it if missing.
    pub fn open(data_dir: &Path) -> Result<Authority, Error> {
        let (cert_file, _) = init(data_dir)?;
        let dir = data_dir.join(DIR);
        let io = |source| Error::Io {
            dir: dir.display().to_string(),
            source,
        };
        let key_pem = std::fs::read_to_string(dir.join(KEY)).map_err(io)?;
        let cert_pem = std::fs::read_to_string(&cert_file).map_err(io)?;
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Authority {
            issuer,
            configs: Mutex::new(HashMap::new()),
        })
    }

    /// The TLS server configuration for `host` (one of [`names::all`]).
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>, Error> {
        if let Some(config) = self.configs.lock().ok().and_then(|c| c.get(host).cloned()) {
            return Ok(config);
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![host.to_string()])?;
        params.subject_alt_names = vec![SanType::DnsName(host.try_into()?)];
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, 365);
        let cert = params.signed_by(&key, &self.issuer)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        if let Ok(mut configs) = self.configs.lock() {
            configs.insert(host.to_string(), config.clone());
        }
        Ok(config)
    }
}

/// Fails with [`Error::Missing`] when `data_dir` has no CA yet.
pub fn existing_cert(data_dir: &Path) -> Result<PathBuf, Error> {
    let path = cert_path(data_dir);
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::Missing(data_dir.display().to_string()))
    }
}
