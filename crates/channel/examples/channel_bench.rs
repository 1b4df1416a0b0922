//! What the post-quantum handshake and the padding cost, each against its baseline in the same
//! run: the hybrid `Noise_NXpsk2` + ML-KEM-768 handshake against the X25519-only `Noise_NX` it
//! replaced (same payload, same machine), and the bytes a streamed answer takes padded against
//! unpadded. Prints markdown tables. Run by bench/channel.sh.

use std::time::Instant;

use sotto_channel::messages::ServerMessage;
use sotto_channel::{ClientHandshake, Padding, ServerHandshake, StaticKey};
use zeroize::Zeroizing;

const ROUNDS: usize = 200;
/// About what the simulated platform's attestation payload weighs.
const PAYLOAD: usize = 3_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One X25519-only Noise NX handshake, as the channel did before: (µs, hello, answer bytes).
fn x25519_only(payload: &[u8]) -> (f64, usize, usize) {
    let params: snow::params::NoiseParams = "Noise_NX_25519_ChaChaPoly_SHA256".parse().unwrap();
    let key = snow::Builder::new(params.clone())
        .generate_keypair()
        .unwrap();
    let started = Instant::now();
    let mut client = snow::Builder::new(params.clone())
        .build_initiator()
        .unwrap();
    let mut server = snow::Builder::new(params)
        .local_private_key(&key.private)
        .build_responder()
        .unwrap();
    let (mut hello, mut answer, mut out) = (vec![0; 65_535], vec![0; 65_535], vec![0; 65_535]);
    let h = client.write_message(&[7; 32], &mut hello).unwrap();
    server.read_message(&hello[..h], &mut out).unwrap();
    let a = server.write_message(payload, &mut answer).unwrap();
    client.read_message(&answer[..a], &mut out).unwrap();
    let _ = (client.into_transport_mode(), server.into_transport_mode());
    (started.elapsed().as_secs_f64() * 1e6, h, a)
}

/// One hybrid handshake as the channel runs it (the client's reading of the payload refuses
/// this stand-in payload after decrypting it, which is where verification would start).
fn hybrid(key: &StaticKey, payload: &[u8]) -> (f64, usize, usize) {
    let started = Instant::now();
    let (client, hello) = ClientHandshake::start().unwrap();
    let (answer, _) = ServerHandshake::respond(key, &hello.0, |_| Ok(payload.to_vec())).unwrap();
    assert!(client.read_response(&answer).is_err());
    (
        started.elapsed().as_secs_f64() * 1e6,
        hello.0.len(),
        answer.len(),
    )
}

/// Bytes on the wire for `pieces` streamed `per_message` at a time, and a `Done` after.
fn answer_bytes(padding: Padding, pieces: &[&str], per_message: usize) -> usize {
    let key = StaticKey::generate().unwrap();
    let (_, hello) = ClientHandshake::start().unwrap();
    let (_, mut session) = ServerHandshake::respond(&key, &hello.0, |_| Ok(vec![])).unwrap();
    session.set_padding(padding);
    let mut bytes = 0;
    for group in pieces.chunks(per_message) {
        let text = Zeroizing::new(group.concat());
        let sealed = session.seal(&ServerMessage::Token(text).encode()).unwrap();
        bytes += sealed.iter().map(Vec::len).sum::<usize>();
    }
    let done = ServerMessage::Done(Default::default()).encode();
    bytes + session.seal(&done).unwrap()[0].len()
}

fn main() {
    let payload = vec![5u8; PAYLOAD];
    let key = StaticKey::generate().unwrap();
    // Warm-up, then interleaved rounds so load changes hit both alike.
    let _ = (x25519_only(&payload), hybrid(&key, &payload));
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let (mut old_bytes, mut new_bytes) = ((0, 0), (0, 0));
    for _ in 0..ROUNDS {
        let (t, h, a) = x25519_only(&payload);
        old.push(t);
        old_bytes = (h, a);
        let (t, h, a) = hybrid(&key, &payload);
        new.push(t);
        new_bytes = (h, a);
    }
    let (old, new) = (median(old), median(new));
    println!("Handshake, {ROUNDS} interleaved rounds, medians, {PAYLOAD}-byte payload:\n");
    println!("| handshake | time µs | hello bytes | answer bytes |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| X25519 only (Noise_NX, before) | {old:.0} | {} | {} |",
        old_bytes.0, old_bytes.1
    );
    println!(
        "| X25519 + ML-KEM-768 (Noise_NXpsk2, now) | {new:.0} | {} | {} |",
        new_bytes.0, new_bytes.1
    );
    println!(
        "| ratio now / before | {:.2}x | +{} | +{} |\n",
        new / old,
        new_bytes.0 - old_bytes.0,
        new_bytes.1 - old_bytes.1
    );

    // Pieces of the lengths an English answer's tokens have (1-8 bytes, a space in front of
    // most words), 64 of them.
    let words = [
        " the",
        " a",
        " of",
        " model",
        ",",
        " conversation",
        " is",
        " private",
        ".",
    ];
    let pieces: Vec<&str> = (0..64).map(|i| words[(i * 7) % words.len()]).collect();
    println!("A 64-piece answer and its Done, bytes on the wire:\n");
    println!("| pieces per message | unpadded | padded | padded / unpadded |");
    println!("| --- | --- | --- | --- |");
    for per in [1, 2, 4, 64] {
        let plain = answer_bytes(Padding::Off, &pieces, per);
        let padded = answer_bytes(Padding::Buckets, &pieces, per);
        println!(
            "| {per} | {plain} | {padded} | {:.1}x |",
            padded as f64 / plain as f64
        );
    }
}
