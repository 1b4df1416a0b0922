//! The browser channel, natively, against a real in-process enclave responder (tests/common):
//! a Noise responder holding a simulated-platform identity whose evidence binds its static key
//! and manifest exactly as the enclave's does, admitted by a release in a verified log. Every
//! refusal leaves nothing sealable.

mod common;

use common::{dev_log_listing, now, Enclave, COMMIT, MODEL_SHA};
use serde_json::Value;
use sotto_channel::binding::{manifest_digest, report_data};
use sotto_channel::handshake::{AttestationPayload, ServerHandshake, StaticKey};
use sotto_channel::messages::{ClientMessage, ErrorKind, Role, ServerMessage, Stats, Stop};
use sotto_channel::{ChannelError, Session};
use sotto_verify::VerifyError;
use sotto_verify_snp::SnpError;
use sotto_web::channel::ChannelCore;
use sotto_web::WebError;
use zeroize::Zeroizing;

/// Runs a handshake; returns the client, the enclave's session and the finish result.
fn attest(enclave: &Enclave, policy: &str) -> (ChannelCore, Session, Result<String, WebError>) {
    let mut client = ChannelCore::new(policy).unwrap();
    let (reply, server) = enclave.respond(client.hello());
    let result = client.finish(&reply, now());
    (client, server, result)
}

/// Both steps, as the web app takes them: the evidence, then a verified development log whose
/// release lists the measurement the evidence reported. Returns the admitted summary.
fn connect(enclave: &Enclave, policy: &str) -> (ChannelCore, Session, Value) {
    let (mut client, server, attested) = attest(enclave, policy);
    let attested: Value = serde_json::from_str(&attested.unwrap()).unwrap();
    let log = dev_log_listing(attested["measurement"].as_str().unwrap());
    let admitted = client.admit(&log).unwrap();
    (client, server, serde_json::from_str(&admitted).unwrap())
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
    let (mut client, mut server, summary) = connect(&enclave, &enclave.policy());
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
    assert_eq!(summary["admitted"]["name"], "sotto");
    assert_eq!(summary["admitted"]["version"], "web-test");
    assert_eq!(summary["admitted"]["source_commit"], COMMIT);
    assert_eq!(summary["admitted"]["index"], 0);
    assert_eq!(
        summary["admitted"]["signers"],
        serde_json::json!(["release0.example", "release1.example"])
    );
    assert_eq!(summary["log"]["origin"], "dev.sotto.invalid/web-test-1");
    assert_eq!(summary["log"]["size"], 1);
    assert_eq!(summary["log"]["previous_size"], Value::Null);
    assert_eq!(summary["log"]["cosigners"].as_array().unwrap().len(), 2);
    assert_eq!(summary["log"]["cosigners"][0]["name"], "witness0.example");
    assert!(
        summary["log"]["cosigners"][0]["timestamp"]
            .as_u64()
            .unwrap()
            > now().0 - 120
    );

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
        stop: Stop::MaxTokens,
    };
    let done = deliver(&mut client, &mut server, &ServerMessage::Done(stats));
    assert_eq!(done[0].as_ref().unwrap()["done"]["prompt_tokens"], 12);
    assert_eq!(done[0].as_ref().unwrap()["done"]["stop"], "max_tokens");
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
    let (mut client, _server, result) = attest(&enclave, "{}");
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
    let (_, _, result) = attest(&enclave, &policy);
    assert!(matches!(
        result,
        Err(WebError::Channel(ChannelError::Evidence(VerifyError::Snp(
            SnpError::SimulatedRootMismatch
        ))))
    ));
    // Without a pinned root any simulated enclave passes, and the summary says so.
    let (_, _, summary) = connect(&enclave, r#"{"allow_simulated":true}"#);
    assert_eq!(summary["simulated_root_pinned"], false);
}

#[test]
fn measurement_and_model_pins_are_enforced() {
    let enclave = Enclave::boot();
    let measurement = enclave.measurement();
    let pinned = |m: &str, model: &str| {
        format!(
            r#"{{"allow_simulated":true,"simulated_root":"{}","expect_measurement":"{m}","expect_model_sha256":"{model}"}}"#,
            enclave.root_b64()
        )
    };
    let (_, _, ok) = attest(&enclave, &pinned(&measurement, MODEL_SHA));
    ok.unwrap();
    let mut other = measurement.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    let other = String::from_utf8(other).unwrap();
    let (_, _, refused) = attest(&enclave, &pinned(&other, MODEL_SHA));
    assert!(matches!(
        refused,
        Err(WebError::Channel(ChannelError::Evidence(VerifyError::Snp(
            SnpError::MeasurementNotAllowed(_)
        ))))
    ));
    let (_, _, refused) = attest(&enclave, &pinned(&measurement, &"00".repeat(32)));
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
    let (reply, _) = ServerHandshake::respond(&impostor.key, client.hello(), |nonce| {
        let rd = report_data(
            enclave.key.public(),
            &manifest_digest(&enclave.manifest),
            nonce,
        );
        AttestationPayload {
            manifest: enclave.manifest.clone(),
            evidence: enclave.attester.evidence(&rd, None).unwrap(),
        }
        .encode()
    })
    .unwrap();
    assert!(matches!(
        client.finish(&reply, now()),
        Err(WebError::Channel(ChannelError::Evidence(VerifyError::Snp(
            SnpError::ReportDataMismatch
        ))))
    ));
}
