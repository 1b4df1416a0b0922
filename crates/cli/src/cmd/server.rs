//! `sotto server`: only the untrusted server (relay, accounts, collateral, release log, web
//! client) in front of an enclave; and the account and web options `sotto up` shares.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use sotto_server::{ConnectionLimits, RelayLimits, ServerConfig};

use super::AnyError;
use crate::stack;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// An enclave's address; repeat it for several (each relay goes to the least loaded one
    /// that is up, or the one the client asks for by id).
    #[arg(
        long = "enclave",
        value_name = "ADDR",
        required_unless_present = "enclave_pool"
    )]
    pub enclaves: Vec<SocketAddr>,
    /// A file of enclave addresses, `ADDR` or `ADDR drain` per line (`#` comments), read again
    /// every few seconds: enclaves join, leave or drain (take no new relays, keep their own)
    /// without a restart.
    #[arg(long, value_name = "FILE")]
    pub enclave_pool: Option<PathBuf>,
    /// Folder of vendor-signed collateral to serve at /v1/collateral.
    #[arg(long)]
    pub collateral_dir: Option<PathBuf>,
    /// Where the default SQLite account store lives.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A release transparency log directory (from `sotto release publish`) to serve at
    /// /log/, where clients check it before talking to the enclave.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Development only: run a development release log (local keys and witnesses) under
    /// the data directory, publish this release statement (from `sotto enclave
    /// --write-release`) and serve the log, as `sotto up` does.
    #[arg(long, conflicts_with = "log_dir")]
    pub dev_release: Option<PathBuf>,
    #[command(flatten)]
    pub accounts: AccountsArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
}

/// Anonymous relay tokens (Privacy Pass, docs/TOKENS.md): issued to signed-in accounts within a
/// quota, redeemed one per relay connection without any account attached.
#[derive(clap::Args)]
pub struct TokenArgs {
    /// Refuse relay connections that carry no valid token (401 with the reason), so inference
    /// is metered per account without the relay learning whose it is.
    #[arg(long)]
    pub require_tokens: bool,
    /// Tokens one account may be issued per period.
    #[arg(long, default_value_t = 1000)]
    pub tokens_per_period: u32,
    /// The quota's period, e.g. `1day`, `12h`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1day")]
    pub token_period: std::time::Duration,
    /// The issuer's private key (PKCS#8 DER; made if missing; default
    /// `<data-dir>/token-issuer.der`). Replace it to rotate: tokens of the old key are refused.
    #[arg(long, value_name = "FILE")]
    pub token_key: Option<PathBuf>,
}

impl TokenArgs {
    /// The token configuration over the account store; the challenge names the host of the
    /// accounts' origin.
    pub fn config(
        &self,
        data_dir: &Path,
        accounts: &sotto_server::AccountsConfig,
    ) -> Result<sotto_server::TokensConfig, AnyError> {
        let path = self
            .token_key
            .clone()
            .unwrap_or_else(|| data_dir.join("token-issuer.der"));
        let key = sotto_server::load_or_create_key(&path)?;
        let issuer = accounts
            .origin
            .split_once("://")
            .map_or(accounts.origin.as_str(), |(_, host)| host);
        let mut config =
            sotto_server::TokensConfig::new(accounts.store.clone(), Arc::new(key), issuer)?;
        config.per_period = self.tokens_per_period;
        config.period = self.token_period;
        config.required = self.require_tokens;
        Ok(config)
    }
}

/// The account store, the WebAuthn relying party and the web client, shared with `sotto up`.
#[derive(clap::Args)]
pub struct AccountsArgs {
    /// Account store: a SQLite file (`sqlite:PATH`, default `<data-dir>/accounts.sqlite`) or a
    /// PostgreSQL URL (`postgres://user:password@host/db`).
    #[arg(long, env = "SOTTO_STORE")]
    pub store: Option<String>,
    /// WebAuthn relying party id: the domain users reach the server at.
    #[arg(long, default_value = "localhost")]
    pub rp_id: String,
    /// The web origin users reach the server at (default: http://localhost:<port>).
    #[arg(long)]
    pub origin: Option<String>,
    /// A built web client to serve at `/` (hashed at startup; the digest is printed and served
    /// at /.well-known/sotto-bundle.sha256).
    #[arg(long)]
    pub web_dir: Option<PathBuf>,
    /// Sign-up, sign-in and recovery attempts allowed per client address per minute.
    #[arg(long, default_value = "30")]
    pub auth_per_minute: NonZeroU32,
    /// How many of those attempts a client address may make at once before the rate applies.
    #[arg(long, default_value = "10")]
    pub auth_burst: NonZeroU32,
    /// Behind a reverse proxy: the header it sets to the client's address (`X-Forwarded-For`,
    /// whose last entry counts, or `Forwarded`), for the limits per client. Name it only when
    /// every request comes through that proxy: anyone can send such a header.
    #[arg(long, value_name = "HEADER")]
    pub trusted_proxy_header: Option<HeaderName>,
    /// Connections served at once.
    #[arg(long, default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Connections one client network (an IPv4 address, an IPv6 /64) may hold at once (not
    /// applied behind a trusted proxy).
    #[arg(long, default_value_t = ConnectionLimits::default().per_client)]
    pub max_connections_per_client: usize,
    #[command(flatten)]
    pub relay: RelayArgs,
}

