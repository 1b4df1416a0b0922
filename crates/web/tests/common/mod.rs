//! Fixtures for the browser core's tests: a real in-process enclave responder holding a
//! simulated-platform identity (its evidence binds its static key and manifest exactly as the
//! enclave's does), and transparency logs built in memory with the real note, checkpoint,
//! cosignature and tile formats, listing signed releases.

#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sotto_attester::{Attester, GpuConfig, PlatformConfig};
use sotto_channel::binding::{manifest_digest, report_data};
use sotto_channel::handshake::{AttestationPayload, ServerHandshake, StaticKey};
use sotto_channel::manifest::{EngineManifest, Manifest, ModelManifest, MANIFEST_FORMAT};
use sotto_channel::Session;
use sotto_release::manifest::{Engine, Model, Platforms, Release, Simulated, Statement, FORMAT};
use sotto_release::Trust;
use sotto_tlog::note::Signer;
use sotto_verify_core::UnixTime;
use sotto_web::channel::ChannelCore;
use sotto_web::release::LogCheckCore;
use sotto_web::WebError;

/// The clock's time; a test machine whose clock reads before 1970 fails here, not later.
pub fn now() -> UnixTime {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    UnixTime(since_epoch.expect("the clock is past 1970").as_secs())
}

pub const MODEL_SHA: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
pub const VERSION: &str = "web-test";
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

pub struct Enclave {
    pub _dir: tempfile::TempDir,
    pub attester: Attester,
    pub key: StaticKey,
    pub manifest: Vec<u8>,
}

impl Enclave {
    pub fn boot() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let attester = Attester::open(
            PlatformConfig::Simulated {
                data_dir: dir.path().to_path_buf(),
                measurement_input: b"sotto-web test enclave".to_vec(),
            },
            GpuConfig::None,
            now(),
        )
        .unwrap();
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            release: VERSION.into(),
            platform: "simulated".into(),
            model: ModelManifest {
                name: "tiny.gguf".into(),
                sha256: MODEL_SHA.into(),
                size: 42,
            },
            engine: EngineManifest {
                name: "llama.cpp".into(),
                version: "test".into(),
                context: 512,
            },
            gpu_evidence_sha256: None,
        }
        .to_bytes();
        Enclave {
            _dir: dir,
            attester,
            key: StaticKey::generate().unwrap(),
            manifest,
        }
    }

    pub fn root_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(self.attester.simulated_root_der().unwrap())
    }

    /// Answers a hello as the enclave does: evidence made for this handshake, whose
    /// REPORT_DATA binds key, manifest and the client's nonce.
    pub fn respond(&self, hello: &[u8]) -> (Vec<u8>, Session) {
        ServerHandshake::respond(&self.key, hello, |nonce| {
            let rd = report_data(self.key.public(), &manifest_digest(&self.manifest), nonce);
            AttestationPayload {
                manifest: self.manifest.clone(),
                evidence: self.attester.evidence(&rd, None).unwrap(),
            }
            .encode()
        })
        .unwrap()
    }

    pub fn policy(&self) -> String {
        format!(
            r#"{{"allow_simulated":true,"simulated_root":"{}","expect_model_sha256":"{MODEL_SHA}"}}"#,
            self.root_b64()
        )
    }

    /// The simulated MEASUREMENT (hex) this enclave's evidence reports, read from a verified
    /// handshake's summary.
    pub fn measurement(&self) -> String {
        let mut client = ChannelCore::new(&self.policy()).unwrap();
        let (reply, _) = self.respond(client.hello());
        let summary: serde_json::Value =
            serde_json::from_str(&client.finish(&reply, now()).unwrap()).unwrap();
        summary["measurement"].as_str().unwrap().to_owned()
    }
}

pub use sotto_release::testing::{Keys, LogFiles as Files};

/// How the web tests use a deployment's keys (sotto-release's fixtures): a development
/// deployment, its trust file as the page receives it, statements signed by the first `n`
/// release keys, and its log cosigned by the first `witnesses` witnesses `age` seconds ago.
pub trait Deployment {
    fn dev(seed: u8) -> Self;
    fn trust_json(&self, dev: bool) -> String;
    fn signed(&self, statement: &Statement, n: usize) -> Vec<u8>;
    fn serve(&self, entries: &[Vec<u8>], witnesses: usize, age: u64) -> Files;
}

impl Deployment for Keys {
    fn dev(seed: u8) -> Self {
        Keys::new(&format!("dev.sotto.invalid/web-test-{seed}"), seed)
    }

    fn trust_json(&self, dev: bool) -> String {
        serde_json::to_string(&self.trust_file(dev)).unwrap()
    }

    fn signed(&self, statement: &Statement, n: usize) -> Vec<u8> {
        let by: Vec<&Signer> = self.release[..n].iter().collect();
        sotto_release::testing::signed(statement, &by)
    }

    fn serve(&self, entries: &[Vec<u8>], witnesses: usize, age: u64) -> Files {
        let at = now().0 - age;
        let cosigs: Vec<(&Signer, u64)> = self.witnesses[..witnesses]
            .iter()
            .map(|w| (w, at))
            .collect();
        sotto_release::testing::log_files(entries, &self.log, &cosigs)
    }
}

/// The release of the test enclave's build, listing `measurement` for the simulated platform.
pub fn release(measurement: &str) -> Statement {
    Statement::Release(Box::new(Release {
        format: FORMAT.into(),
        name: "sotto".into(),
        version: VERSION.into(),
        source_commit: COMMIT.into(),
        platforms: Platforms {
            simulated: Some(Simulated {
                measurements: vec![measurement.to_string()],
            }),
            ..Default::default()
        },
        models: vec![Model {
            name: "tiny.gguf".into(),
            sha256: MODEL_SHA.into(),
            size: 42,
        }],
        engine: Engine {
            name: "llama.cpp".into(),
            version: "test".into(),
            context: 512,
        },
        gpu: None,
        web: None,
        clients: vec![],
    }))
}

/// Runs a log check to the end as the web app does: fetch what it wants, give it back.
/// Returns the check and its `finish` result.
pub fn check(
    trust: Trust,
    state: &str,
    files: &Files,
) -> Result<(LogCheckCore, serde_json::Value), WebError> {
    let mut c = LogCheckCore::new(trust, state, now().0)?;
    loop {
        let wanted: Vec<String> = serde_json::from_str(&c.wanted_json().unwrap()).unwrap();
        if wanted.is_empty() {
            break;
        }
        for path in wanted {
            let body = files.get(&path).cloned().unwrap_or_default();
            c.give(&path, &body)?;
        }
    }
    let out = c.finish()?;
    Ok((c, serde_json::from_str(&out).unwrap()))
}

/// A verified development log whose one release lists `measurement`.
pub fn dev_log_listing(measurement: &str) -> LogCheckCore {
    let keys = Keys::dev(1);
    let files = keys.serve(&[keys.signed(&release(measurement), 2)], 2, 60);
    check(keys.trust(true), "", &files).unwrap().0
}
