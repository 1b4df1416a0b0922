//! The Intel SGX Root CA, pinned: the single trust anchor of TDX (and SGX) DCAP attestation.
//!
//! Trust: this constant is the trust decision. It is Intel's public "Intel SGX Root CA"
//! certificate (self-signed, P-256, valid 2018-05-21 to 2049-12-31, SHA-256 fingerprint
//! 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3), as published at
//! certificates.trustedservices.intel.com. It is never loaded from evidence or collateral.
//! Being a constant, its self-signature is proven by this module's test rather than recomputed
//! on every verification.

use sotto_verify_core::x509::{Cert, CertError};

/// PEM of the Intel SGX Root CA.
pub const INTEL_SGX_ROOT_CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw\n\
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv\n\
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ\n\
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG\n\
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0\n\
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT\n\
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7\n\
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB\n\
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ\n\
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50\n\
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV\n\
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI\n\
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg\n\
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=\n\
-----END CERTIFICATE-----\n\
";

/// SHA-256 of the root's DER, checked on every parse so a corrupted constant cannot pass.
pub const INTEL_SGX_ROOT_CA_SHA256: [u8; 32] = [
    0x44, 0xa0, 0x19, 0x6b, 0x2b, 0x99, 0xf8, 0x89, 0xb8, 0xe1, 0x49, 0xe9, 0x5b, 0x80, 0x7a, 0x35,
    0x0e, 0x74, 0x24, 0x96, 0x43, 0x99, 0xe8, 0x85, 0xa7, 0xcb, 0xb8, 0xcc, 0xfa, 0xb6, 0x74, 0xd3,
];

/// The subject of Intel's TCB signing certificate, the only certificate allowed to sign TCB
/// info and QE identity, as `(attribute type OID, value)`: CN, O, L, ST, C.
pub const INTEL_TCB_SIGNING_SUBJECT: [(&str, &str); 5] = [
    ("2.5.4.3", "Intel SGX TCB Signing"),
    ("2.5.4.10", "Intel Corporation"),
    ("2.5.4.7", "Santa Clara"),
    ("2.5.4.8", "CA"),
    ("2.5.4.6", "US"),
];

/// Whether `cert`'s subject is exactly [`INTEL_TCB_SIGNING_SUBJECT`]: the same attributes with
/// the same values, each once, in any order and any string encoding.
pub fn is_intel_tcb_signing_subject(cert: &Cert) -> bool {
    let mut have: Vec<(String, Option<String>)> = cert
        .subject_attributes()
        .into_iter()
        .map(|(oid, value)| (oid.to_string(), value))
        .collect();
    let mut want: Vec<(String, Option<String>)> = INTEL_TCB_SIGNING_SUBJECT
        .iter()
        .map(|(oid, value)| ((*oid).to_string(), Some((*value).to_string())))
        .collect();
    have.sort();
    want.sort();
    have == want
}

/// The pinned root, parsed.
pub fn intel_sgx_root() -> Result<Cert, CertError> {
    let mut certs = Cert::from_pem_chain(INTEL_SGX_ROOT_CA_PEM.as_bytes())?;
    match (certs.pop(), certs.is_empty()) {
        (Some(root), true) if root.sha256_fingerprint() == INTEL_SGX_ROOT_CA_SHA256 => Ok(root),
        _ => Err(CertError::Malformed(
            "pinned Intel root does not match its fingerprint".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_root_parses_and_is_self_signed() {
        let root = intel_sgx_root().expect("pinned root parses");
        assert!(root.subject().contains("Intel SGX Root CA"));
        root.verify_issued_by(&root).expect("self-signed");
        assert!(!is_intel_tcb_signing_subject(&root));
    }
}
