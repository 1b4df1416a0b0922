//! The witness's decision, pure: given what it cosigned before, an `add-checkpoint` request and
//! the time, either cosign (and say what to remember) or refuse with the HTTP status
//! c2sp.org/tlog-witness prescribes.
//!
//! No I/O and no clock: the caller loads and persists [`WitnessState`] and passes `now`. The
//! caller must persist the returned record *before* it answers, and must run this function and
//! that persist under one lock, or two requests racing from the same old size could both be
//! cosigned and the later write roll the witness back.
//!
//! Trust: the request is the log's (or anyone's) and may be hostile in every byte; nothing in
//! it is believed until a signature by the key configured for its origin verified. The
//! configuration ([`KnownLogs`], the witness's [`Signer`]) and the state are the operator's.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use sotto_tlog::merkle::{empty_root, verify_consistency, ProofError};
use sotto_tlog::note::{
    Note, NoteError, SignatureLine, Signer, Verifier, TYPE_COSIGNATURE_V1, TYPE_ED25519,
};
use sotto_tlog::witness::AddCheckpoint;
use sotto_tlog::{Checkpoint, Hash};

use crate::state::{LogRecord, WitnessState};

/// A configuration mistake: a log key or a witness key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("bad log key {vkey:?}: {reason}")]
    BadVkey { vkey: String, reason: NoteError },
    #[error("the log key {name} is not an Ed25519 note key (type 0x01)")]
    NotANoteKey { name: String },
    #[error("the witness key {name} is not a cosignature/v1 key (type 0x04)")]
    NotACosignatureKey { name: String },
    #[error("no log to witness: give at least one log key")]
    NoLogs,
}

/// The logs this witness cosigns for: each origin with the Ed25519 note key(s) whose
/// signature on a checkpoint it requires. A key's name must be the origin it signs for, so a
/// log is named by its key, and a checkpoint for another origin is never accepted on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownLogs {
    logs: BTreeMap<String, Vec<Verifier>>,
}

impl KnownLogs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a log's key (a second key for an origin is accepted too: a checkpoint signed by
    /// either verifies, as during a key rotation). The same key twice is kept once.
    pub fn add(&mut self, verifier: Verifier) -> Result<(), ConfigError> {
        if verifier.kind() != TYPE_ED25519 {
            return Err(ConfigError::NotANoteKey {
                name: verifier.name().to_string(),
            });
        }
        let keys = self.logs.entry(verifier.name().to_string()).or_default();
        if !keys.contains(&verifier) {
            keys.push(verifier);
        }
        Ok(())
    }

    /// Parses and adds a vkey (`name+hexid+base64(0x01||key)`).
    pub fn add_vkey(&mut self, vkey: &str) -> Result<(), ConfigError> {
        let verifier = Verifier::parse(vkey).map_err(|reason| ConfigError::BadVkey {
            vkey: vkey.trim().to_string(),
            reason,
        })?;
        self.add(verifier)
    }

    /// A list of vkeys.
    pub fn from_vkeys<S: AsRef<str>>(
        vkeys: impl IntoIterator<Item = S>,
    ) -> Result<Self, ConfigError> {
        let mut logs = Self::new();
        for v in vkeys {
            logs.add_vkey(v.as_ref())?;
        }
        Ok(logs)
    }

    /// A file of vkeys, one a line; blank lines and lines starting with `#` are skipped.
    pub fn parse_list(text: &str) -> Result<Self, ConfigError> {
        Self::from_vkeys(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#')),
        )
    }

    /// Merges another list into this one.
    pub fn extend(&mut self, other: KnownLogs) {
        for (origin, keys) in other.logs {
            let mine = self.logs.entry(origin).or_default();
            for k in keys {
                if !mine.contains(&k) {
                    mine.push(k);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.logs.len()
    }

    /// The keys trusted for `origin`, if it is a known log.
    pub fn keys(&self, origin: &str) -> Option<&[Verifier]> {
        self.logs.get(origin).map(Vec::as_slice)
    }

    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }
}

/// Why the witness will not cosign, with the status the spec gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the body is not an `add-checkpoint` request carrying a checkpoint note.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 404: no key is configured for this origin.
    #[error("unknown log {origin:?}")]
    UnknownOrigin { origin: String },
    /// 403: no signature line by a key trusted for the origin.
    #[error("the checkpoint is not signed by a key of {origin}")]
    NotSigned { origin: String },
    /// 403: a line by a trusted key does not verify (the note is malformed).
    #[error("the signature by {name} on the checkpoint of {origin} does not verify")]
    BadSignature { origin: String, name: String },
    /// 400: the old size is above the checkpoint's size.
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldAboveSize { old: u64, size: u64 },
    /// 409: the old size is not the size this witness last cosigned (answered with `latest`).
    #[error("old size {old} is not the latest cosigned size {latest} of {origin}")]
    Conflict {
        origin: String,
        old: u64,
        latest: u64,
    },
    /// 422: a checkpoint of size 0 whose root is not the empty tree's.
    #[error("a checkpoint of size 0 must carry the root of the empty tree")]
    EmptyTreeRoot,
    /// 422: a consistency proof from the empty tree (none is needed, so none is allowed).
    #[error("old size 0 needs an empty consistency proof, got {hashes} hashes")]
    ProofFromEmpty { hashes: usize },
    /// 422: the same size as the cosigned checkpoint with another root: the log forked.
    #[error(
        "checkpoint of {origin} at size {size} has a different root than the one cosigned: a fork"
    )]
    RootMismatch { origin: String, size: u64 },
    /// 422: the consistency proof does not verify: the log forked, or the proof is wrong.
    #[error(
        "the consistency proof of {origin} from size {old} to {size} does not verify: {reason}"
    )]
    Inconsistent {
        origin: String,
        old: u64,
        size: u64,
        reason: ProofError,
    },
    /// 500: the witness cannot make a valid cosignature now (its clock reads the epoch or
    /// beyond 2^63-1 seconds).
    #[error("the witness cannot cosign: {0}")]
    Unavailable(&'static str),
}

