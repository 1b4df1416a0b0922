//! The SEV-SNP verifier's integration tests, one binary: the real evidence captured on AMD
//! hardware (`real_vectors`), forged and mismatched evidence (`forged`), and the chain cache
//! (`cache`). The fixtures they share are here: the real Milan report and VCEK, the time they
//! verify at, and the refusals more than one suite expects.

mod cache;
mod forged;
mod real_vectors;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sotto_verify_core::x509::Cert;
use sotto_verify_snp::sim::{forge, SimAuthority};
use sotto_verify_snp::{
    parse_hex, roots, verify, AttestationReport, CertError, Product, SnpAnchor, SnpError,
    SnpEvidence, SnpPolicy, SnpVerdict, TcbVersion, UnixTime,
};

/// 2025-06-01T00:00:00Z, inside the validity of the real Milan VCEK (2023-04-03..2030-04-03).
const AT: UnixTime = UnixTime(1_748_736_000);
/// 2031-01-01: after the Milan VCEK's notAfter (2030-04-03).
const AFTER_VCEK: UnixTime = UnixTime(1_924_992_000);
/// 2023-01-01: before the Milan VCEK's notBefore (2023-04-03).
const BEFORE_VCEK: UnixTime = UnixTime(1_672_531_200);

/// A file of `shared/vectors/sev-snp`.
fn vector(name: &str) -> Vec<u8> {
    sotto_testkit::read_vector(&format!("sev-snp/{name}"))
}

/// The real Milan report, as bytes.
fn milan_raw() -> Vec<u8> {
    let text = String::from_utf8(vector("report_milan.hex")).unwrap();
    parse_hex(&text).unwrap()
}

/// The real Milan report and its VCEK, with no host-supplied chain.
fn milan() -> SnpEvidence {
    SnpEvidence {
        report: milan_raw(),
        endorsement_der: vector("vcek_milan.der"),
        chain_der: vec![],
    }
}

fn milan_report() -> AttestationReport {
    AttestationReport::parse(&milan_raw()).unwrap()
}

fn milan_tcb() -> TcbVersion {
    TcbVersion::decode(milan_report().reported_tcb, Product::Milan)
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A simulated chip that mirrors the real Milan chip's id and TCB.
fn mirror_authority() -> SimAuthority {
    SimAuthority::generate(&mut rng(1), AT, milan_report().chip_id, milan_tcb()).unwrap()
}

fn sim_anchor(sim: &SimAuthority) -> SnpAnchor {
    SnpAnchor::Simulated {
        root_der: sim.root_der().to_vec(),
    }
}

/// Evidence of another simulated authority, its chip and intermediate (a valid link)
/// presented with the `trusted` authority's root.
fn swapped_intermediate(trusted: &SimAuthority) -> SnpEvidence {
    let other = SimAuthority::generate(&mut rng(8), AT, [7; 64], milan_tcb()).unwrap();
    let mut ev = other.evidence(&other.issue_report([1; 48], [2; 64]).unwrap());
    ev.chain_der = vec![other.chain_der()[0].clone(), trusted.root_der().to_vec()];
    ev
}

/// The real Milan evidence with a host-supplied chain whose ASK is an impostor: AMD's name,
/// another key.
fn impostor_ask() -> SnpEvidence {
    let impostor = forge::impostor_of(&mut rng(4), &pem_der(roots::MILAN_ASK_PEM)).unwrap();
    SnpEvidence {
        chain_der: vec![impostor, pem_der(roots::MILAN_ARK_PEM)],
        ..milan()
    }
}

/// The first certificate of a PEM, as DER.
fn pem_der(pem: &str) -> Vec<u8> {
    Cert::from_pem_chain(pem.as_bytes()).unwrap()[0]
        .der()
        .to_vec()
}

/// `ev` under the pinned AMD roots and the default policy, at [`AT`].
fn amd(ev: &SnpEvidence) -> Result<SnpVerdict, SnpError> {
    verify(ev, &SnpAnchor::Amd, &SnpPolicy::default(), AT)
}

/// Refused because the VCEK's signature does not verify under the issuer presented for it.
fn assert_vcek_signature_refused<T: std::fmt::Debug>(got: &Result<T, SnpError>) {
    assert!(
        matches!(got, Err(SnpError::Chain(CertError::BadSignature { subject })) if subject.contains("SEV-VCEK")),
        "{got:?}"
    );
}

/// Refused because the VCEK had expired at the time checked.
fn assert_vcek_expired<T: std::fmt::Debug>(got: &Result<T, SnpError>) {
    assert!(
        matches!(got, Err(SnpError::Chain(CertError::Expired { subject, .. })) if subject.contains("SEV-VCEK")),
        "{got:?}"
    );
}

/// Refused because the VCEK was not yet valid at the time checked.
fn assert_vcek_not_yet_valid<T: std::fmt::Debug>(got: &Result<T, SnpError>) {
    assert!(
        matches!(got, Err(SnpError::Chain(CertError::NotYetValid { subject, .. })) if subject.contains("SEV-VCEK")),
        "{got:?}"
    );
}
