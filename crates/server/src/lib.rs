//! The Sotto host server. It is NOT trusted with anything.
//!
//! It relays opaque bytes between clients (WebSocket) and enclaves (TCP here, vsock in a real
//! confidential VM) without holding any key, serves collateral that is signed by the hardware
//! vendors, and keeps passkey accounts and their encrypted history. Everything it stores or
//! moves is either public (WebAuthn public keys), vendor-signed, or ciphertext made by clients;
//! logs record routes, statuses, sizes and durations, never a body: no handler formats one.

mod accounts;
mod address;
mod error;
mod extract;
mod log;
mod pool;
mod ratelimit;
mod records;
mod relay;
mod serve;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::header::STRICT_TRANSPORT_SECURITY;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::{Extension, Router};
use sotto_api::{routes, Quota};
use sotto_store::Store;
use tokio::sync::Semaphore;

pub use error::ConfigError;
pub use pool::parse_pool;
pub use ratelimit::RateLimit;
pub use relay::RelayLimits;
pub use serve::{serve, ConnectionLimits};
pub use sotto_release::bundle::{Bundle, BundleError};
pub use tokens::{
    load_or_create_key, TokenKeyError, TokensConfig, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX,
};
pub use web::CSP;

#[derive(Clone)]
pub struct ServerConfig {
    /// Where the enclaves listen (loopback TCP in the local stack); each relay goes to one of
    /// them ([`pool`](crate::pool)).
    pub enclaves: Vec<SocketAddr>,
    /// A pool file (`ADDR` or `ADDR drain` per line) read now and on every probe tick, for
    /// enclaves that join, leave or drain without a restart.
    pub enclave_pool: Option<PathBuf>,
    /// Folder of vendor-signed collateral files served verbatim at `/v1/collateral`.
    pub collateral_dir: Option<PathBuf>,
    /// What the relay to the enclave lets each client hold ([`RelayLimits`]).
    pub relay: RelayLimits,
    /// Passkey accounts and encrypted history; without it the server only relays.
    pub accounts: Option<AccountsConfig>,
    /// The web client, served at `/` (loaded and hashed once, at startup).
    pub web: Option<Arc<Bundle>>,
    /// A release transparency log directory (C2SP tlog-tiles) to serve at `/log/`.
    pub log_dir: Option<PathBuf>,
    /// What each client may hold of the server ([`serve`]).
    pub connections: ConnectionLimits,
    /// Behind a reverse proxy: the header it sets to the client's address (`X-Forwarded-For`:
    /// its last entry; `Forwarded`: the last `for=`), for the limits per client. Without it,
    /// the socket peer; no header is believed unless named here.
    pub trusted_proxy_header: Option<HeaderName>,
    /// Privacy Pass: token issuance for signed-in accounts and redemption on the relay.
    pub tokens: Option<TokensConfig>,
}

#[derive(Clone)]
pub struct AccountsConfig {
    pub store: Arc<dyn Store>,
    /// The WebAuthn relying party id: the site's domain (`localhost` for the local stack;
    /// browsers refuse IP addresses here).
    pub rp_id: String,
    /// The web origin clients use, e.g. `http://localhost:8080`.
    pub origin: String,
    /// Accept the origin on any port (the local stack and tests pick free ports).
    pub any_port: bool,
    pub quota: Quota,
    pub session_ttl: Duration,
    /// Per client address, on the sign-up, sign-in and recovery endpoints.
    pub auth_rate: RateLimit,
    /// WebAuthn ceremonies (and, counted apart, step-up proofs) in flight at once on the whole
    /// deployment: what only a flood from many accounts or networks at once reaches.
    pub max_pending: u32,
}

impl AccountsConfig {
    pub fn new(store: Arc<dyn Store>, rp_id: &str, origin: &str) -> Self {
        AccountsConfig {
            store,
            rp_id: rp_id.to_owned(),
            origin: origin.to_owned(),
            any_port: false,
            quota: Quota {
                max_bytes: 256 * 1024 * 1024,
                max_records: 1_000_000,
            },
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            auth_rate: RateLimit {
                per_minute: 30,
                burst: 10,
            },
            max_pending: 10_000,
        }
    }
}

impl ServerConfig {
    /// In front of one enclave.
    pub fn new(enclave_addr: SocketAddr) -> Self {
        ServerConfig::with_pool(vec![enclave_addr], None)
    }

    /// In front of the enclaves `enclaves` and those of the pool file `enclave_pool`.
    pub fn with_pool(enclaves: Vec<SocketAddr>, enclave_pool: Option<PathBuf>) -> Self {
        ServerConfig {
            enclaves,
            enclave_pool,
            collateral_dir: None,
            relay: RelayLimits::default(),
            accounts: None,
            web: None,
            log_dir: None,
            connections: ConnectionLimits::default(),
            trusted_proxy_header: None,
            tokens: None,
        }
    }
}

