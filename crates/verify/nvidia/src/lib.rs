//! Pure verifier for NVIDIA Hopper confidential-computing GPU evidence.
//!
//! The evidence is what NVIDIA's driver returns for a GPU attestation request: an SPDM 1.1
//! `GET_MEASUREMENTS` request (carrying our 32-byte nonce) followed by the GPU's signed
//! `MEASUREMENTS` response (DMTF measurement blocks, NVIDIA opaque data, ECDSA P-384
//! signature), plus the GPU's device certificate chain, leaf first. [`verify`] proves:
//!
//! 1. the report is well formed ([`SpdmEvidence::parse`]: every length bounds-checked,
//!    nothing after the signature but at most [`spdm::MAX_TRAILING_ZERO_PADDING`] unsigned
//!    zero bytes, SPDM 1.1 only, all blocks requested, a signature requested);
//! 2. the certificate chain runs from the leaf (the GSP's attestation key) through
//!    CA certificates to NVIDIA's Device Identity CA, pinned here as
//!    [`NVIDIA_DEVICE_IDENTITY_ROOT_PEM`], every certificate valid at the given time
//!    (NVIDIA's device certificates use the RFC 5280 "no expiry" date 9999-12-31);
//! 3. the leaf key signed `request || response-without-signature` (ECDSA P-384, SHA-384);
//! 4. the request nonce is the one the policy expects (so the report is fresh and bound);
//! 5. the GPU's signed opaque data puts it in confidential-computing mode (see [`CcMode`]);
//! 6. the FWID in the opaque data equals the FWID the leaf certificate was issued for;
//! 7. when RIMs are given, every active reference measurement matches the GPU's block.
//!
//! Trust: nothing in the evidence is trusted; the only anchor is the pinned root.
//! [`verify_with_root`] takes another root and exists for tests and audits only (e.g.
//! replaying evidence signed by a test CA); production callers use [`verify`]. RIMs are not
//! signature-checked here (see [`rim`]); their SHA-256 digests are reported for pinning, and
//! the verdict says `rim_signature_checked: false`.
//!
//! # Binding the GPU to the enclave
//!
//! The GPU evidence is bound to the CPU evidence (SEV-SNP / TDX) of the enclave that owns the
//! GPU in two directions, both computed by the pure functions below:
//!
//! * **Freshness and channel**: the enclave asks the GPU for a report with nonce
//!   [`gpu_nonce`]`(static_pubkey)` = `SHA-256("sotto/gpu-nonce/v1" || static_pubkey)`, where
//!   `static_pubkey` is the enclave's 32-byte X25519 Noise static key. The client recomputes it
//!   from the handshake's static key and passes it as [`GpuPolicy::expected_nonce`], so a report
//!   made for another enclave (or replayed) is refused.
//! * **Inclusion in the CPU report**: the enclave's manifest records
//!   [`gpu_evidence_digest`]`(report, cert_chain_der)` =
//!   `SHA-256("sotto/gpu-evidence/v1" || u64be(len(report)) || report || u64be(n) ||
//!   u64be(len(cert_1)) || cert_1 || ... || u64be(len(cert_n)) || cert_n)`, where `report` is the
//!   exact `request || response` bytes and `cert_1..cert_n` the DER certificates exactly as the
//!   enclave presents them, leaf first. The CPU report's REPORT_DATA commits to the manifest, so
//!   the CPU's hardware signature covers the GPU evidence too. The verdict carries this digest
//!   ([`GpuVerdict::evidence_digest`]) for the caller to compare with the manifest.

pub mod rim;
pub mod spdm;

use std::collections::BTreeMap;

use const_oid::ObjectIdentifier;
use der::{Decode, Encode, Tag, Tagged};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sotto_verify_core::x509::{Cert, CertError, HashAlg, PublicKey};
use sotto_verify_core::{at_most, UnixTime};

pub use sotto_verify_core::ChainCache;

pub use rim::{Rim, RimError, RimMeasurement};
pub use spdm::{MeasurementBlock, OpaqueField, SpdmError, SpdmEvidence, MAX_TRAILING_ZERO_PADDING};

