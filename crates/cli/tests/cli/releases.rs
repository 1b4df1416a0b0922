//! The release checks of a real client against a real stack, each refusal made by a log or
//! release forged the way a hostile operator would, and each one before any prompt byte is
//! sent: the tap between the server and the enclave sees the client's handshake hello and
//! nothing else. The log is served by the real server from a real tile directory written by
//! sotto-log; the client runs the `sotto chat` path (attest, check the log, admit).

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

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
    }
}

fn statement(r: &Release) -> Statement {
    Statement::Release(Box::new(r.clone()))
}

/// What `sotto chat` does before sending: attest, check the log, admit.
async fn connect(
    url: &str,
    e: &Enclave,
    trust: &Trust,
    profile: &Path,
) -> Result<Connection, String> {
    let pending = Connection::attest(url, &e.policy, &Expectations::default(), now())
        .await
        .map_err(|e| e.to_string())?;
    let profile = Profile::new(Some(profile.to_path_buf()));
    let checked = transparency::check(url, trust, &profile, now().0)
        .await
        .map_err(|e| e.to_string())?;
    pending
        .admit(&checked.releases)
        .await
        .map_err(|e| e.to_string())
}

/// Waits for the tap to settle, then asserts that each of the client's `attempts` sent its
/// handshake hello to the enclave and nothing else.
async fn nothing_sent(e: &Enclave, attempts: usize) {
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        e.tap.up_frames.load(Ordering::SeqCst),
        attempts,
        "only the Noise hello may leave the client"
    );
}

