//! Account flows of the CLI: sign-up, sign-in, recovery, passkeys, unlocking the vault.
//!
//! The CLI's passkey is a software authenticator whose credentials live in `passkeys.json`
//! (0600, optionally sealed with a passphrase from `SOTTO_PASSPHRASE`). The PRF output it
//! gives stays in this process: it becomes a key-encryption key through the vault crate, and
//! only wrapped keys and ciphertext reach the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sotto_api::b64;
use sotto_authenticator::Keyring;
use sotto_client::{
    self as client, rp_id_of, AddPasskey, Answer, Assertion, ClientError, DeleteAccount, Flow,
    NewPasskey, PasskeyRequest, Prf, Recover, RemovePasskey, RotateRecovery, SignIn, SignUp,
    SignedIn, Step, Token, Unlock, VaultFlow,
};
use sotto_vault::{prf_salt, RecoveryCode, VaultError};
use zeroize::Zeroizing;

use crate::api::{ApiClient, ApiClientError};
use crate::local::{KeyringLock, LocalError, Profile, SessionFile};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Api(#[from] ApiClientError),
    #[error("passkey: {0}")]
    Passkey(#[from] sotto_authenticator::Error),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    RecoveryCode(#[from] sotto_vault::RecoveryCodeError),
    #[error("not signed in: run `sotto account create` or `sotto account login`")]
    NotSignedIn,
    #[error("this device has no passkey for {0}: sign in with `sotto account login --recovery-code` to add one")]
    NoPasskey(String),
    #[error("the server granted a session for another account than the passkey's")]
    WrongAccount,
    #[error("{0}")]
    Protocol(&'static str),
    #[error(transparent)]
    Client(ClientError),
}

impl From<ClientError> for AccountError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Server { status, error } => AccountError::Api(ApiClientError::Server(
                reqwest::StatusCode::from_u16(status)
                    .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR),
                error,
            )),
            ClientError::Malformed { status } => AccountError::Api(ApiClientError::Malformed(
                reqwest::StatusCode::from_u16(status)
                    .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR),
            )),
            ClientError::Vault(e) => AccountError::Vault(e),
            ClientError::RecoveryCode(e) => AccountError::RecoveryCode(e),
            ClientError::WrongAccount => AccountError::WrongAccount,
            e => AccountError::Client(e),
        }
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the epoch, strictly increasing within this process: a question and its
/// answer saved in the same millisecond still sort in the order they were said.
pub fn now_ms() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

fn passphrase() -> Option<Zeroizing<String>> {
    std::env::var("SOTTO_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Zeroizing::new)
}

/// The keyring, loaded under the profile's lock, which it holds until dropped (after
/// [`save_keyring`]), so concurrent `sotto` processes never lose a counter update.
struct HeldKeyring {
    keyring: Keyring,
    _lock: KeyringLock,
}

impl std::ops::Deref for HeldKeyring {
    type Target = Keyring;
    fn deref(&self) -> &Keyring {
        &self.keyring
    }
}

impl std::ops::DerefMut for HeldKeyring {
    fn deref_mut(&mut self) -> &mut Keyring {
        &mut self.keyring
    }
}

fn load_keyring(profile: &Profile) -> Result<HeldKeyring, AccountError> {
    let lock = profile.lock_keyring()?;
    let path = profile.keyring_path();
    let keyring = if path.exists() {
        let pass = passphrase();
        Keyring::load(&path, pass.as_deref().map(|s| s.as_str()))?
    } else {
        Keyring::new()
    };
    Ok(HeldKeyring {
        keyring,
        _lock: lock,
    })
}

fn save_keyring(profile: &Profile, keyring: &HeldKeyring) -> Result<(), AccountError> {
    let pass = passphrase();
    Ok(keyring
        .keyring
        .save(&profile.keyring_path(), pass.as_deref().map(|s| s.as_str()))?)
}

/// The CLI's side of the passkey steps the client core asks for: the software authenticator
/// in `passkeys.json`, loaded under the profile's lock for each ceremony and saved after it.
struct Authenticator<'p> {
    profile: &'p Profile,
    origin: String,
}

