//! Mercato identity: accounts, roles, EdDSA-signed access tokens, rotating refresh tokens
//! with reuse detection, and service accounts (client credentials).

pub mod api;
pub mod domain;
pub mod hashing;
pub mod keys;
pub mod schema;
pub mod store;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use domain::parse_client_name;
use mercato::pb::identity::v1::identity_service_server::IdentityServiceServer;
use mercato_kernel::auth::{DEFAULT_ISSUER, ROLE_ADMIN, ROLE_CUSTOMER, ROLE_SERVICE, Verifier};
use mercato_kernel::config::{ConfigError, Env, Vars};
use mercato_kernel::serve::Services;
use mercato_kernel::{RunningService, ServeError, ServiceConfig, ServiceHost};

pub use keys::SigningKeys;

/// Identity's schema migrations, applied at start-up.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Identity's own settings (beyond the kernel's).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The signing key.
    pub keys: SigningKeys,
    /// `iss` of issued tokens (`MERCATO_JWT_ISSUER`).
    pub issuer: String,
    /// Access-token lifetime (`MERCATO_ACCESS_TOKEN_TTL_SECS`, default 900).
    pub access_ttl: Duration,
    /// Refresh-token lifetime (`MERCATO_REFRESH_TOKEN_TTL_SECS`, default 30 days).
    pub refresh_ttl: Duration,
    /// Administrator created on first start (`MERCATO_ADMIN_EMAIL`, `MERCATO_ADMIN_PASSWORD`);
    /// its password never prints.
    pub admin: Option<domain::NewUser>,
    /// Service accounts provisioned at start-up (`MERCATO_SERVICE_CLIENTS`), so a deployment
    /// can hand each service its credentials from a Secret before anyone can call CreateClient.
    pub service_clients: Vec<BootstrapClient>,
    /// How much Argon2id hashing may run at once and how long a request queues for it
    /// (`MERCATO_IDENTITY_HASH_MEMORY_MIB`, `MERCATO_IDENTITY_HASH_MAX_WAIT_MS`).
    pub hashing: hashing::HashLimits,
}

/// A service account given in configuration: `name:client_id:client_secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapClient {
    /// Account name, e.g. "order".
    pub name: String,
    /// Its id (a UUID), chosen by the deployment.
    pub id: uuid::Uuid,
    /// Its secret.
    pub secret: String,
}

impl std::fmt::Debug for BootstrapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapClient")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Parses `MERCATO_SERVICE_CLIENTS`: comma-separated `name:client_id:client_secret`.
fn parse_service_clients(raw: &str) -> Result<Vec<BootstrapClient>, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        key: "MERCATO_SERVICE_CLIENTS".into(),
        value: "(hidden)".into(),
        reason: reason.into(),
    };
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let mut parts = entry.splitn(3, ':');
            let (Some(name), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(invalid("expected name:client_id:client_secret"));
            };
            let name = parse_client_name(name).map_err(invalid)?;
            let id = uuid::Uuid::parse_str(id).map_err(|_| invalid("client_id is not a UUID"))?;
            if secret.len() < 16 {
                return Err(invalid("client_secret must have at least 16 characters"));
            }
            Ok(BootstrapClient {
                name,
                id,
                secret: secret.to_owned(),
            })
        })
        .collect()
}

/// Identity's settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A variable is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The signing key could not be loaded.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
}

