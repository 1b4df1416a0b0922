//! The local stack's development release log: what `sotto up` runs so that the simulated
//! platform goes through every release check a real deployment does.
//!
//! Under `<data-dir>/log/`: `public/` is the C2SP log directory the server serves at `/log/`;
//! `keys/` holds the development log key, two witness keys and two release keys (0600, made
//! on first run); `witness-N.json` are the witnesses' states. The two witnesses run in this
//! process on loopback ports and speak the real tlog-witness protocol to the log. The release
//! of the enclave `sotto up` starts (its simulated measurement, model, engine, web files and
//! this binary) is signed by both release keys and published, and the trust configuration for
//! all of it is written to `<data-dir>/trust.json`, which `--insecure-simulated` clients use.
//! Every one of these keys lives on this machine: this log proves nothing about which builds
//! are Sotto's, which is why its origin is a reserved development name no production pin can
//! accept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sotto_log::{Log, WitnessEndpoint};
use sotto_release::manifest::{
    ClientBinary, Engine, Model, Platforms, Release, Simulated, Statement, FORMAT,
};
use sotto_release::trust::DEV_ORIGIN_PREFIX;
use sotto_release::Trust;
use sotto_tlog::note::{Note, Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use sotto_witness::{KnownLogs, WitnessConfig, WitnessService};
use tokio::sync::Mutex;

use crate::cmd::release::{keys, publish, trust};
use crate::cmd::AnyError;
use crate::transparency::TRUST_FILE;

/// How often the witnesses are asked again, so that cosignatures stay fresh.
pub const REFRESH: Duration = Duration::from_secs(600);
/// How old a cosignature the development trust configuration accepts.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
const WITNESSES: usize = 2;
const RELEASE_KEYS: usize = 2;

/// What the enclave `sotto up` runs, for its release statement.
pub struct EnclaveRelease<'a> {
    pub manifest: &'a sotto_channel::manifest::Manifest,
    /// The simulated MEASUREMENT, hex.
    pub measurement: &'a str,
    pub web: Option<sotto_release::manifest::WebBundle>,
}

/// The running development log.
pub struct DevLog {
    pub public_dir: PathBuf,
    pub trust: Trust,
    pub trust_path: PathBuf,
    /// The logged release of the running enclave.
    pub index: u64,
    pub size: u64,
    pub cosigned: usize,
    log: Arc<Mutex<Log>>,
    witnesses: Vec<WitnessEndpoint>,
    http: reqwest::Client,
}

fn origin_for(seed_key: &Path) -> Result<String, AnyError> {
    // The origin is fixed by the first log key made in this data directory.
    if seed_key.exists() {
        return Ok(keys::load(seed_key)?.name().to_string());
    }
    let mut id = [0u8; 8];
    getrandom::getrandom(&mut id).map_err(|e| format!("no randomness: {e}"))?;
    Ok(format!("{DEV_ORIGIN_PREFIX}{}", hex::encode(id)))
}

fn source_commit() -> String {
    std::env::var("SOTTO_SOURCE_COMMIT")
        .ok()
        .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_else(|| "0".repeat(40))
}

fn this_binary() -> Vec<ClientBinary> {
    let Ok(path) = std::env::current_exe() else {
        return Vec::new();
    };
    let Ok((sha256, _)) = crate::cmd::release::manifest::sha256_file(&path) else {
        return Vec::new();
    };
    vec![ClientBinary {
        name: format!("sotto-{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        sha256,
    }]
}

/// The release statement of the enclave `sotto up` starts.
pub fn release_of(e: &EnclaveRelease<'_>) -> Release {
    let m = e.manifest;
    Release {
        format: FORMAT.into(),
        name: "sotto".into(),
        version: m.release.clone(),
        source_commit: source_commit(),
        platforms: Platforms {
            simulated: Some(Simulated {
                measurements: vec![e.measurement.to_string()],
            }),
            ..Default::default()
        },
        models: vec![Model {
            name: m.model.name.clone(),
            sha256: m.model.sha256.clone(),
            size: m.model.size,
        }],
        engine: Engine {
            name: m.engine.name.clone(),
            version: m.engine.version.clone(),
            context: m.engine.context,
        },
        gpu: None,
        web: e.web.clone(),
        clients: this_binary(),
    }
}

async fn start_witness(
    signer: Signer,
    log: &Signer,
    state: PathBuf,
) -> Result<WitnessEndpoint, AnyError> {
    let mut logs = KnownLogs::new();
    logs.add(log.verifier())?;
    let service = WitnessService::open(WitnessConfig::new(signer, logs, state))?;
    let verifier = service.verifier();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = service.router();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "development witness stopped");
        }
    });
    Ok(WitnessEndpoint {
        url: format!("http://{addr}"),
        verifier,
    })
}

