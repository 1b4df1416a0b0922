//! The simulated platform, for machines without a TEE: reports in the SEV-SNP layout signed by
//! a development authority (`sotto_verify_snp::sim`) that is created on first use and kept in
//! `<data_dir>/sim-attestation/authority.bin`, so that clients who pinned its root keep
//! accepting the enclave across restarts.
//!
//! Trust: none is claimed. The authority's chip key sits in a file on the host, so anyone who
//! can read that file can mint evidence; clients accept it only when told to, loudly. What is
//! kept honest is the plumbing: REPORT_DATA and a measurement derived from the enclave's build
//! identity go through the same layout and verifier as real SEV-SNP evidence. A damaged
//! authority file is an error, never a reason to mint a new root silently.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha384};
use sotto_verify::evidence::CpuEvidence;
use sotto_verify_core::UnixTime;
use sotto_verify_snp::sim::SimAuthority;
use sotto_verify_snp::TcbVersion;
use thiserror::Error;
use zeroize::Zeroizing;

const AUTHORITY_DIR: &str = "sim-attestation";
const AUTHORITY_FILE: &str = "authority.bin";
/// Domain separation, so a simulated measurement can never equal a digest taken for any other
/// purpose over the same build identity.
const MEASUREMENT_LABEL: &[u8] = b"sotto simulated SEV-SNP measurement v1\0";
/// The simulated chip's TCB. Its values carry no meaning; they are fixed so that every
/// authority reports the same, unremarkable platform.
const SIM_TCB: TcbVersion = TcbVersion {
    fmc: None,
    bootloader: 10,
    tee: 0,
    snp: 23,
    microcode: 213,
};

/// Why the simulated platform could not start or sign.
#[derive(Debug, Error)]
pub enum SimError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("authority file {path} is corrupt ({reason}); move it away to create a new root, which clients must then be told to trust")]
    CorruptAuthority { path: PathBuf, reason: String },
    #[error("the simulated authority failed: {0}")]
    Authority(sotto_verify_snp::sim::SimError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SimError {
    let path = path.to_path_buf();
    move |source| SimError::Io {
        action,
        path,
        source,
    }
}

pub(crate) struct SimPlatform {
    authority: SimAuthority,
    measurement: [u8; 48],
}

impl SimPlatform {
    /// Loads the authority under `data_dir`, or creates and persists one if there is none.
    pub fn open(
        data_dir: &Path,
        measurement_input: &[u8],
        now: UnixTime,
    ) -> Result<Self, SimError> {
        let dir = data_dir.join(AUTHORITY_DIR);
        let path = dir.join(AUTHORITY_FILE);
        let authority = match load(&path)? {
            Some(authority) => authority,
            None => create(&dir, &path, now)?,
        };
        Ok(SimPlatform {
            authority,
            measurement: measurement(measurement_input),
        })
    }

    pub fn root_der(&self) -> &[u8] {
        self.authority.root_der()
    }

    /// A freshly signed report (version 3, VMPL 0, debug off) over `report_data`.
    pub fn evidence(&self, report_data: &[u8; 64]) -> Result<CpuEvidence, SimError> {
        let report = self
            .authority
            .issue_report(self.measurement, *report_data)
            .map_err(SimError::Authority)?;
        Ok(CpuEvidence::Simulated {
            report: report.to_bytes(),
            endorsement_der: self.authority.chip_cert_der().to_vec(),
            chain_der: self.authority.chain_der(),
        })
    }
}

/// The simulated MEASUREMENT: SHA-384 over a fixed label and the enclave's build identity.
pub(crate) fn measurement(measurement_input: &[u8]) -> [u8; 48] {
    let mut hasher = Sha384::new();
    hasher.update(MEASUREMENT_LABEL);
    hasher.update(measurement_input);
    hasher.finalize().into()
}

/// `None` only when the file does not exist; any other failure is reported.
fn load(path: &Path) -> Result<Option<SimAuthority>, SimError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    // Sized up front so the buffer holding the secret key is never reallocated (which would
    // leave an unzeroized copy behind).
    let size = file
        .metadata()
        .ok()
        .and_then(|m| usize::try_from(m.len()).ok())
        .unwrap_or(0);
    let mut bytes = Zeroizing::new(Vec::with_capacity(size));
    file.read_to_end(&mut bytes).map_err(io_err("read", path))?;
    SimAuthority::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| SimError::CorruptAuthority {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Generates an authority and publishes it atomically: written to a private temporary file,
/// synced, then hard-linked into place, which fails if another process won the race — in which
/// case its authority is the one loaded, so both end up with the same root.
fn create(dir: &Path, path: &Path, now: UnixTime) -> Result<SimAuthority, SimError> {
    let mut chip_id = [0u8; 64];
    OsRng
        .try_fill_bytes(&mut chip_id)
        .map_err(|e| io_err("draw randomness for", path)(io::Error::other(e)))?;
    let authority =
        SimAuthority::generate(&mut OsRng, now, chip_id, SIM_TCB).map_err(SimError::Authority)?;
    let bytes = authority.to_bytes();

    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create directory", dir))?;
    let mut suffix = [0u8; 8];
    OsRng
        .try_fill_bytes(&mut suffix)
        .map_err(|e| io_err("draw randomness for", path)(io::Error::other(e)))?;
    let temp = dir.join(format!(
        ".{AUTHORITY_FILE}.{}.{:016x}.tmp",
        std::process::id(),
        u64::from_le_bytes(suffix)
    ));
    let published = write_private(&temp, &bytes).map(|()| fs::hard_link(&temp, path));
    let removed = fs::remove_file(&temp);
    match published {
        Err(e) => Err(e),
        Ok(Ok(())) => {
            removed.map_err(io_err("remove", &temp))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync", dir))?;
            Ok(authority)
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => {
            removed.map_err(io_err("remove", &temp))?;
            load(path)?.ok_or_else(|| SimError::CorruptAuthority {
                path: path.to_path_buf(),
                reason: "vanished while being created".to_owned(),
            })
        }
        Ok(Err(e)) => Err(io_err("publish", path)(e)),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("sync", path))
}
