//! Fixtures for the browser core's tests: a real in-process enclave responder holding a
//! simulated-platform identity (its evidence binds its static key and manifest exactly as the
//! enclave's does), and transparency logs built in memory with the real note, checkpoint,
//! cosignature and tile formats, listing signed releases.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sotto_attester::{Attester, GpuConfig, PlatformConfig};
use sotto_channel::binding::{manifest_digest, report_data};
use sotto_channel::handshake::{AttestationPayload, ServerHandshake, StaticKey};
use sotto_channel::manifest::{EngineManifest, Manifest, ModelManifest, MANIFEST_FORMAT};
use sotto_channel::Session;
use sotto_release::manifest::{Engine, Model, Platforms, Release, Simulated, Statement, FORMAT};
use sotto_release::trust::{LogPin, Quorum, TrustFile, TRUST_FORMAT};
use sotto_release::Trust;
use sotto_tlog::merkle::{leaf_hash, root};
use sotto_tlog::note::{Note, Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use sotto_tlog::tile::{all_entry_bundles, encode_bundle, TILE_WIDTH};
use sotto_tlog::Checkpoint;
use sotto_verify_core::UnixTime;
use sotto_web::channel::ChannelCore;
use sotto_web::release::LogCheckCore;
use sotto_web::WebError;

pub fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
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

/// The keys of one deployment's log: the log key, three witnesses, three release keys.
pub struct Keys {
    pub log: Signer,
    pub witnesses: Vec<Signer>,
    pub release: Vec<Signer>,
}

impl Keys {
    pub fn new(origin: &str, seed: u8) -> Self {
        Keys {
            log: Signer::from_seed(origin, TYPE_ED25519, &[seed; 32]).unwrap(),
            witnesses: (0..3u8)
                .map(|i| {
                    Signer::from_seed(
                        &format!("witness{i}.example"),
                        TYPE_COSIGNATURE_V1,
                        &[seed.wrapping_add(10 + i); 32],
                    )
                    .unwrap()
                })
                .collect(),
            release: (0..3u8)
                .map(|i| {
                    Signer::from_seed(
                        &format!("release{i}.example"),
                        TYPE_ED25519,
                        &[seed.wrapping_add(20 + i); 32],
                    )
                    .unwrap()
                })
                .collect(),
        }
    }

    /// A development deployment's keys (its origin under the reserved development prefix).
    pub fn dev(seed: u8) -> Self {
        Self::new(&format!("dev.sotto.invalid/web-test-{seed}"), seed)
    }

    pub fn trust_file(&self, dev: bool) -> TrustFile {
        TrustFile {
            format: TRUST_FORMAT.into(),
            dev,
            log: LogPin {
                origin: self.log.name().into(),
                vkey: self.log.verifier().to_vkey(),
            },
            witnesses: Quorum {
                quorum: 2,
                keys: self
                    .witnesses
                    .iter()
                    .map(|w| w.verifier().to_vkey())
                    .collect(),
            },
            release_keys: Quorum {
                quorum: 2,
                keys: self
                    .release
                    .iter()
                    .map(|r| r.verifier().to_vkey())
                    .collect(),
            },
            max_cosignature_age_secs: 3600,
        }
    }

    pub fn trust_json(&self, dev: bool) -> String {
        serde_json::to_string(&self.trust_file(dev)).unwrap()
    }

    pub fn trust(&self, dev: bool) -> Trust {
        Trust::from_file(self.trust_file(dev)).unwrap()
    }

    /// A statement signed by the first `n` release keys.
    pub fn signed(&self, statement: &Statement, n: usize) -> Vec<u8> {
        let text = statement.to_text().unwrap();
        let mut note = Note::new(text.clone()).unwrap();
        for s in &self.release[..n] {
            note.add_signature(s.sign(&text).unwrap());
        }
        note.to_bytes()
    }

    /// The files a log of `entries` serves: its checkpoint signed by the log key and cosigned
    /// by the first `witnesses` witnesses `age` seconds ago, and its entry bundles.
    pub fn serve(&self, entries: &[Vec<u8>], witnesses: usize, age: u64) -> Files {
        let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
        let cp = Checkpoint::new(self.log.name(), entries.len() as u64, root(&leaves));
        let text = cp.to_text();
        let mut note = Note::new(text.clone()).unwrap();
        note.add_signature(self.log.sign(&text).unwrap());
        for w in &self.witnesses[..witnesses] {
            note.add_signature(w.cosign(&text, now().0 - age).unwrap());
        }
        let mut files = BTreeMap::new();
        files.insert("checkpoint".to_string(), note.to_bytes());
        for tile in all_entry_bundles(entries.len() as u64) {
            let start = (tile.index * TILE_WIDTH) as usize;
            let bundle = encode_bundle(&entries[start..start + usize::from(tile.width)]).unwrap();
            files.insert(tile.path(), bundle);
        }
        files
    }
}

pub type Files = BTreeMap<String, Vec<u8>>;

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
