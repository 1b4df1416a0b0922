//! Passkey accounts: WebAuthn sign-up, sign-in (discoverable credentials, user verification
//! required), recovery-code sign-in, sessions, step-up for sensitive operations, and passkey
//! management.
//!
//! The server verifies signatures from authenticators and never sees key material: clients
//! strip PRF outputs before sending responses, the recovery sign-in secret is compared with a
//! stored SHA-256, and sessions are random tokens kept only as hashes. Ceremony state and
//! step-up proofs live for five minutes in the store (`Store::put_pending`), as do the rate
//! limits' buckets ([`crate::ratelimit`]), so every server on one database sees them: a
//! ceremony started through one server finishes through another, and a limit holds across
//! all of them. Each entry is counted against an owner, so no owner can fill the table for
//! everyone else: a signed-in account holds at most [`PER_ACCOUNT`] and a new one pushes out
//! its own oldest (a loop in one account only cancels that account's ceremonies); a client
//! network holds at most [`PER_NET`] unauthenticated ones and is refused beyond that (pushing
//! out would let one network cancel its neighbours' sign-ins behind the same address).
//!
//! A session alone reads and writes the history. Changing how the account is reached (the
//! recovery code, its passkeys) or deleting it needs a *step-up proof*: a fresh passkey
//! assertion for that operation, earned by `reauth/start` + `reauth/finish`, valid for five
//! minutes, once, for the session that earned it. A stolen session token therefore cannot lock
//! the owner out or take the account over.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sotto_api::{
    b64, passkey_wrap_id, AccountInfo, CeremonyStarted, NewRecovery, PasskeyInfo, PutResult,
    Reauth, ReauthFinish, Reauthed, RecoverSignIn, RegisterFinish, RegisterStart, Sensitive,
    SessionGranted, SignInFinish, RECOVERY_WRAP_ID, SECURE_SESSION_COOKIE, SESSION_COOKIE,
};
use sotto_store::{
    AccountId, CredentialRow, PendingKind, PendingLimits, PendingOwner, PendingPut, RecordWrite,
    Store,
};
use subtle::ConstantTimeEq;
use tracing::{info, warn};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::address::{client_ip, Net};
use crate::error::{ConfigError, Failure};
use crate::extract::{Body, Proven};
use crate::ratelimit;
use crate::AccountsConfig;

const CEREMONY_TTL: Duration = Duration::from_secs(300);
/// Long enough to confirm and then act, short enough that a proof left behind is soon useless.
const PROOF_TTL: Duration = Duration::from_secs(300);
/// Entries one account may hold at once (ceremonies and proofs are counted apart).
const PER_ACCOUNT: u32 = 4;
/// Unauthenticated ceremonies one client network may hold at once. Generous, for many people
/// behind one NAT; the rate limit per network bounds how fast it fills.
const PER_NET: u32 = 64;

/// Passkeys one account may register: bounds the account's answer and every ceremony's
/// credential list.
const MAX_PASSKEYS: usize = 32;

/// A ceremony between its start and its finish, stored as JSON (webauthn-rs's state types are
/// serializable for exactly this: state kept server-side, in the operator's own database).
#[derive(Serialize, Deserialize)]
enum Ceremony {
    NewAccount {
        account: Uuid,
        state: PasskeyRegistration,
    },
    SignIn {
        state: DiscoverableAuthentication,
    },
    /// Opened by a signed-in session, which alone may finish it.
    Own {
        session: [u8; 32],
        step: OwnStep,
    },
}

#[derive(Serialize, Deserialize)]
enum OwnStep {
    AddPasskey {
        state: PasskeyRegistration,
    },
    Reauth {
        operation: Sensitive,
        state: PasskeyAuthentication,
    },
}

/// A step-up proof: for one operation of one session (the account is its owner in the store).
#[derive(Serialize, Deserialize)]
struct Proof {
    session: [u8; 32],
    operation: Sensitive,
}

pub(crate) struct Accounts {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: AccountsConfig,
    webauthn: Webauthn,
    /// The origin is HTTPS: the cookie is `Secure` and `__Host-` prefixed.
    secure: bool,
    proxy_header: Option<HeaderName>,
}

/// Wall-clock milliseconds: what the store's expiries and buckets count in, the same on every
/// server of a deployment.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

