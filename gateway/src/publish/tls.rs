//! TLS to the broker: the rustls client configuration built from
//! `[mqtt.tls]`, the checks `check-config` shares with the connection, and
//! plain-words explanations of handshake failures.
//!
//! Design: [`load`] reads every file and reports every problem at once,
//! each with the key path an installer must fix (`mqtt.tls.cert_file`);
//! validation and each connection attempt call it, so a certificate renewed
//! on disk is used at the next reconnect and a broken one is named at once.
//! The ring provider is named explicitly (no process-wide default), TLS 1.2
//! and 1.3 only, its cipher suites in the order this CPU runs fastest
//! ([`suites`]).
//!
//! One room: the connection and `check-config` must build the client configuration with the same
//! code, so a file that passes the check also connects.

mod suites;
pub use suites::{Preference, PREFER_ENV};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use crate::config::MqttTlsConfig;
use crate::event::rfc3339;

/// Something wrong with the TLS files or names; [`TlsError::key`] is the
/// configuration key to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        reason: String,
        /// What the OS said, so a refused file is told from a bad one.
        kind: std::io::ErrorKind,
    },
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate { key: &'static str, path: PathBuf },
    #[error("{}: a certificate cannot be parsed: {reason}", path.display())]
    BadCertificate {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{}: X.509 v1 certificate; add extensions to make it v3 (rustls refuses v1; see docs/broker.md)", path.display())]
    Version1 { key: &'static str, path: PathBuf },
    #[error("{}: the certificate expired at {at}; install a renewed one", path.display())]
    Expired {
        key: &'static str,
        path: PathBuf,
        at: String,
    },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC): {reason}", path.display())]
    NoKey { path: PathBuf, reason: String },
    #[error("the private key in {} does not belong to the certificate in {}", key_path.display(), cert_path.display())]
    Mismatch {
        cert_path: PathBuf,
        key_path: PathBuf,
    },
    #[error("the private key in {} cannot be used: {reason}", path.display())]
    UnusableKey { path: PathBuf, reason: String },
    #[error("cert_file and key_file go together: set both for mutual TLS, or neither")]
    HalfPair { key: &'static str },
    #[error("`{name}` is not a valid TLS server name (a DNS name or an IP address)")]
    ServerName { key: &'static str, name: String },
    #[error("{} is empty", path.display())]
    EmptyPassword { path: PathBuf },
    #[error("mqtt.tls.ca_file is not set and no usable system root certificate was found ({reason}); set ca_file to the broker's CA")]
    NoSystemRoots { reason: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

impl TlsError {
    /// The configuration key whose value is at fault.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. }
            | TlsError::NoCertificate { key, .. }
            | TlsError::BadCertificate { key, .. }
            | TlsError::Version1 { key, .. }
            | TlsError::Expired { key, .. }
            | TlsError::HalfPair { key }
            | TlsError::ServerName { key, .. } => key,
            TlsError::NoKey { .. } | TlsError::Mismatch { .. } | TlsError::UnusableKey { .. } => {
                KEY_FILE
            }
            TlsError::EmptyPassword { .. } => "mqtt.password_file",
            TlsError::NoSystemRoots { .. } => CA_FILE,
            TlsError::Setup(_) => "mqtt.tls",
        }
    }
}

const CA_FILE: &str = "mqtt.tls.ca_file";
const CERT_FILE: &str = "mqtt.tls.cert_file";
const KEY_FILE: &str = "mqtt.tls.key_file";

/// What a connection needs: the rustls configuration, and the client
/// certificate's expiry for the status message.
#[derive(Clone)]
pub struct Loaded {
    pub config: Arc<ClientConfig>,
    /// `notAfter` of the gateway's certificate, ms since the epoch; None
    /// without mutual TLS.
    pub client_cert_expires_ms: Option<i64>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("client_cert_expires_ms", &self.client_cert_expires_ms)
            .finish_non_exhaustive()
    }
}

/// Every problem `[mqtt.tls]` has at `now_ms`; empty if it can be used.
pub fn check(tls: &MqttTlsConfig, host: &str, now_ms: i64) -> Vec<TlsError> {
    load(tls, host, now_ms).err().unwrap_or_default()
}

/// Reads the files and builds the client configuration. The certificate's
/// `notBefore` is not checked: a Pi without a real-time clock may start in
/// 1970, and refusing a valid certificate then would only hide the clock
/// problem; an expired one is refused, it would be refused by the broker.
pub fn load(tls: &MqttTlsConfig, host: &str, now_ms: i64) -> Result<Loaded, Vec<TlsError>> {
    let mut errors = Vec::new();
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(ca_file) => match read_certs(ca_file, CA_FILE) {
            Ok(certs) => {
                for cert in certs {
                    if let Err(e) = roots.add(cert) {
                        errors.push(TlsError::BadCertificate {
                            key: CA_FILE,
                            path: ca_file.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
            Err(e) => errors.push(e),
        },
        None => match system_roots() {
            Ok(system) => roots = system,
            Err(e) => errors.push(e),
        },
    }
    let (name, name_key) = match &tls.server_name {
        Some(n) => (n.as_str(), "mqtt.tls.server_name"),
        None => (host, "mqtt.host"),
    };
    let server_name = match ServerName::try_from(name.to_string()) {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(TlsError::ServerName {
                key: name_key,
                name: name.to_string(),
            });
            None
        }
    };
    let mut client = None;
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert_path), Some(key_path)) => {
            let chain = read_certs(cert_path, CERT_FILE).and_then(|chain| {
                let not_after =
                    not_after_ms(&chain[0]).map_err(|reason| TlsError::BadCertificate {
                        key: CERT_FILE,
                        path: cert_path.clone(),
                        reason,
                    })?;
                if not_after < now_ms {
                    return Err(TlsError::Expired {
                        key: CERT_FILE,
                        path: cert_path.clone(),
                        at: rfc3339(not_after),
                    });
                }
                Ok((chain, not_after))
            });
            let key = read_key(key_path);
            match (chain, key) {
                (Ok(c), Ok(k)) => client = Some((c, k, cert_path, key_path)),
                (c, k) => errors.extend(c.err().into_iter().chain(k.err())),
            }
        }
        (Some(_), None) => errors.push(TlsError::HalfPair { key: KEY_FILE }),
        (None, Some(_)) => errors.push(TlsError::HalfPair { key: CERT_FILE }),
        (None, None) => {}
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(server_name) = server_name else {
        return Err(errors);
    };
    build(
        roots,
        tls.server_name.is_some().then_some(server_name),
        client,
        Preference::for_this_machine(),
    )
    .map_err(|e| vec![e])
}

/// The operating system's trust store (on Debian the ca-certificates
/// bundle; `SSL_CERT_FILE` / `SSL_CERT_DIR` override it), with the
/// certificates rustls cannot use left out. An error when none is usable.
fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let reason = match found.errors.first() {
            Some(e) => e.to_string(),
            None => "the system trust store is empty".to_string(),
        };
        return Err(TlsError::NoSystemRoots { reason });
    }
    Ok(roots)
}

/// Which certificates the broker is verified against, in words, for
/// `check-config`.
pub fn trust_summary(tls: &MqttTlsConfig) -> String {
    match &tls.ca_file {
        Some(ca) => format!(
            "the CA certificate(s) in {} (mqtt.tls.ca_file)",
            ca.display()
        ),
        None => match system_roots() {
            Ok(roots) => format!(
                "the system's root certificates ({} found; mqtt.tls.ca_file is not set)",
                roots.len()
            ),
            Err(e) => e.to_string(),
        },
    }
}

type ClientPair<'a> = (
    (Vec<CertificateDer<'static>>, i64),
    PrivateKeyDer<'static>,
    &'a PathBuf,
    &'a PathBuf,
);

fn build(
    roots: RootCertStore,
    pinned_name: Option<ServerName<'static>>,
    client: Option<ClientPair<'_>>,
    prefer: Preference,
) -> Result<Loaded, TlsError> {
    tracing::debug!(?prefer, "TLS cipher suites offered first");
    let provider = Arc::new(suites::provider(prefer));
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match pinned_name {
        Some(name) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedName {
                inner: verifier,
                name,
            })),
        None => builder.with_webpki_verifier(verifier),
    };
    let (config, expires) = match client {
        None => (builder.with_no_client_auth(), None),
        Some(((chain, not_after), key, cert_path, key_path)) => {
            let config = builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                        TlsError::Mismatch {
                            cert_path: cert_path.clone(),
                            key_path: key_path.clone(),
                        }
                    }
                    other => TlsError::UnusableKey {
                        path: key_path.clone(),
                        reason: other.to_string(),
                    },
                })?;
            (config, Some(not_after))
        }
    };
    Ok(Loaded {
        config: Arc::new(config),
        client_cert_expires_ms: expires,
    })
}

