//! Box JWT (server authentication) pieces: the Developer Console app config, the private key, the signed
//! assertion and the token reply.
//!
//! Source: <https://developer.box.com/guides/authentication/jwt/without-sdk/> and
//! <https://developer.box.com/reference/post-oauth2-token/>.

use std::fmt;
use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pkcs8::der::Decode;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::BoxError;
use crate::config::{BoxCredentials, BoxJwtKeys};
use crate::secret::Secret;

/// The audience of every assertion: Box's real token URL, also when the token is requested from another
/// host (the sandbox checks the same audience).
pub const JWT_AUDIENCE: &str = "https://api.box.com/oauth2/token";

/// Assertion lifetime in seconds (Box allows at most 60; its SDKs use 30-45).
pub(super) const JWT_LIFETIME_SECS: i64 = 45;

/// The `grant_type` of a JWT token request.
pub(super) const JWT_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Box app settings from the JSON config file the Developer Console generates for a JWT app
/// (`{"boxAppSettings":{"clientID","clientSecret","appAuth":{"publicKeyID","privateKey","passphrase"}},
/// "enterpriseID"}`).
///
/// `Debug` shows the ids only; secret, key and passphrase print as `****`.
/// Source: <https://developer.box.com/guides/authentication/jwt/jwt-setup/>.
#[derive(Clone)]
pub struct BoxAppConfig {
    /// `boxAppSettings.clientID`: the JWT `iss` and the token request's `client_id`.
    pub client_id: String,
    /// `boxAppSettings.clientSecret`.
    pub client_secret: Secret<String>,
    /// `boxAppSettings.appAuth.publicKeyID`: the JWT header `kid`.
    pub public_key_id: String,
    /// `boxAppSettings.appAuth.privateKey`: PEM, normally `ENCRYPTED PRIVATE KEY` (PKCS#8); unencrypted
    /// `PRIVATE KEY` and `RSA PRIVATE KEY` are accepted too.
    pub private_key_pem: Secret<String>,
    /// `boxAppSettings.appAuth.passphrase` unlocking the key.
    pub passphrase: Secret<String>,
    /// `enterpriseID` (string or number in the file): the JWT `sub`.
    pub enterprise_id: String,
}

impl fmt::Debug for BoxAppConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BoxAppConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"****")
            .field("public_key_id", &self.public_key_id)
            .field("private_key_pem", &"****")
            .field("passphrase", &"****")
            .field("enterprise_id", &self.enterprise_id)
            .finish()
    }
}

/// A required string of the app config at a JSON pointer. The message names the key only: serde's own type
/// errors would quote the offending value, which may be a secret.
fn required_text(root: &Value, pointer: &str, key: &str) -> Result<String, BoxError> {
    match root.pointer(pointer) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        Some(Value::String(_) | Value::Null) | None => {
            Err(BoxError::Decode(format!("{key}: missing or empty")))
        }
        Some(_) => Err(BoxError::Decode(format!("{key}: expected a string"))),
    }
}