fn expired() -> Failure {
    Failure::WebAuthn("that passkey ceremony expired or was already used; start again")
}

impl Accounts {
    pub fn new(
        config: AccountsConfig,
        proxy_header: Option<HeaderName>,
    ) -> Result<Self, ConfigError> {
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
            secure: origin.scheme() == "https",
            config,
            webauthn,
            proxy_header,
        })
    }

    /// Every minute, for as long as these accounts are served (on the runtime building them):
    /// forgets expired sessions, ceremonies and proofs, and rate-limit buckets idle for a
    /// whole refill period (which are full again, the same as none). Any server of a
    /// deployment may do it; a failure is retried a minute later.
    pub(crate) fn maintain(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let accounts = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(a) = accounts.upgrade() else { return };
                let now = now_ms();
                let idle_before = now.saturating_sub(millis(a.config.auth_rate.refill()));
                if let Err(e) = a.store.purge_transient(now, idle_before).await {
                    warn!(error = %e, "could not purge expired ceremonies and rate limits");
                }
                if let Err(e) = a.store.purge_sessions(now / 1000).await {
                    warn!(error = %e, "could not purge expired sessions");
                }
            }
        });
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    fn pending_limits(&self) -> PendingLimits {
        PendingLimits {
            per_account: PER_ACCOUNT,
            per_net: PER_NET,
            total: self.config.max_pending,
        }
    }

    /// Opens a ceremony, answering with its id and the `options` for the authenticator.
    async fn begin(
        &self,
        ceremony: Ceremony,
        owner: PendingOwner,
        options: serde_json::Value,
    ) -> Result<Json<CeremonyStarted>, Failure> {
        let ceremony_id = random_token()?;
        let value = serde_json::to_vec(&ceremony).map_err(|_| Failure::Internal)?;
        let now = now_ms();
        let put = self
            .store
            .put_pending(
                PendingKind::Ceremony,
                &token_hash(&ceremony_id),
                owner,
                &value,
                now,
                now.saturating_add(millis(CEREMONY_TTL)),
                self.pending_limits(),
            )
            .await?;
        match put {
            PendingPut::Stored => Ok(Json(CeremonyStarted {
                ceremony_id,
                options,
            })),
            PendingPut::NetFull => Err(Failure::RateLimited),
            PendingPut::TableFull => Err(Failure::Busy),
        }
    }

    async fn take(&self, id: &str) -> Result<(Ceremony, PendingOwner), Failure> {
        let (value, owner) = self
            .store
            .take_pending(PendingKind::Ceremony, &token_hash(id), now_ms())
            .await?
            .ok_or_else(expired)?;
        let ceremony = serde_json::from_slice(&value).map_err(|_| Failure::Internal)?;
        Ok((ceremony, owner))
    }

    /// Opens a ceremony that only this session may finish ([`Accounts::take_own`]).
    async fn begin_own(
        &self,
        auth: &Authed,
        step: OwnStep,
        options: serde_json::Value,
    ) -> Result<Json<CeremonyStarted>, Failure> {
        let ceremony = Ceremony::Own {
            session: auth.token_hash,
            step,
        };
        self.begin(ceremony, PendingOwner::Account(auth.account), options)
            .await
    }

    /// Takes a ceremony that this session opened. `pick` takes what the caller needs from it
    /// when it is of the kind the caller finishes; else the error is `not_kind`.
    async fn take_own<T>(
        &self,
        auth: &Authed,
        id: &str,
        not_kind: &'static str,
        pick: impl FnOnce(OwnStep) -> Option<T>,
    ) -> Result<T, Failure> {
        let (ceremony, owner) = self.take(id).await?;
        let (Ceremony::Own { session, step }, PendingOwner::Account(account)) = (ceremony, owner)
        else {
            return Err(Failure::WebAuthn(not_kind));
        };
        let picked = pick(step).ok_or(Failure::WebAuthn(not_kind))?;
        if account != auth.account || !bool::from(session.ct_eq(&auth.token_hash)) {
            return Err(Failure::WebAuthn(
                "that ceremony belongs to another session",
            ));
        }
        Ok(picked)
    }

    async fn limit(&self, ip: IpAddr) -> Result<(), Failure> {
        let key = ratelimit::net_key(Net::of(ip));
        ratelimit::allow(self.store.as_ref(), &key, self.config.auth_rate).await
    }

    async fn limit_account(&self, account: AccountId) -> Result<(), Failure> {
        let key = ratelimit::account_key(account);
        ratelimit::allow(self.store.as_ref(), &key, self.config.auth_rate).await
    }

    async fn issue_proof(
        &self,
        account: AccountId,
        session: [u8; 32],
        operation: Sensitive,
    ) -> Result<String, Failure> {
        let proof = random_token()?;
        let value =
            serde_json::to_vec(&Proof { session, operation }).map_err(|_| Failure::Internal)?;
        let now = now_ms();
        let put = self
            .store
            .put_pending(
                PendingKind::Proof,
                &token_hash(&proof),
                PendingOwner::Account(account),
                &value,
                now,
                now.saturating_add(millis(PROOF_TTL)),
                self.pending_limits(),
            )
            .await?;
        match put {
            PendingPut::Stored => Ok(proof),
            PendingPut::NetFull | PendingPut::TableFull => Err(Failure::Busy),
        }
    }

    /// Uses up `proof`: it must have been earned by this session for this very operation.
    async fn consume_proof(
        &self,
        auth: &Authed,
        proof: &str,
        operation: &Sensitive,
    ) -> Result<(), Failure> {
        let taken = self
            .store
            .take_pending(PendingKind::Proof, &token_hash(proof), now_ms())
            .await?;
        let Some((value, PendingOwner::Account(account))) = taken else {
            return Err(Failure::ReauthRequired);
        };
        match serde_json::from_slice::<Proof>(&value) {
            Ok(p)
                if account == auth.account
                    && bool::from(p.session.ct_eq(&auth.token_hash))
                    && p.operation == *operation =>
            {
                Ok(())
            }
            _ => Err(Failure::ReauthRequired),
        }
    }

    async fn grant(
        &self,
        account: AccountId,
        credential_id: Option<Vec<u8>>,
        bearer: bool,
        step_up: Option<Sensitive>,
    ) -> Result<Response, Failure> {
        let token = random_token()?;
        let hash = token_hash(&token);
        let ttl = self.config.session_ttl.as_secs();
        let now = now_secs();
        self.store
            .create_session(
                hash,
                account,
                credential_id.as_deref(),
                now.saturating_add(ttl),
            )
            .await?;
        // Expired sessions are refused anyway; sweeping them here keeps the table at the
        // number of live ones without a background task. A failed sweep is retried next time.
        if let Err(e) = self.store.purge_sessions(now).await {
            warn!(error = %e, "could not purge expired sessions");
        }
        let reauth = match step_up {
            Some(op) => Some(self.issue_proof(account, hash, op).await?),
            None => None,
        };
        let cookie = (!bearer).then(|| {
            format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{}",
                self.cookie_name(),
                if self.secure { "; Secure" } else { "" }
            )
        });
        let body = SessionGranted {
            account_id: account_label(account),
            session_token: bearer.then_some(token),
            credential_id,
            reauth,
        };
        let mut resp = Json(body).into_response();
        if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
        Ok(resp)
    }

    fn clear_cookie(&self, mut resp: Response) -> Response {
        let cookie = format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            self.cookie_name(),
            if self.secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(SET_COOKIE, v);
        }
        resp
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

    /// Saves a passkey's state after an assertion (its signature counter, backup flags).
    async fn touch(&self, account: AccountId, passkey: &Passkey) -> Result<(), Failure> {
        let bytes = serde_json::to_vec(passkey).map_err(|_| Failure::Internal)?;
        self.store
            .touch_credential(account, passkey.cred_id(), &bytes, now_secs())
            .await?;
        Ok(())
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

/// The client's address, for rate limits: the socket peer, or what the configured trusted
/// proxy header says (all clients share one bucket when the server was not started with
/// connection info).
pub(crate) struct ClientIp(IpAddr);

impl FromRequestParts<Arc<Accounts>> for ClientIp {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, a: &Arc<Accounts>) -> Result<Self, Failure> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            a.proxy_header.as_ref(),
        )))
    }
}

