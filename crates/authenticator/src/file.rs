//! The keyring file: a versioned JSON document, optionally sealed with a passphrase, and the
//! thin I/O edge that reads and writes it (0600, atomic replace).
//!
//! Layout (version 1):
//! ```json
//! {"format": "sotto-authenticator-keyring", "version": 1,
//!  "sealing": {"kind": "none", "credentials": [ ... ]}}
//! {"format": "sotto-authenticator-keyring", "version": 1,
//!  "sealing": {"kind": "argon2id-xchacha20poly1305", "salt": "..", "m_cost_kib": 65536,
//!              "t_cost": 3, "p_cost": 1, "nonce": "..", "ciphertext": ".."}}
//! ```
//! With `"kind": "none"` the private keys and hmac-secret seeds are in the clear in the file;
//! only the file permissions protect them. Sealed, the ciphertext is XChaCha20-Poly1305 over
//! the JSON credential list, under a key Argon2id derives from the passphrase and salt.
//!
//! Nothing in the file is trusted: any content yields a keyring or a precise error.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::credential::{Credential, StoredCredential};
use crate::{Error, Keyring, Result};

/// The `format` field of every keyring file.
pub const FORMAT_NAME: &str = "sotto-authenticator-keyring";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A keyring with thousands of credentials is far below this; anything larger is refused
/// before it is read into memory.
const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Argon2id cost for new seals: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommendation,
/// single-threaded because the CLI unlocks once per run).
const ARGON2_M_COST_KIB: u32 = 64 * 1024;
const ARGON2_T_COST: u32 = 3;
const ARGON2_P_COST: u32 = 1;
/// Bounds on the costs a file may ask for, so that a crafted file cannot make loading
/// allocate gigabytes or spin for minutes.
const ARGON2_M_COST_KIB_MAX: u32 = 1024 * 1024;
const ARGON2_T_COST_MAX: u32 = 16;
const ARGON2_P_COST_MAX: u32 = 8;
const SALT_LEN: usize = 16;
const SALT_LEN_ACCEPTED: std::ops::RangeInclusive<usize> = 16..=64;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Binds the ciphertext to this format and version, so a payload cannot be replayed into a
/// future format that would interpret it differently.
const SEAL_AAD: &[u8] = b"sotto-authenticator-keyring/v1/argon2id-xchacha20poly1305";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: String,
    version: u32,
    sealing: Sealing,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
enum Sealing {
    #[serde(rename = "none")]
    Clear { credentials: Vec<StoredCredential> },
    #[serde(rename = "argon2id-xchacha20poly1305")]
    Sealed(SealedBox),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedBox {
    salt: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    nonce: String,
    ciphertext: String,
}

impl Keyring {
    /// Serialize the keyring to the file format, sealed when a passphrase is given.
    ///
    /// Without a passphrase the private keys are written in the clear.
    pub fn encode(&self, passphrase: Option<&str>) -> Result<Zeroizing<Vec<u8>>> {
        let stored: Vec<StoredCredential> =
            self.credentials.iter().map(Credential::to_stored).collect();
        let sealing = match passphrase {
            None => Sealing::Clear {
                credentials: stored,
            },
            Some(passphrase) => seal(&stored, passphrase)?,
        };
        let file = FileV1 {
            format: FORMAT_NAME.to_owned(),
            version: FORMAT_VERSION,
            sealing,
        };
        serde_json::to_vec_pretty(&file)
            .map(Zeroizing::new)
            .map_err(|e| Error::Encode {
                reason: format!("keyring JSON: {e}"),
            })
    }

