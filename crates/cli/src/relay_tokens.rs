//! Relay tokens for `sotto chat` (Privacy Pass, docs/TOKENS.md): the wallet of unspent tokens in
//! the profile (`relay-tokens.json`, 0600), filled from the server's issuer with the saved
//! session, and one token spent on each relay connection when the relay requires it.
//!
//! The token fetch is the only request here that carries the session; the relay upgrade that
//! spends a token carries the token alone. Tokens are fetched in batches and the wallet is
//! refilled after a connection, so the token a connection spends was usually issued well before
//! it, in a batch of others.
//!
//! Trust: the policy and the issuer's answers come from the untrusted server and are checked by
//! `sotto-client` (a token that does not verify is refused, not kept).

use sotto_client::{
    Answer, FetchTokens, Flow, RelayPolicy, Step, Token, Wallet, TOKENS_LOW, TOKEN_BATCH,
};
use zeroize::Zeroizing;

use crate::account::{self, AccountError};
use crate::api::ApiClient;
use crate::local::Profile;

pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn wallet_path(profile: &Profile) -> std::path::PathBuf {
    profile.dir.join("relay-tokens.json")
}

fn load(profile: &Profile) -> Result<Wallet, AnyError> {
    Ok(profile
        .load_json(&wallet_path(profile))?
        .unwrap_or_default())
}

fn save(profile: &Profile, wallet: &Wallet) -> Result<(), AnyError> {
    Ok(profile.save_json(&wallet_path(profile), wallet)?)
}

/// The relay's token policy; `None` when the server takes no tokens. Asked without the
/// session: the policy is public.
pub async fn policy(server: &str) -> Result<Option<RelayPolicy>, AnyError> {
    let api = ApiClient::new(server)?;
    let resp = api.send(RelayPolicy::request()).await?;
    Ok(RelayPolicy::read(&resp)?)
}

/// The saved session, if it is for `server`: its API client and its token.
fn session_for(profile: &Profile, server: &str) -> Result<Option<(ApiClient, Token)>, AnyError> {
    match account::signed_in(profile) {
        Ok((api, session)) if same_server(&session.server, server) => {
            Ok(Some((api, Token::new(session.session_token.clone()))))
        }
        Ok(_) | Err(AccountError::NotSignedIn) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Fetches a batch of tokens into the wallet with a session.
async fn fill(
    (api, session): (ApiClient, Token),
    profile: &Profile,
    policy: &RelayPolicy,
    wallet: &mut Wallet,
) -> Result<usize, AnyError> {
    let mut flow = FetchTokens::new(Some(session), policy.clone(), TOKEN_BATCH);
    let mut answer = None;
    let tokens = loop {
        match flow.next(answer.take())? {
            Step::Send(req) => answer = Some(Answer::Http(api.send(req).await?)),
            Step::Done(tokens) => break tokens,
            _ => return Err("the token fetch asked for a passkey".into()),
        }
    };
    let n = tokens.len();
    wallet.add(policy, tokens);
    save(profile, wallet)?;
    Ok(n)
}

/// The token to spend on the next relay connection to `server`, as its `Authorization` value:
/// `None` when the relay does not require one (tokens are kept for relays that do). Fetches a
/// batch first if the wallet has none, which needs a session for `server`.
pub async fn for_connection(
    server: &str,
    profile: &Profile,
) -> Result<Option<(Zeroizing<String>, RelayPolicy)>, AnyError> {
    let Some(policy) = policy(server).await? else {
        return Ok(None);
    };
    if !policy.required() {
        return Ok(None);
    }
    let mut wallet = load(profile)?;
    if wallet.retain_for(&policy) > 0 {
        save(profile, &wallet)?;
    }
    if wallet.count(&policy) == 0 {
        let session = session_for(profile, server)?.ok_or(
            "this server's relay requires a token for each connection, and tokens are issued to \
             signed-in accounts: sign in first (sotto account login)",
        )?;
        fill(session, profile, &policy, &mut wallet).await?;
    }
    let token = wallet
        .take(&policy)
        .ok_or("the issuer gave no usable token")?;
    // Saved before it is spent: a token is accepted once, so keeping it would not help.
    save(profile, &wallet)?;
    Ok(Some((token.authorization(), policy)))
}

/// After a connection: refills the wallet when it runs low, so the next connection spends a
/// token issued now rather than just before it. A failure here only costs a later refill.
pub async fn refill(server: &str, profile: &Profile, policy: &RelayPolicy) {
    let refilled = async {
        let mut wallet = load(profile)?;
        if wallet.count(policy) >= TOKENS_LOW {
            return Ok(0);
        }
        match session_for(profile, server)? {
            Some(session) => fill(session, profile, policy, &mut wallet).await,
            None => Ok(0),
        }
    }
    .await;
    if let Err(e) = refilled {
        eprintln!(
            "sotto: could not refill relay tokens (the next chat will try again): {}",
            crate::term::shown(&e.to_string())
        );
    }
}
