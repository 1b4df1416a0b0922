//! The published test vectors, copied as data into `tests/vectors/`: RFC 9578 appendix A.2
//! (issuance protocol 2, blind RSA 2048: request, response and token byte for byte), RFC 9577's
//! token input vectors (challenge encoding, digest and the signed input), and RFC 9474's
//! RSABSSA-SHA384-PSS-Deterministic vector (the variant RFC 9578 uses, there with a 4096-bit key). The RFC 9578 and RFC 9577
//! files are the copies Cloudflare's privacypass-ts tests with; the RFC 9474 one is the RFC's.

use std::convert::Infallible;

use blind_rsa_signatures::reexports::crypto_bigint::BoxedUint;
use blind_rsa_signatures::reexports::rand as rand_core_10;
use blind_rsa_signatures::reexports::rsa::RsaPrivateKey;
use blind_rsa_signatures::{BlindSignature, SecretKeySha384PSSDeterministic, Signature};
use rand_core_10::{TryCryptoRng, TryRng};
use serde::Deserialize;
use sotto_tokens::{
    header, IssuerKey, IssuerSecret, PendingToken, Token, TokenChallenge, TokenError, NK,
};

/// Hands out the vector's random values in the order they are drawn.
struct Scripted(Vec<Vec<u8>>);

impl TryRng for Scripted {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(
            !self.0.is_empty(),
            "drew more randomness than the vector has"
        );
        let next = self.0.remove(0);
        assert_eq!(next.len(), dst.len(), "drew randomness in another order");
        dst.copy_from_slice(&next);
        Ok(())
    }
}

impl TryCryptoRng for Scripted {}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector hex")
}

/// crypto-bigint fills the blinding factor little-endian from the generator.
fn little_endian(big_endian: &[u8]) -> Vec<u8> {
    big_endian.iter().rev().copied().collect()
}

#[derive(Deserialize)]
struct Rfc9578 {
    #[serde(rename = "skS")]
    sk: String,
    #[serde(rename = "pkS")]
    pk: String,
    token_challenge: String,
    nonce: String,
    blind: String,
    salt: String,
    token_request: String,
    token_response: String,
    token: String,
}

#[test]
fn rfc9578_issuance_protocol_2() {
    let vectors: Vec<Rfc9578> =
        serde_json::from_str(include_str!("vectors/rfc9578-blind-rsa.json")).unwrap();
    assert_eq!(vectors.len(), 5);
    for (i, v) in vectors.iter().enumerate() {
        let pem = String::from_utf8(unhex(&v.sk)).unwrap();
        let issuer = IssuerSecret::from_pem(&pem).unwrap();
        let key = IssuerKey::from_spki(&unhex(&v.pk)).unwrap();
        assert_eq!(issuer.public().spki(), key.spki(), "vector {i}: pkS");

        let challenge_bytes = unhex(&v.token_challenge);
        let challenge = TokenChallenge::decode(&challenge_bytes).unwrap();
        assert_eq!(challenge.encode().unwrap(), challenge_bytes, "vector {i}");

        let mut rng = Scripted(vec![
            unhex(&v.nonce),
            unhex(&v.salt),
            little_endian(&unhex(&v.blind)),
        ]);
        let (pending, request) = PendingToken::start(&mut rng, &challenge, &key).unwrap();
        assert!(rng.0.is_empty());
        assert_eq!(
            hex::encode(&request),
            v.token_request,
            "vector {i}: request"
        );

        let response = issuer.sign(&request).unwrap();
        assert_eq!(
            hex::encode(&response),
            v.token_response,
            "vector {i}: response"
        );

        let token = pending.finish(&response).unwrap();
        assert_eq!(hex::encode(&*token.encode()), v.token, "vector {i}: token");

        let digest = challenge.digest().unwrap();
        key.verify(&token, &digest).unwrap();
        let decoded = Token::decode(&unhex(&v.token)).unwrap();
        key.verify(&decoded, &digest).unwrap();
        let carried = header::parse_authorization(&header::authorization(&decoded)).unwrap();
        assert_eq!(*carried.encode(), *decoded.encode());
    }
}

#[derive(Deserialize)]
struct Rfc9577 {
    token_type: String,
    issuer_name: String,
    redemption_context: String,
    origin_info: String,
    nonce: String,
    token_key_id: String,
    token_authenticator_input: String,
}

