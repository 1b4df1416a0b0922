//! The witness over real HTTP on loopback, as a log would talk to it: every add-checkpoint
//! outcome c2sp.org/tlog-witness prescribes, the monitoring endpoint, restarts on the same
//! state file, a corrupt state file, a second process on the same state, and concurrent
//! submissions racing from one old size.
//!
//! Trust: the test is both the log (it builds trees and signs checkpoints with its own keys)
//! and a client that checks the witness's answers with nothing but the witness's vkey.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sotto_tlog::merkle::{empty_root, leaf_hash, prove_consistency, root};
use sotto_tlog::note::{Note, Signer, Verifier, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use sotto_tlog::witness::{parse_size_body, AddCheckpoint, SIZE_CONTENT_TYPE};
use sotto_tlog::{Checkpoint, Hash};
use sotto_witness::{
    origin_hash, KnownLogs, ServeError, StoreError, WitnessConfig, WitnessService,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ORIGIN: &str = "example.com/log";

/// A clock that ticks one second per cosignature, so every cosignature is distinct.
static CLOCK: AtomicU64 = AtomicU64::new(1_700_000_000);
fn ticking() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

/// A log: its key and its tree's leaves.
struct Log {
    signer: Signer,
    leaves: Vec<Hash>,
}

impl Log {
    fn new(origin: &str, seed: u8, leaves: usize, salt: u8) -> Self {
        Log {
            signer: Signer::from_seed(origin, TYPE_ED25519, &[seed; 32]).unwrap(),
            leaves: (0..leaves)
                .map(|i| leaf_hash(format!("{salt}/{i}").as_bytes()))
                .collect(),
        }
    }

    fn main() -> Self {
        Self::new(ORIGIN, 1, 300, 0)
    }

    /// The same log key signing a different tree: a fork.
    fn fork() -> Self {
        Self::new(ORIGIN, 1, 300, 1)
    }

    fn text(&self, size: u64) -> String {
        Checkpoint::new(
            self.signer.name(),
            size,
            root(&self.leaves[..size as usize]),
        )
        .to_text()
    }

    fn note(&self, size: u64) -> Vec<u8> {
        Log::signed(&self.text(size), &self.signer)
    }

    /// `text` as a note signed by `signer`.
    fn signed(text: &str, signer: &Signer) -> Vec<u8> {
        let mut n = Note::new(text.to_string()).unwrap();
        n.add_signature(signer.sign(text).unwrap());
        n.to_bytes()
    }

    fn body(&self, old: u64, size: u64) -> Vec<u8> {
        AddCheckpoint {
            old_size: old,
            proof: prove_consistency(&self.leaves, old, size).unwrap(),
            checkpoint: self.note(size),
        }
        .to_body()
    }
}

/// An add-checkpoint body from size 0 (so with no proof) for `checkpoint`.
fn from_zero(checkpoint: Vec<u8>) -> Vec<u8> {
    AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint,
    }
    .to_body()
}

fn witness_signer() -> Signer {
    Signer::from_seed("witness.example/w1", TYPE_COSIGNATURE_V1, &[9; 32]).unwrap()
}

/// A path for a state file in a new folder, removed when the folder is dropped.
fn state_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    (dir, state)
}

fn config(state: &Path) -> WitnessConfig {
    let mut logs = KnownLogs::new();
    logs.add(Log::main().signer.verifier()).unwrap();
    let mut c = WitnessConfig::new(witness_signer(), logs, state);
    c.clock = ticking;
    c
}

