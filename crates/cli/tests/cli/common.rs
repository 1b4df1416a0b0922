//! A real local stack for integration tests: a tiny generated model, an enclave on the
//! simulated platform, a recording TCP tap standing where the enclave's network would be, and
//! the untrusted server in front, all on loopback sockets.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sotto::client::{ClientError, Connection};
use sotto_attester::{Attester, GpuConfig, PlatformConfig};
use sotto_channel::frame::{self, Decoder};
use sotto_channel::ChannelError;
use sotto_enclave::{Enclave, EnclaveConfig};
use sotto_engine::EngineConfig;
use sotto_server::ServerConfig;
use sotto_verify::VerifyError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const MEASUREMENT_INPUT: &[u8] = b"sotto-enclave test build";

/// The stdout of a command that must have succeeded; `what` names it when it did not.
pub fn succeeded<'a>(what: &str, out: &'a std::process::Output) -> &'a [u8] {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    &out.stdout
}

pub fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    sotto_testkit::write_tiny_qwen2_gguf(&path, 7).expect("write tiny model");
    path
}

pub fn sim_platform(data_dir: &Path) -> PlatformConfig {
    PlatformConfig::Simulated {
        data_dir: data_dir.to_path_buf(),
        measurement_input: MEASUREMENT_INPUT.to_vec(),
    }
}

pub fn boot(data_dir: &Path, model: &Path) -> Enclave {
    boot_with(data_dir, model, None)
}

/// Boots an enclave on `model`, answering through the embedded engine or, given one, the
/// `llama-server` binary it starts.
pub fn boot_with(data_dir: &Path, model: &Path, llama_server: Option<PathBuf>) -> Enclave {
    let engine = EngineConfig {
        threads: NonZeroU32::MIN,
        context_size: NonZeroU32::new(512).unwrap(),
        ..EngineConfig::default()
    };
    let config = EnclaveConfig {
        model_path: model.to_path_buf(),
        model_sha256: None,
        platform: sim_platform(data_dir),
        gpu: GpuConfig::None,
        engine,
        batch: sotto_engine::BatchConfig {
            sequences: NonZeroU32::new(4).unwrap(),
            queue: 64,
        },
        llama_server,
    };
    Enclave::boot(config, sotto::client::now(), &mut |_, _, _| {}).expect("enclave boots")
}

/// Boots an enclave on a tiny model written to `data_dir`, off the runtime's threads: loading
/// the model blocks.
pub async fn boot_tiny(data_dir: &Path) -> Enclave {
    let model = tiny_model(data_dir);
    let dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || boot(&dir, &model))
        .await
        .unwrap()
}

/// The release of `enclave`'s build (with `web`, a browser client, if any), as `sotto up` logs it.
pub fn release_of(
    enclave: &Enclave,
    web: Option<sotto_release::manifest::WebBundle>,
) -> sotto_release::Release {
    let measurement = sotto::stack::simulated_measurement(enclave).expect("simulated");
    sotto::devlog::release_of(&sotto::devlog::EnclaveRelease {
        manifest: enclave.manifest(),
        measurement: &measurement,
        web,
    })
}

/// The simulated platform's root, as a client would pin it.
pub fn sim_root(data_dir: &Path) -> Vec<u8> {
    let attester = Attester::open(
        sim_platform(data_dir),
        GpuConfig::None,
        sotto::client::now(),
    )
    .expect("attester");
    let ev = attester.evidence(&[0u8; 64], None).expect("evidence");
    match ev.cpu {
        sotto_verify::CpuEvidence::Simulated { chain_der, .. } => {
            chain_der.last().cloned().expect("root")
        }
        _ => panic!("not simulated"),
    }
}

pub fn policy(data_dir: &Path) -> sotto_verify::Policy {
    sotto_verify::Policy {
        allow_simulated: true,
        simulated_root: Some(sim_root(data_dir)),
        ..Default::default()
    }
}

