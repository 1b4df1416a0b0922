//! What relay tokens cost, against an Ed25519 signature measured in the same run: each step of
//! issuance (the client's blinding, the issuer's blind signature, the client's finalize) and of
//! redemption (the redeemer's check, and recording the spent nonce in the SQLite store as the
//! server does). Prints a markdown table. Run by bench/tokens.sh.

use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey, Verifier};
use sotto_tokens::{IssuerSecret, PendingToken, TokenChallenge};

const ROUNDS: usize = 300;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median microseconds of `f` over `ROUNDS` runs.
fn time<T>(mut f: impl FnMut() -> T) -> f64 {
    median(
        (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(f());
                started.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    )
}

fn row(what: &str, us: f64, baseline: f64, against: &str) {
    println!(
        "| {what} | {us:.1} | {:.0} | {:.1}x {against} |",
        1e6 / us,
        us / baseline
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let started = Instant::now();
    let issuer = IssuerSecret::generate().unwrap();
    let keygen_ms = started.elapsed().as_secs_f64() * 1e3;
    let challenge = TokenChallenge::new("sotto.bench");
    let digest = challenge.digest().unwrap();

    let ed = SigningKey::from_bytes(&[7; 32]);
    let message = [1u8; 98];
    let ed_sign = time(|| ed.sign(&message));
    let signature = ed.sign(&message);
    let ed_verify = time(|| ed.verifying_key().verify(&message, &signature).unwrap());

    let request_us = time(|| PendingToken::start_random(&challenge, issuer.public()).unwrap());
    let (_, request) = PendingToken::start_random(&challenge, issuer.public()).unwrap();
    let sign_us = time(|| issuer.sign(&request).unwrap());
    let mut pendings: Vec<_> = (0..ROUNDS)
        .map(|_| PendingToken::start_random(&challenge, issuer.public()).unwrap())
        .map(|(pending, request)| (pending, issuer.sign(&request).unwrap()))
        .collect();
    let finish_us = time(|| {
        let (pending, response) = pendings.pop().unwrap();
        pending.finish(&response).unwrap()
    });
    let (pending, request) = PendingToken::start_random(&challenge, issuer.public()).unwrap();
    let token = pending.finish(&issuer.sign(&request).unwrap()).unwrap();
    let verify_us = time(|| issuer.public().verify(&token, &digest).unwrap());

    // Recording a spent nonce: one durable SQLite insert (synchronous=FULL), as the relay does.
    let dir = tempfile::tempdir().unwrap();
    let store = sotto_store::open(&format!("sqlite:{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    let key_id = issuer.public().id();
    let mut spend = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let mut nonce = [0u8; 32];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let started = Instant::now();
        assert!(store.spend_token(&key_id, &nonce).await.unwrap());
        spend.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let spend_us = median(spend);

    println!("Issuer key generation (RSA-2048): {keygen_ms:.0} ms, once per key.");
    println!();
    println!("| step | µs (median of {ROUNDS}) | per second, one core | against Ed25519 |");
    println!("| --- | --- | --- | --- |");
    row("Ed25519 sign (baseline)", ed_sign, ed_sign, "sign");
    row("Ed25519 verify (baseline)", ed_verify, ed_verify, "verify");
    row(
        "client: nonce + blind (token request)",
        request_us,
        ed_sign,
        "sign",
    );
    row("issuer: blind signature", sign_us, ed_sign, "sign");
    row(
        "client: finalize (unblind + verify)",
        finish_us,
        ed_verify,
        "verify",
    );
    row("redeemer: verify a token", verify_us, ed_verify, "verify");
    row(
        "redeemer: record the nonce (SQLite)",
        spend_us,
        ed_verify,
        "verify",
    );
    let issuance = request_us + sign_us + finish_us;
    let redemption = verify_us + spend_us;
    println!();
    println!(
        "One token issued end to end (both sides' CPU, no network): {issuance:.0} µs, \
         {:.0} tokens/s; the issuer alone signs {:.0}/s per core.",
        1e6 / issuance,
        1e6 / sign_us
    );
    println!(
        "One token redeemed (check + durable record): {redemption:.0} µs, {:.0}/s; the check \
         alone {:.0}/s per core.",
        1e6 / redemption,
        1e6 / verify_us
    );
}
