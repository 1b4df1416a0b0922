//! The Linux configfs-tsm report interface (Documentation/ABI/testing/configfs-tsm), the one
//! path by which a confidential guest asks its TSM (the SEV-SNP firmware through `sev_guest`,
//! the TDX module through `tdx_guest`) for a signed report over 64 bytes of its own choosing.
//!
//! Protocol, per the kernel ABI: make a report instance (`mkdir` under the report root), read
//! `provider` to learn the format, read `generation`, write the options and `inblob`, read
//! `outblob` (and `auxblob`), read `generation` again. The kernel bumps `generation` on every
//! write, so a count that differs from ours means another writer touched our instance between
//! our write and our read and the blobs may answer its question, not ours: that is refused,
//! not retried, because our instance has a fresh random name and such a writer is misbehaving.
//! The same check catches a write the kernel refused: configfs commits a binary attribute when
//! the file is closed, where an error cannot reach the writer, so `generation` is the only
//! sign that `inblob` was not taken.
//!
//! Trust: the kernel inside the confidential VM is part of the measured guest and is trusted
//! to relay the firmware's answer; the blobs themselves are checked by the client's verifier.
//! File access goes through [`TsmFs`] so tests can stand in for the kernel's configfs, which a
//! plain directory cannot imitate (it would never produce an `outblob`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// The kernel's cap on `inblob`, which is also the size of both vendors' REPORT_DATA.
pub const INBLOB_LEN: usize = 64;

/// File operations on the configfs tree. The real implementation is [`StdFs`].
pub(crate) trait TsmFs: Send + Sync {
    fn is_dir(&self, path: &Path) -> bool;
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()>;
}

/// configfs through the ordinary file system calls.
pub(crate) struct StdFs;

impl TsmFs for StdFs {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        // configfs attributes exist already and take their value from one write, committed
        // when the file is closed: open without create, write once, close.
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(data)?;
        file.flush()
    }
}

/// The report formats this crate knows, by the name the kernel gives in `provider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsmProvider {
    /// AMD SEV-SNP: `outblob` is the ATTESTATION_REPORT, `auxblob` the certificate table.
    SevGuest,
    /// Intel TDX: `outblob` is the DCAP quote.
    TdxGuest,
}

impl TsmProvider {
    pub fn name(self) -> &'static str {
        match self {
            TsmProvider::SevGuest => "sev_guest",
            TsmProvider::TdxGuest => "tdx_guest",
        }
    }
}

/// Why configfs-tsm did not produce a report.
#[derive(Debug, Error)]
pub enum TsmError {
    #[error("configfs-tsm report root {path} is not a directory (is configfs mounted and the TSM driver loaded?)")]
    RootMissing { path: PathBuf },
    #[error("cannot create report instance {path}: {source}")]
    CreateEntry { path: PathBuf, source: io::Error },
    #[error("cannot remove report instance {path}: {source}")]
    RemoveEntry { path: PathBuf, source: io::Error },
    #[error("cannot read attribute '{attribute}': {source}")]
    Read {
        attribute: &'static str,
        source: io::Error,
    },
    #[error("cannot write attribute '{attribute}': {source}")]
    Write {
        attribute: &'static str,
        source: io::Error,
    },
    #[error("TSM provider is '{found}', but this platform needs '{expected}'")]
    ProviderMismatch {
        expected: &'static str,
        found: String,
    },
    #[error("attribute 'generation' is not a decimal counter: {text:?}")]
    BadGeneration { text: String },
    #[error("generation went from {before} to {after} across our {writes} writes: another writer raced us on the report instance, or the kernel refused one of our writes")]
    GenerationMismatch {
        before: u64,
        writes: u64,
        after: u64,
    },
    #[error("the TSM returned an empty outblob")]
    EmptyOutblob,
    #[error("privilege level {0} is above the ABI's maximum of 3")]
    PrivlevelTooHigh(u8),
    #[error("no randomness for a report instance name: {0}")]
    Randomness(getrandom::Error),
}

/// The blobs of one report.
#[derive(Debug)]
pub(crate) struct TsmOutput {
    pub outblob: Vec<u8>,
    /// Empty when not asked for or when the TSM had none.
    pub auxblob: Vec<u8>,
}

/// A configfs-tsm report root whose provider was checked when it was opened.
pub(crate) struct Tsm {
    fs: Box<dyn TsmFs>,
    root: PathBuf,
    provider: TsmProvider,
}

