//! Values that must never reach a log: `Debug` (and, for URLs, `Display`) hide them, and the
//! real value is had only by asking for it by name ([`Secret::expose`]).

use std::fmt;

/// A secret string (a client secret, a password). `Debug` shows `***`; there is no
/// `Display`, so it cannot be formatted into a message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A server URL that may carry credentials (`postgres://user:password@host/db`). `Debug`
/// and `Display` show it with the password replaced by `***`, so it can be logged;
/// [`SecretUrl::expose`] gives the URL to connect with.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, to connect with.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password hidden; a value that does not parse as a URL is hidden
    /// whole, since there is no telling where its password would be.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    // Only fails for URLs that cannot have credentials, which have none.
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "***".to_owned(),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("s3cr3t");
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        assert_eq!(secret.expose(), "s3cr3t");
    }

    #[test]
    fn a_url_prints_without_its_password() {
        let url = SecretUrl::new("postgres://mercato:hunter2@db:5432/catalog");
        for shown in [format!("{url:?}"), url.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("mercato:***@db:5432/catalog"), "{shown}");
        }
        assert_eq!(url.expose(), "postgres://mercato:hunter2@db:5432/catalog");
        let plain = SecretUrl::new("redis://127.0.0.1:6379");
        assert_eq!(plain.to_string(), "redis://127.0.0.1:6379");
        assert_eq!(SecretUrl::new("not a url :hunter2").to_string(), "***");
    }
}