impl Authenticator<'_> {
    async fn create(&self, req: PasskeyRequest) -> Result<NewPasskey, AccountError> {
        let rp_id = rp_id_of(&req.options)?;
        let label = req.name.unwrap_or_default();
        let mut keyring = load_keyring(self.profile)?;
        let reg = keyring
            .register(&self.origin, req.options, &req.salt, &label, now_secs())
            .await?;
        let prf = match reg.prf {
            Some(p) => Prf::new(*p.as_bytes()),
            None => Prf::new(
                *keyring
                    .prf(&rp_id, &reg.credential_id, &req.salt)
                    .await?
                    .as_bytes(),
            ),
        };
        save_keyring(self.profile, &keyring)?;
        Ok(NewPasskey {
            credential: reg.response,
            credential_id: reg.credential_id,
            prf,
        })
    }

    /// Signs with this device's passkey. The lock comes back with the assertion: the caller
    /// holds it until the server has taken the assertion, because the server refuses a
    /// signature counter lower than one it has seen, and two processes whose finishes
    /// crossed on the way would otherwise refuse one another.
    async fn get(&self, req: PasskeyRequest) -> Result<(Assertion, KeyringLock), AccountError> {
        let rp_id = rp_id_of(&req.options)?;
        let mut keyring = load_keyring(self.profile)?;
        if !keyring.credentials().iter().any(|c| c.rp_id == rp_id) {
            return Err(AccountError::NoPasskey(rp_id));
        }
        let a = keyring
            .authenticate(&self.origin, req.options, &req.salt, None)
            .await?;
        save_keyring(self.profile, &keyring)?;
        let HeldKeyring { _lock: lock, .. } = keyring;
        let assertion = Assertion {
            credential: a.response,
            credential_id: a.credential_id,
            prf: a.prf.map(|p| Prf::new(*p.as_bytes())),
        };
        Ok((assertion, lock))
    }

    /// Carries out one step that is not the end of its flow; after a signature, with the
    /// keyring lock to hold until the next step is done.
    async fn carry<T>(
        &self,
        api: &ApiClient,
        step: Step<T>,
    ) -> Result<(Answer, Option<KeyringLock>), AccountError> {
        Ok(match step {
            Step::Send(req) => (Answer::Http(api.send(req).await?), None),
            Step::CreatePasskey(req) => (Answer::Created(self.create(req).await?), None),
            Step::GetPasskey(req) => {
                let (assertion, lock) = self.get(req).await?;
                (Answer::Asserted(assertion), Some(lock))
            }
            Step::Done(_) => return Err(AccountError::Protocol("a flow ended twice")),
        })
    }
}

/// Runs a client-core flow to its end.
async fn drive<F: Flow>(
    profile: &Profile,
    api: &ApiClient,
    mut flow: F,
) -> Result<F::Output, AccountError> {
    let auth = Authenticator {
        profile,
        origin: api.origin().to_owned(),
    };
    let mut answer = None;
    // Dropped, and replaced, once the step after a signature is done.
    let mut _held: Option<KeyringLock> = None;
    loop {
        match flow.next(answer.take())? {
            Step::Done(out) => return Ok(out),
            step => {
                if !matches!(step, Step::Send(_)) {
                    // The next passkey step takes the lock itself.
                    _held = None;
                }
                let (next, lock) = auth.carry(api, step).await?;
                answer = Some(next);
                _held = lock;
            }
        }
    }
}

/// Runs a client-core flow over an unlocked client to its end.
pub(crate) async fn drive_vault<F: VaultFlow>(
    profile: Option<&Profile>,
    u: &mut Unlocked,
    flow: F,
) -> Result<F::Output, AccountError> {
    drive_vault_with(profile, profile, u, flow).await
}

