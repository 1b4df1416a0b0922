//! `sotto verify web`: a served web client passes when it is exactly a logged release's files,
//! and fails naming the file when one byte of one served file differs, or when the page loads
//! a file the release does not list. Real server, real development log, the real binary.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

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

fn verify(url: &str, trust: &Path, config: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["verify", "web", url, "--trust"])
        .arg(trust)
        .arg("--config-dir")
        .arg(config)
        .output()
        .unwrap()
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
    let model = common::tiny_model(dir.path());
    let d = dir.path().to_path_buf();
    let enclave = tokio::task::spawn_blocking(move || common::boot(&d, &model))
        .await
        .unwrap();
    let measurement = sotto::stack::simulated_measurement(&enclave).unwrap();
    let release = sotto::devlog::release_of(&sotto::devlog::EnclaveRelease {
        manifest: enclave.manifest(),
        measurement: &measurement,
        web: Some(bundle.release()),
    });
    let log = sotto::devlog::DevLog::start(dir.path(), release)
        .await
        .unwrap();
    let client = dir.path().join("client");

    let url = serve(&web, &log.public_dir).await;
    let ok = verify(&url, &log.trust_path, &client);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
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
    let url = serve(&tampered, &log.public_dir).await;
    let bad = verify(&url, &log.trust_path, &client);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
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
    let url = serve(&extra, &log.public_dir).await;
    let bad = verify(&url, &log.trust_path, &client);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("differs") || err.contains("not a file of release"),
        "{err}"
    );
}