impl Refusal {
    /// The HTTP status c2sp.org/tlog-witness prescribes.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldAboveSize { .. } => 400,
            Refusal::NotSigned { .. } | Refusal::BadSignature { .. } => 403,
            Refusal::UnknownOrigin { .. } => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::EmptyTreeRoot
            | Refusal::ProofFromEmpty { .. }
            | Refusal::RootMismatch { .. }
            | Refusal::Inconsistent { .. } => 422,
            Refusal::Unavailable(_) => 500,
        }
    }

    /// For a 409: the size the witness last cosigned, the answer's body.
    pub fn latest_size(&self) -> Option<u64> {
        match self {
            Refusal::Conflict { latest, .. } => Some(*latest),
            _ => None,
        }
    }

    /// A short machine-readable name of the outcome, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::UnknownOrigin { .. } => "unknown_origin",
            Refusal::NotSigned { .. } => "not_signed",
            Refusal::BadSignature { .. } => "bad_signature",
            Refusal::OldAboveSize { .. } => "old_above_size",
            Refusal::Conflict { .. } => "conflict",
            Refusal::EmptyTreeRoot => "empty_tree_root",
            Refusal::ProofFromEmpty { .. } => "proof_from_empty",
            Refusal::RootMismatch { .. } => "root_mismatch",
            Refusal::Inconsistent { .. } => "inconsistent",
            Refusal::Unavailable(_) => "unavailable",
        }
    }
}

/// A cosigned checkpoint: what to persist, and what to answer once it is persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub origin: String,
    /// The size the request said the witness had before (its `old` line).
    pub old_size: u64,
    /// The witness's new record for `origin`, to persist before answering.
    pub record: LogRecord,
    /// The cosignature line(s) to answer with.
    pub cosignatures: Vec<SignatureLine>,
}

impl Accepted {
    /// The 200 answer's body: one signature line per cosignature.
    pub fn body(&self) -> String {
        self.cosignatures
            .iter()
            .map(SignatureLine::to_line)
            .collect()
    }
}

/// A witness: its cosigning key and the logs it cosigns for.
#[derive(Debug)]
pub struct Witness {
    signer: Signer,
    logs: KnownLogs,
}

/// The lowercase hex SHA-256 of an origin: its name in `GET <origin hash>/checkpoint`.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

