//! How evidence commits to a channel.
//!
//! The enclave's 64-byte REPORT_DATA is
//!
//! ```text
//! REPORT_DATA = SHA-512( "sotto/report-data/v1" || 0x00 || static_pubkey[32] || SHA-256(manifest_bytes)[32] )
//! ```
//!
//! where `static_pubkey` is the enclave's X25519 Noise static key and `manifest_bytes` are the
//! exact manifest bytes sent in the handshake payload. The hardware signs REPORT_DATA, so a
//! verified report proves that this manifest (model digest, engine, release) and this key live
//! in the measured enclave; a relay that substitutes its own key or manifest breaks the equality.

use sha2::{Digest, Sha256, Sha512};

const LABEL: &[u8] = b"sotto/report-data/v1\0";

/// SHA-256 of the manifest bytes as received.
pub fn manifest_digest(manifest_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(manifest_bytes).into()
}

/// The REPORT_DATA an enclave with this key and manifest must present.
pub fn report_data(static_pubkey: &[u8; 32], manifest_digest: &[u8; 32]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(LABEL);
    h.update(static_pubkey);
    h.update(manifest_digest);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_changes_with_key_and_manifest() {
        let d = manifest_digest(b"{}");
        let a = report_data(&[1; 32], &d);
        assert_ne!(a, report_data(&[2; 32], &d));
        assert_ne!(a, report_data(&[1; 32], &manifest_digest(b"{ }")));
        assert_eq!(a, report_data(&[1; 32], &d));
    }
}
