//! The CLI's files in the user's config directory: the software passkey keyring, the session,
//! and the rollback ledger. Every file is written atomically (temp file, fsync, rename) with
//! 0600 permissions, so a crash never leaves a half-written credential or session behind.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({reason}); remove it and sign in again")]
    Damaged { path: PathBuf, reason: String },
}

/// Where one user's CLI state lives (default: `~/.config/sotto`).
#[derive(Clone)]
pub struct Profile {
    pub dir: PathBuf,
}

/// A signed-in session. The token is a bearer secret: the file is 0600 and the type has no
/// Debug.
#[derive(Serialize, Deserialize, Clone)]
pub struct SessionFile {
    pub server: String,
    pub account_id: String,
    pub session_token: String,
    pub rp_id: String,
    /// The passkey of this device, as base64url.
    pub credential_id: String,
}

/// Where `sotto up` publishes the simulated platform's root, under `<data-dir>/collateral/`,
/// for local clients to pin.
pub const SIMULATED_ROOT_FILE: &str = "simulated-root.der";

/// The default data directory: `$XDG_DATA_HOME/sotto` (or the platform's equivalent).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("sotto")
}

impl Profile {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Profile {
            dir: dir.unwrap_or_else(|| {
                dirs::config_dir()
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join("sotto")
            }),
        }
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.dir.join("passkeys.json")
    }

    /// Takes this profile's keyring lock, waiting while another `sotto` process holds it. A
    /// passkey's signature counter moves on every use, so two processes each loading the file,
    /// signing and saving would write the same counter twice; the server would then refuse
    /// the passkey as a possible clone. Holding this from load to save makes them take turns.
    pub fn lock_keyring(&self) -> Result<KeyringLock, LocalError> {
        let path = self.dir.join("passkeys.lock");
        let err = |source| LocalError::Write {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(err)?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "waiting for another sotto process to finish with this device's passkeys…"
                );
                file.lock().map_err(err)?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(err(e)),
        }
        Ok(KeyringLock { _file: file })
    }

    pub fn session_path(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    pub fn ledger_path(&self, account: &str) -> PathBuf {
        let safe: String = account
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        self.dir.join(format!("ledger-{safe}.json"))
    }

    pub fn load_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, LocalError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LocalError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LocalError::Damaged {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }

    pub fn save_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), LocalError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| LocalError::Damaged {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        write_private(path, &bytes)
    }

    pub fn remove(&self, path: &Path) -> Result<(), LocalError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LocalError::Write {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

/// Exclusive use of a profile's keyring, released when dropped (or when the process ends).
pub struct KeyringLock {
    _file: fs::File,
}

/// Writes `bytes` to `path` atomically, readable only by the user.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LocalError> {
    let err = |source| LocalError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(err)?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    // One name per write, not per process: the proxy's concurrent requests write the same file
    // at once, and a shared temporary name lets one rename the other's away.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp{}.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    fs::rename(&tmp, path).map_err(err)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::Profile;

    #[test]
    fn keyring_lock_makes_processes_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::new(Some(dir.path().to_owned()));
        let held = profile.lock_keyring().unwrap();
        let (tx, rx) = mpsc::channel();
        let other = profile.clone();
        let waiter = std::thread::spawn(move || {
            let lock = other.lock_keyring().unwrap();
            tx.send(()).unwrap();
            drop(lock);
        });
        // A working lock can only make this wait; a broken one is caught whenever the other
        // thread gets there first.
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "both held the lock"
        );
        drop(held);
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the lock was handed over");
        waiter.join().unwrap();
    }
}