impl Witness {
    /// `signer` must be a cosignature/v1 key (type 0x04); at least one log must be known.
    pub fn new(signer: Signer, logs: KnownLogs) -> Result<Self, ConfigError> {
        if signer.verifier().kind() != TYPE_COSIGNATURE_V1 {
            return Err(ConfigError::NotACosignatureKey {
                name: signer.name().to_string(),
            });
        }
        if logs.is_empty() {
            return Err(ConfigError::NoLogs);
        }
        Ok(Witness { signer, logs })
    }

    /// The witness's public key: what log clients pin.
    pub fn verifier(&self) -> Verifier {
        self.signer.verifier()
    }

    pub fn name(&self) -> &str {
        self.signer.name()
    }

    pub fn logs(&self) -> &KnownLogs {
        &self.logs
    }

    /// Parses an `add-checkpoint` body and decides on it (see [`Witness::add_checkpoint`]).
    pub fn add_checkpoint_body(
        &self,
        state: &WitnessState,
        body: &[u8],
        now: u64,
    ) -> Result<Accepted, Refusal> {
        let request = AddCheckpoint::parse(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
        self.add_checkpoint(state, &request, now)
    }

    /// The c2sp.org/tlog-witness `add-checkpoint` checks, in the spec's order: the note and
    /// checkpoint parse (400), the origin is known (404), a trusted key signed it and no
    /// trusted key's line fails (403), old ≤ size (400), old is the latest cosigned size
    /// (409), a size-0 checkpoint has the empty root (422), no proof from old size 0 (422),
    /// equal sizes have equal roots (422), and the consistency proof verifies (422). Then the
    /// checkpoint is cosigned as of `now` (POSIX seconds, which must not be 0).
    ///
    /// Re-submitting the latest cosigned checkpoint (old = size, no proof, same root) is
    /// accepted and cosigned afresh: logs do that to keep their cosignatures recent.
    pub fn add_checkpoint(
        &self,
        state: &WitnessState,
        request: &AddCheckpoint,
        now: u64,
    ) -> Result<Accepted, Refusal> {
        let note = Note::parse(&request.checkpoint)
            .map_err(|e| Refusal::Malformed(format!("the checkpoint is not a signed note: {e}")))?;
        let checkpoint =
            Checkpoint::parse(note.text()).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let origin = checkpoint.origin.clone();
        let keys = self
            .logs
            .keys(&origin)
            .ok_or_else(|| Refusal::UnknownOrigin {
                origin: origin.clone(),
            })?;
        let verified = note.verify(keys).map_err(|e| match e {
            NoteError::BadSignature { name } => Refusal::BadSignature {
                origin: origin.clone(),
                name,
            },
            other => Refusal::Malformed(other.to_string()),
        })?;
        if verified.is_empty() {
            return Err(Refusal::NotSigned { origin });
        }
        let (old, size) = (request.old_size, checkpoint.size);
        if old > size {
            return Err(Refusal::OldAboveSize { old, size });
        }
        let previous = state.get(&origin);
        let latest = previous.map_or(0, |r| r.size);
        if old != latest {
            return Err(Refusal::Conflict {
                origin,
                old,
                latest,
            });
        }
        if size == 0 && checkpoint.root != empty_root() {
            return Err(Refusal::EmptyTreeRoot);
        }
        if old == 0 && !request.proof.is_empty() {
            return Err(Refusal::ProofFromEmpty {
                hashes: request.proof.len(),
            });
        }
        let old_root: Hash = previous.map_or_else(empty_root, |r| r.root);
        if old == size && old_root != checkpoint.root {
            return Err(Refusal::RootMismatch { origin, size });
        }
        verify_consistency(old, size, &old_root, &checkpoint.root, &request.proof).map_err(
            |reason| Refusal::Inconsistent {
                origin: origin.clone(),
                old,
                size,
                reason,
            },
        )?;

        if now == 0 {
            return Err(Refusal::Unavailable("the clock reads the epoch"));
        }
        let cosignature = self
            .signer
            .cosign(note.text(), now)
            .map_err(|_| Refusal::Unavailable("the clock is beyond 2^63-1 seconds"))?;

        // What the monitoring endpoint serves: the checkpoint with the log signatures this
        // witness verified and its own cosignature (unverified lines are dropped).
        let mut kept = Note::new(note.text())
            .map_err(|e| Refusal::Malformed(format!("the checkpoint text: {e}")))?;
        for line in note.signatures() {
            if keys
                .iter()
                .any(|k| k.name() == line.name && k.key_id() == line.key_id)
            {
                kept.add_signature(line.clone());
            }
        }
        kept.add_signature(cosignature.clone());

        Ok(Accepted {
            origin,
            old_size: old,
            record: LogRecord {
                size,
                root: checkpoint.root,
                timestamp: now,
                checkpoint: kept.to_bytes(),
            },
            cosignatures: vec![cosignature],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_tlog::merkle::{leaf_hash, prove_consistency, root};

    const ORIGIN: &str = "example.com/log";
    const NOW: u64 = 1_700_000_000;

    fn log_signer() -> Signer {
        Signer::from_seed(ORIGIN, TYPE_ED25519, &[1; 32]).unwrap()
    }

    fn witness() -> Witness {
        let w = Signer::from_seed("witness.example/w1", TYPE_COSIGNATURE_V1, &[2; 32]).unwrap();
        let mut logs = KnownLogs::new();
        logs.add(log_signer().verifier()).unwrap();
        Witness::new(w, logs).unwrap()
    }

    fn leaves(n: usize, salt: u8) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&[salt, i as u8])).collect()
    }

    fn note(size: u64, leaves: &[Hash]) -> Vec<u8> {
        let text = Checkpoint::new(ORIGIN, size, root(&leaves[..size as usize])).to_text();
        let mut n = Note::new(text.clone()).unwrap();
        n.add_signature(log_signer().sign(&text).unwrap());
        n.to_bytes()
    }

    fn request(old: u64, size: u64, leaves: &[Hash]) -> AddCheckpoint {
        AddCheckpoint {
            old_size: old,
            proof: prove_consistency(leaves, old, size).unwrap(),
            checkpoint: note(size, leaves),
        }
    }

    fn apply(state: &mut WitnessState, a: &Accepted) {
        state.apply(&a.origin, a.record.clone()).unwrap();
    }

    /// A witness that has cosigned the first `size` leaves of a ten-leaf log, its leaves and
    /// its state.
    fn cosigned(size: u64) -> (Witness, Vec<Hash>, WitnessState) {
        let w = witness();
        let l = leaves(10, 0);
        let mut s = WitnessState::new();
        let a = w.add_checkpoint(&s, &request(0, size, &l), NOW).unwrap();
        assert_eq!(a.record.size, size);
        apply(&mut s, &a);
        (w, l, s)
    }

    #[test]
    fn grows_and_refreshes() {
        let (w, l, mut s) = cosigned(3);
        let a = w.add_checkpoint(&s, &request(3, 7, &l), NOW + 1).unwrap();
        apply(&mut s, &a);
        // The same checkpoint again is cosigned afresh.
        let again = w.add_checkpoint(&s, &request(7, 7, &l), NOW + 60).unwrap();
        assert_ne!(again.cosignatures, a.cosignatures);
        let mut n = Note::parse(&again.record.checkpoint).unwrap();
        let got = n.verify(&[w.verifier(), log_signer().verifier()]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].timestamp, Some(NOW + 60));
        n.remove_signatures_by(w.name(), w.verifier().key_id());
        assert_eq!(n.to_bytes(), note(7, &l));
    }

