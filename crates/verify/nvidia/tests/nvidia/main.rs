//! The NVIDIA verifier's integration tests, one binary: NVIDIA's published H100 evidence
//! (`real_vectors`), forged and damaged evidence (`forged`, re-signed with the kit in `resign`
//! where a refusal lies past the signature check), and the chain cache (`cache`). What more than
//! one suite needs is here: the published evidence, its nonce and the time it verifies at, and
//! the damaged copies of it that must be refused.

mod cache;
mod forged;
mod real_vectors;
mod resign;

use sotto_verify_core::x509::CertError;
use sotto_verify_core::UnixTime;
use sotto_verify_nvidia::{
    verify, CertChainInput, GpuError, GpuEvidenceInput, GpuPolicy, GpuVerdict, Rim,
};

/// The nonce of NVIDIA's published report.
const NONCE_HEX: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

/// 2024-06-01T00:00:00Z: inside every certificate of the real chain.
const AT: UnixTime = UnixTime(1_717_200_000);
/// 2021-12-01: after the real root's notBefore, before the Provisioner ICA's (2022-03-01).
const BEFORE_ICA: UnixTime = UnixTime(1_638_316_800);

/// A file of `shared/vectors/nvidia`, as text.
fn vector(name: &str) -> String {
    String::from_utf8(sotto_testkit::read_vector(&format!("nvidia/{name}"))).expect("UTF-8")
}

/// The published attestation report, in hex.
fn report_hex() -> String {
    vector("hopperAttestationReport.txt")
}

/// The published certificate chain, leaf first, in PEM.
fn chain_pem() -> String {
    vector("hopperCertChain.txt")
}

/// The published RIM of VBIOS 96.00.5E.00.01.
fn rim_xml() -> String {
    vector("1010_0200_882_96005E0001_PROD.swidtag")
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    hex::decode_to_slice(NONCE_HEX, &mut n).expect("nonce hex");
    n
}

fn real_report() -> Vec<u8> {
    hex::decode(report_hex().trim()).expect("report hex")
}

fn real_evidence() -> GpuEvidenceInput {
    GpuEvidenceInput {
        report: real_report(),
        cert_chain: CertChainInput::Pem(chain_pem().into_bytes()),
        rims: Vec::new(),
    }
}

fn real_rim() -> Rim {
    Rim::parse(rim_xml().as_bytes()).expect("RIM")
}

/// The published nonce and nothing else required.
fn policy() -> GpuPolicy {
    GpuPolicy::new(nonce())
}

/// `ev` under the pinned root and [`policy`], at [`AT`].
fn pinned(ev: &GpuEvidenceInput) -> Result<GpuVerdict, GpuError> {
    verify(ev, &policy(), AT)
}

/// The real evidence with the last byte of its report's signature flipped.
fn signature_flipped() -> GpuEvidenceInput {
    let mut report = real_report();
    let last = report.len() - 1;
    report[last] ^= 0x01;
    GpuEvidenceInput {
        report,
        ..real_evidence()
    }
}

/// The real evidence without the GSP BROM certificate that issued the leaf.
fn chain_link_missing() -> GpuEvidenceInput {
    let mut ders = real_evidence().cert_chain.der_certs().expect("ders");
    ders.remove(1);
    GpuEvidenceInput {
        cert_chain: CertChainInput::Der(ders),
        ..real_evidence()
    }
}

/// Refused by the certificate chain check with an error that `is`.
fn assert_chain_refusal<T: std::fmt::Debug>(got: Result<T, GpuError>, is: fn(&CertError) -> bool) {
    match got {
        Err(GpuError::CertChain(e)) if is(&e) => {}
        other => panic!("not the expected chain refusal: {other:?}"),
    }
}