static INSTANCE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// TSM_PRIVLEVEL_MAX in include/linux/tsm.h.
pub(crate) const PRIVLEVEL_MAX: u8 = 3;

impl Tsm {
    /// Refuses a root that is missing or whose TSM speaks another format than `provider`.
    /// The provider is a property of a report instance, so a probe instance is made and removed.
    pub fn open(
        fs: Box<dyn TsmFs>,
        root: PathBuf,
        provider: TsmProvider,
    ) -> Result<Self, TsmError> {
        if !fs.is_dir(&root) {
            return Err(TsmError::RootMissing { path: root });
        }
        let tsm = Tsm { fs, root, provider };
        tsm.with_instance(|dir| tsm.check_provider(dir))?;
        Ok(tsm)
    }

    /// Asks the TSM for a report over `inblob`. `privlevel` is written first when given
    /// (SEV-SNP's VMPL); `with_aux` also reads `auxblob`, which only SEV-SNP exposes.
    pub fn report(
        &self,
        inblob: &[u8; INBLOB_LEN],
        privlevel: Option<u8>,
        with_aux: bool,
    ) -> Result<TsmOutput, TsmError> {
        if let Some(level) = privlevel.filter(|l| *l > PRIVLEVEL_MAX) {
            return Err(TsmError::PrivlevelTooHigh(level));
        }
        self.with_instance(|dir| {
            self.check_provider(dir)?;
            let before = self.generation(dir)?;
            let mut writes = 0u64;
            if let Some(level) = privlevel {
                self.write(dir, "privlevel", level.to_string().as_bytes())?;
                writes += 1;
            }
            self.write(dir, "inblob", inblob)?;
            writes += 1;
            let outblob = self.read(dir, "outblob")?;
            let auxblob = if with_aux {
                self.read(dir, "auxblob")?
            } else {
                Vec::new()
            };
            let after = self.generation(dir)?;
            if before.checked_add(writes) != Some(after) {
                return Err(TsmError::GenerationMismatch {
                    before,
                    writes,
                    after,
                });
            }
            if outblob.is_empty() {
                return Err(TsmError::EmptyOutblob);
            }
            Ok(TsmOutput { outblob, auxblob })
        })
    }

    /// Runs `f` on a fresh report instance and removes the instance whatever `f` returned.
    fn with_instance<T>(
        &self,
        f: impl FnOnce(&Path) -> Result<T, TsmError>,
    ) -> Result<T, TsmError> {
        let dir = self.root.join(instance_name()?);
        self.fs
            .create_dir(&dir)
            .map_err(|source| TsmError::CreateEntry {
                path: dir.clone(),
                source,
            })?;
        let result = f(&dir);
        let removed = self.fs.remove_dir(&dir);
        let value = result?;
        removed.map_err(|source| TsmError::RemoveEntry { path: dir, source })?;
        Ok(value)
    }

    fn check_provider(&self, dir: &Path) -> Result<(), TsmError> {
        let raw = self.read(dir, "provider")?;
        let found = String::from_utf8_lossy(&raw).trim().to_owned();
        if found != self.provider.name() {
            return Err(TsmError::ProviderMismatch {
                expected: self.provider.name(),
                found,
            });
        }
        Ok(())
    }

    fn generation(&self, dir: &Path) -> Result<u64, TsmError> {
        let raw = self.read(dir, "generation")?;
        let text = String::from_utf8_lossy(&raw);
        text.trim()
            .parse::<u64>()
            .map_err(|_| TsmError::BadGeneration {
                text: text.into_owned(),
            })
    }

    fn read(&self, dir: &Path, attribute: &'static str) -> Result<Vec<u8>, TsmError> {
        self.fs
            .read(&dir.join(attribute))
            .map_err(|source| TsmError::Read { attribute, source })
    }

    fn write(&self, dir: &Path, attribute: &'static str, data: &[u8]) -> Result<(), TsmError> {
        self.fs
            .write(&dir.join(attribute), data)
            .map_err(|source| TsmError::Write { attribute, source })
    }
}

/// A name no other requester will pick: the process, a per-process counter, and 64 random
/// bits so that a hostile process in the guest cannot pre-create or guess our instance.
fn instance_name() -> Result<String, TsmError> {
    let mut random = [0u8; 8];
    getrandom::getrandom(&mut random).map_err(TsmError::Randomness)?;
    let seq = INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(format!(
        "sotto-{}-{}-{:016x}",
        std::process::id(),
        seq,
        u64::from_le_bytes(random)
    ))
}
