//! Privacy Pass on the server: the issuer, which blind-signs token requests for signed-in
//! accounts within a quota per period, and the redeemer on the relay's WebSocket upgrade, which
//! accepts a valid token once.
//!
//! Unlinkability is the point, so the two halves share nothing but the issuer key. Issuance
//! sees the account and only blinded messages, and stores a count per account for the current
//! period; redemption sees a token whose nonce issuance never saw, and stores only that nonce
//! and the key id. Neither logs an account, a nonce or a token. What is left to correlate is
//! time and network address, which the client's batch prefetching and an independent hop
//! (`sotto hop`) are for (docs/TOKENS.md).
//!
//! Trust: token requests and tokens come from the network and are checked by `sotto-tokens`
//! before they cost a signature or reach the store; the issuer key file is the server's own.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, SEC_WEBSOCKET_PROTOCOL, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use sotto_api::{
    routes, ApiError, IssuerDirectory, TokenKey, TokenPolicy, MAX_TOKEN_BATCH, TOKEN_REQUEST_TYPE,
    TOKEN_RESPONSE_TYPE,
};
use sotto_store::Store;
use sotto_tokens::{
    b64_encode, header, IssuerSecret, Token, TokenChallenge, TokenError, REQUEST_LEN, TOKEN_TYPE,
};
use tracing::{info, warn};

use crate::accounts::{now_secs, Accounts, Authed};

/// The WebSocket subprotocol the relay speaks. A browser, which cannot set `Authorization` on a
/// WebSocket, offers it together with `privatetoken.<token in unpadded base64url>`; the relay
/// answers with this one alone, so the token is never echoed.
pub const SUBPROTOCOL: &str = "sotto.relay";
/// The prefix of the subprotocol that carries a token.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "privatetoken.";

/// How the server issues and redeems tokens.
#[derive(Clone)]
pub struct TokensConfig {
    /// Where issuance counts and spent nonces live (the account store).
    pub store: Arc<dyn Store>,
    pub issuer: Arc<IssuerSecret>,
    /// The relay's challenge: this issuer's name, no redemption context (so clients can fetch
    /// tokens ahead of use), no origin restriction.
    pub challenge: TokenChallenge,
    /// Tokens one account may be issued per period.
    pub per_period: u32,
    pub period: Duration,
    /// The relay refuses an upgrade without a valid token.
    pub required: bool,
}

impl TokensConfig {
    /// Issuance for `issuer_name` (the server's host name), 1,000 tokens a day, not required.
    pub fn new(
        store: Arc<dyn Store>,
        issuer: Arc<IssuerSecret>,
        issuer_name: &str,
    ) -> Result<Self, TokenError> {
        let challenge = TokenChallenge::new(issuer_name);
        challenge.encode()?;
        Ok(TokensConfig {
            store,
            issuer,
            challenge,
            per_period: 1000,
            period: Duration::from_secs(24 * 3600),
            required: false,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("cannot read the token issuer key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the token issuer key {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the token issuer key {path} is unusable: {source}")]
    Key { path: String, source: TokenError },
}

/// The issuer key in `path` (PKCS#8 DER), made and saved (owner-only) if there is none yet.
/// Replacing the file rotates the key: tokens issued under the old one are refused from the
/// next start on.
pub fn load_or_create_key(path: &Path) -> Result<IssuerSecret, TokenKeyError> {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(der) => {
            let der = zeroize::Zeroizing::new(der);
            IssuerSecret::from_pkcs8_der(&der).map_err(|source| TokenKeyError::Key {
                path: shown,
                source,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = IssuerSecret::generate().map_err(|source| TokenKeyError::Key {
                path: shown.clone(),
                source,
            })?;
            let der = key.to_pkcs8_der().map_err(|source| TokenKeyError::Key {
                path: shown.clone(),
                source,
            })?;
            let write = |source| TokenKeyError::Write {
                path: shown.clone(),
                source,
            };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(write)?;
            file.write_all(&der).map_err(write)?;
            file.sync_all().map_err(write)?;
            Ok(key)
        }
        Err(source) => Err(TokenKeyError::Read {
            path: shown,
            source,
        }),
    }
}

/// The running issuer and redeemer.
pub(crate) struct Tokens {
    config: TokensConfig,
    digest: [u8; 32],
    policy: TokenPolicy,
}

impl Tokens {
    pub(crate) fn new(config: TokensConfig) -> Result<Self, TokenError> {
        let policy = TokenPolicy {
            challenge: config.challenge.encode()?,
            token_key: config.issuer.public().spki().to_vec(),
            required: config.required,
            per_period: config.per_period,
            period_secs: config.period.as_secs().max(1),
        };
        let digest = config.challenge.digest()?;
        // Spent nonces of retired keys can never match again; dropping them keeps the table
        // at the current key's tokens. Best effort, in the background.
        let store = config.store.clone();
        let keep = config.issuer.public().id();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.forget_spent_tokens(&keep).await {
                    warn!(error = %e, "could not forget the spent tokens of retired keys");
                }
            });
        }
        Ok(Tokens {
            config,
            digest,
            policy,
        })
    }

    fn period_secs(&self) -> u64 {
        self.policy.period_secs
    }
}

/// The issuer directory (RFC 9578 section 4).
pub(crate) async fn directory(State(t): State<Arc<Tokens>>) -> Response {
    let body = IssuerDirectory {
        issuer_request_uri: routes::TOKEN_ISSUE.to_owned(),
        token_keys: vec![TokenKey {
            token_type: TOKEN_TYPE,
            token_key: b64_encode(t.config.issuer.public().spki()),
            not_before: None,
        }],
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/private-token-issuer-directory"),
    );
    resp
}