/// What the tap does to frames flowing from the enclave to the client.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TapMode {
    Pass,
    /// Flip one byte in the n-th frame (0-based) sent by the enclave.
    FlipDown(usize),
}

/// A TCP proxy in front of the enclave that records every byte the relay forwarded and
/// counts frames in each direction.
pub struct Tap {
    pub addr: SocketAddr,
    pub recorded: Arc<Mutex<Vec<u8>>>,
    pub up_frames: Arc<AtomicUsize>,
    pub down_frames: Arc<AtomicUsize>,
}

impl Tap {
    pub async fn start(target: SocketAddr, mode: TapMode) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tap = Tap {
            addr: listener.local_addr().unwrap(),
            recorded: Arc::default(),
            up_frames: Arc::default(),
            down_frames: Arc::default(),
        };
        let (recorded, up, down) = (
            tap.recorded.clone(),
            tap.up_frames.clone(),
            tap.down_frames.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(copy_frames(
                    cr,
                    sw,
                    recorded.clone(),
                    up.clone(),
                    TapMode::Pass,
                ));
                tokio::spawn(copy_frames(sr, cw, recorded.clone(), down.clone(), mode));
            }
        });
        tap
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.recorded.lock().unwrap().clone()
    }
}

async fn copy_frames(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    recorded: Arc<Mutex<Vec<u8>>>,
    count: Arc<AtomicUsize>,
    mode: TapMode,
) {
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        recorded.lock().unwrap().extend_from_slice(&buf[..n]);
        decoder.push(&buf[..n]);
        while let Ok(Some(mut f)) = decoder.next_frame() {
            let index = count.fetch_add(1, Ordering::SeqCst);
            if mode == TapMode::FlipDown(index) {
                let mid = f.len() / 2;
                f[mid] ^= 0x01;
            }
            if to.write_all(&frame::encode(&f).unwrap()).await.is_err() {
                return;
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Serves the untrusted server in front of `enclave_addr`; returns its base URL.
pub async fn start_server(enclave_addr: SocketAddr) -> String {
    start_server_with_log(enclave_addr, None).await
}

/// The same, also serving a release log directory at /log/.
pub async fn start_server_with_log(enclave_addr: SocketAddr, log_dir: Option<PathBuf>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = ServerConfig::new(enclave_addr);
    config.log_dir = log_dir;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            sotto_server::router(config).expect("relay-only router"),
        )
        .await;
    });
    format!("http://{addr}")
}

/// A development release log (as `sotto up` runs it) that lists `enclave`'s build.
pub async fn dev_log(data_dir: &Path, enclave: &Enclave) -> sotto::devlog::DevLog {
    sotto::devlog::DevLog::start(data_dir, release_of(enclave, None))
        .await
        .expect("development log")
}

/// The releases a client finds in the log `url` serves, checked as `sotto chat` checks them.
pub async fn releases(
    url: &str,
    trust: &sotto_release::Trust,
    profile_dir: &Path,
) -> sotto_release::ReleaseSet {
    let profile = sotto::local::Profile::new(Some(profile_dir.to_path_buf()));
    sotto::transparency::check(url, trust, &profile, sotto::client::now().0)
        .await
        .expect("the log verifies")
        .releases
}

/// Serves `enclave` on a loopback port; returns the port's address.
pub async fn start_enclave(enclave: Enclave) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sotto_enclave::serve(Arc::new(enclave), listener));
    addr
}

/// The full stack: enclave behind a tap behind the server.
pub struct Stack {
    /// Held for its lifetime: the enclave's keys and the log live there.
    _data_dir: tempfile::TempDir,
    pub url: String,
    pub enclave_addr: SocketAddr,
    pub tap: Tap,
    pub policy: sotto_verify::Policy,
    /// What a client found in the stack's release log.
    pub releases: sotto_release::ReleaseSet,
}

