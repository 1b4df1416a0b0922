//! Evidence that does not bind to this channel is refused before a prompt byte leaves the
//! client. Each case stands up a real server relay in front of a hostile "enclave" that holds
//! the genuine simulated-platform authority (so its signatures verify under the pinned root)
//! but lies about the binding, or a relay that swaps in its own handshake key.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{sim_platform, start_server};
use sotto::client::{now, ClientError};
use sotto_attester::{Attester, GpuConfig};
use sotto_channel::binding::{manifest_digest, report_data};
use sotto_channel::frame::{self, Decoder};
use sotto_channel::handshake::{AttestationPayload, ClientHandshake, StaticKey};
use sotto_channel::manifest::{EngineManifest, Manifest, ModelManifest, MANIFEST_FORMAT};
use sotto_channel::ServerHandshake;
use sotto_release::ReleaseSet;
use sotto_verify::{CpuEvidence, VerifyError};
use sotto_verify_snp::SnpError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn manifest(model_sha: &str) -> Vec<u8> {
    Manifest {
        format: MANIFEST_FORMAT,
        release: "test".into(),
        platform: "simulated".into(),
        model: ModelManifest {
            name: "tiny.gguf".into(),
            sha256: model_sha.into(),
            size: 1,
        },
        engine: EngineManifest {
            name: "test".into(),
            version: "0".into(),
            context: 512,
        },
        gpu_evidence_sha256: None,
    }
    .to_bytes()
}

async fn read_frame(stream: &mut TcpStream, decoder: &mut Decoder) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(Some(f)) = decoder.next_frame() {
            return Some(f);
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => decoder.push(&buf[..n]),
        }
    }
}

/// What a hostile enclave answers a client's nonce with.
type MakePayload = Arc<dyn Fn(&[u8; 32]) -> Vec<u8> + Send + Sync>;

/// A hostile enclave: answers every handshake with `key` and the payload `make` builds for the
/// client's nonce, then counts the frames the client sends afterwards (there must be none).
async fn hostile_enclave(key: StaticKey, make: MakePayload) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let after = Arc::new(AtomicUsize::new(0));
    let counter = after.clone();
    let key = Arc::new(key);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (key, make, counter) = (key.clone(), make.clone(), counter.clone());
            tokio::spawn(async move {
                let mut decoder = Decoder::new();
                let Some(hello) = read_frame(&mut stream, &mut decoder).await else {
                    return;
                };
                let (reply, _session) =
                    ServerHandshake::respond(&key, &hello, |nonce| Ok(make(nonce))).unwrap();
                stream
                    .write_all(&frame::encode(&reply).unwrap())
                    .await
                    .unwrap();
                while read_frame(&mut stream, &mut decoder).await.is_some() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, after)
}

struct Fixture {
    _dir: tempfile::TempDir,
    attester: Arc<Attester>,
    policy: sotto_verify::Policy,
    /// A log's releases listing this attester's build with the manifest below.
    releases: ReleaseSet,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let attester =
        Arc::new(Attester::open(sim_platform(dir.path()), GpuConfig::None, now()).unwrap());
    let policy = common::policy(dir.path());
    let CpuEvidence::Simulated { report, .. } = attester.evidence(&[0; 64], None).unwrap().cpu
    else {
        panic!("simulated")
    };
    let measurement = sotto_verify_snp::AttestationReport::parse(&report)
        .unwrap()
        .measurement;
    let manifest = Manifest::parse(&manifest(&"11".repeat(32))).unwrap();
    let mut release = sotto::devlog::release_of(&sotto::devlog::EnclaveRelease {
        manifest: &manifest,
        measurement: &hex::encode(measurement),
        web: None,
    });
    release.clients.clear();
    let releases = common::releases_listing(&release);
    Fixture {
        _dir: dir,
        attester,
        policy,
        releases,
    }
}

async fn attempt(
    f: &Fixture,
    key: StaticKey,
    make: MakePayload,
) -> (Result<(), ClientError>, usize) {
    let (addr, after) = hostile_enclave(key, make).await;
    let url = start_server(addr).await;
    let result = common::connect(&url, &f.policy, &f.releases)
        .await
        .map(|_| ());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    (result, after.load(Ordering::SeqCst))
}

fn payload(attester: &Attester, manifest_bytes: Vec<u8>, rd: [u8; 64]) -> Vec<u8> {
    let evidence = attester.evidence(&rd, None).unwrap();
    AttestationPayload {
        manifest: manifest_bytes,
        evidence,
    }
    .encode()
    .unwrap()
}

/// The check of the SNP evidence that refused a connection.
fn snp_refusal<T>(opened: Result<T, ClientError>) -> SnpError {
    match common::evidence_refusal(opened) {
        VerifyError::Snp(e) => e,
        e => panic!("refused by another check: {e}"),
    }
}