impl BoxAppConfig {
    /// Reads and validates the Developer Console JSON at `path`: fields present, key decryptable with the
    /// passphrase, an RSA key. Errors: [`BoxError::Io`] (unreadable file, message names the path),
    /// [`BoxError::Decode`] (not the expected JSON), [`BoxError::Auth`] (key cannot be decrypted or is not
    /// RSA). No error message contains a secret value.
    pub fn from_file(path: &Path) -> Result<Self, BoxError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            BoxError::Io(std::io::Error::new(
                error.kind(),
                format!("Box app config {}: {error}", path.display()),
            ))
        })?;
        Self::from_json(&text).map_err(|error| match error {
            BoxError::Decode(message) => {
                BoxError::Decode(format!("Box app config {}: {message}", path.display()))
            }
            BoxError::Auth { message, source } => BoxError::Auth {
                message: format!("Box app config {}: {message}", path.display()),
                source,
            },
            other => other,
        })
    }

    /// The app's credentials as configured (`box.app_config_file` or the plan's separate keys):
    /// [`BoxAppConfig::from_file`] or [`BoxAppConfig::from_keys`].
    pub fn load(credentials: &BoxCredentials) -> Result<Self, BoxError> {
        match credentials {
            BoxCredentials::AppConfigFile(path) => Self::from_file(path),
            BoxCredentials::Keys(keys) => Self::from_keys(keys),
        }
    }

    /// The same credentials from the plan's separate keys: reads the PEM file
    /// (`box.rsa_private_key_path`) and checks, like the app config's key, that it decrypts with
    /// `box.passphrase` and is an RSA key. Errors: [`BoxError::Io`] (unreadable file, message names
    /// the path), [`BoxError::Auth`] (key cannot be decrypted or is not RSA). No error message
    /// contains a secret value.
    pub fn from_keys(keys: &BoxJwtKeys) -> Result<Self, BoxError> {
        let path = &keys.private_key_path;
        let pem = std::fs::read_to_string(path).map_err(|error| {
            BoxError::Io(std::io::Error::new(
                error.kind(),
                format!(
                    "Box private key (box.rsa_private_key_path) {}: {error}",
                    path.display()
                ),
            ))
        })?;
        let config = Self {
            client_id: keys.client_id.clone(),
            client_secret: keys.client_secret.clone(),
            public_key_id: keys.public_key_id.clone(),
            private_key_pem: Secret::new(pem),
            passphrase: keys.passphrase.clone(),
            enterprise_id: keys.enterprise_id.clone(),
        };
        config.encoding_key().map_err(|error| match error {
            BoxError::Auth { message, source } => BoxError::Auth {
                message: message.replace(
                    "boxAppSettings.appAuth.privateKey",
                    &format!("box.rsa_private_key_path {}", path.display()),
                ),
                source,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Same as [`BoxAppConfig::from_file`] from the JSON text.
    pub fn from_json(text: &str) -> Result<Self, BoxError> {
        // A syntax error names line and column only; fields are then read one by one (see `required_text`).
        let root: Value = serde_json::from_str(text).map_err(|error| {
            BoxError::Decode(format!(
                "expected the Box Developer Console JSON {{\"boxAppSettings\":{{\"clientID\",\"clientSecret\",\"appAuth\":{{\"publicKeyID\",\"privateKey\",\"passphrase\"}}}},\"enterpriseID\"}}: {error}"
            ))
        })?;
        let enterprise_id = match root.get("enterpriseID") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_string(),
            Some(Value::Number(id)) => id.to_string(),
            _ => {
                return Err(BoxError::Decode(
                    "enterpriseID: missing or empty (a JWT app needs the enterprise id)".into(),
                ))
            }
        };
        let passphrase = match root.pointer("/boxAppSettings/appAuth/passphrase") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(passphrase)) => passphrase.clone(),
            Some(_) => {
                return Err(BoxError::Decode(
                    "boxAppSettings.appAuth.passphrase: expected a string".into(),
                ))
            }
        };
        let config = Self {
            client_id: required_text(&root, "/boxAppSettings/clientID", "boxAppSettings.clientID")?,
            client_secret: Secret::new(required_text(
                &root,
                "/boxAppSettings/clientSecret",
                "boxAppSettings.clientSecret",
            )?),
            public_key_id: required_text(
                &root,
                "/boxAppSettings/appAuth/publicKeyID",
                "boxAppSettings.appAuth.publicKeyID",
            )?,
            private_key_pem: Secret::new(required_text(
                &root,
                "/boxAppSettings/appAuth/privateKey",
                "boxAppSettings.appAuth.privateKey",
            )?),
            passphrase: Secret::new(passphrase),
            enterprise_id,
        };
        config.encoding_key()?;
        Ok(config)
    }

    /// The RS256 signing key: decrypts the PKCS#8 PEM with the passphrase and hands the inner PKCS#1 DER to
    /// `jsonwebtoken`. Errors are [`BoxError::Auth`] without key material.
    pub(crate) fn encoding_key(&self) -> Result<EncodingKey, BoxError> {
        let pem = self
            .private_key_pem
            .expose()
            .replace("\\n", "\n")
            .replace('\r', "");
        let (label, document) = pkcs8::SecretDocument::from_pem(pem.trim()).map_err(|error| {
            key_error("boxAppSettings.appAuth.privateKey is not a PEM key", error)
        })?;
        let pkcs1 = match label {
            "ENCRYPTED PRIVATE KEY" => {
                let encrypted = pkcs8::EncryptedPrivateKeyInfo::from_der(document.as_bytes())
                    .map_err(|error| {
                        key_error(
                            "boxAppSettings.appAuth.privateKey: not an encrypted PKCS#8 key",
                            error,
                        )
                    })?;
                let decrypted = encrypted
                    .decrypt(self.passphrase.expose().as_bytes())
                    .map_err(|error| {
                        key_error(
                            "cannot decrypt boxAppSettings.appAuth.privateKey (wrong passphrase or unsupported encryption)",
                            error,
                        )
                    })?;
                rsa_pkcs1_from_pkcs8(decrypted.as_bytes())?
            }
            "PRIVATE KEY" => rsa_pkcs1_from_pkcs8(document.as_bytes())?,
            "RSA PRIVATE KEY" => document.as_bytes().to_vec(),
            other => {
                return Err(BoxError::Auth {
                    message: format!(
                        "boxAppSettings.appAuth.privateKey: unexpected PEM label {other:?} (expected ENCRYPTED PRIVATE KEY)"
                    ),
                    source: None,
                })
            }
        };
        let key = EncodingKey::from_rsa_der(&pkcs1);
        // from_rsa_der does not parse: sign once so that a broken key fails here, not on the first token.
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &serde_json::json!({"probe": true}),
            &key,
        )
        .map_err(|error| key_error("boxAppSettings.appAuth.privateKey cannot sign RS256", error))?;
        Ok(key)
    }
}

