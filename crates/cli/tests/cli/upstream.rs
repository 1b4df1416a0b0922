//! The enclave in front of a real `llama-server`, built from llama.cpp's source by
//! `scripts/llama-cpp` (cached outside the clone): the full encrypted path answers, several
//! conversations at once, the manifest names that engine and the client's release check admits
//! it, a conversation too long for the context is refused as such, and the prompt's canary
//! never crosses the relay in the clear.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{
    boot_with, connect, dev_log, params, policy, releases, start_enclave, start_server_with_log,
    tiny_model, user, Tap, TapMode,
};
use sotto::client::ClientError;
use sotto_channel::messages::Stop;

/// The `llama-server` binary, built first if this machine has none cached yet.
fn llama_server() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/llama-cpp");
    let out = Command::new("bash")
        .arg(script)
        .arg("llama-server")
        .output()
        .expect("run scripts/llama-cpp");
    let path = crate::common::succeeded("scripts/llama-cpp llama-server", &out);
    PathBuf::from(String::from_utf8_lossy(path).trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enclave_answers_through_a_real_llama_server() {
    let binary = tokio::task::spawn_blocking(llama_server).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let bin = binary.clone();
    let enclave = tokio::task::spawn_blocking(move || {
        let model = tiny_model(&data_dir);
        boot_with(&data_dir, &model, Some(bin))
    })
    .await
    .unwrap();
    let engine = enclave.manifest().engine.clone();
    assert_eq!(engine.name, "llama.cpp llama-server");
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&binary).unwrap()))
    };
    assert!(
        engine.version.ends_with(&format!(" sha256:{digest}")),
        "the manifest pins the binary: {}",
        engine.version
    );

    let log = dev_log(dir.path(), &enclave).await;
    let enclave_addr = start_enclave(enclave).await;
    let tap = Tap::start(enclave_addr, TapMode::Pass).await;
    let url = start_server_with_log(tap.addr, Some(log.public_dir.clone())).await;
    let policy = policy(dir.path());
    let releases = releases(&url, &log.trust, &dir.path().join("client")).await;

    let mut conn = connect(&url, &policy, &releases).await.expect("verified");
    assert_eq!(conn.verified().manifest.engine, engine);

    let canary = "UPSTREAM-CANARY-5e0c";
    let mut text = String::new();
    let stats = conn
        .chat(
            &[user(&format!("the heron {canary}"))],
            params(8),
            &mut |p| text.push_str(p),
        )
        .await
        .expect("an answer through llama-server");
    assert!(stats.prompt_tokens > 3, "usage comes back: {stats:?}");
    assert!((1..=8).contains(&stats.generated_tokens), "{stats:?}");
    match stats.stop {
        Stop::MaxTokens => {
            assert_eq!(stats.generated_tokens, 8, "{stats:?}");
            assert!(!text.is_empty());
        }
        Stop::End => {}
        Stop::ContextFull => panic!("a short prompt cannot fill the context: {stats:?}"),
    }
    let stats = conn
        .chat(&[user("the inn")], params(2), &mut |_| {})
        .await
        .expect("a second answer on the same session");
    assert!(stats.generated_tokens <= 2, "{stats:?}");

    // Several conversations at once, on llama-server's slots.
    let answers = futures_util::future::join_all((0..3).map(|i| {
        let (url, policy, releases) = (&url, &policy, &releases);
        async move {
            let mut conn = connect(url, policy, releases).await.expect("verified");
            conn.chat(&[user(&format!("heron {i}"))], params(4), &mut |_| {})
                .await
        }
    }))
    .await;
    for answer in answers {
        let stats = answer.expect("every conversation is answered");
        assert!(stats.generated_tokens <= 4, "{stats:?}");
    }

    // The tiny model's context is 512 tokens: a longer conversation is refused as too long.
    let long = "the heron in the inn ".repeat(200);
    let err = conn
        .chat(&[user(&long)], params(4), &mut |_| {})
        .await
        .expect_err("must not fit");
    assert!(matches!(err, ClientError::ContextExceeded(_)), "{err}");

    let seen = tap.bytes();
    assert!(!seen.is_empty());
    assert!(
        !seen.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "the canary crossed the relay in the clear"
    );
}