/// As [`drive_vault`], confirming (asserting) with the passkeys of `confirm` and creating new
/// ones in `create`: adding another device's passkey from this one.
async fn drive_vault_with<F: VaultFlow>(
    confirm: Option<&Profile>,
    create: Option<&Profile>,
    u: &mut Unlocked,
    mut flow: F,
) -> Result<F::Output, AccountError> {
    let mut answer = None;
    // As in `drive`: a signature's lock is held until the server has taken it.
    let mut _held: Option<KeyringLock> = None;
    loop {
        let step = flow.next(&mut u.client, answer.take())?;
        let profile = match &step {
            Step::Done(_) | Step::Send(_) => None,
            Step::GetPasskey(_) => Some(confirm),
            Step::CreatePasskey(_) => Some(create),
        };
        let (next, lock) = match (step, profile) {
            (Step::Done(out), _) => return Ok(out),
            (Step::Send(req), _) => (Answer::Http(u.api.send(req).await?), None),
            (step, profile) => {
                // The next passkey step takes the lock itself.
                _held = None;
                let profile = profile.flatten().ok_or(AccountError::Protocol(
                    "this flow needs a passkey, and none was offered",
                ))?;
                let auth = Authenticator {
                    profile,
                    origin: u.api.origin().to_owned(),
                };
                auth.carry(&u.api, step).await?
            }
        };
        answer = Some(next);
        _held = lock;
    }
}

/// A signed-in, unlocked client: the API with its session, and the client core (the opened
/// vault and the history pulled so far).
pub struct Unlocked {
    pub api: ApiClient,
    pub client: client::Unlocked,
    pub session: SessionFile,
}

impl Unlocked {
    /// Saves the rollback ledger so the next run refuses what this one has seen superseded.
    pub fn save_ledger(&self, profile: &Profile) -> Result<(), AccountError> {
        profile.save_json(
            &profile.ledger_path(&self.session.account_id),
            self.client.vault.ledger(),
        )?;
        Ok(())
    }
}

/// Signed in: the session saved, the ledger this device kept for the account restored.
fn signed_in_as(
    profile: &Profile,
    server: &str,
    mut client: client::Unlocked,
) -> Result<Unlocked, AccountError> {
    let token = client.session.token.as_ref().ok_or(AccountError::Protocol(
        "the server granted a session without its token",
    ))?;
    let session = SessionFile {
        server: server.trim_end_matches('/').to_owned(),
        account_id: client.session.account_id.clone(),
        session_token: token.expose().to_owned(),
        rp_id: client.session.rp_id.clone(),
        credential_id: b64::encode(&client.session.credential_id),
    };
    if let Some(saved) = profile.load_json(&profile.ledger_path(&session.account_id))? {
        client.vault.restore_ledger(&saved)?;
    }
    profile.save_json(&profile.session_path(), &session)?;
    let api = ApiClient::new(server)?.with_token(Zeroizing::new(session.session_token.clone()));
    Ok(Unlocked {
        api,
        client,
        session,
    })
}

/// Creates an account: a passkey on this device, a vault key, its wrappings for the passkey and
/// for a new recovery code. Returns the recovery code, to show once.
pub async fn create(
    profile: &Profile,
    server: &str,
    display_name: &str,
    label: &str,
) -> Result<(Unlocked, RecoveryCode), AccountError> {
    let api = ApiClient::new(server)?;
    let done = drive(profile, &api, SignUp::new(display_name, label)?.bearer()).await?;
    Ok((
        signed_in_as(profile, server, done.unlocked)?,
        done.recovery_code,
    ))
}

/// Signs in with this device's passkey (discoverable: the authenticator picks the account).
pub async fn login(profile: &Profile, server: &str) -> Result<Unlocked, AccountError> {
    let api = ApiClient::new(server)?;
    match drive(profile, &api, SignIn::new().bearer()).await? {
        SignedIn::Unlocked(u) => signed_in_as(profile, server, u),
        SignedIn::Locked(_) => Err(AccountError::Protocol("the passkey returned no PRF output")),
    }
}

/// A new device: signs in with the recovery code, opens the vault with it, and registers a
/// passkey on this device that opens it from then on.
pub async fn recover(
    profile: &Profile,
    server: &str,
    code_text: &str,
    label: &str,
) -> Result<Unlocked, AccountError> {
    let flow = Recover::new(code_text, label)?.bearer();
    let api = ApiClient::new(server)?;
    let u = drive(profile, &api, flow).await?;
    signed_in_as(profile, server, u)
}

