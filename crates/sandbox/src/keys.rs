//! Generated credentials: the Box app (JWT) key pair and app config, and the DAM / Mailgun secrets.
//!
//! On first start in a state directory the sandbox generates an RSA 2048 key pair and writes
//! `box_app_config.json` in the Box Developer Console format
//! (<https://developer.box.com/guides/authentication/jwt/jwt-setup/>):
//! `{"boxAppSettings":{"clientID","clientSecret","appAuth":{"publicKeyID","privateKey","passphrase"}},"enterpriseID"}`
//! with the private key as an ENCRYPTED PKCS#8 PEM (PBES2: PBKDF2-HMAC-SHA256, 2048 iterations,
//! AES-256-CBC — what `openssl pkcs8 -topk8 -v2 aes-256-cbc` produces). Later starts in the same
//! directory reuse the file (key generation is slow). The other secrets go to
//! `sandbox_credentials.json`, also reused. Both files are written with mode 0600.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use rand::RngCore;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};

use crate::http_util::{random_alnum, random_hex, random_lower_alnum};

/// File name of the Box app config inside the state directory.
pub const BOX_APP_CONFIG_FILE: &str = "box_app_config.json";
/// File name of the other generated secrets inside the state directory.
pub const CREDENTIALS_FILE: &str = "sandbox_credentials.json";

/// The Box app's identity and the public half of its key, as the token endpoint needs them.
pub struct BoxAppKeys {
    /// `boxAppSettings.clientID` (32 lowercase alphanumerics).
    pub client_id: String,
    /// `boxAppSettings.clientSecret`.
    pub client_secret: String,
    /// `appAuth.publicKeyID` (8 lowercase alphanumerics), expected as the JWT `kid`.
    pub public_key_id: String,
    /// `enterpriseID`, expected as the JWT `sub` with `box_sub_type=enterprise`.
    pub enterprise_id: String,
    /// Verifies RS256/RS384/RS512 assertions.
    pub decoding_key: jsonwebtoken::DecodingKey,
    /// Signs assertions as the app would (tests and tools that talk to the token endpoint
    /// without a Box client).
    pub encoding_key: jsonwebtoken::EncodingKey,
    /// Absolute path of `box_app_config.json`.
    pub config_path: PathBuf,
}

impl std::fmt::Debug for BoxAppKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxAppKeys")
            .field("client_id", &self.client_id)
            .field("client_secret", &"****")
            .field("public_key_id", &self.public_key_id)
            .field("enterprise_id", &self.enterprise_id)
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// Generated secrets of the other emulated services (persisted in `sandbox_credentials.json`).
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// OTMM session login user name.
    pub dam_username: String,
    /// OTMM session login password.
    pub dam_password: String,
    /// OTMM OAuth2 client-credentials client ID.
    pub dam_client_id: String,
    /// OTMM OAuth2 client-credentials secret.
    pub dam_client_secret: String,
    /// Mailgun API key (basic auth password with user `api`).
    pub mailgun_api_key: String,
    /// Box user ID of the app's service account.
    pub box_service_user_id: String,
    /// Box login of the service account (`AutomationUser_..@boxdevedition.com`).
    pub box_service_login: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("dam_username", &self.dam_username)
            .field("dam_client_id", &self.dam_client_id)
            .field("box_service_user_id", &self.box_service_user_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct AppConfigFile {
    #[serde(rename = "boxAppSettings")]
    box_app_settings: BoxAppSettings,
    #[serde(rename = "enterpriseID")]
    enterprise_id: String,
}

#[derive(Serialize, Deserialize)]
struct BoxAppSettings {
    #[serde(rename = "clientID")]
    client_id: String,
    #[serde(rename = "clientSecret")]
    client_secret: String,
    #[serde(rename = "appAuth")]
    app_auth: AppAuth,
}

#[derive(Serialize, Deserialize)]
struct AppAuth {
    #[serde(rename = "publicKeyID")]
    public_key_id: String,
    #[serde(rename = "privateKey")]
    private_key: String,
    passphrase: String,
}

/// Loads `{state_dir}/box_app_config.json` if it exists and its key decrypts, else generates a new
/// key pair and app config and writes it.
///
/// # Errors
/// I/O errors, or a key that cannot be generated/encrypted.
pub fn load_or_create_box_app(state_dir: &Path) -> anyhow::Result<BoxAppKeys> {
    let path = state_dir.join(BOX_APP_CONFIG_FILE);
    let path = std::path::absolute(&path).unwrap_or(path);
    if path.exists() {
        match load_box_app(&path) {
            Ok(keys) => return Ok(keys),
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %format!("{error:#}"),
                    "existing Box app config is unusable; generating a new one");
            }
        }
    }
    create_box_app(&path)
}

/// Reads a Box app config (`box_app_config.json` as the sandbox writes it, or as Box's developer
/// console downloads it) and decrypts its private key.
///
/// # Errors
/// The file cannot be read or parsed, or the key does not decrypt with its passphrase.
pub fn load_box_app(path: impl AsRef<Path>) -> anyhow::Result<BoxAppKeys> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: AppConfigFile =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let settings = file.box_app_settings;
    let private = rsa::RsaPrivateKey::from_pkcs8_encrypted_pem(
        &settings.app_auth.private_key,
        settings.app_auth.passphrase.as_bytes(),
    )
    .map_err(|error| anyhow!("decrypting the private key: {error}"))?;
    Ok(BoxAppKeys {
        client_id: settings.client_id,
        client_secret: settings.client_secret,
        public_key_id: settings.app_auth.public_key_id,
        enterprise_id: file.enterprise_id,
        decoding_key: decoding_key(&private),
        encoding_key: encoding_key(&private)?,
        config_path: path.to_path_buf(),
    })
}

