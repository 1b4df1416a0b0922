//! Account flows of the CLI: sign-up, sign-in, recovery, passkeys, unlocking the vault.
//!
//! The CLI's passkey is a software authenticator whose credentials live in `passkeys.json`
//! (0600, optionally sealed with a passphrase from `SOTTO_PASSPHRASE`). The PRF output it
//! gives stays in this process: it becomes a key-encryption key through the vault crate, and
//! only wrapped keys and ciphertext reach the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sotto_api::{
    b64, RecoverSignIn, RecoveryVerifier, RegisterFinish, SessionGranted, SignInFinish,
};
use sotto_authenticator::Keyring;
use sotto_vault::{
    passkey_wrap_id, prf_salt, Kek, RecoveryCode, Vault, VaultError, RECOVERY_WRAP_ID,
};
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

fn rp_id_of(options: &serde_json::Value) -> Result<String, AccountError> {
    options
        .pointer("/publicKey/rp/id")
        .or_else(|| options.pointer("/publicKey/rpId"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or(AccountError::Protocol(
            "the server's WebAuthn options name no relying party",
        ))
}

/// A signed-in, unlocked client: the API with its session, and the opened vault.
pub struct Unlocked {
    pub api: ApiClient,
    pub vault: Vault,
    pub session: SessionFile,
}

impl Unlocked {
    /// Saves the rollback ledger so the next run refuses what this one has seen superseded.
    pub fn save_ledger(&self, profile: &Profile) -> Result<(), AccountError> {
        profile.save_json(
            &profile.ledger_path(&self.session.account_id),
            self.vault.ledger(),
        )?;
        Ok(())
    }
}

fn session_file(
    server: &str,
    rp_id: &str,
    granted: &SessionGranted,
    credential_id: &[u8],
) -> SessionFile {
    SessionFile {
        server: server.trim_end_matches('/').to_owned(),
        account_id: granted.account_id.clone(),
        session_token: granted.session_token.clone(),
        rp_id: rp_id.to_owned(),
        credential_id: b64::encode(credential_id),
    }
}

/// Registers a new passkey on this device for the ceremony the server started; returns the
/// finish request, the credential id, the rp id and the PRF output.
async fn new_passkey(
    profile: &Profile,
    api: &ApiClient,
    options: serde_json::Value,
    ceremony_id: String,
    label: &str,
    recovery: Option<RecoveryVerifier>,
) -> Result<(RegisterFinish, Vec<u8>, String, Kek32), AccountError> {
    let rp_id = rp_id_of(&options)?;
    let mut keyring = load_keyring(profile)?;
    let reg = keyring
        .register(api.origin(), options, &prf_salt(), label, now_secs())
        .await?;
    let prf = match reg.prf {
        Some(p) => Kek32(Zeroizing::new(*p.as_bytes())),
        None => {
            let p = keyring.prf(&rp_id, &reg.credential_id, &prf_salt()).await?;
            Kek32(Zeroizing::new(*p.as_bytes()))
        }
    };
    save_keyring(profile, &keyring)?;
    Ok((
        RegisterFinish {
            ceremony_id,
            credential: reg.response,
            passkey_name: label.to_owned(),
            recovery,
        },
        reg.credential_id,
        rp_id,
        prf,
    ))
}

/// A PRF output held only long enough to derive a key-encryption key.
struct Kek32(Zeroizing<[u8; 32]>);

/// Creates an account: a passkey on this device, a vault key, its wrappings for the passkey and
/// for a new recovery code. Returns the recovery code, to show once.
pub async fn create(
    profile: &Profile,
    server: &str,
    display_name: &str,
    label: &str,
) -> Result<(Unlocked, RecoveryCode), AccountError> {
    let api = ApiClient::new(server)?;
    let code = RecoveryCode::generate()?;
    let started = api.register_start(display_name).await?;
    let recovery = RecoveryVerifier {
        lookup: code.lookup(),
        verifier: code.verifier(),
    };
    let (finish, cred, rp_id, prf) = new_passkey(
        profile,
        &api,
        started.options,
        started.ceremony_id,
        label,
        Some(recovery),
    )
    .await?;
    let granted = api.register_finish(&finish).await?;
    let session = session_file(server, &rp_id, &granted, &cred);
    let api = api.with_token(Zeroizing::new(granted.session_token.clone()));
    let (vault, _) = Vault::create(&granted.account_id)?;
    let kek = Kek::from_prf(&prf.0, &granted.account_id, &cred);
    let wrap = vault.wrap_for(&kek, &passkey_wrap_id(&cred), 0)?;
    api.put(&wrap.id, &wrap.put).await?;
    let wrap = vault.wrap_for(&code.kek(&granted.account_id), RECOVERY_WRAP_ID, 0)?;
    api.put(&wrap.id, &wrap.put).await?;
    profile.save_json(&profile.session_path(), &session)?;
    let mut unlocked = Unlocked {
        api,
        vault,
        session,
    };
    // Re-open our own wrapping through the normal path, so the ledger starts from what the
    // server holds and a broken server is caught now rather than at the next sign-in.
    unlocked.vault = open_wrap(
        &unlocked.api,
        &unlocked.session.account_id,
        &kek,
        &passkey_wrap_id(&cred),
    )
    .await?;
    Ok((unlocked, code))
}

async fn open_wrap(
    api: &ApiClient,
    account: &str,
    kek: &Kek,
    id: &str,
) -> Result<Vault, AccountError> {
    let record = api.get(id).await?;
    Ok(Vault::unlock(account, kek, &record)?)
}

/// Signs in with this device's passkey (discoverable: the authenticator picks the account).
pub async fn login(profile: &Profile, server: &str) -> Result<Unlocked, AccountError> {
    let api = ApiClient::new(server)?;
    let started = api.sign_in_start().await?;
    let rp_id = rp_id_of(&started.options)?;
    let mut keyring = load_keyring(profile)?;
    if !keyring.credentials().iter().any(|c| c.rp_id == rp_id) {
        return Err(AccountError::NoPasskey(rp_id));
    }
    let assertion = keyring
        .authenticate(api.origin(), started.options, &prf_salt(), None)
        .await?;
    save_keyring(profile, &keyring)?;
    let prf = assertion
        .prf
        .ok_or(AccountError::Protocol("the passkey returned no PRF output"))?;
    let granted = api
        .sign_in_finish(&SignInFinish {
            ceremony_id: started.ceremony_id,
            credential: assertion.response,
        })
        .await?;
    let session = session_file(server, &rp_id, &granted, &assertion.credential_id);
    let api = api.with_token(Zeroizing::new(granted.session_token.clone()));
    let kek = Kek::from_prf(
        prf.as_bytes(),
        &granted.account_id,
        &assertion.credential_id,
    );
    let mut vault = open_wrap(
        &api,
        &granted.account_id,
        &kek,
        &passkey_wrap_id(&assertion.credential_id),
    )
    .await?;
    restore_ledger(profile, &granted.account_id, &mut vault)?;
    profile.save_json(&profile.session_path(), &session)?;
    Ok(Unlocked {
        api,
        vault,
        session,
    })
}

fn restore_ledger(profile: &Profile, account: &str, vault: &mut Vault) -> Result<(), AccountError> {
    if let Some(saved) = profile.load_json(&profile.ledger_path(account))? {
        vault.restore_ledger(&saved)?;
    }
    Ok(())
}

/// A new device: signs in with the recovery code, opens the vault with it, and registers a
/// passkey on this device that opens it from then on.
pub async fn recover(
    profile: &Profile,
    server: &str,
    code_text: &str,
    label: &str,
) -> Result<Unlocked, AccountError> {
    // Typos are caught by the checksum before anything is sent.
    let code = RecoveryCode::parse(code_text)?;
    let api = ApiClient::new(server)?;
    let granted = api
        .recover(&RecoverSignIn {
            lookup: code.lookup(),
            secret: *code.sign_in_secret(),
        })
        .await?;
    let api = api.with_token(Zeroizing::new(granted.session_token.clone()));
    let vault = open_wrap(
        &api,
        &granted.account_id,
        &code.kek(&granted.account_id),
        RECOVERY_WRAP_ID,
    )
    .await?;
    let started = api.add_passkey_start().await?;
    let (finish, cred, rp_id, prf) = new_passkey(
        profile,
        &api,
        started.options,
        started.ceremony_id,
        label,
        None,
    )
    .await?;
    api.add_passkey_finish(&finish).await?;
    let kek = Kek::from_prf(&prf.0, &granted.account_id, &cred);
    let wrap = vault.wrap_for(&kek, &passkey_wrap_id(&cred), 0)?;
    api.put(&wrap.id, &wrap.put).await?;
    let session = session_file(server, &rp_id, &granted, &cred);
    profile.save_json(&profile.session_path(), &session)?;
    let mut vault = open_wrap(&api, &granted.account_id, &kek, &passkey_wrap_id(&cred)).await?;
    restore_ledger(profile, &granted.account_id, &mut vault)?;
    Ok(Unlocked {
        api,
        vault,
        session,
    })
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
    let api =
        ApiClient::new(&session.server)?.with_token(Zeroizing::new(session.session_token.clone()));
    let kek = Kek::from_prf(prf.as_bytes(), &session.account_id, &cred);
    let mut vault = open_wrap(&api, &session.account_id, &kek, &passkey_wrap_id(&cred)).await?;
    restore_ledger(profile, &session.account_id, &mut vault)?;
    Ok(Unlocked {
        api,
        vault,
        session,
    })
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

/// Adds another passkey of this device's keyring to the account (e.g. a second file, or a
/// second label), wrapping the vault key for it.
pub async fn add_passkey(
    profile: &Profile,
    unlocked: &Unlocked,
    label: &str,
) -> Result<Vec<u8>, AccountError> {
    let started = unlocked.api.add_passkey_start().await?;
    let (finish, cred, _, prf) = new_passkey(
        profile,
        &unlocked.api,
        started.options,
        started.ceremony_id,
        label,
        None,
    )
    .await?;
    unlocked.api.add_passkey_finish(&finish).await?;
    let kek = Kek::from_prf(&prf.0, &unlocked.session.account_id, &cred);
    let wrap = unlocked.vault.wrap_for(&kek, &passkey_wrap_id(&cred), 0)?;
    unlocked.api.put(&wrap.id, &wrap.put).await?;
    Ok(cred)
}

/// Replaces the recovery code: the old one stops opening the vault and stops signing in.
pub async fn rotate_recovery(unlocked: &Unlocked) -> Result<RecoveryCode, AccountError> {
    let code = RecoveryCode::generate()?;
    let current = match unlocked.api.get(RECOVERY_WRAP_ID).await {
        Ok(r) => r.version,
        Err(e) if e.is_not_found() => 0,
        Err(e) => return Err(e.into()),
    };
    let wrap = unlocked.vault.wrap_for(
        &code.kek(&unlocked.session.account_id),
        RECOVERY_WRAP_ID,
        current,
    )?;
    unlocked.api.put(&wrap.id, &wrap.put).await?;
    unlocked
        .api
        .set_recovery(&RecoveryVerifier {
            lookup: code.lookup(),
            verifier: code.verifier(),
        })
        .await?;
    Ok(code)
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
