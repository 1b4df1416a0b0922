//! The static web client, served from memory exactly as it was hashed at startup.
//!
//! The bundle's digest (SHA-256 over a sorted manifest of every file's path and SHA-256) is
//! served at `/.well-known/sotto-bundle.sha256`, so it can be compared with a published value.
//! Every response carries a strict Content-Security-Policy: scripts and WebAssembly only from
//! this origin, no inline script, no eval beyond WebAssembly compilation, no third-party
//! request of any kind, no framing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
    manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Largest bundle the server loads (the app is a few MiB at most).
const MAX_BUNDLE: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot read the web bundle at {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the web bundle at {0} has no index.html")]
    NoIndex(PathBuf),
    #[error("the web bundle is larger than {MAX_BUNDLE} bytes")]
    TooLarge,
}

pub struct Bundle {
    files: BTreeMap<String, Vec<u8>>,
    digest: String,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle, WebError> {
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        collect(dir, dir, &mut files, &mut total)?;
        if !files.contains_key("index.html") {
            return Err(WebError::NoIndex(dir.to_owned()));
        }
        let digest = digest(&files);
        Ok(Bundle { files, digest })
    }

    /// Hex SHA-256 of the manifest `"<sha256 hex>  <path>\n"` lines, sorted by path (the
    /// format of `sha256sum`, so `find . -type f | sort | xargs sha256sum | sha256sum`
    /// reproduces it from the `./`-stripped listing).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Each file's path and hex SHA-256, as a release manifest lists them.
    pub fn file_digests(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .map(|(p, b)| (p.clone(), hex(&Sha256::digest(b))))
            .collect()
    }
}

fn digest(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut manifest = String::new();
    for (path, bytes) in files {
        manifest.push_str(&hex(&Sha256::digest(bytes)));
        manifest.push_str("  ");
        manifest.push_str(path);
        manifest.push('\n');
    }
    hex(&Sha256::digest(manifest.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn collect(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut u64,
) -> Result<(), WebError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| WebError::Read { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(read_err(&path))?;
        if kind.is_dir() {
            collect(root, &path, files, total)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).map_err(read_err(&path))?;
            *total += bytes.len() as u64;
            if *total > MAX_BUNDLE {
                return Err(WebError::TooLarge);
            }
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            files.insert(rel, bytes);
        }
    }
    Ok(())
}

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
        format!("{}\n", b.digest).into_bytes(),
    )
}

fn serve(b: &Bundle, path: &str) -> Response {
    match b.files.get(path) {
        Some(bytes) => hardened(StatusCode::OK, content_type(path), bytes.clone()),
        None => hardened(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"not found\n".to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256sum_of_the_sorted_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), b"<!doctype html>").unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/app.wasm"), b"\0asm").unwrap();
        let b = Bundle::load(dir.path()).unwrap();
        let manifest = format!(
            "{}  index.html\n{}  pkg/app.wasm\n",
            hex(&Sha256::digest(b"<!doctype html>")),
            hex(&Sha256::digest(b"\0asm"))
        );
        assert_eq!(b.digest(), hex(&Sha256::digest(manifest.as_bytes())));
        std::fs::write(dir.path().join("pkg/app.wasm"), b"\0asn").unwrap();
        assert_ne!(Bundle::load(dir.path()).unwrap().digest(), b.digest());
    }

    #[test]
    fn a_bundle_without_index_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Bundle::load(dir.path()),
            Err(WebError::NoIndex(_))
        ));
    }
}
