//! The client's check of the transparency log, sans I/O: it says which files of the log it
//! needs, takes their bytes, and returns a verified view of every entry, or the reason the log
//! cannot be trusted.
//!
//! 1. `checkpoint`: signed by the pinned log key, for the pinned origin, cosigned by a quorum of
//!    the pinned witnesses with cosignatures no older than the configured age;
//! 2. compared with the tree this client saw last time ([`LogState`], which the caller keeps):
//!    never smaller (a rollback), never the same size with another root (a split view);
//! 3. the entry bundles from the last size on: the entries this client already holds and the
//!    new ones must hash to exactly the signed root. That one recomputation proves every entry
//!    included (a stronger check than one audit path: it also proves no revocation is hidden)
//!    and the new tree consistent with the old one.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sotto_tlog::merkle::{leaf_hash, CompactRange, Hash};
use sotto_tlog::note::{Note, NoteError};
use sotto_tlog::tile::{decode_bundle, entry_bundles, Tile, TileError, TILE_WIDTH};
use sotto_tlog::Checkpoint;

use crate::trust::{Trust, MAX_CLOCK_SKEW_SECS};

/// The checkpoint's path below the log's prefix.
pub const CHECKPOINT_PATH: &str = "checkpoint";
/// Refuse logs with more entries than a client is willing to hold.
pub const MAX_ENTRIES: u64 = 1 << 20;
const STATE_FORMAT: &str = "sotto-log-state/v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("the log's checkpoint is malformed: {0}")]
    Checkpoint(String),
    #[error("this server's log is {got:?}, not the log this client trusts ({want:?}): a client set up for another deployment")]
    OtherLog { got: String, want: String },
    #[error("the checkpoint is not signed by the pinned log key")]
    LogSignature,
    #[error(
        "the checkpoint carries {have} valid witness cosignatures, fewer than the quorum of {need}"
    )]
    TooFewCosignatures { have: usize, need: usize },
    #[error("only {fresh} of the witness cosignatures are fresh (the quorum is {need}; the newest of the others is {age_secs} s old, the limit {max_secs} s)")]
    StaleCosignatures {
        fresh: usize,
        need: usize,
        age_secs: u64,
        max_secs: u64,
    },
    #[error(
        "the log was rolled back: its tree has size {now}, this client saw size {seen} before"
    )]
    RolledBack { seen: u64, now: u64 },
    #[error("split view: the log shows a tree of size {size} with another root than the one this client saw before")]
    SplitView { size: u64 },
    #[error("the log's tree of size {now} does not extend the tree of size {seen} this client saw before (a split view or a rewritten log)")]
    Inconsistent { seen: u64, now: u64 },
    #[error("the log's entries do not hash to its signed root (an inclusion proof that does not verify)")]
    EntriesDoNotMatchRoot,
    #[error("the log holds {0} entries, more than this client will read")]
    TooLarge(u64),
    #[error("{0}")]
    Tile(#[from] TileError),
    #[error("the log served {0}, which was not asked for")]
    Unexpected(String),
    #[error("the log check is not finished: {0} is still needed")]
    Incomplete(String),
    #[error("the stored log state is unusable: {0}")]
    State(String),
}

/// What this client remembers of the log between runs (its own file or IndexedDB record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogState {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Every entry, verified against `root` when it was stored.
    pub entries: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    origin: String,
    size: u64,
    root: String,
    entries: Vec<String>,
}

impl LogState {
    pub fn to_json(&self) -> String {
        let file = StateFile {
            format: STATE_FORMAT.into(),
            origin: self.origin.clone(),
            size: self.size,
            root: B64.encode(self.root),
            entries: self.entries.iter().map(|e| B64.encode(e)).collect(),
        };
        serde_json::to_string(&file).unwrap_or_default()
    }

