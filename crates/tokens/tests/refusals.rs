//! What a redeemer and a client refuse: forged, re-targeted and foreign-key tokens, answers from
//! the wrong issuer, and malformed headers, each with its own error.

use sotto_tokens::{
    header, IssuerSecret, PendingToken, Token, TokenChallenge, TokenError, REQUEST_LEN, TOKEN_LEN,
};

fn issue(issuer: &IssuerSecret, challenge: &TokenChallenge) -> Token {
    let (pending, request) = PendingToken::start_random(challenge, issuer.public()).unwrap();
    assert_eq!(request.len(), REQUEST_LEN);
    pending.finish(&issuer.sign(&request).unwrap()).unwrap()
}

#[test]
fn redeemer_refusals() {
    let issuer = IssuerSecret::generate().unwrap();
    let other = IssuerSecret::generate().unwrap();
    let challenge = TokenChallenge::new("sotto.test");
    let digest = challenge.digest().unwrap();
    let token = issue(&issuer, &challenge);
    assert_eq!(token.encode().len(), TOKEN_LEN);
    issuer.public().verify(&token, &digest).unwrap();

    // Every bit of the authenticator matters.
    let mut forged = token.encode().to_vec();
    forged[TOKEN_LEN - 1] ^= 1;
    let forged = Token::decode(&forged).unwrap();
    assert_eq!(
        issuer.public().verify(&forged, &digest),
        Err(TokenError::Forged)
    );

    // A changed nonce (a token replayed under a fresh nonce) no longer matches its signature.
    let mut renonced = token.encode().to_vec();
    renonced[2] ^= 1;
    assert_eq!(
        issuer
            .public()
            .verify(&Token::decode(&renonced).unwrap(), &digest),
        Err(TokenError::Forged)
    );

    // Made for another redeemer's challenge.
    let elsewhere = TokenChallenge::new("elsewhere.test").digest().unwrap();
    assert_eq!(
        issuer.public().verify(&token, &elsewhere),
        Err(TokenError::OtherChallenge)
    );

    // Issued under a key this redeemer does not hold (an old or a stranger's).
    let foreign = issue(&other, &challenge);
    assert_eq!(
        issuer.public().verify(&foreign, &digest),
        Err(TokenError::UnknownKey)
    );

    // A foreign token relabelled with this issuer's key id still fails on its signature.
    let mut relabelled = foreign.encode().to_vec();
    relabelled[66..98].copy_from_slice(&issuer.public().id());
    assert_eq!(
        issuer
            .public()
            .verify(&Token::decode(&relabelled).unwrap(), &digest),
        Err(TokenError::Forged)
    );
}

#[test]
fn client_refuses_an_answer_that_does_not_finalize() {
    let issuer = IssuerSecret::generate().unwrap();
    let challenge = TokenChallenge::new("sotto.test");
    let (pending, request) = PendingToken::start_random(&challenge, issuer.public()).unwrap();
    let mut response = issuer.sign(&request).unwrap();
    response[10] ^= 0x40;
    assert!(matches!(
        pending.finish(&response),
        Err(TokenError::BadResponse)
    ));
    let (pending, _) = PendingToken::start_random(&challenge, issuer.public()).unwrap();
    assert!(matches!(
        pending.finish(&[0u8; 10]),
        Err(TokenError::Malformed { .. })
    ));
}

#[test]
fn headers_round_trip_and_refuse_garbage() {
    let issuer = IssuerSecret::generate().unwrap();
    let challenge = TokenChallenge {
        issuer_name: "sotto.test".into(),
        redemption_context: vec![7; 32],
        origin_info: vec!["a.test".into(), "b.test".into()],
    };
    let value = header::www_authenticate(&challenge, issuer.public()).unwrap();
    let (parsed, key) = header::parse_www_authenticate(&value).unwrap();
    assert_eq!(parsed, challenge);
    assert_eq!(key.spki(), issuer.public().spki());

    let token = issue(&issuer, &challenge);
    let value = header::authorization(&token);
    assert!(value.starts_with("PrivateToken token=\""));
    let back = header::parse_authorization(&value).unwrap();
    issuer
        .public()
        .verify(&back, &challenge.digest().unwrap())
        .unwrap();
    // Unpadded and unquoted, and the scheme in another case, as other encoders send it.
    let unpadded = value.replace('=', "").replacen("token", "token=", 1);
    let unquoted = unpadded
        .replace('"', "")
        .replace("PrivateToken", "privatetoken");
    header::parse_authorization(&unquoted).unwrap();

    for bad in [
        "",
        "Bearer abc",
        "PrivateToken",
        "PrivateToken challenge=\"AAAA\"",
        "PrivateToken token=\"not base64!\"",
        "PrivateToken token=\"AAAA\"",
        "PrivateToken token=\"AAAA",
    ] {
        assert!(
            matches!(
                header::parse_authorization(bad),
                Err(TokenError::Malformed { .. } | TokenError::WrongType(_))
            ),
            "{bad}"
        );
    }
    assert!(header::parse_authorization(&"A".repeat(100_000)).is_err());
}

#[test]
fn challenges_are_canonical() {
    let challenge = TokenChallenge::new("sotto.test");
    let bytes = challenge.encode().unwrap();
    assert_eq!(TokenChallenge::decode(&bytes).unwrap(), challenge);
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(TokenChallenge::decode(&trailing).is_err());
    let mut bad_context = bytes.clone();
    bad_context[2 + 2 + 10] = 5;
    assert!(TokenChallenge::decode(&bad_context).is_err());
    assert!(TokenChallenge::new("").encode().is_err());
}
