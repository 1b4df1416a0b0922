//! The release checks of a real client against a real stack, each refusal made by a log or
//! release forged the way a hostile operator would, and each one before any prompt byte is
//! sent: the tap between the server and the enclave sees the client's handshake hello and
//! nothing else. The log is served by the real server from a real tile directory written by
//! sotto-log; the client runs the `sotto chat` path (attest, check the log, admit).

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{start_enclave, start_server_with_log, Tap, TapMode};
use sotto::client::{now, ClientError, Connection};
use sotto::local::Profile;
use sotto::transparency::{self, TransparencyError};
use sotto_channel::handshake::Expectations;
use sotto_channel::ChannelError;
use sotto_log::Log;
use sotto_release::manifest::{statement_digest, Revocation, Statement, FORMAT};
use sotto_release::trust::{LogPin, Quorum, TrustFile, DEV_ORIGIN_PREFIX, TRUST_FORMAT};
use sotto_release::{AdmitError, LogError, Release, Trust};
use sotto_tlog::note::{Note, Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};

/// A development log with its keys, written with sotto-log, cosigned by signing directly.
struct TestLog {
    dir: PathBuf,
    log_key: Signer,
    witnesses: Vec<Signer>,
    release_keys: Vec<Signer>,
    log: Log,
}

impl TestLog {
    fn new(dir: &Path, seed: u8) -> TestLog {
        let origin = format!("{DEV_ORIGIN_PREFIX}test-{seed}");
        let log_key = Signer::from_seed(&origin, TYPE_ED25519, &[seed; 32]).unwrap();
        let witnesses = (0..2u8)
            .map(|i| {
                Signer::from_seed(
                    &format!("w{i}.test"),
                    TYPE_COSIGNATURE_V1,
                    &[seed ^ (0x40 + i); 32],
                )
                .unwrap()
            })
            .collect();
        let release_keys = (0..2u8)
            .map(|i| {
                Signer::from_seed(
                    &format!("r{i}.test"),
                    TYPE_ED25519,
                    &[seed ^ (0x80 + i); 32],
                )
                .unwrap()
            })
            .collect();
        let dir = dir.join(format!("log-{seed}"));
        let log = Log::create(&dir, &log_key).unwrap();
        TestLog {
            dir,
            log_key,
            witnesses,
            release_keys,
            log,
        }
    }

    fn trust(&self) -> Trust {
        Trust::from_file(TrustFile {
            format: TRUST_FORMAT.into(),
            dev: true,
            log: LogPin {
                origin: self.log_key.name().into(),
                vkey: self.log_key.verifier().to_vkey(),
            },
            witnesses: Quorum {
                quorum: 2,
                keys: self
                    .witnesses
                    .iter()
                    .map(|w| w.verifier().to_vkey())
                    .collect(),
            },
            release_keys: Quorum {
                quorum: 2,
                keys: self
                    .release_keys
                    .iter()
                    .map(|k| k.verifier().to_vkey())
                    .collect(),
            },
            max_cosignature_age_secs: 3600,
        })
        .unwrap()
    }

    /// Appends `statement` signed by the release keys `by`, and has every witness cosign.
    fn publish(&mut self, statement: &Statement, by: &[usize]) {
        let text = statement.to_text().unwrap();
        let mut note = Note::new(text.clone()).unwrap();
        for &i in by {
            note.add_signature(self.release_keys[i].sign(&text).unwrap());
        }
        self.log.append(&self.log_key, &[note.to_bytes()]).unwrap();
        self.cosign(now().0, self.witnesses.len());
    }

    /// Serves a checkpoint with the log's signature and cosignatures of the first `n`
    /// witnesses at `at`, and no others.
    fn cosign(&mut self, at: u64, n: usize) {
        let text = self.log.checkpoint().text().to_string();
        let mut note = Note::new(text.clone()).unwrap();
        note.add_signature(self.log_key.sign(&text).unwrap());
        for w in &self.witnesses[..n] {
            note.add_signature(w.cosign(&text, at).unwrap());
        }
        std::fs::write(self.dir.join("checkpoint"), note.to_bytes()).unwrap();
    }
}

/// Has every one of `witnesses` cosign `log`'s current checkpoint now.
fn cosign_all(log: &mut Log, witnesses: &[Signer]) {
    let text = log.checkpoint().text().to_string();
    let lines: Vec<_> = witnesses
        .iter()
        .map(|w| w.cosign(&text, now().0).unwrap())
        .collect();
    let verifiers: Vec<_> = witnesses.iter().map(Signer::verifier).collect();
    log.set_cosignatures(&verifiers, &lines).unwrap();
}