/// NVIDIA Device Identity CA: the self-signed P-384 root of every GPU device certificate
/// chain (valid 2021-11-05 to 9999-12-31). The same certificate NVIDIA ships with its local
/// GPU verifier as `verifier_device_root.pem`.
pub const NVIDIA_DEVICE_IDENTITY_ROOT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICCzCCAZCgAwIBAgIQLTZwscoQBBHB/sDoKgZbVDAKBggqhkjOPQQDAzA1MSIw
IAYDVQQDDBlOVklESUEgRGV2aWNlIElkZW50aXR5IENBMQ8wDQYDVQQKDAZOVklE
SUEwIBcNMjExMTA1MDAwMDAwWhgPOTk5OTEyMzEyMzU5NTlaMDUxIjAgBgNVBAMM
GU5WSURJQSBEZXZpY2UgSWRlbnRpdHkgQ0ExDzANBgNVBAoMBk5WSURJQTB2MBAG
ByqGSM49AgEGBSuBBAAiA2IABA5MFKM7+KViZljbQSlgfky/RRnEQScW9NDZF8SX
gAW96r6u/Ve8ZggtcYpPi2BS4VFu6KfEIrhN6FcHG7WP05W+oM+hxj7nyA1r1jkB
2Ry70YfThX3Ba1zOryOP+MJ9vaNjMGEwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8B
Af8EBAMCAQYwHQYDVR0OBBYEFFeF/4PyY8xlfWi3Olv0jUrL+0lfMB8GA1UdIwQY
MBaAFFeF/4PyY8xlfWi3Olv0jUrL+0lfMAoGCCqGSM49BAMDA2kAMGYCMQCPeFM3
TASsKQVaT+8S0sO9u97PVGCpE9d/I42IT7k3UUOLSR/qvJynVOD1vQKVXf0CMQC+
EY55WYoDBvs2wPAH1Gw4LbcwUN8QCff8bFmV4ZxjCRr4WXTLFHBKjbfneGSBWwA=
-----END CERTIFICATE-----
";

/// SHA-256 of the DER of [`NVIDIA_DEVICE_IDENTITY_ROOT_PEM`], a second, independent pin.
pub const NVIDIA_DEVICE_IDENTITY_ROOT_SHA256: [u8; 32] = [
    0x10, 0x2b, 0xf6, 0x59, 0xd5, 0x41, 0x96, 0x14, 0xc9, 0xd8, 0xe6, 0xae, 0xce, 0xbc, 0x80, 0x45,
    0x4e, 0xb2, 0x6b, 0x1d, 0xf6, 0xa7, 0x69, 0xac, 0x72, 0x0b, 0x9a, 0x69, 0x0b, 0x16, 0x7b, 0x48,
];

/// Domain separator of [`gpu_nonce`].
pub const GPU_NONCE_DOMAIN: &[u8] = b"sotto/gpu-nonce/v1";
/// Domain separator of [`gpu_evidence_digest`].
pub const GPU_EVIDENCE_DOMAIN: &[u8] = b"sotto/gpu-evidence/v1";

/// Longest certificate chain accepted (Hopper's has five, root included).
pub const MAX_CHAIN_LEN: usize = 8;
/// Largest PEM bundle accepted.
pub const MAX_PEM_LEN: usize = 64 * 1024;

/// NVIDIA's index for a measurement that is only meaningful while NVDEC0 is enabled; its own
/// verifier skips it when the GPU reports NVDEC0 disabled, and so does this one.
const NVDEC_DEPENDENT_RIM_INDEX: u32 = 35;
const NVDEC0_DISABLED: u8 = 0x55;

/// TCG DICE TcbInfo extension: NVIDIA puts the firmware's FWID (SHA-384) in the leaf.
const TCG_DICE_TCB_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4.1");

/// The nonce an enclave with X25519 static key `static_pubkey` asks its GPU to sign.
pub fn gpu_nonce(static_pubkey: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(GPU_NONCE_DOMAIN);
    h.update(static_pubkey);
    h.finalize().into()
}

