//! Passkey accounts: WebAuthn sign-up, sign-in (discoverable credentials, user verification
//! required), recovery-code sign-in, sessions, and passkey management.
//!
//! The server verifies signatures from authenticators and never sees key material: clients
//! strip PRF outputs before sending responses, the recovery sign-in secret is compared with a
//! stored SHA-256, and sessions are random tokens kept only as hashes. Ceremony state lives in
//! memory for five minutes; a server restart only cancels ceremonies in flight.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use sotto_api::{
    b64, passkey_wrap_id, AccountInfo, CeremonyStarted, PasskeyInfo, RecoverSignIn,
    RecoveryVerifier, RegisterFinish, RegisterStart, SessionGranted, SignInFinish, SESSION_COOKIE,
};
use sotto_store::{AccountId, CredentialRow, Store};
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::error::{ConfigError, Failure};
use crate::extract::Body;
use crate::ratelimit::Limiter;
use crate::AccountsConfig;

const CEREMONY_TTL: Duration = Duration::from_secs(300);
const MAX_CEREMONIES: usize = 10_000;

enum Ceremony {
    NewAccount {
        account: Uuid,
        state: PasskeyRegistration,
    },
    AddPasskey {
        account: AccountId,
        state: PasskeyRegistration,
    },
    SignIn {
        state: DiscoverableAuthentication,
    },
}

pub(crate) struct Accounts {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: AccountsConfig,
    webauthn: Webauthn,
    limiter: Limiter,
    ceremonies: Mutex<HashMap<String, (Ceremony, Instant)>>,
    secure_cookie: bool,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_token() -> Result<String, Failure> {
    let mut t = [0u8; 32];
    getrandom::getrandom(&mut t).map_err(|_| Failure::Internal)?;
    Ok(b64::encode(&t))
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub(crate) fn account_label(id: AccountId) -> String {
    Uuid::from_bytes(id.0).to_string()
}

impl Accounts {
    pub fn new(config: AccountsConfig) -> Result<Self, ConfigError> {
        let fail = |reason: String| ConfigError::RelyingParty {
            rp_id: config.rp_id.clone(),
            origin: config.origin.clone(),
            reason,
        };
        let origin = Url::parse(&config.origin).map_err(|e| fail(e.to_string()))?;
        let webauthn = WebauthnBuilder::new(&config.rp_id, &origin)
            .map_err(|e| fail(e.to_string()))?
            .rp_name("Sotto")
            .allow_any_port(config.any_port)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Accounts {
            store: config.store.clone(),
            limiter: Limiter::new(config.auth_rate),
            secure_cookie: origin.scheme() == "https",
            config,
            webauthn,
            ceremonies: Mutex::new(HashMap::new()),
        })
    }

    fn begin(&self, ceremony: Ceremony) -> Result<String, Failure> {
        let id = random_token()?;
        let now = Instant::now();
        let mut map = self.ceremonies.lock().map_err(|_| Failure::Internal)?;
        map.retain(|_, (_, at)| now.saturating_duration_since(*at) < CEREMONY_TTL);
        if map.len() >= MAX_CEREMONIES {
            return Err(Failure::RateLimited);
        }
        map.insert(id.clone(), (ceremony, now));
        Ok(id)
    }

    fn take(&self, id: &str) -> Result<Ceremony, Failure> {
        let mut map = self.ceremonies.lock().map_err(|_| Failure::Internal)?;
        match map.remove(id) {
            Some((c, at)) if at.elapsed() < CEREMONY_TTL => Ok(c),
            _ => Err(Failure::WebAuthn(
                "that sign-in or sign-up attempt expired or was already used; start again",
            )),
        }
    }

    fn limit(&self, parts_ip: IpAddr) -> Result<(), Failure> {
        if self.limiter.allow(parts_ip, Instant::now()) {
            Ok(())
        } else {
            Err(Failure::RateLimited)
        }
    }

    async fn grant(
        &self,
        account: AccountId,
        credential_id: Option<Vec<u8>>,
    ) -> Result<Response, Failure> {
        let token = random_token()?;
        let ttl = self.config.session_ttl.as_secs();
        let now = now_secs();
        self.store
            .create_session(token_hash(&token), account, now.saturating_add(ttl))
            .await?;
        // Expired sessions are refused anyway; sweeping them here keeps the table at the
        // number of live ones without a background task. A failed sweep is retried next time.
        if let Err(e) = self.store.purge_sessions(now).await {
            warn!(error = %e, "could not purge expired sessions");
        }
        let cookie = format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{}",
            if self.secure_cookie { "; Secure" } else { "" }
        );
        let body = SessionGranted {
            account_id: account_label(account),
            session_token: token,
            credential_id,
        };
        let mut resp = Json(body).into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
        Ok(resp)
    }