pub(crate) struct AppState {
    config: ServerConfig,
    pool: Arc<pool::Pool>,
    relays: Arc<Semaphore>,
    relay_holds: address::Holds,
    next_id: AtomicU64,
    tokens: Option<Arc<tokens::Tokens>>,
}

/// Largest request body: a record's ciphertext (4 MiB of plaintext, padded) in base64 JSON.
const MAX_BODY: usize = 8 * 1024 * 1024;

pub fn router(config: ServerConfig) -> Result<Router, ConfigError> {
    let web = config.web.clone();
    let log_dir = config.log_dir.clone();
    let https = config
        .accounts
        .as_ref()
        .is_some_and(|a| a.origin.starts_with("https://"));
    let accounts = config
        .accounts
        .clone()
        .map(|a| accounts::Accounts::new(a, config.trusted_proxy_header.clone()))
        .transpose()?;
    let token_state = config
        .tokens
        .clone()
        .map(tokens::Tokens::new)
        .transpose()?
        .map(Arc::new);
    let pool = Arc::new(
        pool::Pool::new(&config.enclaves, config.enclave_pool.clone())
            .map_err(ConfigError::Pool)?,
    );
    if pool.list().is_empty() {
        return Err(ConfigError::Pool("no enclave: name at least one".into()));
    }
    tend(&pool);
    let state = Arc::new(AppState {
        pool,
        tokens: token_state.clone(),
        relays: Arc::new(Semaphore::new(config.relay.max_total)),
        relay_holds: address::Holds::default(),
        config,
        next_id: AtomicU64::new(1),
    });
    let mut app = Router::new()
        .route("/healthz", get(relay::health))
        .route("/v1/collateral", get(relay::collateral))
        .route(routes::RELAY, get(relay::relay))
        .route(routes::ENCLAVES, get(relay::enclaves))
        .with_state(state);
    if let Some(accounts) = accounts {
        let accounts = Arc::new(accounts);
        accounts.maintain();
        let api = Router::new()
            .route(routes::REGISTER_START, post(accounts::register_start))
            .route(routes::REGISTER_FINISH, post(accounts::register_finish))
            .route(routes::SIGN_IN_START, post(accounts::sign_in_start))
            .route(routes::SIGN_IN_FINISH, post(accounts::sign_in_finish))
            .route(routes::RECOVER, post(accounts::recover))
            .route(routes::SESSION, delete(accounts::sign_out))
            .route(
                routes::ACCOUNT,
                get(accounts::account_info).delete(accounts::delete_account),
            )
            .route(routes::RECOVERY, put(accounts::set_recovery))
            .route(routes::PASSKEY_START, post(accounts::add_passkey_start))
            .route(routes::PASSKEY_FINISH, post(accounts::add_passkey_finish))
            .route(routes::PASSKEY, delete(accounts::remove_passkey))
            .route(routes::REAUTH_START, post(accounts::reauth_start))
            .route(routes::REAUTH_FINISH, post(accounts::reauth_finish))
            .route(routes::RECORDS, get(records::changes))
            .route(
                routes::RECORD,
                get(records::get).put(records::put).delete(records::delete),
            )
            .route(routes::GROUP, delete(records::delete_group))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(accounts.clone());
        app = app.merge(api);
        if let Some(t) = &token_state {
            let issue = post(tokens::issue).layer(Extension(t.clone()));
            app = app.merge(
                Router::new()
                    .route(routes::TOKEN_ISSUE, issue)
                    .with_state(accounts),
            );
        }
    }
    if let Some(t) = token_state {
        app = app.merge(
            Router::new()
                .route(routes::TOKEN_DIRECTORY, get(tokens::directory))
                .route(routes::TOKEN_POLICY, get(tokens::policy))
                .with_state(t),
        );
    }
    if let Some(dir) = log_dir {
        app = app.merge(
            Router::new()
                .route("/log/{*path}", get(log::file))
                .with_state(Arc::new(dir)),
        );
    }
    if let Some(bundle) = web {
        app = app.merge(
            Router::new()
                .route("/", get(web::index))
                .route("/.well-known/sotto-bundle.sha256", get(web::bundle_digest))
                .route("/{*path}", get(web::file))
                .with_state(bundle),
        );
    }
    if https {
        app = app.layer(axum::middleware::map_response(strict_transport));
    }
    Ok(app)
}

/// Probes the pool's enclaves marked down, and re-reads its file, for as long as the router
/// lives (on the runtime building it; a router built outside one is never tended).
fn tend(pool: &Arc<pool::Pool>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pool = Arc::downgrade(pool);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(pool::PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(pool) = pool.upgrade() else { return };
            pool.tend().await;
        }
    });
}

/// Served over HTTPS, the site tells browsers to come back over HTTPS only, for a year, so a
/// network attacker cannot turn a later visit into plain HTTP and serve its own page (which
/// would then run the passkey ceremonies). Not for subdomains, which this server does not own.
async fn strict_transport(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    resp
}