/// The digest of GPU evidence that the enclave's manifest records (see the crate docs for
/// the exact encoding): `report` is `request || response`, `cert_chain_der` the DER
/// certificates as presented, leaf first.
pub fn gpu_evidence_digest<C: AsRef<[u8]>>(report: &[u8], cert_chain_der: &[C]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(GPU_EVIDENCE_DOMAIN);
    h.update((report.len() as u64).to_be_bytes());
    h.update(report);
    h.update((cert_chain_der.len() as u64).to_be_bytes());
    for cert in cert_chain_der {
        let cert = cert.as_ref();
        h.update((cert.len() as u64).to_be_bytes());
        h.update(cert);
    }
    h.finalize().into()
}

/// The device certificate chain, leaf first, in either encoding NVIDIA's tools produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertChainInput {
    /// A PEM bundle of `CERTIFICATE` blocks.
    Pem(Vec<u8>),
    /// One DER certificate per entry.
    Der(Vec<Vec<u8>>),
}

impl CertChainInput {
    /// The DER certificates, leaf first, as [`gpu_evidence_digest`] hashes them.
    pub fn der_certs(&self) -> Result<Vec<Vec<u8>>, GpuError> {
        Ok(self.parse()?.iter().map(|c| c.der().to_vec()).collect())
    }

    fn parse(&self) -> Result<Vec<Cert>, GpuError> {
        let certs = match self {
            CertChainInput::Pem(pem) => {
                at_most(pem.len(), MAX_PEM_LEN, |len, max| {
                    GpuError::CertChainTooLarge { len, max }
                })?;
                Cert::from_pem_chain(pem).map_err(GpuError::CertChainMalformed)?
            }
            CertChainInput::Der(ders) => {
                if ders.len() > MAX_CHAIN_LEN {
                    return Err(GpuError::CertChainTooLong {
                        len: ders.len(),
                        max: MAX_CHAIN_LEN,
                    });
                }
                ders.iter()
                    .map(|d| Cert::from_der(d))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(GpuError::CertChainMalformed)?
            }
        };
        if certs.is_empty() {
            return Err(GpuError::EmptyCertChain);
        }
        if certs.len() > MAX_CHAIN_LEN {
            return Err(GpuError::CertChainTooLong {
                len: certs.len(),
                max: MAX_CHAIN_LEN,
            });
        }
        Ok(certs)
    }
}

/// Everything a client receives about one GPU.
#[derive(Debug, Clone)]
pub struct GpuEvidenceInput {
    /// `request || response`, raw bytes.
    pub report: Vec<u8>,
    pub cert_chain: CertChainInput,
    /// Reference manifests (typically the driver RIM and the VBIOS RIM); may be empty.
    pub rims: Vec<Rim>,
}

impl GpuEvidenceInput {
    /// [`gpu_evidence_digest`] of this evidence.
    pub fn evidence_digest(&self) -> Result<[u8; 32], GpuError> {
        Ok(gpu_evidence_digest(
            &self.report,
            &self.cert_chain.der_certs()?,
        ))
    }
}

/// What the caller requires of the GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuPolicy {
    /// The nonce the request must carry: [`gpu_nonce`] of the enclave's static key.
    pub expected_nonce: [u8; 32],
    /// Refuse reports without NVIDIA's signed feature-flag field. Hopper firmware before the
    /// field existed (such as the published H100 sample) sends none; with this `false` such a
    /// report is accepted as [`CcMode::LegacyUnflagged`], which the verdict states plainly.
    pub require_cc_feature_flag: bool,
    /// Accept protected-PCIe mode (multi-GPU with NVSwitch, GPU memory not itself in CC mode).
    pub accept_protected_pcie: bool,
    /// Refuse evidence that comes without any RIM to compare measurements against.
    pub require_rim: bool,
}