    /// The options for `create`, requiring a discoverable credential (sign-in has no user name)
    /// and user verification (webauthn-rs already requires it).
    fn creation_options(
        &self,
        user: Uuid,
        name: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<(serde_json::Value, PasskeyRegistration), Failure> {
        let exclude = (!exclude.is_empty()).then_some(exclude);
        let (ccr, state) = self
            .webauthn
            .start_passkey_registration(user, name, name, exclude)
            .map_err(|_| Failure::Internal)?;
        let mut options = serde_json::to_value(ccr).map_err(|_| Failure::Internal)?;
        if let Some(sel) = options
            .get_mut("publicKey")
            .and_then(|p| p.get_mut("authenticatorSelection"))
            .and_then(|s| s.as_object_mut())
        {
            sel.insert("residentKey".into(), "required".into());
            sel.insert("requireResidentKey".into(), true.into());
        }
        Ok((options, state))
    }

    fn finish_registration(
        &self,
        credential: serde_json::Value,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, Failure> {
        let reg: RegisterPublicKeyCredential = serde_json::from_value(credential)
            .map_err(|_| Failure::BadRequest("the passkey response is malformed"))?;
        self.webauthn
            .finish_passkey_registration(&reg, state)
            .map_err(|_| Failure::WebAuthn("the new passkey's response did not verify"))
    }

    async fn passkeys(&self, account: AccountId) -> Result<Vec<(CredentialRow, Passkey)>, Failure> {
        let rows = self.store.credentials(account).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                serde_json::from_slice::<Passkey>(&row.passkey)
                    .ok()
                    .map(|p| (row, p))
            })
            .collect())
    }
}

fn row_for(passkey: &Passkey, name: &str, now: u64) -> Result<CredentialRow, Failure> {
    Ok(CredentialRow {
        credential_id: passkey.cred_id().to_vec(),
        passkey: serde_json::to_vec(passkey).map_err(|_| Failure::Internal)?,
        name: if name.trim().is_empty() {
            "passkey".to_owned()
        } else {
            name.chars().take(64).collect()
        },
        created_at: now,
        last_used_at: None,
    })
}

/// The client's address, for rate limits (all clients share one bucket when the server was not
/// started with connection info).
pub(crate) struct ClientIp(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// A request from a signed-in account: a live session token, as `Authorization: Bearer` (CLI)
/// or the session cookie (browser).
pub(crate) struct Authed {
    pub account: AccountId,
    token_hash: [u8; 32],
}

fn session_token(parts: &Parts) -> Option<String> {
    if let Some(v) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_owned());
    }
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<Arc<Accounts>> for Authed {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        accounts: &Arc<Accounts>,
    ) -> Result<Self, Failure> {
        let token = session_token(parts).ok_or(Failure::Unauthorized)?;
        let token_hash = token_hash(&token);
        let account = accounts
            .store
            .session(&token_hash, now_secs())
            .await?
            .ok_or(Failure::Unauthorized)?;
        Ok(Authed {
            account,
            token_hash,
        })
    }
}

