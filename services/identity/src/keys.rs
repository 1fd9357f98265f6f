//! The token signing key: Ed25519 from `MERCATO_JWT_PRIVATE_KEY_FILE` /
//! `MERCATO_JWT_PRIVATE_KEY` (PKCS#8 PEM, e.g. `openssl genpkey -algorithm ed25519`), or a
//! freshly generated one for development (tokens then die with the process).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mercato::pb::identity::v1::Jwk;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// The key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The configured path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a PKCS#8 Ed25519 private key in PEM.
    #[error("not a PKCS#8 PEM Ed25519 private key: {0}")]
    Parse(String),
}

/// The signing key with its public JWK.
#[derive(Clone)]
pub struct SigningKeys {
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("kid", &self.jwk.kid)
            .finish()
    }
}

impl SigningKeys {
    /// Loads the key from a PEM string; `kid` defaults to the RFC 7638 thumbprint.
    pub fn from_pem(pem: &str, kid: Option<String>) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Parse(e.to_string()))?;
        Self::from_signing_key(&key, kid)
    }

    /// Reads the key from a PEM file.
    pub fn from_file(path: &str, kid: Option<String>) -> Result<Self, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&pem, kid)
    }

    /// A new random key (development only).
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self::from_signing_key(&SigningKey::from_bytes(&seed), None)
    }

    fn from_signing_key(key: &SigningKey, kid: Option<String>) -> Result<Self, KeyError> {
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Parse(e.to_string()))?;
        let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let kid = kid.unwrap_or_else(|| thumbprint(&x));
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            jwk: Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x,
                kid,
                alg: "EdDSA".into(),
                r#use: "sig".into(),
            },
        })
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `claims` with this key (`kid` in the header).
    pub fn sign<T: serde::Serialize>(
        &self,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.jwk.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key, base64url.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_pem_key_loads_with_a_stable_thumbprint_kid() {
        let a = SigningKeys::from_pem(PEM, None).unwrap();
        let b = SigningKeys::from_pem(PEM, None).unwrap();
        assert_eq!(a.jwk().kid, b.jwk().kid);
        assert_eq!(a.jwk().alg, "EdDSA");
        assert_eq!(
            SigningKeys::from_pem(PEM, Some("k1".into()))
                .unwrap()
                .jwk()
                .kid,
            "k1"
        );
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(SigningKeys::from_pem("not a key", None).is_err());
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            SigningKeys::generate().unwrap().jwk().x,
            SigningKeys::generate().unwrap().jwk().x
        );
    }
}
