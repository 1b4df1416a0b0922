//! `sotto verify web`: a served web client passes when it is exactly a logged release's files,
//! and fails naming the file when one byte of one served file differs, or when the page loads
//! a file the release does not list. Real server, real development log, the real binary.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use sotto::devlog::DevLog;
use sotto_server::{Bundle, ServerConfig};

const BIN: &str = env!("CARGO_BIN_EXE_sotto");

fn write_bundle(dir: &Path, app_js: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        r#"<!doctype html><link rel="stylesheet" href="style.css"><script type="module" src="app.js"></script>"#,
    )
    .unwrap();
    std::fs::write(dir.join("style.css"), "body{margin:0}").unwrap();
    std::fs::write(dir.join("app.js"), app_js).unwrap();
    std::fs::write(dir.join("sotto_web_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
}

async fn serve(web: &Path, log: &Path) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig::new("127.0.0.1:9".parse().unwrap());
    config.web = Some(Arc::new(Bundle::load(web).unwrap()));
    config.log_dir = Some(log.to_path_buf());
    tokio::spawn(async move {
        let _ = axum::serve(listener, sotto_server::router(config).unwrap()).await;
    });
    format!("http://{addr}")
}

/// `sotto verify web` against a server serving the bundle in `web` and the log `log`.
async fn verify(web: &Path, log: &DevLog, config: &Path) -> Output {
    let url = serve(web, &log.public_dir).await;
    Command::new(BIN)
        .args(["verify", "web", &url, "--trust"])
        .arg(&log.trust_path)
        .arg("--config-dir")
        .arg(config)
        .output()
        .unwrap()
}

/// What `sotto verify web` said when it failed the served client (exit 1).
fn refusal(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_client_must_be_a_logged_release() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    write_bundle(
        &web,
        r#"const w = new URL("sotto_web_bg.wasm", import.meta.url);"#,
    );
    let bundle = Bundle::load(&web).unwrap();
    let enclave = common::boot_tiny(dir.path()).await;
    let release = common::release_of(&enclave, Some(bundle.release()));
    let log = DevLog::start(dir.path(), release).await.unwrap();
    let client = dir.path().join("client");

    let ok = verify(&web, &log, &client).await;
    let out = String::from_utf8_lossy(common::succeeded("sotto verify web", &ok));
    assert!(
        out.contains("the 4 files served are exactly release 0.1.0's"),
        "{out}"
    );

    // One byte of app.js changed: named.
    let tampered = dir.path().join("tampered");
    write_bundle(
        &tampered,
        r#"const w = new URL("sotto_web_bg.wasm", import.meta.url)!"#,
    );
    let err = refusal(&verify(&tampered, &log, &client).await);
    assert!(
        err.contains("app.js differs from every logged release"),
        "{err}"
    );

    // The page loads a file no release lists.
    let extra = dir.path().join("extra");
    write_bundle(
        &extra,
        r#"const w = new URL("sotto_web_bg.wasm", import.meta.url); import("./more.js");"#,
    );
    std::fs::write(extra.join("more.js"), "steal()").unwrap();
    let err = refusal(&verify(&extra, &log, &client).await);
    assert!(
        err.contains("differs") || err.contains("not a file of release"),
        "{err}"
    );
}
