//! The log directory: open (and check), append, and replace the checkpoint's cosignatures.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sotto_tlog::merkle::{leaf_hash, prove_consistency, root, Hash, ProofError};
use sotto_tlog::note::{Note, NoteError, SignatureLine, Signer, Verifier};
use sotto_tlog::tile::{
    all_entry_bundles, decode_bundle, encode_bundle, entry_bundles, hash_tile_bytes, hash_tiles,
    Tile, TileError, MAX_ENTRY, TILE_WIDTH,
};
use sotto_tlog::Checkpoint;

/// The checkpoint's file name in the log directory.
pub const CHECKPOINT: &str = "checkpoint";
const LOCK: &str = ".lock";
const TMP_PREFIX: &str = ".tmp-";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} holds no log (no checkpoint)")]
    Missing(PathBuf),
    #[error("{0} already holds a log")]
    Exists(PathBuf),
    #[error("another process is appending to the log in {0}")]
    Locked(PathBuf),
    #[error("the checkpoint in {path} is unusable: {why}")]
    Checkpoint { path: PathBuf, why: String },
    #[error("the log in {path} is for {found:?}, not {want:?}")]
    Origin {
        path: PathBuf,
        found: String,
        want: String,
    },
    #[error("the log in {0} does not match its signed checkpoint: {1}")]
    Corrupt(PathBuf, String),
    #[error("an entry of {0} bytes is larger than a log entry may be ({MAX_ENTRY})")]
    EntryTooLarge(usize),
    #[error("{0}")]
    Note(#[from] NoteError),
    #[error("{0}")]
    Tile(#[from] TileError),
    #[error("{0}")]
    Proof(#[from] ProofError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Makes `dir` (below `root`) and its parents exist with their entries synced into their
/// parents, once per process: `durable` holds the directories this process has made durable.
///
/// A directory that already exists is synced into its parent all the same: an appender killed
/// between creating it and syncing its parent leaves it existing but not durable, and the
/// tiles a later append commits in it would then hang off an entry a power loss can drop.
fn create_dirs(root: &Path, dir: &Path, durable: &mut HashSet<PathBuf>) -> Result<(), LogError> {
    if dir == root || durable.contains(dir) {
        return Ok(());
    }
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    create_dirs(root, parent, durable)?;
    fs::create_dir(dir).or_else(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Ok(())
        } else {
            Err(io(dir)(e))
        }
    })?;
    sync_dir(parent)?;
    durable.insert(dir.to_path_buf());
    Ok(())
}

/// Creates the log directory and its missing ancestors, and syncs each of them, and the log
/// directory even when it already existed, into its parent (see [`create_dirs`]).
fn create_root(dir: &Path) -> Result<(), LogError> {
    let mut created = vec![dir];
    let mut d = dir;
    while let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
        if parent.is_dir() {
            break;
        }
        created.push(parent);
        d = parent;
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    for d in created.into_iter().rev() {
        match d.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => sync_dir(parent)?,
            None => sync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

/// Writes `bytes` to `root/rel` atomically: temporary file, sync, rename, sync directory.
fn write_atomic(
    root: &Path,
    rel: &str,
    bytes: &[u8],
    durable: &mut HashSet<PathBuf>,
) -> Result<(), LogError> {
    let path = root.join(rel);
    let dir = path.parent().unwrap_or(root).to_path_buf();
    create_dirs(root, &dir, durable)?;
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(&dir)
}

/// Removes temporary files a killed appender left behind.
fn remove_leftovers(dir: &Path) {
    let Ok(read) = fs::read_dir(dir) else { return };
    for e in read.flatten() {
        let p = e.path();
        if p.is_dir() {
            remove_leftovers(&p);
        } else if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = fs::remove_file(p);
        }
    }
}

/// An open log, locked for appending.
pub struct Log {
    dir: PathBuf,
    origin: String,
    entries: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
    checkpoint: Note,
    /// Directories below `dir` this process has synced into their parents.
    durable_dirs: HashSet<PathBuf>,
    _lock: File,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("origin", &self.origin)
            .field("size", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn lock(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
    }
}

impl Log {
    /// Creates an empty log signed by `signer` (whose name is the log's origin) in `dir`.
    pub fn create(dir: &Path, signer: &Signer) -> Result<Log, LogError> {
        create_root(dir)?;
        let lock = lock(dir)?;
        if dir.join(CHECKPOINT).exists() {
            return Err(LogError::Exists(dir.to_path_buf()));
        }
        let mut log = Log {
            dir: dir.to_path_buf(),
            origin: signer.name().to_string(),
            entries: Vec::new(),
            leaves: Vec::new(),
            checkpoint: Note::new(format!("{}\n", signer.name()))?,
            durable_dirs: HashSet::new(),
            _lock: lock,
        };
        log.write_checkpoint(signer)?;
        Ok(log)
    }

    /// Opens the log in `dir`, checking it against the log key `verifier` before trusting a byte
    /// of it.
    pub fn open(dir: &Path, verifier: &Verifier) -> Result<Log, LogError> {
        if !dir.is_dir() {
            return Err(LogError::Missing(dir.to_path_buf()));
        }
        let lock = lock(dir)?;
        remove_leftovers(dir);
        // An appender killed after renaming its checkpoint into place but before syncing the
        // directory leaves a checkpoint that is visible (and may be served, cosigned or
        // extended) but not yet durable; make it durable before using it. (Its tiles were
        // synced before it was renamed.)
        sync_dir(dir)?;
        let cp_path = dir.join(CHECKPOINT);
        let bytes = match fs::read(&cp_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LogError::Missing(dir.to_path_buf()))
            }
            Err(e) => return Err(io(&cp_path)(e)),
        };
        let bad = |why: String| LogError::Checkpoint {
            path: cp_path.clone(),
            why,
        };
        let note = Note::parse(&bytes).map_err(|e| bad(e.to_string()))?;
        if note
            .verify(std::slice::from_ref(verifier))
            .map_err(|e| bad(e.to_string()))?
            .is_empty()
        {
            return Err(bad("not signed by the log key".into()));
        }
        let cp = Checkpoint::parse(note.text()).map_err(|e| bad(e.to_string()))?;
        if cp.origin != verifier.name() {
            return Err(LogError::Origin {
                path: dir.to_path_buf(),
                found: cp.origin,
                want: verifier.name().to_string(),
            });
        }
        let corrupt = |why: String| LogError::Corrupt(dir.to_path_buf(), why);
        let mut entries = Vec::new();
        for tile in all_entry_bundles(cp.size) {
            let path = dir.join(tile.path());
            let body = fs::read(&path).map_err(io(&path))?;
            for e in decode_bundle(&tile, &body).map_err(|e| corrupt(e.to_string()))? {
                entries.push(e.to_vec());
            }
        }
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        if root(&leaves) != cp.root {
            return Err(corrupt("its entries do not hash to the signed root".into()));
        }
        for tile in hash_tiles(cp.size) {
            let path = dir.join(tile.path());
            let body = fs::read(&path).map_err(io(&path))?;
            if body != hash_tile_bytes(&leaves, &tile)? {
                return Err(corrupt(format!("{} holds other hashes", tile.path())));
            }
        }
        Ok(Log {
            dir: dir.to_path_buf(),
            origin: cp.origin,
            entries,
            leaves,
            checkpoint: note,
            durable_dirs: HashSet::new(),
            _lock: lock,
        })
    }

    /// Opens the log in `dir`, or creates it when there is none.
    pub fn open_or_create(dir: &Path, signer: &Signer) -> Result<Log, LogError> {
        match Log::open(dir, &signer.verifier()) {
            Err(LogError::Missing(_)) => Log::create(dir, signer),
            other => other,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn entries(&self) -> &[Vec<u8>] {
        &self.entries
    }

    /// The checkpoint as served, with its cosignatures.
    pub fn checkpoint(&self) -> &Note {
        &self.checkpoint
    }

    /// The RFC 6962 consistency proof from the tree of `old` entries to the current one.
    pub fn consistency_proof(&self, old: u64) -> Result<Vec<Hash>, LogError> {
        Ok(prove_consistency(&self.leaves, old, self.size())?)
    }

    /// Appends entries and signs the new checkpoint; returns once all of it is on disk. The
    /// new checkpoint carries no cosignatures until [`Log::set_cosignatures`].
    pub fn append(&mut self, signer: &Signer, new: &[Vec<u8>]) -> Result<Checkpoint, LogError> {
        if signer.name() != self.origin {
            return Err(LogError::Origin {
                path: self.dir.clone(),
                found: self.origin.clone(),
                want: signer.name().to_string(),
            });
        }
        if let Some(e) = new.iter().find(|e| e.len() > MAX_ENTRY) {
            return Err(LogError::EntryTooLarge(e.len()));
        }
        let old_size = self.size();
        let mut entries = self.entries.clone();
        entries.extend(new.iter().cloned());
        let mut leaves = self.leaves.clone();
        leaves.extend(new.iter().map(|e| leaf_hash(e)));
        let new_size = entries.len() as u64;
        for tile in entry_bundles(old_size, new_size) {
            let start = (tile.index * TILE_WIDTH) as usize;
            let bundle = encode_bundle(&entries[start..start + usize::from(tile.width)])?;
            write_atomic(&self.dir, &tile.path(), &bundle, &mut self.durable_dirs)?;
        }
        let before: BTreeSet<Tile> = hash_tiles(old_size).into_iter().collect();
        for tile in hash_tiles(new_size) {
            if !before.contains(&tile) {
                let bytes = hash_tile_bytes(&leaves, &tile)?;
                write_atomic(&self.dir, &tile.path(), &bytes, &mut self.durable_dirs)?;
            }
        }
        self.entries = entries;
        self.leaves = leaves;
        self.write_checkpoint(signer)
    }

    fn write_checkpoint(&mut self, signer: &Signer) -> Result<Checkpoint, LogError> {
        let cp = Checkpoint::new(&self.origin, self.size(), root(&self.leaves));
        let text = cp.to_text();
        let mut note = Note::new(text.clone())?;
        note.add_signature(signer.sign(&text)?);
        self.store_checkpoint(note)?;
        Ok(cp)
    }

    /// Makes `note` the served checkpoint, durably.
    fn store_checkpoint(&mut self, note: Note) -> Result<(), LogError> {
        write_atomic(
            &self.dir,
            CHECKPOINT,
            &note.to_bytes(),
            &mut self.durable_dirs,
        )?;
        self.checkpoint = note;
        Ok(())
    }

    /// Sets the checkpoint's cosignatures: for each of `witnesses`, the newest one that verifies
    /// on the current checkpoint among `lines` and those it already carries (a witness that did
    /// not answer this time keeps its earlier cosignature). A witness's lines that do not
    /// verify are dropped; signatures by other keys (the log's own) are kept as they are.
    /// Returns how many of `witnesses` it now carries.
    pub fn set_cosignatures(
        &mut self,
        witnesses: &[Verifier],
        lines: &[SignatureLine],
    ) -> Result<usize, LogError> {
        let text = self.checkpoint.text().to_string();
        let mut note = Note::new(text)?;
        for s in self.checkpoint.signatures() {
            if !witnesses
                .iter()
                .any(|w| w.name() == s.name && w.key_id() == s.key_id)
            {
                note.add_signature(s.clone());
            }
        }
        let mut kept = 0;
        for w in witnesses {
            let mut best: Option<(u64, &SignatureLine)> = None;
            for line in lines
                .iter()
                .chain(self.checkpoint.signatures())
                .filter(|l| l.name == w.name() && l.key_id == w.key_id())
            {
                let mut probe = Note::new(note.text().to_string())?;
                probe.add_signature(line.clone());
                if let Ok(v) = probe.verify(std::slice::from_ref(w)) {
                    let ts = v.first().and_then(|v| v.timestamp).unwrap_or(0);
                    if best.is_none_or(|(t, _)| ts > t) {
                        best = Some((ts, line));
                    }
                }
            }
            if let Some((_, line)) = best {
                note.add_signature(line.clone());
                kept += 1;
            }
        }
        self.store_checkpoint(note)?;
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_tlog::note::{TYPE_COSIGNATURE_V1, TYPE_ED25519};

    fn signer() -> Signer {
        Signer::from_seed("example.com/log", TYPE_ED25519, &[7; 32]).unwrap()
    }

    #[test]
    fn append_reopen_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let s = signer();
        let mut log = Log::create(dir.path(), &s).unwrap();
        assert!(matches!(
            Log::open(dir.path(), &s.verifier()),
            Err(LogError::Locked(_))
        ));
        for batch in [1usize, 300, 3] {
            let new: Vec<Vec<u8>> = (0..batch)
                .map(|i| format!("entry {} {i}", log.size()).into_bytes())
                .collect();
            log.append(&s, &new).unwrap();
        }
        assert_eq!(log.size(), 304);
        drop(log);
        let log = Log::open(dir.path(), &s.verifier()).unwrap();
        assert_eq!(log.size(), 304);
        assert_eq!(log.entries()[5], b"entry 1 4");
        drop(log);
        assert!(dir.path().join("tile/0/000").exists());
        assert!(dir.path().join("tile/0/001.p/48").exists());
        assert!(dir.path().join("tile/1/000.p/1").exists());
        assert!(dir.path().join("tile/entries/001.p/48").exists());
        let other = Signer::from_seed("example.com/log", TYPE_ED25519, &[8; 32]).unwrap();
        assert!(matches!(
            Log::open(dir.path(), &other.verifier()),
            Err(LogError::Checkpoint { .. })
        ));
        let bundle = dir.path().join("tile/entries/001.p/48");
        let mut b = fs::read(&bundle).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        fs::write(&bundle, b).unwrap();
        assert!(matches!(
            Log::open(dir.path(), &s.verifier()),
            Err(LogError::Corrupt(..))
        ));
    }

    #[test]
    fn cosignatures_replace_older_ones_and_bad_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = signer();
        let w = Signer::from_seed("w.example", TYPE_COSIGNATURE_V1, &[9; 32]).unwrap();
        let mut log = Log::create(dir.path(), &s).unwrap();
        log.append(&s, &[b"a".to_vec()]).unwrap();
        let text = log.checkpoint().text().to_string();
        let old = w.cosign(&text, 100).unwrap();
        let new = w.cosign(&text, 200).unwrap();
        let forged = w.cosign("other\n", 300).unwrap();
        assert_eq!(log.set_cosignatures(&[w.verifier()], &[old]).unwrap(), 1);
        assert_eq!(
            log.set_cosignatures(&[w.verifier()], &[new.clone(), forged])
                .unwrap(),
            1
        );
        let served = Note::parse(&fs::read(dir.path().join(CHECKPOINT)).unwrap()).unwrap();
        assert_eq!(served.signatures().len(), 2);
        assert_eq!(served.signatures()[1], new);
        let v = served.verify(&[s.verifier(), w.verifier()]).unwrap();
        assert_eq!(v.len(), 2);
    }
}
