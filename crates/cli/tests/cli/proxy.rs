//! `sotto proxy`, the OpenAI-compatible API: its answers' shapes and refusals on an in-process
//! stack, and the official `openai` Python SDK against the real binaries (enclave, server,
//! proxy as processes), with a canary that must not reach the server or the enclave.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};
use sotto::cmd::enclave_args::Checks;
use sotto::proxy::{router, ProxyConfig};
use sotto_channel::handshake::Expectations;
use tokio::net::TcpListener;

use crate::canary::{all_files, contains, spawn, Binaries};
use crate::common::{boot_tiny, dev_log, policy, start_enclave, start_server_with_log};
use crate::common::{Tap, TapMode};

/// Serves a proxy for `checks`; returns its base URL.
async fn start_proxy(server: &str, checks: Checks, profile_dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ProxyConfig {
        route: sotto::cmd::enclave_args::Route::to(server),
        checks,
        profile: sotto::local::Profile::new(Some(profile_dir)),
        allowed_hosts: vec![addr.to_string()],
        api_key: None,
        max_tokens: 16,
        wallet: Default::default(),
    };
    tokio::spawn(async move { axum::serve(listener, router(config)).await });
    format!("http://{addr}/v1")
}

async fn get(url: &str) -> Value {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    r.json().await.unwrap()
}

async fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_answers_only_from_a_verified_enclave_in_openais_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = boot_tiny(dir.path()).await;
    let model = enclave.manifest().model.name.clone();
    let log = dev_log(dir.path(), &enclave).await;
    let tap = Tap::start(start_enclave(enclave).await, TapMode::Pass).await;
    let server = start_server_with_log(tap.addr, Some(log.public_dir.clone())).await;
    let checks = |policy| Checks {
        policy,
        expect: Expectations::default(),
        trust: log.trust.clone(),
    };
    let proxy = start_proxy(&server, checks(policy(dir.path())), dir.path().join("c")).await;
    let http = reqwest::Client::new();

    let models = get(&format!("{proxy}/models")).await;
    assert_eq!(models["data"][0]["id"], model.as_str());
    let verified = get(&format!("{proxy}/verification")).await;
    assert_eq!(verified["platform"], "simulated");
    assert_eq!(verified["model"]["name"], model.as_str());
    assert_eq!(verified["log"]["origin"], log.trust.origin());

    let canary = "PROXY-CANARY-0b5e";
    let ask = |extra: Value| {
        let mut body = json!({
            "model": model,
            "messages": [{"role": "user", "content": format!("{canary} hello")}],
            "max_tokens": 5,
            "temperature": 0,
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, answer) = post(&proxy, &ask(json!({}))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["completion_tokens"], 5);

    // Streamed: server-sent events ending in [DONE], the usage in a last chunk of its own.
    let events = http
        .post(format!("{proxy}/chat/completions"))
        .json(&ask(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data: Vec<&str> = events
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{events}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        streamed,
        answer["choices"][0]["message"]["content"].as_str().unwrap()
    );

    for (body, status, code) in [
        (
            ask(json!({"model": "gpt-4o"})),
            404,
            json!("model_not_found"),
        ),
        (ask(json!({"n": 3})), 400, json!(null)),
        (json!({"model": model, "messages": []}), 400, json!(null)),
    ] {
        let (got, error) = post(&proxy, &body).await;
        assert_eq!((got, &error["error"]["code"]), (status, &code), "{error}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let bad_json = http
        .post(format!("{proxy}/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status().as_u16(), 400);
    let rebound = http
        .get(format!("{proxy}/models"))
        .header("host", "evil.example:8000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        rebound.status().as_u16(),
        403,
        "a DNS-rebinding page is refused"
    );

    // A proxy that may not accept the simulated platform refuses to forward, says why, and
    // the enclave received the handshake hellos only.
    let strict = start_proxy(
        &server,
        checks(sotto_verify::Policy::default()),
        dir.path().join("s"),
    )
    .await;
    let before = tap.up_frames.load(std::sync::atomic::Ordering::SeqCst);
    let (status, error) = post(&strict, &ask(json!({}))).await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (502, &json!("unverified_enclave"))
    );
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("simulated"),
        "{error}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        tap.up_frames.load(std::sync::atomic::Ordering::SeqCst),
        before + 1
    );
    assert!(
        !contains(&tap.bytes(), canary),
        "the relay saw ciphertext only"
    );
}

/// The tests' Python with the `openai` SDK (scripts/openai-deps installs it).
fn python() -> PathBuf {
    std::env::var_os("SOTTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/sotto-py/bin/python")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_talks_to_the_proxy_and_no_canary_reaches_the_server() {
    let python = python();
    let sdk = Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        sdk,
        "{} has no `openai` module: run scripts/openai-deps (or set SOTTO_PYTHON)",
        python.display()
    );
    let mut b = Binaries::start();
    let (mut server, server_addr) = b.server(&b.enclave_addr, &[]);
    let server_url = format!("http://{server_addr}");
    let mut args = vec!["proxy", "--server", &server_url, "--listen", "127.0.0.1:0"];
    args.extend(["--api-key", "KEY-1"]);
    let pins = b.pins();
    args.extend(pins.iter().map(String::as_str));
    let (mut proxy, proxy_addr) = spawn(&args, &b.client_dir, Arc::default());
    let canary = "SDK-CANARY-41c9d2";
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk.py");
    let run = tokio::task::spawn_blocking({
        let url = format!("http://{proxy_addr}/v1");
        move || {
            Command::new(python)
                .args([script, &url, "KEY-1", canary])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    // And with curl, as the API's documentation shows it: a streamed answer, then [DONE].
    let curl = Command::new("curl")
        .args([
            "-sS", "-N", "--max-time", "120", "-H", "Authorization: Bearer KEY-1",
            "-H", "Content-Type: application/json", "-d",
            r#"{"model":"tiny.gguf","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}"#,
            &format!("http://{proxy_addr}/v1/chat/completions"),
        ])
        .output()
        .expect("curl runs (scripts/test-deps installs it)");
    let streamed = String::from_utf8_lossy(&curl.stdout).to_string();
    for child in [&mut proxy, &mut server, &mut b.enclave] {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        run.status.success() && run.stdout == b"ok\n",
        "the SDK's checks failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        streamed.contains("\"finish_reason\":\"length\"") && streamed.ends_with("data: [DONE]\n\n"),
        "{streamed}"
    );
    let mut captured = Vec::new();
    captured.extend_from_slice(&b.enclave_out.lock().unwrap());
    captured.extend_from_slice(&b.server_out.lock().unwrap());
    all_files(&b.enclave_dir, &mut captured);
    all_files(&b.server_dir, &mut captured);
    assert!(
        contains(&captured, "generation finished"),
        "the enclave logged"
    );
    assert!(
        !contains(&captured, canary),
        "the canary reached the server or the enclave"
    );
}