    /// Parses a stored state and checks it is self-consistent (its entries hash to its root).
    pub fn from_json(json: &str) -> Result<Self, LogError> {
        let bad = |why: &str| LogError::State(why.to_string());
        let f: StateFile = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
        if f.format != STATE_FORMAT {
            return Err(bad("unknown format"));
        }
        let root: Hash = B64
            .decode(&f.root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("bad root"))?;
        let entries = f
            .entries
            .iter()
            .map(|e| B64.decode(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("bad entry"))?;
        let state = LogState {
            origin: f.origin,
            size: f.size,
            root,
            entries,
        };
        if state.entries.len() as u64 != state.size || state.range().root() != state.root {
            return Err(bad("its entries do not hash to its root"));
        }
        Ok(state)
    }

    fn range(&self) -> CompactRange {
        let mut r = CompactRange::new();
        for e in &self.entries {
            r.push(leaf_hash(e));
        }
        r
    }
}

/// A witness cosignature that counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cosigner {
    pub name: String,
    pub timestamp: u64,
}

/// The verified log: its checkpoint, the witnesses that vouched for it, and all its entries.
#[derive(Clone, Debug)]
pub struct LogView {
    pub checkpoint: Checkpoint,
    pub cosigners: Vec<Cosigner>,
    pub entries: Vec<Vec<u8>>,
    /// The size this client had seen before, if any.
    pub previous_size: Option<u64>,
}

enum Phase {
    Checkpoint,
    Entries {
        checkpoint: Checkpoint,
        cosigners: Vec<Cosigner>,
        wanted: Vec<Tile>,
        got: Vec<(Tile, Vec<Vec<u8>>)>,
    },
    Failed,
}

/// One check of the log, from its checkpoint to its entries.
pub struct LogSync {
    trust: Trust,
    prior: Option<LogState>,
    now: u64,
    phase: Phase,
}

impl LogSync {
    /// `prior` is what this client stored after its last check of this log (`None` the first
    /// time); `now` is the current time in POSIX seconds.
    pub fn new(trust: &Trust, prior: Option<LogState>, now: u64) -> Result<Self, LogError> {
        if let Some(p) = &prior {
            if p.origin != trust.origin() {
                return Err(LogError::State(format!(
                    "it is for the log {}, not {}",
                    p.origin,
                    trust.origin()
                )));
            }
        }
        Ok(LogSync {
            trust: trust.clone(),
            prior,
            now,
            phase: Phase::Checkpoint,
        })
    }

    /// The paths (below the log's prefix) still needed; all may be fetched at once. Empty
    /// when [`LogSync::finish`] can be called.
    pub fn wanted(&self) -> Vec<String> {
        match &self.phase {
            Phase::Checkpoint => vec![CHECKPOINT_PATH.to_string()],
            Phase::Entries { wanted, got, .. } => wanted
                .iter()
                .filter(|t| !got.iter().any(|(g, _)| g == *t))
                .map(Tile::path)
                .collect(),
            Phase::Failed => Vec::new(),
        }
    }

    /// Hands over the body of one fetched path.
    pub fn give(&mut self, path: &str, body: &[u8]) -> Result<(), LogError> {
        let result = self.take(path, body);
        if result.is_err() {
            self.phase = Phase::Failed;
        }
        result
    }

    fn take(&mut self, path: &str, body: &[u8]) -> Result<(), LogError> {
        match &mut self.phase {
            Phase::Checkpoint if path == CHECKPOINT_PATH => {
                let (checkpoint, cosigners) = self.check_checkpoint(body)?;
                let from = self.prior.as_ref().map_or(0, |p| p.size);
                if let Some(p) = &self.prior {
                    if checkpoint.size < p.size {
                        return Err(LogError::RolledBack {
                            seen: p.size,
                            now: checkpoint.size,
                        });
                    }
                    if checkpoint.size == p.size && checkpoint.root != p.root {
                        return Err(LogError::SplitView { size: p.size });
                    }
                }
                if checkpoint.size > MAX_ENTRIES {
                    return Err(LogError::TooLarge(checkpoint.size));
                }
                self.phase = Phase::Entries {
                    wanted: entry_bundles(from, checkpoint.size),
                    checkpoint,
                    cosigners,
                    got: Vec::new(),
                };
                Ok(())
            }
            Phase::Entries { wanted, got, .. } => {
                let tile = Tile::parse_path(path)?;
                if !wanted.contains(&tile) || got.iter().any(|(g, _)| *g == tile) {
                    return Err(LogError::Unexpected(path.to_string()));
                }
                let entries = decode_bundle(&tile, body)?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect();
                got.push((tile, entries));
                Ok(())
            }
            _ => Err(LogError::Unexpected(path.to_string())),
        }
    }