pub async fn stack(mode: TapMode) -> Stack {
    let data_dir = tempfile::tempdir().unwrap();
    let enclave = boot_tiny(data_dir.path()).await;
    let log = dev_log(data_dir.path(), &enclave).await;
    let enclave_addr = start_enclave(enclave).await;
    let tap = Tap::start(enclave_addr, mode).await;
    let url = start_server_with_log(tap.addr, Some(log.public_dir.clone())).await;
    let policy = policy(data_dir.path());
    let releases = releases(&url, &log.trust, &data_dir.path().join("client")).await;
    Stack {
        _data_dir: data_dir,
        url,
        enclave_addr,
        tap,
        policy,
        releases,
    }
}

impl Stack {
    /// A client connection as `sotto chat` opens one: the stack's pinned root and its logged
    /// releases.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        connect(&self.url, &self.policy, &self.releases).await
    }
}

/// A client connection to the server at `url` under `policy` and `releases`, with no further
/// expectations.
pub async fn connect(
    url: &str,
    policy: &sotto_verify::Policy,
    releases: &sotto_release::ReleaseSet,
) -> Result<Connection, ClientError> {
    Connection::open(
        url,
        policy,
        releases,
        &sotto_channel::handshake::Expectations::default(),
        sotto::client::now(),
    )
    .await
}

/// The check of the enclave's evidence that refused a connection.
pub fn evidence_refusal<T>(opened: Result<T, ClientError>) -> VerifyError {
    match opened {
        Err(ClientError::Channel(ChannelError::Evidence(e))) => e,
        Err(e) => panic!("refused, but not for its evidence: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

/// The releases of an in-memory development log holding `release`, signed by both of its
/// release keys (for tests that need admission without a server).
pub fn releases_listing(release: &sotto_release::Release) -> sotto_release::ReleaseSet {
    use sotto_tlog::note::{Note, Signer, TYPE_COSIGNATURE_V1, TYPE_ED25519};
    let origin = format!("{}in-memory", sotto_release::trust::DEV_ORIGIN_PREFIX);
    let log = Signer::from_seed(&origin, TYPE_ED25519, &[1; 32]).unwrap();
    let witness = Signer::from_seed("w.test", TYPE_COSIGNATURE_V1, &[2; 32]).unwrap();
    let keys: Vec<Signer> = (0..2u8)
        .map(|i| Signer::from_seed(&format!("r{i}.test"), TYPE_ED25519, &[3 + i; 32]).unwrap())
        .collect();
    let trust = sotto_release::Trust::from_file(sotto_release::trust::TrustFile {
        format: sotto_release::trust::TRUST_FORMAT.into(),
        dev: true,
        log: sotto_release::trust::LogPin {
            origin: origin.clone(),
            vkey: log.verifier().to_vkey(),
        },
        witnesses: sotto_release::trust::Quorum {
            quorum: 1,
            keys: vec![witness.verifier().to_vkey()],
        },
        release_keys: sotto_release::trust::Quorum {
            quorum: 2,
            keys: keys.iter().map(|k| k.verifier().to_vkey()).collect(),
        },
        max_cosignature_age_secs: 3600,
    })
    .unwrap();
    let text = sotto_release::Statement::Release(Box::new(release.clone()))
        .to_text()
        .unwrap();
    let mut note = Note::new(text.clone()).unwrap();
    for k in &keys {
        note.add_signature(k.sign(&text).unwrap());
    }
    sotto_release::ReleaseSet::from_entries(&trust, &[note.to_bytes()])
}

/// A user's message, as a client sends it.
pub fn user(text: &str) -> sotto_channel::messages::WireMessage {
    sotto_channel::messages::WireMessage {
        role: sotto_channel::messages::Role::User,
        content: zeroize::Zeroizing::new(text.to_string()),
    }
}

/// The default sampling, at most `max_tokens` tokens.
pub fn params(max_tokens: u32) -> sotto_channel::messages::GenParams {
    sotto_channel::messages::GenParams {
        max_tokens,
        ..sotto_channel::messages::GenParams::default()
    }
}