fn read_certs(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            key,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            key,
            path: path.to_path_buf(),
        });
    }
    // rustls would refuse a v1 leaf later with a message that blames the
    // key file; `openssl x509 -req` without extensions makes v1. A CA
    // bundle may hold an old v1 root beside usable ones: only a file of v1
    // certificates alone is refused.
    let v1 = if key == CERT_FILE {
        is_version_1(&certs[0])
    } else {
        certs.iter().all(is_version_1)
    };
    if v1 {
        return Err(TlsError::Version1 {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Whether a DER certificate is X.509 v1 (no extensions possible).
fn is_version_1(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .is_ok_and(|(_, c)| c.version() == x509_parser::x509::X509Version::V1)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, KEY_FILE)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::NoKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    crate::config::read_bounded(path, crate::config::MAX_FILE_SIZE).map_err(|e| TlsError::Read {
        key,
        path: path.to_path_buf(),
        reason: e.to_string(),
        kind: e.kind(),
    })
}

/// The MQTT password from its file, without the trailing newline editors add.
pub fn read_password(path: &Path) -> Result<String, TlsError> {
    let bytes = read(path, "mqtt.password_file")?;
    let text = String::from_utf8(bytes).map_err(|e| TlsError::Read {
        key: "mqtt.password_file",
        path: path.to_path_buf(),
        reason: e.to_string(),
        kind: std::io::ErrorKind::InvalidData,
    })?;
    let password = text.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(TlsError::EmptyPassword {
            path: path.to_path_buf(),
        });
    }
    Ok(password)
}

/// `notAfter` of a DER certificate, ms since the epoch.
pub fn not_after_ms(cert: &CertificateDer<'_>) -> Result<i64, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(parsed.validity().not_after.timestamp().saturating_mul(1000))
}

/// Verifies the broker's certificate against a configured name instead of
/// the host connected to (rumqttc always passes the host), for brokers
/// reached by an address their certificate does not name.
#[derive(Debug)]
struct PinnedName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for PinnedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A connection error in words an installer can act on, naming the key to
/// look at when the TLS handshake failed for a known reason.
pub fn explain(
    error: &rumqttc::ConnectionError,
    tls: Option<&MqttTlsConfig>,
    host: &str,
) -> String {
    let rustls_error = rustls_cause(error);
    let (Some(e), Some(tls)) = (rustls_error, tls) else {
        return error.to_string();
    };
    explain_rustls(e, tls, host)
}

/// A TLS failure in words, naming the key to look at (shared by the
/// publisher and `coldgate uplink --test`).
pub fn explain_rustls(e: &rustls::Error, tls: &MqttTlsConfig, host: &str) -> String {
    if let Some(clock) = crate::clock::tls_clock_warning() {
        tracing::warn!(
            clock,
            tls_error = %e,
            "Clock not synchronised; TLS certificate validity cannot be checked. The TLS error below may be the clock's, not the certificate's."
        );
    }
    let name = tls.server_name.as_deref().unwrap_or(host);
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => match &tls.ca_file {
                Some(ca) => format!(
                    "the broker's certificate is not signed by a CA in {} (mqtt.tls.ca_file): {e}",
                    ca.display()
                ),
                None => format!(
                    "the broker's certificate is not signed by a CA among the system's roots (mqtt.tls.ca_file is not set; set it for a private CA): {e}"
                ),
            },
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the broker's certificate is not valid for the name `{name}` (mqtt.tls.server_name, default mqtt.host): {e}"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the broker's certificate has expired: {e}")
            }
            CertificateError::Other(other) if format!("{other:?}").contains("UnsupportedCertVersion") => {
                "the broker's certificate is an X.509 v1 certificate; add extensions to make it v3 (see docs/broker.md)".to_string()
            }
            _ => format!("the broker's certificate was refused: {e}"),
        },
        rustls::Error::AlertReceived(
            alert @ (rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::CertificateUnknown),
        ) => format!(
            "the broker ended the TLS handshake ({alert:?}): it does not accept this gateway's certificate (mqtt.tls.cert_file): it is not signed by a CA the broker trusts (mosquitto's cafile)"
        ),
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
            "the broker wants a client certificate: set mqtt.tls.cert_file and mqtt.tls.key_file".to_string()
        }
        rustls::Error::AlertReceived(alert) => format!(
            "the broker ended the TLS handshake ({alert:?}): it may not accept this gateway's certificate (mqtt.tls.cert_file) or its CA"
        ),
        other => format!("TLS: {other}"),
    }
}

/// The rustls error under a connection error, however rumqttc wrapped it
/// (handshake failures come as TLS I/O errors, an alert after the handshake
/// as a read error of the MQTT state).
pub(crate) fn rustls_cause(error: &rumqttc::ConnectionError) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        cause = e.source();
    }
    None
}
