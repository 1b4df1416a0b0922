//! Privacy Pass tokens that prove "this came from someone the issuer let in" and nothing else:
//! publicly verifiable tokens (RFC 9577 token type 0x0002) issued with blind RSA (RFC 9578
//! section 6, RSABSSA-SHA384-PSS-Deterministic per RFC 9474, 2048-bit keys).
//!
//! The client makes a nonce, binds it to a [`TokenChallenge`] and the issuer's key, and blinds
//! the result ([`PendingToken::start`]); the issuer signs the blinded message without seeing it
//! ([`IssuerSecret::sign`]); the client unblinds the answer into a [`Token`]
//! ([`PendingToken::finish`]), and anyone holding the issuer's public key can check it
//! ([`IssuerKey::verify`]). Because the issuer only ever saw a blinded value, it cannot tell
//! which issuance a redeemed token came from.
//!
//! Trust: everything here is parsed from the network and may be hostile, the issuer's answer
//! included (a token that does not verify is refused, not kept). Pure: no I/O, no clock; the
//! randomness comes from the caller ([`PendingToken::start`] takes a generator) or from
//! the operating system ([`PendingToken::start_random`]). Spent-token bookkeeping is the redeemer's.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use blind_rsa_signatures::{
    BlindSignature, BlindingResult, KeyPairSha384PSSDeterministic, PublicKeySha384PSSDeterministic,
    SecretKeySha384PSSDeterministic, Signature,
};
use rand::rngs::{StdRng, SysRng};
use rand::{CryptoRng, SeedableRng};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

pub mod header;

/// The publicly verifiable token type: blind RSA, 2048 bits (RFC 9578 section 8.2.1).
pub const TOKEN_TYPE: u16 = 0x0002;
/// Bytes of an authenticator, a blinded message and a blind signature (`Nk`): the modulus.
pub const NK: usize = 256;
/// Bytes of a token key id (`Nid`): SHA-256 of the key's SubjectPublicKeyInfo.
pub const NID: usize = 32;
/// Bytes of an encoded [`Token`].
pub const TOKEN_LEN: usize = 2 + 32 + 32 + NID + NK;
/// Bytes of an encoded token request: type, truncated key id, blinded message.
pub const REQUEST_LEN: usize = 2 + 1 + NK;
/// Bytes of an encoded token response: the blind signature.
pub const RESPONSE_LEN: usize = NK;
/// The longest issuer name or origin info this crate encodes or accepts (RFC 9577's limit).
pub const MAX_NAME: usize = u16::MAX as usize;

/// What was wrong, said so that a person can act on it; never echoes the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the {what} is malformed: {why}")]
    Malformed {
        what: &'static str,
        why: &'static str,
    },
    #[error("token type {0:#06x} is not the publicly verifiable blind RSA type (0x0002)")]
    WrongType(u16),
    #[error("the issuer key is not a 2048-bit RSASSA-PSS (SHA-384, 48-byte salt) key")]
    BadKey,
    #[error("the token request names another issuer key (truncated key id differs)")]
    OtherKey,
    #[error("the token was issued under a key this redeemer does not accept (retired or unknown)")]
    UnknownKey,
    #[error("the token was made for another challenge")]
    OtherChallenge,
    #[error("the token's signature does not verify under the issuer key (forged or damaged)")]
    Forged,
    #[error("the issuer's answer does not finalize to a valid token (wrong key or bad answer)")]
    BadResponse,
    #[error("the operating system gave no randomness")]
    Randomness,
    #[error("the blind RSA step failed: {0}")]
    Crypto(&'static str),
}

fn malformed(what: &'static str, why: &'static str) -> TokenError {
    TokenError::Malformed { what, why }
}

/// Unpadded or padded base64url, as RFC 9577 encoders differ.
pub fn b64_decode(text: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    let text = text.trim();
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| malformed(what, "not base64url"))
}

/// Padded base64url, which every RFC 9577 decoder accepts.
pub fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// What a redeemer asks for (RFC 9577 section 2.1): which issuer, and optionally which
/// redemption context and origins a token may be spent at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenChallenge {
    pub issuer_name: String,
    /// Empty, or 32 bytes that tie tokens to one context (empty lets clients fetch tokens
    /// ahead of time, which issuance unlinkability in time needs).
    pub redemption_context: Vec<u8>,
    /// Origin names; empty for tokens spendable at any origin of this issuer.
    pub origin_info: Vec<String>,
}