    #[test]
    fn refusals_carry_the_spec_status() {
        let (w, l, s) = cosigned(4);
        let fork = leaves(10, 1);
        let status = |r: &AddCheckpoint| w.add_checkpoint(&s, r, NOW).unwrap_err().status();

        assert_eq!(status(&request(0, 2, &l)), 409);
        assert_eq!(
            w.add_checkpoint(&s, &request(2, 6, &l), NOW)
                .unwrap_err()
                .latest_size(),
            Some(4)
        );
        let mut forked = request(4, 6, &fork);
        assert_eq!(status(&forked), 422);
        forked.proof.clear();
        assert_eq!(status(&forked), 422);
        assert_eq!(status(&request(4, 4, &fork)), 422);
        let mut r = request(4, 6, &l);
        r.old_size = 7;
        assert_eq!(status(&r), 400);
        let mut r = request(4, 6, &l);
        r.proof.push([0; 32]);
        assert_eq!(status(&r), 422);

        // From the empty state: a proof is not allowed, a size-0 checkpoint needs the empty root.
        let empty = WitnessState::new();
        let mut r = request(0, 4, &l);
        r.proof = vec![[0; 32]];
        assert_eq!(
            w.add_checkpoint(&empty, &r, NOW).unwrap_err(),
            Refusal::ProofFromEmpty { hashes: 1 }
        );
        let text = Checkpoint::new(ORIGIN, 0, [9; 32]).to_text();
        let mut n = Note::new(text.clone()).unwrap();
        n.add_signature(log_signer().sign(&text).unwrap());
        let r = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: n.to_bytes(),
        };
        assert_eq!(
            w.add_checkpoint(&empty, &r, NOW).unwrap_err(),
            Refusal::EmptyTreeRoot
        );
        assert!(w.add_checkpoint(&empty, &request(0, 0, &l), NOW).is_ok());

