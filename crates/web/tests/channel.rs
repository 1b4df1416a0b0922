//! The browser channel, natively, against a real in-process enclave responder: a Noise
//! responder holding a simulated-platform identity whose evidence binds its static key and
//! manifest exactly as the enclave's does. Every refusal leaves nothing sealable.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;
use sotto_attester::{Attester, GpuConfig, PlatformConfig};
use sotto_channel::binding::{manifest_digest, report_data};
use sotto_channel::handshake::{AttestationPayload, ServerHandshake, StaticKey};
use sotto_channel::manifest::{EngineManifest, Manifest, ModelManifest, MANIFEST_FORMAT};
use sotto_channel::messages::{ClientMessage, ErrorKind, Role, ServerMessage, Stats};
use sotto_channel::{ChannelError, Session};
use sotto_verify::VerifyError;
use sotto_verify_core::UnixTime;
use sotto_verify_snp::SnpError;
use sotto_web::channel::ChannelCore;
use sotto_web::WebError;
use zeroize::Zeroizing;

fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

const MODEL_SHA: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

struct Enclave {
    _dir: tempfile::TempDir,
    attester: Attester,
    key: StaticKey,
    manifest: Vec<u8>,
}

impl Enclave {
    fn boot() -> Self {
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
            release: "web-test".into(),
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

    fn root_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(self.attester.simulated_root_der().unwrap())
    }

    /// Answers a hello as the enclave does: evidence whose REPORT_DATA binds key and manifest.
    fn respond(&self, hello: &[u8]) -> (Vec<u8>, Session) {
        let rd = report_data(self.key.public(), &manifest_digest(&self.manifest));
        let payload = AttestationPayload {
            manifest: self.manifest.clone(),
            evidence: self.attester.evidence(&rd, None).unwrap(),
        }
        .encode()
        .unwrap();
        ServerHandshake::respond(&self.key, hello, &payload).unwrap()
    }

    fn policy(&self) -> String {
        format!(
            r#"{{"allow_simulated":true,"simulated_root":"{}","expect_model_sha256":"{MODEL_SHA}"}}"#,
            self.root_b64()
        )
    }
}

/// Runs a handshake; returns the client, the enclave's session and the finish result.
fn connect(enclave: &Enclave, policy: &str) -> (ChannelCore, Session, Result<String, WebError>) {
    let mut client = ChannelCore::new(policy).unwrap();
    let (reply, server) = enclave.respond(client.hello());
    let result = client.finish(&reply, now());
    (client, server, result)
}

/// Feeds every frame of one server message to the client; returns the results in order.
fn deliver(
    client: &mut ChannelCore,
    server: &mut Session,
    msg: &ServerMessage,
) -> Vec<Option<Value>> {
    server
        .seal(&msg.encode())
        .unwrap()
        .iter()
        .map(|f| {
            client
                .open(f)
                .unwrap()
                .map(|s| serde_json::from_str(&s).unwrap())
        })
        .collect()
}

fn receive_request(server: &mut Session, frames: &[Vec<u8>]) -> ClientMessage {
    let mut whole = None;
    for (i, f) in frames.iter().enumerate() {
        let opened = server.open(f).unwrap();
        assert_eq!(opened.is_some(), i == frames.len() - 1);
        whole = opened;
    }
    ClientMessage::decode(&whole.unwrap()).unwrap()
}