    fn check_checkpoint(&self, body: &[u8]) -> Result<(Checkpoint, Vec<Cosigner>), LogError> {
        let note = Note::parse(body).map_err(|e| LogError::Checkpoint(e.to_string()))?;
        let checkpoint =
            Checkpoint::parse(note.text()).map_err(|e| LogError::Checkpoint(e.to_string()))?;
        if checkpoint.origin != self.trust.origin() {
            return Err(LogError::OtherLog {
                got: checkpoint.origin,
                want: self.trust.origin().to_string(),
            });
        }
        match note.verify(std::slice::from_ref(&self.trust.log)) {
            Ok(v) if !v.is_empty() => {}
            Ok(_) | Err(NoteError::BadSignature { .. }) => return Err(LogError::LogSignature),
            Err(e) => return Err(LogError::Checkpoint(e.to_string())),
        }
        let verified = note
            .verify(&self.trust.witnesses)
            .map_err(|e| LogError::Checkpoint(e.to_string()))?;
        let need = self.trust.file.witnesses.quorum;
        if verified.len() < need {
            return Err(LogError::TooFewCosignatures {
                have: verified.len(),
                need,
            });
        }
        let max = self.trust.file.max_cosignature_age_secs;
        let (fresh, stale): (Vec<_>, Vec<_>) = verified.into_iter().partition(|v| {
            v.timestamp.is_some_and(|t| {
                t <= self.now.saturating_add(MAX_CLOCK_SKEW_SECS)
                    && self.now.saturating_sub(t) <= max
            })
        });
        if fresh.len() < need {
            let age_secs = stale
                .iter()
                .filter_map(|v| v.timestamp)
                .map(|t| self.now.saturating_sub(t))
                .min()
                .unwrap_or(0);
            return Err(LogError::StaleCosignatures {
                fresh: fresh.len(),
                need,
                age_secs,
                max_secs: max,
            });
        }
        let cosigners = fresh
            .into_iter()
            .map(|v| Cosigner {
                name: v.name,
                timestamp: v.timestamp.unwrap_or(0),
            })
            .collect();
        Ok((checkpoint, cosigners))
    }

    /// Verifies the entries against the signed root; returns the view and the state to store.
    pub fn finish(self) -> Result<(LogView, LogState), LogError> {
        if let Some(p) = self.wanted().first() {
            return Err(LogError::Incomplete(p.clone()));
        }
        let Phase::Entries {
            checkpoint,
            cosigners,
            mut got,
            ..
        } = self.phase
        else {
            return Err(LogError::Incomplete(CHECKPOINT_PATH.to_string()));
        };
        got.sort_by_key(|(t, _)| t.index);
        let previous_size = self.prior.as_ref().map(|p| p.size);
        let mut entries = self.prior.map(|p| p.entries).unwrap_or_default();
        let mut range = CompactRange::new();
        for e in &entries {
            range.push(leaf_hash(e));
        }
        for (tile, bundle) in got {
            let first = tile.index * TILE_WIDTH;
            for (i, e) in bundle.into_iter().enumerate() {
                if first + i as u64 >= range.size() {
                    range.push(leaf_hash(&e));
                    entries.push(e);
                }
            }
        }
        if range.size() != checkpoint.size || range.root() != checkpoint.root {
            return Err(match previous_size {
                Some(seen) if seen > 0 => LogError::Inconsistent {
                    seen,
                    now: checkpoint.size,
                },
                _ => LogError::EntriesDoNotMatchRoot,
            });
        }
        let state = LogState {
            origin: checkpoint.origin.clone(),
            size: checkpoint.size,
            root: checkpoint.root,
            entries: entries.clone(),
        };
        Ok((
            LogView {
                checkpoint,
                cosigners,
                entries,
                previous_size,
            },
            state,
        ))
    }
}