        // Signatures: unknown key (ignored, so unsigned), tampered, unknown origin.
        let stranger = Signer::from_seed(ORIGIN, TYPE_ED25519, &[7; 32]).unwrap();
        let text = Checkpoint::new(ORIGIN, 6, root(&l[..6])).to_text();
        let mut n = Note::new(text.clone()).unwrap();
        n.add_signature(stranger.sign(&text).unwrap());
        let mut r = request(4, 6, &l);
        r.checkpoint = n.to_bytes();
        assert_eq!(
            w.add_checkpoint(&s, &r, NOW).unwrap_err(),
            Refusal::NotSigned {
                origin: ORIGIN.into()
            }
        );
        let mut r = request(4, 6, &l);
        let at = r.checkpoint.len() - 10;
        r.checkpoint[at] ^= 1;
        assert_eq!(status(&r), 403);
        let other = Signer::from_seed("other.example/log", TYPE_ED25519, &[3; 32]).unwrap();
        let text = Checkpoint::new("other.example/log", 1, [0; 32]).to_text();
        let mut n = Note::new(text.clone()).unwrap();
        n.add_signature(other.sign(&text).unwrap());
        let r = AddCheckpoint {
            old_size: 0,
            proof: vec![],
            checkpoint: n.to_bytes(),
        };
        assert_eq!(status(&r), 404);
        assert_eq!(
            w.add_checkpoint_body(&s, b"old 4\n\nnot a note\n", NOW)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            w.add_checkpoint(&s, &request(4, 6, &l), 0)
                .unwrap_err()
                .status(),
            500
        );
    }

    #[test]
    fn configuration_is_checked() {
        let log = log_signer();
        let w = Signer::from_seed("witness.example/w1", TYPE_COSIGNATURE_V1, &[2; 32]).unwrap();
        let mut logs = KnownLogs::new();
        assert_eq!(
            logs.add(w.verifier()),
            Err(ConfigError::NotANoteKey {
                name: "witness.example/w1".into()
            })
        );
        let list = format!(
            "# logs\n\n{}\n  {}  \n",
            log.verifier().to_vkey(),
            log.verifier().to_vkey()
        );
        let logs = KnownLogs::parse_list(&list).unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs.keys(ORIGIN).unwrap().len(), 1);
        assert!(KnownLogs::parse_list("nonsense").is_err());
        assert!(matches!(
            Witness::new(
                Signer::from_seed("x", TYPE_ED25519, &[2; 32]).unwrap(),
                logs.clone()
            ),
            Err(ConfigError::NotACosignatureKey { .. })
        ));
        assert_eq!(
            Witness::new(w, KnownLogs::new()).unwrap_err(),
            ConfigError::NoLogs
        );
        assert_eq!(
            origin_hash("example.com/log"),
            hex::encode(Sha256::digest(b"example.com/log"))
        );
    }

    /// Mutated requests never panic, and are never cosigned unless they are the real one.
    #[test]
    fn mutations_never_panic() {
        let (w, l, s) = cosigned(4);
        let good = request(4, 9, &l).to_body();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let mut body = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % body.len();
                match next() % 3 {
                    0 => body[i] = next() as u8,
                    1 => {
                        body.remove(i);
                    }
                    _ => body.truncate(i),
                }
                if body.is_empty() {
                    break;
                }
            }
            if let Ok(a) = w.add_checkpoint_body(&s, &body, NOW) {
                // Only a cosmetically different encoding of the same statement can pass.
                assert_eq!(a.record.size, 9);
                assert_eq!(a.record.root, root(&l[..9]));
            }
        }
    }
}
