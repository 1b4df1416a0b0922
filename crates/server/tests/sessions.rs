//! How sessions reach browsers and other clients, and who the server counts a request as:
//! on an HTTPS origin the cookie is `__Host-` prefixed and `Secure` and every answer carries
//! HSTS; a cookie client never gets its token in a body, a bearer client never gets a cookie;
//! behind a trusted proxy the client is the address the proxy reports, grouped by /64.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::Response;
use sha2::{Digest, Sha256};
use sotto_api::{routes, SessionGranted, SECURE_SESSION_COOKIE, SESSION_COOKIE};
use sotto_server::{router, AccountsConfig, RateLimit, ServerConfig};
use sotto_store::{AccountId, CredentialRow, Store};
use tower::ServiceExt;

struct App {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

/// A router for `origin` over a fresh SQLite store holding one account whose recovery code's
/// lookup is `[1; 32]` and sign-in secret `[2; 32]`.
async fn app(rp_id: &str, origin: &str, proxy_header: Option<&'static str>) -> App {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("sqlite:{}", dir.path().join("a.sqlite").display());
    let store: Arc<dyn Store> = sotto_store::open(&spec).await.unwrap();
    let first = CredentialRow {
        credential_id: vec![7; 16],
        passkey: b"{}".to_vec(),
        name: "laptop".into(),
        created_at: 1,
        last_used_at: None,
    };
    let verifier: [u8; 32] = Sha256::digest([2u8; 32]).into();
    store
        .create_account(AccountId([9; 16]), 1, first, [1; 32], verifier)
        .await
        .unwrap();
    let mut accounts = AccountsConfig::new(store, rp_id, origin);
    accounts.auth_rate = RateLimit {
        per_minute: 100_000,
        burst: 100_000,
    };
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 9)));
    config.accounts = Some(accounts);
    config.trusted_proxy_header = proxy_header.map(HeaderName::from_static);
    App {
        router: router(config).unwrap(),
        _dir: dir,
    }
}

async fn call(app: &App, req: Request<Body>) -> (Response, Vec<u8>) {
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (Response::from_parts(parts, Body::empty()), bytes.to_vec())
}

fn recover(bearer: bool) -> Request<Body> {
    let body = serde_json::json!({
        "lookup": sotto_api::b64::encode(&[1; 32]),
        "secret": sotto_api::b64::encode(&[2; 32]),
        "bearer": bearer,
    });
    Request::post(routes::RECOVER)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn account_with_cookie(name: &str, value: &str) -> Request<Body> {
    Request::get(routes::ACCOUNT)
        .header("cookie", format!("{name}={value}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn https_sessions_are_host_prefixed_secure_cookies_never_in_the_body() {
    let app = app("example.com", "https://example.com", None).await;
    let (resp, body) = call(&app, recover(false)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let granted: SessionGranted = serde_json::from_slice(&body).unwrap();
    assert!(granted.session_token.is_none(), "the page never sees it");
    assert!(
        granted.reauth.is_some(),
        "a recovery sign-in may enrol a passkey"
    );
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    let value = cookie
        .strip_prefix(&format!("{SECURE_SESSION_COOKIE}="))
        .and_then(|rest| rest.split(';').next())
        .expect("a __Host- cookie")
        .to_owned();
    for attribute in ["Path=/", "HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");

    let (resp, _) = call(&app, account_with_cookie(SECURE_SESSION_COOKIE, &value)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // The unprefixed name (which a sibling subdomain could set) is not read on HTTPS.
    let (resp, _) = call(&app, account_with_cookie(SESSION_COOKIE, &value)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000",
        "errors carry it too"
    );
}

#[tokio::test]
async fn bearer_clients_get_the_token_and_no_cookie_and_http_has_no_hsts() {
    let app = app("localhost", "http://localhost:8080", None).await;
    let (resp, body) = call(&app, recover(true)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("set-cookie").is_none());
    assert!(resp.headers().get("strict-transport-security").is_none());
    let granted: SessionGranted = serde_json::from_slice(&body).unwrap();
    let token = granted.session_token.expect("asked for");
    let req = Request::get(routes::ACCOUNT)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, req).await.0.status(), StatusCode::OK);

    // A cookie client on plain HTTP (local development) gets the plain name, not Secure.
    let (resp, _) = call(&app, recover(false)).await;
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("{SESSION_COOKIE}=")),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
}

fn sign_in_start(forwarded_for: &str) -> Request<Body> {
    Request::post(routes::SIGN_IN_START)
        .header("x-forwarded-for", forwarded_for)
        .body(Body::empty())
        .unwrap()
}

/// Unauthenticated ceremonies are capped per client network: an IPv6 /64 is one network
/// however many addresses it rotates through, and the next /64 is another. Only the header the
/// operator named is believed, and only its last entry (the one the proxy wrote).
#[tokio::test]
async fn ceremonies_are_capped_per_network_as_the_trusted_proxy_reports_it() {
    let app = app(
        "example.com",
        "https://example.com",
        Some("x-forwarded-for"),
    )
    .await;
    for i in 0..64u32 {
        let spoof = format!("203.0.113.{}, 2001:db8:1:2::{:x}", i % 250, i + 1);
        let (resp, body) = call(&app, sign_in_start(&spoof)).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    let (resp, _) = call(&app, sign_in_start("2001:db8:1:2:ffff:ffff:ffff:ffff")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let (resp, _) = call(&app, sign_in_start("2001:db8:1:3::1")).await;
    assert_eq!(resp.status(), StatusCode::OK, "another /64");
    let (resp, _) = call(&app, sign_in_start("192.0.2.1")).await;
    assert_eq!(resp.status(), StatusCode::OK);
}
