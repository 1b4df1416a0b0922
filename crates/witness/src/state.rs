//! What the witness remembers, per log: the latest checkpoint it cosigned (size, root, time,
//! and the note itself for the monitoring endpoint), and its JSON encoding. Pure: bytes in,
//! bytes out; [`crate::store`] puts them on disk.
//!
//! Trust: the state file is the operator's, but a disk can be corrupted and a file edited by
//! hand, and silently starting from an empty state would let any log roll this witness back.
//! So decoding is strict: unknown fields, a record whose size or root disagrees with its own
//! checkpoint note, or anything unparsable is an error, never a reset.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sotto_tlog::note::Note;
use sotto_tlog::{Checkpoint, Hash};

/// The `format` field of the state file.
pub const STATE_FORMAT: &str = "sotto-witness-state/v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state is not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("the state's format is {0:?}, not {STATE_FORMAT:?}")]
    Format(String),
    #[error("the state's record of {origin:?} is inconsistent: {reason}")]
    Record {
        origin: String,
        reason: &'static str,
    },
    #[error("refusing to roll {origin:?} back from size {from} to {to}")]
    Rollback { origin: String, from: u64, to: u64 },
}

/// The latest checkpoint the witness cosigned for one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub size: u64,
    pub root: Hash,
    /// The time of the latest cosignature (POSIX seconds).
    pub timestamp: u64,
    /// The checkpoint note as served to monitors: the log's verified signature(s) and the
    /// witness's latest cosignature.
    pub checkpoint: Vec<u8>,
}

/// Every log's latest cosigned checkpoint, by origin. Records of logs no longer configured
/// are kept, so that configuring a log again does not reset it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WitnessState {
    logs: BTreeMap<String, LogRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: String,
    logs: BTreeMap<String, RecordV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordV1 {
    size: u64,
    root: String,
    timestamp: u64,
    checkpoint: String,
}

impl WitnessState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, origin: &str) -> Option<&LogRecord> {
        self.logs.get(origin)
    }

    /// The latest cosigned size of `origin` (0 when never cosigned).
    pub fn latest_size(&self, origin: &str) -> u64 {
        self.logs.get(origin).map_or(0, |r| r.size)
    }

    pub fn records(&self) -> impl Iterator<Item = (&str, &LogRecord)> {
        self.logs.iter().map(|(o, r)| (o.as_str(), r))
    }

    /// Records a newly cosigned checkpoint. A smaller size than the one recorded is refused:
    /// [`crate::Witness::add_checkpoint`] never produces one, and this is the last guard.
    pub fn apply(&mut self, origin: &str, record: LogRecord) -> Result<(), StateError> {
        if let Some(old) = self.logs.get(origin) {
            if record.size < old.size {
                return Err(StateError::Rollback {
                    origin: origin.to_string(),
                    from: old.size,
                    to: record.size,
                });
            }
        }
        self.logs.insert(origin.to_string(), record);
        Ok(())
    }

    pub fn to_json(&self) -> Result<Vec<u8>, StateError> {
        let file = FileV1 {
            format: STATE_FORMAT.to_string(),
            logs: self
                .logs
                .iter()
                .map(|(o, r)| {
                    (
                        o.clone(),
                        RecordV1 {
                            size: r.size,
                            root: B64.encode(r.root),
                            timestamp: r.timestamp,
                            checkpoint: String::from_utf8_lossy(&r.checkpoint).into_owned(),
                        },
                    )
                })
                .collect(),
        };
        let mut out =
            serde_json::to_vec_pretty(&file).map_err(|e| StateError::Json(e.to_string()))?;
        out.push(b'\n');
        Ok(out)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, StateError> {
        let file: FileV1 =
            serde_json::from_slice(bytes).map_err(|e| StateError::Json(e.to_string()))?;
        if file.format != STATE_FORMAT {
            return Err(StateError::Format(file.format));
        }
        let mut logs = BTreeMap::new();
        for (origin, r) in file.logs {
            let bad = |reason| StateError::Record {
                origin: origin.clone(),
                reason,
            };
            let root: Hash = B64
                .decode(&r.root)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or_else(|| bad("the root is not 32 bytes of base64"))?;
            let note = Note::parse(r.checkpoint.as_bytes())
                .map_err(|_| bad("the checkpoint is not a signed note"))?;
            let cp = Checkpoint::parse(note.text())
                .map_err(|_| bad("the checkpoint note's text is not a checkpoint"))?;
            if cp.origin != origin {
                return Err(bad("the checkpoint is for another origin"));
            }
            if cp.size != r.size || cp.root != root {
                return Err(bad("the size or root differs from the checkpoint's"));
            }
            if r.timestamp == 0 {
                return Err(bad("the timestamp is 0"));
            }
            logs.insert(
                origin,
                LogRecord {
                    size: r.size,
                    root,
                    timestamp: r.timestamp,
                    checkpoint: r.checkpoint.into_bytes(),
                },
            );
        }
        Ok(WitnessState { logs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_tlog::merkle::empty_root;
    use sotto_tlog::note::{Signer, TYPE_ED25519};

    fn record(origin: &str, size: u64, root: Hash) -> LogRecord {
        let log = Signer::from_seed(origin, TYPE_ED25519, &[1; 32]).unwrap();
        let text = Checkpoint::new(origin, size, root).to_text();
        let mut n = Note::new(text.clone()).unwrap();
        n.add_signature(log.sign(&text).unwrap());
        LogRecord {
            size,
            root,
            timestamp: 1_700_000_000,
            checkpoint: n.to_bytes(),
        }
    }

    #[test]
    fn round_trip_and_rollback_guard() {
        let mut s = WitnessState::new();
        s.apply("a.example/log", record("a.example/log", 5, [3; 32]))
            .unwrap();
        s.apply("b.example/log", record("b.example/log", 0, empty_root()))
            .unwrap();
        let back = WitnessState::from_json(&s.to_json().unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.latest_size("a.example/log"), 5);
        assert_eq!(back.latest_size("c.example/log"), 0);
        assert!(matches!(
            s.apply("a.example/log", record("a.example/log", 4, [3; 32])),
            Err(StateError::Rollback { from: 5, to: 4, .. })
        ));
        assert!(
            WitnessState::from_json(&WitnessState::new().to_json().unwrap())
                .unwrap()
                .records()
                .next()
                .is_none()
        );
    }

    #[test]
    fn corrupt_states_are_refused() {
        let mut s = WitnessState::new();
        s.apply("a.example/log", record("a.example/log", 5, [3; 32]))
            .unwrap();
        let good = String::from_utf8(s.to_json().unwrap()).unwrap();
        let root = B64.encode([3; 32]);
        for bad in [
            String::new(),
            "{".to_string(),
            good[..good.len() / 2].to_string(),
            good.replace(STATE_FORMAT, "sotto-witness-state/v0"),
            good.replace("\"size\": 5", "\"size\": 4"),
            good.replace("\"size\": 5", "\"size\": -1"),
            good.replace(&root, "AAAA"),
            good.replace("\"timestamp\"", "\"extra\": 1, \"timestamp\""),
            good.replace("\"a.example/log\":", "\"b.example/log\":"),
            good.replace("1700000000", "0"),
            good.replace("a.example/log\\n5", "a.example/log\\n05"),
        ] {
            assert!(WitnessState::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