pub(crate) async fn register_start(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
    Body(req): Body<RegisterStart>,
) -> Result<Json<CeremonyStarted>, Failure> {
    a.limit(ip)?;
    let account = Uuid::new_v4();
    let name: String = req.display_name.trim().chars().take(64).collect();
    let name = if name.is_empty() {
        "Sotto".to_owned()
    } else {
        name
    };
    let (options, state) = a.creation_options(account, &name, Vec::new())?;
    let ceremony_id = a.begin(Ceremony::NewAccount { account, state })?;
    Ok(Json(CeremonyStarted {
        ceremony_id,
        options,
    }))
}

pub(crate) async fn register_finish(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
    Body(req): Body<RegisterFinish>,
) -> Result<Response, Failure> {
    a.limit(ip)?;
    let Ceremony::NewAccount { account, state } = a.take(&req.ceremony_id)? else {
        return Err(Failure::WebAuthn("that ceremony is not a sign-up"));
    };
    let recovery = req.recovery.ok_or(Failure::BadRequest(
        "a new account needs its recovery verifier",
    ))?;
    let passkey = a.finish_registration(req.credential, &state)?;
    let now = now_secs();
    let row = row_for(&passkey, &req.passkey_name, now)?;
    let id = AccountId(*account.as_bytes());
    a.store
        .create_account(id, now, row, recovery.lookup, recovery.verifier)
        .await?;
    info!("account created");
    a.grant(id, Some(passkey.cred_id().to_vec())).await
}

pub(crate) async fn sign_in_start(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
) -> Result<Json<CeremonyStarted>, Failure> {
    a.limit(ip)?;
    let (rcr, state) = a
        .webauthn
        .start_discoverable_authentication()
        .map_err(|_| Failure::Internal)?;
    let options = serde_json::to_value(rcr).map_err(|_| Failure::Internal)?;
    let ceremony_id = a.begin(Ceremony::SignIn { state })?;
    Ok(Json(CeremonyStarted {
        ceremony_id,
        options,
    }))
}

pub(crate) async fn sign_in_finish(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
    Body(req): Body<SignInFinish>,
) -> Result<Response, Failure> {
    a.limit(ip)?;
    let Ceremony::SignIn { state } = a.take(&req.ceremony_id)? else {
        return Err(Failure::WebAuthn("that ceremony is not a sign-in"));
    };
    let cred: PublicKeyCredential = serde_json::from_value(req.credential)
        .map_err(|_| Failure::BadRequest("the passkey response is malformed"))?;
    let refused = || Failure::WebAuthn("this passkey is not registered with any account");
    let (user, cred_id) = a
        .webauthn
        .identify_discoverable_authentication(&cred)
        .map_err(|_| refused())?;
    let account = AccountId(*user.as_bytes());
    let cred_id = cred_id.to_vec();
    let mut passkey = a
        .passkeys(account)
        .await?
        .into_iter()
        .find(|(row, _)| row.credential_id == cred_id)
        .map(|(_, p)| p)
        .ok_or_else(refused)?;
    let result = a
        .webauthn
        .finish_discoverable_authentication_v2(&cred, state, &passkey)
        .map_err(|_| Failure::WebAuthn("the passkey's signature did not verify"))?;
    if !result.user_verified() {
        return Err(Failure::WebAuthn(
            "the authenticator did not verify the user",
        ));
    }
    passkey.update_credential(&result);
    let bytes = serde_json::to_vec(&passkey).map_err(|_| Failure::Internal)?;
    a.store
        .touch_credential(account, &cred_id, &bytes, now_secs())
        .await?;
    info!("signed in with a passkey");
    a.grant(account, Some(cred_id)).await
}

pub(crate) async fn recover(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
    Body(req): Body<RecoverSignIn>,
) -> Result<Response, Failure> {
    a.limit(ip)?;
    let found = a.store.find_recovery(&req.lookup).await?;
    let given: [u8; 32] = Sha256::digest(req.secret).into();
    match found {
        Some((account, verifier)) if bool::from(given.ct_eq(&verifier)) => {
            info!("signed in with a recovery code");
            a.grant(account, None).await
        }
        _ => Err(Failure::BadRecovery),
    }
}