impl GpuPolicy {
    /// Nonce pinned; legacy Hopper reports accepted; protected-PCIe refused; RIMs optional.
    pub fn new(expected_nonce: [u8; 32]) -> Self {
        GpuPolicy {
            expected_nonce,
            require_cc_feature_flag: false,
            accept_protected_pcie: false,
            require_rim: false,
        }
    }
}

/// The GPU's confidential-computing mode as its signed opaque data states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CcMode {
    /// Feature flag 0: multi-GPU passthrough, CC on.
    MultiGpuPassthrough,
    /// Feature flag 1: single-GPU passthrough, CC on.
    SingleGpuPassthrough,
    /// Feature flag 2: protected PCIe (accepted only when the policy allows it).
    ProtectedPcie,
    /// No feature flag: firmware that predates the field; the mode is not in the signed data.
    LegacyUnflagged,
}

/// One RIM the GPU's measurements were compared with, and what it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RimMatch {
    /// `SoftwareIdentity/@tagId`.
    pub tag_id: String,
    /// The driver or VBIOS version the RIM describes (equal to the report's).
    pub version: String,
    /// SHA-256 of the exact RIM bytes, hex: what a release pins.
    pub sha256: String,
    /// SPDM block indices whose value matched one of this RIM's reference values.
    pub matched_indices: Vec<u8>,
}

/// A successful verification, for logs and the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuVerdict {
    pub driver_version: Option<String>,
    pub vbios_version: Option<String>,
    pub chip_sku: Option<String>,
    pub project: Option<String>,
    pub project_sku: Option<String>,
    pub cc_mode: CcMode,
    /// The signed feature-flag value the CC mode was read from; `None` for legacy firmware.
    pub cc_feature_flag: Option<u64>,
    /// The request nonce, hex.
    pub nonce: String,
    pub measurement_count: usize,
    /// SPDM block indices whose value matched a RIM reference value.
    pub matched_indices: Vec<u8>,
    /// SPDM block indices a RIM lists but that were not compared (NVDEC-dependent, NVDEC off).
    pub skipped_indices: Vec<u8>,
    /// SHA-256 of each RIM used, hex.
    pub rim_sha256: Vec<String>,
    /// Each RIM used, in the order given, with the block indices it matched.
    pub rims: Vec<RimMatch>,
    /// Always `false`: RIM XML signatures are not verified by this crate.
    pub rim_signature_checked: bool,
    pub leaf_subject: String,
    /// [`gpu_evidence_digest`] of the evidence, hex (over the report as presented, padding
    /// included).
    pub evidence_digest: String,
    /// Unsigned zero bytes that followed the report's signature and were ignored.
    pub trailing_padding: usize,
    /// Names of the checks that passed, in order.
    pub checks: Vec<&'static str>,
}

/// Why GPU evidence was refused: one variant per check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    #[error("attestation report is malformed: {0}")]
    Parse(#[from] SpdmError),
    #[error("certificate chain is malformed: {0}")]
    CertChainMalformed(CertError),
    #[error("certificate chain is empty")]
    EmptyCertChain,
    #[error("certificate chain has {len} certificates, more than {max}")]
    CertChainTooLong { len: usize, max: usize },
    #[error("certificate chain PEM is {len} bytes, more than {max}")]
    CertChainTooLarge { len: usize, max: usize },
    #[error("certificate chain ends in '{subject}', not the pinned NVIDIA root")]
    UntrustedRoot { subject: String },
    #[error("certificate chain does not verify: {0}")]
    CertChain(CertError),
    #[error("leaf certificate key is not ECDSA P-384")]
    LeafKeyNotP384,
    #[error("report signature does not verify under the leaf key")]
    BadReportSignature,
    #[error("request nonce {found} is not the expected {expected}")]
    NonceMismatch { expected: String, found: String },
    #[error("GPU feature flag {feature_flag} is not a confidential-computing mode")]
    CcModeOff { feature_flag: u64 },
    #[error(
        "report carries no signed confidential-computing feature flag and the policy requires one"
    )]
    CcModeNotAttested,
    #[error("GPU is in protected-PCIe mode, which the policy refuses")]
    ProtectedPcieRefused,
    #[error("leaf certificate carries no FWID to compare with the report's")]
    LeafFwidMissing,
    #[error("report FWID differs from the leaf certificate's FWID")]
    FwidMismatch,
    #[error("policy requires a RIM and none was given")]
    RimRequired,
    #[error("RIM version {rim_version} is neither the driver version {driver_version:?} nor the VBIOS version {vbios_version:?}")]
    RimVersionMismatch {
        rim_version: String,
        driver_version: Option<String>,
        vbios_version: Option<String>,
    },
    #[error("two RIMs both have an active measurement at RIM index {rim_index}")]
    RimIndexConflict { rim_index: u32 },
    #[error("report has no measurement block {index} (RIM index {rim_index})")]
    MeasurementMissing { index: u8, rim_index: u32 },
    #[error("measurement block {index} (RIM index {rim_index}) matches no reference value")]
    MeasurementMismatch { index: u8, rim_index: u32 },
}

