//! Acceptance: a server killed with SIGKILL in the middle of a write loop restarts with every
//! write it had acknowledged.
//!
//! The real `sotto server` binary runs as a child process over a real store (an SQLite file in
//! a temporary data dir, or a fresh PostgreSQL database). Writers append encrypted messages as
//! fast as the server takes them and record each message the server acknowledged; the server
//! is then killed with SIGKILL while they are still writing, restarted on the same data, and a
//! client signs in again, syncs, and must find every acknowledged message, decrypting to what
//! was written. Writes still in flight at the kill may or may not have landed.
//!
//! The PostgreSQL variant needs `SOTTO_TEST_POSTGRES_URL` (a role that may create databases):
//! run `eval "$(bash scripts/postgres env)"` first. Without it that test fails and says so.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sotto::account::Unlocked;
use sotto::local::Profile;
use sotto_vault::Role;

use sotto_testkit::postgres::Database;

/// Concurrent writers, so that several commits are in flight when the server dies.
const WRITERS: usize = 4;
/// Acknowledged writes to wait for before the kill.
const ACKED_BEFORE_KILL: usize = 200;
/// Upper bound on the wait for those writes; the kill happens then whatever the count.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// A `sotto server` child process, killed when dropped so a failing test leaves none behind.
struct ServerProcess {
    child: Child,
    url: String,
}

