//! The page's relay tokens, natively, through the same JSON steps drive.ts carries out: a
//! batch fetched with the browser's cookie session by the client core's flow (its binary body
//! travelling as `body_b64u`), kept in the wallet the page stores, and each token spent as the
//! `privatetoken.…` subprotocol of a relay upgrade, which the real relay accepts once.

use serde_json::json;
use sotto_client::{TOKENS_LOW, TOKEN_BATCH};
use sotto_web::flows::{ClientCore, FlowCore};
use sotto_web::testing::{Browser, Server};
use sotto_web::tokens::TokensCore;
use sotto_web::WebError;

const RELAY: &str = "sotto.relay";

fn signed_up(server: &mut Server, browser: &mut Browser) -> ClientCore {
    let mut done = browser
        .run(server, FlowCore::sign_up("Ada", "Test browser").unwrap())
        .unwrap();
    done.take_client().unwrap()
}

/// The policy as the page asks for it: without its cookie.
fn policy(server: &mut Server) -> (u16, Vec<u8>) {
    server.handle(&mut None, &json!({"method": "GET", "path": "/v1/tokens"}))
}

#[test]
fn a_page_fetches_a_batch_with_its_cookie_and_spends_each_token_once() {
    let (mut server, mut browser) = (Server::with_tokens(true), Browser::new());
    let client = signed_up(&mut server, &mut browser);
    let (status, body) = policy(&mut server);
    let mut tokens = TokensCore::new(status, &body, "").unwrap();
    assert!(tokens.required());
    assert_eq!(tokens.count(), 0);
    assert!(tokens.wants_refill());
    assert_eq!(server.upgrade(&[RELAY]), (401, None), "a token is required");

    let mut fetch = tokens.fetch(&client).unwrap();
    let step: serde_json::Value = serde_json::from_str(&fetch.start().unwrap()).unwrap();
    assert_eq!(step["path"], "/v1/tokens/issue");
    assert_eq!(step["content_type"], "application/private-token-request");
    assert!(step["body"].is_null() && step["body_b64u"].is_string());
    let mut done = browser
        .run(&mut server, tokens.fetch(&client).unwrap())
        .unwrap();
    assert_eq!(tokens.add(&mut done).unwrap(), TOKEN_BATCH);
    assert!(!tokens.wants_refill());
    assert!(done.take_tokens().is_err(), "taken once");

    // The page stores the wallet and reads it back on its next load.
    let wallet = tokens.wallet_json().unwrap();
    let mut reloaded = TokensCore::new(status, &body, &wallet).unwrap();
    assert_eq!(reloaded.count(), TOKEN_BATCH);
    let spent = reloaded.take_subprotocol().unwrap();
    assert!(spent.starts_with("privatetoken."));
    assert_eq!(reloaded.count(), TOKEN_BATCH - 1);
    assert_eq!(
        server.upgrade(&[RELAY, &spent]),
        (101, Some(RELAY.to_owned())),
        "accepted, and the token is not echoed"
    );
    assert_eq!(server.upgrade(&[RELAY, &spent]).0, 401, "spent");

    while reloaded.count() >= TOKENS_LOW {
        reloaded.take_subprotocol().unwrap();
    }
    assert!(reloaded.wants_refill());
}

#[test]
fn a_wallet_the_relay_would_refuse_is_dropped_not_spent() {
    let (mut server, mut browser) = (Server::with_tokens(false), Browser::new());
    let client = signed_up(&mut server, &mut browser);
    let (status, body) = policy(&mut server);
    let mut tokens = TokensCore::new(status, &body, "").unwrap();
    assert!(!tokens.required() && !tokens.wants_refill());
    let mut done = browser
        .run(&mut server, tokens.fetch(&client).unwrap())
        .unwrap();
    tokens.add(&mut done).unwrap();
    let wallet = tokens.wallet_json().unwrap();

    // Another relay (its own issuer key): none of these tokens is for it.
    let mut other = Server::with_tokens(true);
    let (other_status, other_body) = policy(&mut other);
    let theirs = TokensCore::new(other_status, &other_body, &wallet).unwrap();
    assert_eq!(theirs.count(), 0);

    // Damaged storage costs the tokens, not the chat.
    let damaged = TokensCore::new(status, &body, "{\"tokens\": [tru").unwrap();
    assert_eq!(damaged.count(), 0);
}

#[test]
fn a_relay_that_takes_no_tokens_gets_none() {
    let (mut server, mut browser) = (Server::start(), Browser::new());
    let client = signed_up(&mut server, &mut browser);
    let (status, body) = policy(&mut server);
    assert_eq!(status, 404);
    let mut tokens = TokensCore::new(status, &body, "").unwrap();
    assert!(!tokens.required() && !tokens.wants_refill());
    assert!(tokens.take_subprotocol().is_none());
    assert!(matches!(tokens.fetch(&client), Err(WebError::State(_))));
    assert_eq!(server.upgrade(&[RELAY]), (101, Some(RELAY.to_owned())));
}

#[test]
fn a_policy_that_is_not_one_is_refused() {
    assert!(matches!(
        TokensCore::new(200, b"{\"challenge\": 1}", ""),
        Err(WebError::Client(_))
    ));
}