/// Verifies GPU evidence against NVIDIA's pinned Device Identity root, as of `at`.
pub fn verify(
    evidence: &GpuEvidenceInput,
    policy: &GpuPolicy,
    at: UnixTime,
) -> Result<GpuVerdict, GpuError> {
    verify_cached(evidence, policy, at, &mut ChainCache::new())
}

/// [`verify`], skipping the certificate signatures already proven in `cache` (the device
/// chain of a GPU seen before) and remembering the ones it proves. The report's signature is
/// always computed, and every certificate is checked for validity at `at` on each call.
pub fn verify_cached(
    evidence: &GpuEvidenceInput,
    policy: &GpuPolicy,
    at: UnixTime,
    cache: &mut ChainCache,
) -> Result<GpuVerdict, GpuError> {
    verify_under(evidence, policy, at, &pinned_root()?, cache)
}

/// The pinned NVIDIA Device Identity root, checked against its fingerprint. Its
/// self-signature, a constant, is proven by this crate's unit test rather than on each call.
pub fn pinned_root() -> Result<Cert, GpuError> {
    let root = Cert::from_pem_chain(NVIDIA_DEVICE_IDENTITY_ROOT_PEM.as_bytes())
        .map_err(GpuError::CertChainMalformed)?
        .into_iter()
        .next()
        .ok_or(GpuError::CertChainMalformed(CertError::EmptyPem))?;
    if root.sha256_fingerprint() != NVIDIA_DEVICE_IDENTITY_ROOT_SHA256 {
        return Err(GpuError::UntrustedRoot {
            subject: root.subject(),
        });
    }
    Ok(root)
}

/// [`verify`] with a caller-chosen root. **For tests and audits only** (replaying evidence
/// signed under a test CA, or checking which root a chain ends in); production code must call
/// [`verify`], whose root is pinned.
pub fn verify_with_root(
    evidence: &GpuEvidenceInput,
    policy: &GpuPolicy,
    at: UnixTime,
    root: &Cert,
) -> Result<GpuVerdict, GpuError> {
    root.verify_issued_by(root).map_err(GpuError::CertChain)?;
    verify_under(evidence, policy, at, root, &mut ChainCache::new())
}

