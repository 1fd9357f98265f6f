//! Token material: access-token claims, opaque refresh tokens and client secrets (random,
//! stored only as SHA-256 hashes), and Argon2id password hashing (run through
//! [`crate::hashing`], which bounds its memory).

use argon2::{Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// A random 256-bit secret, base64url (refresh tokens, client secrets).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a high-entropy secret. Enough for random 256-bit values (no dictionary to
/// attack), and fast enough for every refresh and client-credentials grant.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Constant-time equality of two hashes.
pub fn hashes_match(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashing failed (never for valid input).
#[derive(Debug, thiserror::Error)]
#[error("password hashing: {0}")]
pub struct HashError(String);

impl HashError {
    /// A failure described by `cause`.
    pub fn new(cause: impl std::fmt::Display) -> Self {
        Self(cause.to_string())
    }
}

/// Argon2id hash (PHC string) of `password`. Blocking and memory-hungry (19 MiB): run it
/// through [`crate::hashing::Hasher`], which bounds how many run at once.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(HashError::new)
}

/// Whether `password` matches the stored PHC `hash`. With `hash = None` (unknown user) a
/// dummy verification still runs, so response time does not reveal which e-mails exist.
/// Blocking and memory-hungry like [`hash_password`].
pub fn verify_password(password: &[u8], hash: Option<&str>) -> bool {
    let stored = hash.unwrap_or(DUMMY_HASH);
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default().verify_password(password, &parsed).is_ok() && hash.is_some()
}

/// A valid Argon2id hash of a random password nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$xQ2vXz8vQhZs9Wm8pOaRrXz0C3mH6cQpU5t3wS0M9Vg";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let hash = hash_password(b"correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(b"correct horse battery", Some(&hash)));
        assert!(!verify_password(b"wrong horse battery", Some(&hash)));
        assert!(!verify_password(b"anything", None));
    }

    #[test]
    fn secrets_are_random_and_hash_compare_is_exact() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert!(hashes_match(&secret_hash(&a), &secret_hash(&a)));
        assert!(!hashes_match(&secret_hash(&a), &secret_hash(&b)));
    }
}
