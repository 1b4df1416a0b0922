//! Relay tokens in the browser (Privacy Pass, docs/TOKENS.md): the relay's policy, the wallet
//! of unspent tokens the page keeps in IndexedDB, and the one token spent on each relay
//! connection, offered as a `privatetoken.…` WebSocket subprotocol since a page cannot set
//! `Authorization` on a WebSocket. The fetch is the client core's [`sotto_client::FetchTokens`],
//! run as a [`FlowCore`] with the signed-in client ([`ClientCore::fetch_tokens`]).
//!
//! Trust: the policy comes from the untrusted server and is parsed by `sotto-client`, which
//! also refuses any issued token that does not verify under the policy's key. The wallet JSON
//! comes from this browser's own storage; a damaged one is dropped (tokens can be fetched
//! again within the quota) rather than blocking every chat. Tokens are bearer credentials
//! until spent, so nothing here has `Debug`, and the wallet goes to JS only to be stored.

use sotto_client::{RelayPolicy, Response, Wallet, TOKENS_LOW};
use zeroize::Zeroizing;

use crate::error::json;
use crate::flows::{ClientCore, FlowCore};
use crate::WebError;

/// The relay's policy (if it takes tokens) and the page's wallet for it.
pub struct TokensCore {
    policy: Option<RelayPolicy>,
    wallet: Wallet,
}

impl TokensCore {
    /// From the server's answer to `GET /v1/tokens` (a 404: the relay takes no tokens) and the
    /// wallet the page stored (`""` when it has none). Tokens of another key or challenge than
    /// the policy's are dropped: the relay would refuse them.
    pub fn new(status: u16, body: &[u8], wallet_json: &str) -> Result<Self, WebError> {
        let policy = RelayPolicy::read(&Response::new(status, body.to_vec()))?;
        let mut wallet: Wallet = serde_json::from_str(wallet_json).unwrap_or_default();
        if let Some(policy) = &policy {
            wallet.retain_for(policy);
        }
        Ok(TokensCore { policy, wallet })
    }

    /// Whether the relay refuses a connection without a token.
    pub fn required(&self) -> bool {
        self.policy.as_ref().is_some_and(RelayPolicy::required)
    }

    /// How many tokens the wallet keeps for this relay.
    pub fn count(&self) -> usize {
        self.policy.as_ref().map_or(0, |p| self.wallet.count(p))
    }

    /// Whether to fetch a batch after this connection: the relay requires tokens and the
    /// wallet runs low. Refilling after a connection rather than before the next one keeps
    /// the issuance of a token apart in time from its use.
    pub fn wants_refill(&self) -> bool {
        self.required() && self.count() < TOKENS_LOW
    }

    /// The fetch of a batch of tokens with `client`'s session; give its end to [`Self::add`].
    pub fn fetch(&self, client: &ClientCore) -> Result<FlowCore, WebError> {
        let policy = self.policy.as_ref().ok_or(NO_TOKENS)?;
        client.fetch_tokens(policy)
    }

    /// Moves the tokens a finished [`Self::fetch`] flow ended with into the wallet.
    pub fn add(&mut self, done: &mut FlowCore) -> Result<usize, WebError> {
        let policy = self.policy.as_ref().ok_or(NO_TOKENS)?;
        let tokens = done.take_tokens()?;
        let n = tokens.len();
        self.wallet.add(policy, tokens);
        Ok(n)
    }

    /// Takes the next token out of the wallet as the subprotocol that spends it; `None` when
    /// the wallet has none for this relay. Store the wallet before opening the connection: a
    /// token is accepted once, so one kept after use would only be refused later.
    pub fn take_subprotocol(&mut self) -> Option<Zeroizing<String>> {
        let policy = self.policy.as_ref()?;
        self.wallet.take(policy).map(|t| t.subprotocol())
    }

    /// The wallet, to store.
    pub fn wallet_json(&self) -> Result<Zeroizing<String>, WebError> {
        serde_json::to_string(&self.wallet)
            .map(Zeroizing::new)
            .map_err(json("token wallet"))
    }
}

const NO_TOKENS: WebError = WebError::State("this server's relay takes no tokens");