fn encoding_key(private: &rsa::RsaPrivateKey) -> anyhow::Result<jsonwebtoken::EncodingKey> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let der = private
        .to_pkcs1_der()
        .map_err(|error| anyhow!("encoding the private key: {error}"))?;
    Ok(jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()))
}

fn decoding_key(private: &rsa::RsaPrivateKey) -> jsonwebtoken::DecodingKey {
    let public = private.to_public_key();
    jsonwebtoken::DecodingKey::from_rsa_raw_components(
        &public.n().to_bytes_be(),
        &public.e().to_bytes_be(),
    )
}

fn create_box_app(path: &Path) -> anyhow::Result<BoxAppKeys> {
    tracing::info!(path = %path.display(), "generating an RSA 2048 key for the Box app config");
    let mut rng = rand::rngs::OsRng;
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048)
        .map_err(|error| anyhow!("generating the RSA key: {error}"))?;
    let passphrase = random_hex(32);
    let pem = encrypt_private_key(&private, &passphrase)?;
    let file = AppConfigFile {
        box_app_settings: BoxAppSettings {
            client_id: random_lower_alnum(32),
            client_secret: random_alnum(32),
            app_auth: AppAuth {
                public_key_id: random_lower_alnum(8),
                private_key: pem,
                passphrase,
            },
        },
        enterprise_id: format!("{}", 100_000_000 + (rand::random::<u32>() % 800_000_000)),
    };
    let text = serde_json::to_string_pretty(&file)?;
    write_private(path, text.as_bytes())?;
    Ok(BoxAppKeys {
        client_id: file.box_app_settings.client_id,
        client_secret: file.box_app_settings.client_secret,
        public_key_id: file.box_app_settings.app_auth.public_key_id,
        enterprise_id: file.enterprise_id,
        decoding_key: decoding_key(&private),
        encoding_key: encoding_key(&private)?,
        config_path: path.to_path_buf(),
    })
}

/// Encrypts a private key as an `ENCRYPTED PRIVATE KEY` PEM (PBES2, PBKDF2-HMAC-SHA256 2048
/// iterations, AES-256-CBC).
///
/// # Errors
/// Encoding or encryption failures.
pub fn encrypt_private_key(
    private: &rsa::RsaPrivateKey,
    passphrase: &str,
) -> anyhow::Result<String> {
    let der = private
        .to_pkcs8_der()
        .map_err(|error| anyhow!("encoding the key as PKCS#8: {error}"))?;
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_bytes())
        .map_err(|error| anyhow!("re-reading the PKCS#8 key: {error}"))?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &salt, &iv)
        .map_err(|error| anyhow!("PBES2 parameters: {error}"))?;
    let encrypted = info
        .encrypt_with_params(params, passphrase.as_bytes())
        .map_err(|error| anyhow!("encrypting the key: {error}"))?;
    let pem = encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .map_err(|error| anyhow!("PEM encoding: {error}"))?;
    Ok(pem.to_string())
}

/// Loads `{state_dir}/sandbox_credentials.json` or generates and writes it.
///
/// # Errors
/// I/O errors writing the file.
pub fn load_or_create_credentials(state_dir: &Path) -> anyhow::Result<Credentials> {
    let path = state_dir.join(CREDENTIALS_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        match serde_json::from_str::<Credentials>(&text) {
            Ok(credentials) => return Ok(credentials),
            Err(error) => tracing::warn!(path = %path.display(), %error,
                "existing credentials file is unusable; generating new credentials"),
        }
    }
    let service_user = format!("{}", 30_000_000_000u64 + u64::from(rand::random::<u32>()));
    let credentials = Credentials {
        dam_username: "cs-integration".to_owned(),
        dam_password: random_alnum(24),
        dam_client_id: format!("cs-sandbox-{}", random_lower_alnum(8)),
        dam_client_secret: random_alnum(32),
        mailgun_api_key: format!("key-{}", random_hex(32)),
        box_service_login: format!(
            "AutomationUser_{}_{}@boxdevedition.com",
            &service_user[service_user.len().saturating_sub(7)..],
            random_alnum(10)
        ),
        box_service_user_id: service_user,
    };
    let text = serde_json::to_string_pretty(&credentials)?;
    write_private(&path, text.as_bytes())?;
    Ok(credentials)
}

/// Writes a file readable by the owner only (0600 on Unix).
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_key_round_trips() {
        let mut rng = rand::rngs::OsRng;
        let private = rsa::RsaPrivateKey::new(&mut rng, 1024).expect("key");
        let pem = encrypt_private_key(&private, "secret").expect("encrypt");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = rsa::RsaPrivateKey::from_pkcs8_encrypted_pem(&pem, b"secret").expect("decrypt");
        assert_eq!(back, private);
        assert!(rsa::RsaPrivateKey::from_pkcs8_encrypted_pem(&pem, b"wrong").is_err());
    }
}
