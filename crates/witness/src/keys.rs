//! Signer keys on disk (the witness's, and the log and release keys `sotto release` makes):
//! made from the OS's randomness, written once with mode 0600 (never over an existing file,
//! synced with its directory), and read back; a witness key must be a cosignature/v1 signer.
//!
//! Trust: the key file is the operator's secret; its contents are zeroized after use and never
//! printed or logged. Only the public vkey is shown.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sotto_tlog::note::{NoteError, Signer, TYPE_COSIGNATURE_V1};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} already exists; refusing to overwrite a key")]
    Exists(PathBuf),
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error("bad key name {name:?}: {reason}")]
    Name { name: String, reason: NoteError },
    #[error("{path} is not a signer key: {reason}")]
    Parse { path: PathBuf, reason: NoteError },
    #[error("{0} is not a witness key (cosignature/v1, type 0x04)")]
    NotAWitnessKey(PathBuf),
}

/// A new cosignature/v1 key named `name` (a schema-less URL such as `witness.example/w1`).
pub fn generate(name: &str) -> Result<Signer, KeyError> {
    generate_of(name, TYPE_COSIGNATURE_V1)
}

/// A new key of signature type `kind` named `name`.
pub fn generate_of(name: &str, kind: u8) -> Result<Signer, KeyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut_slice()).map_err(|e| KeyError::Random(e.to_string()))?;
    Signer::from_seed(name, kind, &seed).map_err(|reason| KeyError::Name {
        name: name.to_string(),
        reason,
    })
}

/// Writes `signer`'s `PRIVATE+KEY+…` form to a new file at `path` (mode 0600 on Unix),
/// synced. An existing file is never replaced.
pub fn write_key(path: &Path, signer: &Signer) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_path_buf())
        } else {
            io(e)
        }
    })?;
    let mut line = signer.to_skey();
    line.push('\n');
    f.write_all(line.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// Reads a witness key written by [`write_key`] (or by Go's note package).
pub fn read_key(path: &Path) -> Result<Signer, KeyError> {
    let signer = read_signer(path)?;
    if signer.verifier().kind() != TYPE_COSIGNATURE_V1 {
        return Err(KeyError::NotAWitnessKey(path.to_path_buf()));
    }
    Ok(signer)
}

/// Reads a signer key of any type written by [`write_key`] (or by Go's note package).
pub fn read_signer(path: &Path) -> Result<Signer, KeyError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?,
    );
    let signer = Signer::parse(&text).map_err(|reason| KeyError::Parse {
        path: path.to_path_buf(),
        reason,
    })?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the key file is readable by others");
        }
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_once_and_reads_back() {
        let signer = generate("witness.example/w1").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.key");
        write_key(&path, &signer).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_key(&path, &generate("witness.example/w1").unwrap()),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(read_key(&path).unwrap().verifier(), signer.verifier());
        assert_ne!(
            generate("witness.example/w1").unwrap().verifier(),
            signer.verifier()
        );
        assert!(matches!(generate("bad name"), Err(KeyError::Name { .. })));

        let log = Signer::from_seed("log", sotto_tlog::note::TYPE_ED25519, &[1; 32]).unwrap();
        let other = dir.path().join("log.key");
        write_key(&other, &log).unwrap();
        assert!(matches!(read_key(&other), Err(KeyError::NotAWitnessKey(_))));
        std::fs::write(dir.path().join("junk"), "junk").unwrap();
        assert!(matches!(
            read_key(&dir.path().join("junk")),
            Err(KeyError::Parse { .. })
        ));
    }
}