/// Opens the vault of the saved session with this device's passkey, evaluated locally.
pub async fn unlock(profile: &Profile) -> Result<Unlocked, AccountError> {
    let session: SessionFile = profile
        .load_json(&profile.session_path())?
        .ok_or(AccountError::NotSignedIn)?;
    let cred = b64::decode(&session.credential_id).map_err(|_| {
        AccountError::Local(LocalError::Damaged {
            path: profile.session_path(),
            reason: "credential id is not base64url".into(),
        })
    })?;
    let mut keyring = load_keyring(profile)?;
    let prf = keyring.prf(&session.rp_id, &cred, &prf_salt()).await?;
    save_keyring(profile, &keyring)?;
    drop(keyring);
    let core = core_session(&session, cred);
    let api = ApiClient::new(&session.server)?;
    let flow = Unlock::with_prf(core, &Prf::new(*prf.as_bytes()));
    let u = drive(profile, &api, flow).await?;
    signed_in_as(profile, &session.server, u)
}

/// The client core's session for a saved one.
fn core_session(session: &SessionFile, credential_id: Vec<u8>) -> client::Session {
    client::Session {
        account_id: session.account_id.clone(),
        token: Some(Token::new(session.session_token.clone())),
        credential_id,
        rp_id: session.rp_id.clone(),
    }
}

/// The saved session's API client, without unlocking (for account management).
pub fn signed_in(profile: &Profile) -> Result<(ApiClient, SessionFile), AccountError> {
    let session: SessionFile = profile
        .load_json(&profile.session_path())?
        .ok_or(AccountError::NotSignedIn)?;
    let api =
        ApiClient::new(&session.server)?.with_token(Zeroizing::new(session.session_token.clone()));
    Ok((api, session))
}

/// Adds another passkey to the account, wrapping the vault key for it: confirmed with a
/// passkey of `profile`'s keyring, created in `target`'s (the same one, or another passkey file
/// on this machine).
pub async fn add_passkey(
    profile: &Profile,
    target: &Profile,
    unlocked: &mut Unlocked,
    label: &str,
) -> Result<Vec<u8>, AccountError> {
    let flow = AddPasskey::new(label);
    let added = drive_vault_with(Some(profile), Some(target), unlocked, flow).await?;
    Ok(added.credential_id)
}

/// Replaces the recovery code, confirmed with this device's passkey: the old one stops opening
/// the vault and stops signing in at the moment the new one starts.
pub async fn rotate_recovery(
    profile: &Profile,
    unlocked: &mut Unlocked,
) -> Result<RecoveryCode, AccountError> {
    drive_vault(Some(profile), unlocked, RotateRecovery::new()?).await
}

/// Removes a passkey of the saved session's account, confirmed with this device's passkey.
pub async fn remove_passkey(profile: &Profile, credential_id: &[u8]) -> Result<(), AccountError> {
    let (api, session) = signed_in(profile)?;
    let core = core_session(&session, Vec::new());
    drive(profile, &api, RemovePasskey::new(&core, credential_id)).await
}

/// Deletes the saved session's account, confirmed with this device's passkey.
pub async fn delete_account(profile: &Profile) -> Result<(), AccountError> {
    let (api, session) = signed_in(profile)?;
    let core = core_session(&session, Vec::new());
    drive(profile, &api, DeleteAccount::new(&core)).await
}

/// Forgets this device's session (and, with `forget_passkey`, its passkey for the account).
pub fn forget_local(
    profile: &Profile,
    session: &SessionFile,
    forget_passkey: bool,
) -> Result<(), AccountError> {
    profile.remove(&profile.session_path())?;
    if forget_passkey {
        if let Ok(cred) = b64::decode(&session.credential_id) {
            let mut keyring = load_keyring(profile)?;
            if keyring.remove(&session.rp_id, &cred) {
                save_keyring(profile, &keyring)?;
            }
        }
        profile.remove(&profile.ledger_path(&session.account_id))?;
    }
    Ok(())
}
