//! The relay token flow fed by hand, as a hostile issuer would answer it: the flow is sans-I/O,
//! so the test plays the server with an issuer key of its own. A good answer fills the wallet;
//! an answer that does not finalize under the policy's key, a short one and a quota refusal are
//! errors, and nothing reaches the wallet.

use sotto_api::{routes, ApiError, TokenPolicy, TOKEN_REQUEST_TYPE};
use sotto_client::{
    Answer, ClientError, FetchTokens, Flow, Method, RelayPolicy, Response, Step, Token, Wallet,
};
use sotto_tokens::{IssuerSecret, TokenChallenge, REQUEST_LEN, RESPONSE_LEN};

fn policy_of(issuer: &IssuerSecret) -> RelayPolicy {
    let policy = TokenPolicy {
        challenge: TokenChallenge::new("relay.test").encode().unwrap(),
        token_key: issuer.public().spki().to_vec(),
        required: true,
        per_period: 10,
        period_secs: 3600,
    };
    let answer = Response::new(200, serde_json::to_vec(&policy).unwrap());
    RelayPolicy::read(&answer).unwrap().unwrap()
}

/// Starts a fetch of `count` and returns the flow and the request body it sent.
fn started(policy: &RelayPolicy, count: usize) -> (FetchTokens, Vec<u8>) {
    let mut flow = FetchTokens::new(Some(Token::new("session".into())), policy.clone(), count);
    let Step::Send(req) = flow.next(None).unwrap() else {
        panic!("the fetch starts with its request");
    };
    assert_eq!(req.method, Method::Post);
    assert_eq!(req.path, routes::TOKEN_ISSUE);
    assert_eq!(req.content_type, TOKEN_REQUEST_TYPE);
    assert_eq!(req.bearer.as_ref().map(Token::expose), Some("session"));
    let body = req.body.unwrap();
    assert_eq!(body.len(), count * REQUEST_LEN);
    (flow, body)
}

fn signed(issuer: &IssuerSecret, body: &[u8]) -> Vec<u8> {
    body.chunks(REQUEST_LEN)
        .flat_map(|r| issuer.sign(r).unwrap())
        .collect()
}

fn finish(flow: &mut FetchTokens, status: u16, body: Vec<u8>) -> Result<usize, ClientError> {
    match flow.next(Some(Answer::Http(Response::new(status, body))))? {
        Step::Done(tokens) => Ok(tokens.len()),
        _ => panic!("the fetch ends after one answer"),
    }
}

#[test]
fn a_batch_fills_the_wallet_and_is_spent_once_each() {
    let issuer = IssuerSecret::generate().unwrap();
    let policy = policy_of(&issuer);
    let (mut flow, body) = started(&policy, 3);
    let Step::Done(tokens) = flow
        .next(Some(Answer::Http(Response::new(
            200,
            signed(&issuer, &body),
        ))))
        .unwrap()
    else {
        panic!("done");
    };
    let mut wallet = Wallet::default();
    wallet.add(&policy, tokens);
    assert_eq!(wallet.count(&policy), 3);
    // Through its JSON form, as the CLI keeps it in the profile.
    let mut wallet: Wallet = serde_json::from_slice(&serde_json::to_vec(&wallet).unwrap()).unwrap();
    let spent: Vec<String> = (0..3)
        .map(|_| wallet.take(&policy).unwrap().authorization().to_string())
        .collect();
    assert!(wallet.take(&policy).is_none());
    assert!(spent[0] != spent[1] && spent[1] != spent[2] && spent[0] != spent[2]);
    assert!(spent.iter().all(|a| a.starts_with("PrivateToken token=\"")));
}

#[test]
fn answers_that_do_not_finalize_are_refused() {
    let issuer = IssuerSecret::generate().unwrap();
    let policy = policy_of(&issuer);

    // A blind signature that is not the issuer's (here: the issuer's with one bit changed, so
    // the test does not depend on another key's modulus being larger than the blinded value):
    // every token would be refused, or recognised.
    let (mut flow, body) = started(&policy, 2);
    let mut forged = signed(&issuer, &body);
    for response in forged.chunks_mut(RESPONSE_LEN) {
        response[RESPONSE_LEN / 2] ^= 1;
    }
    let err = finish(&mut flow, 200, forged).unwrap_err();
    assert!(err.to_string().contains("does not finalize"), "{err}");

    // Fewer responses than requests.
    let (mut flow, body) = started(&policy, 2);
    let mut short = signed(&issuer, &body);
    short.truncate(RESPONSE_LEN);
    let err = finish(&mut flow, 200, short).unwrap_err();
    assert!(err.to_string().contains("different number"), "{err}");

    // The quota refusal comes through as the server's sentence.
    let (mut flow, _) = started(&policy, 2);
    let refusal = ApiError {
        error: "token_quota".into(),
        message: "this account has used its tokens for this period".into(),
        current_version: None,
    };
    let err = finish(&mut flow, 429, serde_json::to_vec(&refusal).unwrap()).unwrap_err();
    assert_eq!(err.server_code(), Some("token_quota"));
    assert!(err.to_string().contains("used its tokens"), "{err}");
}

#[test]
fn a_server_without_tokens_and_a_bad_policy() {
    assert!(RelayPolicy::read(&Response::new(404, Vec::new()))
        .unwrap()
        .is_none());
    let bad = TokenPolicy {
        challenge: vec![0, 1, 2],
        token_key: vec![3; 10],
        required: true,
        per_period: 1,
        period_secs: 1,
    };
    let answer = Response::new(200, serde_json::to_vec(&bad).unwrap());
    assert!(matches!(
        RelayPolicy::read(&answer),
        Err(ClientError::Tokens(_))
    ));
}