/// A request from a signed-in account: a live session token, as `Authorization: Bearer` (CLI)
/// or the session cookie (browser).
pub(crate) struct Authed {
    pub account: AccountId,
    token_hash: [u8; 32],
}

fn session_token(parts: &Parts, cookie: &str) -> Option<String> {
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
        .find(|(k, _)| *k == cookie)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<Arc<Accounts>> for Authed {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        accounts: &Arc<Accounts>,
    ) -> Result<Self, Failure> {
        let token = session_token(parts, accounts.cookie_name()).ok_or(Failure::Unauthorized)?;
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
    a.limit(ip).await?;
    let account = Uuid::new_v4();
    let name: String = req.display_name.trim().chars().take(64).collect();
    let name = if name.is_empty() {
        "Sotto".to_owned()
    } else {
        name
    };
    let (options, state) = a.creation_options(account, &name, Vec::new())?;
    a.begin(
        Ceremony::NewAccount { account, state },
        ratelimit::net_owner(Net::of(ip)),
        options,
    )
    .await
}

pub(crate) async fn register_finish(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
    Body(req): Body<RegisterFinish>,
) -> Result<Response, Failure> {
    a.limit(ip).await?;
    let (Ceremony::NewAccount { account, state }, _) = a.take(&req.ceremony_id).await? else {
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
    a.grant(id, Some(passkey.cred_id().to_vec()), req.bearer, None)
        .await
}

pub(crate) async fn sign_in_start(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
) -> Result<Json<CeremonyStarted>, Failure> {
    a.limit(ip).await?;
    let (rcr, state) = a
        .webauthn
        .start_discoverable_authentication()
        .map_err(|_| Failure::Internal)?;
    let options = serde_json::to_value(rcr).map_err(|_| Failure::Internal)?;
    a.begin(
        Ceremony::SignIn { state },
        ratelimit::net_owner(Net::of(ip)),
        options,
    )
    .await
}

pub(crate) async fn sign_in_finish(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
    Body(req): Body<SignInFinish>,
) -> Result<Response, Failure> {
    a.limit(ip).await?;
    let (Ceremony::SignIn { state }, _) = a.take(&req.ceremony_id).await? else {
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
    a.touch(account, &passkey).await?;
    info!("signed in with a passkey");
    a.grant(account, Some(cred_id), req.bearer, None).await
}

pub(crate) async fn recover(
    State(a): State<Arc<Accounts>>,
    ClientIp(ip): ClientIp,
    Body(req): Body<RecoverSignIn>,
) -> Result<Response, Failure> {
    a.limit(ip).await?;
    let found = a.store.find_recovery(&req.lookup).await?;
    let given: [u8; 32] = Sha256::digest(req.secret).into();
    match found {
        Some((account, verifier)) if bool::from(given.ct_eq(&verifier)) => {
            info!("signed in with a recovery code");
            a.grant(account, None, req.bearer, Some(Sensitive::AddPasskey))
                .await
        }
        _ => Err(Failure::BadRecovery),
    }
}

pub(crate) async fn sign_out(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
) -> Result<Response, Failure> {
    a.store.delete_session(&auth.token_hash).await?;
    Ok(a.clear_cookie(Json(serde_json::json!({ "signed_out": true })).into_response()))
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

/// `reauth/start`: a passkey assertion for one sensitive operation, limited to this account's
/// passkeys (any of them: a recovery session has none of its own).
pub(crate) async fn reauth_start(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Body(operation): Body<Sensitive>,
) -> Result<Json<CeremonyStarted>, Failure> {
    a.limit_account(auth.account).await?;
    let passkeys: Vec<Passkey> = a
        .passkeys(auth.account)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let (rcr, state) = a
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|_| Failure::WebAuthn("this account has no passkey to confirm with"))?;
    let options = serde_json::to_value(rcr).map_err(|_| Failure::Internal)?;
    a.begin_own(&auth, OwnStep::Reauth { operation, state }, options)
        .await
}

pub(crate) async fn reauth_finish(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Body(req): Body<ReauthFinish>,
) -> Result<Json<Reauthed>, Failure> {
    let not_kind = "that ceremony is not a confirmation";
    let (operation, state) = a
        .take_own(&auth, &req.ceremony_id, not_kind, |step| match step {
            OwnStep::Reauth { operation, state } => Some((operation, state)),
            OwnStep::AddPasskey { .. } => None,
        })
        .await?;
    let cred: PublicKeyCredential = serde_json::from_value(req.credential)
        .map_err(|_| Failure::BadRequest("the passkey response is malformed"))?;
    let result = a
        .webauthn
        .finish_passkey_authentication(&cred, &state)
        .map_err(|_| Failure::WebAuthn("the passkey's signature did not verify"))?;
    if !result.user_verified() {
        return Err(Failure::WebAuthn(
            "the authenticator did not verify the user",
        ));
    }
    if let Some((_, mut passkey)) = a
        .passkeys(auth.account)
        .await?
        .into_iter()
        .find(|(row, _)| row.credential_id == result.cred_id().as_slice())
    {
        passkey.update_credential(&result);
        a.touch(auth.account, &passkey).await?;
    }
    let reauth = a
        .issue_proof(auth.account, auth.token_hash, operation)
        .await?;
    Ok(Json(Reauthed {
        reauth,
        expires_in: PROOF_TTL.as_secs(),
    }))
}

pub(crate) async fn delete_account(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Proven(req): Proven<Reauth>,
) -> Result<Response, Failure> {
    a.consume_proof(&auth, &req.reauth, &Sensitive::DeleteAccount)
        .await?;
    a.store.delete_account(auth.account).await?;
    info!("account deleted");
    Ok(a.clear_cookie(Json(serde_json::json!({ "deleted": true })).into_response()))
}

pub(crate) async fn set_recovery(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Proven(req): Proven<NewRecovery>,
) -> Result<Json<PutResult>, Failure> {
    a.consume_proof(&auth, &req.reauth, &Sensitive::RotateRecovery)
        .await?;
    if !sotto_api::valid_id(&req.wrap.kind) || req.wrap.group.is_some() {
        return Err(Failure::BadRequest(
            "the recovery wrapping is a record of one kind and no group",
        ));
    }
    let written = a
        .store
        .rotate_recovery(
            auth.account,
            req.verifier.lookup,
            req.verifier.verifier,
            RecordWrite {
                id: RECOVERY_WRAP_ID,
                group: None,
                kind: &req.wrap.kind,
                expected_version: req.wrap.expected_version,
                ciphertext: &req.wrap.ciphertext,
            },
            a.config.quota,
        )
        .await?;
    info!("recovery code replaced");
    Ok(Json(written))
}

pub(crate) async fn add_passkey_start(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Proven(req): Proven<Reauth>,
) -> Result<Json<CeremonyStarted>, Failure> {
    // Limited first: a refused request keeps its proof for the retry.
    a.limit_account(auth.account).await?;
    a.consume_proof(&auth, &req.reauth, &Sensitive::AddPasskey)
        .await?;
    let existing: Vec<Vec<u8>> = a
        .store
        .credentials(auth.account)
        .await?
        .into_iter()
        .map(|c| c.credential_id)
        .collect();
    if existing.len() >= MAX_PASSKEYS {
        return Err(Failure::BadRequest(
            "this account has as many passkeys as it may have; remove one first",
        ));
    }
    let (options, state) =
        a.creation_options(Uuid::from_bytes(auth.account.0), "Sotto", existing)?;
    a.begin_own(&auth, OwnStep::AddPasskey { state }, options)
        .await
}

pub(crate) async fn add_passkey_finish(
    State(a): State<Arc<Accounts>>,
    auth: Authed,
    Body(req): Body<RegisterFinish>,
) -> Result<Json<PasskeyInfo>, Failure> {
    let not_kind = "that ceremony is not adding a passkey";
    let state = a
        .take_own(&auth, &req.ceremony_id, not_kind, |step| match step {
            OwnStep::AddPasskey { state } => Some(state),
            OwnStep::Reauth { .. } => None,
        })
        .await?;
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
    Proven(req): Proven<Reauth>,
) -> Result<Json<serde_json::Value>, Failure> {
    let cred = b64::decode(&credential)
        .map_err(|_| Failure::BadRequest("the credential id is not base64url"))?;
    let operation = Sensitive::RemovePasskey {
        credential_id: cred.clone(),
    };
    a.consume_proof(&auth, &req.reauth, &operation).await?;
    if !a.store.delete_credential(auth.account, &cred).await? {
        return Err(Failure::NotFound("passkey"));
    }
    a.store
        .delete_record(auth.account, &passkey_wrap_id(&cred), None)
        .await?;
    info!("passkey removed");
    Ok(Json(serde_json::json!({ "removed": true })))
}
