//! Fuzzes every parser in the channel that reads bytes from the untrusted relay: the frame
//! decoder (fed in pieces, as a byte stream arrives), the attestation payload, the manifest,
//! both application message types, and the client's reading of a forged handshake answer. None
//! may panic; whatever parses must survive re-encoding unchanged. Genuine handshake answers
//! carrying fuzzed payloads are the `channel_handshake` target (slower: four key agreements).
#![no_main]

use std::ops::Deref;

use libfuzzer_sys::fuzz_target;
use sotto_channel::frame::{Decoder, MAX_FRAME};
use sotto_channel::manifest::Manifest;
use sotto_channel::messages::{ClientMessage, ServerMessage};
use sotto_channel::{AttestationPayload, ClientHandshake};

fuzz_target!(|data: &[u8]| {
    frames(data);
    payload(data);
    manifest(data);
    messages(data);
    handshake(data);
});

/// Pushes the input in pieces whose sizes the input itself chooses (so the fuzzer explores
/// headers and bodies split at every offset) and checks that the frames popped are exactly the
/// length-prefixed pieces of the stream.
fn frames(data: &[u8]) {
    let mut decoder = Decoder::new();
    let mut pushed = 0;
    let mut consumed = 0;
    while pushed < data.len() {
        let size = usize::from(data[pushed] % 32) + 1;
        let end = data.len().min(pushed + size);
        decoder.push(&data[pushed..end]);
        pushed = end;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX_FRAME);
                    let body = consumed + 4;
                    assert_eq!(&data[body..body + frame.len()], frame.as_slice());
                    consumed = body + frame.len();
                }
                Ok(None) => break,
                Err(_) => {
                    let header = &data[consumed..consumed + 4];
                    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                    assert!(len as usize > MAX_FRAME);
                    return;
                }
            }
        }
        assert_eq!(decoder.pending(), pushed - consumed);
    }
}

fn payload(data: &[u8]) {
    if let Ok(first) = AttestationPayload::decode(data) {
        let bytes = first.encode().expect("a decoded payload re-encodes");
        let second = AttestationPayload::decode(&bytes).expect("a re-encoded payload decodes");
        assert_eq!(first.manifest, second.manifest);
        assert_eq!(first.evidence, second.evidence);
    }
}

fn manifest(data: &[u8]) {
    if let Ok(first) = Manifest::parse(data) {
        let second = Manifest::parse(&first.to_bytes()).expect("a parsed manifest re-parses");
        assert_eq!(first, second);
        let _ = first.model_sha256();
    }
}

/// Neither message type implements `Debug` or `PartialEq` (they carry prompts and answers), so
/// stability is checked on the encoding: once canonicalised, a message re-encodes identically.
fn messages(data: &[u8]) {
    stable_encoding(data, ClientMessage::decode, ClientMessage::encode, "client");
    stable_encoding(data, ServerMessage::decode, ServerMessage::encode, "server");
}

/// A `what` message that `decode` accepts re-encodes to bytes that decode and encode to
/// themselves.
fn stable_encoding<M, E, B: Deref<Target = Vec<u8>>>(
    data: &[u8],
    decode: impl Fn(&[u8]) -> Result<M, E>,
    encode: impl Fn(&M) -> B,
    what: &str,
) {
    if let Ok(m) = decode(data) {
        let once = encode(&m);
        let again = decode(&once).unwrap_or_else(|_| panic!("a re-encoded {what} message decodes"));
        assert_eq!(*once, *encode(&again));
    }
}

/// The input as a handshake answer must be refused: a relay cannot know the client's fresh
/// ephemeral key, so it cannot forge an answer that decrypts.
fn handshake(data: &[u8]) {
    let (client, _) = ClientHandshake::start().expect("a client handshake starts");
    assert!(client.read_response(data).is_err());
}
