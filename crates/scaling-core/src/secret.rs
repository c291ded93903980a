//! A wrapper for values that must never reach a log line, an error message or `--help` output.
//!
//! Design §4: secrets (client secret, private key, passphrase, tokens, DB password, Mailgun key) never
//! appear in logs or errors. Wrapping them in [`Secret`] makes `{:?}` and `{}` print `****`, so a
//! `#[derive(Debug)]` on a config struct cannot leak them by accident; code that really needs the
//! value calls [`Secret::expose`], which is easy to find in review.

use std::fmt;

/// A value that must never be logged. `Debug` and `Display` print `****` whatever the value.
///
/// Deserializes transparently (`serde(transparent)`): YAML/JSON `"s3cret"` becomes
/// `Secret("s3cret")`. Equality compares the wrapped values (used by tests; not constant-time, so do
/// not use `==` to check credentials received from outside).
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The wrapped value. Call it only where the value is sent to its destination (an HTTP
    /// header, a database connection), never to format a message.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("****")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new(String::from("hunter2"));
        assert_eq!(format!("{secret:?}"), "****");
        assert_eq!(format!("{secret}"), "****");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(****)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn deserializes_transparently() {
        let secret: Secret<String> = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(secret.expose(), "abc");
        assert_eq!(secret, Secret::from(String::from("abc")));
        assert_eq!(Secret::<String>::default().expose(), "");
    }
}
