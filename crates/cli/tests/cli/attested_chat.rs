//! A full attested chat over real sockets (client -> server relay -> tap -> enclave), and the
//! client's refusals.

use crate::common::{connect, evidence_refusal, params, stack, user, TapMode};
use sotto::client::{now, ClientError, Connection};
use sotto_channel::handshake::Expectations;
use sotto_channel::messages::{Role, Stop, WireMessage};
use sotto_channel::ChannelError;
use sotto_verify::VerifyError;
use zeroize::Zeroizing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_chat_streams_and_keeps_context_on_the_client() {
    let s = stack(TapMode::Pass).await;
    let mut conn = s.connect().await.expect("verified");
    assert!(conn.verified().verdict.is_simulated());
    assert_eq!(conn.verified().manifest.platform, "simulated");

    let mut pieces = Vec::new();
    let mut history = vec![user("hello there")];
    let stats = conn
        .chat(&history, params(12), &mut |p| pieces.push(p.to_string()))
        .await
        .expect("answer");
    assert!(
        stats.generated_tokens > 0 && stats.generated_tokens <= 12,
        "{stats:?}"
    );
    // The enclave says why it stopped, so a client can keep a cut-short answer as such.
    match stats.stop {
        Stop::MaxTokens => assert_eq!(stats.generated_tokens, 12, "{stats:?}"),
        Stop::End => {}
        Stop::ContextFull => panic!("a short prompt cannot fill the context: {stats:?}"),
    }
    assert!(!pieces.is_empty());
    assert!(stats.prompt_tokens > 3);

    // Second turn on the same session: the client resends the whole conversation.
    history.push(WireMessage {
        role: Role::Assistant,
        content: Zeroizing::new(pieces.concat()),
    });
    history.push(user("and again"));
    let stats2 = conn
        .chat(&history, params(4), &mut |_| {})
        .await
        .expect("second answer");
    assert!(stats2.prompt_tokens > stats.prompt_tokens);
    // Greedy decoding is deterministic: the same conversation gives the same answer.
    let mut again = Vec::new();
    conn.chat(&history[..1], params(12), &mut |p| {
        again.push(p.to_string())
    })
    .await
    .expect("third answer");
    assert_eq!(again.concat(), pieces.concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_enclave_refused_without_explicit_consent_and_nothing_sent() {
    let s = stack(TapMode::Pass).await;
    let strict = sotto_verify::Policy::default();
    let err = evidence_refusal(connect(&s.url, &strict, &s.releases).await);
    assert!(matches!(err, VerifyError::SimulatedNotAllowed), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        s.tap.up_frames.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the Noise hello left the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_model_digest_refused() {
    let s = stack(TapMode::Pass).await;
    let expect = Expectations {
        model_sha256: Some([0x42; 32]),
    };
    let err = Connection::open(&s.url, &s.policy, &s.releases, &expect, now())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, ClientError::Channel(ChannelError::Manifest(_))),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_flipping_one_byte_of_a_transport_frame_ends_the_session() {
    // Frame 0 from the enclave is the handshake answer; frame 1 is the first token.
    let s = stack(TapMode::FlipDown(1)).await;
    let mut conn = s.connect().await.expect("verified");
    let err = conn
        .chat(&[user("hi")], params(8), &mut |_| {})
        .await
        .expect_err("session ends");
    assert!(
        matches!(err, ClientError::Channel(ChannelError::Decrypt)),
        "{err}"
    );
    assert!(err.to_string().contains("failed authentication"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_longer_than_the_context_gets_a_clear_error_and_the_session_survives() {
    let s = stack(TapMode::Pass).await;
    let mut conn = s.connect().await.expect("verified");
    // Over 64 KiB, so the request also crosses the chunking path.
    let long = "word ".repeat(14_000);
    let err = conn
        .chat(&[user(&long)], params(8), &mut |_| {})
        .await
        .expect_err("too long");
    assert!(matches!(err, ClientError::ContextExceeded(_)), "{err}");
    conn.chat(&[user("short")], params(2), &mut |_| {})
        .await
        .expect("session still usable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurement_pinning_accepts_the_published_value_and_refuses_another() {
    let s = stack(TapMode::Pass).await;
    let conn = s.connect().await.expect("verified");
    let sotto_verify::CpuVerdict::Simulated(v) = &conn.verified().verdict.cpu else {
        panic!("simulated")
    };
    let measurement = v.measurement;
    conn.close().await;

    let mut pinned = s.policy.clone();
    pinned.snp.allowed_measurements = vec![measurement];
    connect(&s.url, &pinned, &s.releases)
        .await
        .expect("the pinned build is accepted");

    let mut other = s.policy.clone();
    other.snp.allowed_measurements = vec![[0x5a; 48]];
    let err = evidence_refusal(connect(&s.url, &other, &s.releases).await);
    assert!(
        matches!(
            err,
            VerifyError::Snp(sotto_verify_snp::SnpError::MeasurementNotAllowed(_))
        ),
        "{err}"
    );
}
