//! Relay tokens (Privacy Pass): reading the relay's token policy, fetching a batch of tokens for
//! a signed-in session ([`FetchTokens`]), and the wallet of unspent tokens a client keeps and
//! spends one of per relay connection ([`Wallet`]).
//!
//! The session is shown only to the issuer, with blinded requests; the token then goes to the
//! relay alone, with no session, cookie or account id beside it, and the issuer cannot tell
//! which issuance it came from. Spending a token fetched long before keeps issuance and use
//! apart in time too, so a client refills its wallet after a connection rather than just before
//! one whenever it can.
//!
//! Trust: the policy and the issuer's answers come from the untrusted server. A token that does
//! not verify under the policy's key is refused at once rather than kept (an issuer cannot hand
//! out tokens it would later refuse, or mark one with a key of its own to recognise it).

use serde::{Deserialize, Serialize};
use sotto_api::{routes, TokenPolicy, MAX_TOKEN_BATCH, TOKEN_REQUEST_TYPE};
use sotto_tokens::{header, IssuerKey, PendingToken, TokenChallenge, RESPONSE_LEN};
use zeroize::Zeroizing;

use crate::flow::{http, Answer, Flow, Step};
use crate::http::{ClientError, Method, Request, Response, Token};

/// The relay's token policy, its challenge and key parsed.
#[derive(Clone)]
pub struct RelayPolicy {
    pub policy: TokenPolicy,
    challenge: TokenChallenge,
    key: IssuerKey,
    digest: [u8; 32],
}

impl RelayPolicy {
    /// The request for the policy. It carries no session: the policy is the same for everyone.
    pub fn request() -> Request {
        Request::new(Method::Get, routes::TOKEN_POLICY)
    }

    /// The policy from the server's answer; `None` when the server takes no tokens.
    pub fn read(resp: &Response) -> Result<Option<Self>, ClientError> {
        if resp.is_not_found() {
            return Ok(None);
        }
        let policy: TokenPolicy = resp.json()?;
        let challenge = TokenChallenge::decode(&policy.challenge)?;
        let key = IssuerKey::from_spki(&policy.token_key)?;
        let digest = challenge.digest()?;
        Ok(Some(RelayPolicy {
            policy,
            challenge,
            key,
            digest,
        }))
    }

    pub fn required(&self) -> bool {
        self.policy.required
    }

    fn key_hex(&self) -> String {
        to_hex(&self.key.id())
    }

    fn digest_hex(&self) -> String {
        to_hex(&self.digest)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tokens a client fetches at once.
pub const BATCH: usize = 16;
/// Below this many kept tokens, a client refills its wallet after a connection.
pub const LOW: usize = 4;

/// Fetches `count` tokens (at most [`MAX_TOKEN_BATCH`]) for a signed-in session: one issuance
/// request carrying that many blinded token requests, each answer finalized and checked. The
/// session is its bearer token, or `None` for a browser, which presents its cookie instead.
pub struct FetchTokens {
    session: Option<Token>,
    policy: RelayPolicy,
    count: usize,
    pending: Vec<PendingToken>,
}

impl FetchTokens {
    pub fn new(session: Option<Token>, policy: RelayPolicy, count: usize) -> Self {
        FetchTokens {
            session,
            policy,
            count: count.clamp(1, MAX_TOKEN_BATCH),
            pending: Vec::new(),
        }
    }
}

impl Flow for FetchTokens {
    type Output = Vec<RelayToken>;

    fn next(&mut self, answer: Option<Answer>) -> Result<Step<Self::Output>, ClientError> {
        if self.pending.is_empty() {
            if answer.is_some() {
                return Err(ClientError::State(
                    "the token fetch has not sent its request",
                ));
            }
            let mut body = Vec::with_capacity(self.count * sotto_tokens::REQUEST_LEN);
            for _ in 0..self.count {
                let (pending, request) =
                    PendingToken::start_random(&self.policy.challenge, &self.policy.key)?;
                self.pending.push(pending);
                body.extend_from_slice(&request);
            }
            let req = Request::bytes(Method::Post, routes::TOKEN_ISSUE, TOKEN_REQUEST_TYPE, body)
                .authorized(self.session.as_ref());
            return Ok(Step::Send(req));
        }
        let resp = http(answer)?;
        if !resp.ok() {
            return Err(resp.error());
        }
        if resp.body.len() != self.pending.len() * RESPONSE_LEN {
            return Err(ClientError::Protocol(
                "the issuer answered a different number of token responses than requested",
            ));
        }
        let tokens = std::mem::take(&mut self.pending)
            .into_iter()
            .zip(resp.body.chunks(RESPONSE_LEN))
            .map(|(pending, response)| pending.finish(response).map(RelayToken))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Step::Done(tokens))
    }
}

/// One unspent token. No `Debug`: it is a bearer credential until spent.
pub struct RelayToken(sotto_tokens::Token);

impl RelayToken {
    /// The `Authorization` header value that spends it (RFC 9577).
    pub fn authorization(&self) -> Zeroizing<String> {
        Zeroizing::new(header::authorization(&self.0))
    }