    /// Parse the file format. A sealed keyring needs its passphrase; a clear one refuses one.
    pub fn decode(bytes: &[u8], passphrase: Option<&str>) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::NotAKeyring {
                reason: format!("not JSON: {e}"),
            })?;
        match value.get("format").and_then(serde_json::Value::as_str) {
            Some(FORMAT_NAME) => {}
            Some(other) => {
                return Err(Error::NotAKeyring {
                    reason: format!("format is {other:?}, expected {FORMAT_NAME:?}"),
                })
            }
            None => {
                return Err(Error::NotAKeyring {
                    reason: format!("no string `format` field (expected {FORMAT_NAME:?})"),
                })
            }
        }
        let version = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| Error::Malformed {
                reason: "`version` is missing or not a non-negative integer".into(),
            })?;
        if version != u64::from(FORMAT_VERSION) {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let file: FileV1 = serde_json::from_value(value).map_err(|e| Error::Malformed {
            reason: e.to_string(),
        })?;
        match (&file.sealing, passphrase) {
            (Sealing::Clear { credentials }, None) => Self::from_stored(credentials),
            (Sealing::Clear { .. }, Some(_)) => Err(Error::UnexpectedPassphrase),
            (Sealing::Sealed(_), None) => Err(Error::PassphraseRequired),
            (Sealing::Sealed(sealed), Some(passphrase)) => {
                let plaintext = open(sealed, passphrase)?;
                let stored: Vec<StoredCredential> =
                    serde_json::from_slice(&plaintext).map_err(|e| Error::Malformed {
                        reason: format!("sealed credential list: {e}"),
                    })?;
                Self::from_stored(&stored)
            }
        }
    }

    fn from_stored(stored: &[StoredCredential]) -> Result<Self> {
        let mut credentials: Vec<Credential> = Vec::with_capacity(stored.len());
        for (index, s) in stored.iter().enumerate() {
            let credential = Credential::from_stored(s).map_err(|reason| Error::Malformed {
                reason: format!("credential {index}: {reason}"),
            })?;
            if credentials
                .iter()
                .any(|c| c.rp_id == credential.rp_id && c.credential_id == credential.credential_id)
            {
                return Err(Error::Malformed {
                    reason: format!(
                        "credential {index}: duplicate credential id for rp {:?}",
                        credential.rp_id
                    ),
                });
            }
            credentials.push(credential);
        }
        Ok(Self { credentials })
    }

    /// Read a keyring file. Refuses a file that group or others may access, a sealed file
    /// without (or with a wrong) passphrase, and any malformed content.
    pub fn load(path: &Path, passphrase: Option<&str>) -> Result<Self> {
        let io = |op: &'static str| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, op, source }
        };
        // Checked before opening so that a FIFO or device is never opened (it could block).
        let pre = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(io("stat")(e)),
        };
        if !pre.is_file() {
            return Err(Error::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let mut file = File::open(path).map_err(io("open"))?;
        // Checked again on the opened file: that is the one whose bytes are read.
        let meta = file.metadata().map_err(io("stat"))?;
        if !meta.is_file() {
            return Err(Error::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        if meta.len() > MAX_FILE_SIZE {
            return Err(too_large(path, meta.len()));
        }
        let mut bytes = Zeroizing::new(Vec::new());
        (&mut file)
            .take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(io("read"))?;
        let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if read > MAX_FILE_SIZE {
            return Err(too_large(path, read));
        }
        Self::decode(&bytes, passphrase)
    }

    /// Write the keyring file atomically with mode 0600: a temporary file in the same
    /// directory is written and fsynced, renamed over `path`, and the directory fsynced.
    /// A missing parent directory is created with mode 0700.
    ///
    /// Without a passphrase the private keys are written in the clear. Call this after every
    /// ceremony: signature counters only advance in memory until saved.
    pub fn save(&self, path: &Path, passphrase: Option<&str>) -> Result<()> {
        let bytes = self.encode(passphrase)?;
        let io = |op: &'static str, at: &Path| {
            let path = at.to_path_buf();
            move |source| Error::Io { path, op, source }
        };
        let name = path.file_name().ok_or_else(|| Error::Io {
            path: path.to_path_buf(),
            op: "name the file",
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"),
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io("create directory", &dir))?;

        let suffix: [u8; 8] = crate::random()?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", hex_lower(&suffix)));
        let tmp = dir.join(tmp_name);

        let written = write_synced(&tmp, &bytes)
            .and_then(|()| fs::rename(&tmp, path).map_err(io("rename temporary file over", path)));
        if let Err(e) = written {
            // Best effort: the temporary file holds the same secrets as the keyring.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync directory", &dir))
    }
}

fn write_synced(tmp: &Path, bytes: &[u8]) -> Result<()> {
    let io = |op: &'static str| {
        let path = tmp.to_path_buf();
        move |source| Error::Io { path, op, source }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(io("create temporary file"))?;
    // The umask can only narrow the mode above; this makes 0600 exact whatever it is.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io("chmod 600 temporary file"))?;
    file.write_all(bytes).map_err(io("write temporary file"))?;
    file.sync_all().map_err(io("fsync temporary file"))
}

fn too_large(path: &Path, size: u64) -> Error {
    Error::FileTooLarge {
        path: path.to_path_buf(),
        size,
        max: MAX_FILE_SIZE,
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn derive_key(
    passphrase: &str,
    salt: &[u8],
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let params =
        Params::new(m_cost_kib, t_cost, p_cost, Some(KEY_LEN)).map_err(|e| Error::Kdf {
            reason: format!("Argon2id parameters refused: {e}"),
        })?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| Error::Kdf {
            reason: e.to_string(),
        })?;
    Ok(key)
}

fn seal(stored: &[StoredCredential], passphrase: &str) -> Result<Sealing> {
    if passphrase.is_empty() {
        return Err(Error::Seal {
            reason: "the passphrase is empty; omit it to store the keyring in the clear".into(),
        });
    }
    let plaintext = Zeroizing::new(serde_json::to_vec(stored).map_err(|e| Error::Encode {
        reason: format!("credential list JSON: {e}"),
    })?);
    let salt: [u8; SALT_LEN] = crate::random()?;
    let nonce: [u8; NONCE_LEN] = crate::random()?;
    let key = derive_key(
        passphrase,
        &salt,
        ARGON2_M_COST_KIB,
        ARGON2_T_COST,
        ARGON2_P_COST,
    )?;
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|e| Error::Seal {
        reason: e.to_string(),
    })?;
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: SEAL_AAD,
            },
        )
        .map_err(|e| Error::Seal {
            reason: e.to_string(),
        })?;
    Ok(Sealing::Sealed(SealedBox {
        salt: URL_SAFE_NO_PAD.encode(salt),
        m_cost_kib: ARGON2_M_COST_KIB,
        t_cost: ARGON2_T_COST,
        p_cost: ARGON2_P_COST,
        nonce: URL_SAFE_NO_PAD.encode(nonce),
        ciphertext: URL_SAFE_NO_PAD.encode(ciphertext),
    }))
}

fn open(sealed: &SealedBox, passphrase: &str) -> Result<Zeroizing<Vec<u8>>> {
    let SealedBox {
        salt,
        m_cost_kib,
        t_cost,
        p_cost,
        nonce,
        ciphertext,
    } = sealed;
    let decode = |name: &str, value: &str| {
        URL_SAFE_NO_PAD.decode(value).map_err(|e| Error::Malformed {
            reason: format!("sealing.{name} is not unpadded base64url: {e}"),
        })
    };
    let salt = decode("salt", salt)?;
    if !SALT_LEN_ACCEPTED.contains(&salt.len()) {
        return Err(Error::Malformed {
            reason: format!(
                "sealing.salt is {} bytes, outside {}..={}",
                salt.len(),
                SALT_LEN_ACCEPTED.start(),
                SALT_LEN_ACCEPTED.end()
            ),
        });
    }
    let nonce: [u8; NONCE_LEN] =
        decode("nonce", nonce)?
            .try_into()
            .map_err(|n: Vec<u8>| Error::Malformed {
                reason: format!("sealing.nonce is {} bytes, expected {NONCE_LEN}", n.len()),
            })?;
    let ciphertext = decode("ciphertext", ciphertext)?;
    if *m_cost_kib > ARGON2_M_COST_KIB_MAX
        || *t_cost > ARGON2_T_COST_MAX
        || *p_cost > ARGON2_P_COST_MAX
    {
        return Err(Error::Kdf {
            reason: format!(
                "Argon2id costs m={m_cost_kib} KiB, t={t_cost}, p={p_cost} exceed the accepted maximum m={ARGON2_M_COST_KIB_MAX} KiB, t={ARGON2_T_COST_MAX}, p={ARGON2_P_COST_MAX}"
            ),
        });
    }
    let key = derive_key(passphrase, &salt, *m_cost_kib, *t_cost, *p_cost)?;
    let cipher = XChaCha20Poly1305::new_from_slice(key.as_ref()).map_err(|e| Error::Seal {
        reason: e.to_string(),
    })?;
    cipher
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &ciphertext,
                aad: SEAL_AAD,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| Error::WrongPassphrase)
}