/// A [`BoxError::Auth`] for a key that cannot be used: `what` (never key material) followed by the
/// decoder's or signer's text, which is also kept as the source.
fn key_error(what: &str, error: impl std::error::Error + Send + Sync + 'static) -> BoxError {
    BoxError::Auth {
        message: format!("{what}: {error}"),
        source: Some(Box::new(error)),
    }
}

/// OID of `rsaEncryption` (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION_OID: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

fn rsa_pkcs1_from_pkcs8(der: &[u8]) -> Result<Vec<u8>, BoxError> {
    let info = pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|error| key_error("boxAppSettings.appAuth.privateKey: not a PKCS#8 key", error))?;
    if info.algorithm.oid != RSA_ENCRYPTION_OID {
        return Err(BoxError::Auth {
            message: format!(
                "boxAppSettings.appAuth.privateKey: not an RSA key (algorithm {})",
                info.algorithm.oid
            ),
            source: None,
        });
    }
    Ok(info.private_key.to_vec())
}

/// Claims of the JWT assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    pub sub: String,
    pub box_sub_type: String,
    pub aud: String,
    pub jti: String,
    pub exp: i64,
    pub iat: i64,
}

/// A fresh `jti`: 48 characters (a UUID v4 without dashes plus 16 random hex digits).
pub(crate) fn new_jti() -> String {
    let extra: u64 = rand::thread_rng().gen();
    format!("{}{extra:016x}", uuid::Uuid::new_v4().simple())
}

/// Signs an assertion for `app` at time `now` (Unix seconds): header `alg=RS256`, `kid=publicKeyID`;
/// claims `iss`, `sub`=enterprise, `box_sub_type=enterprise`, `aud`=[`JWT_AUDIENCE`], fresh `jti`,
/// `iat=now`, `exp=now+45`.
pub(crate) fn sign_assertion(
    app: &BoxAppConfig,
    key: &EncodingKey,
    now: i64,
) -> Result<String, BoxError> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(app.public_key_id.clone());
    let claims = Claims {
        iss: app.client_id.clone(),
        sub: app.enterprise_id.clone(),
        box_sub_type: "enterprise".to_string(),
        aud: JWT_AUDIENCE.to_string(),
        jti: new_jti(),
        exp: now + JWT_LIFETIME_SECS,
        iat: now,
    };
    jsonwebtoken::encode(&header, &claims, key)
        .map_err(|error| key_error("cannot sign the Box JWT assertion", error))
}

/// Successful token reply `{access_token, expires_in, token_type, restricted_to}`.
#[derive(Deserialize)]
pub(crate) struct TokenReply {
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<Value>,
}

/// Token error reply `{error, error_description}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TokenError {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

