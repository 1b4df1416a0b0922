//! sotto-log's integration tests (the crate's one test binary):
//!
//! - interop: logs that sotto-log wrote, at sizes that fill and half-fill tiles at levels 0, 1
//!   and 2, cosigned by two witnesses, are accepted by an implementation we did not write: the
//!   Go program `tests/c2sp-check/main.go` on golang.org/x/mod's sumdb/note and sumdb/tlog;
//! - the Go checker refuses what it must: a flipped entry-bundle or hash-tile byte, a
//!   checkpoint signed by another key, cosignatures by keys it was not given, a forged
//!   cosignature, one witness counted twice;
//! - crash safety: the `append_loop` example, SIGKILLed at random instants again and again on
//!   the same directory, always leaves a log that opens, holds every entry it reported
//!   appended (and the right bytes for every entry), grew append-only, and that Go accepts.
//!
//! Go and golang.org/x/mod are required (Debian: golang-go golang-golang-x-mod-dev); the tests
//! fail, never skip, without them.

mod common;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{build_example, log_signer, witness, Expect, GoChecker};
use sotto_log::{Log, LogError};
use sotto_tlog::merkle::verify_consistency;
use sotto_tlog::note::{Note, Signer, Verifier};
use sotto_tlog::tile::{hash_tiles, Tile, TileKind};
use sotto_tlog::Checkpoint;

const ORIGIN: &str = "example.com/sotto-test-log";

fn test_entry(i: u64) -> Vec<u8> {
    let mut e = format!("sotto test entry {i}|").into_bytes();
    e.extend(std::iter::repeat_n(
        b'0' + (i % 10) as u8,
        (i % 97) as usize,
    ));
    e
}

/// The Go checker, and the key of a log of [`ORIGIN`] made from `seed` with its vkey.
fn checked_log(seed: u8) -> (GoChecker, Signer, String) {
    let s = log_signer(ORIGIN, seed);
    let vkey = s.verifier().to_vkey();
    (GoChecker::build(), s, vkey)
}

/// Witnesses `witness.example/w1` to `wN`, the keys of seeds `base + 1` to `base + N`.
fn witnesses<const N: usize>(base: u8) -> [Signer; N] {
    std::array::from_fn(|i| {
        let n = i as u8 + 1;
        witness(&format!("witness.example/w{n}"), base + n)
    })
}

fn served(log: &Log) -> Checkpoint {
    Checkpoint::parse(log.checkpoint().text()).expect("the served checkpoint parses")
}

/// Has `witnesses` cosign the log's current checkpoint and hands their cosignatures to
/// `Log::set_cosignatures` with the witness keys the log is configured with; returns how many
/// it kept.
fn cosign(log: &mut Log, witnesses: &[&Signer], configured: &[Verifier]) -> usize {
    let text = log.checkpoint().text().to_string();
    let lines: Vec<_> = witnesses
        .iter()
        .map(|w| w.cosign(&text, 1_700_000_000 + log.size()).unwrap())
        .collect();
    log.set_cosignatures(configured, &lines).unwrap()
}