/// The limits of the relay to the enclave (`/v1/relay`), each closing a relay with a
/// WebSocket close code and a readable reason.
#[derive(clap::Args)]
pub struct RelayArgs {
    /// Relays open at once on the whole server; more are closed with 1013 (try again later).
    #[arg(long, default_value_t = RelayLimits::default().max_total)]
    pub max_relays: usize,
    /// Relays one client network (an IPv4 address, an IPv6 /64; behind a trusted proxy, as its
    /// header reports it) may hold at once; more are closed with 1013. Keep it below
    /// --max-relays, so one network cannot take them all.
    #[arg(long, default_value_t = RelayLimits::default().per_client)]
    pub max_relays_per_client: usize,
    /// Seconds from the upgrade within which the enclave must answer the handshake (1008).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..),
        default_value_t = RelayLimits::default().handshake.as_secs())]
    pub relay_handshake_timeout: u64,
    /// Seconds a relay may pass no binary message either way before it is closed (1008);
    /// pings and pongs do not count.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..),
        default_value_t = RelayLimits::default().idle.as_secs())]
    pub relay_idle_timeout: u64,
    /// Seconds any one relay may stay open, however busy (1008); the client opens a new one.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..),
        default_value_t = RelayLimits::default().lifetime.as_secs())]
    pub relay_max_lifetime: u64,
    /// A web origin besides the server's own (e.g. https://chat.example) whose pages may open
    /// relays; repeat for more. Browser pages from any other origin are refused (403); clients
    /// that send no Origin (the CLI, a hop) are not browsers and are let through.
    #[arg(long = "relay-allowed-origin", value_name = "ORIGIN", value_parser = web_origin)]
    pub relay_allowed_origins: Vec<String>,
}

impl RelayArgs {
    pub fn limits(&self) -> RelayLimits {
        RelayLimits {
            max_total: self.max_relays,
            per_client: self.max_relays_per_client,
            handshake: Duration::from_secs(self.relay_handshake_timeout),
            idle: Duration::from_secs(self.relay_idle_timeout),
            lifetime: Duration::from_secs(self.relay_max_lifetime),
            allowed_origins: self.relay_allowed_origins.clone(),
        }
    }
}

/// `http(s)://host[:port]`, as a browser sends it in `Origin`.
fn web_origin(text: &str) -> Result<String, String> {
    if RelayLimits::is_origin(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a web origin: an origin is http(s)://host[:port], with no path"
        ))
    }
}

impl AccountsArgs {
    /// The accounts configuration for a server listening at `addr`, its store opened (a SQLite
    /// file under `data_dir` unless `--store` names another).
    pub async fn config(
        &self,
        data_dir: &Path,
        addr: SocketAddr,
    ) -> Result<sotto_server::AccountsConfig, AnyError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| stack::default_store(data_dir));
        let origin = self
            .origin
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", self.rp_id, addr.port()));
        let mut config = stack::accounts_config(&store, &self.rp_id, &origin).await?;
        config.auth_rate = sotto_server::RateLimit {
            per_minute: self.auth_per_minute.get(),
            burst: self.auth_burst.get(),
        };
        Ok(config)
    }

    /// The network settings these options give the server: the trusted proxy header and the
    /// connection limits (timeouts keep their defaults, documented on `ConnectionLimits`).
    pub fn apply_network(&self, config: &mut ServerConfig) {
        config.trusted_proxy_header = self.trusted_proxy_header.clone();
        config.connections.max_connections = self.max_connections;
        config.connections.per_client = self.max_connections_per_client;
        config.relay = self.relay.limits();
    }

    /// The web client of `--web-dir`, hashed now.
    pub fn web_bundle(&self) -> Result<Option<Arc<sotto_server::Bundle>>, AnyError> {
        let Some(dir) = &self.web_dir else {
            return Ok(None);
        };
        let bundle = sotto_server::Bundle::load(dir)
            .map_err(|e| format!("web client {}: {e}", dir.display()))?;
        eprintln!(
            "web client {} (bundle sha256 {})",
            dir.display(),
            bundle.digest()
        );
        Ok(Some(Arc::new(bundle)))
    }
}

pub async fn run(args: Args) -> Result<ExitCode, AnyError> {
    let data_dir = args.data_dir.unwrap_or_else(crate::local::default_data_dir);
    // The server's logs, like the enclave's: stderr and `<data-dir>/logs/sotto.log`.
    stack::init_logging(&data_dir)?;
    let listener = stack::bind(&args.listen).await?;
    let addr = stack::local_addr(&listener);
    let mut config = ServerConfig::with_pool(args.enclaves, args.enclave_pool);
    config.collateral_dir = args.collateral_dir;
    config.log_dir = args.log_dir;
    let mut _refresh = None;
    if let Some(path) = args.dev_release {
        let (_, statement) = super::release::manifest::read_statement(&path)?;
        let sotto_release::Statement::Release(release) = statement else {
            return Err(format!("{} is not a release statement", path.display()).into());
        };
        let devlog = crate::devlog::DevLog::start(&data_dir, *release).await?;
        if let Some(dir) = &config.collateral_dir {
            devlog.write_trust(dir)?;
        }
        eprintln!(
            "development release log {} (size {}), trust {}",
            devlog.trust.origin(),
            devlog.size,
            devlog.trust_path.display()
        );
        config.log_dir = Some(devlog.public_dir.clone());
        _refresh = Some(devlog.spawn_refresh());
    }
    let accounts = args.accounts.config(&data_dir, addr).await?;
    config.tokens = Some(args.tokens.config(&data_dir, &accounts)?);
    config.accounts = Some(accounts);
    config.web = args.accounts.web_bundle()?;
    args.accounts.apply_network(&mut config);
    println!("sotto server listening on http://{addr}");
    stack::run_server(listener, config).await?;
    Ok(ExitCode::SUCCESS)
}