impl TokenError {
    /// `invalid_grant` about the `exp` claim: our clock is off; retry with the server's time.
    pub(super) fn is_exp_claim_problem(&self) -> bool {
        self.error.as_deref() == Some("invalid_grant")
            && self
                .error_description
                .as_deref()
                .is_some_and(|text| text.contains("'exp'") || text.contains("exp claim"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    use rsa::pkcs8::EncodePrivateKey as _;

    pub(crate) const PASSPHRASE: &str = "correct horse battery staple";

    /// A 2048-bit RSA key, encrypted like the Box Developer Console does (PBES2, PBKDF2-HMAC-SHA1 with
    /// 2048 iterations, DES-EDE3-CBC), and its public key as PKCS#1 DER.
    pub(crate) fn test_key() -> (String, Vec<u8>) {
        let mut rng = rand::thread_rng();
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let public_der = rsa::RsaPublicKey::from(&private)
            .to_pkcs1_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        let plain = private.to_pkcs8_der().unwrap();
        let info = pkcs8::PrivateKeyInfo::from_der(plain.as_bytes()).unwrap();
        let salt: [u8; 8] = rng.gen();
        let iv: [u8; 8] = rng.gen();
        let params = pkcs8::pkcs5::pbes2::Parameters {
            kdf: pkcs8::pkcs5::pbes2::Pbkdf2Params {
                salt: &salt,
                iteration_count: 2048,
                key_length: None,
                prf: pkcs8::pkcs5::pbes2::Pbkdf2Prf::HmacWithSha1,
            }
            .into(),
            encryption: pkcs8::pkcs5::pbes2::EncryptionScheme::DesEde3Cbc { iv: &iv },
        };
        let encrypted = info.encrypt_with_params(params, PASSPHRASE).unwrap();
        let pem = encrypted
            .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
            .unwrap();
        (pem.to_string(), public_der)
    }

    pub(crate) fn app_json(pem: &str, passphrase: &str) -> String {
        serde_json::json!({
            "boxAppSettings": {
                "clientID": "client-id-1", "clientSecret": "client-secret-value",
                "appAuth": {"publicKeyID": "kid42", "privateKey": pem, "passphrase": passphrase}
            },
            "enterpriseID": 987654
        })
        .to_string()
    }

    #[test]
    fn app_config_round_trip_and_signed_claims() {
        let (pem, public_der) = test_key();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF"),
            "{}",
            &pem[..60]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, app_json(&pem, PASSPHRASE)).unwrap();
        let app = BoxAppConfig::from_file(&path).unwrap();
        assert_eq!(app.enterprise_id, "987654");
        assert_eq!(app.public_key_id, "kid42");
        let debug = format!("{app:?}");
        assert!(
            !debug.contains("client-secret-value")
                && !debug.contains(PASSPHRASE)
                && !debug.contains("PRIVATE")
        );

        let key = app.encoding_key().unwrap();
        let now = jiff::Timestamp::now().as_second();
        let first = sign_assertion(&app, &key, now).unwrap();
        let second = sign_assertion(&app, &key, now).unwrap();

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[JWT_AUDIENCE]);
        validation.set_issuer(&["client-id-1"]);
        let decoding = DecodingKey::from_rsa_der(&public_der);
        let decoded = jsonwebtoken::decode::<Claims>(&first, &decoding, &validation).unwrap();
        assert_eq!(decoded.header.kid.as_deref(), Some("kid42"));
        assert_eq!(decoded.header.alg, Algorithm::RS256);
        let claims = decoded.claims;
        assert_eq!(claims.sub, "987654");
        assert_eq!(claims.box_sub_type, "enterprise");
        assert_eq!(claims.aud, "https://api.box.com/oauth2/token");
        assert_eq!(claims.exp, now + 45);
        assert!(claims.jti.len() >= 32 && claims.jti.len() <= 128);
        let other = jsonwebtoken::decode::<Claims>(&second, &decoding, &validation)
            .unwrap()
            .claims;
        assert_ne!(claims.jti, other.jti, "a fresh jti per assertion");
    }

    #[test]
    fn the_plans_separate_keys_make_the_same_credentials_as_the_app_config() {
        let (pem, public_der) = test_key();
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("box_private_key.pem");
        std::fs::write(&key_path, &pem).unwrap();
        let keys = |passphrase: &str| BoxJwtKeys {
            enterprise_id: "987654".into(),
            client_id: "client-id-1".into(),
            client_secret: Secret::new("client-secret-value".into()),
            public_key_id: "kid42".into(),
            private_key_path: key_path.clone(),
            passphrase: Secret::new(passphrase.into()),
        };
        let from_keys = BoxAppConfig::load(&BoxCredentials::Keys(keys(PASSPHRASE))).unwrap();
        let from_json = BoxAppConfig::from_json(&app_json(&pem, PASSPHRASE)).unwrap();
        assert_eq!(format!("{from_keys:?}"), format!("{from_json:?}"));
        assert_eq!(
            from_keys.client_secret.expose(),
            from_json.client_secret.expose()
        );
        // The encrypted key decrypts with the passphrase and signs a verifiable assertion.
        let key = from_keys.encoding_key().unwrap();
        let assertion =
            sign_assertion(&from_keys, &key, jiff::Timestamp::now().as_second()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[JWT_AUDIENCE]);
        let decoded = jsonwebtoken::decode::<Claims>(
            &assertion,
            &DecodingKey::from_rsa_der(&public_der),
            &validation,
        )
        .unwrap();
        assert_eq!(decoded.header.kid.as_deref(), Some("kid42"));
        assert_eq!(decoded.claims.sub, "987654");

        // A wrong passphrase names the key file, never the passphrase.
        let error = BoxAppConfig::from_keys(&keys("hunter2-not-it")).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("box.rsa_private_key_path"), "{text}");
        assert!(text.contains("box_private_key.pem"), "{text}");
        assert!(!text.contains("hunter2-not-it"), "{text}");
        // A missing file names the key and the path.
        let mut missing = keys(PASSPHRASE);
        missing.private_key_path = dir.path().join("nope.pem");
        let text = BoxAppConfig::from_keys(&missing).unwrap_err().to_string();
        assert!(
            text.contains("box.rsa_private_key_path") && text.contains("nope.pem"),
            "{text}"
        );
    }

