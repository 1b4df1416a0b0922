//! The network edge of the release check: which trust configuration applies, fetching the
//! log's files for `sotto_release::LogSync`, and this profile's memory of the log (the tree
//! it saw last, so a rollback or a split view shows).
//!
//! Trust: the server serves the log and is hostile; everything fetched goes through the pure
//! check. The trust configuration comes from the binary, from `--trust FILE`, or (with
//! `--insecure-simulated`) from the local development stack's data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sotto_release::{LogError, LogState, LogSync, LogView, ReleaseSet, Trust, TrustError};

use crate::local::{write_private, LocalError, Profile};

/// Where `sotto up` writes the trust configuration of its development log.
pub const TRUST_FILE: &str = "trust.json";
/// The log's files are served below this path of the server.
pub const LOG_PREFIX: &str = "/log/";
/// The largest file of a log (or of a web client) a client reads.
pub const MAX_FILE: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TransparencyError {
    #[error("cannot read the trust configuration {path}: {source}")]
    ReadTrust {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no development trust configuration at {0}: start the local stack (`sotto up`) first, \
         or pass --trust FILE"
    )]
    NoDevTrust(PathBuf),
    #[error("{path}: {source}")]
    Trust { path: PathBuf, source: TrustError },
    #[error("{0}")]
    Pins(TrustError),
    #[error("cannot fetch the release log's {path}: {why}")]
    Fetch { path: String, why: String },
    #[error("the release log cannot be trusted: {0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Local(#[from] LocalError),
}

/// Which trust configuration a client uses: `--trust FILE`, else the local development stack's
/// (only with `--insecure-simulated`), else the one compiled in.
pub fn resolve(
    trust_file: Option<&Path>,
    insecure_simulated: bool,
    dev_data_dir: &Path,
) -> Result<Trust, TransparencyError> {
    let path = match trust_file {
        Some(p) => p.to_path_buf(),
        None if insecure_simulated => {
            let p = dev_data_dir.join(TRUST_FILE);
            if !p.exists() {
                return Err(TransparencyError::NoDevTrust(p));
            }
            p
        }
        None => return Trust::production().map_err(TransparencyError::Pins),
    };
    let json = std::fs::read_to_string(&path).map_err(|source| TransparencyError::ReadTrust {
        path: path.clone(),
        source,
    })?;
    Trust::parse(&json).map_err(|source| TransparencyError::Trust { path, source })
}

/// The file in which this profile remembers the log with this origin.
pub fn state_path(profile: &Profile, origin: &str) -> PathBuf {
    let id = hex::encode(&Sha256::digest(origin.as_bytes())[..8]);
    profile.dir.join("logs").join(format!("{id}.json"))
}

fn load_state(path: &Path) -> Result<Option<LogState>, TransparencyError> {
    match std::fs::read_to_string(path) {
        Ok(json) => Ok(Some(LogState::from_json(&json)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LocalError::Read {
            path: path.to_path_buf(),
            source,
        }
        .into()),
    }
}

/// The verified log and the releases that count in it.
pub struct Checked {
    pub view: LogView,
    pub releases: ReleaseSet,
    /// How many files were fetched (the checkpoint and entry bundles).
    pub fetched: usize,
}

/// GETs `url`, reading at most `max` bytes of body (a hostile server cannot make the client
/// hold more); a status other than success is an error.
pub async fn get_bounded(http: &reqwest::Client, url: &str, max: usize) -> Result<Vec<u8>, String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("the server answered {}", resp.status()));
    }
    crate::api::read_bounded(resp, max).await
}

async fn fetch(
    http: &reqwest::Client,
    base: &str,
    path: &str,
) -> Result<Vec<u8>, TransparencyError> {
    let url = format!("{}{LOG_PREFIX}{path}", base.trim_end_matches('/'));
    get_bounded(http, &url, MAX_FILE)
        .await
        .map_err(|why| TransparencyError::Fetch {
            path: path.to_string(),
            why,
        })
}

/// Checks the log served by `server` against `trust`, growing this profile's memory of it.
pub async fn check(
    server: &str,
    trust: &Trust,
    profile: &Profile,
    now: u64,
) -> Result<Checked, TransparencyError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| TransparencyError::Fetch {
            path: String::new(),
            why: e.to_string(),
        })?;
    let path = state_path(profile, trust.origin());
    let prior = load_state(&path)?;
    let mut sync = LogSync::new(trust, prior, now)?;
    let mut fetched = 0;
    loop {
        let wanted = sync.wanted();
        if wanted.is_empty() {
            break;
        }
        let bodies =
            futures_util::future::try_join_all(wanted.iter().map(|p| fetch(&http, server, p)))
                .await?;
        for (p, body) in wanted.iter().zip(bodies) {
            sync.give(p, &body)?;
            fetched += 1;
        }
    }
    let (view, state) = sync.finish()?;
    // Another process may have stored a larger tree meanwhile: keep the larger memory.
    let keep_stored = load_state(&path)
        .ok()
        .flatten()
        .is_some_and(|s| s.size > state.size);
    if !keep_stored {
        write_private(&path, state.to_json().as_bytes())?;
    }
    let releases = ReleaseSet::from_entries(trust, &view.entries);
    Ok(Checked {
        view,
        releases,
        fetched,
    })
}
