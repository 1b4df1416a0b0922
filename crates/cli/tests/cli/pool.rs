//! Many enclaves behind one relay, with the real binaries: a server in front of two `sotto
//! enclave` processes (one simulated authority, one release). The pool lists both; `sotto
//! chat` reaches each one it insists on and refuses an id the pool does not have; an enclave
//! killed (SIGKILL) in the middle of an answer ends that chat with a clear error, and the
//! chats that start after it all reach the other one, whichever the client preferred.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sotto_api::Enclaves;

use crate::canary::{spawn, Binaries};

const BIN: &str = env!("CARGO_BIN_EXE_sotto");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn enclaves(server: &str) -> Enclaves {
    let url = format!("http://{server}/v1/enclaves");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

fn chat(b: &Binaries, server: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["chat", "--server", &format!("http://{server}")])
        .args(b.pins())
        .args(extra)
        .env("HOME", &b.client_dir)
        .env_remove("SOTTO_CONFIG_DIR")
        .output()
        .unwrap()
}

/// The log's text without its terminal colours (`ESC [ … m`).
fn plain(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// The enclave id the server logged for each relay it closed.
fn relayed_to(log: &Mutex<Vec<u8>>) -> Vec<String> {
    plain(&log.lock().unwrap())
        .lines()
        .filter(|l| l.contains("relay closed"))
        .filter_map(|l| {
            let at = l.find("enclave=")? + "enclave=".len();
            Some(
                l[at..]
                    .split_whitespace()
                    .next()?
                    .trim_matches('"')
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_pool_of_two_enclaves_outlives_one_killed_mid_answer() {
    let mut b = Binaries::start();
    // A second enclave of the same build and settings, under the same simulated authority.
    let other_dir = b.dir.path().join("enclave-b");
    copy_dir(
        &b.enclave_dir.join("sim-attestation"),
        &other_dir.join("sim-attestation"),
    );
    let other_out = Arc::new(Mutex::new(Vec::new()));
    let model = b.dir.path().join("tiny.gguf");
    let (mut other, other_addr) = spawn(
        &[
            "enclave",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            other_dir.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--threads",
            "1",
            "--context",
            "1024",
        ],
        &other_dir,
        other_out.clone(),
    );
    let enclave_addr = b.enclave_addr.clone();
    let (mut server, server_addr) = b.server(&enclave_addr, &["--enclave", &other_addr]);

    let listed = enclaves(&server_addr);
    assert_eq!(listed.enclaves.len(), 2, "{listed:?}");
    assert!(listed.enclaves.iter().all(|e| e.up && !e.draining));
    let (first, second) = (listed.enclaves[0].id.clone(), listed.enclaves[1].id.clone());

    for id in [&first, &second] {
        let out = chat(
            &b,
            &server_addr,
            &["--enclave", id, "--max-tokens", "4", "Hi."],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let unknown = chat(&b, &server_addr, &["--enclave", "0123456789ab", "Hi."]);
    assert!(!unknown.status.success());
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(said.contains("no enclave with that id"), "{said}");

    // A long answer from the second enclave, killed once the first words have arrived.
    let mut long = Command::new(BIN)
        .args(["chat", "--server", &format!("http://{server_addr}")])
        .args(b.pins())
        .args([
            "--enclave",
            &second,
            "--max-tokens",
            "3500",
            "Tell me everything.",
        ])
        .env("HOME", &b.client_dir)
        .env_remove("SOTTO_CONFIG_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(long.stdout.take().unwrap());
    let mut words = Vec::new();
    stdout.fill_buf().unwrap();
    words.extend_from_slice(stdout.buffer());
    assert!(!words.is_empty(), "the answer began");
    other.kill().unwrap();
    other.wait().unwrap();
    let cut = long.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&cut.stderr);
    assert!(
        !cut.status.success(),
        "the chat ended with an error: {said}"
    );
    assert!(said.contains("the enclave closed the connection"), "{said}");

    // Every chat from now on reaches the enclave that is left, whichever the client picked.
    for _ in 0..4 {
        let out = chat(&b, &server_addr, &["--max-tokens", "4", "Hi again."]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The relay that was cut marks it down once a probe is refused; give that probe (and
    // the pool's 2 s tending) a few seconds rather than one instant.
    let mut listed = enclaves(&server_addr);
    for _ in 0..50 {
        if listed.enclaves.iter().any(|e| e.id == second && !e.up) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        listed = enclaves(&server_addr);
    }
    let gone = listed.enclaves.iter().find(|e| e.id == second).unwrap();
    assert!(!gone.up, "the killed enclave is listed down: {listed:?}");

    // The server's log (collected once it exits) names the enclave of every relay, in the
    // order they closed: the two asked for, the unknown id (no enclave), the one cut short,
    // and the four after it.
    std::thread::sleep(Duration::from_millis(300));
    let _ = server.kill();
    let _ = server.wait();
    std::thread::sleep(Duration::from_millis(300));
    let relays = relayed_to(&b.server_out);
    let mut expected = vec![first.clone(), second.clone(), "none".into(), second.clone()];
    expected.extend([first.clone(), first.clone(), first.clone(), first.clone()]);
    assert_eq!(relays, expected);
    let _ = b.enclave.kill();
}