    #[test]
    fn wrong_passphrase_and_garbage_are_clean_errors() {
        let (pem, _) = test_key();
        let error = BoxAppConfig::from_json(&app_json(&pem, "not it")).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, BoxError::Auth { .. }), "{text}");
        assert!(
            text.contains("cannot decrypt") && !text.contains("not it") && !text.contains("MII"),
            "{text}"
        );

        let error =
            BoxAppConfig::from_json(&app_json("-----BEGIN NONSENSE-----", "x")).unwrap_err();
        assert!(matches!(error, BoxError::Auth { .. }));
        let error = BoxAppConfig::from_json(r#"{"boxAppSettings":{"clientID":"a"}}"#).unwrap_err();
        assert!(matches!(error, BoxError::Decode(_)), "{error}");
        let numeric_secret =
            app_json(&pem, PASSPHRASE).replace("\"client-secret-value\"", "123456789");
        let error = BoxAppConfig::from_json(&numeric_secret).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot decode Box data: boxAppSettings.clientSecret: expected a string"
        );
        let error = BoxAppConfig::from_json("{not json").unwrap_err();
        assert!(matches!(error, BoxError::Decode(_)), "{error}");
        let error = BoxAppConfig::from_json(&app_json(&pem, PASSPHRASE).replace("987654", "null"))
            .unwrap_err();
        assert!(error.to_string().contains("enterpriseID"));
        let error = BoxAppConfig::from_file(Path::new("/nonexistent/box.json")).unwrap_err();
        assert!(
            matches!(error, BoxError::Io(_)) && error.to_string().contains("/nonexistent/box.json")
        );
    }

    #[test]
    fn exp_problem_detection() {
        let error: TokenError = serde_json::from_str(
            r#"{"error":"invalid_grant","error_description":"Please check the 'exp' claim. The 'exp' value is too far in the future."}"#,
        )
        .unwrap();
        assert!(error.is_exp_claim_problem());
        let error: TokenError = serde_json::from_str(
            r#"{"error":"invalid_grant","error_description":"Please check the 'jti' claim."}"#,
        )
        .unwrap();
        assert!(!error.is_exp_claim_problem());
    }
}