impl TokenChallenge {
    pub fn new(issuer_name: &str) -> Self {
        TokenChallenge {
            issuer_name: issuer_name.to_owned(),
            redemption_context: Vec::new(),
            origin_info: Vec::new(),
        }
    }

    /// The challenge's bytes: `token_type`, `issuer_name<1..2^16-1>`,
    /// `redemption_context<0..32>`, `origin_info<0..2^16-1>` (origins joined by commas).
    pub fn encode(&self) -> Result<Vec<u8>, TokenError> {
        let origins = self.origin_info.join(",");
        if self.issuer_name.is_empty() || self.issuer_name.len() > MAX_NAME {
            return Err(malformed(
                "token challenge",
                "the issuer name is empty or too long",
            ));
        }
        if origins.len() > MAX_NAME {
            return Err(malformed("token challenge", "the origin info is too long"));
        }
        if !matches!(self.redemption_context.len(), 0 | 32) {
            return Err(malformed(
                "token challenge",
                "the redemption context must be empty or 32 bytes",
            ));
        }
        let mut out = Vec::with_capacity(7 + self.issuer_name.len() + 32 + origins.len());
        out.extend_from_slice(&TOKEN_TYPE.to_be_bytes());
        out.extend_from_slice(&(self.issuer_name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.issuer_name.as_bytes());
        out.push(self.redemption_context.len() as u8);
        out.extend_from_slice(&self.redemption_context);
        out.extend_from_slice(&(origins.len() as u16).to_be_bytes());
        out.extend_from_slice(origins.as_bytes());
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        const WHAT: &str = "token challenge";
        let mut r = Reader::new(bytes, WHAT);
        let token_type = r.u16()?;
        if token_type != TOKEN_TYPE {
            return Err(TokenError::WrongType(token_type));
        }
        let issuer = r.vec16()?;
        if issuer.is_empty() {
            return Err(malformed(WHAT, "the issuer name is empty"));
        }
        let context_len = usize::from(r.u8()?);
        if !matches!(context_len, 0 | 32) {
            return Err(malformed(
                WHAT,
                "the redemption context must be empty or 32 bytes",
            ));
        }
        let redemption_context = r.take(context_len)?.to_vec();
        let origins = r.vec16()?;
        r.end()?;
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| malformed(WHAT, "a name is not UTF-8"))
        };
        let origins = text(origins)?;
        Ok(TokenChallenge {
            issuer_name: text(issuer)?,
            redemption_context,
            origin_info: if origins.is_empty() {
                Vec::new()
            } else {
                origins.split(',').map(str::to_owned).collect()
            },
        })
    }

    /// `SHA-256(TokenChallenge)`, the digest a token carries.
    pub fn digest(&self) -> Result<[u8; 32], TokenError> {
        Ok(Sha256::digest(self.encode()?).into())
    }
}

/// An issuer's public key, as its directory publishes it: the DER SubjectPublicKeyInfo with the
/// RSASSA-PSS OID and SHA-384 parameters (RFC 9578 section 6.5).
#[derive(Clone)]
pub struct IssuerKey {
    key: PublicKeySha384PSSDeterministic,
    spki: Vec<u8>,
    id: [u8; NID],
}

impl IssuerKey {
    /// Accepts only the canonical encoding of a 2048-bit key with those parameters: a key that
    /// re-encodes differently would have another key id.
    pub fn from_spki(spki: &[u8]) -> Result<Self, TokenError> {
        let key =
            PublicKeySha384PSSDeterministic::from_spki(spki).map_err(|_| TokenError::BadKey)?;
        if key.components().n().len() != NK {
            return Err(TokenError::BadKey);
        }
        let canonical = key.to_spki().map_err(|_| TokenError::BadKey)?;
        if canonical != spki {
            return Err(TokenError::BadKey);
        }
        Ok(Self::from_parts(key, canonical))
    }

    fn from_parts(key: PublicKeySha384PSSDeterministic, spki: Vec<u8>) -> Self {
        let id = Sha256::digest(&spki).into();
        IssuerKey { key, spki, id }
    }

    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// `token_key_id`: SHA-256 of the SubjectPublicKeyInfo.
    pub fn id(&self) -> [u8; NID] {
        self.id
    }

    /// The id's last byte, which a token request carries so the issuer can pick its key.
    pub fn truncated_id(&self) -> u8 {
        self.id[NID - 1]
    }