/// A witness serving on a loopback port.
struct Witness {
    url: String,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServeError>>,
    /// The folder of a [`Witness::fresh`] witness's state, removed when it is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl Witness {
    /// A witness on the state file `state`.
    async fn start(state: &Path) -> Witness {
        let service = WitnessService::open(config(state)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(service.serve_until(listener, async {
            let _ = stop.await;
        }));
        Witness {
            url,
            shutdown,
            task,
            _dir: None,
        }
    }

    /// A witness on a new state file of its own.
    async fn fresh() -> Witness {
        let (dir, state) = state_file();
        let witness = Witness::start(&state).await;
        Witness {
            _dir: Some(dir),
            ..witness
        }
    }

    /// [`Witness::submit`], then [`Witness::stop`].
    async fn finish(self, steps: impl IntoIterator<Item = (Vec<u8>, Then)>) {
        self.submit(steps).await;
        self.stop().await;
    }

    /// Submits each body in turn, and checks the witness answers it as `then` says.
    async fn submit(&self, steps: impl IntoIterator<Item = (Vec<u8>, Then)>) {
        for (body, then) in steps {
            let answer = self.post(body).await;
            match then {
                Then::Status(status) => assert_status(&answer, status),
                Then::Conflict(latest) => assert_conflict(&answer, latest),
            }
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.unwrap().unwrap();
    }

    /// POSTs `body` to add-checkpoint.
    async fn post(&self, body: Vec<u8>) -> Answer {
        post(&self.url, body).await
    }

    /// GETs `path` below the witness's URL.
    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let r = reqwest::get(format!("{}/{path}", self.url)).await.unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// The monitoring endpoint's path for `origin`.
    fn checkpoint_path(origin: &str) -> String {
        format!("{}/checkpoint", origin_hash(origin))
    }
}

/// How the witness must answer a submission.
#[derive(Clone, Copy)]
enum Then {
    /// With this HTTP status (200 for a cosignature).
    Status(u16),
    /// 409, with the latest size it cosigned.
    Conflict(u64),
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// POSTs `body` to the add-checkpoint endpoint of the witness at `url`.
async fn post(url: &str, body: Vec<u8>) -> Answer {
    let r = reqwest::Client::new()
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = r.bytes().await.unwrap().to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

/// What a log client does with a 200: appends the lines to the checkpoint and verifies them
/// with the witness's vkey. Returns the cosignature's timestamp.
fn check_cosigned(note: &[u8], answer: &Answer) -> u64 {
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer
        .body
        .starts_with("\u{2014} witness.example/w1 ".as_bytes()));
    let mut cosigned = note.to_vec();
    cosigned.extend_from_slice(&answer.body);
    let vkey = Verifier::parse(&witness_signer().verifier().to_vkey()).unwrap();
    let got = Note::parse(&cosigned).unwrap().verify(&[vkey]).unwrap();
    assert_eq!(got.len(), 1);
    got[0].timestamp.unwrap()
}

fn assert_conflict(answer: &Answer, latest: u64) {
    assert_eq!(
        answer.status,
        409,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type, SIZE_CONTENT_TYPE);
    assert_eq!(parse_size_body(&answer.body), Some(latest));
}

fn assert_status(answer: &Answer, status: u16) {
    assert_eq!(
        answer.status,
        status,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

#[tokio::test]
async fn first_checkpoint_from_zero_is_cosigned_and_verifies() {
    let w = Witness::fresh().await;
    let log = Log::main();
    let a = w.post(log.body(0, 5)).await;
    check_cosigned(&log.note(5), &a);
    assert!(a.content_type.starts_with("text/plain"));
    w.stop().await;
}

#[tokio::test]
async fn growth_with_a_consistency_proof_is_cosigned() {
    let w = Witness::fresh().await;
    let log = Log::main();
    check_cosigned(&log.note(1), &w.post(log.body(0, 1)).await);
    for (old, new) in [(1, 2), (2, 7), (7, 8), (8, 64), (64, 100), (100, 257)] {
        check_cosigned(&log.note(new), &w.post(log.body(old, new)).await);
    }
    w.stop().await;
}

#[tokio::test]
async fn resubmitting_the_same_checkpoint_gives_a_fresh_cosignature() {
    let w = Witness::fresh().await;
    let log = Log::main();
    let first = check_cosigned(&log.note(6), &w.post(log.body(0, 6)).await);
    let again = w.post(log.body(6, 6)).await;
    let second = check_cosigned(&log.note(6), &again);
    assert!(second > first);
    w.stop().await;
}

#[tokio::test]
async fn rollback_and_wrong_old_size_are_409_with_the_latest_size() {
    let w = Witness::fresh().await;
    let log = Log::main();
    // A log that does not know the witness's size starts from 0 and learns it.
    w.finish([
        (log.body(0, 10), Then::Status(200)),
        (log.body(0, 4), Then::Conflict(10)),   // rolled back
        (log.body(4, 10), Then::Conflict(10)),  // rolled back, same size
        (log.body(9, 12), Then::Conflict(10)),  // wrong old size
        (log.body(11, 12), Then::Conflict(10)), // old size ahead
        (log.body(10, 12), Then::Status(200)),
    ])
    .await;
}

#[tokio::test]
async fn forks_are_422() {
    let w = Witness::fresh().await;
    let (log, fork) = (Log::main(), Log::fork());
    let edited = |old: u64, size: u64, edit: fn(&mut AddCheckpoint)| {
        let mut request = AddCheckpoint::parse(&log.body(old, size)).unwrap();
        edit(&mut request);
        request.to_body()
    };
    // The real proof, but leading to the forked root.
    let mut mixed = AddCheckpoint::parse(&log.body(10, 20)).unwrap();
    mixed.checkpoint = fork.note(20);
    w.finish([
        (log.body(0, 10), Then::Status(200)),
        // The forked tree's own proof does not lead from the cosigned root.
        (fork.body(10, 20), Then::Status(422)),
        (mixed.to_body(), Then::Status(422)),
        // A proof with a hash flipped, or cut short.
        (edited(10, 20, |r| r.proof[0][0] ^= 1), Then::Status(422)),
        (
            edited(10, 20, |r| {
                r.proof.pop();
            }),
            Then::Status(422),
        ),
        // Same size, different root.
        (fork.body(10, 10), Then::Status(422)),
        // Same size, same root, but a proof where none belongs.
        (edited(10, 10, |r| r.proof.push([0; 32])), Then::Status(422)),
        // None of it moved the witness.
        (log.body(0, 1), Then::Conflict(10)),
    ])
    .await;
}

#[tokio::test]
async fn a_proof_from_old_size_zero_is_422_and_size_zero_needs_the_empty_root() {
    let w = Witness::fresh().await;
    let log = Log::main();
    let mut with_proof = AddCheckpoint::parse(&log.body(0, 8)).unwrap();
    with_proof.proof = prove_consistency(&log.leaves, 4, 8).unwrap();
    assert_status(&w.post(with_proof.to_body()).await, 422);

    let sign = |root: Hash| {
        let text = Checkpoint::new(ORIGIN, 0, root).to_text();
        from_zero(Log::signed(&text, &log.signer))
    };
    w.finish([
        (sign([7; 32]), Then::Status(422)),
        (sign(empty_root()), Then::Status(200)),
        (log.body(0, 3), Then::Status(200)),
    ])
    .await;
}

#[tokio::test]
async fn unknown_origin_is_404() {
    let w = Witness::fresh().await;
    let other = Log::new("other.example/log", 3, 10, 0);
    w.finish([(other.body(0, 5), Then::Status(404))]).await;
}

#[tokio::test]
async fn missing_or_bad_log_signature_is_403() {
    let w = Witness::fresh().await;
    let log = Log::main();
    let text = log.text(5);
    // Signed by another key with the log's name: ignored, so no trusted signature.
    let stranger = Log::new(ORIGIN, 4, 10, 0);
    let by_stranger = Log::signed(&text, &stranger.signer);
    // The log's key name and ID, but a signature over other text.
    let mut other_text = Note::new(text.clone()).unwrap();
    other_text.add_signature(log.signer.sign(&log.text(6)).unwrap());
    // A valid signature next to a bad one from the same key is still malformed.
    let mut valid_and_bad = Note::parse(&log.note(5)).unwrap();
    valid_and_bad.add_signature(log.signer.sign(&log.text(6)).unwrap());
    // The text changed after signing.
    let changed = String::from_utf8(log.note(5))
        .unwrap()
        .replacen("\n5\n", "\n6\n", 1);
    let refused = [
        by_stranger,
        other_text.to_bytes(),
        valid_and_bad.to_bytes(),
        changed.into_bytes(),
    ]
    .map(|checkpoint| (from_zero(checkpoint), Then::Status(403)));
    // Then the real checkpoint is cosigned: none of them moved the witness.
    let cosigned = (log.body(0, 5), Then::Status(200));
    w.finish(refused.into_iter().chain([cosigned])).await;
}

#[tokio::test]
async fn malformed_bodies_and_old_above_size_are_400() {
    let w = Witness::fresh().await;
    let log = Log::main();
    let note = log.note(5);
    let with = |head: &[u8]| {
        let mut b = head.to_vec();
        b.extend_from_slice(&note);
        b
    };
    let mut too_many = b"old 0\n".to_vec();
    for _ in 0..64 {
        too_many.extend_from_slice(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
    }
    too_many.extend_from_slice(b"\n");
    for body in [
        Vec::new(),
        b"old 0\n".to_vec(),
        b"\xff\xfe\n\n".to_vec(),
        with(b"old 01\n\n"),
        with(b"old -1\n\n"),
        with(b"new 0\n\n"),
        with(b"old 0 \n\n"),
        with(b"old 0\nnot base64\n\n"),
        with(b"old 0\nAAAA\n\n"),
        with(&too_many),
        b"old 0\n\nnot a note\n".to_vec(),
        b"old 0\n\nexample.com/log\n5\nAAAA\n\n\xe2\x80\x94 example.com/log AAAAAAA=\n".to_vec(),
        // A signed note whose text is no checkpoint.
        from_zero(Log::signed("example.com/log\nfive\n", &log.signer)),
        // A note with no signature lines.
        with(b"old 0\n\n")[..b"old 0\n\n".len() + log.text(5).len() + 1].to_vec(),
    ] {
        let a = w.post(body.clone()).await;
        assert_status(&a, 400);
        assert!(!a.body.is_empty());
    }
    // Old size above the checkpoint's size.
    let mut reversed = AddCheckpoint::parse(&log.body(0, 5)).unwrap();
    reversed.old_size = 9;
    assert_status(&w.post(reversed.to_body()).await, 400);
    // Nothing was cosigned.
    w.finish([(log.body(0, 5), Then::Status(200))]).await;
}

#[tokio::test]
async fn oversized_bodies_and_wrong_methods_are_refused() {
    let w = Witness::fresh().await;
    let mut huge = Log::main().body(0, 5);
    huge.extend(std::iter::repeat_n(b'A', sotto_witness::DEFAULT_BODY_LIMIT));
    assert_status(&w.post(huge).await, 413);
    let (status, _) = w.get("add-checkpoint").await;
    assert_eq!(status, 405);
    w.stop().await;
}

#[tokio::test]
async fn the_monitoring_endpoint_serves_the_latest_cosigned_checkpoint() {
    let w = Witness::fresh().await;
    let log = Log::main();
    let path = Witness::checkpoint_path(ORIGIN);
    assert_eq!(w.get(&path).await.0, 404);
    assert_status(&w.post(log.body(0, 4)).await, 200);
    let a = w.post(log.body(4, 9)).await;
    let ts = check_cosigned(&log.note(9), &a);

    let (status, body) = w.get(&path).await;
    assert_eq!(status, 200);
    let served = Note::parse(&body).unwrap();
    assert_eq!(served.text(), log.text(9));
    let got = served
        .verify(&[log.signer.verifier(), witness_signer().verifier()])
        .unwrap();
    assert_eq!(
        got.len(),
        2,
        "the log's signature and the witness's cosignature"
    );
    assert_eq!(got[1].timestamp, Some(ts));
    for bad in [
        origin_hash(ORIGIN).to_uppercase(),
        origin_hash("other.example/log"),
        "checkpoint".to_string(),
    ] {
        assert_eq!(w.get(&format!("{bad}/checkpoint")).await.0, 404);
    }
    w.stop().await;
}

#[tokio::test]
async fn the_state_survives_a_restart() {
    let (_dir, state) = state_file();
    let log = Log::main();

    let w = Witness::start(&state).await;
    w.finish([
        (log.body(0, 5), Then::Status(200)),
        (log.body(5, 20), Then::Status(200)),
    ])
    .await;

    let w = Witness::start(&state).await;
    w.submit([
        (log.body(0, 5), Then::Conflict(20)),
        (log.body(5, 20), Then::Conflict(20)),
        (Log::fork().body(20, 20), Then::Status(422)),
    ])
    .await;
    let (status, body) = w.get(&Witness::checkpoint_path(ORIGIN)).await;
    assert_eq!(status, 200);
    assert_eq!(Note::parse(&body).unwrap().text(), log.text(20));
    check_cosigned(&log.note(30), &w.post(log.body(20, 30)).await);
    w.stop().await;

    let w = Witness::start(&state).await;
    w.finish([(log.body(20, 40), Then::Conflict(30))]).await;
}

#[tokio::test]
async fn a_corrupt_state_file_refuses_to_start() {
    let (_dir, state) = state_file();
    let log = Log::main();
    let w = Witness::start(&state).await;
    w.finish([(log.body(0, 5), Then::Status(200))]).await;
    let good = std::fs::read_to_string(&state).unwrap();

    for bad in [
        String::new(),
        "garbage".to_string(),
        good[..good.len() - 10].to_string(),
        good.replace("\"size\": 5", "\"size\": 2"),
    ] {
        std::fs::write(&state, &bad).unwrap();
        let err = WitnessService::open(config(&state)).unwrap_err();
        assert!(
            matches!(err, ServeError::Store(StoreError::Corrupt { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("refusing to start"), "{err}");
        // The file is left as it was, for the operator to look at.
        assert_eq!(std::fs::read_to_string(&state).unwrap(), bad);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert!(sotto_witness::serve(listener, config(&state))
            .await
            .is_err());
    }
    std::fs::write(&state, &good).unwrap();
    let w = Witness::start(&state).await;
    w.finish([(log.body(0, 2), Then::Conflict(5))]).await;
}

#[tokio::test]
async fn a_second_witness_on_the_same_state_is_refused() {
    let (_dir, state) = state_file();
    let w = Witness::start(&state).await;
    let err = WitnessService::open(config(&state)).unwrap_err();
    assert!(
        matches!(err, ServeError::Store(StoreError::Locked(_))),
        "{err}"
    );
    w.stop().await;
    // Released once the first one stopped.
    Witness::start(&state).await.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_never_roll_back() {
    let w = Witness::fresh().await;
    let log = std::sync::Arc::new(Log::main());
    assert_status(&w.post(log.body(0, 1)).await, 200);
    let mut current = 1u64;
    for round in 0..20u64 {
        // Sizes N and N+K (and N+2K), each sent several times, all from the current size.
        let k = round % 3 + 1;
        let sizes = [current + k, current + 2 * k, current + 3 * k];
        let mut tasks = Vec::new();
        for i in 0..12 {
            let (url, log) = (w.url.clone(), log.clone());
            let size = sizes[i % 3];
            tasks.push(tokio::spawn(async move {
                (size, post(&url, log.body(current, size)).await)
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            let (size, a) = t.await.unwrap();
            match a.status {
                200 => won.push(size),
                409 => assert!(parse_size_body(&a.body).unwrap() > current),
                s => panic!("unexpected {s}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "exactly one of the racing requests is cosigned"
        );
        // The witness is at the winner's size, never at a loser's smaller one.
        assert_conflict(&w.post(log.body(0, 1)).await, won[0]);
        current = won[0];
    }
    w.stop().await;
}
