//! The static web client, served from memory exactly as it was hashed at startup.
//!
//! The bundle's digest (SHA-256 over a sorted manifest of every file's path and SHA-256) is
//! served at `/.well-known/sotto-bundle.sha256`, so it can be compared with a published value.
//! Every response carries a strict Content-Security-Policy: scripts and WebAssembly only from
//! this origin, no inline script, no eval beyond WebAssembly compilation, no third-party
//! request but the WebSocket to an independent hop the user chose, no framing.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sotto_release::bundle::Bundle;

/// `connect-src` names WebSocket schemes besides `'self'` for the independent hop a user may
/// choose (any host: a hop the operator had to list would not be independent). Fetches stay on
/// this origin. A page served over HTTPS cannot open `ws:` anyway (mixed content); a
/// development stack over HTTP can.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self' wss: ws:; \
    manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hardened(status: StatusCode, ctype: &str, body: Vec<u8>) -> Response {
    let mut headers = HeaderMap::new();
    let static_headers = [
        (CONTENT_SECURITY_POLICY, CSP),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (X_FRAME_OPTIONS, "DENY"),
        (CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in static_headers {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(v) = HeaderValue::from_str(ctype) {
        headers.insert(CONTENT_TYPE, v);
    }
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    (status, headers, body).into_response()
}

pub(crate) async fn index(State(b): State<Arc<Bundle>>) -> Response {
    serve(&b, "index.html")
}

pub(crate) async fn file(State(b): State<Arc<Bundle>>, UrlPath(path): UrlPath<String>) -> Response {
    serve(&b, &path)
}

pub(crate) async fn bundle_digest(State(b): State<Arc<Bundle>>) -> Response {
    hardened(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        format!("{}\n", b.digest()).into_bytes(),
    )
}

fn serve(b: &Bundle, path: &str) -> Response {
    match b.file(path) {
        Some(bytes) => hardened(StatusCode::OK, content_type(path), bytes.to_vec()),
        None => hardened(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"not found\n".to_vec(),
        ),
    }
}