    /// Checks `token` against this key and the challenge the redeemer expects: the token type,
    /// the key id, the challenge digest, then the RSASSA-PSS signature over the token input.
    pub fn verify(&self, token: &Token, challenge_digest: &[u8; 32]) -> Result<(), TokenError> {
        if token.key_id != self.id {
            return Err(TokenError::UnknownKey);
        }
        if token.challenge_digest != *challenge_digest {
            return Err(TokenError::OtherChallenge);
        }
        self.key
            .verify(
                &Signature(token.authenticator.to_vec()),
                None,
                token.input(),
            )
            .map_err(|_| TokenError::Forged)
    }
}

/// The issuer's private key. No `Debug`; its encoding is handed out zeroizing.
pub struct IssuerSecret {
    key: SecretKeySha384PSSDeterministic,
    public: IssuerKey,
}

impl IssuerSecret {
    /// A fresh 2048-bit key from the operating system's randomness.
    pub fn generate() -> Result<Self, TokenError> {
        let mut rng = system_rng()?;
        let pair = KeyPairSha384PSSDeterministic::generate(&mut rng, NK * 8)
            .map_err(|_| TokenError::Crypto("generating the issuer key failed"))?;
        Self::from_key(pair.sk)
    }

    /// A key saved by [`IssuerSecret::to_pkcs8_der`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, TokenError> {
        let key = SecretKeySha384PSSDeterministic::from_der(der).map_err(|_| TokenError::BadKey)?;
        Self::from_key(key)
    }

    /// A key in PEM (PKCS#8 or PKCS#1), as RFC 9578's test vectors give it.
    pub fn from_pem(pem: &str) -> Result<Self, TokenError> {
        let key = SecretKeySha384PSSDeterministic::from_pem(pem).map_err(|_| TokenError::BadKey)?;
        Self::from_key(key)
    }

    fn from_key(key: SecretKeySha384PSSDeterministic) -> Result<Self, TokenError> {
        let public = key.public_key().map_err(|_| TokenError::BadKey)?;
        if public.components().n().len() != NK {
            return Err(TokenError::BadKey);
        }
        let spki = public.to_spki().map_err(|_| TokenError::BadKey)?;
        Ok(IssuerSecret {
            key,
            public: IssuerKey::from_parts(public, spki),
        })
    }

    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        self.key
            .to_der()
            .map(Zeroizing::new)
            .map_err(|_| TokenError::Crypto("encoding the issuer key failed"))
    }

    pub fn public(&self) -> &IssuerKey {
        &self.public
    }

    /// Signs one token request (RFC 9578 section 6.2): checks its type and truncated key id,
    /// then blind-signs its blinded message. Returns the token response.
    pub fn sign(&self, request: &[u8]) -> Result<Vec<u8>, TokenError> {
        const WHAT: &str = "token request";
        let mut r = Reader::new(request, WHAT);
        let token_type = r.u16()?;
        if token_type != TOKEN_TYPE {
            return Err(TokenError::WrongType(token_type));
        }
        if r.u8()? != self.public.truncated_id() {
            return Err(TokenError::OtherKey);
        }
        let blinded = r.take(NK)?;
        r.end()?;
        let signature = self
            .key
            .blind_sign_with_rng(&mut SysRng, blinded)
            .map_err(|_| malformed(WHAT, "the blinded message is not below the modulus"))?;
        Ok(signature.0)
    }
}

impl PendingToken {
    /// Starts one token for `challenge` under `key` with the operating system's randomness:
    /// returns the request bytes to send and the state to finish with.
    pub fn start_random(
        challenge: &TokenChallenge,
        key: &IssuerKey,
    ) -> Result<(PendingToken, Vec<u8>), TokenError> {
        Self::start(&mut system_rng()?, challenge, key)
    }

    /// [`PendingToken::start_random`] with the caller's generator, drawn in RFC 9578's order:
    /// the nonce, the PSS salt, then the blinding factor.
    pub fn start<R: CryptoRng + ?Sized>(
        rng: &mut R,
        challenge: &TokenChallenge,
        key: &IssuerKey,
    ) -> Result<(PendingToken, Vec<u8>), TokenError> {
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let pending = PendingToken {
            nonce,
            challenge_digest: challenge.digest()?,
            key: key.clone(),
            blinding: None,
        };
        let blinding = key
            .key
            .blind(rng, pending.input())
            .map_err(|_| TokenError::Crypto("blinding the token input failed"))?;
        let mut request = Vec::with_capacity(REQUEST_LEN);
        request.extend_from_slice(&TOKEN_TYPE.to_be_bytes());
        request.push(key.truncated_id());
        request.extend_from_slice(&blinding.blind_message);
        if request.len() != REQUEST_LEN {
            return Err(TokenError::Crypto(
                "the blinded message has the wrong length",
            ));
        }
        Ok((
            PendingToken {
                blinding: Some(Blinding(blinding)),
                ..pending
            },
            request,
        ))
    }
}

