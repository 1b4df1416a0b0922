//! Fuzzes the client's reading of genuine handshake answers: the enclave side of a real Noise NX
//! handshake carries the input as its attestation payload, and the client must receive it
//! intact and accept it exactly when it decodes as an [`AttestationPayload`]. Whatever the
//! payload, nothing may panic, including at the edge of the Noise message size.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sotto_channel::{AttestationPayload, ClientHandshake, ServerHandshake, StaticKey};

/// The enclave's static key, generated once: it has no input to fuzz.
fn enclave_key() -> &'static StaticKey {
    static KEY: OnceLock<StaticKey> = OnceLock::new();
    KEY.get_or_init(|| StaticKey::generate().expect("the enclave key generates"))
}

fuzz_target!(|data: &[u8]| {
    let key = enclave_key();
    let (client, hello) = ClientHandshake::start().expect("a client handshake starts");
    // A payload too large for one Noise message is the enclave's own error, not the client's.
    let Ok((reply, _)) = ServerHandshake::respond(key, &hello.0, |_| Ok(data.to_vec())) else {
        return;
    };
    match client.read_response(&reply) {
        Ok(pending) => {
            assert_eq!(pending.remote_static(), key.public());
            let direct = AttestationPayload::decode(data).expect("the client accepted it");
            assert_eq!(pending.payload().manifest, direct.manifest);
            assert_eq!(pending.payload().evidence, direct.evidence);
        }
        Err(_) => assert!(AttestationPayload::decode(data).is_err()),
    }
});
