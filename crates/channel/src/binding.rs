//! How evidence commits to a channel.
//!
//! The enclave's 64-byte REPORT_DATA is
//!
//! ```text
//! REPORT_DATA = SHA-512( "sotto/report-data/v2" || 0x00 || static_pubkey[32]
//!                        || SHA-256(manifest_bytes)[32] || client_nonce[32] )
//! ```
//!
//! where `static_pubkey` is the enclave's X25519 Noise static key, `manifest_bytes` are the
//! exact manifest bytes sent in the handshake payload, and `client_nonce` is the random value
//! the client sent in its hello. The hardware signs REPORT_DATA, so a verified report proves
//! that this manifest (model digest, engine, release) and this key live in the measured enclave
//! *now*: the evidence is made for this handshake, so evidence (and a static key) stolen once
//! cannot be replayed to anyone else, and a relay that substitutes its own key or manifest
//! breaks the equality.

use sha2::{Digest, Sha256, Sha512};

const LABEL: &[u8] = b"sotto/report-data/v2\0";
/// The client's fresh value in its hello, which the enclave's evidence must commit to.
pub const NONCE_LEN: usize = 32;

/// SHA-256 of the manifest bytes as received.
pub fn manifest_digest(manifest_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(manifest_bytes).into()
}

/// The REPORT_DATA an enclave with this key and manifest must present to the client that sent
/// `client_nonce`.
pub fn report_data(
    static_pubkey: &[u8; 32],
    manifest_digest: &[u8; 32],
    client_nonce: &[u8; NONCE_LEN],
) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(LABEL);
    h.update(static_pubkey);
    h.update(manifest_digest);
    h.update(client_nonce);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_changes_with_key_and_manifest() {
        let d = manifest_digest(b"{}");
        let a = report_data(&[1; 32], &d, &[9; 32]);
        assert_ne!(a, report_data(&[2; 32], &d, &[9; 32]));
        assert_ne!(a, report_data(&[1; 32], &manifest_digest(b"{ }"), &[9; 32]));
        assert_ne!(a, report_data(&[1; 32], &d, &[8; 32]));
        assert_eq!(a, report_data(&[1; 32], &d, &[9; 32]));
    }
}