#[test]
fn go_reference_accepts_every_size_sotto_writes() {
    let (go, s, vkey) = checked_log(1);
    let [w1, w2] = witnesses(10);
    let ws = [w1.verifier(), w2.verifier()];
    let both = Expect {
        witnesses: ws.iter().map(Verifier::to_vkey).collect(),
        cosignatures: 2,
        ..Expect::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::create(dir.path(), &s).unwrap();
    let started = Instant::now();
    let mut checks = Duration::ZERO;

    // What Go accepts, and how long its checks take in all.
    let mut accept = |expect: Expect| {
        let t = Instant::now();
        let summary = go.accept(dir.path(), &vkey, &expect);
        checks += t.elapsed();
        eprintln!("{summary}");
        summary
    };

    // The empty tree (its root is SHA-256(""), not Go's all-zero convention).
    assert_eq!(cosign(&mut log, &[&w1, &w2], &ws), 2);
    accept(Expect {
        size: Some(0),
        ..both.clone()
    });

    // Level 0 partial and full tiles, level 1 partial (from 256) and full (65 536, where
    // level 2's first partial tile appears), level 0 partial tiles after full ones.
    for target in [
        1u64, 7, 255, 256, 257, 511, 512, 600, 40_000, 65_535, 65_536, 65_537,
    ] {
        while log.size() < target {
            let from = log.size();
            let to = target.min(from + 16_384);
            let new: Vec<Vec<u8>> = (from..to).map(test_entry).collect();
            log.append(&s, &new).unwrap();
        }
        assert_eq!(cosign(&mut log, &[&w1, &w2], &ws), 2);
        let summary = accept(Expect {
            size: Some(target),
            contains: Some(format!("sotto test entry {}|", target - 1)),
            ..both.clone()
        });
        assert!(
            summary.contains(&format!(" size={target} ")) && summary.contains("cosignatures=2/2")
        );
    }
    let levels: Vec<u8> = hash_tiles(log.size())
        .iter()
        .filter_map(|t| match t.kind {
            TileKind::Hashes { level } => Some(level),
            TileKind::Entries => None,
        })
        .collect();
    assert!(levels.contains(&2), "the largest tree should reach level 2");
    drop(log);
    // What Go accepted, sotto reads back.
    let log = Log::open(dir.path(), &s.verifier()).unwrap();
    assert_eq!(log.size(), 65_537);
    eprintln!(
        "Go checks of 13 sizes: {checks:.2?} (whole test without the Go build: {:.2?})",
        started.elapsed()
    );
}

/// A log of 300 entries (one full and one partial bundle and level-0 tile, a partial
/// level-1 tile), cosigned by two witnesses.
fn small_log(dir: &Path, s: &Signer, ws: &[&Signer]) -> Log {
    let mut log = Log::create(dir, s).unwrap();
    log.append(s, &(0..300).map(test_entry).collect::<Vec<_>>())
        .unwrap();
    let verifiers: Vec<Verifier> = ws.iter().map(|w| w.verifier()).collect();
    assert_eq!(cosign(&mut log, ws, &verifiers), ws.len());
    log
}

#[test]
fn go_reference_rejects_flipped_bytes_as_sotto_does() {
    let (go, s, vkey) = checked_log(2);
    let [w1, w2] = witnesses(20);
    let dir = tempfile::tempdir().unwrap();
    drop(small_log(dir.path(), &s, &[&w1, &w2]));
    let expect = Expect {
        witnesses: vec![w1.verifier().to_vkey(), w2.verifier().to_vkey()],
        cosignatures: 2,
        size: Some(300),
        ..Expect::default()
    };
    go.accept(dir.path(), &vkey, &expect);

    let bundle = |index, width| Tile {
        kind: TileKind::Entries,
        index,
        width,
    };
    let hashes = |level, index, width| Tile {
        kind: TileKind::Hashes { level },
        index,
        width,
    };
    // (file, how it is damaged, why Go refuses)
    type Damage = fn(&mut Vec<u8>);
    let cases: [(Tile, Damage, &str); 7] = [
        // the last byte of the last entry
        (
            bundle(1, 44),
            |b| *b.last_mut().unwrap() ^= 1,
            "entry 299 (tile/entries/001.p/44) does not hash to the level-0 tile's hash",
        ),
        // a byte inside entry 0 of the full bundle
        (
            bundle(0, 256),
            |b| b[5] ^= 1,
            "entry 0 (tile/entries/000) does not hash",
        ),
        // entry 0's length prefix: the entries no longer line up
        (
            bundle(0, 256),
            |b| b[0] ^= 1,
            "entry 0 (tile/entries/000) does not hash",
        ),
        // a byte more than the bundle's entries
        (
            bundle(1, 44),
            |b| b.push(0),
            "tile/entries/001.p/44: 1 bytes after its 44 entries",
        ),
        // level-0 hashes: the entries' record hashes no longer match
        (
            hashes(0, 1, 44),
            |b| b[40] ^= 1,
            "entry 257 (tile/entries/001.p/44) does not hash",
        ),
        (
            hashes(0, 0, 256),
            |b| *b.last_mut().unwrap() ^= 1,
            "entry 255 (tile/entries/000) does not hash",
        ),
        // the level-1 hash of entries 0..256, used for the root only
        (
            hashes(1, 0, 1),
            |b| b[0] ^= 1,
            "tlog.TreeHash over the hash tiles is",
        ),
    ];
    for (tile, damage, why) in cases {
        let path = dir.path().join(tile.path());
        let original = std::fs::read(&path).unwrap();
        let mut damaged = original.clone();
        damage(&mut damaged);
        std::fs::write(&path, damaged).unwrap();
        let out = go.reject(dir.path(), &vkey, &expect, why);
        eprintln!("{}: {out}", tile.path());
        assert!(
            matches!(
                Log::open(dir.path(), &s.verifier()),
                Err(LogError::Corrupt(..))
            ),
            "sotto-log should refuse the damaged {} too",
            tile.path()
        );
        std::fs::write(&path, original).unwrap();
        go.accept(dir.path(), &vkey, &expect);
    }

    // A checkpoint signed by another key with the same name.
    let other = log_signer(ORIGIN, 3);
    go.reject(
        dir.path(),
        &other.verifier().to_vkey(),
        &expect,
        "note.Open",
    );
    // A checkpoint whose text was changed under the log's signature.
    let cp_path = dir.path().join("checkpoint");
    let cp = std::fs::read_to_string(&cp_path).unwrap();
    std::fs::write(&cp_path, cp.replacen("\n300\n", "\n299\n", 1)).unwrap();
    go.reject(dir.path(), &vkey, &expect, "note.Open");
    std::fs::write(&cp_path, &cp).unwrap();
    // The options that pin the contents.
    let containing = |entry: &str| Expect {
        contains: Some(entry.into()),
        ..expect.clone()
    };
    let not_301 = Expect {
        size: Some(301),
        ..expect.clone()
    };
    go.reject(dir.path(), &vkey, &not_301, "not 301");
    let entry_300 = containing("sotto test entry 300|");
    go.reject(dir.path(), &vkey, &entry_300, "no entry contains");
    go.accept(dir.path(), &vkey, &containing("sotto test entry 299|"));
}

#[test]
fn go_reference_counts_only_the_witnesses_it_was_given() {
    let (go, s, vkey) = checked_log(4);
    let [w1, w2, w3] = witnesses(40);
    // Same name as w2, another key.
    let impostor = witness("witness.example/w2", 44);
    let given = |need| Expect {
        witnesses: vec![w1.verifier().to_vkey(), w2.verifier().to_vkey()],
        cosignatures: need,
        ..Expect::default()
    };

    // Cosigned by w1 and w3: w3 is not one of the given keys.
    let dir = tempfile::tempdir().unwrap();
    let mut log = small_log(dir.path(), &s, &[&w1, &w3]);
    go.reject(
        dir.path(),
        &vkey,
        &given(2),
        "1 of the given witnesses cosigned the checkpoint, 2 required",
    );
    go.accept(dir.path(), &vkey, &given(1));

    // Cosigned by w1 and by a key that has w2's name but not w2's key.
    assert_eq!(
        cosign(
            &mut log,
            &[&w1, &impostor],
            &[w1.verifier(), impostor.verifier()]
        ),
        2
    );
    go.reject(dir.path(), &vkey, &given(2), "1 of the given witnesses");

    // One witness twice (two timestamps) counts once.
    let text = log.checkpoint().text().to_string();
    assert_eq!(cosign(&mut log, &[&w1], &[w1.verifier()]), 1);
    let mut note = Note::parse(&log.checkpoint().to_bytes()).unwrap();
    note.add_signature(w1.cosign(&text, 1_600_000_000).unwrap());
    std::fs::write(dir.path().join("checkpoint"), note.to_bytes()).unwrap();
    go.reject(dir.path(), &vkey, &given(2), "1 of the given witnesses");
    go.accept(dir.path(), &vkey, &given(1));

    // Both given witnesses: accepted; then w2's cosignature forged (its Ed25519 signature
    // altered): a line by a known key that does not verify fails the whole check.
    assert_eq!(
        cosign(&mut log, &[&w1, &w2], &[w1.verifier(), w2.verifier()]),
        2
    );
    go.accept(dir.path(), &vkey, &given(2));
    // (set_cosignatures keeps lines by keys it was not given, so the checkpoint still carries
    // w3's and the impostor's too: pick each witness's line by its key ID.)
    let refused_with_altered_cosignature = |w: &Signer, byte: usize, bit: u8| {
        let mut note = Note::parse(&log.checkpoint().to_bytes()).unwrap();
        let mut line = note
            .signatures()
            .iter()
            .find(|l| l.key_id == w.key_id())
            .unwrap()
            .clone();
        note.remove_signatures_by(&line.name, line.key_id);
        line.signature[byte] ^= bit;
        note.add_signature(line);
        std::fs::write(dir.path().join("checkpoint"), note.to_bytes()).unwrap();
        let why = format!("cosignature by {}+", w.name());
        go.reject(dir.path(), &vkey, &given(1), &why);
    };
    refused_with_altered_cosignature(&w2, 20, 0x80);
    // A cosignature over another timestamp than the one it carries is a forgery too.
    refused_with_altered_cosignature(&w1, 7, 0x01);
}

/// The `append_loop` example's entry number `i` (a copy of its `entry`: the test must know
/// every entry's bytes without trusting the process it kills).
fn loop_entry(i: u64) -> Vec<u8> {
    let mut e = format!("entry {i}:").into_bytes();
    let len = (i.wrapping_mul(2_654_435_761) >> 8) % 1001;
    e.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len as usize));
    e
}