#[test]
fn verified_round_trip_with_the_enclave() {
    let enclave = Enclave::boot();
    let (mut client, mut server, result) = connect(&enclave, &enclave.policy());
    let summary: Value = serde_json::from_str(&result.unwrap()).unwrap();
    assert_eq!(summary["platform"], "simulated");
    assert_eq!(summary["simulated"], true);
    assert_eq!(summary["simulated_root_pinned"], true);
    assert_eq!(summary["model"]["sha256"], MODEL_SHA);
    assert_eq!(summary["model"]["name"], "tiny.gguf");
    assert_eq!(summary["release"], "web-test");
    assert_eq!(summary["gpu_attested"], false);
    assert_eq!(
        summary["enclave_static_key"],
        hex::encode(enclave.key.public())
    );
    let measurement = summary["measurement"].as_str().unwrap();
    assert_eq!(measurement.len(), 96);
    assert_eq!(summary["verdict"]["cpu"]["platform"], "simulated");
    assert_eq!(summary["verdict"]["cpu"]["measurement"], measurement);

    // The request arrives intact, with the defaults filled in where params are silent.
    let frames = client
        .seal_chat(
            r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}]"#,
            r#"{"max_tokens":7,"seed":3}"#,
        )
        .unwrap();
    assert_eq!(frames.len(), 1);
    let ClientMessage::Chat { messages, params } = receive_request(&mut server, &frames);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].role, Role::System);
    assert_eq!(messages[1].role, Role::User);
    assert_eq!(messages[1].content.as_str(), "Capital of France?");
    assert_eq!(params.max_tokens, 7);
    assert_eq!(params.seed, Some(3));
    assert_eq!(params.temperature, 0.0);

    // A conversation over one Noise message is split, and reassembled by the enclave.
    let long = "x".repeat(100_000);
    let frames = client
        .seal_chat(&format!(r#"[{{"role":"user","content":"{long}"}}]"#), "")
        .unwrap();
    assert_eq!(frames.len(), 2);
    let ClientMessage::Chat { messages, .. } = receive_request(&mut server, &frames);
    assert_eq!(messages[0].content.len(), 100_000);

    // A conversation over the transport's limit is refused without ending the channel.
    let huge = "z".repeat(sotto_channel::transport::MAX_MESSAGE);
    let refused = client.seal_chat(&format!(r#"[{{"role":"user","content":"{huge}"}}]"#), "");
    assert!(matches!(
        refused,
        Err(WebError::Channel(ChannelError::MessageTooLarge { .. }))
    ));
    let frames = client
        .seal_chat(r#"[{"role":"user","content":"shorter"}]"#, "")
        .unwrap();
    let ClientMessage::Chat { messages, .. } = receive_request(&mut server, &frames);
    assert_eq!(messages[0].content.as_str(), "shorter");

    // The streamed answer, event by event.
    let token = |t: &str| ServerMessage::Token(Zeroizing::new(t.to_owned()));
    assert_eq!(
        deliver(&mut client, &mut server, &token("Par")),
        vec![Some(serde_json::json!({"token": "Par"}))]
    );
    let stats = Stats {
        prompt_tokens: 12,
        generated_tokens: 2,
        time_to_first_token_ms: 5.5,
        generation_ms: 20.0,
    };
    let done = deliver(&mut client, &mut server, &ServerMessage::Done(stats));
    assert_eq!(done[0].as_ref().unwrap()["done"]["prompt_tokens"], 12);
    assert_eq!(done[0].as_ref().unwrap()["done"]["generation_ms"], 20.0);
    let err = deliver(
        &mut client,
        &mut server,
        &ServerMessage::Error {
            kind: ErrorKind::ContextExceeded,
            message: "too long".into(),
        },
    );
    assert_eq!(
        err,
        vec![Some(
            serde_json::json!({"error": {"kind": "context_exceeded", "message": "too long"}})
        )]
    );

    // A message over several frames yields nothing until its last frame.
    let big = "y".repeat(150_000);
    let events = deliver(&mut client, &mut server, &token(&big));
    assert_eq!(events.len(), 3);
    assert!(events[0].is_none() && events[1].is_none());
    assert_eq!(events[2].as_ref().unwrap()["token"].as_str().unwrap(), big);

    // A tampered frame ends the channel: nothing more is opened or sealed.
    let mut frames = server.seal(&token("ok").encode()).unwrap();
    frames[0][5] ^= 1;
    assert!(matches!(
        client.open(&frames[0]),
        Err(WebError::Channel(ChannelError::Decrypt))
    ));
    assert!(matches!(
        client.seal_chat(r#"[{"role":"user","content":"more"}]"#, ""),
        Err(WebError::Closed(_))
    ));
}

#[test]
fn simulated_enclave_refused_unless_allowed_and_nothing_can_be_sealed() {
    let enclave = Enclave::boot();
    let (mut client, _server, result) = connect(&enclave, "{}");
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            WebError::Channel(ChannelError::Evidence(VerifyError::SimulatedNotAllowed))
        ),
        "{err}"
    );
    assert!(err.to_string().contains("SIMULATED"), "{err}");
    let sealed = client.seal_chat(r#"[{"role":"user","content":"secret"}]"#, "");
    assert!(matches!(sealed, Err(WebError::Closed(_))));
}

#[test]
fn another_simulated_root_is_refused() {
    let enclave = Enclave::boot();
    let other = Enclave::boot();
    let policy = format!(
        r#"{{"allow_simulated":true,"simulated_root":"{}"}}"#,
        other.root_b64()
    );
    let (_, _, result) = connect(&enclave, &policy);
    assert!(matches!(
        result,
        Err(WebError::Channel(ChannelError::Evidence(VerifyError::Snp(
            SnpError::SimulatedRootMismatch
        ))))
    ));
    // Without a pinned root any simulated enclave passes, and the summary says so.
    let (_, _, result) = connect(&enclave, r#"{"allow_simulated":true}"#);
    let summary: Value = serde_json::from_str(&result.unwrap()).unwrap();
    assert_eq!(summary["simulated_root_pinned"], false);
}

#[test]
fn measurement_and_model_pins_are_enforced() {
    let enclave = Enclave::boot();
    let (_, _, result) = connect(&enclave, &enclave.policy());
    let summary: Value = serde_json::from_str(&result.unwrap()).unwrap();
    let measurement = summary["measurement"].as_str().unwrap().to_owned();
    let pinned = |m: &str, model: &str| {
        format!(
            r#"{{"allow_simulated":true,"simulated_root":"{}","expect_measurement":"{m}","expect_model_sha256":"{model}"}}"#,
            enclave.root_b64()
        )
    };
    let (_, _, ok) = connect(&enclave, &pinned(&measurement, MODEL_SHA));
    ok.unwrap();
    let mut other = measurement.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let other = String::from_utf8(other).unwrap();
    let (_, _, refused) = connect(&enclave, &pinned(&other, MODEL_SHA));
    assert!(matches!(
        refused,
        Err(WebError::Channel(ChannelError::Evidence(VerifyError::Snp(
            SnpError::MeasurementNotAllowed(_)
        ))))
    ));
    let (_, _, refused) = connect(&enclave, &pinned(&measurement, &"00".repeat(32)));
    let err = refused.unwrap_err();
    assert!(
        matches!(err, WebError::Channel(ChannelError::Manifest(_))),
        "{err}"
    );
}

#[test]
fn a_relay_that_swaps_the_handshake_key_is_refused() {
    let enclave = Enclave::boot();
    let impostor = Enclave {
        key: StaticKey::generate().unwrap(),
        ..Enclave::boot()
    };
    // The impostor relays the genuine enclave's evidence under its own Noise key.
    let mut client = ChannelCore::new(&enclave.policy()).unwrap();
    let rd = report_data(enclave.key.public(), &manifest_digest(&enclave.manifest));
    let payload = AttestationPayload {
        manifest: enclave.manifest.clone(),
        evidence: enclave.attester.evidence(&rd, None).unwrap(),
    }
    .encode()
    .unwrap();
    let (reply, _) = ServerHandshake::respond(&impostor.key, client.hello(), &payload).unwrap();
    assert!(matches!(
        client.finish(&reply, now()),
        Err(WebError::Channel(ChannelError::Evidence(VerifyError::Snp(
            SnpError::ReportDataMismatch
        ))))
    ));
}
