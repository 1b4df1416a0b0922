//! The promise, tested: canary strings in the system prompt, the prompts and the history, and
//! the answers the model actually generated, never appear in anything the server or the
//! enclave wrote (stdout, stderr, log files, every file under the data directory) nor in any
//! byte the relay forwarded. The client is signed in, so the conversation is also saved: the
//! server's account database is searched too, and the client's own export must hold every
//! canary (it was really saved). Runs the real `sotto` binaries as separate processes, with
//! the most verbose logging.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::common::{self, tiny_model, Tap, TapMode};

const BIN: &str = env!("CARGO_BIN_EXE_sotto");

/// Spawns `sotto` with args, returns the child and the address it printed on its first line;
/// everything else it prints is collected in `sink`.
pub(crate) fn spawn(args: &[&str], data_dir: &Path, sink: Arc<Mutex<Vec<u8>>>) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("SOTTO_LOG", "trace")
        .env("HOME", data_dir)
        .env("XDG_DATA_HOME", data_dir.join("xdg"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sotto");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    sink.lock().unwrap().extend_from_slice(first.as_bytes());
    let addr = first
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let mut stderr = child.stderr.take().unwrap();
    let (s1, s2) = (sink.clone(), sink);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        s1.lock().unwrap().extend_from_slice(&buf);
    });
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        s2.lock().unwrap().extend_from_slice(&buf);
    });
    (child, addr)
}

pub(crate) fn all_files(dir: &Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend_from_slice(&bytes);
        }
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The real binaries as separate processes in a temporary directory: an enclave on a tiny
/// model (started by [`Binaries::start`]), a server in front of it ([`Binaries::server`]), the
/// client's home, and everything the processes printed.
pub(crate) struct Binaries {
    /// Holds the folders below for the stack's lifetime.
    pub dir: tempfile::TempDir,
    pub enclave_dir: PathBuf,
    pub server_dir: PathBuf,
    pub client_dir: PathBuf,
    release: PathBuf,
    pub enclave: Child,
    pub enclave_addr: String,
    pub enclave_out: Arc<Mutex<Vec<u8>>>,
    pub server_out: Arc<Mutex<Vec<u8>>>,
}

impl Binaries {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let [enclave_dir, server_dir, client_dir] =
            ["enclave", "server", "client"].map(|d| dir.path().join(d));
        for d in [&enclave_dir, &server_dir, &client_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        let model = tiny_model(dir.path());
        let release = dir.path().join("release.json");
        let enclave_out = Arc::new(Mutex::new(Vec::new()));
        let (enclave, enclave_addr) = spawn(
            &[
                "enclave",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                enclave_dir.to_str().unwrap(),
                "--model",
                model.to_str().unwrap(),
                "--threads",
                "1",
                "--context",
                "1024",
                "--write-release",
                release.to_str().unwrap(),
            ],
            &enclave_dir,
            enclave_out.clone(),
        );
        Binaries {
            dir,
            enclave_dir,
            server_dir,
            client_dir,
            release,
            enclave,
            enclave_addr,
            enclave_out,
            server_out: Arc::default(),
        }
    }

