//! How [`super::Store`] reaches PostgreSQL: libpq's `sslmode` and `sslrootcert`, TLS by rustls.
//!
//! | `sslmode` | TLS | certificate check |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers it, else plain | none (as libpq: encryption only) |
//! | `require`, `verify-ca` | always; a server without TLS is refused | chain to `sslrootcert`, else the system roots; host name not checked (libpq's `require` with a root certificate, and `verify-ca`) |
//! | `verify-full` | always | chain as `require`, and the server's name (the URL's host) must be in the certificate |
//!
//! `sslmode` and `sslrootcert` are taken from the connection string (URL query parameters or
//! `key=value` words, as libpq reads them) and removed from it before the `postgres` crate parses
//! the rest; when the string names neither, the `database.sslmode` / `database.sslrootcert`
//! settings apply. `sslrootcert=system` names the system roots explicitly (libpq 16).
//!
//! The system roots are the operating system's trust store (`rustls-native-certs`: on Linux the
//! OpenSSL CA bundle paths, honouring `SSL_CERT_FILE`/`SSL_CERT_DIR`), so an internal CA the
//! administrators installed there is trusted. rustls runs on the `ring` provider.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode` values this build understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (no certificate check), else plain.
    Prefer,
    /// TLS, certificate chain verified (against `sslrootcert` or the system roots).
    Require,
    /// libpq's name for the chain check without the host name: the same as [`SslMode::Require`].
    VerifyCa,
    /// TLS, chain and host name verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The values [`SslMode::from_str`] accepts, for error messages.
pub const SSLMODE_VALUES: &str = "disable, prefer, require, verify-ca or verify-full";

impl FromStr for SslMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "disable" => Ok(SslMode::Disable),
            "prefer" => Ok(SslMode::Prefer),
            "require" => Ok(SslMode::Require),
            "verify-ca" => Ok(SslMode::VerifyCa),
            "verify-full" => Ok(SslMode::VerifyFull),
            "allow" => Err(format!(
                "sslmode \"allow\" is not supported (use prefer, or disable on a trusted network); expected {SSLMODE_VALUES}"
            )),
            other => Err(format!(
                "unknown sslmode {other:?}; expected {SSLMODE_VALUES}"
            )),
        }
    }
}

/// `sslmode`/`sslrootcert` found in (and removed from) a connection string.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TlsParams {
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
    /// The connection string without them, for `postgres::Config::from_str`.
    pub rest: String,
}

/// Splits `sslmode` and `sslrootcert` off a libpq connection string (URL or `key=value` form).
pub(super) fn split_tls_params(conninfo: &str) -> Result<TlsParams, String> {
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        Ok(split_url(conninfo))
    } else {
        split_key_value(conninfo)
    }
}

fn split_url(url: &str) -> TlsParams {
    let mut params = TlsParams::default();
    let Some((base, query)) = url.split_once('?') else {
        params.rest = url.to_string();
        return params;
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        match key {
            "sslmode" => params.sslmode = Some(decoded()),
            "sslrootcert" => params.sslrootcert = Some(decoded()),
            _ => kept.push(pair),
        }
    }
    params.rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    params
}

/// `key = value` words; a value may be single-quoted with `\'` and `\\` escapes (libpq's rules).
fn split_key_value(conninfo: &str) -> Result<TlsParams, String> {
    let mut params = TlsParams::default();
    let mut kept: Vec<&str> = Vec::new();
    let bytes = conninfo.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &conninfo[start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(format!(
                "invalid connection string: missing \"=\" after {key:?}"
            ));
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            let mut closed = false;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if i + 1 < bytes.len() => {
                        value.push(char::from(bytes[i + 1]));
                        i += 2;
                    }
                    b'\'' => {
                        i += 1;
                        closed = true;
                        break;
                    }
                    _ => {
                        let ch = conninfo[i..].chars().next().unwrap_or_default();
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            if !closed {
                return Err("invalid connection string: unterminated quoted value".into());
            }
        } else {
            let value_start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&conninfo[value_start..i]);
        }
        match key {
            "sslmode" => params.sslmode = Some(value),
            "sslrootcert" => params.sslrootcert = Some(value),
            _ => kept.push(&conninfo[start..i]),
        }
    }
    params.rest = kept.join(" ");
    Ok(params)
}

