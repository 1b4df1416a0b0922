//! The `PrivateToken` HTTP authentication scheme (RFC 9577 section 2): the challenge a
//! redeemer sends in `WWW-Authenticate` and the token a client answers with in `Authorization`.
//!
//! Trust: header values come from the network; they are parsed strictly enough that a value
//! either yields one well-formed challenge or token or is refused with a reason.

use crate::{b64_decode, b64_encode, IssuerKey, Token, TokenChallenge, TokenError};

/// The scheme's name; matched without regard to case, as HTTP schemes are.
pub const SCHEME: &str = "PrivateToken";

/// The longest header value parsed: a token is 472 base64 characters, a challenge with its
/// key under a kilobyte; anything far longer is not ours.
const MAX_VALUE: usize = 8 * 1024;

/// `Authorization: PrivateToken token="…"`.
pub fn authorization(token: &Token) -> String {
    format!("{SCHEME} token=\"{}\"", b64_encode(&token.encode()))
}

/// The token of an `Authorization` value in the `PrivateToken` scheme.
pub fn parse_authorization(value: &str) -> Result<Token, TokenError> {
    const WHAT: &str = "PrivateToken authorization";
    let params = params(value, WHAT)?;
    let token = param(&params, "token").ok_or(TokenError::Malformed {
        what: WHAT,
        why: "it has no token parameter",
    })?;
    Token::decode(&b64_decode(token, "token")?)
}

/// `WWW-Authenticate: PrivateToken challenge="…", token-key="…"`.
pub fn www_authenticate(challenge: &TokenChallenge, key: &IssuerKey) -> Result<String, TokenError> {
    Ok(format!(
        "{SCHEME} challenge=\"{}\", token-key=\"{}\"",
        b64_encode(&challenge.encode()?),
        b64_encode(key.spki())
    ))
}

/// The challenge and issuer key of a `WWW-Authenticate` value in the `PrivateToken` scheme.
pub fn parse_www_authenticate(value: &str) -> Result<(TokenChallenge, IssuerKey), TokenError> {
    const WHAT: &str = "PrivateToken challenge";
    let params = params(value, WHAT)?;
    let missing = |why| TokenError::Malformed { what: WHAT, why };
    let challenge = param(&params, "challenge").ok_or(missing("it has no challenge parameter"))?;
    let key = param(&params, "token-key").ok_or(missing("it has no token-key parameter"))?;
    let challenge = TokenChallenge::decode(&b64_decode(challenge, "token challenge")?)?;
    let key = IssuerKey::from_spki(&b64_decode(key, "token key")?)?;
    Ok((challenge, key))
}

/// The `name=value` parameters after the scheme, values unquoted.
fn params<'a>(value: &'a str, what: &'static str) -> Result<Vec<(&'a str, &'a str)>, TokenError> {
    let bad = |why| TokenError::Malformed { what, why };
    if value.len() > MAX_VALUE {
        return Err(bad("it is too long"));
    }
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(bad("it has no parameters"))?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(bad("it is not in the PrivateToken scheme"));
    }
    rest.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, v) = p.split_once('=').ok_or(bad("a parameter has no value"))?;
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(quoted) => quoted
                    .strip_suffix('"')
                    .ok_or(bad("a quoted value is not closed"))?,
                None => v,
            };
            Ok((name.trim(), v))
        })
        .collect()
}

fn param<'a>(params: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}
