//! The state file on disk: loaded strictly at startup, replaced atomically on every cosignature
//! (temporary file in the same directory, fsync, rename, fsync the directory), and guarded by
//! an exclusive lock on `<state>.lock` so that two witness processes never share one state:
//! each would check against its own memory, and one could roll the other back.
//!
//! Trust: the disk is the operator's, but may be corrupted; a state file that does not decode
//! is an error (never a silent reset, which would let a log roll the witness back). A missing
//! state file is a new witness and starts empty.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::state::{StateError, WitnessState};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the witness state {path} is corrupt ({source}); refusing to start rather than forget \
         what was cosigned: restore it from a backup"
    )]
    Corrupt { path: PathBuf, source: StateError },
    #[error("the witness state {0} is in use by another witness process")]
    Locked(PathBuf),
    #[error("cannot encode the witness state: {0}")]
    Encode(StateError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    parent(path).join(name)
}

/// An open, locked state file. The lock lasts as long as this value.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    _lock: File,
}

impl StateStore {
    /// Locks and loads the state at `path`; a missing file is created empty (and synced).
    pub fn open(path: &Path) -> Result<(StateStore, WitnessState), StoreError> {
        let lock_path = lock_path(path);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(path.to_path_buf()))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let store = StateStore {
            path: path.to_path_buf(),
            _lock: lock,
        };
        let state = match std::fs::read(path) {
            Ok(bytes) => WitnessState::from_json(&bytes).map_err(|source| StoreError::Corrupt {
                path: path.to_path_buf(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = WitnessState::new();
                write_atomic(path, &state.to_json().map_err(StoreError::Encode)?)?;
                tracing::warn!(path = %path.display(), "no witness state yet: starting empty");
                state
            }
            Err(e) => return Err(io(path)(e)),
        };
        Ok((store, state))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the state file with `state`, durably, before returning.
    pub fn save(&self, state: &WitnessState) -> Result<(), StoreError> {
        write_atomic(&self.path, &state.to_json().map_err(StoreError::Encode)?)
    }
}

/// Writes `bytes` to `path` atomically and durably: a temporary file in the same directory,
/// synced, renamed over `path`, then the directory synced so the rename survives a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".witness-state-")
        .tempfile_in(&dir)
        .map_err(io(&dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (store, state) = StateStore::open(&path).unwrap();
        assert_eq!(state, WitnessState::new());
        assert!(path.exists());
        assert!(matches!(
            StateStore::open(&path),
            Err(StoreError::Locked(_))
        ));
        store.save(&state).unwrap();
        drop(store);
        assert!(StateStore::open(&path).is_ok());
        std::fs::write(&path, b"{\"format\":").unwrap();
        let err = StateStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        assert!(err.to_string().contains("corrupt"), "{err}");
        // Nothing was reset.
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"format\":");
        assert_eq!(lock_path(Path::new("s.json")), Path::new("./s.json.lock"));
    }
}
