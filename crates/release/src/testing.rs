//! Deployment fixtures for the tests of this crate and of its users (feature `testing`): a
//! deployment's log, witness and release keys made from a seed, the trust file pinning them,
//! statements signed by chosen keys, and the files a transparency log serves, built in memory
//! with the real note, checkpoint, cosignature and tile formats. Tests forge a log or a release
//! by passing other keys, times or entries to the same builders.
//!
//! Never in a production build: the keys are derived from public seeds. Panics on the
//! failures a fixture cannot have (a seed that makes no key, an entry too large for a bundle).

use std::collections::BTreeMap;

use sotto_tlog::merkle::{leaf_hash, root};
use sotto_tlog::note::{Note, Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use sotto_tlog::tile::{all_entry_bundles, encode_bundle, TILE_WIDTH};
use sotto_tlog::Checkpoint;

use crate::manifest::Statement;
use crate::sync::{LogError, LogState, LogSync, LogView};
use crate::trust::{LogPin, Quorum, Trust, TrustFile, TRUST_FORMAT};

/// What a log serves, by path below its prefix (`checkpoint`, `tile/entries/…`).
pub type LogFiles = BTreeMap<String, Vec<u8>>;

/// The keys of one deployment: its log key, three witnesses and three release keys.
pub struct Keys {
    pub log: Signer,
    pub witnesses: Vec<Signer>,
    pub release: Vec<Signer>,
}

impl Keys {
    /// The keys of a log named `origin`; other seeds make other keys with the same names, so
    /// a test can forge a signature that names a pinned key.
    pub fn new(origin: &str, seed: u8) -> Self {
        let signers = |name: &str, kind: u8, offset: u8| -> Vec<Signer> {
            (0..3u8)
                .map(|i| {
                    Signer::from_seed(
                        &format!("{name}{i}.example"),
                        kind,
                        &[seed.wrapping_add(offset + i); 32],
                    )
                    .expect("a key from a seed")
                })
                .collect()
        };
        Keys {
            log: Signer::from_seed(origin, TYPE_ED25519, &[seed; 32]).expect("a key from a seed"),
            witnesses: signers("witness", TYPE_COSIGNATURE_V1, 10),
            release: signers("release", TYPE_ED25519, 20),
        }
    }

    /// The trust file pinning these keys: two of the witnesses must cosign within the hour,
    /// two of the release keys must sign.
    pub fn trust_file(&self, dev: bool) -> TrustFile {
        let vkeys = |keys: &[Signer]| keys.iter().map(|k| k.verifier().to_vkey()).collect();
        TrustFile {
            format: TRUST_FORMAT.into(),
            dev,
            log: LogPin {
                origin: self.log.name().into(),
                vkey: self.log.verifier().to_vkey(),
            },
            witnesses: Quorum {
                quorum: 2,
                keys: vkeys(&self.witnesses),
            },
            release_keys: Quorum {
                quorum: 2,
                keys: vkeys(&self.release),
            },
            max_cosignature_age_secs: 3600,
        }
    }

    /// [`Keys::trust_file`] as the client holds it.
    pub fn trust(&self, dev: bool) -> Trust {
        Trust::from_file(self.trust_file(dev)).expect("the fixture's trust file is valid")
    }

    /// Every witness cosigning at `at`, for [`log_files`].
    pub fn cosigned_at(&self, at: u64) -> Vec<(&Signer, u64)> {
        self.witnesses.iter().map(|w| (w, at)).collect()
    }

    /// The files this deployment's log serves for `entries`, cosigned by every witness at `at`.
    pub fn log_files(&self, entries: &[Vec<u8>], at: u64) -> LogFiles {
        log_files(entries, &self.log, &self.cosigned_at(at))
    }
}

/// `statement` as a log entry: a signed note carrying a signature by each of `by`.
pub fn signed(statement: &Statement, by: &[&Signer]) -> Vec<u8> {
    let text = statement.to_text().expect("the statement serializes");
    let mut note = Note::new(text.clone()).expect("a statement is note text");
    for s in by {
        note.add_signature(s.sign(&text).expect("sign"));
    }
    note.to_bytes()
}

/// The files a log of `entries` serves: its checkpoint signed by `log` and cosigned by each
/// witness at the time given with it, and its entry bundles.
pub fn log_files(entries: &[Vec<u8>], log: &Signer, cosigs: &[(&Signer, u64)]) -> LogFiles {
    let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    let text = Checkpoint::new(log.name(), entries.len() as u64, root(&leaves)).to_text();
    let mut note = Note::new(text.clone()).expect("a checkpoint is note text");
    note.add_signature(log.sign(&text).expect("sign"));
    for (w, t) in cosigs {
        note.add_signature(w.cosign(&text, *t).expect("cosign"));
    }
    let mut files = BTreeMap::new();
    files.insert("checkpoint".to_string(), note.to_bytes());
    for tile in all_entry_bundles(entries.len() as u64) {
        let start = (tile.index * TILE_WIDTH) as usize;
        let bundle = encode_bundle(&entries[start..start + usize::from(tile.width)])
            .expect("the fixture's entries fit a bundle");
        files.insert(tile.path(), bundle);
    }
    files
}

/// Runs a client's log check to the end at `now`, fetching from `files` (a missing file reads
/// as empty, as a 404 would).
pub fn sync(
    trust: &Trust,
    prior: Option<LogState>,
    now: u64,
    files: &LogFiles,
) -> Result<(LogView, LogState), LogError> {
    let mut s = LogSync::new(trust, prior, now)?;
    loop {
        let wanted = s.wanted();
        if wanted.is_empty() {
            return s.finish();
        }
        for path in wanted {
            s.give(&path, files.get(&path).map_or(&[][..], Vec::as_slice))?;
        }
    }
}