impl ServerProcess {
    fn start(data_dir: &Path, store: Option<&str>) -> ServerProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
        cmd.args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--enclave",
            "127.0.0.1:9",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--rp-id", "localhost"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if let Some(spec) = store {
            cmd.args(["--store", spec]);
        }
        let mut child = cmd.spawn().expect("start `sotto server`");
        let stdout = child.stdout.take().expect("server stdout is piped");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let addr = match read {
            Ok(_) => line
                .trim()
                .strip_prefix("sotto server listening on http://")
                .map(str::to_owned),
            Err(_) => None,
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "`sotto server` did not report its address: first line {line:?}, exit {status:?}"
            );
        };
        let port = addr
            .rsplit_once(':')
            .map(|(_, p)| p.to_owned())
            .expect("the address has a port");
        // WebAuthn refuses IP addresses as relying parties: clients use the name.
        let url = format!("http://localhost:{port}");
        ServerProcess { child, url }
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown code of the server runs.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        let status = self.child.wait().expect("reap the server");
        assert!(
            !status.success(),
            "the server should have died of the signal, got {status:?}"
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn content_of(writer: usize, n: usize) -> String {
    // Long enough to span several padding classes, so bodies differ in size as real ones do.
    format!("writer {writer} message {n}: {}", "durable ".repeat(n % 40))
}

/// Appends messages until the server stops answering; every acknowledged one goes in `acked`
/// (message id → content) before the next is sent. Returns the error that ended the loop.
async fn write_loop(
    mut u: Unlocked,
    conv: String,
    writer: usize,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
) -> String {
    let mut n = 0;
    loop {
        let content = content_of(writer, n);
        match sotto::history::append(&mut u, &conv, Role::User, &content).await {
            Ok(msg) => {
                acked.lock().expect("acked map").insert(msg, content);
                n += 1;
            }
            Err(e) => return e.to_string(),
        }
    }
}

async fn kill_mid_write_loop_keeps_acknowledged_writes(store: Option<&str>) {
    let data = tempfile::tempdir().expect("data dir");
    let profile_dir = tempfile::tempdir().expect("profile dir");
    let profile = Profile {
        dir: profile_dir.path().to_path_buf(),
    };

    let mut server = ServerProcess::start(data.path(), store);
    let (mut u, _code) = sotto::account::create(&profile, &server.url, "durability", "test")
        .await
        .expect("create an account");
    let conv = sotto::history::start(&mut u, "durability")
        .await
        .expect("start a conversation");

    // One session per writer, as several devices would have; unlocking rewrites the keyring
    // file, so the sessions open one after another.
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let mut writers = Vec::with_capacity(WRITERS);
    for w in 0..WRITERS {
        let session = sotto::account::unlock(&profile)
            .await
            .expect("unlock a writer's session");
        writers.push(tokio::spawn(write_loop(
            session,
            conv.clone(),
            w,
            acked.clone(),
        )));
    }

    let started = Instant::now();
    while acked.lock().expect("acked map").len() < ACKED_BEFORE_KILL && started.elapsed() < MAX_WAIT
    {
        assert!(
            writers.iter().all(|w| !w.is_finished()),
            "a writer stopped before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        writers.iter().all(|w| !w.is_finished()),
        "every writer must still be writing when the server is killed"
    );
    server.kill();

    let mut endings = Vec::new();
    for w in writers {
        endings.push(w.await.expect("writer task"));
    }
    let acked = std::mem::take(&mut *acked.lock().expect("acked map"));
    assert!(
        !acked.is_empty(),
        "no write was acknowledged before the kill (writers ended with {endings:?})"
    );
    eprintln!(
        "{} writes acknowledged before SIGKILL; writers ended with: {endings:?}",
        acked.len()
    );

    let server = ServerProcess::start(data.path(), store);
    let mut u = sotto::account::login(&profile, &server.url)
        .await
        .expect("sign in again after the restart");
    let history = sotto::history::sync(&mut u)
        .await
        .expect("sync after the restart");
    let c = history
        .conversations()
        .get(&conv)
        .expect("the conversation survived");
    assert_eq!(c.title(), "durability");
    let stored: BTreeMap<&str, (&str, Role)> = c
        .messages()
        .map(|(id, m)| (id, (m.content.as_str(), m.role)))
        .collect();
    for (id, content) in &acked {
        match stored.get(id.as_str()) {
            Some((got, role)) => {
                assert_eq!(got, content, "message {id} decrypted to other content");
                assert_eq!(*role, Role::User, "message {id} has another role");
            }
            None => panic!(
                "acknowledged message {id} is missing after the restart ({} of {} acknowledged present)",
                acked.keys().filter(|k| stored.contains_key(k.as_str())).count(),
                acked.len()
            ),
        }
    }
    // Each writer had at most one write in flight, so at most that many more can have landed.
    assert!(
        stored.len() <= acked.len() + WRITERS,
        "{} messages stored but only {} acknowledged with {WRITERS} writers",
        stored.len(),
        acked.len()
    );

    // The restarted server takes fresh writes: a message and a whole new conversation.
    let after = sotto::history::append(&mut u, &conv, Role::Assistant, "after the restart")
        .await
        .expect("append after the restart");
    let conv2 = sotto::history::start(&mut u, "second")
        .await
        .expect("start a conversation after the restart");
    sotto::history::append(&mut u, &conv2, Role::User, "hello again")
        .await
        .expect("append to the new conversation");
    let history = sotto::history::sync(&mut u).await.expect("sync again");
    let c = history
        .conversations()
        .get(&conv)
        .expect("first conversation");
    assert_eq!(c.messages().count(), stored.len() + 1);
    assert!(c
        .messages()
        .any(|(id, m)| id == after && m.content == "after the restart"));
    let c2 = history
        .conversations()
        .get(&conv2)
        .expect("second conversation");
    assert_eq!(c2.title(), "second");
    assert_eq!(c2.messages().count(), 1);
    assert_eq!(
        c2.messages().next().map(|(_, m)| m.content.as_str()),
        Some("hello again")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_server_killed_mid_write_loop_keeps_acknowledged_writes() {
    kill_mid_write_loop_keeps_acknowledged_writes(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_server_killed_mid_write_loop_keeps_acknowledged_writes() {
    let db = Database::create("sotto_cli").expect("a test database");
    kill_mid_write_loop_keeps_acknowledged_writes(Some(&db.url)).await;
}