/// Whether an append was under way when the process died: temporary files, or entry bundles
/// beyond the checkpoint on disk, are left. (Before the log is opened, which removes the
/// former.)
fn interrupted_append(dir: &Path) -> bool {
    let note = Note::parse(&std::fs::read(dir.join("checkpoint")).unwrap()).unwrap();
    let size = Checkpoint::parse(note.text()).unwrap().size;
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.iter().any(|f| {
        f.rsplit('/').next().unwrap().starts_with(".tmp-")
            || Tile::parse_path(f).is_ok_and(|t| {
                t.kind == TileKind::Entries && t.index * 256 + u64::from(t.width) > size
            })
    })
}

#[test]
fn sigkill_during_appends_leaves_a_consistent_log() {
    const KILLS: u64 = 30;
    let go = GoChecker::build();
    let exe = build_example("append_loop");
    let seed = [0x5au8; 32];
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let origin = "example.com/append-loop";
    let verifier = common::log_signer(origin, 0x5a).verifier();
    let dir = tempfile::tempdir().unwrap();
    let random = RandomState::new();
    let started = Instant::now();
    let mut go_time = Duration::ZERO;
    let (mut size, mut root) = (0u64, None);
    let mut interrupted = 0;

    for kill in 0..KILLS {
        let delay = Duration::from_millis(random.hash_one(kill) % 150);
        let mut child = Command::new(&exe)
            .arg(dir.path())
            .arg(&seed_hex)
            .arg(origin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start append_loop");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        // Every other time, wait until the log is open so the kill lands among the appends;
        // otherwise it may land while the child opens (and cleans up) the log.
        if kill % 2 == 0 {
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("append_loop did not report opening the log");
            lines.push(line);
        }
        std::thread::sleep(delay);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
        }
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "append_loop ended by itself ({status}) on kill {kill}: {stderr}"
            );
        }

        // What the child said it had done.
        let mut reported = size;
        for line in &lines {
            if let Some(n) = line.strip_prefix("opened ") {
                assert_eq!(n.parse::<u64>().unwrap(), size, "kill {kill}: {line}");
            } else if let Some(n) = line.strip_prefix("appended ") {
                let n: u64 = n.parse().unwrap();
                assert!(n > reported, "kill {kill}: sizes must grow: {lines:?}");
                reported = n;
            } else {
                panic!("kill {kill}: unexpected output {line:?}");
            }
        }
        if interrupted_append(dir.path()) {
            interrupted += 1;
        }

        // What is on disk: opens, holds all that was reported durable and the right bytes,
        // and extends the previous tree.
        let log = Log::open(dir.path(), &verifier).unwrap_or_else(|e| {
            panic!("kill {kill} (after {delay:?}) left a log that does not open: {e}")
        });
        assert!(
            log.size() >= reported,
            "kill {kill}: append_loop reported {reported} entries durable, the log has {}",
            log.size()
        );
        for (i, e) in log.entries().iter().enumerate() {
            assert!(
                *e == loop_entry(i as u64),
                "kill {kill}: entry {i} is not what append_loop appended"
            );
        }
        let cp = served(&log);
        if let Some(old_root) = root {
            let proof = log.consistency_proof(size).unwrap();
            verify_consistency(size, cp.size, &old_root, &cp.root, &proof)
                .unwrap_or_else(|e| panic!("kill {kill}: the log is not an extension: {e}"));
        }
        drop(log);
        let t = Instant::now();
        let mut expect = Expect {
            size: Some(cp.size),
            ..Expect::default()
        };
        if cp.size > 0 {
            expect.contains = Some(format!("entry {}:", cp.size - 1));
        }
        go.accept(dir.path(), &verifier.to_vkey(), &expect);
        go_time += t.elapsed();
        (size, root) = (cp.size, Some(cp.root));
    }
    eprintln!(
        "{KILLS} SIGKILLs, {interrupted} of them in the middle of an append: the log grew to {size} \
         entries in {:.2?} (Go checks {go_time:.2?})",
        started.elapsed()
    );
    assert!(size > 0, "append_loop never appended anything");
    assert!(
        interrupted > 0,
        "no kill landed in the middle of an append: the test proved nothing"
    );
}
