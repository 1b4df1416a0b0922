//! Certificate chains as drivers and hosts hand them over (a PEM bundle, or DER certificates
//! back to back), turned into the list of exact DER encodings the evidence carries.
//!
//! Trust: none is needed. The bytes are kept as they arrived — no re-encoding, which could
//! change a non-canonical certificate and break its issuer's signature — and each one is only
//! checked to parse as X.509 so that garbage is reported here rather than relayed.

use sotto_verify_core::x509::{Cert, CertError};
use thiserror::Error;

const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";

/// Why a certificate chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    #[error("certificate chain is empty")]
    Empty,
    #[error("PEM block {index} has no END CERTIFICATE line")]
    UnterminatedPem { index: usize },
    #[error("PEM block {index} is not valid base64 PEM: {reason}")]
    BadPem { index: usize, reason: String },
    #[error("unexpected bytes outside the PEM CERTIFICATE blocks at byte {at}")]
    StrayPemText { at: usize },
    #[error("DER certificate at byte {at} has a malformed or truncated header")]
    BadDer { at: usize },
    #[error("certificate {index} does not parse as X.509: {source}")]
    NotACertificate { index: usize, source: CertError },
}

/// Splits a PEM bundle or a DER concatenation into the DER of each certificate, in order.
/// Trailing NUL bytes (fixed-size driver buffers) are ignored, and so is whitespace around PEM.
pub fn to_der_list(blob: &[u8]) -> Result<Vec<Vec<u8>>, ChainError> {
    let start = blob
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(blob.len());
    let body = blob.get(start..).unwrap_or_default();
    let ders = if body.starts_with(b"-----BEGIN") {
        let end = body
            .iter()
            .rposition(|b| *b != 0 && !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        split_pem(body.get(..end).unwrap_or_default())?
    } else {
        split_der(blob)?
    };
    if ders.is_empty() {
        return Err(ChainError::Empty);
    }
    for (index, der) in ders.iter().enumerate() {
        Cert::from_der(der).map_err(|source| ChainError::NotACertificate { index, source })?;
    }
    Ok(ders)
}

fn split_pem(text: &[u8]) -> Result<Vec<Vec<u8>>, ChainError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = text.get(pos..).unwrap_or_default();
        let skip = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        pos = pos.saturating_add(skip);
        let rest = text.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        if !rest.starts_with(PEM_BEGIN) {
            return Err(ChainError::StrayPemText { at: pos });
        }
        let index = out.len();
        let end = find(rest, PEM_END).ok_or(ChainError::UnterminatedPem { index })?;
        let block_len = end.saturating_add(PEM_END.len());
        let block = rest.get(..block_len).unwrap_or_default();
        // The block starts with the CERTIFICATE boundary, so the label needs no second look.
        let (_, der) = pem_rfc7468::decode_vec(block).map_err(|e| ChainError::BadPem {
            index,
            reason: e.to_string(),
        })?;
        out.push(der);
        pos = pos.saturating_add(block_len);
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// DER certificates back to back: each is a SEQUENCE whose header gives its length.
fn split_der(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ChainError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = bytes.get(pos..).unwrap_or_default();
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let len = der_element_len(rest).ok_or(ChainError::BadDer { at: pos })?;
        let element = rest.get(..len).ok_or(ChainError::BadDer { at: pos })?;
        out.push(element.to_vec());
        pos = pos.saturating_add(len);
    }
    Ok(out)
}

/// Total length (header included) of the DER SEQUENCE at the start of `bytes`.
fn der_element_len(bytes: &[u8]) -> Option<usize> {
    if *bytes.first()? != 0x30 {
        return None;
    }
    let first = *bytes.get(1)?;
    if first < 0x80 {
        return 2usize.checked_add(usize::from(first));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in bytes.get(2..2 + count)? {
        len = len.checked_mul(256)?.checked_add(usize::from(*b))?;
    }
    len.checked_add(2 + count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOPPER_CHAIN: &[u8] =
        include_bytes!("../../../../shared/vectors/nvidia/hopperCertChain.txt");
    const MILAN_CHAIN: &[u8] =
        include_bytes!("../../../../shared/vectors/sev-snp/amd-milan-vcek-chain.pem");

    #[test]
    fn pem_bundle_becomes_exact_der() {
        let ders = to_der_list(HOPPER_CHAIN).unwrap();
        assert_eq!(ders.len(), 5);
        // Leaf first, root last: each certificate names the next one as its issuer, and the
        // root is self-issued.
        let certs: Vec<Cert> = ders.iter().map(|d| Cert::from_der(d).unwrap()).collect();
        for pair in certs.windows(2) {
            assert_eq!(pair[0].issuer(), pair[1].subject());
        }
        let root = certs.last().unwrap();
        assert_eq!(root.issuer(), root.subject());
        root.verify_issued_by(root).unwrap();
    }

    #[test]
    fn der_concatenation_round_trips_and_nul_padding_is_ignored() {
        let ders = to_der_list(MILAN_CHAIN).unwrap();
        assert_eq!(ders.len(), 2);
        let mut concatenated = ders.concat();
        concatenated.extend_from_slice(&[0u8; 64]);
        assert_eq!(to_der_list(&concatenated).unwrap(), ders);
    }

    #[test]
    fn bad_chains_are_refused() {
        assert_eq!(to_der_list(b""), Err(ChainError::Empty));
        assert_eq!(to_der_list(&[0u8; 16]), Err(ChainError::Empty));
        let truncated = &MILAN_CHAIN[..MILAN_CHAIN.len() - 40];
        assert!(matches!(
            to_der_list(truncated),
            Err(ChainError::UnterminatedPem { index: 1 })
        ));
        let mut stray = MILAN_CHAIN.to_vec();
        stray.extend_from_slice(b"junk");
        assert!(matches!(
            to_der_list(&stray),
            Err(ChainError::StrayPemText { .. })
        ));
        let mut bad_base64 = MILAN_CHAIN.to_vec();
        bad_base64[100] = b'!';
        assert!(matches!(
            to_der_list(&bad_base64),
            Err(ChainError::BadPem { index: 0, .. })
        ));
        let der = to_der_list(MILAN_CHAIN).unwrap().concat();
        assert!(matches!(
            to_der_list(&der[..der.len() - 1]),
            Err(ChainError::BadDer { .. })
        ));
        assert!(matches!(
            to_der_list(&[0x30, 0x03, 1, 2, 3]),
            Err(ChainError::NotACertificate { index: 0, .. })
        ));
    }
}