pub(crate) async fn policy(State(t): State<Arc<Tokens>>) -> Json<TokenPolicy> {
    Json(t.policy.clone())
}

fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(ApiError {
            error: code.to_owned(),
            message,
            current_version: None,
        }),
    )
        .into_response()
}

/// Blind-signs a batch of token requests for a signed-in account, within its quota. The body
/// is one or more RFC 9578 token requests back to back (one alone is RFC 9578's request); the
/// answer is their token responses in the same order.
pub(crate) async fn issue(
    State(accounts): State<Arc<Accounts>>,
    auth: Authed,
    Extension(t): Extension<Arc<Tokens>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let typed = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(TOKEN_REQUEST_TYPE));
    if !typed {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            format!("token requests are sent as {TOKEN_REQUEST_TYPE}"),
        );
    }
    let count = body.len() / REQUEST_LEN;
    if body.is_empty() || !body.len().is_multiple_of(REQUEST_LEN) || count > MAX_TOKEN_BATCH {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_request",
            format!(
                "the body must be 1 to {MAX_TOKEN_BATCH} token requests of {REQUEST_LEN} bytes each"
            ),
        );
    }
    // Cheap checks before the quota is charged: each request is of this issuer's type and key.
    let issuer = t.config.issuer.clone();
    let ours = body
        .chunks(REQUEST_LEN)
        .all(|r| r[..2] == TOKEN_TYPE.to_be_bytes() && r[2] == issuer.public().truncated_id());
    if !ours {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_request",
            "a token request is not for this issuer's current key: fetch the issuer directory \
             again"
                .to_owned(),
        );
    }
    let now = now_secs();
    let period = now / t.period_secs();
    let grant = match accounts
        .store
        .take_tokens(auth.account, period, count as u32, t.config.per_period)
        .await
    {
        Ok(grant) => grant,
        Err(e) => {
            warn!(error = %e, "token quota check failed");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "the server could not check the token quota; try again".to_owned(),
            );
        }
    };
    if !grant.granted {
        let renews = t.period_secs() - now % t.period_secs();
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "token_quota",
            format!(
                "this account has used its tokens for this period ({} per {}; {} left, {} \
                 asked for): more are issued in {}",
                t.config.per_period,
                humanize(t.period_secs()),
                grant.remaining,
                count,
                humanize(renews)
            ),
        );
    }
    let signed = tokio::task::spawn_blocking(move || {
        body.chunks(REQUEST_LEN)
            .map(|request| issuer.sign(request))
            .collect::<Result<Vec<_>, _>>()
    })
    .await;
    match signed {
        Ok(Ok(responses)) => {
            info!(tokens = count, "tokens issued");
            let mut resp = responses.concat().into_response();
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TOKEN_RESPONSE_TYPE));
            resp
        }
        Ok(Err(e)) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_request",
            e.to_string(),
        ),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed while signing".to_owned(),
        ),
    }
}

/// "3 h 20 min", "45 s": for the quota message.
fn humanize(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// The token a relay upgrade carries: in `Authorization: PrivateToken token=…` or, from a
/// browser, in a `privatetoken.…` subprotocol. Other `Authorization` schemes are not the
/// relay's business and are ignored.
fn presented(headers: &HeaderMap) -> Option<Result<Token, TokenError>> {
    let authorization = headers
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| {
            v.trim_start()
                .get(..header::SCHEME.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(header::SCHEME))
        });
    if let Some(value) = authorization {
        return Some(header::parse_authorization(value));
    }
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(TOKEN_SUBPROTOCOL_PREFIX))
        .map(|b64| sotto_tokens::b64_decode(b64, "token").and_then(|bytes| Token::decode(&bytes)))
}

/// Redeems the token of a relay upgrade, if it carries one: a token presented is always
/// checked and spent, and with `required`, one must be. A refusal is a 401 carrying this
/// relay's challenge, and a sentence saying what was wrong.
pub(crate) async fn redeem(tokens: Option<&Tokens>, headers: &HeaderMap) -> Result<(), Response> {
    let presented = presented(headers);
    let Some(t) = tokens else {
        return match presented {
            None => Ok(()),
            Some(_) => Err(unauthorized(
                None,
                "this relay takes no Privacy Pass tokens: connect without one".to_owned(),
            )),
        };
    };
    let token = match presented {
        None if !t.config.required => return Ok(()),
        None => {
            warn!("refused a relay: no token");
            return Err(unauthorized(
                Some(t),
                "this relay requires a Privacy Pass token for each connection: sign in (sotto \
                 account login) so that the client can fetch tokens"
                    .to_owned(),
            ));
        }
        Some(Err(e)) => {
            warn!("refused a relay: a malformed token");
            return Err(unauthorized(
                Some(t),
                format!("the relay token was refused: {e}"),
            ));
        }
        Some(Ok(token)) => token,
    };
    if let Err(e) = t.config.issuer.public().verify(&token, &t.digest) {
        warn!("refused a relay: {e}");
        return Err(unauthorized(
            Some(t),
            format!("the relay token was refused: {e}"),
        ));
    }
    match t
        .config
        .store
        .spend_token(token.key_id(), token.nonce())
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => {
            warn!("refused a relay: a token spent before");
            Err(unauthorized(
                Some(t),
                "the relay token was refused: it was already spent (each token is accepted \
                 once)"
                    .to_owned(),
            ))
        }
        Err(e) => {
            warn!(error = %e, "recording a spent token failed");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the relay could not record the token as spent; try again",
            )
                .into_response())
        }
    }
}

fn unauthorized(tokens: Option<&Tokens>, message: String) -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, message).into_response();
    let challenge = tokens
        .and_then(|t| header::www_authenticate(&t.config.challenge, t.config.issuer.public()).ok());
    if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    resp
}
