//! `sotto up` as a user runs it: the real binary on the simulated platform with a tiny model.
//! Its development release log is valid C2SP to an independent implementation (Go's
//! golang.org/x/mod sumdb note and tlog, through crates/log/tests/c2sp-check): the checkpoint
//! verifies with the log's vkey, the entry bundles hash to the signed root through the level-0
//! tiles, both witnesses' cosignatures verify, and the entry of the running release contains
//! the measurement `sotto up` printed. Then `sotto chat --insecure-simulated -v` answers,
//! showing the release and the witnesses it checked.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sotto");

fn go_checker(dir: &Path) -> std::path::PathBuf {
    let src = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("../log/tests/c2sp-check/main.go");
    let exe = dir.join("c2sp-check");
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run go ({e}): install golang-go and golang-golang-x-mod-dev \
                 (scripts/test-deps)"
            )
        });
    common::succeeded("go build (scripts/test-deps installs Go and x/mod)", &out);
    exe
}

#[test]
fn sotto_up_publishes_a_log_go_accepts_and_chat_answers_through_it() {
    let home = tempfile::tempdir().unwrap();
    let model = common::tiny_model(home.path());
    let mut up = Command::new(BIN)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--context",
            "512",
        ])
        .arg("--model")
        .arg(&model)
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("SOTTO_CONFIG_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let (mut url, mut measurement) = (String::new(), String::new());
    let started = Instant::now();
    while url.is_empty() || measurement.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "sotto up did not start"
        );
        let line = lines.next().expect("sotto up printed its state").unwrap();
        if let Some(u) = line.strip_prefix("Sotto is up: ") {
            url = u.trim().to_string();
        }
        if let Some(m) = line.trim().strip_prefix("measurement: ") {
            measurement = m.trim().to_string();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let data = home.path().join("data/sotto");
    let trust: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("trust.json")).unwrap()).unwrap();
    let checker = go_checker(home.path());
    let mut go = Command::new(&checker);
    for w in trust["witnesses"]["keys"].as_array().unwrap() {
        go.arg("-witness").arg(w.as_str().unwrap());
    }
    let out = go
        .args(["-cosignatures", "2", "-contains", &measurement])
        .arg(data.join("log/public"))
        .arg(trust["log"]["vkey"].as_str().unwrap())
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "Go refused sotto up's log: {said}");
    assert!(said.contains("cosignatures=2/2"), "{said}");

    let chat = Command::new(BIN)
        .args([
            "chat",
            "--server",
            &url,
            "--insecure-simulated",
            "-v",
            "--no-save",
        ])
        .args(["--max-tokens", "4", "Hello"])
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("SOTTO_CONFIG_DIR")
        .output()
        .unwrap();
    let _ = up.kill();
    let _ = up.wait();
    let err = String::from_utf8_lossy(&chat.stderr);
    assert!(chat.status.success(), "chat failed: {err}");
    assert!(!chat.stdout.is_empty(), "no answer");
    assert!(
        err.contains(&format!("measurement: {measurement}")),
        "{err}"
    );
    assert!(err.contains("release:     sotto 0.1.0"), "{err}");
    assert_eq!(err.matches("  witness:     ").count(), 2, "{err}");
}