#[test]
fn rfc9577_token_input() {
    let vectors: Vec<Rfc9577> =
        serde_json::from_str(include_str!("vectors/rfc9577-token-input.json")).unwrap();
    assert_eq!(vectors.len(), 5);
    for (i, v) in vectors.iter().enumerate() {
        assert_eq!(v.token_type, "0002");
        let origins = String::from_utf8(unhex(&v.origin_info)).unwrap();
        let challenge = TokenChallenge {
            issuer_name: String::from_utf8(unhex(&v.issuer_name)).unwrap(),
            redemption_context: unhex(&v.redemption_context),
            origin_info: if origins.is_empty() {
                Vec::new()
            } else {
                origins.split(',').map(str::to_owned).collect()
            },
        };
        let encoded = challenge.encode().unwrap();
        assert_eq!(TokenChallenge::decode(&encoded).unwrap(), challenge);
        // A token with an all-zero authenticator carries the vector's input; its signature
        // is not the point here.
        let mut bytes = 2u16.to_be_bytes().to_vec();
        bytes.extend(unhex(&v.nonce));
        bytes.extend(challenge.digest().unwrap());
        bytes.extend(unhex(&v.token_key_id));
        bytes.extend([0u8; NK]);
        let token = Token::decode(&bytes).unwrap();
        assert_eq!(
            hex::encode(token.input()),
            v.token_authenticator_input,
            "vector {i}"
        );
    }
}

#[derive(Deserialize)]
struct Rfc9474 {
    name: String,
    p: String,
    q: String,
    n: String,
    e: String,
    d: String,
    msg: String,
    salt: String,
    inv: String,
    blinded_msg: String,
    blind_sig: String,
    sig: String,
}

fn uint(s: &str) -> BoxedUint {
    BoxedUint::from_str_radix_vartime(s.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn rfc9474_pss_deterministic() {
    let vectors: Vec<Rfc9474> =
        serde_json::from_str(include_str!("vectors/rfc9474-pss-deterministic.json")).unwrap();
    let v = &vectors[0];
    assert_eq!(v.name, "RSABSSA-SHA384-PSS-Deterministic");
    let n = uint(&v.n);
    let inner = RsaPrivateKey::from_components(
        n.clone(),
        uint(&v.e),
        uint(&v.d),
        vec![uint(&v.p), uint(&v.q)],
    )
    .unwrap();
    let sk = SecretKeySha384PSSDeterministic::new(inner);

    // RFC 9474's vectors use a 4096-bit key; token type 2 is 2048 bits only (Nk = 256).
    assert_eq!(
        IssuerSecret::from_pkcs8_der(&sk.to_der().unwrap()).err(),
        Some(TokenError::BadKey)
    );
    let blind_sig = sk
        .blind_sign_with_rng(&mut rand_core_10::rngs::SysRng, unhex(&v.blinded_msg))
        .unwrap();
    assert_eq!(hex::encode(&blind_sig.0), v.blind_sig);

    // The client's steps with the parameters this crate uses: blinding with the vector's salt
    // and factor, finalizing, verifying.
    let r = uint(&v.inv).invert_mod(&n.to_nz().unwrap()).unwrap();
    let mut rng = Scripted(vec![unhex(&v.salt), r.to_le_bytes().to_vec()]);
    let pk = sk.public_key().unwrap();
    let msg = unhex(&v.msg);
    let blinded = pk.blind(&mut rng, &msg).unwrap();
    assert_eq!(hex::encode(&blinded.blind_message.0), v.blinded_msg);
    let sig = pk
        .finalize(&BlindSignature(unhex(&v.blind_sig)), &blinded, &msg)
        .unwrap();
    assert_eq!(hex::encode(&sig.0), v.sig);
    pk.verify(&Signature(unhex(&v.sig)), None, &msg).unwrap();
}

#[test]
fn a_request_for_another_key_is_refused() {
    let v: Vec<Rfc9578> =
        serde_json::from_str(include_str!("vectors/rfc9578-blind-rsa.json")).unwrap();
    let issuer = IssuerSecret::from_pem(&String::from_utf8(unhex(&v[0].sk)).unwrap()).unwrap();
    let mut request = unhex(&v[0].token_request);
    request[2] ^= 1;
    assert_eq!(issuer.sign(&request), Err(TokenError::OtherKey));
    request[2] ^= 1;
    request[0] = 0;
    request[1] = 1;
    assert_eq!(issuer.sign(&request), Err(TokenError::WrongType(1)));
    assert!(matches!(
        issuer.sign(&request[..100]),
        Err(TokenError::WrongType(1))
    ));
    let mut long = unhex(&v[0].token_request);
    long.push(0);
    assert!(matches!(
        issuer.sign(&long),
        Err(TokenError::Malformed { .. })
    ));
}