    /// A server in front of `enclave` (the enclave's address, or a tap's), publishing the
    /// enclave's release in a development log, with `extra` options; returns the process and
    /// its address.
    pub(crate) fn server(&self, enclave: &str, extra: &[&str]) -> (Child, String) {
        let mut args = vec![
            "server",
            "--listen",
            "127.0.0.1:0",
            "--enclave",
            enclave,
            "--data-dir",
            self.server_dir.to_str().unwrap(),
            "--dev-release",
            self.release.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        spawn(&args, &self.server_dir, self.server_out.clone())
    }

    /// The client options that pin this stack: its simulated root and the server's
    /// development trust.
    pub(crate) fn pins(&self) -> [String; 5] {
        let root = self
            .enclave_dir
            .join("collateral")
            .join("simulated-root.der");
        [
            "--insecure-simulated".into(),
            "--simulated-root".into(),
            root.to_string_lossy().into_owned(),
            "--trust".into(),
            self.server_dir
                .join("trust.json")
                .to_string_lossy()
                .into_owned(),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_reaches_the_server_its_logs_the_relay_or_the_enclave_logs() {
    let mut b = Binaries::start();
    let tap = Tap::start(b.enclave_addr.parse().unwrap(), TapMode::Pass).await;
    let (mut server, server_addr) = b.server(&tap.addr.to_string(), &[]);
    let (enclave_dir, server_dir, client_dir) = (
        b.enclave_dir.clone(),
        b.server_dir.clone(),
        b.client_dir.clone(),
    );

    let canaries = [
        "CANARY-SYSTEM-7f3a91c2",
        "CANARY-PROMPT-1-b84e02d9",
        "CANARY-PROMPT-2-5c17e6aa",
    ];
    // The client signs up first, so the conversation is also saved (encrypted) on the server.
    let port = server_addr.rsplit(':').next().unwrap();
    let server_url = format!("http://localhost:{port}");
    let created = Command::new(BIN)
        .args(["account", "create", "--server", &server_url])
        .env("HOME", &client_dir)
        .env_remove("SOTTO_CONFIG_DIR")
        .output()
        .unwrap();
    common::succeeded("account create", &created);
    let mut chat = Command::new(BIN)
        .args(["chat", "--server", &server_url])
        .args(b.pins())
        .args(["--system", canaries[0], "--max-tokens", "24"])
        .env("HOME", &client_dir)
        .env_remove("SOTTO_CONFIG_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        // Two turns: the second request carries the first prompt and answer as history.
        let mut stdin = chat.stdin.take().unwrap();
        writeln!(stdin, "{} tell me something", canaries[1]).unwrap();
        writeln!(stdin, "{} and more", canaries[2]).unwrap();
    }
    let out = tokio::task::spawn_blocking(move || chat.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let answers = String::from_utf8_lossy(common::succeeded("chat", &out)).to_string();

    // The history holds the conversation, readable on the client only.
    let exported = Command::new(BIN)
        .args(["history", "export", "--format", "markdown"])
        .env("HOME", &client_dir)
        .env_remove("SOTTO_CONFIG_DIR")
        .output()
        .unwrap();
    let exported = String::from_utf8_lossy(&exported.stdout).to_string();
    for canary in canaries {
        assert!(
            exported.contains(canary),
            "{canary} missing from the saved history"
        );
    }
    // The tiny model never ends an answer within --max-tokens: the enclave says it stopped
    // at the limit, and each answer was saved marked incomplete.
    assert_eq!(
        exported
            .matches("**Sotto:** (incomplete: stopped at the length limit)")
            .count(),
        2,
        "{exported}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it is kept as incomplete"),
        "the user was told"
    );

    for child in [&mut b.enclave, &mut server] {
        let _ = child.kill();
        let _ = child.wait();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let mut captured = Vec::new();
    captured.extend_from_slice(&b.enclave_out.lock().unwrap());
    captured.extend_from_slice(&b.server_out.lock().unwrap());
    captured.extend_from_slice(&tap.bytes());
    all_files(&enclave_dir, &mut captured);
    all_files(&server_dir, &mut captured);
    assert!(
        tap.bytes().len() > 1000,
        "the relay forwarded the conversation"
    );
    assert!(
        contains(&captured, "generation finished"),
        "the enclave logged (without content)"
    );

    assert!(
        contains(&captured, "SQLite format 3"),
        "the server's account database is among the files searched"
    );
    for canary in canaries {
        assert!(!contains(&captured, canary), "canary {canary} leaked");
    }
    // The answers the model really generated (one line per turn) never leak either.
    let generated: Vec<&str> = answers
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 8)
        .collect();
    assert!(!generated.is_empty(), "the model answered: {answers:?}");
    for answer in generated {
        assert!(
            !contains(&captured, answer),
            "generated answer leaked: {answer:?}"
        );
    }
}
