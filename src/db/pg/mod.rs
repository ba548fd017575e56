//! PostgreSQL, the way in and the way out (`articles import --from-postgres`, `export
//! postgres`): the connection with TLS as libpq's `sslmode` means it, the source query
//! read as rows, and the mirror schema written and verified. The only other SQL dialect
//! in the tree lives here, beside SQLite's, so that `db/` stays the one room with SQL.
//!
//! TLS (`sslmode` in the URL, as libpq): `disable`; `prefer` (the default: TLS when the
//! server offers it, unverified); `require` (TLS, the certificate not checked, as libpq
//! without a root certificate); `verify-ca` (the chain checked against the system's CA
//! store, or `sslrootcert=PATH`); `verify-full` (the chain and the host name). rustls with
//! the aws-lc-rs provider the rest of the binary already uses; the system store through
//! `rustls-native-certs` (which honours `SSL_CERT_FILE`).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};

pub mod export;
mod rows;
pub mod source;
mod tables;

pub use tokio_postgres::Client;

/// Why a PostgreSQL step failed, in one line an operator can act on (never the password).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("PostgreSQL: {0}")]
    Query(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] super::DbError),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Query(describe(&e))
    }
}

/// A PostgreSQL error as one line: the server's message (and its detail) when there is
/// one, else the client's.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = db.message().to_string();
        if let Some(d) = db.detail() {
            s.push_str(" (");
            s.push_str(d);
            s.push(')');
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// How to find the password when the URL has none.
#[derive(Debug, Clone, Default)]
pub struct Password {
    /// A file holding it (its first line), e.g. a systemd credential.
    pub file: Option<std::path::PathBuf>,
    /// Read `PGPASSWORD` (libpq's variable) when neither the URL nor a file gives one.
    pub from_env: bool,
}

/// What `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A parsed `postgres://` URL: the client's config, the TLS wish and a printable name.
pub struct Target {
    config: tokio_postgres::Config,
    tls: Tls,
    root_cert: Option<std::path::PathBuf>,
}

impl Target {
    /// Parse `url` (`postgres://` or `postgresql://`), taking `sslmode` (all five of
    /// libpq's secure ones) and `sslrootcert` out before the client sees it.
    pub fn parse(url: &str, password: &Password) -> Result<Target, PgError> {
        let bad = |why: &str| PgError::Url(format!("the PostgreSQL URL is not valid: {why}"));
        let mut parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad("it must start with postgres:// or postgresql://"));
        }
        let mut tls = Tls::Prefer;
        let mut root_cert = None;
        let mut kept: Vec<(String, String)> = Vec::new();
        for (k, v) in parsed.query_pairs() {
            match &*k {
                "sslmode" => {
                    tls = match &*v {
                        "disable" => Tls::Disable,
                        "allow" | "prefer" => Tls::Prefer,
                        "require" => Tls::Require,
                        "verify-ca" => Tls::VerifyCa,
                        "verify-full" => Tls::VerifyFull,
                        other => {
                            return Err(bad(&format!(
                                "sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                            )));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(std::path::PathBuf::from(&*v)),
                _ => kept.push((k.into_owned(), v.into_owned())),
            }
        }
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        let mut config: tokio_postgres::Config = parsed
            .as_str()
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(&describe(&e)))?;
        config.ssl_mode(match tls {
            Tls::Disable => SslMode::Disable,
            Tls::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("appliance");
        if config.get_password().is_none() {
            if let Some(file) = &password.file {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    PgError::Invalid(format!(
                        "cannot read the password file {}: {e}",
                        file.display()
                    ))
                })?;
                config.password(text.lines().next().unwrap_or("").as_bytes());
            } else if password.from_env
                && let Ok(p) = std::env::var("PGPASSWORD")
            {
                config.password(p.as_bytes());
            }
        }
        Ok(Target {
            config,
            tls,
            root_cert,
        })
    }

    /// `user@host:port/dbname`, for messages (no password, ever).
    pub fn display(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().unwrap_or("?");
        let db = self.config.get_dbname().unwrap_or(user);
        format!("{user}@{host}:{port}/{db}")
    }

    /// Connect; the connection's task runs on the current runtime until the client is
    /// dropped.
    pub async fn connect(&self) -> Result<Client, PgError> {
        let fail = |reason: String| PgError::Connect {
            target: self.display(),
            reason,
        };
        let client = if self.tls == Tls::Disable {
            let (client, conn) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| fail(describe(&e)))?;
            spawn(conn);
            client
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.rustls().map_err(fail)?);
            let (client, conn) = self
                .config
                .connect(tls)
                .await
                .map_err(|e| fail(describe(&e)))?;
            spawn(conn);
            client
        };
        // Times travel as text in UTC, whatever the server's default.
        client
            .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
            .await?;
        Ok(client)
    }

    fn rustls(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        if matches!(self.tls, Tls::Prefer | Tls::Require) {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth());
        }
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                use rustls::pki_types::pem::PemObject;
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("cannot read sslrootcert {}: {e}", path.display()))?;
                roots.add_parsable_certificates(certs);
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err("no CA certificates found to verify the server with (install ca-certificates, or give sslrootcert=PATH)".into());
        }
        let webpki =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.tls == Tls::VerifyCa {
            Arc::new(ChainOnly(webpki))
        } else {
            webpki
        };
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }
}

fn spawn<T>(conn: T)
where
    T: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %describe(&e), "PostgreSQL connection ended");
        }
    });
}

/// `sslmode=require` as libpq means it: encrypted, the certificate not checked (the
/// handshake's signatures still are).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