/// The blinding of one request: its inverse unblinds the issuer's answer, and anyone holding it
/// could link the token to the request, so it is wiped when dropped.
struct Blinding(BlindingResult);

impl Drop for Blinding {
    fn drop(&mut self) {
        self.0.secret.0.zeroize();
    }
}

/// A token request sent and not yet answered. No `Debug`: it holds the blinding.
pub struct PendingToken {
    nonce: [u8; 32],
    challenge_digest: [u8; 32],
    key: IssuerKey,
    blinding: Option<Blinding>,
}

impl PendingToken {
    fn input(&self) -> Vec<u8> {
        token_input(&self.nonce, &self.challenge_digest, &self.key.id)
    }

    /// Unblinds the issuer's token response into a token, which must verify under the key the
    /// request was made for: an issuer cannot hand out a token that would later be refused, or
    /// tag one with another key to recognise it at redemption.
    pub fn finish(self, response: &[u8]) -> Result<Token, TokenError> {
        if response.len() != RESPONSE_LEN {
            return Err(malformed("token response", "it is not 256 bytes"));
        }
        let blinding = self
            .blinding
            .as_ref()
            .ok_or(TokenError::Crypto("the request was never blinded"))?;
        let signature = self
            .key
            .key
            .finalize(
                &BlindSignature(response.to_vec()),
                &blinding.0,
                self.input(),
            )
            .map_err(|_| TokenError::BadResponse)?;
        let authenticator: [u8; NK] = signature
            .0
            .as_slice()
            .try_into()
            .map_err(|_| TokenError::BadResponse)?;
        Ok(Token {
            nonce: self.nonce,
            challenge_digest: self.challenge_digest,
            key_id: self.key.id,
            authenticator,
        })
    }
}

/// A finished token (RFC 9577 section 2.2). It is a bearer credential, spendable once: no
/// `Debug`, and wiped when dropped.
#[derive(Clone)]
pub struct Token {
    nonce: [u8; 32],
    challenge_digest: [u8; 32],
    key_id: [u8; NID],
    authenticator: [u8; NK],
}

impl Drop for Token {
    fn drop(&mut self) {
        self.nonce.zeroize();
        self.authenticator.zeroize();
    }
}

fn token_input(nonce: &[u8; 32], challenge_digest: &[u8; 32], key_id: &[u8; NID]) -> Vec<u8> {
    let mut input = Vec::with_capacity(2 + 32 + 32 + NID);
    input.extend_from_slice(&TOKEN_TYPE.to_be_bytes());
    input.extend_from_slice(nonce);
    input.extend_from_slice(challenge_digest);
    input.extend_from_slice(key_id);
    input
}

impl Token {
    pub fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        let mut r = Reader::new(bytes, "token");
        let token_type = r.u16()?;
        if token_type != TOKEN_TYPE {
            return Err(TokenError::WrongType(token_type));
        }
        let token = Token {
            nonce: r.array()?,
            challenge_digest: r.array()?,
            key_id: r.array()?,
            authenticator: r.array()?,
        };
        r.end()?;
        Ok(token)
    }

    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(self.input());
        out.extend_from_slice(&self.authenticator);
        out
    }

    /// The signed part: `token_type || nonce || challenge_digest || token_key_id`.
    pub fn input(&self) -> Vec<u8> {
        token_input(&self.nonce, &self.challenge_digest, &self.key_id)
    }

    /// What a redeemer records to refuse the token a second time.
    pub fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }

    pub fn key_id(&self) -> &[u8; NID] {
        &self.key_id
    }

    pub fn challenge_digest(&self) -> &[u8; 32] {
        &self.challenge_digest
    }
}

/// A generator seeded once from the operating system, so a failure to get randomness is an
/// error here rather than a panic inside the blind RSA code.
fn system_rng() -> Result<StdRng, TokenError> {
    StdRng::try_from_rng(&mut SysRng).map_err(|_| TokenError::Randomness)
}

/// Reads RFC 9577's fixed layouts: big-endian lengths, no trailing bytes.
struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { rest: bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.rest.len() < n {
            return Err(malformed(self.what, "it is cut short"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TokenError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, TokenError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn vec16(&mut self) -> Result<&'a [u8], TokenError> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }

    fn end(&self) -> Result<(), TokenError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(self.what, "bytes follow its end"))
        }
    }
}