/// A start-up job could not provision an account (retried until it can).
#[derive(Debug, thiserror::Error)]
enum ProvisionError {
    /// No database connection.
    #[error("postgres pool: {0}")]
    Pool(#[from] mercato_kernel::db::PoolError),
    /// A query failed.
    #[error("postgres: {0}")]
    Query(#[from] diesel::result::Error),
    /// A configured service account could not be stored.
    #[error("service client {name}: {source}")]
    Client {
        /// The account's name.
        name: String,
        /// Why.
        #[source]
        source: diesel::result::Error,
    },
    /// The administrator's password could not be hashed.
    #[error("hashing the administrator's password: {0}")]
    Hash(#[from] hashing::HashError),
}

/// The administrator of `MERCATO_ADMIN_EMAIL` and `MERCATO_ADMIN_PASSWORD`, held to the rules
/// of a registration: a bad one is a configuration error, refused before anything starts.
fn parse_admin(email: &str, password: &str) -> Result<domain::NewUser, ConfigError> {
    domain::NewUser::parse(email, password, "Administrator").map_err(|violations| {
        ConfigError::Invalid {
            key: "MERCATO_ADMIN_EMAIL/MERCATO_ADMIN_PASSWORD".into(),
            value: "(hidden)".into(),
            reason: violations.into_status().message().to_owned(),
        }
    })
}

impl Settings {
    /// Reads the settings; generates a development key when none is configured.
    pub fn from_env(env: &dyn Env) -> Result<Self, SettingsError> {
        let vars = Vars(env);
        let kid = vars.get("MERCATO_JWT_KID");
        let keys = if let Some(path) = vars.get("MERCATO_JWT_PRIVATE_KEY_FILE") {
            SigningKeys::from_file(&path, kid)?
        } else if let Some(pem) = vars.get("MERCATO_JWT_PRIVATE_KEY") {
            SigningKeys::from_pem(&pem, kid)?
        } else {
            let keys = SigningKeys::generate()?;
            tracing::warn!(
                kid = %keys.jwk().kid,
                "no MERCATO_JWT_PRIVATE_KEY_FILE or MERCATO_JWT_PRIVATE_KEY given: using a generated \
                 development key; tokens become invalid when this process stops"
            );
            keys
        };
        let admin = match (
            vars.get("MERCATO_ADMIN_EMAIL"),
            vars.get("MERCATO_ADMIN_PASSWORD"),
        ) {
            (Some(email), Some(password)) => Some(parse_admin(&email, &password)?),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Missing(
                    "MERCATO_ADMIN_EMAIL and MERCATO_ADMIN_PASSWORD together".into(),
                )
                .into());
            }
        };
        Ok(Self {
            keys,
            issuer: vars.get_or("MERCATO_JWT_ISSUER", DEFAULT_ISSUER),
            access_ttl: vars
                .seconds_or("MERCATO_ACCESS_TOKEN_TTL_SECS", Duration::from_secs(900))?,
            refresh_ttl: vars.seconds_or(
                "MERCATO_REFRESH_TOKEN_TTL_SECS",
                Duration::from_secs(30 * 24 * 3600),
            )?,
            admin,
            service_clients: parse_service_clients(&vars.get_or("MERCATO_SERVICE_CLIENTS", ""))?,
            hashing: hashing::HashLimits {
                memory_budget_mib: vars.parse_or(
                    "MERCATO_IDENTITY_HASH_MEMORY_MIB",
                    hashing::DEFAULT_MEMORY_BUDGET_MIB,
                )?,
                max_wait: Duration::from_millis(vars.parse_or(
                    "MERCATO_IDENTITY_HASH_MAX_WAIT_MS",
                    u64::try_from(hashing::DEFAULT_MAX_WAIT.as_millis()).unwrap_or(3000),
                )?),
            },
        })
    }
}

/// Connects identity's dependencies, creates the configured admin, and starts serving.
pub async fn start(
    config: ServiceConfig,
    settings: Settings,
) -> Result<RunningService, ServeError> {
    let hasher = hashing::Hasher::new(settings.hashing);
    let (mut host, db) = ServiceHost::new(config).with_database(MIGRATIONS).await?;
    let outbox = host.with_event_relay("identity").await?;
    // Storing the administrator waits for the database like the rest of start-up.
    if let Some(admin) = settings.admin.clone() {
        let hasher = hasher.clone();
        host.on_database_ready("administrator", move |db| {
            let (hasher, admin) = (hasher.clone(), admin.clone());
            async move { Ok(ensure_admin(&db, &hasher, admin).await?) }
        });
    }
    for client in settings.service_clients.clone() {
        host.on_database_ready("service client", move |db| {
            let client = client.clone();
            async move { Ok(ensure_client(&db, &client).await?) }
        });
    }
    let verifier = Verifier::with_keys(std::slice::from_ref(settings.keys.jwk()), &settings.issuer);
    let api = api::IdentityApi::new(db, hasher, Arc::new(settings), outbox);
    let max = host.config().server.max_message_bytes;
    let services = Services::new().add_service(
        IdentityServiceServer::new(api)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    host.with_verifier(verifier);
    host.serve(services).await
}

/// Creates or updates a configured service account, so a rotated secret takes effect on restart.
async fn ensure_client(
    db: &mercato_kernel::db::DbPool,
    client: &BootstrapClient,
) -> Result<(), ProvisionError> {
    let mut conn = db.get().await?;
    store::upsert_client(
        &mut conn,
        client.id,
        &client.name,
        &tokens::secret_hash(&client.secret),
        &[ROLE_SERVICE],
    )
    .await
    .map_err(|source| ProvisionError::Client {
        name: client.name.clone(),
        source,
    })?;
    tracing::info!(client_id = %client.id, name = %client.name, "service client provisioned");
    Ok(())
}

/// Creates the administrator on first start; an existing account is left as it is.
async fn ensure_admin(
    db: &mercato_kernel::db::DbPool,
    hasher: &hashing::Hasher,
    new: domain::NewUser,
) -> Result<(), ProvisionError> {
    let mut conn = db.get().await?;
    if store::user_by_email(&mut conn, new.email.as_str())
        .await?
        .is_some()
    {
        return Ok(());
    }
    let hash = hasher.hash(new.password.as_bytes().to_vec()).await?;
    let created = store::insert_user(
        &mut conn,
        new.email.as_str(),
        new.display_name.as_str(),
        &hash,
        &[ROLE_CUSTOMER, ROLE_ADMIN],
    )
    .await?;
    if created.is_some() {
        tracing::info!(email = %new.email.as_str(), "created administrator account");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_clients_parse_from_configuration() {
        let clients = parse_service_clients(
            "order:0190a3c1-1c2d-7e3f-8a4b-5c6d7e8f9a0b:order-secret-0123456789, ,\
             basket:0190a3c1-1c2d-7e3f-8a4b-5c6d7e8f9a0c:basket-secret-012345:with-colon",
        )
        .unwrap();
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[0].name, "order");
        assert_eq!(clients[1].secret, "basket-secret-012345:with-colon");
        assert!(!format!("{:?}", clients[0]).contains("secret-0123"));
    }

    #[test]
    fn malformed_service_clients_are_rejected_without_echoing_secrets() {
        for raw in [
            "order",
            "order:not-a-uuid:order-secret-0123456789",
            "order:0190a3c1-1c2d-7e3f-8a4b-5c6d7e8f9a0b:short",
        ] {
            let err = parse_service_clients(raw).unwrap_err().to_string();
            assert!(err.contains("MERCATO_SERVICE_CLIENTS"), "{err}");
            assert!(!err.contains("short"), "{err}");
        }
    }
}