/// An enclave (tiny model, simulated platform) behind a recording tap.
struct Enclave {
    dir: tempfile::TempDir,
    tap: Tap,
    release: Release,
    policy: sotto_verify::Policy,
    /// Connections attempted: each may send its handshake hello, and nothing else unless
    /// admitted.
    attempts: AtomicUsize,
}

async fn enclave() -> Enclave {
    let dir = tempfile::tempdir().unwrap();
    let enclave = common::boot_tiny(dir.path()).await;
    let release = common::release_of(&enclave, None);
    let addr = start_enclave(enclave).await;
    let tap = Tap::start(addr, TapMode::Pass).await;
    let policy = common::policy(dir.path());
    Enclave {
        dir,
        tap,
        release,
        policy,
        attempts: AtomicUsize::new(0),
    }
}

impl Enclave {
    /// The real server in front of this enclave, serving the log in `log_dir`.
    async fn serve(&self, log_dir: &Path) -> String {
        start_server_with_log(self.tap.addr, Some(log_dir.to_path_buf())).await
    }

    /// A log (its key from `seed`) listing this enclave's release, signed by both release keys.
    fn published(&self, seed: u8) -> TestLog {
        let mut log = TestLog::new(self.dir.path(), seed);
        log.publish(&statement(&self.release), &[0, 1]);
        log
    }

    /// What `sotto chat` does before sending: attest, check the log, admit, trusting `log`'s
    /// keys. Every attempt is the same client, remembering the log it saw.
    async fn connect(&self, url: &str, log: &TestLog) -> Result<Connection, String> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let pending = Connection::attest(url, &self.policy, &Expectations::default(), now())
            .await
            .map_err(|e| e.to_string())?;
        let profile = Profile::new(Some(self.dir.path().join("c")));
        let checked = transparency::check(url, &log.trust(), &profile, now().0)
            .await
            .map_err(|e| e.to_string())?;
        pending
            .admit(&checked.releases)
            .await
            .map_err(|e| e.to_string())
    }

    /// Connects to `url` trusting `log`, and asserts the refusal says `expect` and came
    /// before anything but the handshake hello left the client: once the tap has settled, it
    /// has seen one frame from each attempt so far.
    async fn assert_refused(&self, url: &str, log: &TestLog, expect: &str) {
        match self.connect(url, log).await {
            Ok(_) => panic!("admitted, expected a refusal containing {expect:?}"),
            Err(e) => assert!(e.contains(expect), "{e:?} does not say {expect:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(
            self.tap.up_frames.load(Ordering::SeqCst),
            self.attempts.load(Ordering::SeqCst),
            "only the Noise hello may leave the client"
        );
    }
}