    /// The WebSocket subprotocol that spends it, for clients that cannot set headers on a
    /// WebSocket (browsers): `privatetoken.` and the token in unpadded base64url.
    pub fn subprotocol(&self) -> Zeroizing<String> {
        let b64 = sotto_tokens::b64_encode(&self.0.encode());
        Zeroizing::new(format!("privatetoken.{}", b64.trim_end_matches('=')))
    }
}

/// A stored token: the key and challenge it was made for, so tokens of a rotated key or another
/// relay are dropped instead of spent and refused.
#[derive(Serialize, Deserialize, Clone)]
struct Stored {
    key_id: String,
    challenge: String,
    token: Zeroizing<String>,
}

/// The unspent tokens a client keeps (in its profile, as JSON). No `Debug`.
#[derive(Serialize, Deserialize, Clone, Default)]
pub struct Wallet {
    tokens: Vec<Stored>,
}

impl Wallet {
    /// How many tokens are kept for `policy`'s key and challenge.
    pub fn count(&self, policy: &RelayPolicy) -> usize {
        let (key, digest) = (policy.key_hex(), policy.digest_hex());
        self.tokens
            .iter()
            .filter(|t| t.key_id == key && t.challenge == digest)
            .count()
    }

    /// Drops every token `policy`'s relay would refuse for its key or challenge; returns how
    /// many went.
    pub fn retain_for(&mut self, policy: &RelayPolicy) -> usize {
        let (key, digest) = (policy.key_hex(), policy.digest_hex());
        let before = self.tokens.len();
        self.tokens
            .retain(|t| t.key_id == key && t.challenge == digest);
        before - self.tokens.len()
    }

    pub fn add(&mut self, policy: &RelayPolicy, tokens: Vec<RelayToken>) {
        let (key, digest) = (policy.key_hex(), policy.digest_hex());
        for t in tokens {
            self.tokens.push(Stored {
                key_id: key.clone(),
                challenge: digest.clone(),
                token: Zeroizing::new(sotto_tokens::b64_encode(&t.0.encode())),
            });
        }
    }

    /// Takes one token for `policy` out of the wallet. Save the wallet before spending it: a
    /// token is accepted once, so one kept after use would only be refused later.
    pub fn take(&mut self, policy: &RelayPolicy) -> Option<RelayToken> {
        let (key, digest) = (policy.key_hex(), policy.digest_hex());
        // Oldest first: the token whose issuance lies furthest back. A damaged entry is
        // dropped and the next one tried.
        while let Some(at) = self
            .tokens
            .iter()
            .position(|t| t.key_id == key && t.challenge == digest)
        {
            let stored = self.tokens.remove(at);
            let token = sotto_tokens::b64_decode(&stored.token, "stored token")
                .and_then(|bytes| sotto_tokens::Token::decode(&bytes));
            if let Ok(token) = token {
                if policy.key.verify(&token, &policy.digest).is_ok() {
                    return Some(RelayToken(token));
                }
            }
        }
        None
    }
}