/// Verification under `root`, which the caller has pinned or checked to be self-signed.
fn verify_under(
    evidence: &GpuEvidenceInput,
    policy: &GpuPolicy,
    at: UnixTime,
    root: &Cert,
    cache: &mut ChainCache,
) -> Result<GpuVerdict, GpuError> {
    let mut checks = Vec::new();

    let report = SpdmEvidence::parse(&evidence.report)?;
    checks.push("report_parsed");

    let certs = evidence.cert_chain.parse()?;
    let leaf = verify_cert_chain(&certs, root, at, cache)?;
    checks.push("cert_chain_to_root");

    let PublicKey::P384(_) = leaf.public_key().map_err(GpuError::CertChain)? else {
        return Err(GpuError::LeafKeyNotP384);
    };
    let (r, s) = report.signature.split_at(spdm::SIGNATURE_LEN / 2);
    leaf.public_key()
        .and_then(|k| k.verify_ecdsa_raw(HashAlg::Sha384, report.signed_bytes(), r, s))
        .map_err(|_| GpuError::BadReportSignature)?;
    checks.push("report_signature");

    if report.request_nonce != policy.expected_nonce {
        return Err(GpuError::NonceMismatch {
            expected: hex::encode(policy.expected_nonce),
            found: hex::encode(report.request_nonce),
        });
    }
    checks.push("nonce");

    let cc_mode = check_cc_mode(&report, policy)?;
    checks.push("cc_mode");

    if let Some(fwid) = report.fwid() {
        let ext = leaf
            .extension(TCG_DICE_TCB_INFO)
            .ok_or(GpuError::LeafFwidMissing)?;
        if !leaf_fwids(ext).iter().any(|f| f.as_slice() == fwid) {
            return Err(GpuError::FwidMismatch);
        }
        checks.push("fwid_matches_leaf");
    }

    let (matched_indices, skipped_indices, per_rim) =
        compare_rims(&report, &evidence.rims, policy)?;
    if !evidence.rims.is_empty() {
        checks.push("rim_versions");
        checks.push("measurements_match_rim");
    }

    Ok(GpuVerdict {
        driver_version: report.driver_version(),
        vbios_version: report.vbios_version(),
        chip_sku: report.chip_sku(),
        project: report.project(),
        project_sku: report.project_sku(),
        cc_mode,
        cc_feature_flag: report.feature_flag(),
        nonce: hex::encode(report.request_nonce),
        measurement_count: report.blocks.len(),
        matched_indices,
        skipped_indices,
        rim_sha256: evidence
            .rims
            .iter()
            .map(|r| hex::encode(r.sha256))
            .collect(),
        rims: evidence
            .rims
            .iter()
            .zip(per_rim)
            .map(|(rim, matched_indices)| RimMatch {
                tag_id: rim.tag_id.clone(),
                version: rim.version.clone(),
                sha256: hex::encode(rim.sha256),
                matched_indices,
            })
            .collect(),
        rim_signature_checked: false,
        leaf_subject: leaf.subject(),
        evidence_digest: hex::encode(gpu_evidence_digest(
            report.raw(),
            &certs.iter().map(Cert::der).collect::<Vec<_>>(),
        )),
        trailing_padding: report.trailing_padding(),
        checks,
    })
}

/// Checks `certs` (leaf first, optionally ending in `root` itself) up to `root`; returns the leaf.
fn verify_cert_chain<'c>(
    certs: &'c [Cert],
    root: &Cert,
    at: UnixTime,
    cache: &mut ChainCache,
) -> Result<&'c Cert, GpuError> {
    let (leaf, mut issuers) = certs.split_first().ok_or(GpuError::EmptyCertChain)?;
    if let Some((last, rest)) = issuers.split_last() {
        if last.der() == root.der() {
            issuers = rest;
        } else if last.subject() == last.issuer() {
            // A self-issued certificate that is not ours: name it rather than report a
            // confusing issuer mismatch against the pinned root.
            return Err(GpuError::UntrustedRoot {
                subject: last.subject(),
            });
        }
    } else if leaf.der() == root.der() {
        return Err(GpuError::UntrustedRoot {
            subject: leaf.subject(),
        });
    }
    Cert::verify_chain_to_anchor(leaf, issuers, root, at, cache).map_err(GpuError::CertChain)?;
    Ok(leaf)
}

/// The digests of every `SEQUENCE { hashAlgorithm OID, digest OCTET STRING }` directly inside
/// the leaf's TcbInfo extension (NVIDIA's encoding of the firmware FWID).
fn leaf_fwids(ext: &[u8]) -> Vec<Vec<u8>> {
    let Ok(items) = Vec::<der::Any>::from_der(ext) else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|item| item.tag() == Tag::Sequence)
        .filter_map(|item| Vec::<der::Any>::from_der(&item.to_der().ok()?).ok())
        .filter_map(|pair| match pair.as_slice() {
            [alg, digest]
                if alg.tag() == Tag::ObjectIdentifier && digest.tag() == Tag::OctetString =>
            {
                Some(digest.value().to_vec())
            }
            _ => None,
        })
        .collect()
}