fn statement(r: &Release) -> Statement {
    Statement::Release(Box::new(r.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_release_admits_and_the_chat_works() {
    let e = enclave().await;
    let log = e.published(1);
    let url = e.serve(&log.dir).await;
    let mut conn = e.connect(&url, &log).await.expect("admitted");
    assert_eq!(conn.verified().release.index, 0);
    let msg = sotto_channel::messages::WireMessage {
        role: sotto_channel::messages::Role::User,
        content: zeroize::Zeroizing::new("hi".into()),
    };
    let params = sotto_channel::messages::GenParams {
        max_tokens: 2,
        ..Default::default()
    };
    conn.chat(&[msg], params, &mut |_| {})
        .await
        .expect("answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_measurement_no_logged_release_lists_is_refused() {
    let e = enclave().await;
    let mut log = TestLog::new(e.dir.path(), 2);
    let mut other = e.release.clone();
    other.platforms.simulated.as_mut().unwrap().measurements = vec!["ab".repeat(48)];
    log.publish(&statement(&other), &[0, 1]);
    let url = e.serve(&log.dir).await;
    e.assert_refused(
        &url,
        &log,
        "no release in the log lists this enclave's simulated measurement",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_release_is_refused() {
    let e = enclave().await;
    let mut log = TestLog::new(e.dir.path(), 3);
    let s = statement(&e.release);
    log.publish(&s, &[0, 1]);
    log.publish(
        &Statement::Revocation(Revocation {
            format: FORMAT.into(),
            name: e.release.name.clone(),
            version: e.release.version.clone(),
            release_sha256: statement_digest(&s.to_text().unwrap()),
            reason: "test revocation".into(),
        }),
        &[0, 1],
    );
    let url = e.serve(&log.dir).await;
    e.assert_refused(&url, &log, "was revoked: test revocation")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_below_the_quorum_and_a_model_the_release_does_not_list_are_refused() {
    let e = enclave().await;
    let mut log = TestLog::new(e.dir.path(), 4);
    log.publish(&statement(&e.release), &[1]);
    let url = e.serve(&log.dir).await;
    e.assert_refused(&url, &log, "signed by 1 of the 2 release keys required")
        .await;
    let mut other_model = e.release.clone();
    other_model.models[0].sha256 = "00".repeat(32);
    log.publish(&statement(&other_model), &[0, 1]);
    e.assert_refused(&url, &log, "which its release 0.1.0 does not list")
        .await;
}

/// A genuine log with one file altered where the server reads it: the checkpoint's tree size
/// (a checkpoint for 2 entries the log key never signed), or a byte of an entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_altered_where_it_is_served_is_refused() {
    let e = enclave().await;
    type Alteration = (u8, &'static str, fn(&mut Vec<u8>), &'static str);
    let cases: [Alteration; 2] = [
        (
            5,
            "checkpoint",
            |b| {
                let size = b.iter().position(|&c| c == b'\n').unwrap() + 1;
                b[size] = b'2';
            },
            "not signed by the pinned log key",
        ),
        (
            8,
            "tile/entries/000.p/1",
            |b| {
                let i = b.len() - 40;
                b[i] ^= 1;
            },
            "do not hash to its signed root",
        ),
    ];
    for (seed, file, alter, expect) in cases {
        let log = e.published(seed);
        let path = log.dir.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        alter(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
        let url = e.serve(&log.dir).await;
        e.assert_refused(&url, &log, expect).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_and_stale_cosignatures_are_refused() {
    let e = enclave().await;
    let mut log = e.published(6);
    log.cosign(now().0, 1);
    let url = e.serve(&log.dir).await;
    e.assert_refused(
        &url,
        &log,
        "1 valid witness cosignatures, fewer than the quorum of 2",
    )
    .await;
    log.cosign(now().0 - 7200, 2);
    e.assert_refused(&url, &log, "only 0 of the witness cosignatures are fresh")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_view_and_a_rollback_are_refused() {
    let e = enclave().await;
    // The client sees log A with the release and one more entry...
    let mut a = e.published(7);
    a.publish(&statement(&e.release), &[0]);
    let url_a = e.serve(&a.dir).await;
    e.connect(&url_a, &a).await.expect("first view");
    // ...then the same log key shows it another tree of the same size (a split view)...
    let fork_dir = e.dir.path().join("fork");
    let mut fork = Log::create(&fork_dir, &a.log_key).unwrap();
    let mut first = Note::new(statement(&e.release).to_text().unwrap()).unwrap();
    for k in &a.release_keys {
        first.add_signature(k.sign(first.text()).unwrap());
    }
    fork.append(
        &a.log_key,
        &[first.to_bytes(), b"another second entry".to_vec()],
    )
    .unwrap();
    cosign_all(&mut fork, &a.witnesses);
    let url_fork = e.serve(&fork_dir).await;
    e.assert_refused(&url_fork, &a, "split view").await;
    // ...or a tree of a different history that is larger (inconsistent)...
    fork.append(&a.log_key, &[b"third".to_vec()]).unwrap();
    cosign_all(&mut fork, &a.witnesses);
    e.assert_refused(
        &url_fork,
        &a,
        "does not extend the tree of size 2 this client saw before",
    )
    .await;
    // ...or an older, smaller tree (a rollback).
    let old_dir = e.dir.path().join("old");
    let mut old = Log::create(&old_dir, &a.log_key).unwrap();
    old.append(&a.log_key, &[first.to_bytes()]).unwrap();
    cosign_all(&mut old, &a.witnesses);
    let url_old = e.serve(&old_dir).await;
    e.assert_refused(
        &url_old,
        &a,
        "rolled back: its tree has size 1, this client saw size 2 before",
    )
    .await;
    // The client still trusts what it saw: log A admits it again.
    e.connect(&url_a, &a)
        .await
        .expect("the view it saw is still good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_stacks_log_is_refused() {
    let e = enclave().await;
    let ours = e.published(9);
    let theirs = TestLog::new(e.dir.path(), 10);
    let url = e.serve(&ours.dir).await;
    e.assert_refused(&url, &theirs, "not the log this client trusts")
        .await;
    // A server without any log: the client cannot check, so it sends nothing.
    let bare = common::start_server(e.tap.addr).await;
    e.assert_refused(&bare, &ours, "cannot fetch the release log's checkpoint")
        .await;
}

#[test]
fn errors_keep_their_types() {
    // The CLI maps these to one line each; the types say which check failed.
    let e: ClientError = ChannelError::Release(AdmitError::SimulatedInProduction).into();
    assert!(e.to_string().starts_with("release refused:"));
    let t: TransparencyError = LogError::LogSignature.into();
    assert!(t
        .to_string()
        .starts_with("the release log cannot be trusted"));
}
