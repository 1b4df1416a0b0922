//! Fuzzes every parser of relay tokens that reads bytes from the network: the token challenge
//! (from a relay's policy), the token and the `Authorization` and `WWW-Authenticate` values
//! (at the redeemer), the issuer key (from a policy), and the issuer's reading of a token
//! request. None may panic; whatever parses must re-encode to the same bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sotto_tokens::{header, IssuerKey, IssuerSecret, Token, TokenChallenge};

/// RFC 9578's test vector key: a fixed issuer, so a request naming its key gets signed.
fn issuer() -> &'static IssuerSecret {
    static ISSUER: OnceLock<IssuerSecret> = OnceLock::new();
    ISSUER.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Vector {
            #[serde(rename = "skS")]
            sk: String,
        }
        let vectors: Vec<Vector> = serde_json::from_str(include_str!(
            "../../crates/tokens/tests/vectors/rfc9578-blind-rsa.json"
        ))
        .unwrap();
        let pem = String::from_utf8(hex::decode(&vectors[0].sk).unwrap()).unwrap();
        IssuerSecret::from_pem(&pem).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(challenge) = TokenChallenge::decode(data) {
        assert_eq!(challenge.encode().unwrap(), data);
    }
    if let Ok(token) = Token::decode(data) {
        assert_eq!(&*token.encode(), data);
        let _ = issuer().public().verify(&token, token.challenge_digest());
    }
    if let Ok(key) = IssuerKey::from_spki(data) {
        assert_eq!(key.spki(), data);
    }
    if let Ok(response) = issuer().sign(data) {
        assert_eq!(response.len(), sotto_tokens::RESPONSE_LEN);
    }
    let text = String::from_utf8_lossy(data);
    let _ = header::parse_authorization(&text);
    let _ = header::parse_www_authenticate(&text);
});