/// The rustls client configuration for `mode` (`None` for [`SslMode::Disable`]).
///
/// # Errors
/// A message for the operator: `sslrootcert` unreadable or without certificates, no system root
/// certificates.
pub(super) fn client_config(
    mode: SslMode,
    sslrootcert: Option<&Path>,
) -> Result<Option<rustls::ClientConfig>, String> {
    let roots = match mode {
        SslMode::Disable => return Ok(None),
        SslMode::Prefer => None,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            Some(Arc::new(root_store(sslrootcert)?))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Verifier {
        roots,
        check_name: mode == SslMode::VerifyFull,
        provider: Arc::clone(&provider),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS set-up: {error}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Some(config))
}

/// Trust anchors: the PEM file `sslrootcert` (`system` or absent: the system roots).
fn root_store(sslrootcert: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = sslrootcert.filter(|path| *path != Path::new("system")) {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|error| {
                format!(
                    "sslrootcert {}: cannot read PEM certificates: {error}",
                    path.display()
                )
            })?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "sslrootcert {}: no usable CA certificate in the file",
                path.display()
            ));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map(|error| format!(" ({error})"))
                .unwrap_or_default();
            return Err(format!(
                "no system root certificates found{why}: set sslrootcert (database.sslrootcert / DB_SSLROOTCERT) to the CA file of the database server"
            ));
        }
    }
    Ok(roots)
}

/// Checks the server certificate as the sslmode asks. `roots: None` = no check (`prefer`).
/// Handshake signatures are always verified (they prove the server holds the key of the
/// certificate it sent, which channel binding relies on).
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
            if self.check_name {
                rustls::client::verify_server_name(&cert, server_name)?;
            }
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_sslmode_values() {
        assert_eq!("verify-full".parse(), Ok(SslMode::VerifyFull));
        assert_eq!("require".parse(), Ok(SslMode::Require));
        assert!("allow"
            .parse::<SslMode>()
            .unwrap_err()
            .contains("not supported"));
        assert!("verify_full"
            .parse::<SslMode>()
            .unwrap_err()
            .contains("expected disable, prefer, require, verify-ca or verify-full"));
    }

    #[test]
    fn store_tls_params_from_url() {
        let params = split_tls_params(
            "postgresql://u:p@db:5432/x?application_name=cs&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(params.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            params.rest,
            "postgresql://u:p@db:5432/x?application_name=cs"
        );
        let params = split_tls_params("postgres://u@h/x?sslmode=require").unwrap();
        assert_eq!(params.rest, "postgres://u@h/x");
        let params = split_tls_params("postgres://u@h/x").unwrap();
        assert_eq!(
            params,
            TlsParams {
                rest: "postgres://u@h/x".into(),
                ..TlsParams::default()
            }
        );
    }

    #[test]
    fn store_tls_params_from_key_value() {
        let params = split_tls_params(
            "host=db  dbname = x sslmode=require password='a b\\'c' sslrootcert='/etc/my ca.pem'",
        )
        .unwrap();
        assert_eq!(params.sslmode.as_deref(), Some("require"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/etc/my ca.pem"));
        assert_eq!(params.rest, "host=db dbname = x password='a b\\'c'");
        assert!(split_tls_params("host=db sslmode").is_err());
        assert!(split_tls_params("host='db").is_err());
    }

    fn connect(url: &str) -> super::super::StoreError {
        super::super::Store::connect(&crate::secret::Secret::new(url.to_string()))
            .expect_err("must not connect")
    }

    #[test]
    fn store_connect_errors_are_classified() {
        // Nothing listens on port 1: unreachable (75), named without the password.
        let error = connect("postgres://cs:hunter2@127.0.0.1:1/db?sslmode=disable");
        assert!(
            error.is_unreachable() && !error.is_configuration(),
            "{error}"
        );
        let text = error.to_string();
        assert!(text.starts_with("database unreachable: cs@127.0.0.1:1/db (sslmode=disable): error connecting to server: "), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!error.detail().starts_with("database unreachable"));
        // Settings a rerun cannot fix: configuration (2).
        for (url, expected) in [
            (
                "postgres://cs@127.0.0.1:1/db?sslmode=verify_full",
                "unknown sslmode",
            ),
            (
                "postgres://cs@127.0.0.1:1/db?sslmode=allow",
                "not supported",
            ),
            (
                "postgres://cs@127.0.0.1:1/db?sslmode=require&sslrootcert=/nonexistent/ca.pem",
                "sslrootcert /nonexistent/ca.pem",
            ),
            (
                "postgres://cs@127.0.0.1:1/db?nosuchoption=1",
                "invalid database URL",
            ),
            ("host=127.0.0.1 port=1 sslmode", "missing \"=\""),
        ] {
            let error = connect(url);
            assert!(
                error.is_configuration() && !error.is_unreachable(),
                "{url}: {error}"
            );
            assert!(error.to_string().contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn store_rootcert_errors_name_the_file() {
        let error =
            client_config(SslMode::Require, Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            error.starts_with("sslrootcert /nonexistent/ca.pem: cannot read"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = client_config(SslMode::VerifyFull, Some(&empty)).unwrap_err();
        assert!(error.contains("no usable CA certificate"), "{error}");
        assert!(client_config(SslMode::Disable, None).unwrap().is_none());
        assert!(client_config(SslMode::Prefer, None).unwrap().is_some());
    }
}