pub(crate) async fn sign_out(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
) -> Result<Response, Failure> {
    a.store.delete_session(&auth.token_hash).await?;
    Ok(clear_cookie(
        Json(serde_json::json!({ "signed_out": true })).into_response(),
    ))
}

fn clear_cookie(mut resp: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    )) {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    resp
}

pub(crate) async fn account_info(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
) -> Result<Json<AccountInfo>, Failure> {
    let row = a
        .store
        .account(auth.account)
        .await?
        .ok_or(Failure::Unauthorized)?;
    let passkeys = a
        .store
        .credentials(auth.account)
        .await?
        .into_iter()
        .map(|c| PasskeyInfo {
            credential_id: c.credential_id,
            name: c.name,
            created_at: c.created_at,
            last_used_at: c.last_used_at,
        })
        .collect();
    Ok(Json(AccountInfo {
        account_id: account_label(auth.account),
        created_at: row.created_at,
        passkeys,
        has_recovery: row.has_recovery,
        quota: a.config.quota,
        usage: row.usage,
    }))
}

pub(crate) async fn delete_account(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
) -> Result<Response, Failure> {
    a.store.delete_account(auth.account).await?;
    info!("account deleted");
    Ok(clear_cookie(
        Json(serde_json::json!({ "deleted": true })).into_response(),
    ))
}

pub(crate) async fn set_recovery(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Body(req): Body<RecoveryVerifier>,
) -> Result<Json<serde_json::Value>, Failure> {
    a.store
        .set_recovery(auth.account, req.lookup, req.verifier)
        .await?;
    Ok(Json(serde_json::json!({ "recovery": "replaced" })))
}

pub(crate) async fn add_passkey_start(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
) -> Result<Json<CeremonyStarted>, Failure> {
    let existing = a
        .store
        .credentials(auth.account)
        .await?
        .into_iter()
        .map(|c| c.credential_id)
        .collect();
    let (options, state) =
        a.creation_options(Uuid::from_bytes(auth.account.0), "Sotto", existing)?;
    let ceremony_id = a.begin(Ceremony::AddPasskey {
        account: auth.account,
        state,
    })?;
    Ok(Json(CeremonyStarted {
        ceremony_id,
        options,
    }))
}

pub(crate) async fn add_passkey_finish(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Body(req): Body<RegisterFinish>,
) -> Result<Json<PasskeyInfo>, Failure> {
    let Ceremony::AddPasskey { account, state } = a.take(&req.ceremony_id)? else {
        return Err(Failure::WebAuthn("that ceremony is not adding a passkey"));
    };
    if account != auth.account {
        return Err(Failure::WebAuthn(
            "that ceremony belongs to another session",
        ));
    }
    let passkey = a.finish_registration(req.credential, &state)?;
    let row = row_for(&passkey, &req.passkey_name, now_secs())?;
    a.store.add_credential(auth.account, row.clone()).await?;
    info!("passkey added");
    Ok(Json(PasskeyInfo {
        credential_id: row.credential_id,
        name: row.name,
        created_at: row.created_at,
        last_used_at: None,
    }))
}

pub(crate) async fn remove_passkey(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Path(credential): Path<String>,
) -> Result<Json<serde_json::Value>, Failure> {
    let cred = b64::decode(&credential)
        .map_err(|_| Failure::BadRequest("the credential id is not base64url"))?;
    if !a.store.delete_credential(auth.account, &cred).await? {
        return Err(Failure::NotFound("passkey"));
    }
    a.store
        .delete_record(auth.account, &passkey_wrap_id(&cred), None)
        .await?;
    info!("passkey removed");
    Ok(Json(serde_json::json!({ "removed": true })))
}