fn check_cc_mode(report: &SpdmEvidence, policy: &GpuPolicy) -> Result<CcMode, GpuError> {
    // Values as NVIDIA's attestation SDK defines OpaqueDataFeatureFlag; anything else is not a
    // confidential-computing mode.
    match report.feature_flag() {
        Some(0) => Ok(CcMode::MultiGpuPassthrough),
        Some(1) => Ok(CcMode::SingleGpuPassthrough),
        Some(2) if policy.accept_protected_pcie => Ok(CcMode::ProtectedPcie),
        Some(2) => Err(GpuError::ProtectedPcieRefused),
        Some(feature_flag) => Err(GpuError::CcModeOff { feature_flag }),
        None if policy.require_cc_feature_flag => Err(GpuError::CcModeNotAttested),
        None => Ok(CcMode::LegacyUnflagged),
    }
}

/// Matched SPDM block indices, skipped ones, and the matched indices of each RIM in order.
type RimComparison = (Vec<u8>, Vec<u8>, Vec<Vec<u8>>);

/// Compares the report's blocks with the RIMs' active reference values; returns the matched
/// and the skipped SPDM block indices, and which RIM each match came from.
fn compare_rims(
    report: &SpdmEvidence,
    rims: &[Rim],
    policy: &GpuPolicy,
) -> Result<RimComparison, GpuError> {
    if rims.is_empty() {
        return if policy.require_rim {
            Err(GpuError::RimRequired)
        } else {
            Ok((Vec::new(), Vec::new(), Vec::new()))
        };
    }
    let driver = report.driver_version();
    let vbios = report.vbios_version();
    let same =
        |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
    let mut golden: BTreeMap<u32, (usize, &RimMeasurement)> = BTreeMap::new();
    for (position, rim) in rims.iter().enumerate() {
        if !same(&driver, &rim.version) && !same(&vbios, &rim.version) {
            return Err(GpuError::RimVersionMismatch {
                rim_version: rim.version.clone(),
                driver_version: driver,
                vbios_version: vbios,
            });
        }
        for m in rim.measurements.iter().filter(|m| m.active) {
            if golden.insert(m.index, (position, m)).is_some() {
                return Err(GpuError::RimIndexConflict { rim_index: m.index });
            }
        }
    }

    let nvdec_disabled = report.nvdec0_status() == Some(NVDEC0_DISABLED);
    let mut matched = Vec::new();
    let mut skipped = Vec::new();
    let mut per_rim = vec![Vec::new(); rims.len()];
    for (&rim_index, &(position, reference)) in &golden {
        // An index past SPDM's range becomes 0xFF, which no parsed report holds.
        let index = u8::try_from(rim_index.saturating_add(1)).unwrap_or(u8::MAX);
        if rim_index == NVDEC_DEPENDENT_RIM_INDEX && nvdec_disabled {
            skipped.push(index);
            continue;
        }
        let block = report
            .block(index)
            .ok_or(GpuError::MeasurementMissing { index, rim_index })?;
        if !reference.alternatives.contains(&block.value) {
            return Err(GpuError::MeasurementMismatch { index, rim_index });
        }
        matched.push(index);
        if let Some(slot) = per_rim.get_mut(position) {
            slot.push(index);
        }
    }
    Ok((matched, skipped, per_rim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_root_is_self_signed_and_valid_forever() {
        let root = pinned_root().expect("pinned root parses and matches its fingerprint");
        assert_eq!(root.subject(), root.issuer());
        root.verify_issued_by(&root).expect("self-signed");
        assert!(root.subject().contains("NVIDIA Device Identity CA"));
        root.check_validity(UnixTime(1_717_200_000)).expect("valid");
        root.check_validity(UnixTime(253_402_300_799))
            .expect("valid to 9999-12-31");
    }
}