impl DevLog {
    /// Opens (or makes) the development log, starts its witnesses, publishes `release` (signed
    /// by the development release keys) and writes the trust configuration.
    pub async fn start(data_dir: &Path, release: Release) -> Result<DevLog, AnyError> {
        let root = data_dir.join("log");
        let key_dir = root.join("keys");
        std::fs::create_dir_all(&key_dir)
            .map_err(|e| format!("cannot create {}: {e}", key_dir.display()))?;
        let log_key_path = key_dir.join("log.key");
        let origin = origin_for(&log_key_path)?;
        let log_signer = keys::load_or_generate(&log_key_path, &origin, TYPE_ED25519)?;
        let mut witnesses = Vec::new();
        for i in 0..WITNESSES {
            let w = keys::load_or_generate(
                &key_dir.join(format!("witness-{i}.key")),
                &format!("witness-{i}.{origin}"),
                TYPE_COSIGNATURE_V1,
            )?;
            witnesses
                .push(start_witness(w, &log_signer, root.join(format!("witness-{i}.json"))).await?);
        }
        let release_keys = (0..RELEASE_KEYS)
            .map(|i| {
                keys::load_or_generate(
                    &key_dir.join(format!("release-{i}.key")),
                    &format!("release-{i}.{origin}"),
                    TYPE_ED25519,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let public_dir = root.join("public");
        let mut log = Log::open_or_create(&public_dir, &log_signer)?;
        let text = Statement::Release(Box::new(release)).to_text()?;
        let mut note = Note::new(text.clone())?;
        for k in &release_keys {
            note.add_signature(k.sign(&text)?);
        }
        let (index, _) = publish::append_statement(&mut log, &log_signer, &note)?;
        let http = publish::http()?;
        let cosigned = publish::cosign(&http, &mut log, &witnesses).await?;
        let trust = trust::trust_file(
            &log_signer.verifier(),
            witnesses.iter().map(|w| w.verifier.to_vkey()).collect(),
            WITNESSES,
            release_keys
                .iter()
                .map(|k| k.verifier().to_vkey())
                .collect(),
            RELEASE_KEYS,
            MAX_AGE,
            true,
        )?;
        let size = log.size();
        let devlog = DevLog {
            public_dir,
            trust,
            index,
            size,
            cosigned,
            log: Arc::new(Mutex::new(log)),
            witnesses,
            http,
            trust_path: data_dir.join(TRUST_FILE),
        };
        devlog.write_trust(data_dir)?;
        // The development web client reads the same file through /v1/collateral.
        devlog.write_trust(&data_dir.join("collateral"))?;
        Ok(devlog)
    }

    /// Writes the trust configuration as `trust.json` into `dir`.
    pub fn write_trust(&self, dir: &Path) -> Result<(), AnyError> {
        let mut json = self.trust.to_json();
        json.push('\n');
        crate::local::write_private(&dir.join(TRUST_FILE), json.as_bytes())?;
        Ok(())
    }

    /// Keeps the cosignatures fresh until the process ends.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        let log = self.log.clone();
        let witnesses = self.witnesses.clone();
        let http = self.http.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let mut log = log.lock().await;
                if let Err(e) = publish::cosign(&http, &mut log, &witnesses).await {
                    tracing::warn!(error = %e, "refreshing the development log's cosignatures failed");
                }
            }
        })
    }
}