fn assert_refused(result: Result<Connection, String>, expect: &str) {
    match result {
        Ok(_) => panic!("admitted, expected a refusal containing {expect:?}"),
        Err(e) => assert!(e.contains(expect), "{e:?} does not say {expect:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_release_admits_and_the_chat_works() {
    let e = enclave().await;
    let mut log = TestLog::new(e.dir.path(), 1);
    log.publish(&statement(&e.release), &[0, 1]);
    let url = start_server_with_log(e.tap.addr, Some(log.dir.clone())).await;
    let mut conn = connect(&url, &e, &log.trust(), &e.dir.path().join("client"))
        .await
        .expect("admitted");
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
    let url = start_server_with_log(e.tap.addr, Some(log.dir.clone())).await;
    assert_refused(
        connect(&url, &e, &log.trust(), &e.dir.path().join("c")).await,
        "no release in the log lists this enclave's simulated measurement",
    );
    nothing_sent(&e, 1).await;
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
    let url = start_server_with_log(e.tap.addr, Some(log.dir.clone())).await;
    assert_refused(
        connect(&url, &e, &log.trust(), &e.dir.path().join("c")).await,
        "was revoked: test revocation",
    );
    nothing_sent(&e, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_below_the_quorum_and_a_model_the_release_does_not_list_are_refused() {
    let e = enclave().await;
    let mut log = TestLog::new(e.dir.path(), 4);
    log.publish(&statement(&e.release), &[1]);
    let url = start_server_with_log(e.tap.addr, Some(log.dir.clone())).await;
    assert_refused(
        connect(&url, &e, &log.trust(), &e.dir.path().join("c")).await,
        "signed by 1 of the 2 release keys required",
    );
    let mut other_model = e.release.clone();
    other_model.models[0].sha256 = "00".repeat(32);
    log.publish(&statement(&other_model), &[0, 1]);
    assert_refused(
        connect(&url, &e, &log.trust(), &e.dir.path().join("c")).await,
        "which its release 0.1.0 does not list",
    );
    nothing_sent(&e, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_log_signature_is_refused() {
    let e = enclave().await;
    let mut log = TestLog::new(e.dir.path(), 5);
    log.publish(&statement(&e.release), &[0, 1]);
    let cp = log.dir.join("checkpoint");
    let mut bytes = std::fs::read(&cp).unwrap();
    // The tree size line: a checkpoint for 2 entries the log key never signed.
    let at = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes[at] = b'2';
    std::fs::write(&cp, bytes).unwrap();
    let url = start_server_with_log(e.tap.addr, Some(log.dir.clone())).await;
    assert_refused(
        connect(&url, &e, &log.trust(), &e.dir.path().join("c")).await,
        "not signed by the pinned log key",
    );
    nothing_sent(&e, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_and_stale_cosignatures_are_refused() {
    let e = enclave().await;
    let mut log = TestLog::new(e.dir.path(), 6);
    log.publish(&statement(&e.release), &[0, 1]);
    log.cosign(now().0, 1);
    let url = start_server_with_log(e.tap.addr, Some(log.dir.clone())).await;
    let profile = e.dir.path().join("c");
    assert_refused(
        connect(&url, &e, &log.trust(), &profile).await,
        "1 valid witness cosignatures, fewer than the quorum of 2",
    );
    log.cosign(now().0 - 7200, 2);
    assert_refused(
        connect(&url, &e, &log.trust(), &profile).await,
        "only 0 of the witness cosignatures are fresh",
    );
    nothing_sent(&e, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_view_and_a_rollback_are_refused() {
    let e = enclave().await;
    let profile = e.dir.path().join("c");
    // The client sees log A with the release and one more entry...
    let mut a = TestLog::new(e.dir.path(), 7);
    a.publish(&statement(&e.release), &[0, 1]);
    a.publish(&statement(&e.release), &[0]);
    let url_a = start_server_with_log(e.tap.addr, Some(a.dir.clone())).await;
    connect(&url_a, &e, &a.trust(), &profile)
        .await
        .expect("first view");
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
    let url_fork = start_server_with_log(e.tap.addr, Some(fork_dir.clone())).await;
    assert_refused(
        connect(&url_fork, &e, &a.trust(), &profile).await,
        "split view",
    );
    // ...or a tree of a different history that is larger (inconsistent)...
    fork.append(&a.log_key, &[b"third".to_vec()]).unwrap();
    cosign_all(&mut fork, &a.witnesses);
    assert_refused(
        connect(&url_fork, &e, &a.trust(), &profile).await,
        "does not extend the tree of size 2 this client saw before",
    );
    // ...or an older, smaller tree (a rollback).
    let old_dir = e.dir.path().join("old");
    let mut old = Log::create(&old_dir, &a.log_key).unwrap();
    old.append(&a.log_key, &[first.to_bytes()]).unwrap();
    cosign_all(&mut old, &a.witnesses);
    let url_old = start_server_with_log(e.tap.addr, Some(old_dir)).await;
    assert_refused(
        connect(&url_old, &e, &a.trust(), &profile).await,
        "rolled back: its tree has size 1, this client saw size 2 before",
    );
    // The client still trusts what it saw: log A admits it again.
    connect(&url_a, &e, &a.trust(), &profile)
        .await
        .expect("the view it saw is still good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_do_not_hash_to_the_signed_root_are_refused() {
    let e = enclave().await;
    let mut log = TestLog::new(e.dir.path(), 8);
    log.publish(&statement(&e.release), &[0, 1]);
    let bundle = log.dir.join("tile/entries/000.p/1");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let i = bytes.len() - 40;
    bytes[i] ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    let url = start_server_with_log(e.tap.addr, Some(log.dir.clone())).await;
    assert_refused(
        connect(&url, &e, &log.trust(), &e.dir.path().join("c")).await,
        "do not hash to its signed root",
    );
    nothing_sent(&e, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_stacks_log_is_refused() {
    let e = enclave().await;
    let mut ours = TestLog::new(e.dir.path(), 9);
    ours.publish(&statement(&e.release), &[0, 1]);
    let theirs = TestLog::new(e.dir.path(), 10);
    let url = start_server_with_log(e.tap.addr, Some(ours.dir.clone())).await;
    let err = connect(&url, &e, &theirs.trust(), &e.dir.path().join("c"))
        .await
        .err()
        .expect("refused");
    assert!(err.contains("not the log this client trusts"), "{err}");
    nothing_sent(&e, 1).await;
    // A server without any log: the client cannot check, so it sends nothing.
    let bare = common::start_server(e.tap.addr).await;
    assert_refused(
        connect(&bare, &e, &ours.trust(), &e.dir.path().join("c")).await,
        "cannot fetch the release log's checkpoint",
    );
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
