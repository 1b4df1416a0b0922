//! The static web client: served from memory with the strict headers, and its digest published.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sotto_server::{router, Bundle, ServerConfig, CSP};
use tower::ServiceExt;

fn app(dir: &std::path::Path) -> (axum::Router, String) {
    let bundle = Bundle::load(dir).unwrap();
    let digest = bundle.digest().to_owned();
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 9)));
    config.web = Some(Arc::new(bundle));
    (router(config).unwrap(), digest)
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

#[tokio::test]
async fn serves_the_bundle_with_strict_headers_and_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        b"<!doctype html><title>Sotto</title>",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    std::fs::write(dir.path().join("pkg/core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let (app, digest) = app(dir.path());

    let (status, headers, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"<!doctype html><title>Sotto</title>");
    assert_eq!(headers["content-security-policy"], CSP);
    assert!(!CSP.contains("unsafe-inline") && !CSP.contains("'unsafe-eval'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");

    let (status, headers, _) = get(&app, "/pkg/core.wasm").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/wasm");

    let (status, _, body) = get(&app, "/.well-known/sotto-bundle.sha256").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8(body).unwrap().trim(), digest);

    for missing in [
        "/nope.js",
        "/../Cargo.toml",
        "/pkg/../../etc/passwd",
        "/%2e%2e/x",
    ] {
        let (status, headers, _) = get(&app, missing).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(headers["content-security-policy"], CSP);
    }
    // Files changed on disk after startup are not served: the bundle is what was hashed.
    std::fs::write(dir.path().join("index.html"), b"<script>evil()</script>").unwrap();
    let (_, _, body) = get(&app, "/").await;
    assert_eq!(body, b"<!doctype html><title>Sotto</title>");
}