/// A payload whose evidence commits to `key`, the digest of `attested` and the nonce that
/// `nonce_of` picks from the client's, shown with the manifest `shown`.
fn bound(
    f: &Fixture,
    key: &StaticKey,
    shown: Vec<u8>,
    attested: &[u8],
    nonce_of: fn(&[u8; 32]) -> [u8; 32],
) -> MakePayload {
    let attester = f.attester.clone();
    let key = *key.public();
    let digest = manifest_digest(attested);
    Arc::new(move |nonce| {
        payload(
            &attester,
            shown.clone(),
            report_data(&key, &digest, &nonce_of(nonce)),
        )
    })
}

fn the_clients(nonce: &[u8; 32]) -> [u8; 32] {
    *nonce
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_binding_is_accepted_so_the_refusals_below_are_meaningful() {
    let f = fixture();
    let key = StaticKey::generate().unwrap();
    let m = manifest(&"11".repeat(32));
    let make = bound(&f, &key, m.clone(), &m, the_clients);
    let (result, _) = attempt(&f, key, make).await;
    result.expect("a correctly bound simulated enclave is accepted");
}

/// Genuine evidence that commits to something other than this handshake: each field of the
/// report data in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_bound_to_another_key_manifest_or_handshake_is_refused_before_sending() {
    let f = fixture();
    let shown = manifest(&"11".repeat(32));
    let other_manifest = manifest(&"22".repeat(32));
    let other_key = StaticKey::generate().unwrap();
    /// What the evidence commits to: a key (`None`: the enclave's own), a manifest, and the
    /// nonce it picks from the client's.
    type Case<'a> = (
        &'a str,
        Option<&'a StaticKey>,
        &'a [u8],
        fn(&[u8; 32]) -> [u8; 32],
    );
    let cases: [Case<'_>; 3] = [
        ("another static key", Some(&other_key), &shown, the_clients),
        ("another manifest", None, &other_manifest, the_clients),
        // Made earlier over another nonce: what a thief of the static key and of evidence it
        // once saw would replay. Stale, so refused.
        ("another handshake", None, &shown, |_| [0; 32]),
    ];
    for (what, committed_key, attested, nonce_of) in cases {
        let key = StaticKey::generate().unwrap();
        let make = bound(
            &f,
            committed_key.unwrap_or(&key),
            shown.clone(),
            attested,
            nonce_of,
        );
        let (result, sent) = attempt(&f, key, make).await;
        assert_eq!(snp_refusal(result), SnpError::ReportDataMismatch, "{what}");
        assert_eq!(sent, 0, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_evidence_signature_is_refused_before_sending() {
    let f = fixture();
    let key = StaticKey::generate().unwrap();
    let m = manifest(&"11".repeat(32));
    let (attester, key_pub, digest) = (f.attester.clone(), *key.public(), manifest_digest(&m));
    let make: MakePayload = Arc::new(move |nonce| {
        let mut evidence = attester
            .evidence(&report_data(&key_pub, &digest, nonce), None)
            .unwrap();
        let CpuEvidence::Simulated { report, .. } = &mut evidence.cpu else {
            panic!("simulated")
        };
        report[0x2A0 + 5] ^= 0x80;
        AttestationPayload {
            manifest: m.clone(),
            evidence,
        }
        .encode()
        .unwrap()
    });
    let (result, sent) = attempt(&f, key, make).await;
    assert_eq!(snp_refusal(result), SnpError::SignatureInvalid);
    assert_eq!(sent, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_that_swaps_in_its_own_handshake_key_is_refused_before_sending() {
    // A genuine enclave behind the attacker.
    let dir = tempfile::tempdir().unwrap();
    let genuine = common::start_enclave(common::boot_tiny(dir.path()).await).await;

    // The attacker obtains the genuine attestation payload by handshaking with it...
    let mut stream = TcpStream::connect(genuine).await.unwrap();
    let (hs, hello) = ClientHandshake::start().unwrap();
    stream
        .write_all(&frame::encode(&hello.0).unwrap())
        .await
        .unwrap();
    let reply = read_frame(&mut stream, &mut Decoder::new()).await.unwrap();
    let genuine_payload = hs
        .read_response(&reply)
        .unwrap()
        .payload()
        .encode()
        .unwrap();

    // ...and answers the victim with it under its own key.
    let attacker_key = StaticKey::generate().unwrap();
    let (addr, after) =
        hostile_enclave(attacker_key, Arc::new(move |_| genuine_payload.clone())).await;
    let url = start_server(addr).await;
    let policy = common::policy(dir.path());
    let opened = common::connect(&url, &policy, &ReleaseSet::default()).await;
    assert_eq!(snp_refusal(opened), SnpError::ReportDataMismatch);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(after.load(Ordering::SeqCst), 0);
}
